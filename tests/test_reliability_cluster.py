"""Reliability, fourth pass (issue 37, items 1-4): the cluster path. The batch script of
``gmmdiff-sweep --sbatch`` runs nothing but gmmdiff whatever the names in it, and is
written only once every path and value in it is checked; ``--shard slurm`` checks the
Slurm variables it reads; SIGTERM -- twice, at start-up, to a ``--jobs`` parent, to
``gmmdiff-train`` -- always ends with the work saved and exit status 75.

Each test here failed on the code before the issue's changes (the probe behind the
figures in docs/reliability.rst: ``benchmarks/cluster_probe.py``)."""
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from gmmdiff.cli import slurm, slurm_checks
from gmmdiff.experiments.sweep.spec import slurm_array_task

from test_reliability import one_line_error, snapshot
from test_sbatch import SMALL, SWEEP, directives, task_command
from test_sweep import ROOT, load_script

sweep_cli = load_script("gmmdiff-sweep")
PREDICT = os.path.join(ROOT, "bin", "gmmdiff-predict")

# names that a shell would run something from, were they not quoted: command
# substitutions, backquotes, quotes that close the quoting, ';', spaces, a leading '-'
HOSTILE = ["$(touch PWNED)", "`touch PWNED`", "it's; touch PWNED; '", "a b  c", "-rf",
           "${IFS}touch${IFS}PWNED", "%A_%a 100%", "&& touch PWNED &&", "é ü 中"]

# what the fake Slurm commands record: their arguments, NUL-separated, and sbatch's input
FAKE = r"""#!/bin/bash
n=$(ls "$RECORD" | grep -c "^$(basename "$0")-.*\.args$")
printf '%s\0' "$@" > "$RECORD/$(basename "$0")-$n.args"
if [ "$(basename "$0")" = sbatch ]; then cat > "$RECORD/sbatch-$n.stdin"; echo $((100 + n)); fi
if [ "$(basename "$0")" = srun ]; then exit 75; fi
exit 0
"""


def write_script(tmp_path, args, cwd):
    """gmmdiff-sweep SMALL ARGS --time 10 run in ``cwd``: the result."""
    here = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(sweep_cli, SMALL + ["--time", "10", *args])
    finally:
        os.chdir(here)


def fake_slurm(tmp_path):
    """A directory of fake sbatch, srun and scontrol, and the one they record into."""
    bin_dir, record = tmp_path / "fakebin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    for name in ("sbatch", "srun", "scontrol"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    return bin_dir, record


def recorded(record, name):
    """[arguments of each call of ``name``], in call order."""
    calls = sorted(p for p in os.listdir(record) if p.startswith(f"{name}-") and p.endswith(".args"))
    return [(record / p).read_bytes().decode().split("\0")[:-1] for p in calls]


