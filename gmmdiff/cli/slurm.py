"""A sweep as a Slurm job array: the batch script of ``gmmdiff-sweep --sbatch FILE``.

The script written (:func:`batch_script`) is one file, two ways to submit it:

- ``bash FILE`` submits the array, then a summary job that depends on it
  (``--dependency=afterok``) and writes ``summary.csv`` and the fits of the time weights
  (``gmmdiff-sweep --summary``, ``gmmdiff-predict --fit``) once every task has succeeded;
- ``sbatch FILE`` submits the array alone.

Each array task runs the same sweep command with ``--shard slurm``: task t of T trains
units t, t + T, ... of the sweep's units (:func:`gmmdiff.experiments.sweep.units.shard_units`),
the batches a one-process sweep trains, so the results are the same bit for bit. The
command runs under ``srun``, so that Slurm's SIGTERM -- preemption, or
:data:`SIGNAL_BEFORE_S` seconds before the time limit (``--signal``) -- reaches it;
gmmdiff-sweep then saves its checkpoint and exits with :data:`REQUEUE_EXIT`, upon which
the script puts the task back into the queue (``scontrol requeue``; ``--requeue`` also lets
Slurm requeue it after a node failure) and the requeued task resumes from the checkpoint.
gmmdiff-sweep holds SIGTERM from its first lines (:func:`gmmdiff.training.interrupt.hold`);
a SIGTERM in the ~0.1 s before, while Python itself starts, ends it with nothing written
(srun's status :data:`TERM_STATUS`), and the script requeues that task too.

The time limit of a task, unless given (``--time``), comes from the sweep's own estimate
(:func:`gmmdiff.cli.progress.estimate_sweep_seconds`, a short timing on this machine):
the longest task's share, times :data:`TIME_FACTOR`, plus :data:`TIME_MARGIN_S` for
start-up, evaluation and the checkpoint before the limit (:func:`time_limit`).
"""
import contextlib
import os
import re
import shlex
import time

import click

from gmmdiff.cli.progress import duration, unit_cost
from gmmdiff.cli.slurm_checks import (
    MAX_CPUS_PER_TASK,
    array_size,
    check_carriable,
    check_directive_value,
    check_sbatch_options,
    check_target,
    directive_value,
)
from gmmdiff.engine.threads import CORES_ENV
from gmmdiff.experiments.sweep.plans import coarse_sizes

REQUEUE_EXIT = 75           # EX_TEMPFAIL: stopped by SIGTERM, work saved; run it again
TERM_STATUS = 128 + 15      # srun's status for a task ended by SIGTERM (before it held it)
SIGNAL_BEFORE_S = 120       # SIGTERM this long before the time limit (Slurm: up to 60 s more)
MIN_TIME_S = 300            # shortest --time: the signal must not come at the start
TIME_FACTOR = 2.0           # the estimate is a short timing on another machine
TIME_MARGIN_S = 600         # start-up, evaluation (not estimated), the final checkpoint
MAX_TIME_S = 365 * 86400    # longest --time: no partition allows a year (a typo)

# the options of gmmdiff-sweep that shape the batch script, not the sweep command
SCRIPT_OPTIONS = ("sbatch", "array_tasks", "array_parallel", "time_limit", "cpus_per_task",
                  "sbatch_options", "logs")

_TIME = re.compile(r"^(?:(\d{1,12})-(\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?|"
                   r"(\d{1,12})(?::(\d{1,2})(?::(\d{1,2}))?)?)$", re.ASCII)


