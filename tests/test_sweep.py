"""Sweeps: transition detection, the weight fit, shards, resume, end to end."""
import importlib.machinery
import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff.io.files import read_npz
from gmmdiff.analysis.fits import fit_and_score, fit_weights
from gmmdiff.analysis.predict import predicted_ratio
from gmmdiff.experiments.sweep.plans import coarse_sizes, refine_sizes
from gmmdiff.experiments.sweep.spec import parse_shard, shard
from gmmdiff.analysis.transition import crossing, detect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name):
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), os.path.join(ROOT, "bin", name))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module.main


# ---------------------------------------------------------------- transition detection

def test_monotone_curve_interpolates_each_level():
    M = [10, 20, 30, 40]
    r = [0.0, 0.2, 0.8, 1.0]
    out = detect(M, r)
    assert out["M_pt"]["value"] == pytest.approx(25.0)          # 0.2 -> 0.8 between 20 and 30
    assert out["start"]["value"] == pytest.approx(15.0)         # 0.0 -> 0.2
    assert out["end"]["value"] == pytest.approx(35.0)           # 0.8 -> 1.0
    assert out["status"] == "ok"


def test_interval_from_bound_curves():
    M = [10, 20, 30, 40]
    r, lo, hi = [0.0, 0.3, 0.7, 1.0], [0.0, 0.1, 0.5, 0.9], [0.2, 0.5, 0.9, 1.0]
    out = detect(M, r, lo, hi)
    assert out["M_pt"]["value"] == pytest.approx(25.0)
    assert out["M_pt"]["interval"] == [pytest.approx(20.0), pytest.approx(30.0)]
    assert out["M_pt"]["interval"][0] <= out["M_pt"]["value"] <= out["M_pt"]["interval"][1]


def test_never_crossing_is_not_interpolated():
    assert crossing([1, 2, 3], [0.0, 0.2, 0.4], 0.5) == (None, "never crosses")
    assert crossing([1, 2, 3], [0.6, 0.8, 1.0], 0.5) == (None, "above at smallest M")
    out = detect([1, 2, 3], [0.0, 0.2, 0.4])
    assert out["M_pt"]["value"] is None and out["status"] == "never crosses"


def test_noisy_curve_crossing_twice_reports_first_and_flags():
    value, status = crossing([10, 20, 30, 40, 50], [0.1, 0.6, 0.4, 0.9, 1.0], 0.5)
    assert value == pytest.approx(18.0) and status == "multiple crossings"


def test_bad_curves_rejected():
    with pytest.raises(ValueError, match="strictly increasing"):
        crossing([1, 1, 2], [0, 0.5, 1], 0.5)
    with pytest.raises(ValueError, match="equal length"):
        crossing([1, 2], [0.1], 0.5)


# ------------------------------------------------------------------------- the fit