def pwned(top):
    return [os.path.join(r, f) for r, _, fs in os.walk(top) for f in fs if f == "PWNED"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_quoted_and_the_script_runs_nothing_but_gmmdiff(name, tmp_path):
    """A sweep directory, a script, a log directory and a current directory named to
    inject a command: the script is written, and run by bash -- as the submitter and as
    an array task, with fake sbatch/srun/scontrol that record what they are given --
    it creates nothing and passes each name through whole: sbatch gets the script, srun
    the sweep command with --out NAME, the summary job gmmdiff-sweep --summary NAME and
    gmmdiff-predict --fit NAME, and the #SBATCH lines the directories as they are."""
    top = tmp_path / name
    top.mkdir()
    out, script = str(top / name), str(top / f"{name}.sh")
    logs = out + "-logs"
    result = write_script(tmp_path, ["--out", out, "--sbatch", script], top)
    assert result.exit_code == 0, result.output
    text = open(script, encoding="utf-8").read()
    subprocess.run(["bash", "-n", script], check=True)
    head = dict(d.split("=", 1) for d in directives(text) if "=" in d)
    for key, want in (("--chdir", str(top)), ("--output", os.path.join(logs, "task-%A_%a.out"))):
        (value,) = shlex.split(head[key])                      # as sbatch reads it back
        assert value == (want.replace(logs, logs.replace("%", "%%")) if key == "--output" else want)
    bin_dir, record = fake_slurm(tmp_path)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RECORD=str(record))
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    submit = subprocess.run(["bash", script], cwd=top, env=env, capture_output=True, text=True)
    assert submit.returncode == 0, submit.stderr
    task = dict(env, SLURM_JOB_ID="7", SLURM_ARRAY_JOB_ID="7", SLURM_ARRAY_TASK_ID="1",
                SLURM_ARRAY_TASK_COUNT="2")
    run = subprocess.run(["bash", script], cwd=top, env=task, capture_output=True, text=True)
    assert run.returncode == 0 and "requeueing" in run.stdout, run.stdout + run.stderr
    assert pwned(tmp_path) == [] and os.path.isdir(logs)
    assert recorded(record, "sbatch")[0] == ["--parsable", "--", script]
    assert recorded(record, "sbatch")[1] == ["--parsable", "--dependency=afterok:100"]
    (srun,) = recorded(record, "srun")
    assert srun == task_command(text) and srun[:2] == [sys.executable, SWEEP]
    assert srun[-4:] == ["--out", out, "--shard", "slurm"]
    assert recorded(record, "scontrol") == [["requeue", "7_1"]]
    summary = (record / "sbatch-1.stdin").read_text().splitlines()
    commands = [shlex.split(ln) for ln in summary if ln and not ln.startswith("#") and ln != "set -e"]
    assert commands == [[sys.executable, SWEEP, "--summary", out], [sys.executable, PREDICT, "--fit", out]]


def test_the_summary_job_run_by_bash_runs_only_gmmdiff(tmp_path):
    """The summary job's script (sbatch's input), run by bash with the nastiest name:
    gmmdiff-sweep --summary tabulates the sweep directory of that name, and nothing
    else runs."""
    name = "$(touch PWNED) `touch PWNED` it's"
    top = tmp_path / "top"
    top.mkdir()
    out = str(top / name)
    result = write_script(tmp_path, ["--out", out, "--sbatch", str(top / "s.sh")], top)
    assert result.exit_code == 0, result.output
    bin_dir, record = fake_slurm(tmp_path)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RECORD=str(record))
    env.pop("SLURM_JOB_ID", None)
    subprocess.run(["bash", str(top / "s.sh")], cwd=top, env=env, check=True, capture_output=True)
    done = subprocess.run(["bash", str(record / "sbatch-1.stdin")], cwd=top, env=env,
                          capture_output=True, text=True)
    assert f"written to {out}: summary.csv" in done.stdout, done.stdout + done.stderr
    assert pwned(tmp_path) == []


@pytest.mark.parametrize("option, value, match", [
    ("--out", "sw\ntouch PWNED", "--out"),
    ("--sbatch", "s.sh\ntouch PWNED", "--sbatch"),
    ("--logs", "logs\rx", "--logs"),
    ("--out", "sw\x1b[2J", "control character"),
    ("--logs", 'lo"gs', "--logs"),
    ("--logs", "lo\\gs", "--logs"),
    ("--logs", "lo#gs", "--logs"),
    ("--out", 'sw"x', "the log directory"),
    ("--sbatch-option", "--comment=a\tb", "--sbatch-option"),
])
def test_names_a_script_cannot_carry_are_refused_in_one_line(option, value, match, tmp_path):
    """A newline or another control character anywhere, and a double quote, a
    backslash or a '#' in a path of an #SBATCH line: one line naming the option,
    nothing written."""
    (tmp_path / "top").mkdir()
    args = {"--out": ["--out", "sw", "--sbatch", "s.sh"], "--sbatch": ["--out", "sw"],
            "--logs": ["--out", "sw", "--sbatch", "s.sh"],
            "--sbatch-option": ["--out", "sw", "--sbatch", "s.sh"]}[option]
    result = write_script(tmp_path, args + [option, value], tmp_path / "top")
    assert match in one_line_error(result), result.output
    assert os.listdir(tmp_path / "top") == []


