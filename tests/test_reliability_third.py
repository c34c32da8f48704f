"""Reliability, third pass (issue 32): the last inputs that hung, were refused only
after something was written, or passed unnoticed; and messages that must name the file.

Each test here failed on the code before the issue's changes."""
import errno
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff.cli import workers
from gmmdiff.io.files import read_npz, write_json, write_npz
from gmmdiff.training.config import TrainConfig
from gmmdiff.training.state import initial_state

from test_cli import SMALL, load_script
from test_reliability import REFINING_SWEEP, TINY_SWEEP, one_line_error, snapshot

train_cli = load_script("gmmdiff-train")
sweep_cli = load_script("gmmdiff-sweep")
plot_cli = load_script("gmmdiff-plot")
predict_cli = load_script("gmmdiff-predict")
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gmmdiff",
                       "assets", "cpu_sweep", "summary.json")


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("third") / "sweep"
    result = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def copy_of(src, tmp_path):
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------- worker counts

def test_absurd_jobs_are_refused_in_one_line(tmp_path, monkeypatch):
    runs = []        # (before the refusal, this started 10^6 processes: none here)
    monkeypatch.setattr(workers, "run_workers", lambda command, envs: runs.append(envs) or [0] * len(envs))
    out = tmp_path / "sweep"
    one_line_error(CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--jobs", "1000000", "--out", str(out)]),
                   "--jobs 1000000")
    assert not out.exists() and not runs


@pytest.mark.parametrize("samples, cores, started", [("8,10", "16", 2), ("8,10,12,14", "3", 3),
                                                     ("8,10", "2", 2)])
