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


# ---------------------------------------------------------------- on a terminal

class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_terminal_bar_redraws_one_line_in_place_and_keeps_printed_lines_above_it():
    from gmmdiff.cli.terminal import TerminalBar
    clock, out = Clock(), FakeTerminal()
    bar = TerminalBar("sweep", out, columns=120, min_interval=1.0, clock=clock)
    bar.draw(0.5, "0:10", "0:10", "units 1/2; N10-d3 coarse step 20/40")
    assert out.getvalue() == ("\rsweep  [" + "#" * 15 + "-" * 15 + "]   50%  elapsed 0:10, ETA 0:10  "
                              "units 1/2; N10-d3 coarse step 20/40")
    clock.t = 0.5
    bar.draw(0.6, "0:10", "0:09", "later")                 # within min_interval: not drawn
    assert "later" not in out.getvalue()
    bar.draw(0.6, "0:10", "0:09", "x" * 200, force=True)     # never wider than the terminal
    assert len(out.getvalue().split("\r")[-1]) == 119
    printed = []
    bar.around(lambda line: printed.append((line, out.getvalue())))("training N8-d3-K2-s0")
    line, screen = printed[0]
    assert screen.endswith("\r" + " " * 119 + "\r")           # the bar erased before the line
    assert out.getvalue().split("\r")[-1].startswith("sweep  [##")  # and drawn again after it
    bar.close()
    assert out.getvalue().endswith("\n")
    bar.around(printed.append)("after the end")              # a closed bar is not drawn again
    assert out.getvalue().endswith("\n")


def test_fit_progress_draws_a_bar_on_a_terminal():
    from gmmdiff.cli.progress import FitProgress
    out, said = FakeTerminal(), []
    p = FitProgress("fitting mc", first="fitting source mc: ...", echo=said.append, stream=out,
                    columns=120)
    for k in range(0, 7):
        p(k, 6)
    states = out.getvalue().split("\r")[1:]
    assert said == ["fitting source mc: ..."] and len(states) == 7
    for k, state in enumerate(states):
        assert re.fullmatch(rf"fitting mc  \[[#-]{{30}}\] +{round(100 * k / 6)}%  elapsed \d+:\d\d, "
                            rf"ETA (\d+:\d\d|\?)  {k}/6 fits\s*", state), state
    assert states[-1].endswith("\n")
    logged = io.StringIO()                                    # not a terminal: lines, no bar
    FitProgress("fitting mc", stream=logged, echo=said.append)(0, 6)
    assert logged.getvalue() == ""


def test_the_parent_of_workers_sees_their_units_in_training_from_the_directory(tmp_path):
    """A unit whose lock file exists is in training; its checkpoint's step counts
    towards the work done and is named; the count never goes back between phases."""
    from gmmdiff.cli.progress import SweepProgress, unit_cost
    from gmmdiff.experiments.sweep.plans import coarse_sizes
    from gmmdiff.training.config import TrainConfig
    cfgs = [TrainConfig(dim=3, components=k, samples=8, steps=40, noise_draws=2) for k in (2, 3)]
    units = [("N8-d3-shard0of1", cfgs)]
    p = SweepProgress(units, str(tmp_path), 2, 1, interval=0)
    assert p.in_training() == (0.0, "")
    (tmp_path / ".lock-N8-d3-shard0of1").write_text("{}")
    assert p.in_training() == (0.0, "training N8-d3 coarse started")
    np.savez(tmp_path / "checkpoint-N8-d3-shard0of1-coarse.npz", step=np.asarray(30))
    c, r = unit_cost(cfgs, coarse_sizes(8, 2), 1)
    assert p.in_training() == (pytest.approx(c * 30 / 40), "training N8-d3 coarse step 30/40")
    os.unlink(tmp_path / "checkpoint-N8-d3-shard0of1-coarse.npz")      # between the phases
    assert p.in_training()[0] == pytest.approx(c * 30 / 40)
    np.savez(tmp_path / "checkpoint-N8-d3-shard0of1-refine.npz", step=np.asarray(10))
    assert p.in_training() == (pytest.approx(c + r * 10 / 40), "training N8-d3 refinement step 10/40")
    said = []
    p.echo = said.append
    p.report(from_directory=True)
    assert said[0].endswith("; training N8-d3 refinement step 10/40")
    assert re.match(r"sweep: units 0/1, configurations 0/2 done \((\d+)% of the work\)", said[0])


