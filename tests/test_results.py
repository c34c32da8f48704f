"""gmmdiff.load_run / load_sweep and the names exported by the package."""
import json
import os

import numpy as np
import pytest

import gmmdiff
from gmmdiff.experiments import results
from gmmdiff.io.files import StorageError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / "run"
    cfg = gmmdiff.TrainConfig(dim=3, components=2, samples=8, steps=60, noise_draws=2,
                              eval_samples=10)
    gmmdiff.run(cfg, [2, 8], str(out), np)
    return out


def test_every_export_resolves_to_its_module():
    for name, module in gmmdiff._EXPORTS.items():
        obj = getattr(gmmdiff, name)
        assert obj is getattr(__import__(f"gmmdiff.{module}", fromlist=[name]), name), name
    assert set(gmmdiff._EXPORTS) <= set(dir(gmmdiff))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        gmmdiff.nothing


def test_load_run_gives_the_files_metrics_and_reads_arrays_lazily(tiny_run, monkeypatch):
    reads = []
    real = results.read_npz
    monkeypatch.setattr(results, "read_npz", lambda p: reads.append(p) or real(p))
    run = gmmdiff.load_run(str(tiny_run))
    assert reads == []                                   # nothing read until asked
    assert run.config["dim"] == 3 and run.config["samples"] == 8
    assert run.sizes == [2, 8] and list(run.M) == [2, 8]
    on_disk = [json.loads((tiny_run / f"model_M{M:05d}.json").read_text()) for M in (2, 8)]
    np.testing.assert_array_equal(run.ratio, [m["memorization"]["ratio"] for m in on_disk])
    np.testing.assert_array_equal(run.interval, [m["memorization"]["interval"] for m in on_disk])
    np.testing.assert_array_equal(run.learned_variance, [m["learned_variance"] for m in on_disk])
    assert run.per_time("pmem_train").shape == (2, 26) and run.times.shape == (26,)
    assert run[8]["M"] == 8
    a = run.arrays(8)
    assert a["means"].shape == (8, 3) and a["generated"].shape == (10, 3)
    assert run.arrays(8) is a and len(reads) == 1          # read once
    with pytest.raises(KeyError, match="no completed model size M = 4"):
        run.arrays(4)
    with pytest.raises(KeyError, match="metric 'nope'"):
        run.column("nope")


def test_load_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(StorageError, match="not a gmmdiff run directory"):
        gmmdiff.load_run(str(tmp_path))
    with pytest.raises(StorageError, match="not a gmmdiff sweep directory"):
        gmmdiff.load_sweep(str(tmp_path))


def test_load_sweep_lists_every_configuration_finished_or_not(tmp_path):
    base = gmmdiff.TrainConfig(steps=60, noise_draws=2, eval_samples=10)
    spec = gmmdiff.SweepSpec(samples=(8,), dims=(3,), components=(2,), seeds=(0, 1), base=base,
                             coarse=2, refine=1)
    out = str(tmp_path / "sw")
    gmmdiff.run_sweep(spec, out, np, shard_spec=(0, 2), echo=lambda s: None)   # seed 0 only
    sweep = gmmdiff.load_sweep(out)
    assert [r["name"] for r in sweep.rows] == ["N8-d3-K2-s0", "N8-d3-K2-s1"]
    assert [r["status"] for r in sweep.rows][1] == "missing"
    assert [r["name"] for r in sweep.complete()] == ["N8-d3-K2-s0"]
    M, ratio = sweep.curve("N8-d3-K2-s0")
    run = sweep.run("N8-d3-K2-s0")
    np.testing.assert_array_equal(M, run.M)
    np.testing.assert_array_equal(ratio, run.ratio)
    assert np.isnan(sweep.column("M_pt_over_N")[1])
    with pytest.raises(KeyError, match="is missing"):
        sweep.curve("N8-d3-K2-s1")
    with pytest.raises(KeyError, match="no configuration 'N9'"):
        sweep.run("N9")
    assert isinstance(sweep, results.SweepResults) and len(sweep) == 2
    assert os.path.isabs(sweep.path)
