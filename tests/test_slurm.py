"""Sweeps on a live Slurm cluster: the script of ``gmmdiff-sweep --sbatch`` submitted for
real, its tasks preempted (``scancel --signal=TERM``), requeued, killed, run on a node
without the GPU backend -- and the results compared with a one-process sweep's.

Needs a Slurm that runs jobs on this machine (``.ci/start-slurm`` starts a one-node
cluster as root; CI runs it before the tests), because the jobs write under the test's
temporary directory; on another cluster set ``GMMDIFF_SLURM_TEST_DIR`` to a directory
its nodes share with this machine. Skipped, with the reason, where no Slurm answers or
no node is idle.
"""
import functools
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import uuid

import pytest
from click.testing import CliRunner

from test_sbatch import SMALL, directives
from test_sweep import load_script

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

WAIT_S = 300                # the longest wait for a job (the jobs take seconds)
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE"}
# 8 configurations in 4 units (N x d, each unit K = 2 x 2 seeds in one batch); every
# configuration measures its transition, so the summary job can fit the time weights
FOUR_UNITS = ["-N", "12,16", "-d", "3,4", "-K", "2", "--seeds", "0,1", "--coarse", "4",
              "--refine", "3", "--steps", "1500", "--noise-draws", "4", "--target", "x0", "--lr",
              "1e-2", "--eval-samples", "40", "--eval-noise-draws", "4", "--eval-steps", "log:4",
              "--quiet"]
# SMALL (2 units: N = 16 first, the larger) with a checkpoint every 100 steps and more
# steps, so that a signal finds a task training
LONGER = [a if a != "2000" else "3000" for a in SMALL] + ["--checkpoint-every", "100"]