def synthetic(n_configs, weights, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    T = len(weights)
    scales = np.logspace(-1, 2, T)                 # times on very different scales
    curves, measured = [], []
    for _ in range(n_configs):
        N = int(rng.integers(50, 200))
        M = np.arange(1, N + 1, dtype=float)
        gen = rng.uniform(0.3, 1.5, T) * scales
        pmem = (rng.uniform(2, 4, T) * scales)[None] * (1 - M / N)[:, None]
        r, ok = predicted_ratio(M, gen, pmem, weights, N)
        assert ok
        curves.append((M, gen, pmem, N))
        measured.append(r + noise * rng.standard_normal())
    return curves, np.array(measured)


def test_fit_recovers_known_weights():
    true = np.array([0.4, 0.05, 0.25, 0.3])
    curves, measured = synthetic(40, true)
    lam = fit_weights(curves, measured)
    np.testing.assert_allclose(lam, true, atol=0.02)
    assert lam.min() >= 0 and lam.sum() == pytest.approx(1.0)


def test_every_configuration_is_held_out_once_and_fitted_without_itself():
    true = np.array([0.4, 0.05, 0.25, 0.3])
    curves, measured = synthetic(20, true, seed=1)
    base = fit_and_score(curves, measured, seed=3)
    assert sorted(i for f in base["folds"] for i in f) == list(range(20))
    spoiled = measured.copy()
    te = np.array(base["folds"][1])
    spoiled[te] = 0.01                             # corrupt only one fold's measurements
    again = fit_and_score(curves, spoiled, seed=3)
    np.testing.assert_allclose(np.array(again["cv_predicted"])[te], np.array(base["cv_predicted"])[te],
                               rtol=1e-9)
    assert again["mse_test"] > 100 * max(base["mse_test"], 1e-8)
    assert base["mse_test"] < base["trivial_mse_test"] and base["beats_trivial_on_test"]
    assert not again["beats_trivial_on_test"]
    assert again["trivial_prediction"] == pytest.approx(spoiled.mean())


# ------------------------------------------------------------------- shards, grids

@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 64, 70])
def test_shards_partition_exactly(n):
    items = list(range(64))
    parts = [shard(items, i, n) for i in range(n)]
    flat = [x for p in parts for x in p]
    assert sorted(flat) == items and len(flat) == len(set(flat))


def test_shard_parsing_and_grids():
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/3", "a/b", "3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    assert coarse_sizes(200, 10) == list(range(20, 201, 20))
    assert coarse_sizes(12, 4) == [3, 6, 9, 12]
    new = refine_sizes([20, 40, 60, 80, 100], [0.0, 0.05, 0.5, 0.95, 1.0], 100, 10)
    assert new and min(new) > 40 and max(new) < 80 and 60 not in new
    assert refine_sizes([1, 2], [0.0, 0.0], 2, 10) == []


def test_data_variance_axis_names_identity_and_units():
    from gmmdiff.training.config import TrainConfig
    from gmmdiff.experiments.sweep.spec import (SweepSpec, parse_float_list, run_name,
                                                spec_from_identity)
    from gmmdiff.experiments.sweep.units import work_units
    spec = SweepSpec(samples=(12,), dims=(4,), components=(2, 3), seeds=(0, 1), data_vars=(0.5, 1.0, 2.0),
                     base=TrainConfig(steps=10))
    cfgs = spec.configurations()
    assert len(cfgs) == 12 and sorted({c.data_var for c in cfgs}) == [0.5, 1.0, 2.0]
    names = [run_name(c) for c in cfgs]
    assert len(set(names)) == 12 and "N12-d4-K2-v0.5-s1" in names and "N12-d4-K3-s0" in names
    ident = spec.identity("numpy")
    assert ident["data_vars"] == [0.5, 1.0, 2.0] and "data_var" not in ident["base"]
    assert spec_from_identity(ident) == spec
    # one unit per (N, d, s*): a batch never mixes data variances
    units = work_units(cfgs)
    assert len(units) == 3 and all(len({c.data_var for c in u}) == 1 for _, u in units)
    # the data differ with s* (same seed), and a sweep of one s* keeps its old identity
    X = {c.data_var: c.dataset().X for c in cfgs if c.seed == 0 and c.components == 2}
    assert not np.allclose(X[0.5], X[2.0])
    assert "data_vars" not in SweepSpec(base=TrainConfig(steps=10)).identity("numpy")
    assert parse_float_list("2, 0.5,1", "v") == [0.5, 1.0, 2.0]
    for bad in ("0,1", "a", "", "1,inf"):
        with pytest.raises(ValueError, match="v"):
            parse_float_list(bad, "v")