def run_on_a_terminal(cmd, env):
    """Run ``cmd`` with its stderr on a pseudo-terminal (stdout a pipe): (exit code,
    stdout, stderr)."""
    import pty
    import threading
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                            env=env)
    os.close(slave)
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:              # the other end closed (Linux: EIO)
                return
            if not data:
                return
            chunks.append(data)
    reader = threading.Thread(target=read)
    reader.start()
    out = proc.stdout.read()
    proc.wait(timeout=300)
    reader.join()
    os.close(master)
    return proc.returncode, out.decode(), b"".join(chunks).decode().replace("\r\n", "\n")


BAR = (r"sweep  \[[#-]{30}\] +(\d+)%  elapsed \d+:\d\d, ETA (?:\d+:\d\d|\?)(?: \(estimate\))?  "
       r"units (\d)/2, configurations (\d)/4(?:; (.*))?")


@pytest.mark.parametrize("jobs", [[], ["--jobs", "2"]])
def test_sweep_draws_one_bar_on_a_terminal(tmp_path, jobs):
    """On a terminal gmmdiff-sweep draws one bar (units, configurations, elapsed, ETA,
    the unit in training) instead of the log lines; the parent of --jobs workers draws
    it from the directory and prints its workers' lines above it."""
    cmd = [sys.executable, os.path.join(ROOT, "bin", "gmmdiff-sweep"), *SWEEP, *jobs,
           "--steps", "200", "--checkpoint-every", "50", "--out", str(tmp_path / "sw")]
    env = dict(os.environ, PYTHONPATH=ROOT, COLUMNS="250", GMMDIFF_PROGRESS_SECONDS="0")
    code, out, err = run_on_a_terminal(cmd, env)
    assert code == 0, err
    first, rest = err.split("\n", 1)
    assert "estimated" in first and "sweep: units" not in err          # no log lines
    states = [s.strip() for s in rest.split("\r") if s.strip()]
    matches = [re.fullmatch(BAR, s) for s in states]
    assert all(matches), [s for s, m in zip(states, matches) if not m]
    assert [m.groups()[:3] for m in matches][-1] == ("100", "2", "4")
    # the last state stays (padded with spaces over a longer state before it)
    assert rest.rstrip(" \n").endswith("configurations 4/4") and rest.endswith("\n")
    running = [m.group(4) for m in matches if m.group(4)]
    unit = r"N(8|10)-d3 (coarse|refinement) (step \d+/200|started)"
    assert running and all(re.fullmatch((rf"training {unit}(, {unit})*" if jobs else unit), w)
                           for w in running), running
    assert "\r" not in out and "sweep: 4/4 configurations complete" in out or jobs
    if jobs:
        assert "[worker 0] " in out and "[worker" not in err and "2 workers done" in out


def test_predict_fit_draws_a_bar_on_a_terminal(tmp_path):
    import json
    from gmmdiff.analysis.fit_files import SHIPPED
    summary = json.load(open(os.path.join(SHIPPED, "summary.json")))
    summary["configs"] = summary["configs"][:12]              # 6 settings: seconds, not tens
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    cmd = [sys.executable, os.path.join(ROOT, "bin", "gmmdiff-predict"), "--fit", str(tmp_path),
           "--source", "simple", "--folds", "2"]
    code, out, err = run_on_a_terminal(cmd, dict(os.environ, PYTHONPATH=ROOT, COLUMNS="120"))
    assert code == 0, err
    first, rest = err.split("\n", 1)
    assert first.startswith("fitting source simple: ")
    states = [s for s in rest.split("\r") if s]
    assert [re.match(r"fitting simple  \[[#-]+\] +\d+%  elapsed \d+:\d\d, ETA \S+  (\d)/6 fits",
                     s).group(1) for s in states] == [str(k) for k in range(7)]
    assert rest.endswith("6/6 fits\n") and "saved" in out and "\r" not in out