def test_a_current_directory_sbatch_cannot_carry_is_refused(tmp_path):
    top = tmp_path / 'we"ird'
    top.mkdir()
    one_line_error(write_script(tmp_path, ["--out", str(tmp_path / "sw"), "--sbatch", "s.sh"],
                                top), "the current directory")
    assert os.listdir(top) == [] and not (tmp_path / "sw").exists()


# ---------------------------------------------------------------- checked before written

@pytest.mark.parametrize("args, match", [
    (["--logs", "{t}/missing/logs"], "directory {t}/missing does not exist"),
    (["--logs", "{t}/file"], "Directory '{t}/file' is a file"),              # (click's check)
    (["--sbatch", "{t}/missing/s.sh"], "directory {t}/missing does not exist"),
    (["--out", "{t}/file"], "Directory '{t}/file' is a file"),
    (["--out", "{t}/missing/sw"], "directory {t}/missing does not exist"),
    (["--logs", "{t}/ro/logs"], "directory {t}/ro is not writable"),
    (["--sbatch", "{t}/ro/s.sh"], "directory {t}/ro is not writable"),
    (["--array-tasks", "3"], "--array-tasks 3 is more than the sweep's 2 units"),
    (["--cpus-per-task", "100000"], "--cpus-per-task 100000 is more cores than any node has"),
    (["--time", "400-0"], "longer than 365 days"),
    (["--time", "4:99:00"], "--time '4:99:00' not understood"),
    (["--time", "\uff19\uff10"], "not understood"),               # fullwidth digits
])
def test_every_path_and_value_is_checked_before_anything_is_written(args, match, tmp_path,
                                                                    monkeypatch):
    """Nothing -- no sweep.json, no log directory, no script, no missing parent -- is
    created before a refusal: an unwritable or missing log location, a script in a
    missing directory, a sweep directory that is a file, and values Slurm cannot
    take."""
    t = tmp_path / "t"
    t.mkdir()
    (t / "file").write_text("mine\n")
    (t / "ro").mkdir()
    (t / "ro").chmod(0o555)
    real = os.access
    monkeypatch.setattr(slurm_checks.os, "access",        # root may write anywhere: as a user
                        lambda p, mode: False if str(p) == str(t / "ro") else real(p, mode))
    defaults = {"--out": str(t / "sw"), "--sbatch": str(t / "s.sh")}
    args = [a.format(t=t) for a in args]
    for opt, value in defaults.items():
        if opt not in args:
            args += [opt, value]
    before = snapshot(t), sorted(str(p) for p in t.rglob("*"))
    assert match.format(t=t) in one_line_error(write_script(tmp_path, args, t))
    assert (snapshot(t), sorted(str(p) for p in t.rglob("*"))) == before


def test_an_array_is_sized_within_slurms_default_max_array_size():
    assert slurm_checks.array_size(None, 64) == 64 and slurm_checks.array_size(8, 64) == 8
    assert slurm_checks.array_size(None, 5000) == slurm_checks.MAX_ARRAY_TASKS == 1001
    with pytest.raises(ValueError, match="more than Slurm's default MaxArraySize allows"):
        slurm_checks.array_size(1002, 5000)
    with pytest.raises(ValueError, match="more than the sweep's 1 unit: "):
        slurm_checks.array_size(2, 1)


# ---------------------------------------------------------------- --shard slurm

def env(**kw):
    return {f"SLURM_ARRAY_TASK_{k}": str(v) for k, v in kw.items()}