def test_data_var_and_data_vars_together_are_refused(tmp_path):
    result = CliRunner().invoke(load_script("gmmdiff-sweep"),
                                ["--preset", "svar", "--data-var", "2", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "not both" in result.output, result.output
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------- end to end

TINY = ["-N", "12,16", "-d", "4", "-K", "2", "--seeds", "0,1", "--coarse", "4", "--refine", "3",
        "--steps", "3000", "--noise-draws", "4", "--target", "x0", "--lr", "1e-2",
        "--eval-samples", "40", "--eval-noise-draws", "4", "--eval-steps", "log:4", "--quiet"]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "sw"
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), TINY + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_small_sweep_end_to_end(tiny_sweep):
    out = tiny_sweep
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), ["--summary", str(out)])
    assert result.exit_code == 0, result.output
    lines = (out / "summary.csv").read_text().splitlines()
    assert lines[0].startswith("N,d,K,data_var,init,seed,status,M_pt_over_N")
    assert len(lines) == 5
    head = lines[0].split(",")
    rows = [dict(zip(head, ln.split(","))) for ln in lines[1:]]
    assert {r["data_var"] for r in rows} == {"1"} and {r["init"] for r in rows} == {"pmem"}
    measured = [float(r["M_pt_over_N"]) for r in rows if r["M_pt_over_N"]]
    assert len(measured) >= 3 and all(0 < m < 1 for m in measured)
    assert "0 missing or incomplete" in result.output
    result = CliRunner().invoke(load_script("gmmdiff-predict"), ["--fit", str(out), "--source", "mc"])
    assert result.exit_code == 0, result.output
    assert "trivial predictor" in result.output and (out / "fit_mc.json").exists()
    result = CliRunner().invoke(load_script("gmmdiff-plot"), [str(out)])
    assert result.exit_code == 0, result.output
    for name in ("fig1_losses_vs_approximations.png", "fig3_mc.png", "fig7_seeds.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    result = CliRunner().invoke(load_script("gmmdiff-predict"),
                                ["-N", "16", "-d", "4", "-K", "2", "--target", "x0",
                                 "--fit-file", str(out / "fit_mc.json")])
    assert result.exit_code == 0 and "fitted" in result.output, result.output


def test_foreign_sweep_refused(tiny_sweep):
    args = [a if a != "3000" else "3001" for a in TINY]
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), args + ["--out", str(tiny_sweep)])
    assert result.exit_code == 2 and "different sweep" in result.output


def test_summary_lists_missing_configurations(tmp_path, tiny_sweep):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "sweep.json").write_bytes((tiny_sweep / "sweep.json").read_bytes())
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), ["--summary", str(partial)])
    assert result.exit_code == 0
    assert result.output.count(",missing,") == 4 and "4 missing or incomplete" in result.output


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_same_summary(tmp_path, tiny_sweep):
    """Killed inside the second unit (N = 12; units go largest first), after the first
    (N = 16, two seeds trained together) finished: the restart loses nothing and ends
    with the same summary."""
    out = tmp_path / "killed"
    cmd = [sys.executable, os.path.join(ROOT, "bin", "gmmdiff-sweep"), *TINY,
           "--checkpoint-every", "100", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "checkpoint-N12-d4-shard0of1-coarse.npz"
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "N16-d4-K2-s0" / "transition.json").exists()
    assert (out / "N16-d4-K2-s1" / "transition.json").exists()
    assert not (out / "N12-d4-K2-s0" / "transition.json").exists()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert not list(out.glob("checkpoint-*"))
    runner = CliRunner()
    runner.invoke(load_script("gmmdiff-sweep"), ["--summary", str(out)])
    runner.invoke(load_script("gmmdiff-sweep"), ["--summary", str(tiny_sweep)])
    assert (out / "summary.csv").read_text() == (tiny_sweep / "summary.csv").read_text()


