"""Sweeps as Slurm job arrays, without a cluster: the batch script of ``gmmdiff-sweep
--sbatch``, the array tasks' share (``--shard slurm``), and SIGTERM -- Slurm's preemption
and time-limit signal -- stopping training with a checkpoint that resumes to the same
bits. The same things against a live Slurm: tests/test_slurm.py."""
import dataclasses
import os
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff.cli import slurm
from gmmdiff.experiments.runs import run
from gmmdiff.experiments.sweep.spec import SweepSpec, slurm_array_task
from gmmdiff.experiments.sweep.units import shard_units, work_units
from gmmdiff.io.files import read_npz
from gmmdiff.training import interrupt
from gmmdiff.training.config import TrainConfig
from gmmdiff.training.loop import train
from gmmdiff.training.state import TrainState, initial_state

from test_sweep import ROOT, load_script

SWEEP = os.path.join(ROOT, "bin", "gmmdiff-sweep")
# 4 configurations in 2 units (N = 12 and N = 16, each K = 2 x 2 seeds in one batch);
# 2,000 steps: long enough for a signal to land in training, about 4 s in all
SMALL = ["-N", "12,16", "-d", "3", "-K", "2", "--seeds", "0,1", "--coarse", "3", "--refine", "2",
         "--steps", "2000", "--noise-draws", "2", "--eval-samples", "20", "--eval-noise-draws", "2",
         "--eval-steps", "log:4", "--quiet"]


def same_files(a, b):
    """Every file of sweep directory ``a`` (results, plans, configs) equals ``b``'s, bit
    for bit, and neither holds anything the other does not."""
    listing = lambda top: sorted(os.path.relpath(os.path.join(r, f), top)          # noqa: E731
                                 for r, _, fs in os.walk(top) for f in fs
                                 if f not in ("summary.csv", "summary.json"))
    assert listing(a) == listing(b)
    for rel in listing(a):
        with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
            assert fa.read() == fb.read(), rel


@pytest.fixture(scope="module")
def plain_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "sw"
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), SMALL + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def sbatch(args, tmp_path, name="sweep.sh"):
    """Run gmmdiff-sweep ... --sbatch tmp_path/name in tmp_path: (result, script path)."""
    path = tmp_path / name
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(load_script("gmmdiff-sweep"), args + ["--sbatch", str(path)])
    finally:
        os.chdir(cwd)
    return result, path


def directives(text):
    """The '#SBATCH' options of a batch script's head (where sbatch reads them)."""
    out = []
    for line in text.splitlines()[1:]:
        if line.startswith("#SBATCH "):
            out.append(line[len("#SBATCH "):])
        elif line and not line.startswith("#"):
            break
    return out


def task_command(text):
    """The command every array task runs (the script's srun line), as a list of words."""
    (line,) = [ln for ln in text.splitlines() if ln.startswith("srun ")]
    return shlex.split(line)[1:]


# ---------------------------------------------------------------- --shard slurm

def test_array_variables_give_the_task_and_the_count():
    env = lambda **kw: {f"SLURM_ARRAY_TASK_{k}": str(v) for k, v in kw.items()}  # noqa: E731
    assert slurm_array_task(env(ID=0, MIN=0, MAX=3, STEP=1, COUNT=4)) == (0, 4)
    assert slurm_array_task(env(ID=3, MIN=0, MAX=3, COUNT=4)) == (3, 4)
    assert slurm_array_task(env(ID=4, MIN=1, MAX=4, STEP=1, COUNT=4)) == (3, 4)    # --array=1-4
    assert slurm_array_task(env(ID=6, MIN=0, MAX=6, STEP=2, COUNT=4)) == (3, 4)    # 0-6:2
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID, which is not set"):
        slurm_array_task({})
    for bad in (env(ID=4, MIN=1, MAX=9, COUNT=3),                  # --array=1,4,9
                env(ID=5, MIN=0, MAX=3, COUNT=4), env(ID="x", MIN=0, MAX=3, COUNT=4)):
        with pytest.raises(ValueError, match="--shard slurm"):
            slurm_array_task(bad)