@pytest.mark.parametrize("variables, match", [
    (env(ID=0, MIN=0, MAX=3, STEP=0, COUNT=4), "SLURM_ARRAY_TASK_STEP='0'"),   # was ZeroDivisionError
    (env(ID=0, MIN=0, MAX=3, STEP=0), "SLURM_ARRAY_TASK_STEP='0'"),
    (env(ID=-1), "SLURM_ARRAY_TASK_ID='-1'"),                                # was task 0 of 1
    (env(ID=10 ** 23), f"SLURM_ARRAY_TASK_ID='{10 ** 23}'"),                 # was task 0 of 1
    (env(ID=3), "SLURM_ARRAY_TASK_MIN, which is not set"),                   # was task 0 of 1
    (env(ID=3, MIN=0), "SLURM_ARRAY_TASK_MAX, which is not set"),
    (env(ID=7, MIN=0, MAX=3, COUNT=4), "SLURM_ARRAY_TASK_ID=7 is outside"),
    (env(ID=1, MIN=4, MAX=0, COUNT=4), "is outside"),
    (env(ID=1, MIN=0, MAX=6, STEP=2, COUNT=4), "evenly spaced"),             # off the step
    (env(ID=0, MIN=0, MAX=3, COUNT=0), "SLURM_ARRAY_TASK_COUNT='0'"),
    (env(ID=0, MIN=0, MAX=3, COUNT=9), "evenly spaced"),
    (env(ID="1.0", MIN=0, MAX=3), "SLURM_ARRAY_TASK_ID='1.0'"),
    (env(ID="\u0663", MIN=0, MAX=3), "SLURM_ARRAY_TASK_ID='\u0663'"),         # an Arabic-Indic 3
    (env(ID=" 1", MIN=0, MAX=3), "SLURM_ARRAY_TASK_ID=' 1'"),
    (env(ID=0, MIN="", MAX=3), "SLURM_ARRAY_TASK_MIN=''"),
    (env(ID=0, MIN=0, MAX=3, STEP="+1"), "SLURM_ARRAY_TASK_STEP='+1'"),
])
def test_slurm_variables_are_checked_as_slurm_defines_them(variables, match, tmp_path):
    """Each bad variable: one line naming it and its value, exit 2, nothing written
    (the array task of Slurm's own variables runs, test_sbatch.py)."""
    with pytest.raises(ValueError, match="--shard slurm"):
        slurm_array_task(variables)
    out = tmp_path / "sw"
    clean = {k: None for k in os.environ if k.startswith("SLURM_")}
    result = CliRunner().invoke(sweep_cli, SMALL + ["--out", str(out), "--shard", "slurm"],
                                env={**clean, **variables})
    assert match in one_line_error(result)
    assert not out.exists()


# ---------------------------------------------------------------- signals

TRAIN = os.path.join(ROOT, "bin", "gmmdiff-train")
TRAIN_ARGS = ["--dim", "3", "--components", "2", "--samples", "10", "--model-sizes", "2,5,10",
              "--steps", "1000", "--noise-draws", "2", "--eval-samples", "8",
              "--eval-noise-draws", "2", "--eval-steps", "log:4", "--checkpoint-every", "100"]
PROGRESS = dict(os.environ, GMMDIFF_PROGRESS_SECONDS="0")     # a progress line every logged step


def holds_sigterm(pid):
    """Whether process ``pid`` has a handler for SIGTERM (SigCgt of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as fh:
        mask = next(int(ln.split()[1], 16) for ln in fh if ln.startswith("SigCgt:"))
    return bool(mask >> (signal.SIGTERM - 1) & 1)


def start(cmd, **kw):
    return subprocess.Popen(cmd, env=PROGRESS, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def default_sigint():
    """In the child before exec: SIGINT's default action, so that Python installs its
    KeyboardInterrupt handler (a suite started in the background by a shell inherits
    SIGINT ignored, and Python then leaves it ignored: Ctrl-C would do nothing)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(stream, text):
    lines = []
    for line in stream:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} never came:\n{''.join(lines)}")


def wait_for_step(stream, minimum):
    """Read progress lines ('...: step 120/3000 ...') until one at ``minimum`` or later."""
    lines = []
    for line in stream:
        lines.append(line)
        m = re.search(r"step (\d+)/", line)
        if m and int(m.group(1)) >= minimum:
            return lines
    raise AssertionError(f"step {minimum} never came:\n{''.join(lines)}")


def last_line(proc):
    out, err = proc.communicate()
    return err.strip().splitlines()[-1], out + err


from test_sbatch import plain_sweep, same_files  # noqa: E402,F401  (the fixture, for the re-runs)