@pytest.mark.slow
def test_grouped_sweep_equals_one_configuration_at_a_time(tmp_path, tiny_sweep):
    out = tmp_path / "ungrouped"
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), TINY + ["--no-group", "--out", str(out)])
    assert result.exit_code == 0, result.output
    runner = CliRunner()
    runner.invoke(load_script("gmmdiff-sweep"), ["--summary", str(out)])
    runner.invoke(load_script("gmmdiff-sweep"), ["--summary", str(tiny_sweep)])
    assert (out / "summary.csv").read_text() == (tiny_sweep / "summary.csv").read_text()
    for name in ("N12-d4-K2-s1", "N16-d4-K2-s0"):
        for f in sorted((out / name).glob("model_M*.npz")):
            a, b = read_npz(str(f)), read_npz(str(tiny_sweep / name / f.name))
            np.testing.assert_allclose(a["means"], b["means"], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_jobs_share_the_sweep_and_give_bit_identical_results(tmp_path, tiny_sweep):
    """--jobs 2 starts two workers that claim the units (configurations sharing N and d)
    in turn: every file of every configuration equals the one-job sweep's, bit for bit,
    and nothing is left behind (no lock, no temporary file, no checkpoint)."""
    out = tmp_path / "workers"
    cmd = [sys.executable, os.path.join(ROOT, "bin", "gmmdiff-sweep"), *TINY,
           "--jobs", "2", "--out", str(out)]
    done = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=ROOT), check=True,
                          capture_output=True, text=True)
    assert "[worker 0]" in done.stdout and "[worker 1]" in done.stdout
    assert done.stdout.count("] training") == 2                  # each unit trained once
    names = sorted(p.name for p in tiny_sweep.iterdir() if p.is_dir())
    assert names == sorted(p.name for p in out.iterdir() if p.is_dir())
    for name in names:
        for f in sorted((tiny_sweep / name).iterdir()):
            if f.suffix == ".npz":
                a, b = read_npz(str(f)), read_npz(str(out / name / f.name))
                assert a.keys() == b.keys()
                for k in a:
                    np.testing.assert_array_equal(a[k], b[k])
            elif f.name != "config.json":
                assert f.read_bytes() == (out / name / f.name).read_bytes(), (name, f.name)
    assert sorted(p.name for p in out.iterdir() if not p.is_dir()) == ["sweep.json"]


def test_devices_need_gpu_numbers_and_the_cupy_backend(tmp_path):
    for spec, match in ((",,", "not understood"), ("abc", "not understood"), ("0,0", "not understood"),
                        ("0,1", "needs --backend cupy")):
        result = CliRunner().invoke(load_script("gmmdiff-sweep"),
                                    TINY + ["--devices", spec, "--out", str(tmp_path / "s")])
        assert result.exit_code == 2 and match in result.output, (spec, result.output)
        assert not (tmp_path / "s").exists()


def test_a_constant_predictor_does_not_beat_the_trivial_one():
    """Curves whose crossing is the same for every configuration (like the "simple"
    source) can only reproduce the training mean: reported as not beating it."""
    rng = np.random.default_rng(4)
    curves, measured = [], rng.uniform(0.5, 0.9, 12)
    for _ in range(12):
        M = np.arange(1, 101, dtype=float)
        # the weights move the crossing within 0.5-0.9, the same for every configuration
        curves.append((M, np.array([0.4, 2.0]), np.array([4.0, 4.0])[None] * (1 - M / 100)[:, None], 100))
    res = fit_and_score(curves, measured, seed=0)
    assert not res["beats_trivial_on_test"]
    assert res["verdict"]["verdict"] == "indistinguishable from trivial"
    np.testing.assert_allclose(res["cv_predicted"], res["trivial_cv_predicted"], atol=1e-3)


def test_stacked_ratios_equal_predicted_ratio_for_each_configuration():
    """The fit's vectorized predictions (all configurations in one array expression)
    against predicted_ratio one configuration at a time, bit for bit, including curves
    that never cross (clamped to either end) and configurations of different sizes."""
    from gmmdiff.analysis.predict import _Stack
    rng = np.random.default_rng(0)
    for trial in range(50):
        curves, _ = synthetic(12, rng.dirichlet(np.ones(4)), seed=trial)
        curves = [(M, g * rng.choice([1.0, 0.01, 100.0]), p, N) for M, g, p, N in curves]
        w = rng.dirichlet(np.ones(4))
        want = np.array([predicted_ratio(M, g, p, w, N)[0] for M, g, p, N in curves])
        np.testing.assert_array_equal(_Stack(curves).ratios(w), want)