def test_array_tasks_share_out_exactly_the_one_process_units():
    """Task t of T gets units t, t+T, ... of the one-process sweep's units, with the same
    names (so checkpoints carry over), whatever T; tasks beyond the last unit get none."""
    spec = SweepSpec(samples=(10, 20, 30), dims=(3, 4), components=(2, 3), seeds=(0, 1),
                     base=TrainConfig(steps=10), coarse=3, refine=1)
    plain = work_units(spec.configurations(), tag="-shard0of1")
    assert plain == shard_units(spec.configurations())
    for T in (1, 2, 4, 6, 9):
        shares = [shard_units(spec.configurations(), array_task=(t, T)) for t in range(T)]
        assert sorted(u for s in shares for u, _ in s) == sorted(u for u, _ in plain)
        assert {u: c for s in shares for u, c in s} == dict(plain)
        assert all(s == [] for s in shares[len(plain):])


def test_array_tasks_run_outside_slurm_give_the_one_process_files(plain_sweep, tmp_path):
    """The script's task command, run once per task of a 3-task array (one more than
    the units: an array written by hand, --array-tasks refuses it) with the variables
    Slurm sets: the files of the one-process sweep, bit for bit; the third task has
    nothing to do and says so."""
    result, path = sbatch(SMALL + ["--out", str(tmp_path / "sw"), "--time", "10"], tmp_path)
    assert result.exit_code == 0, result.output
    command = task_command(path.read_text())
    assert command[-2:] == ["--shard", "slurm"] and command[:2] == [sys.executable, SWEEP]
    outputs = []
    for t in range(3):
        env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(t), SLURM_ARRAY_TASK_MIN="0",
                   SLURM_ARRAY_TASK_MAX="2", SLURM_ARRAY_TASK_STEP="1", SLURM_ARRAY_TASK_COUNT="3")
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert "units N16-d3-shard0of1" in outputs[0] and "units N12-d3-shard0of1" in outputs[1]
    assert "units none (more tasks than units)" in outputs[2]
    same_files(plain_sweep, tmp_path / "sw")


# ---------------------------------------------------------------- the batch script

def test_the_script_asks_slurm_for_the_array_the_time_the_requeue_and_the_logs(tmp_path):
    out = tmp_path / "sw"
    result, path = sbatch(SMALL + ["--out", str(out), "--time", "1:30:00", "--array-parallel", "1",
                                   "--cpus-per-task", "2", "--sbatch-option=--partition=short"],
                          tmp_path)
    assert result.exit_code == 0, result.output
    text = path.read_text()
    head = directives(text)
    logs = str(tmp_path / "sw-logs")                          # beside the sweep directory
    for want in ("--array=0-1%1", "--ntasks=1", "--cpus-per-task=2", "--time=0-01:30:00",
                 f"--signal=TERM@{slurm.SIGNAL_BEFORE_S}", "--requeue", "--open-mode=append",
                 f"--output={logs}/task-%A_%a.out", f"--error={logs}/task-%A_%a.err",
                 "--partition=short", f"--chdir={tmp_path}"):
        assert want in head, want
    assert not any(h.startswith("--gres") for h in head)
    assert os.path.isdir(logs) and os.access(path, os.X_OK)
    assert (out / "sweep.json").exists()                      # the sweep checked, as a task would
    summary = text[text.index("<<'SUMMARY'"):text.index("\nSUMMARY\n")]
    assert "--dependency=\"afterok:$array\"" in text and "--kill-on-invalid-dep=yes" in summary
    assert "#SBATCH --partition=short" in summary and "#SBATCH --time=0-01:30:00" in summary
    assert f"--summary {out}" in summary and f"gmmdiff-predict --fit {out}" in summary
    assert f"[ $status -eq {slurm.REQUEUE_EXIT} ] || [ $status -eq {slurm.TERM_STATUS} ]" in text
    assert 'scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"' in text
    subprocess.run(["bash", "-n", str(path)], check=True)
    # the task's command is the one typed, with an absolute --out and --shard slurm
    command = task_command(text)
    assert command[2:] == ["--samples", "12,16", "--dims", "3", "--components", "2", "--seeds", "0,1",
                           "--coarse", "3", "--refine", "2", "--steps", "2000", "--noise-draws",
                           "2", "--eval-samples", "20", "--eval-noise-draws", "2", "--eval-steps",
                           "log:4", "--quiet", "--out", str(out), "--shard", "slurm"]


@pytest.mark.parametrize("status, cancelled, requeued", [
    (75, False, True), (143, False, True), (0, False, False), (2, False, False),
    (137, False, False), (75, True, False), (143, True, False)])