def test_sigterms_while_the_first_is_handled_still_end_with_75_and_resume(plain_sweep, tmp_path):
    """SIGTERM at a training step, a second 50 ms later, a third once the command has
    said it stopped (it is exiting): exit status 75 every time (it was -15 when a
    signal came after the handler was put back), and the re-run gives the one-process
    files."""
    out = tmp_path / "sw"
    proc = start([sys.executable, SWEEP, *[a for a in SMALL if a != "--quiet"], "--out", str(out)])
    wait_for(proc.stderr, "coarse step")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    line = wait_for(proc.stderr, "gmmdiff-sweep: stopped by SIGTERM")[-1]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == slurm.REQUEUE_EXIT, line
    step = int(line.split("at step ")[1].split()[0])
    assert (f"the checkpoint of unit N16-d3-shard0of1 (coarse) at step {step:,} of 2,000" in line
            and "0 of 4 configurations finished" in line), line
    done = subprocess.run([sys.executable, SWEEP, *SMALL, "--out", str(out)], capture_output=True)
    assert done.returncode == 0, done.stderr
    same_files(plain_sweep, out)


def test_sigterm_during_start_up_ends_with_75(tmp_path):
    """SIGTERM as soon as the command can hold it -- during its imports, about 0.1 s
    after exec -- stops it before it trains, with status 75 and the line saying that
    nothing is kept yet (it used to die of the signal: no handler until training)."""
    out = tmp_path / "sw"
    proc = start([sys.executable, SWEEP, *SMALL, "--out", str(out)])
    deadline = time.monotonic() + 5
    while not holds_sigterm(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGTERM)
    line, everything = last_line(proc)
    assert proc.returncode == slurm.REQUEUE_EXIT, everything
    assert line.startswith("gmmdiff-sweep: stopped by SIGTERM before unit N16-d3-shard0of1; kept "
                           f"in {out}: 0 of 4 configurations finished;"), line


def test_sigterm_pending_from_exec_is_delivered_once_held(tmp_path):
    """A command started with SIGTERM blocked (as run_workers starts its workers) and
    sent SIGTERM at once, before Python runs: the signal waits, is delivered when the
    command holds it, and stops it with status 75 (it used to stay blocked: the sweep
    ran to its end)."""
    out = tmp_path / "sw"
    block = lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # noqa: E731
    proc = start([sys.executable, SWEEP, *SMALL, "--out", str(out)], preexec_fn=block)
    proc.send_signal(signal.SIGTERM)
    line, everything = last_line(proc)
    assert proc.returncode == slurm.REQUEUE_EXIT, everything
    assert "stopped by SIGTERM before unit N16-d3-shard0of1" in line, line


@pytest.mark.parametrize("to", ["parent", "group"])
def test_sigterm_to_a_jobs_parent_or_its_group_saves_every_workers_work(to, plain_sweep, tmp_path):
    """--jobs 2, both workers training: SIGTERM to the parent alone (passed on to the
    workers) or to the whole process group: each worker saves its unit's checkpoint,
    the parent exits 75 and says so (the parent used to die at once, its workers
    killed with it); the re-run gives the one-process files."""
    out = tmp_path / "sw"
    proc = start([sys.executable, SWEEP, *SMALL, "--out", str(out), "--jobs", "2"],
                 start_new_session=True)
    ckpts = [out / f"checkpoint-N{n}-d3-shard0of1-coarse.npz" for n in (12, 16)]
    deadline = time.monotonic() + 120
    while not all(c.exists() for c in ckpts) and time.monotonic() < deadline:
        time.sleep(0.01)                          # (--checkpoint-every: each worker is training)
    if to == "parent":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
    line, everything = last_line(proc)
    assert proc.returncode == slurm.REQUEUE_EXIT, everything
    assert "stopped by SIGTERM: 2 of its 2 workers saved their work and stopped" in line, line
    assert line.count("the checkpoint of unit") == 2, line
    if to == "parent":
        done = subprocess.run([sys.executable, SWEEP, *SMALL, "--out", str(out)], capture_output=True)
        assert done.returncode == 0, done.stderr
        same_files(plain_sweep, out)