def parse_time(text):
    """Seconds of a Slurm time limit: ``minutes``, ``minutes:seconds``,
    ``hours:minutes:seconds``, ``days-hours``, ``days-hours:minutes`` or
    ``days-hours:minutes:seconds`` (ASCII digits; hours below 24 after days, minutes and
    seconds below 60 after a larger unit); ValueError naming the value otherwise, or
    when it is shorter than :data:`MIN_TIME_S` or longer than :data:`MAX_TIME_S`."""
    m = _TIME.match(str(text).strip())
    d, dh, dm, ds, a, b, c = (int(g) if g else None for g in m.groups()) if m else [None] * 7
    if m is None or (d is not None and dh > 23) or any(v is not None and v > 59
                                                        for v in (dm, ds, b, c)):
        raise ValueError(f"--time {text!r} not understood; accepted: Slurm's formats minutes, "
                         "minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes "
                         "or days-hours:minutes:seconds (e.g. 90, 4:00:00, 1-12)")
    if d is not None:
        seconds = ((d * 24 + dh) * 60 + (dm or 0)) * 60 + (ds or 0)
    elif c is not None:
        seconds = (a * 60 + b) * 60 + c                     # hours:minutes:seconds
    else:
        seconds = a * 60 + (b or 0)                         # minutes[:seconds]
    if seconds > MAX_TIME_S:
        raise ValueError(f"--time {text} is longer than {MAX_TIME_S // 86400} days, more than any "
                         "partition allows; give a task's time limit such as 4:00:00 or 2-0 "
                         "(a requeued task resumes: a limit shorter than the sweep is fine)")
    if seconds < MIN_TIME_S:
        raise ValueError(f"--time {text} is shorter than {MIN_TIME_S // 60} minutes: a task gets "
                         f"SIGTERM {SIGNAL_BEFORE_S} s (Slurm: up to {SIGNAL_BEFORE_S + 60} s) "
                         "before its limit to save its checkpoint")
    return seconds