def test_a_task_is_requeued_after_sigterm_only(status, cancelled, requeued, tmp_path):
    """The task's shell, with a fake srun exiting ``status``: requeued (scontrol requeue,
    exit 0) after 75 (stopped by SIGTERM, work saved) and 143 (ended by SIGTERM while
    Python was starting, before gmmdiff-sweep held it: nothing written), never when the
    batch shell itself got SIGTERM (scancel); any other status is the task's."""
    result, path = sbatch(SMALL + ["--out", str(tmp_path / "sw"), "--time", "10"], tmp_path)
    assert result.exit_code == 0, result.output
    fake = tmp_path / "bin"
    fake.mkdir()
    kill_shell = 'kill -TERM "$PPID"; ' if cancelled else ""
    (fake / "srun").write_text(f"#!/bin/bash\n{kill_shell}exit {status}\n")
    (fake / "scontrol").write_text('#!/bin/bash\necho "$@" > "$(dirname "$0")/requeued"\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", SLURM_JOB_ID="9",
               SLURM_ARRAY_JOB_ID="9", SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_COUNT="2")
    done = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True)
    assert (fake / "requeued").exists() == requeued, done.stdout + done.stderr
    assert done.returncode == (0 if requeued else status), done.stdout + done.stderr
    if requeued:
        assert (fake / "requeued").read_text() == "requeue 9_1\n"


def test_the_gpu_script_asks_for_a_gpu_and_runs_the_cupy_backend(tmp_path):
    result, path = sbatch(SMALL + ["--out", str(tmp_path / "sw"), "--backend", "cupy",
                                   "--time", "2-0", "--array-tasks", "1"], tmp_path)
    assert result.exit_code == 0, result.output
    head = directives(path.read_text())
    assert "--gres=gpu:1" in head and "--array=0-0" in head and "--time=2-00:00:00" in head
    command = task_command(path.read_text())
    assert command[command.index("--backend") + 1] == "cupy"


def test_without_time_the_limit_comes_from_the_sweeps_estimate(tmp_path):
    result, path = sbatch(SMALL + ["--out", str(tmp_path / "sw")], tmp_path)
    assert result.exit_code == 0, result.output
    text = path.read_text()
    (limit,) = [h for h in directives(text) if h.startswith("--time=")]
    seconds = slurm.parse_time(limit[len("--time="):])
    assert slurm.TIME_MARGIN_S <= seconds < slurm.TIME_MARGIN_S + 3600     # seconds of training
    assert "timed here" in text and "--array=0-1" in directives(text)


@pytest.mark.parametrize("args, match", [
    (["--time", "4h"], "--time '4h' not understood"),
    (["--time", "3"], "shorter than 5 minutes"),
    (["--sbatch-option", "partition=x"], "is not one sbatch option"),
    (["--sbatch-option", "--array=0-9"], "sets --array itself; use gmmdiff-sweep's --array-tasks"),
    (["--sbatch-option", "-t 5"], "is not one sbatch option"),
    (["--shard", "1/2"], "--shard has no effect with --sbatch"),
    (["--jobs", "2"], "--jobs has no effect with --sbatch"),
])
def test_bad_script_options_are_one_line_and_write_nothing(args, match, tmp_path):
    result, path = sbatch(SMALL + ["--out", str(tmp_path / "sw"), *args], tmp_path)
    assert result.exit_code == 2 and match in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not path.exists() and not (tmp_path / "sw-logs").exists()
    assert not (tmp_path / "sw").exists()


def test_without_time_and_without_the_backend_here_the_script_asks_for_time(tmp_path, monkeypatch):
    import gmmdiff.backend

    def no_gpu(name="numpy"):
        raise ValueError("CuPy with a working CUDA GPU is required for backend 'cupy'")
    monkeypatch.setattr(gmmdiff.backend, "get_xp", no_gpu)
    result, path = sbatch(SMALL + ["--out", str(tmp_path / "sw"), "--backend", "cupy"], tmp_path)
    assert result.exit_code == 2 and "cannot time the sweep on backend cupy here" in result.output
    assert "give --time" in result.output and len(result.output.strip().splitlines()) == 1
    assert not path.exists() and not (tmp_path / "sw").exists()