def test_gmmdiff_train_saves_its_checkpoint_on_sigterm_and_resumes_to_the_same_files(tmp_path):
    """gmmdiff-train, SIGTERM during training: the checkpoint at that step, exit status
    75 (it used to die of the signal, losing the steps since the last checkpoint), and
    the same command ends with an uninterrupted run's files, bit for bit."""
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, TRAIN, *TRAIN_ARGS, "--quiet", "--out", str(ref)], check=True,
                   capture_output=True)
    out = tmp_path / "run"
    proc = start([sys.executable, TRAIN, *TRAIN_ARGS, "--out", str(out)])
    wait_for_step(proc.stderr, 1)
    proc.send_signal(signal.SIGTERM)
    line, everything = last_line(proc)
    assert proc.returncode == slurm.REQUEUE_EXIT, everything
    step = int(line.split("at step ")[1].split()[0])
    assert line == (f"gmmdiff-train: stopped by SIGTERM at step {step} of 1000; kept in {out}: the "
                    f"checkpoint at step {step:,} of 1,000; the same command resumes (exit status 75)")
    subprocess.run([sys.executable, TRAIN, *TRAIN_ARGS, "--quiet", "--out", str(out)], check=True,
                   capture_output=True)
    same_files(ref, out)


def test_ctrl_c_says_exactly_what_was_kept(tmp_path):
    """Ctrl-C (SIGINT) keeps what is on disk and says which: before the first checkpoint
    nothing (it used to say 'completed model sizes are saved' regardless); later the
    last periodic checkpoint, at the step the file holds."""
    from gmmdiff.cli.stopping import checkpoint_step
    # 20,000 steps (about 5 s to the end when idle; the signals stop it well before): at
    # 1,000 an idle machine finished before the test had read its way to step 310
    args = [a if a != "1000" else "20000" for a in TRAIN_ARGS]
    out = tmp_path / "run"
    proc = start([sys.executable, TRAIN, *args, "--out", str(out)], preexec_fn=default_sigint)
    wait_for_step(proc.stderr, 1)
    proc.send_signal(signal.SIGINT)
    line, everything = last_line(proc)
    assert proc.returncode == 130, everything
    if (out / "checkpoint.npz").exists():       # (a loaded machine may pass step 100 first)
        step = checkpoint_step(str(out / "checkpoint.npz"))
        assert f"kept in {out}: the checkpoint at step {step:,} of 20,000" in line, line
    else:
        assert line == (f"interrupted; nothing kept in {out} (no size finished, no checkpoint "
                        "written yet); re-run the same command to continue"), line
    proc = start([sys.executable, TRAIN, *args, "--out", str(out)], preexec_fn=default_sigint)
    wait_for_step(proc.stderr, 310)               # after the checkpoint at step 300
    proc.send_signal(signal.SIGINT)
    line, everything = last_line(proc)
    step = checkpoint_step(str(out / "checkpoint.npz"))
    assert step >= 300 and step % 100 == 0, everything
    assert line == (f"interrupted; kept in {out}: the checkpoint at step {step:,} of 20,000; "
                    "re-run the same command to continue"), line


def test_an_error_raised_while_ctrl_c_unwinds_is_the_interrupt_not_a_traceback():
    """Ctrl-C inside NumPy's savez once left zipfile half-built, and its cleanup raised
    "AttributeError: 'ZipFile' object has no attribute '_writing'" in place of the
    interrupt: a traceback and exit status 1 instead of the message and 130. Any error
    whose context chain holds the KeyboardInterrupt is the interrupt; an error without
    one is still an error."""
    import click

    from gmmdiff.cli.errors import during_interrupt, handle_errors

    def cleanup_fails_on_the_interrupt():
        try:
            raise KeyboardInterrupt
        finally:
            raise AttributeError("'ZipFile' object has no attribute '_writing'")

    def plain_bug():
        raise AttributeError("a bug")

    for body, code, says in ((cleanup_fails_on_the_interrupt, 130, "interrupted\n"),
                             (plain_bug, 1, "")):
        @click.command()
        @handle_errors
        def command():
            body()
        r = CliRunner().invoke(command, [])
        assert r.exit_code == code, (body.__name__, r.output, r.exception)
        assert r.output == says, r.output
        if code == 1:
            assert isinstance(r.exception, AttributeError)
    try:
        cleanup_fails_on_the_interrupt()
    except AttributeError as exc:
        assert during_interrupt(exc)
    assert not during_interrupt(ValueError("no interrupt here"))
