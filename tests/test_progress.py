"""Progress where stderr is not a terminal: steady lines for training and sweeps."""
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff.cli.progress import StepProgress, duration, interval_seconds

from test_cli import ROOT, SMALL, load_script

train_cli = load_script("gmmdiff-train")
sweep_cli = load_script("gmmdiff-sweep")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_step_progress_prints_at_a_steady_interval_with_eta_and_mean_loss():
    clock, out = Clock(), io.StringIO()
    p = StepProgress(1000, "training 3 model sizes", stream=out, tty=False, interval=30,
                     clock=clock)
    for step in range(10, 1001, 10):        # 10 steps per second, a report every 10 steps
        clock.t = step / 10.0
        p(step, np.array([1.0, 2.0, 6.0]))
    lines = out.getvalue().splitlines()
    # the first report, then one every 30 s of the 100 s, then the last step
    assert [int(re.search(r"step (\d+)/1000", ln).group(1)) for ln in lines] == [10, 310, 610, 910, 1000]
    assert lines[1] == ("training 3 model sizes: step 310/1000 (31%), elapsed 0:31, ETA 1:09, "
                        "mean loss 3")
    assert lines[-1].endswith("ETA 0:00, mean loss 3")
    assert "ETA ?" in lines[0]          # one report: no rate yet (its time holds the start-up)


def test_a_resumed_run_takes_its_rate_from_its_own_steps():
    clock, out = Clock(), io.StringIO()
    p = StepProgress(1000, "t", stream=out, tty=False, interval=0, clock=clock)
    clock.t = 1.0
    p(510, [0.0])                    # resumed at 500: 10 steps in the first second
    clock.t = 2.0
    p(520, [0.0])
    assert "ETA 0:48" in out.getvalue().splitlines()[-1]      # 480 steps at 10 per second


def test_durations_and_the_interval_variable(monkeypatch):
    assert [duration(s) for s in (0, 61, 3723, 200 * 3600, None)] == \
        ["0:00", "1:01", "1:02:03", "200 hours", "?"]
    monkeypatch.setenv("GMMDIFF_PROGRESS_SECONDS", "5")
    assert interval_seconds() == 5.0
    monkeypatch.setenv("GMMDIFF_PROGRESS_SECONDS", "soon")
    with pytest.raises(ValueError, match="GMMDIFF_PROGRESS_SECONDS='soon'"):
        interval_seconds()


def test_train_prints_progress_lines_to_a_log_and_quiet_silences_them(tmp_path):
    args = [a for a in SMALL if a != "--quiet"]
    env = {"GMMDIFF_PROGRESS_SECONDS": "0"}
    result = CliRunner().invoke(train_cli, args + ["--out", str(tmp_path / "r")], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) >= 5
    assert all(re.fullmatch(r"training 2 model sizes: step \d+/60 \(\d+%\), elapsed \d+:\d\d, "
                            r"ETA (\d+:\d\d|\?), mean loss \S+", ln) for ln in lines), lines
    assert lines[-1].startswith("training 2 model sizes: step 60/60 (100%)")
    quiet = CliRunner().invoke(train_cli, SMALL + ["--out", str(tmp_path / "q")], env=env)
    assert quiet.exit_code == 0 and quiet.stderr == ""


SWEEP = ["-N", "8,10", "-d", "3", "-K", "2,3", "--seeds", "0", "--coarse", "2", "--refine", "1",
         "--steps", "40", "--noise-draws", "2", "--eval-samples", "6", "--eval-noise-draws", "2"]


def test_sweep_estimates_then_counts_units_and_configurations(tmp_path):
    out = tmp_path / "sw"
    env = {"GMMDIFF_PROGRESS_SECONDS": "0"}
    result = CliRunner().invoke(sweep_cli, SWEEP + ["--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    assert re.match(r"4 configurations: N 8,10 x d 3 x K 2,3 x 1 seed, 2 noise draws, 40 steps; "
                    r"to train here: 2 units, 4 configurations, estimated \d+:\d\d of training "
                    r"\(from timing \d+ steps of N10-d3's 4 coarse models", err[0]), err[0]
    counts = [re.match(r"sweep: units (\d)/2, configurations (\d)/4 done", ln).groups()
              for ln in err[1:]]
    assert counts[-1] == ("2", "4") and ("1", "2") in counts, err
    assert any("N10-d3-shard0of1 coarse step" in ln for ln in err), err
    assert "sweep: 4/4 configurations complete" in result.stdout
    again = CliRunner().invoke(sweep_cli, SWEEP + ["--out", str(out)], env=env)
    assert again.exit_code == 0, again.output
    assert "sweep: nothing to train, 4/4 configurations were already complete" in again.stdout
    assert "estimated" not in again.stderr
    quiet = CliRunner().invoke(sweep_cli, SWEEP + ["--quiet", "--out", str(out)], env=env)
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_workers_progress_is_counted_by_the_parent(tmp_path):
    """The workers run --quiet; their parent counts their units from the directory."""
    out = tmp_path / "sw"
    cmd = [sys.executable, os.path.join(ROOT, "bin", "gmmdiff-sweep"), *SWEEP, "--jobs", "2",
           "--out", str(out)]
    done = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=ROOT, GMMDIFF_PROGRESS_SECONDS="0"),
                          check=True, capture_output=True, text=True)
    err = done.stderr.splitlines()
    assert "estimated" in err[0] and not any(ln.startswith("[worker") for ln in err), err
    assert "of training shared by 2 workers, if each has a core of its own" in err[0]
    assert err[-1].startswith("sweep: units 2/2, configurations 4/4 done (100% of the work)"), err


def test_no_options_on_the_cpu_names_the_paper_grid_and_its_duration(tmp_path):
    out = tmp_path / "sw"
    result = CliRunner().invoke(sweep_cli, ["--out", str(out)])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert re.match(r"Error: without --preset, gmmdiff-sweep runs the paper's grid \(64 "
                    r"configurations: N 50,100,150,200 x d 30,40,50,60 x K 3,6,9,12 x 1 seed, "
                    r"100 noise draws, 50,000 steps\), a GPU job: about [\d,:]+( hours)? of "
                    r"training on this CPU", lines[0]), lines[0]
    assert "--preset paper" in lines[0] and "--preset cpu" in lines[0]
    assert not out.exists()