@functools.lru_cache(maxsize=None)
def why_no_slurm():
    """None when a Slurm cluster answers and has an idle node for these tests, else
    the reason to skip."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return ("no Slurm here (sinfo/sbatch not found); .ci/start-slurm starts a one-node "
                "cluster as root")
    try:
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Slurm does not answer (sinfo: {exc})"
    if r.returncode != 0:
        return f"Slurm does not answer (sinfo: {(r.stderr.strip() or 'failed').splitlines()[0]})"
    nodes = dict(line.split()[:2] for line in r.stdout.splitlines() if len(line.split()) >= 2)
    if not any(state.rstrip("*~#!%$@^-") in ("idle", "mix") for state in nodes.values()):
        return f"no idle Slurm node (sinfo: {r.stdout.strip() or 'no nodes'})"
    if not os.environ.get("GMMDIFF_SLURM_TEST_DIR") and socket.gethostname().split(".")[0] not in nodes:
        return ("this machine is not a node of the Slurm cluster that answers, whose jobs would "
                "not see the test's files: set GMMDIFF_SLURM_TEST_DIR to a shared directory")
    return None


@pytest.fixture
def base(tmp_path):
    """A directory the jobs can see; every job submitted from the test is cancelled at
    its end (one that failed must not run on)."""
    why = why_no_slurm()
    if why:
        pytest.skip(why)
    shared = os.environ.get("GMMDIFF_SLURM_TEST_DIR")
    path = tmp_path if not shared else os.path.join(shared, f"gmmdiff-test-{uuid.uuid4().hex[:8]}")
    os.makedirs(path, exist_ok=True)
    jobs = []
    yield type("Base", (), {"path": str(path), "jobs": jobs})
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True)


def environment(**extra):
    """The environment of submitted jobs (sbatch passes the submitter's on): without the
    CuPy stand-in of the tests (a job sees the machine as it is)."""
    from conftest import STANDIN
    env = dict(os.environ, **extra)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) != STANDIN]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def one_process(args, out):
    """The sweep of ``args`` run by one process into ``out``, with its summary.csv."""
    runner = CliRunner()
    result = runner.invoke(load_script("gmmdiff-sweep"), args + ["--out", out])
    assert result.exit_code == 0, result.output
    result = runner.invoke(load_script("gmmdiff-sweep"), ["--summary", out])
    assert result.exit_code == 0, result.output
    return out


def write_script(args, base, name):
    """gmmdiff-sweep ARGS --sbatch BASE/NAME (run in BASE): the script's path and text."""
    path = os.path.join(base.path, name)
    cwd = os.getcwd()
    os.chdir(base.path)
    try:
        result = CliRunner().invoke(load_script("gmmdiff-sweep"), args + ["--sbatch", path])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    with open(path) as fh:
        return path, fh.read()


def sbatch(base, script, env=None):
    """Submit the array alone (``sbatch SCRIPT``): its job id."""
    r = subprocess.run(["sbatch", "--parsable", script], capture_output=True, text=True,
                       env=env or environment(), check=True)
    job = r.stdout.strip().split(";")[0]
    base.jobs.append(job)
    return job


def tasks(job):
    """{array task id (or 'job'): {JobState, ExitCode, Restarts, ...}} from scontrol."""
    r = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        out[fields.get("ArrayTaskId", "job")] = fields
    return out


def wait(job, logs, until=None, timeout=WAIT_S):
    """Poll the job until ``until(tasks)`` holds (default: every task ended); the
    tasks. On timeout the test fails with the job's state and its logs."""
    until = until or (lambda ts: ts and all(t["JobState"] in FINAL for t in ts.values()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ts = tasks(job)
        if until(ts):
            return ts
        time.sleep(0.2)
    pytest.fail(f"job {job} after {timeout} s: {tasks(job)}\n{read_logs(logs)}")


def read_logs(logs):
    return "\n".join(f"== {name}\n{open(os.path.join(logs, name)).read()}"
                     for name in sorted(os.listdir(logs))) if os.path.isdir(logs) else ""


def log(logs, job, task, ext):
    with open(os.path.join(logs, f"task-{job}_{task}.{ext}")) as fh:
        return fh.read()


def same_results(a, b):
    """The run directories and sweep.json of two sweep directories agree bit for bit."""
    names = sorted(n for n in os.listdir(a) if os.path.isdir(os.path.join(a, n)))
    assert names == sorted(n for n in os.listdir(b) if os.path.isdir(os.path.join(b, n)))
    for rel in ["sweep.json"] + [os.path.join(n, f) for n in names for f in os.listdir(os.path.join(a, n))]:
        with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
            assert fa.read() == fb.read(), rel


def summary_csv(out):
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), ["--summary", out])
    assert result.exit_code == 0, result.output
    with open(os.path.join(out, "summary.csv"), "rb") as fh:
        return fh.read()


def test_a_4_task_array_and_its_summary_job_give_the_one_process_sweep(base):
    """`bash SCRIPT` submits a 4-task array (one per unit) and the summary job after
    it: every task succeeds, each trains its own unit, and the summary job's summary.csv
    is byte for byte the one-process sweep's, its fit written beside it.

    The test narrows the summary job's fit to one cheap source (--source simple): the
    fit of every source takes 70-100 s of CPU even on this small sweep (SLSQP on the
    Monte Carlo curves), which would double the Slurm tests' time in CI; the fits
    themselves are tested in tests/test_sweep.py."""
    ref = one_process(FOUR_UNITS, os.path.join(base.path, "ref"))
    out = os.path.join(base.path, "sw")
    script, text = write_script(FOUR_UNITS + ["--out", out, "--time", "10"], base, "array.sh")
    assert "--array=0-3" in directives(text)
    fit = f"gmmdiff-predict --fit {out}\n"
    assert text.count(fit) == 1
    with open(script, "w") as fh:
        fh.write(text.replace(fit, f"gmmdiff-predict --fit {out} --source simple\n"))
    logs = out + "-logs"
    r = subprocess.run(["bash", script], capture_output=True, text=True, env=environment())
    assert r.returncode == 0, r.stderr
    array, summary = re.search(r"job (\d+) \(4 tasks\), and the summary job (\d+)", r.stdout).groups()
    base.jobs += [array, summary]
    ts = wait(array, logs)
    assert sorted(ts) == ["0", "1", "2", "3"], ts
    assert all((t["JobState"], t["ExitCode"]) == ("COMPLETED", "0:0") for t in ts.values()), ts
    units = sorted(re.search(r"array task \d/4: units (\S+)\n", log(logs, array, k, "out")).group(1)
                   for k in range(4))
    assert units == ["N12-d3-shard0of1", "N12-d4-shard0of1", "N16-d3-shard0of1", "N16-d4-shard0of1"]
    (job,) = wait(summary, logs).values()
    assert (job["JobState"], job["Dependency"]) == ("COMPLETED", "(null)"), read_logs(logs)
    with open(os.path.join(out, "summary.csv"), "rb") as a, open(os.path.join(ref, "summary.csv"), "rb") as b:
        assert a.read() == b.read()
    same_results(ref, out)
    assert os.path.exists(os.path.join(out, "fit_simple.json")), read_logs(logs)


def test_sigterm_to_a_running_task_requeues_it_and_loses_nothing(base):
    """`scancel --signal=TERM` of task 0 while it trains: it saves its checkpoint, exits
    75, the script requeues it, and the requeued task resumes: the files and summary of
    the one-process sweep, bit for bit."""
    ref = one_process(LONGER, os.path.join(base.path, "ref"))
    out = os.path.join(base.path, "sw")
    script, _ = write_script(LONGER + ["--out", out, "--time", "10"], base, "term.sh")
    logs = out + "-logs"
    array = sbatch(base, script)
    wait_for_file(os.path.join(out, "checkpoint-N16-d3-shard0of1-coarse.npz"), logs)  # task 0's
    subprocess.run(["scancel", "--signal=TERM", f"{array}_0"], check=True)
    # (a requeued job waits for its credentials to expire before it starts again: 2
    # minutes by default, 21 s on the cluster of .ci/start-slurm)
    ts = wait(array, logs)
    assert all((t["JobState"], t["ExitCode"]) == ("COMPLETED", "0:0") for t in ts.values()), ts
    assert ts["0"]["Restarts"] == "1" and ts["1"]["Restarts"] == "0", ts
    err, stdout = log(logs, array, 0, "err"), log(logs, array, 0, "out")
    assert re.search(r"gmmdiff-sweep: stopped by SIGTERM at step \d+ of 3000 in unit N16-d3", err), err
    assert "stopped with its work saved, requeueing" in stdout and f"(job {array}_0) on" in stdout
    assert "restart 1" in stdout and stdout.count("training N16-d3-K2-s0") == 2, stdout
    assert not any(n.startswith("checkpoint-") for n in os.listdir(out))
    same_results(ref, out)
    assert summary_csv(out) == summary_csv(ref)


def wait_for_file(path, logs):
    deadline = time.monotonic() + WAIT_S
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(path), read_logs(logs)


def test_killed_and_cancelled_tasks_are_picked_up_by_a_second_array_of_another_size(base):
    """Task 0's process SIGKILLed (as a node failure would: its step killed) fails the
    task; task 1 cancelled (scancel) saves its checkpoint and is not requeued. A second
    array of 1 task over the same directory -- the sweep's 2 units in one task --
    resumes both units from their checkpoints and ends with the one-process files."""
    ref = one_process(LONGER, os.path.join(base.path, "ref"))
    out = os.path.join(base.path, "sw")
    first, _ = write_script(LONGER + ["--out", out, "--time", "10"], base, "first.sh")
    logs = out + "-logs"                                  # beside the sweep directory
    array = sbatch(base, first)
    wait_for_file(os.path.join(out, "checkpoint-N16-d3-shard0of1-coarse.npz"), logs)
    subprocess.run(["scancel", "--signal=KILL", f"{array}_0.0"], check=True)     # the step
    wait_for_file(os.path.join(out, "checkpoint-N12-d3-shard0of1-coarse.npz"), logs)
    subprocess.run(["scancel", f"{array}_1"], check=True)
    ts = wait(array, logs)
    assert (ts["0"]["JobState"], ts["0"]["ExitCode"]) == ("FAILED", "137:0"), ts
    assert (ts["1"]["JobState"], ts["1"]["Restarts"]) == ("CANCELLED", "0"), ts
    assert "stopped by SIGTERM" in log(logs, array, 1, "err")
    assert "SIGTERM to the batch shell" in log(logs, array, 1, "err")
    assert "requeueing" not in log(logs, array, 1, "out")
    assert not any(os.path.exists(os.path.join(out, n, "transition.json")) for n in os.listdir(out))
    second, text = write_script(LONGER + ["--out", out, "--time", "10", "--array-tasks", "1"],
                                base, "second.sh")
    assert "--array=0-0" in directives(text)
    array = sbatch(base, second)
    ts = wait(array, logs)
    assert sorted(ts) == ["0"], ts
    assert all((t["JobState"], t["ExitCode"]) == ("COMPLETED", "0:0") for t in ts.values()), ts
    assert "units N16-d3-shard0of1, N12-d3-shard0of1" in log(logs, array, 0, "out")
    same_results(ref, out)


def test_a_task_on_a_node_without_the_gpu_backend_fails_with_one_line(base):
    """A --backend cupy task where CuPy finds no GPU (this node advertises none, so the
    test drops the script's --gres line) fails with exit status 2 and one line in its
    error log, no traceback."""
    out = os.path.join(base.path, "sw")
    script, text = write_script(SMALL + ["--backend", "cupy", "--out", out, "--time", "10",
                                         "--array-tasks", "1"], base, "gpu.sh")
    assert "#SBATCH --gres=gpu:1\n" in text
    with open(script, "w") as fh:
        fh.write(text.replace("#SBATCH --gres=gpu:1\n", ""))
    logs = out + "-logs"
    array = sbatch(base, script, env=environment(CUDA_VISIBLE_DEVICES=""))
    (task,) = wait(array, logs).values()
    assert (task["JobState"], task["ExitCode"]) == ("FAILED", "2:0"), task
    err = log(logs, array, 0, "err")
    ours = [ln for ln in err.splitlines() if not ln.startswith(("srun:", "slurmstepd"))]
    assert len(ours) == 1 and ours[0].startswith("Error: ") and "cupy" in ours[0], err
    assert "Traceback" not in err
    assert "gmmdiff-sweep exited with status 2" in log(logs, array, 0, "out")
    assert not any(os.path.isdir(os.path.join(out, n)) for n in os.listdir(out))   # nothing trained


def test_hostile_names_run_on_slurm_as_they_would_by_hand(base):
    """A sweep directory, a script, its log directory and the current directory named
    "it's $(touch PWNED) `touch PWNED` 100% a b" -- quotes, a command substitution,
    backquotes, Slurm's '%', spaces: `bash SCRIPT` submits the array and the summary
    job, both tasks complete with their logs in the log directory of that name, the
    summary job tabulates the sweep of that name, and nothing else ran."""
    name = "it's $(touch PWNED) `touch PWNED` 100% a b"
    top = os.path.join(base.path, name)
    os.makedirs(top)
    out = os.path.join(top, name)
    here = type("Here", (), {"path": top, "jobs": base.jobs})
    script, text = write_script(SMALL + ["--out", out, "--time", "10"], here, name + ".sh")
    fit = f"gmmdiff-predict --fit {shlex.quote(out)}\n"
    assert text.count(fit) == 1                          # (one cheap source: see the 4-task test)
    with open(script, "w") as fh:
        fh.write(text.replace(fit, fit[:-1] + " --source simple\n"))
    logs = out + "-logs"
    r = subprocess.run(["bash", script], cwd=top, capture_output=True, text=True, env=environment())
    assert r.returncode == 0, r.stderr
    array, summary = re.search(r"job (\d+) \(2 tasks\), and the summary job (\d+)", r.stdout).groups()
    base.jobs += [array, summary]
    ts = wait(array, logs)
    assert all((t["JobState"], t["ExitCode"]) == ("COMPLETED", "0:0") for t in ts.values()), ts
    for k in (0, 1):
        assert "configurations complete" in log(logs, array, k, "out")
    wait(summary, logs)
    with open(os.path.join(logs, f"summary-{summary}.out")) as fh:
        assert f"written to {out}: summary.csv" in fh.read()
    assert not [f for _, _, fs in os.walk(base.path) for f in fs if f == "PWNED"]