def test_refinement_brackets_the_crossing_of_one_half_whatever_the_coarse_grid():
    """Refinement adds sizes whenever the coarse grid brackets the crossing of 1/2: between
    the coarse start and end, or (nothing below 0.1 / above 0.9) between the last size
    below 1/2 and the first above; never a coarse size, never nothing when the range has
    room, and nothing without a bracketed crossing."""
    # nothing below 0.1 (the old rule added nothing): between 4 and 6, not up to 8
    assert refine_sizes([2, 4, 6, 8, 10], [0.2, 0.3, 0.6, 0.95, 1.0], 10, 3) == [5]
    # nothing above 0.9: between the last below 1/2 and the first above
    assert refine_sizes([3, 6, 9, 12], [0.0, 0.4, 0.7, 0.8], 12, 6) == [7, 8]
    # a small grid whose evenly spaced sizes would all round onto coarse ones
    new = refine_sizes([3, 6, 9, 12], [0.0, 0.05, 0.6, 1.0], 12, 2)
    assert len(new) == 2 and all(6 < m < 12 and m != 9 for m in new)
    # the range has fewer free sizes than points: all of them
    assert refine_sizes([4, 8, 12], [0.0, 0.6, 1.0], 12, 10) == [5, 6, 7, 9, 10, 11]
    # no bracketed crossing: above at the smallest size, never crossing, points 0
    assert refine_sizes([2, 4, 6], [0.6, 0.9, 1.0], 6, 5) == []
    assert refine_sizes([2, 4, 6], [0.0, 0.1, 0.4], 6, 5) == []
    assert refine_sizes([2, 4, 6], [0.0, 0.6, 1.0], 6, 0) == []
    # evenly spread: 10 sizes over 41..79 without 60
    new = refine_sizes([20, 40, 60, 80, 100], [0.0, 0.05, 0.5, 0.95, 1.0], 100, 10)
    gaps = np.diff([40] + new + [80])
    assert len(new) == 10 and 60 not in new and gaps.max() - gaps.min() <= 2


@pytest.mark.slow
def test_data_variance_sweep_fits_per_s_and_transfers(tmp_path, tiny_sweep):
    """A sweep over s*: its summary carries s*, a fit needs one s*, and --transfer
    predicts every s* with weights fitted elsewhere: for "simple" exactly the closed form
    M*/N = 1 - sum lam w / (1 + SNR s*) / sum lam w of those weights at each s*."""
    import json
    from gmmdiff.model.process import time_grid
    from gmmdiff.theory.approximations import simple_transition_ratio
    out = tmp_path / "sv"
    args = ["-N", "12", "-d", "4", "-K", "2", "--seeds", "0,1", "--data-vars", "0.5,2", "--coarse", "4",
            "--refine", "2", "--steps", "1500", "--noise-draws", "4", "--target", "x0", "--lr", "1e-2",
            "--eval-samples", "40", "--eval-noise-draws", "4", "--quiet", "--out", str(out)]
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), args)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), ["--summary", str(out)])
    assert result.exit_code == 0, result.output
    rows = [ln.split(",") for ln in (out / "summary.csv").read_text().splitlines()[1:]]
    assert sorted({r[3] for r in rows}) == ["0.5", "2"] and len(rows) == 4
    predict = load_script("gmmdiff-predict")
    result = CliRunner().invoke(predict, ["--fit", str(out), "--source", "simple"])
    assert result.exit_code == 2 and "data variance" in result.output, result.output
    for src in ("simple", "mc"):                        # weights fitted on the s* = 1 sweep
        result = CliRunner().invoke(predict, ["--fit", str(tiny_sweep), "--source", src])
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(predict, ["--transfer", str(out), "--fits-dir", str(tiny_sweep)])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "transfer.json").read_text())
    assert "measured M_pt/N" in result.output and set(res["sources"]) == {"simple", "mc"}
    w = np.array(json.loads((tiny_sweep / "fit_simple.json").read_text())["weights"])
    for v in res["measured"]:
        p = res["sources"]["simple"]["simplex"]["per_data_var"][v]
        want = simple_transition_ratio(time_grid(), 4, float(v), w, target="x0")
        assert p["mean"] == pytest.approx(want, abs=1e-9)     # (Delta is linear in M: exact)
        assert p["range"][1] - p["range"][0] < 1e-12                  # the same for every config
    assert res["sources"]["simple"]["simplex"]["difference"] != 0