def test_an_existing_script_is_never_overwritten(tmp_path):
    (tmp_path / "sweep.sh").write_text("mine\n")
    result, path = sbatch(SMALL + ["--out", str(tmp_path / "sw"), "--time", "10"], tmp_path)
    assert result.exit_code == 2 and "exists; give a new file name" in result.output
    assert path.read_text() == "mine\n" and not (tmp_path / "sw").exists()


def test_script_options_without_sbatch_and_slurm_shards_outside_an_array_are_refused(tmp_path):
    runner = CliRunner()
    out = ["--out", str(tmp_path / "sw")]
    result = runner.invoke(load_script("gmmdiff-sweep"), SMALL + out + ["--array-tasks", "3"])
    assert result.exit_code == 2 and "--array-tasks has no effect without --sbatch" in result.output
    env = {k: None for k in os.environ if k.startswith("SLURM_ARRAY")}
    result = runner.invoke(load_script("gmmdiff-sweep"), SMALL + out + ["--shard", "slurm"], env=env)
    assert result.exit_code == 2 and "SLURM_ARRAY_TASK_ID, which is not set" in result.output
    result = runner.invoke(load_script("gmmdiff-sweep"), SMALL + out + ["--shard", "slurm", "-j", "2"],
                           env={"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "1"})
    assert result.exit_code == 2 and "one process per array task" in result.output
    assert not (tmp_path / "sw").exists()


def test_a_filesystem_without_locks_stops_a_task_with_one_line(tmp_path, monkeypatch):
    """flock on an NFS mount whose lock manager does not answer fails with ENOLCK: the
    task stops before training with one line (docs/cluster.rst says so), no result."""
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "sw"
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), SMALL + ["--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output == f"Error: [Errno {errno.ENOLCK}] No locks available\n"
    assert not any(p.is_dir() for p in out.iterdir())


def test_time_limits_in_slurms_formats():
    cases = {"90": 5400, "7:30": 450, "4:00:00": 14400, "1-12": 129600, "2-0:30": 174600,
             "1-00:00:01": 86401}
    for text, seconds in cases.items():
        assert slurm.parse_time(text) == seconds, text
    assert slurm.format_time(14400) == "0-04:00:00" and slurm.format_time(86401) == "1-00:01:00"


# ---------------------------------------------------------------- SIGTERM

def test_a_signal_during_training_saves_the_step_and_resumes_bit_for_bit(tmp_path):
    """Stopped by SIGTERM after step 37 of 90 (no periodic checkpoint there), then
    resumed from the checkpoint: the final state equals an uninterrupted run's, bit for
    bit (Adam's moments, the averaged updates, the logged losses included)."""
    cfg = TrainConfig(dim=3, components=2, samples=10, steps=90, noise_draws=2, lr_peak=1e-2)
    sizes = [3, 6, 10]
    ds = cfg.dataset(np)
    whole = train(ds, initial_state(ds, sizes, cfg, np), cfg, np, log_every=1)
    ckpt = str(tmp_path / "ckpt.npz")

    def signal_at_37(step, losses):
        if step == 37:
            os.kill(os.getpid(), signal.SIGTERM)

    with interrupt.stop_on(signal.SIGTERM):
        with pytest.raises(interrupt.Interrupted, match="SIGTERM at step 37 of 90"):
            train(ds, initial_state(ds, sizes, cfg, np), cfg, np, log_every=1, checkpoint=ckpt,
                  checkpoint_every=50, callback=signal_at_37)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and interrupt.pending() is None
    state = TrainState.load(ckpt, np)
    assert state.step == 37 and state.loss_steps == list(range(1, 38))
    resumed = train(ds, state, cfg, np, log_every=1)
    for name in whole.params:
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])
    for name in whole.opt:
        np.testing.assert_array_equal(resumed.opt[name], whole.opt[name])
    assert resumed.losses == whole.losses and resumed.loss_steps == whole.loss_steps