def test_workers_are_capped_at_the_units_and_the_cores(tmp_path, monkeypatch, samples, cores,
                                                       started):
    """--jobs 8 starts no more workers than there are units to train and cores to run
    them, and says so."""
    runs = []
    monkeypatch.setattr(workers, "run_workers", lambda command, envs: runs.append(envs) or [0] * len(envs))
    monkeypatch.setenv("GMMDIFF_CORES", cores)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["-N", samples, "--jobs", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [len(envs) for envs in runs] == [started]
    assert f"--jobs 8: {started} workers" in result.output, result.output


# ---------------------------------------------- checked before anything is written

@pytest.mark.parametrize("extra, quiet", [([], True), (["--jobs", "2"], True),
                                          (["--jobs", "2"], False)])
@pytest.mark.parametrize("damage, match", [("step", "at step 1000000"), ("shape", "means")])
def test_a_unit_checkpoint_that_cannot_resume_is_refused_before_anything_is_written(
        tmp_path, tiny_sweep, monkeypatch, damage, match, extra, quiet):
    """By the sweep, and with --jobs by its parent before any worker starts (with its
    progress on too: before its estimate of the duration)."""
    runs = []
    monkeypatch.setattr(workers, "run_workers", lambda command, envs: runs.append(envs) or [0] * len(envs))
    monkeypatch.setenv("GMMDIFF_CORES", "2")
    out = copy_of(tiny_sweep, tmp_path)
    shutil.rmtree(out / "N8-d3-K2-s0")
    cfg = TrainConfig(dim=3 if damage == "step" else 5, components=2, samples=8, noise_draws=2)
    state = initial_state(cfg.dataset(), [4, 8], cfg, np, labels=["N8-d3-K2-s0:M=4", "N8-d3-K2-s0:M=8"])
    if damage == "step":
        state.step = 10**6
    state.save(str(out / "checkpoint-N8-d3-shard0of1-coarse.npz"))
    before = snapshot(out)
    args = [a for a in TINY_SWEEP if quiet or a != "--quiet"] + extra + ["--out", str(out)]
    line = one_line_error(CliRunner().invoke(sweep_cli, args), match)
    assert "checkpoint-N8-d3-shard0of1-coarse.npz" in line
    assert snapshot(out) == before and not runs


def small_summary(tmp_path):
    """A sweep directory holding only a summary.json: the shipped CPU sweep's
    configurations at N = 20 (9 settings, 2 seeds each)."""
    with open(SHIPPED) as fh:
        summary = json.load(fh)
    summary["configs"] = [c for c in summary["configs"] if c["N"] == 20]
    out = tmp_path / "fitdir"
    out.mkdir()
    write_json(str(out / "summary.json"), summary)
    return out


def test_an_output_path_of_the_fit_that_cannot_be_written_is_refused_before_the_fit(tmp_path):
    out = small_summary(tmp_path)
    (out / "fit_mc.json").mkdir()
    before = snapshot(out)
    one_line_error(CliRunner().invoke(predict_cli, ["--fit", str(out), "--source", "mc"]), "fit_mc.json")
    (out / "fit_simple.json").mkdir()
    (out / "fit_mc.json").rmdir()
    one_line_error(CliRunner().invoke(predict_cli, ["--fit", str(out)]), "fit_simple.json")
    assert snapshot(out) == before and not (out / "fit_mc.json").exists()


def test_more_folds_than_settings_are_refused_before_the_fit(tmp_path):
    out = small_summary(tmp_path)
    before = snapshot(out)
    line = one_line_error(CliRunner().invoke(predict_cli, ["--fit", str(out), "--source", "mc",
                                                           "--folds", "1000000"]), "1000000")
    assert "9 settings" in line and "--folds" in line, line
    assert snapshot(out) == before


# -------------------------------------------------- one reader, one verdict

def _edit_sweep_json(path, edit):
    text = path.read_text()
    if callable(edit):
        obj = json.loads(text)
        edit(obj["identity"])
        text = json.dumps(obj, indent=2)
    else:
        text = text.replace(*edit)
    path.write_text(text)


@pytest.mark.parametrize("edit, match", [
    (lambda i: i.update(seeds=[-1]), "seeds"),
    (lambda i: i.update(seeds=[0, 0]), "seeds"),
    (lambda i: i.update(samples=[8, 4]), "samples"),
    (lambda i: i.update(results_format=99), "results_format"),
    (('"seeds": [', '"seeds": [5], "seeds": ['), "duplicate key 'seeds'"),
    (('"coarse": 2', '"coarse": 1' + "0" * 5000), "digits"),
])
def test_summary_and_sweep_give_one_verdict_on_a_sweep_json(tmp_path, tiny_sweep, edit, match):
    out = copy_of(tiny_sweep, tmp_path)
    _edit_sweep_json(out / "sweep.json", edit)
    before = snapshot(out)
    summary = one_line_error(CliRunner().invoke(sweep_cli, ["--summary", str(out)]), match)
    assert str(out / "sweep.json") in summary, summary
    assert snapshot(out) == before                          # no summary.csv
    for cli, args in ((sweep_cli, TINY_SWEEP + ["--out", str(out)]), (plot_cli, [str(out)]),
                      (predict_cli, ["--fit", str(out), "--source", "mc"])):
        assert one_line_error(CliRunner().invoke(cli, args), match) == summary
    assert snapshot(out) == before


def test_a_json_file_with_a_huge_integer_is_named(tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]).exit_code == 0
    text = (out / "index.json").read_text()
    (out / "index.json").write_text(text.replace("8", "8" + "0" * 5000))
    line = one_line_error(CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]), "index.json")
    assert "4300" in line or "digits" in line, line


@pytest.mark.parametrize("call, name", [("fsync", "config.json"), ("ftruncate", ".lock")])
def test_a_full_disk_names_the_file_and_what_to_do(tmp_path, monkeypatch, call, name):
    """The disk fills up at the first file of a run (fsync of an atomic write) or at
    its lock file (the lock's holder written into it)."""
    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, call, full)
    out = tmp_path / "run"
    line = one_line_error(CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]),
                          "No space left on device")
    assert str(out / name) in line and "free space" in line, line
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]