def format_time(seconds):
    """'D-HH:MM:SS' (Slurm's format) of a number of seconds, rounded up to the minute."""
    minutes = -(-int(seconds) // 60)
    d, rem = divmod(minutes * 60, 86400)
    h, rem = divmod(rem, 3600)
    return f"{d}-{h:02d}:{rem // 60:02d}:00"


def task_seconds(units, n_tasks, coarse, refine, total_seconds):
    """Estimated training seconds of each of ``n_tasks`` array tasks, task t taking units
    t, t + n_tasks, ... of ``units`` ``[(name, [configurations])]``, given the estimate
    ``total_seconds`` of all of them (apportioned by :func:`gmmdiff.cli.progress.unit_cost`)."""
    cost = [sum(unit_cost(cfgs, coarse_sizes(cfgs[0].samples, coarse), refine)) for _, cfgs in units]
    rate = total_seconds / sum(cost)
    return [rate * sum(cost[t::n_tasks]) for t in range(n_tasks)]


def time_limit(seconds):
    """A task's time limit from its estimated training ``seconds``:
    :data:`TIME_FACTOR` times it plus :data:`TIME_MARGIN_S`, at least :data:`MIN_TIME_S`."""
    return max(MIN_TIME_S, TIME_FACTOR * seconds + TIME_MARGIN_S)


@contextlib.contextmanager
def cores(n):
    """Inside the block, training uses ``n`` cores (:data:`CORES_ENV`), as a task with
    ``--cpus-per-task n`` will: the estimate is timed the way the tasks will run."""
    before = os.environ.get(CORES_ENV)
    os.environ[CORES_ENV] = str(n)
    try:
        yield
    finally:
        if before is None:
            del os.environ[CORES_ENV]
        else:
            os.environ[CORES_ENV] = before


def command_line(ctx, exclude):
    """The options of the click command of ``ctx`` given explicitly, as command-line
    arguments (long names; a flag by its name, ``--group``/``--no-group`` by the one in
    force), less the parameters ``exclude``: the command the user typed, rebuilt."""
    from gmmdiff.cli.options import given_options
    given = given_options(ctx)
    args = []
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or p.name not in given or p.name in exclude:
            continue
        value = ctx.params[p.name]
        if p.is_flag:
            if p.secondary_opts:
                args.append(max(p.opts if value else p.secondary_opts, key=len))
            elif value:
                args.append(max(p.opts, key=len))
        elif value is not None:
            args += [max(p.opts, key=len), repr(value) if isinstance(value, float) else str(value)]
    return args


def batch_script(*, python, sweep_script, predict_script, sweep_args, out, logs, workdir,
                 script_path, n_tasks, n_units, n_configs, time_s, time_note, cpus_per_task=1,
                 parallel=None, gpu=False, extra=(), job_name="gmmdiff-sweep", version=""):
    """The text of the batch script (see the module's docstring).

    python, sweep_script, predict_script : absolute paths of the interpreter and of the
        gmmdiff-sweep and gmmdiff-predict scripts (the compute nodes must see them);
    sweep_args : the sweep command's options, every task's (``--shard slurm`` is added);
    out, logs, workdir, script_path : absolute sweep directory, log directory (must exist
        when a job starts: Slurm opens the log files there), working directory of the
        jobs and the script's own path;
    n_tasks, n_units, n_configs : the array's tasks, the sweep's units and configurations;
    time_s, time_note : a task's time limit (seconds) and where it comes from (a comment);
    parallel : at most this many tasks at once (``--array=0-N%K``);
    gpu : request one GPU per task (``--gres=gpu:1``); extra : further sbatch options
    (``--partition=gpu``, ``--account=...``) for both jobs.
    """
    q = shlex.quote
    limit = format_time(time_s)
    array = f"0-{n_tasks - 1}" + (f"%{parallel}" if parallel else "")
    log = lambda name: directive_value(os.path.join(logs.replace("%", "%%"), name))  # noqa: E731
    common = [f"--time={limit}", f"--chdir={directive_value(workdir)}", *extra]
    task = [python, sweep_script, *sweep_args, "--shard", "slurm"]
    lines = [
        "#!/bin/bash",
        f"# The gmmdiff sweep {out} ({n_configs} configurations in {n_units} units) as a Slurm",
        f"# job array of {n_tasks} tasks; written by gmmdiff-sweep {version} on "
        f"{time.strftime('%Y-%m-%d')}.",
        "#",
        f"#   bash {q(script_path)}     submits the array, then the summary job after it",
        f"#   sbatch {q(script_path)}   submits the array alone",
        "#",
        "# Task t of T trains units t, t+T, ... of the sweep (--shard slurm): the batches a",
        "# one-process sweep trains, the same results bit for bit. Slurm's SIGTERM (preemption,",
        f"# or {SIGNAL_BEFORE_S} s before the time limit) makes a task save its checkpoint and "
        f"exit {REQUEUE_EXIT};",
        "# this script then requeues it, and it resumes from the checkpoint.",
        f"# Time limit: {time_note}.",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array={array}",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={cpus_per_task}",
        *(f"#SBATCH {opt}" for opt in common),
        *(["#SBATCH --gres=gpu:1"] if gpu else []),
        f"#SBATCH --signal=TERM@{SIGNAL_BEFORE_S}",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={log('task-%A_%a.out')}",
        f"#SBATCH --error={log('task-%A_%a.err')}",
        "",
        'if [ -z "${SLURM_JOB_ID:-}" ]; then',
        "    # run by bash, not by sbatch: submit the array, then the summary job after it",
        f"    mkdir -p -- {q(logs)}",
        '    array=$(sbatch --parsable -- "$0") || exit 1',
        '    array=${array%%;*}',
        '    summary=$(sbatch --parsable --dependency="afterok:$array" <<\'SUMMARY\'',
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}-summary",
        "#SBATCH --kill-on-invalid-dep=yes",
        "#SBATCH --ntasks=1",
        "#SBATCH --cpus-per-task=1",
        *(f"#SBATCH {opt}" for opt in common),
        f"#SBATCH --output={log('summary-%j.out')}",
        "set -e",
        " ".join(map(q, [python, sweep_script, "--summary", out])),
        " ".join(map(q, [python, predict_script, "--fit", out])),
        "SUMMARY",
        "    ) || exit 1",
        f'    echo "submitted the array, job $array ({n_tasks} tasks), and the summary job '
        '$summary, which runs once every task has succeeded"',
        "    exit 0",
        "fi",
        "",
        "# an array task. SIGTERM reaches gmmdiff-sweep through srun. This shell gets one only",
        "# when the task is cancelled (scancel) or preempted: it notes it and does not requeue",
        "cancelled=",
        "trap 'cancelled=1; echo \"$(date \"+%F %T\") task $SLURM_ARRAY_TASK_ID: SIGTERM to the "
        "batch shell (scancel or preemption)\" >&2' TERM",
        f"export {CORES_ENV}=${{SLURM_CPUS_PER_TASK:-{cpus_per_task}}}",
        'echo "$(date "+%F %T") task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT '
        '(job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}) on $(hostname -s), '
        'restart ${SLURM_RESTART_COUNT:-0}"',
        "srun " + " ".join(map(q, task)),
        "status=$?",
        f"if {{ [ $status -eq {REQUEUE_EXIT} ] || [ $status -eq {TERM_STATUS} ]; }} && "
        "[ -z \"$cancelled\" ]; then",
        f"    # stopped by SIGTERM, work saved ({REQUEUE_EXIT}), or ended by it while Python was "
        f"starting ({TERM_STATUS}:",
        "    # before gmmdiff-sweep could hold the signal, nothing written): back into the queue",
        '    echo "$(date "+%F %T") task $SLURM_ARRAY_TASK_ID: stopped with its work saved, requeueing"',
        '    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" && exit 0',
        '    echo "scontrol requeue failed: submit the script again, the sweep resumes" >&2',
        "fi",
        'echo "$(date "+%F %T") task $SLURM_ARRAY_TASK_ID: gmmdiff-sweep exited with status $status"',
        "exit $status",
    ]
    return "\n".join(lines) + "\n"