def test_a_signal_during_evaluation_keeps_the_checkpoint_for_the_rest(tmp_path, monkeypatch):
    """SIGTERM while the first of two trained sizes is evaluated: its result is written,
    the run stops before the second with the trained checkpoint kept, and the rerun
    evaluates the second without training: the files of an uninterrupted run."""
    from gmmdiff.families import gmm
    cfg = TrainConfig(dim=3, components=2, samples=8, steps=40, noise_draws=2, lr_peak=1e-2,
                      eval_samples=6, eval_noise_draws=2)
    run(cfg, [2, 8], str(tmp_path / "ref"), np)
    real = gmm.FAMILY

    def signalled(dataset, M, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real.evaluate(dataset, M, *args, **kwargs)

    out = tmp_path / "stopped"
    monkeypatch.setattr(gmm, "FAMILY", dataclasses.replace(real, evaluate=signalled))
    with interrupt.stop_on(signal.SIGTERM):
        with pytest.raises(interrupt.Interrupted, match="while evaluating"):
            run(cfg, [2, 8], str(out), np)
    assert (out / "checkpoint.npz").exists() and (out / "model_M00002.json").exists()
    assert not (out / "model_M00008.json").exists()
    monkeypatch.setattr(gmm, "FAMILY", real)
    run(cfg, [2, 8], str(out), np)
    assert not (out / "checkpoint.npz").exists()
    for M in (2, 8):
        a, b = (read_npz(str(d / f"model_M{M:05d}.npz")) for d in (tmp_path / "ref", out))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_sigterm_stops_a_sweep_with_status_75_and_the_same_command_resumes(plain_sweep, tmp_path):
    """gmmdiff-sweep sent SIGTERM at its first training progress line saves the unit's
    checkpoint at that step and exits with status 75 (what the batch script requeues),
    naming the step and the unit; run again, it ends with the one-process files."""
    out = tmp_path / "sw"
    cmd = [sys.executable, SWEEP, *[a for a in SMALL if a != "--quiet"], "--out", str(out)]
    env = dict(os.environ, GMMDIFF_PROGRESS_SECONDS="0")      # a progress line every logged step
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "coarse step" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait() == slurm.REQUEUE_EXIT, "".join(lines) + rest
    (last,) = rest.strip().splitlines()[-1:]
    assert last.startswith("gmmdiff-sweep: stopped by SIGTERM at step ") and "in unit N16-d3" in last
    step = int(last.split("at step ")[1].split()[0])
    ckpt = out / "checkpoint-N16-d3-shard0of1-coarse.npz"
    assert TrainState.load(str(ckpt), np).step == step < 2000
    done = subprocess.run([*cmd, "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    same_files(plain_sweep, out)


def test_the_script_on_the_cluster_page_is_what_this_version_writes():
    """docs/cluster.rst shows paper.sh as written on /home/me for /scratch/me/sweep: each
    line shown is a line of the script this version writes for those paths ('...' stands
    for any text, a line '# ...' for comment lines left out), its version included
    (it said 0.5.0 when 0.6.0 shipped); dates are not compared."""
    import re

    import gmmdiff
    with open(os.path.join(ROOT, "docs", "cluster.rst")) as fh:
        page = fh.read()
    start = page.index("    #!/bin/bash\n", page.index("The generated script"))
    shown = []
    for line in page[start:].splitlines():
        if line and not line.startswith("    "):
            break
        shown.append(line[4:])
    while not shown[-1]:
        shown.pop()
    written = slurm.batch_script(
        python="/home/me/venv/bin/python3", sweep_script="/home/me/venv/bin/gmmdiff-sweep",
        predict_script="/home/me/venv/bin/gmmdiff-predict",
        sweep_args=["--preset", "paper", "--backend", "cupy", "--out", "/scratch/me/sweep"],
        out="/scratch/me/sweep", logs="/scratch/me/sweep-logs", workdir="/home/me",
        script_path="/scratch/me/paper.sh", n_tasks=16, n_units=16, n_configs=64,
        time_s=12 * 3600, time_note="--time 12:00:00", parallel=8, gpu=True,
        version=gmmdiff.__version__).splitlines()
    date = re.compile(r"\d{4}-\d{2}-\d{2}")

    def same(s, w):
        s, w = date.sub("DATE", s), date.sub("DATE", w)
        return re.fullmatch(".*".join(map(re.escape, s.split("..."))), w) is not None

    i = 0
    for k, s in enumerate(shown):
        if s == "# ...":
            while written[i].startswith("#") and not same(shown[k + 1], written[i]):
                i += 1
            continue
        assert same(s, written[i]), f"docs/cluster.rst shows {s!r}; this version writes {written[i]!r}"
        i += 1
    assert i == len(written), written[i:]
    assert f"written by gmmdiff-sweep {gmmdiff.__version__} on" in "\n".join(shown)