# ------------------------------------------------------- a plan is re-derived

def test_a_refinement_plan_that_disagrees_with_the_coarse_results_is_refused(tmp_path):
    """The refinement sizes are a function of the coarse results: a plan.json recording
    others (here [7], the coarse results give two sizes above 9) is refused before
    anything is written; with a coarse size missing (removed from the index to be
    retrained), the plan is checked once the coarse phase is done again, before any
    refinement size trains."""
    out = tmp_path / "sweep"
    assert CliRunner().invoke(sweep_cli, REFINING_SWEEP + ["--out", str(out)]).exit_code == 0
    rd = out / "N12-d4-K2-s0"
    plan = json.loads((rd / "plan.json").read_text())
    assert 7 not in plan["refine"]
    (rd / "transition.json").unlink()
    write_json(str(rd / "plan.json"), dict(plan, refine=[7]))
    before = snapshot(out)
    line = one_line_error(CliRunner().invoke(sweep_cli, REFINING_SWEEP + ["--out", str(out)]),
                          str(rd / "plan.json"))
    assert "[7]" in line and str(plan["refine"]) in line, line
    assert snapshot(out) == before
    # the coarse results incomplete: the plan cannot be checked until they are back
    write_json(str(rd / "index.json"), {"complete": [3, 6, 9] + plan["refine"]})
    result = CliRunner().invoke(sweep_cli, REFINING_SWEEP + ["--out", str(out)])
    assert result.exit_code == 2, result.output          # (after the lines of its training)
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and str(rd / "plan.json") in last, result.output
    assert json.loads((rd / "index.json").read_text())["complete"] == sorted([3, 6, 9, 12] + plan["refine"])
    assert not (rd / "model_M00007.json").exists() and not (rd / "transition.json").exists()


# ------------------------------------------------ plot reads as train reads

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("third-run") / "run"
    result = CliRunner().invoke(train_cli, SMALL + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_plot_and_train_refuse_a_config_json_with_a_value_of_the_wrong_type(tmp_path, small_run):
    out = copy_of(small_run, tmp_path)
    cfg = json.loads((out / "config.json").read_text())
    cfg["identity"]["dim"] = "3"
    write_json(str(out / "config.json"), cfg)
    before = snapshot(out)
    plot = one_line_error(CliRunner().invoke(plot_cli, [str(out)]), "identity.dim")
    assert str(out / "config.json") in plot and '"3"' in plot, plot
    train = one_line_error(CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]), "identity.dim")
    assert train == plot
    assert snapshot(out) == before


@pytest.mark.parametrize("name, cut", [("means", lambda a: a[:1]), ("generated", lambda a: a[:, :2]),
                                        ("std", lambda a: np.ones(3))])
def test_plot_refuses_model_arrays_of_the_wrong_shape(tmp_path, small_run, name, cut):
    out = copy_of(small_run, tmp_path)
    path = out / "model_M00008.npz"
    arrays = read_npz(str(path))
    arrays[name] = cut(arrays[name])
    write_npz(str(path), arrays)
    before = snapshot(out)
    line = one_line_error(CliRunner().invoke(plot_cli, [str(out)]), str(path))
    assert name in line, line
    assert snapshot(out) == before


def test_a_sweep_refuses_model_arrays_of_the_wrong_shape_before_writing(tmp_path):
    out = tmp_path / "sweep"
    assert CliRunner().invoke(sweep_cli, REFINING_SWEEP + ["--out", str(out)]).exit_code == 0
    rd = out / "N12-d4-K2-s0"
    (rd / "transition.json").unlink()
    arrays = read_npz(str(rd / "model_M00006.npz"))
    arrays["means"] = arrays["means"][:1]
    write_npz(str(rd / "model_M00006.npz"), arrays)
    before = snapshot(out)
    one_line_error(CliRunner().invoke(sweep_cli, REFINING_SWEEP + ["--out", str(out)]), "model_M00006.npz")
    assert snapshot(out) == before
