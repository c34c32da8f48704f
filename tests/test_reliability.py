"""Reliability: nothing a crash or a typo can lock, every bad input one line with exit
code 2 and nothing written, concurrent runs refused, shared results readable."""
import gzip
import json
import os
import socket
import stat

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff.io import locks
from gmmdiff.training.config import TrainConfig
from gmmdiff.experiments.runs import run
from gmmdiff.training.state import initial_state
from gmmdiff.io.files import write_json
from gmmdiff.families.template_io import write_idx

from test_cli import SMALL, load_script

train_cli = load_script("gmmdiff-train")
sweep_cli = load_script("gmmdiff-sweep")
plot_cli = load_script("gmmdiff-plot")
DEAD_TMP = f".tmp-999999999@{socket.gethostname()}@x1y2"      # a writer that is gone
TINY_SWEEP = ["-N", "8", "-d", "3", "-K", "2", "--seeds", "0", "--coarse", "2", "--refine", "1",
              "--steps", "40", "--noise-draws", "2", "--eval-samples", "6", "--eval-noise-draws",
              "2", "--quiet"]


def one_line_error(result, match=None):
    """Exit code 2, one line starting with 'Error:', no traceback."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    if match:
        assert match in lines[0], result.output
    return lines[0]


def listing(path):
    return sorted(p.name for p in path.iterdir()) if path.exists() else None


# ----------------------------------------------------------- leftovers of a kill

def test_a_kill_during_the_first_config_write_does_not_lock_the_directory(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / (DEAD_TMP + "config.json")).write_text('{"identity": {')          # half-written
    result = CliRunner().invoke(train_cli, SMALL + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").exists() and not [n for n in listing(out) if n.startswith(".")]


def test_a_kill_inside_a_sweep_leaves_nothing_that_blocks_or_stays(tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    # what kills at various points leave: temporaries of dead writers in the sweep and a
    # configuration directory, a stale lock, a finished unit's checkpoint
    (out / (DEAD_TMP + "checkpoint-N8-d3-shard0of1-coarse.npz")).write_bytes(b"partial")
    (out / (DEAD_TMP + "sweep.json")).write_bytes(b"{")
    (out / ".lock-N8-d3-shard0of1").write_text("{}")
    st = initial_state(TrainConfig(dim=3, samples=8).dataset(), [2], TrainConfig(dim=3, samples=8),
                       np, labels=["N8-d3-K2-s0:M=2"])
    st.save(str(out / "checkpoint-N8-d3-shard0of1-refine.npz"))
    (out / "N8-d3-K2-s0" / (DEAD_TMP + "index.json")).write_text("{")
    live = out / f".tmp-{os.getpid()}@{socket.gethostname()}@abcsweep.json"    # being written
    live.write_bytes(b"{")
    result = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert listing(out) == sorted([live.name, "N8-d3-K2-s0", "sweep.json"])
    assert not [n for n in listing(out / "N8-d3-K2-s0") if n.startswith(".")]


def test_leftovers_are_told_from_live_files_whatever_the_host_name(tmp_path, monkeypatch):
    from gmmdiff.io.files import remove_temporaries, write_json
    monkeypatch.setattr(socket, "gethostname", lambda: "gpu-node-17.cluster")
    write_json(str(tmp_path / "mine.json"), {})               # named after this process
    dead = tmp_path / ".tmp-999999999@gpu-node-17.cluster@abcindex.json"
    live = tmp_path / f".tmp-{os.getpid()}@gpu-node-17.cluster@abcindex.json"
    remote = tmp_path / ".tmp-999999999@other-host@abcindex.json"
    for f in (dead, live, remote):
        f.write_text("{")
    assert remove_temporaries(str(tmp_path)) == [dead.name]   # remote: its host can't be asked
    os.utime(remote, (0, 0))                                  # ... until it is an hour old
    assert remove_temporaries(str(tmp_path)) == [remote.name]


def test_a_checkpoint_left_in_a_finished_run_is_removed_and_a_pending_one_kept(tmp_path):
    cfg = TrainConfig(dim=3, components=2, samples=8, steps=40, noise_draws=2,
                      eval_samples=6, eval_noise_draws=2)
    out = tmp_path / "run"
    run(cfg, [2, 8], str(out), np)
    ds = cfg.dataset()
    pending = initial_state(ds, [2, 5], cfg, np, labels=["run:M=2", "run:M=5"])
    pending.save(str(out / "checkpoint.npz"))
    run(cfg, [2], str(out), np)                       # M = 5 still pending in it: kept
    assert (out / "checkpoint.npz").exists()
    initial_state(ds, [2, 8], cfg, np, labels=["run:M=2", "run:M=8"]).save(str(out / "checkpoint.npz"))
    run(cfg, [2], str(out), np)                       # every model in it is finished
    assert not (out / "checkpoint.npz").exists()


# ------------------------------------------- a refused command writes nothing at all

def bad_template_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (5, 6, 6)).astype(np.uint8)
    write_idx(str(tmp_path / "ok.idx"), images)
    raw = (tmp_path / "ok.idx").read_bytes()
    files = {"missing": tmp_path / "missing.idx", "text": tmp_path / "t.idx",
             "png": tmp_path / "p.idx", "truncated gzip": tmp_path / "g.gz",
             "truncated idx": tmp_path / "tr.idx", "2-d": tmp_path / "two.npy",
             "constant": tmp_path / "c.npy", "object": tmp_path / "o.npy",
             "nan": tmp_path / "nan.npy", "strings": tmp_path / "s.npy"}
    files["text"].write_text("hello")
    files["png"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    files["truncated gzip"].write_bytes(gzip.compress(raw)[:40])
    files["truncated idx"].write_bytes(raw[:50])
    np.save(files["2-d"], np.ones((6, 6)))
    np.save(files["constant"], np.ones((5, 6, 6)))
    np.save(files["object"], np.array([[[None]]], dtype=object), allow_pickle=True)
    nan = np.ones((5, 6, 6))
    nan[0, 0, 0] = np.nan
    np.save(files["nan"], nan)
    np.save(files["strings"], np.full((5, 6, 6), "a"))
    return files, tmp_path / "ok.idx"


TEMPLATES = ["--model", "templates", "-K", "3", "--samples", "6", "--image-size", "4",
             "--colors", "2", "--steps", "20", "--noise-draws", "2", "--model-sizes", "2,6",
             "--eval-samples", "6", "--eval-noise-draws", "2", "--quiet"]


def test_bad_template_files_are_refused_and_the_correction_runs(tmp_path):
    files, good = bad_template_files(tmp_path)
    out = tmp_path / "run"
    for name, path in files.items():
        result = CliRunner().invoke(train_cli, TEMPLATES + ["--template-file", str(path), "--out", str(out)])
        one_line_error(result)
        assert not out.exists(), name
    result = CliRunner().invoke(train_cli, TEMPLATES + ["-K", "100", "--template-file", str(good),
                                                       "--out", str(out)])
    one_line_error(result, "K = 100")
    assert not out.exists()
    result = CliRunner().invoke(train_cli, TEMPLATES + ["--template-file", str(good), "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_the_template_file_enters_the_run_by_its_content(tmp_path, monkeypatch):
    _, good = bad_template_files(tmp_path)
    out = tmp_path / "run"
    args = TEMPLATES + ["--model-sizes", "2", "--out", str(out)]
    assert CliRunner().invoke(train_cli, args + ["--template-file", str(good)]).exit_code == 0
    monkeypatch.chdir(tmp_path)                       # the same file by a relative path
    result = CliRunner().invoke(train_cli, args + ["--template-file", "ok.idx"])
    assert result.exit_code == 0, result.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["identity"]["template_file"].startswith("sha256:")
    original = good.read_bytes()
    images = np.random.default_rng(1).integers(0, 255, (5, 6, 6)).astype(np.uint8)
    write_idx(str(good), images)                      # changed in place
    one_line_error(CliRunner().invoke(train_cli, args + ["--template-file", str(good)]),
                   "config.json differs in: template_file")
    before = listing(out)                             # figure 5 would show other templates:
    one_line_error(CliRunner().invoke(plot_cli, [str(out)]), "changed since the run")
    assert listing(out) == before                     # refused before figure 2 is written
    good.write_bytes(original)
    result = CliRunner().invoke(plot_cli, [str(out)])
    assert result.exit_code == 0, result.output       # figure 5 finds the file from meta
    good.unlink()
    one_line_error(CliRunner().invoke(plot_cli, [str(out)]), "is gone")


@pytest.mark.parametrize("args, match", [
    (["--dim", "1000000000000"], "GiB"),
    (["--components", "10000000000"], "GiB"),
    (["--samples", "100000000000", "--model-sizes", "2"], "GiB"),
    (["--noise-draws", "1000000000000"], "above the limit of 1e+06 draws"),
    (["--eval-noise-draws", "100000000000"], "above the limit of 1e+06 draws"),
    (["--samples", "20000", "--model-sizes", "2", "--eval-noise-draws", "1000"], "GiB"),
    (["--grid-size", "1000000000"], "above the limit of 10000 times"),
    (["--grid-size", "1000000"], "above the limit of 10000 times"),
    (["--eval-samples", "10000000000"], "--eval-samples"),
    (["--model-sizes", "0.1:inf:0.1"], "not understood"),
    (["--model-sizes", "0.1:1e9:0.1"], "at most 10000"),
    (["--model-sizes", "1e-300:1:1e-300"], "at most 10000"),
    (["--steps", "100000000000000000000000"], "steps"),
    (["--dim", "abc"], "'--dim'"),
    (["--model", "lowrank"], "'--model'"),
])
def test_bad_or_huge_inputs_are_one_line_and_write_nothing(args, match, tmp_path):
    out = tmp_path / "run"
    one_line_error(CliRunner().invoke(train_cli, SMALL + args + ["--out", str(out)]), match)
    assert not out.exists()


def test_refusals_are_one_line_with_the_progress_bar_on_too(tmp_path):
    args = [a for a in SMALL if a != "--quiet"]
    one_line_error(CliRunner().invoke(train_cli, args + ["--eval-samples", "10000000000",
                                                         "--out", str(tmp_path / "r")]), "GiB")
    one_line_error(CliRunner().invoke(sweep_cli, [a for a in TINY_SWEEP if a != "--quiet"]
                                      + ["--coarse", "1000000000", "--out", str(tmp_path / "s")]))


def test_huge_template_images_are_refused_before_resizing(tmp_path):
    out = tmp_path / "run"
    one_line_error(CliRunner().invoke(train_cli, TEMPLATES + ["--image-size", "100000", "--out", str(out)]),
                   "GiB")
    assert not out.exists()


def test_sweep_inputs_are_checked_before_sweep_json(tmp_path):
    out = tmp_path / "sweep"
    for args, match in ((["--coarse", "1000000000"], "at most 1000"),
                        (["--noise-draws", "1000000000000"], "above the limit"),
                        (["--noise-draws", "100000", "-N", "2000"], "GiB"),
                        (["--samples", "8,x"], "samples")):
        one_line_error(CliRunner().invoke(sweep_cli, TINY_SWEEP + args + ["--out", str(out)]), match)
        assert not out.exists()
    result = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(out)])
    assert result.exit_code == 0, result.output


def test_sweep_refuses_a_run_directory_or_any_foreign_directory(tmp_path):
    runs = tmp_path / "run"
    assert CliRunner().invoke(train_cli, SMALL + ["--out", str(runs)]).exit_code == 0
    before = listing(runs)
    one_line_error(CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(runs)]),
                   "not a gmmdiff sweep directory")
    assert listing(runs) == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("mine")
    one_line_error(CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(other)]),
                   "not a gmmdiff sweep directory")
    assert listing(other) == ["a.txt"]


# --------------------------------------------------------- damaged files, one line

def test_damaged_run_and_sweep_files_are_one_line(tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]).exit_code == 0
    npz = out / "model_M00008.npz"
    good_npz = npz.read_bytes()
    npz.write_bytes(good_npz[:200])
    one_line_error(CliRunner().invoke(plot_cli, [str(out)]), "model_M00008.npz")
    npz.write_bytes(good_npz)
    ckpt = out / "checkpoint.npz"
    np.savez(ckpt, a=np.zeros(3))
    one_line_error(CliRunner().invoke(train_cli, [a if a != "2,8" else "2,4" for a in SMALL]
                                      + ["--out", str(out)]), "not a gmmdiff checkpoint")
    ckpt.unlink()
    good_cfg = (out / "config.json").read_text()
    for bad in ("[]", "{}", '{"identity": []}'):
        (out / "config.json").write_text(bad)
        one_line_error(CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]), "config.json")
        one_line_error(CliRunner().invoke(plot_cli, [str(out)]), "config.json")
    (out / "config.json").write_text(good_cfg)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for bad in ("{}", "[]", '{"identity": {}}', '{"identity": {"samples": [8]}}'):
        (sweep / "sweep.json").write_text(bad)
        one_line_error(CliRunner().invoke(sweep_cli, ["--summary", str(sweep)]), "sweep.json")


# ------------------------------------------------------------ concurrency, sharing

class held_by_another_process:
    """Context manager: a separate Python process holds the lock ``path`` until exit."""

    def __init__(self, path):
        import subprocess
        import sys
        from test_cli import ROOT
        code = ("import sys; from gmmdiff.io import locks; lock = locks.lock_or_refuse(sys.argv[1], 'x'); "
                "print('held', flush=True); sys.stdin.read(); lock.release()")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True,
                                     env=dict(os.environ, PYTHONPATH=ROOT))

    def __enter__(self):
        assert self.proc.stdout.readline().strip() == "held"
        return self.proc

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def test_a_second_process_on_the_same_run_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]).exit_code == 0
    with held_by_another_process(out / ".lock") as holder:
        line = one_line_error(CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]),
                              "is in use by pid")
        assert str(holder.pid) in line
    result = CliRunner().invoke(train_cli, SMALL + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / ".lock").exists()


def test_locks_are_reentrant_within_a_process(tmp_path):
    path = str(tmp_path / ".lock")
    outer = locks.lock_or_refuse(path, "x")
    inner = locks.lock_or_refuse(path, "x")          # the same process: counted, not refused
    inner.release()
    assert os.path.exists(path)
    with held_by_another_process(tmp_path / ".other"):
        assert locks.try_lock(str(tmp_path / ".other")) is None
    outer.release()
    assert not os.path.exists(path)


def test_a_sweep_skips_units_and_configurations_that_another_process_holds(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    with held_by_another_process(out / ".lock-N8-d3-shard0of1"):
        result = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["-N", "8,10", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "N8-d3-shard0of1: being trained by pid" in result.output
        assert (out / "N10-d3-K2-s0" / "transition.json").exists()
        assert not (out / "N8-d3-K2-s0").exists()
    # a process that split the sweep otherwise (no grouping) holding a configuration
    (out / "N8-d3-K2-s0").mkdir()
    with held_by_another_process(out / "N8-d3-K2-s0" / ".lock"):
        result = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["-N", "8,10", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "N8-d3-K2-s0 is being trained by pid" in result.output
        assert not (out / "N8-d3-K2-s0" / "transition.json").exists()
    result = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["-N", "8,10", "--out", str(out)])
    assert result.exit_code == 0 and (out / "N8-d3-K2-s0" / "transition.json").exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json(str(tmp_path / "x.json"), {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == mode


def test_click_usage_errors_are_one_line():
    for cli_, args in ((train_cli, ["--dim"]), (train_cli, ["--nope"]), (sweep_cli, ["--jobs", "0"]),
                       (plot_cli, ["/no/such/dir"]), (train_cli, ["--backend", "tpu"])):
        one_line_error(CliRunner().invoke(cli_, args))


# ------------------------------------------------------------- gmmdiff-predict inputs

predict_cli = load_script("gmmdiff-predict")


@pytest.mark.parametrize("content, match", [
    ("{}", "weights is missing"), ("[]", "expected a JSON object"),
    ('{"times": [], "source": "mc"}', "weights is missing"),
    ('{"weights": "abc", "times": [0.5], "source": "mc"}', 'weights is "abc", expected a list'),
    ('{"weights": [1.0], "times": [0.5], "source": "mc"}', "another time grid"),
    ('{"weights": [1.0], "times": [0.5], "source": "magic"}', "unknown source"),
])
def test_bad_fit_files_are_one_line(tmp_path, content, match):
    f = tmp_path / "fit.json"
    f.write_text(content)
    one_line_error(CliRunner().invoke(predict_cli, ["-N", "12", "-d", "3", "-K", "2", "--fit-file", str(f)]),
                   match)


def test_fit_files_with_nan_or_negative_weights_are_refused(tmp_path):
    from gmmdiff.model.process import time_grid
    t = time_grid().tolist()
    for bad, match in (([float("nan")] + [1.0] * 25, "it holds NaN, which gmmdiff never writes"),
                       ([-1.0] + [1.0] * 25, "weights[0] is -1.0, expected a finite number >= 0"),
                       ([0.0] * 26, "finite numbers >= 0, not all 0")):
        f = tmp_path / "fit.json"
        f.write_text(json.dumps({"weights": bad, "times": t, "source": "expected"}))
        one_line_error(CliRunner().invoke(predict_cli, ["-N", "12", "-d", "3", "-K", "2",
                                                        "--fit-file", str(f)]), match)


def test_folds_must_be_at_least_two(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    for bad in ("1", "0", "-3"):
        one_line_error(CliRunner().invoke(predict_cli, ["--fit", str(sweep), "--folds", bad]),
                       "--folds")
    assert sorted(p.name for p in sweep.iterdir()) == ["sweep.json"]


def test_predict_refuses_sizes_that_cannot_fit():
    one_line_error(CliRunner().invoke(predict_cli, ["-N", "100000000000", "-d", "10", "-K", "2"]), "GiB")


def test_two_identical_commands_at_once_one_runs_the_other_is_refused(tmp_path):
    import subprocess
    import sys
    import time
    from test_cli import ROOT
    out = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "bin", "gmmdiff-train"), *SMALL, "--steps", "30000",
           "--out", str(out)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (out / ".lock").exists() and time.time() < deadline:
            time.sleep(0.02)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert first.poll() is None, "the first finished before the second started"
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert f"is in use by pid {first.pid} on host" in lines[0]
    finally:
        assert first.wait(timeout=120) == 0
    assert json.loads((out / "index.json").read_text()) == {"complete": [2, 8]}
    assert not (out / ".lock").exists()


# ------------------------------------------------- one plan of sizes per sweep phase

REFINING_SWEEP = ["-N", "12", "-d", "4", "-K", "2", "--seeds", "0", "--coarse", "4", "--refine",
                  "2", "--steps", "600", "--target", "x0", "--lr", "1e-2", "--noise-draws", "2",
                  "--eval-samples", "16", "--eval-noise-draws", "2", "--quiet"]


def snapshot(top):
    """{relative path: bytes} of every file under ``top``."""
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def test_a_sweep_resumed_after_its_last_result_trains_exactly_the_recorded_plan(tmp_path):
    """The deterministic form of a kill between a configuration's last result and its
    transition.json: with transition.json (and baselines.json) deleted, the re-run trains
    nothing more and rewrites them byte for byte; the plan of sizes was recorded before
    each phase and the refinement added sizes (reported per configuration)."""
    out = tmp_path / "sweep"
    result = CliRunner().invoke(sweep_cli, REFINING_SWEEP + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    rd = out / "N12-d4-K2-s0"
    plan = json.loads((rd / "plan.json").read_text())
    assert plan["coarse"] == [3, 6, 9, 12] and len(plan["refine"]) == 2
    assert f"N12-d4-K2-s0: refinement adds 2 sizes ({plan['refine'][0]}, " in result.output
    sizes = sorted(plan["coarse"] + plan["refine"])
    assert json.loads((rd / "index.json").read_text()) == {"complete": sizes}
    before = snapshot(out)
    (rd / "transition.json").unlink()
    (rd / "baselines.json").unlink()
    result = CliRunner().invoke(sweep_cli, REFINING_SWEEP + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert snapshot(out) == before
    assert json.loads((rd / "transition.json").read_text())["M"] == sizes
    # (a refinement plan recorded with other sizes is refused since issue 32:
    # test_reliability_third.py, test_a_refinement_plan_that_disagrees_...)


@pytest.mark.parametrize("plan, match", [
    ({"coarse": [3, 6, 9]}, "records coarse sizes"),
    ({"coarse": [3, 6, 9, 12], "refine": "abc"}, 'refine is "abc", expected a list'),
    ({"coarse": [3, 6, 9, 12], "refine": [6]}, "not a gmmdiff plan"),
    ({"coarse": [3, 6, 9, 12], "refine": [-3]}, "refine[0] is -3, expected an integer >= 1"),
    ({"coarse": [3.0, 6.0, 9.0, 12.0]}, "coarse[0] is 3.0, expected an integer >= 1"),
    ([], "the file is [], expected a JSON object")])
def test_a_damaged_plan_is_one_line_and_changes_nothing(tmp_path, plan, match):
    out = tmp_path / "sweep"
    args = REFINING_SWEEP + ["--steps", "20", "--out", str(out)]
    assert CliRunner().invoke(sweep_cli, args).exit_code == 0
    rd = out / "N12-d4-K2-s0"
    (rd / "transition.json").unlink()
    write_json(str(rd / "plan.json"), plan)
    before = snapshot(out)
    result = CliRunner().invoke(sweep_cli, args)
    one_line_error(result, match)
    assert snapshot(out) == before


# ------------------------------------------------------ locks that cannot be redirected

@pytest.mark.parametrize("where", ["run", "sweep"])
def test_a_lock_path_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path, where):
    """A symbolic link at a lock's path -- to a victim's file, or dangling -- is refused
    in one line; the victim keeps its content and mode, nothing is created elsewhere."""
    victim = tmp_path / "victim.txt"
    victim.write_text("secret")
    victim.chmod(0o600)
    nowhere = tmp_path / "created-through-the-link"
    for target in (victim, nowhere):
        out = tmp_path / f"{where}-{target.name}"
        out.mkdir()
        if where == "run":
            (out / ".lock").symlink_to(target)
            result = CliRunner().invoke(train_cli, SMALL + ["--out", str(out)])
        else:
            (out / ".lock-N8-d3-shard0of1").symlink_to(target)
            result = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(out)])
        one_line_error(result, "is a symbolic link")
        assert victim.read_text() == "secret" and stat.S_IMODE(victim.stat().st_mode) == 0o600
        assert not nowhere.exists()
    # the sweep-creation lock too
    out = tmp_path / "new-sweep"
    out.mkdir()
    (out / ".lock-sweep").symlink_to(victim)
    one_line_error(CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(out)]), "symbolic link")
    assert listing(out) == [".lock-sweep"] and victim.read_text() == "secret"


def test_a_hard_linked_or_special_lock_file_is_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("secret")
    out = tmp_path / "run"
    out.mkdir()
    os.link(victim, out / ".lock")
    one_line_error(CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]), "hard links")
    assert victim.read_text() == "secret"
    (out / ".lock").unlink()
    os.mkfifo(out / ".lock")
    one_line_error(CliRunner().invoke(train_cli, SMALL + ["--out", str(out)]), "not a regular file")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_lock_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        lock = locks.try_lock(str(tmp_path / ".lock"))
        assert stat.S_IMODE((tmp_path / ".lock").stat().st_mode) == mode
        lock.release()
    finally:
        os.umask(old)
    assert not (tmp_path / ".lock").exists()


def test_a_symlinked_run_directory_inside_a_sweep_is_refused(tmp_path):
    out = tmp_path / "sweep"
    assert CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(out)]).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    (out / "N8-d3-K2-s0").rename(elsewhere)
    (out / "N8-d3-K2-s0").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    one_line_error(CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--out", str(out)]), "symbolic link")
    assert snapshot(elsewhere) == before


def test_two_different_sweeps_started_together_on_a_new_directory_one_is_refused(tmp_path):
    """sweep.json is checked and created under the sweep's lock: while another process
    sets the directory up, a second sweep waits, then sees its sweep.json and is refused."""
    out = tmp_path / "sweep"
    out.mkdir()
    from gmmdiff.experiments.sweep import units as sweep_mod
    from gmmdiff.experiments.sweep.spec import SweepSpec
    from gmmdiff.experiments.sweep.units import open_sweep
    with held_by_another_process(out / ".lock-sweep"):
        old = sweep_mod.SWEEP_LOCK_WAIT_S
        sweep_mod.SWEEP_LOCK_WAIT_S = 0.2
        try:
            with pytest.raises(ValueError, match="being set up by pid"):
                open_sweep(str(out), SweepSpec(samples=(8,)), "numpy")
        finally:
            sweep_mod.SWEEP_LOCK_WAIT_S = old
        assert not (out / "sweep.json").exists()
    open_sweep(str(out), SweepSpec(samples=(8,)), "numpy")
    with pytest.raises(ValueError, match="holds a different sweep"):
        open_sweep(str(out), SweepSpec(samples=(10,)), "numpy")
    assert listing(out) == ["sweep.json"]


# ----------------------------------------- options without effect, memory, non-regular

@pytest.mark.parametrize("cli, args, match", [
    ("train", ["--template-file", "x.npy"], "--template-file has no effect with --model gmm"),
    ("train", ["--model", "templates", "-d", "4"], "--dim has no effect with --model templates"),
    ("train", ["--model", "templates", "--image-size", "4", "--colors", "2", "--dim", "3"], "--dim"),
    ("train", ["--init", "prior", "--init-var", "0.1"], "--init-var has no effect with --init prior"),
    ("train", ["--init", "gaussian", "--init-noise-var", "0.1"], "--init-noise-var has no effect"),
    ("train", ["--init-scale", "2"], "--init-scale has no effect with --init pmem"),
    ("train", ["--image-size", "4"], "--image-size has no effect with --model gmm"),
    ("train", ["--out", ""], "is empty"),
    ("sweep", ["--init", "prior", "--init-var", "0.1"], "--init-var has no effect"),
    ("sweep", ["--summary", "."], "has no effect with --summary"),
    ("predict", ["--fit", ".", "--fit-file", os.path.abspath(__file__)], "--fit-file has no effect with --fit"),
    ("predict", ["--fit", ".", "-N", "20"], "--samples has no effect with --fit"),
    ("predict", ["--folds", "3"], "--folds has no effect without --fit"),
    ("predict", ["--split-seed", "3"], "--split-seed has no effect without --fit"),
    ("predict", ["--source", "mc"], "--source has no effect without --fit"),
    ("predict", ["--fits-dir", "."], "--fits-dir has no effect without --transfer"),
    ("predict", ["--transfer", ".", "--data-var", "2"], "--data-var has no effect with --transfer"),
    ("predict", ["--fit", ".", "--split-seed", "-1"], "-1 is below 0"),
    ("plot", [".", "--figure1"], "not both"),
    ("plot", [".", "-M", "abc"], "--model-sizes has no effect without --figure1"),
    ("plot", [".", "--out", "x.png"], "--out has no effect without --figure1"),
    ("plot", ["--figure1", "--out", "x.txt"], "the suffix must name a format (png, pdf, svg)"),
    ("plot", ["--figure1", "--out", ""], "is empty"),
])
def test_options_without_effect_are_refused_in_one_line(cli, args, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command = {"train": train_cli, "sweep": sweep_cli, "predict": predict_cli, "plot": plot_cli}[cli]
    base = {"train": SMALL, "sweep": TINY_SWEEP}.get(cli, [])
    if cli == "sweep" and "--summary" in args:
        base = ["--coarse", "3"]
    before = listing(tmp_path)
    one_line_error(CliRunner().invoke(command, base + args), match)
    assert listing(tmp_path) == before


def test_figure1_sizes_and_draws_are_checked_before_any_allocation(tmp_path):
    out = tmp_path / "f.png"
    one_line_error(CliRunner().invoke(plot_cli, ["--figure1", "-N", "100000000", "-d", "1000",
                                                 "--out", str(out)]), "GiB")
    one_line_error(CliRunner().invoke(plot_cli, ["--figure1", "--noise-draws", "100000000000",
                                                 "--out", str(out)]), "above the limit")
    assert not out.exists()


def test_non_regular_files_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "fit.json"
    os.mkfifo(fifo)
    one_line_error(CliRunner().invoke(predict_cli, ["-N", "12", "-d", "3", "-K", "2", "--fit-file",
                                                    str(fifo)]), "FIFO")
    out = tmp_path / "run"
    one_line_error(CliRunner().invoke(train_cli, TEMPLATES + ["--template-file", str(fifo),
                                                              "--out", str(out)]), "FIFO")
    assert not out.exists()
    one_line_error(CliRunner().invoke(train_cli, TEMPLATES + ["--template-file", "/dev/zero",
                                                              "--out", str(out)]), "device")


def test_a_fit_that_cannot_be_made_writes_nothing(tmp_path):
    """predict --fit on a sweep with one measured transition, or with a bad split seed,
    refuses in one line and writes no summary.json."""
    out = tmp_path / "sweep"
    assert CliRunner().invoke(sweep_cli, REFINING_SWEEP + ["--out", str(out)]).exit_code == 0
    before = snapshot(out)
    one_line_error(CliRunner().invoke(predict_cli, ["--fit", str(out), "--source", "mc"]), "at least 2")
    assert snapshot(out) == before


def test_a_sweep_created_between_the_checks_two_looks_reads_as_that_sweep(tmp_path, monkeypatch):
    """The check of a sweep directory looks for sweep.json, then lists the directory: a
    sweep that another process creates in between (sweep.json, then its first run
    directory) must be refused as a different sweep, not as a directory of something
    else (two sweeps started together once got that message)."""
    from gmmdiff.experiments.sweep import units as sweep_mod
    from gmmdiff.experiments.sweep.spec import SweepSpec
    from gmmdiff.experiments.sweep.units import open_sweep
    out = tmp_path / "sweep"
    out.mkdir()
    other = tmp_path / "other"
    open_sweep(str(other), SweepSpec(samples=(10,)), "numpy")
    real = sweep_mod.leftovers_only

    def racing(directory):                       # the other process, between the looks
        if not (out / "sweep.json").exists():
            (out / "sweep.json").write_bytes((other / "sweep.json").read_bytes())
            (out / "N10-d3-K2-s0").mkdir()
        return real(directory)
    monkeypatch.setattr(sweep_mod, "leftovers_only", racing)
    with pytest.raises(ValueError, match="holds a different sweep"):
        open_sweep(str(out), SweepSpec(samples=(8,)), "numpy")


def test_two_different_sweeps_started_at_once_on_a_new_directory_one_runs(tmp_path):
    """Two processes of different sweeps on one new directory: exactly one runs, the
    other is refused in one line, and the directory holds one sweep's configurations.
    (Before sweep.json was created under a lock, both ran in 5 of 23 tries.)"""
    import subprocess
    import sys
    from test_cli import ROOT
    out = tmp_path / "sweep"
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmds = [[sys.executable, os.path.join(ROOT, "bin", "gmmdiff-sweep"), *TINY_SWEEP, "--steps", s,
             "--out", str(out)] for s in ("20", "21")]
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "holds a different sweep" in refused and len(refused.strip().splitlines()) == 1
    winner = [s for s, (code, _) in zip(("20", "21"), results) if code == 0][0]
    assert str(json.loads((out / "sweep.json").read_text())["identity"]["base"]["steps"]) == winner
    assert sorted(p.name for p in out.iterdir()) == ["N8-d3-K2-s0", "sweep.json"]