def test_partial_summary_measures_what_a_stopped_sweep_finished(tmp_path, tiny_sweep):
    import shutil
    from gmmdiff.experiments.sweep.summary import transition_summary
    part = tmp_path / "part"
    shutil.copytree(tiny_sweep, part)
    victim = sorted(p for p in part.iterdir() if p.is_dir())[0]
    (victim / "transition.json").unlink()                 # as if stopped before it was written
    full = {c["name"]: c for c in transition_summary(str(tiny_sweep))["configs"]}
    strict = {c["name"]: c for c in transition_summary(str(part))["configs"]}
    loose = {c["name"]: c for c in transition_summary(str(part), partial=True)["configs"]}
    assert strict[victim.name]["status"] == "incomplete" and "sizes" not in strict[victim.name]
    entry = loose[victim.name]
    assert entry["complete"] is False and entry["status"].startswith("partial: ")
    assert entry["sizes"] == full[victim.name]["sizes"]
    if entry["status"] == "partial: ok":
        assert entry["M_pt_over_N"] == pytest.approx(full[victim.name]["M_pt_over_N"])
    for name, c in loose.items():
        if name != victim.name:
            assert c == full[name]
    from gmmdiff.experiments.sweep.summary import reanalyse_summary
    summary = transition_summary(str(part), partial=True)
    assert reanalyse_summary(summary)["configs"] == summary["configs"]


def test_minibatch_shards_give_the_one_process_results_bit_for_bit(tmp_path):
    """The epochs' permutations depend on the seed, N, B and the step only: a minibatch
    momentum sweep split over two shards (each configuration alone, --no-group) gives
    the one-process sweep's files bit for bit, and grouped (seeds in one array program)
    the same parameters to rounding."""
    args = ["-N", "10", "-d", "3", "-K", "2", "--seeds", "0,1", "--coarse", "3", "--refine", "0",
            "--steps", "120", "--noise-draws", "2", "--eval-samples", "20", "--eval-noise-draws", "2",
            "--optimizer", "momentum", "--lr", "1e-3", "--batch-size", "4", "--init", "prior",
            "--quiet", "--no-group"]
    sweep = load_script("gmmdiff-sweep")
    one = tmp_path / "one"
    assert CliRunner().invoke(sweep, args + ["--out", str(one)]).exit_code == 0
    split = tmp_path / "split"
    for i in range(2):
        r = CliRunner().invoke(sweep, args + ["--shard", f"{i}/2", "--out", str(split)])
        assert r.exit_code == 0, r.output
    grouped = tmp_path / "grouped"
    assert CliRunner().invoke(sweep, args[:-1] + ["--out", str(grouped)]).exit_code == 0
    for name in ("N10-d3-K2-iprior-s0", "N10-d3-K2-iprior-s1"):
        files = sorted(f.name for f in (one / name).glob("model_M*.npz"))
        assert len(files) == 3
        for f in files:
            assert (one / name / f).read_bytes() == (split / name / f).read_bytes(), (name, f)
            a, b = read_npz(str(one / name / f)), read_npz(str(grouped / name / f))
            np.testing.assert_allclose(a["means"], b["means"], rtol=1e-10, atol=1e-12)