def write_new_file(path, text):
    """Write ``text`` to ``path``, a new file (executable, as the umask allows); an
    existing file is refused (ValueError naming it), never replaced, and a failed write
    leaves nothing under ``path`` (a temporary file, linked to ``path`` once whole)."""
    path = check_target(os.path.abspath(path), "--sbatch", directory=False)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)                       # fails, rather than replaces, if it exists
    except FileExistsError:
        raise ValueError(f"--sbatch {path} exists; give a new file name (nothing is "
                         "overwritten)") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def describe_estimate(seconds_per_task, what):
    """The comment on an estimated time limit: where it comes from."""
    longest = max(seconds_per_task)
    return (f"{TIME_FACTOR:g} x the longest task's estimated training, {duration(longest)} "
            f"(timed here: {what}), + {TIME_MARGIN_S // 60} minutes")


def write_array_script(ctx, spec, *, path, out, group, backend, sweep_script, n_tasks=None,
                       parallel=None, time_limit_text=None, cpus_per_task=1, extra=(), logs=None):
    """``gmmdiff-sweep ... --sbatch PATH``: check every path and value the script will
    hold (:func:`check_carriable`, :func:`check_directive_value`, :func:`check_target`:
    the script a new file, its log directory ``logs`` -- default: beside the sweep
    directory, ``<out>-logs`` -- and the sweep directory each in an existing writable
    directory), the array's size (:func:`array_size`), the cores and the time limit
    (``time_limit_text``, or estimated by a short timing on this machine with
    ``cpus_per_task`` cores) and the sweep (its settings, and its directory, created with
    ``sweep.json`` if new, as a task would) -- all before anything is written -- then
    create the log directory and write the batch script to the new file ``path``;
    returns the lines to print. ``ctx``: the sweep command's click context (its options
    become every task's command)."""
    import sys

    import numpy as np

    from gmmdiff.backend import get_xp
    from gmmdiff.cli.progress import estimate_sweep_seconds
    from gmmdiff.experiments.sweep.units import check_configuration, open_sweep, shard_units
    from gmmdiff.version import __version__

    path, out = os.path.abspath(path), os.path.abspath(out)
    logs = os.path.abspath(logs) if logs is not None else out + "-logs"
    workdir = os.getcwd()
    predict = os.path.join(os.path.dirname(sweep_script), "gmmdiff-predict")
    exclude = set(SCRIPT_OPTIONS) | {"out", "shard"}
    sweep_args = [*command_line(ctx, exclude), "--out", out]
    for value, what in [(path, "--sbatch"), (out, "--out"), (sys.executable, "the Python "
                        "interpreter"), (sweep_script, "gmmdiff-sweep's path"),
                        (predict, "gmmdiff-predict's path"), *((a, "the sweep option")
                                                               for a in sweep_args),
                        *((o, "--sbatch-option") for o in extra)]:
        check_carriable(value, what)
    check_directive_value(logs, "--logs" if ctx.params.get("logs") else "the log directory",
                          "" if ctx.params.get("logs") else " (or give --logs elsewhere)")
    check_directive_value(workdir, "the current directory",
                          " (the jobs' --chdir: write the script from another directory)")
    check_target(path, "--sbatch", directory=False)
    check_target(logs, "--logs", directory=True)
    check_target(out, "--out", directory=True)
    if cpus_per_task > MAX_CPUS_PER_TASK:
        raise ValueError(f"--cpus-per-task {cpus_per_task} is more cores than any node has; "
                         f"accepted: 1 to {MAX_CPUS_PER_TASK}")
    units = shard_units(spec.configurations(), group=group)
    n_tasks = array_size(n_tasks, len(units))
    if parallel is not None and parallel >= n_tasks:
        parallel = None                              # (no limit is needed)
    seconds = parse_time(time_limit_text) if time_limit_text is not None else None
    if seconds is None:
        try:
            xp = get_xp(backend)
        except ValueError as exc:
            raise ValueError(f"--sbatch: cannot time the sweep on backend {backend} here ({exc}); "
                             "give --time, a task's time limit such as 4:00:00") from None
        spec.validate(xp)
        with cores(cpus_per_task):
            total, what = estimate_sweep_seconds(units, spec.coarse, spec.refine, xp)
        per_task = task_seconds(units, n_tasks, spec.coarse, spec.refine, total)
        seconds, note = time_limit(max(per_task)), describe_estimate(per_task, what)
    else:
        spec.validate(np if backend == "numpy" else None)
        note = f"--time {time_limit_text}"
    open_sweep(out, spec, backend)                   # checks, then creates (nothing if refused)
    for cfg in spec.configurations():
        check_configuration(out, cfg, spec, backend)
    text = batch_script(
        python=sys.executable, sweep_script=sweep_script, predict_script=predict,
        sweep_args=sweep_args, out=out, logs=logs, workdir=workdir, script_path=path,
        n_tasks=n_tasks, n_units=len(units), n_configs=len(spec.configurations()),
        time_s=seconds, time_note=note, cpus_per_task=cpus_per_task, parallel=parallel,
        gpu=backend == "cupy", extra=extra, version=__version__)
    if not os.path.isdir(logs):
        os.mkdir(logs)                               # (its parent checked: never makedirs)
    write_new_file(path, text)
    at_once = f" (at most {parallel} at once)" if parallel else ""
    return [f"wrote {path}: a Slurm array of {n_tasks} tasks{at_once} for the {len(units)} units "
            f"of {out}, time limit {format_time(seconds)} a task ({note}); logs in {logs}",
            f"submit the array and the summary job after it:  bash {shlex.quote(path)}",
            f"(or the array alone:  sbatch {shlex.quote(path)})"]
