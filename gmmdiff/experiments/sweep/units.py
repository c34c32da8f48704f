"""A sweep's units of work and its directory: who trains what, and what is checked first.

Configurations that share N, d and s* (several seeds and K) form one unit, trained in
one array program per phase (:func:`work_units`); ``--shard i/n`` takes configurations
i, i + n, i + 2n, ... of the canonical order, ``--shard slurm`` (task t of a Slurm array
of T) units t, t + T, ... of the one-process sweep's (:func:`shard_units`). Each unit is claimed with a lock file in
the sweep directory for as long as it trains, so identical commands on one directory
share the work. Before anything is written, every configuration's run directory and
every unit checkpoint is read and checked (:func:`check_configuration`,
:func:`check_unit_checkpoints`); before a summary or a figure, every file they read
(:func:`check_run_identity`, :func:`check_sweep_files`).
"""
import os
import signal
import time
import zipfile

import numpy as np

from gmmdiff.experiments.checks import (
    check_checkpoint,
    check_model_arrays,
    check_run,
    check_run_dir,
    read_config,
)
from gmmdiff.experiments.runs import identity as runs_identity
from gmmdiff.experiments.sweep.plans import check_refine, read_plan
from gmmdiff.experiments.sweep.spec import init_tag, read_sweep_file, run_name, var_tag
from gmmdiff.io import locks
from gmmdiff.io.files import StorageError, check_identity, remove_temporaries, write_json
from gmmdiff.io.rundir import RunDir, completed_sizes, evaluated_sizes, leftovers_only
from gmmdiff.io.schemas import read_fit_scores, read_metrics, read_transfer, read_transition


def crash_point(name):
    """Test hook of the kill harness (benchmarks/kill_harness.py): with
    ``GMMDIFF_KILL_AT=name[:n]`` in the environment, the process SIGKILLs itself the
    n-th time (default: the first) it reaches the point ``name`` of a sweep unit
    ("coarse-done", "refine-planned", "refine-done", "baselines-written",
    "transition-written"). Without the variable it does nothing."""
    spec = os.environ.get("GMMDIFF_KILL_AT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _CRASH_COUNTS[name] = _CRASH_COUNTS.get(name, 0) + 1
    if _CRASH_COUNTS[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


_CRASH_COUNTS = {}


SWEEP_LOCK = ".lock-sweep"


SWEEP_LOCK_WAIT_S = 30.0        # how long a process waits for another's sweep.json check


def open_sweep(sweep_dir, spec, backend):
    """Create or check ``sweep_dir/sweep.json`` (a different sweep, or a directory that
    holds anything else, is refused) and remove temporary files of killed writers.

    The check and the creation of sweep.json happen under the sweep directory's lock
    ``.lock-sweep`` (held for that moment only), so of two different sweeps started
    together on a new directory one creates it and the other is refused."""
    path = os.path.join(sweep_dir, "sweep.json")
    ident = spec.identity(backend)
    if os.path.islink(sweep_dir) and not os.path.isdir(sweep_dir):
        raise StorageError(f"--out {sweep_dir} is a dangling symbolic link")
    if os.path.exists(sweep_dir) and not os.path.isdir(sweep_dir):
        raise StorageError(f"--out {sweep_dir} exists and is not a directory")
    if os.path.isdir(sweep_dir):                   # refuse before creating anything
        _check_sweep_dir(sweep_dir, path, ident)
    try:
        os.makedirs(sweep_dir, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create sweep directory {sweep_dir}: {exc.strerror}") from None
    lock = locks.Lock(os.path.join(sweep_dir, SWEEP_LOCK))
    deadline = time.monotonic() + SWEEP_LOCK_WAIT_S
    while not lock.acquire():                      # another process checks or creates it
        if time.monotonic() > deadline:
            raise StorageError(f"{sweep_dir} is being set up by {lock.holder()} for longer "
                               f"than {SWEEP_LOCK_WAIT_S:.0f} s; try again")
        time.sleep(0.05)
    with lock:
        _check_sweep_dir(sweep_dir, path, ident)
        remove_temporaries(sweep_dir)  # (a unit's lock file left by a killed process is
                                       # harmless: the next claim of its unit takes it over)
        if not os.path.exists(path):
            write_json(path, {"identity": ident})


def _check_sweep_dir(sweep_dir, path, ident):
    # sweep.json is looked for again after the listing: another process may create it
    # (and its first run directory) between the two looks, which must read as that
    # sweep, not as a directory of something else
    if not os.path.lexists(path) and not leftovers_only(sweep_dir) and not os.path.lexists(path):
        raise StorageError(f"{sweep_dir} is not empty and is not a gmmdiff sweep directory; "
                           "choose an empty or new --out")
    if os.path.lexists(path):
        read_sweep_file(path)
        check_identity(path, ident, f"{sweep_dir} holds a different sweep", "choose another directory")


def tidy_finished_unit(sweep_dir, name, cfgs):
    """Remove what kills left in a finished unit (whose lock the caller holds): its
    checkpoints (a kill between its last result and their removal) and temporary files
    in its configurations' run directories."""
    for phase in ("coarse", "refine"):
        p = os.path.join(sweep_dir, f"checkpoint-{name}-{phase}.npz")
        if os.path.exists(p):
            os.unlink(p)
    for cfg in cfgs:
        rd = os.path.join(sweep_dir, run_name(cfg))
        lock = locks.try_lock(os.path.join(rd, ".lock"))
        if lock is not None:
            with lock:
                remove_temporaries(rd)


def work_units(cfgs, *, group=True, tag=""):
    """The units of work of a sweep (or of one shard of it, ``tag`` naming the shard):
    ``[(name, [configurations])]``. With ``group``, configurations that share N, d and
    s* (seeds and K) form one unit, trained in one array program; without, each
    configuration is a unit. Units come largest first (estimated cost per step
    ~ N noise_draws (N + d) per configuration), so processes that take units in turn
    finish close together."""
    units = {}
    for cfg in cfgs:
        key = (f"N{cfg.samples}-d{cfg.dim}{var_tag(cfg)}{init_tag(cfg)}{tag}" if group
               else run_name(cfg))
        units.setdefault(key, []).append(cfg)

    def cost(item):
        c = item[1][0]
        return c.samples * c.noise_draws * (c.samples + c.dim) * len(item[1])

    return sorted(units.items(), key=cost, reverse=True)


def shard_units(cfgs, *, group=True, shard_spec=(0, 1), array_task=None):
    """This process's units of a sweep whose configurations are ``cfgs`` (canonical
    order): those of ``--shard i/n`` (``shard_spec``: configurations i, i + n, ... grouped
    among themselves) or, given ``array_task`` (t, T) (``--shard slurm``), units t, t + T,
    ... of the one-process sweep's units (:func:`work_units`, largest first): the same
    units, batches and file names as a one-process sweep, so its results are the same
    bit for bit and a one-process command or an array of any size on the same directory
    resumes what another left. An array task beyond the last unit gets none."""
    if array_task is not None:
        t, T = array_task
        return work_units(cfgs, group=group, tag="-shard0of1")[t::T]
    i, n = shard_spec
    return work_units(list(cfgs)[i::n], group=group, tag=f"-shard{i}of{n}")


def is_complete(sweep_dir, cfg):
    """Whether configuration ``cfg`` of the sweep is finished (its transition.json)."""
    return os.path.exists(os.path.join(sweep_dir, run_name(cfg), "transition.json"))


def unit_in_training(sweep_dir, name):
    """How far the unit ``name`` is, as another process sees it from the directory
    (the parent of ``--jobs`` workers): None when no process holds its lock file,
    otherwise (phase, step) of its latest checkpoint -- phase "coarse" or "refine",
    step None before the first checkpoint. Reads, writes nothing; a checkpoint replaced
    while it is read counts as none."""
    if not os.path.exists(os.path.join(sweep_dir, f".lock-{name}")):
        return None
    for phase in ("refine", "coarse"):
        path = os.path.join(sweep_dir, f"checkpoint-{name}-{phase}.npz")
        try:
            with np.load(path) as z:
                return phase, int(z["step"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            continue
    return "coarse", None


def check_configuration(sweep_dir, cfg, spec, backend):
    """Raise StorageError (one line naming the file) unless the run directory of ``cfg``
    in the sweep is absent or usable: a real directory (not a symbolic link) of this
    configuration, with a valid index, plan and transition and, while unfinished, valid
    results of its completed sizes (what a resume reads); reads, writes nothing."""
    rd = os.path.join(sweep_dir, run_name(cfg))
    if os.path.islink(rd):
        raise StorageError(f"{rd} is a symbolic link; a sweep's run directories must be real "
                           "directories inside it (remove the link)")
    if not os.path.lexists(rd):
        return
    check_run_dir(rd, runs_identity(cfg, backend))
    locks.check_lock_path(os.path.join(rd, ".lock"))
    done = evaluated_sizes(rd)              # (a diverged size has no results to read)
    plan = read_plan(rd, cfg, spec.coarse_points)
    if os.path.exists(os.path.join(rd, "transition.json")):      # complete: what it measured
        tr = read_transition(os.path.join(rd, "transition.json"), done)
        if plan is not None and sorted(plan["coarse"] + plan.get("refine", [])) != tr["M"]:
            raise StorageError(f"{os.path.join(rd, 'plan.json')} is not a valid gmmdiff file: "
                               "its sizes are not those its configuration trained (transition.json); "
                               "remove the configuration's directory to retrain it")
        return
    ds = cfg.dataset() if done else None
    ratios = {}
    for M in done:                          # what resuming the configuration reads
        stem = os.path.join(rd, RunDir.model_stem(M))
        ratios[M] = read_metrics(stem + ".json", M)["memorization"]["ratio"]
        check_model_arrays(stem + ".npz", cfg, M, ds)
    if plan is not None and all(M in ratios for M in plan["coarse"]):
        # the recorded refinement, re-derived from the coarse results (while some are
        # missing it cannot be: run_group checks it once they are back)
        check_refine(rd, plan, plan["coarse"], [ratios[M] for M in plan["coarse"]], cfg.samples,
                     spec.refine)


def check_unit_checkpoints(sweep_dir, name, cfgs):
    """Raise StorageError (one line naming the file) when a checkpoint of unit ``name``
    (of the configurations ``cfgs``) in the sweep directory is damaged or could not
    resume their models (:func:`gmmdiff.experiments.checks.check_checkpoint`: a step
    beyond theirs, other parameters); reads, writes nothing."""
    for phase in ("coarse", "refine"):
        check_checkpoint(os.path.join(sweep_dir, f"checkpoint-{name}-{phase}.npz"), cfgs,
                         [run_name(c) for c in cfgs])


def hold_run_dirs(sweep_dir, cfgs):
    """Locks on the run directories of ``cfgs`` (created if missing), or, when another
    process holds one, a line naming it (and nothing held)."""
    held = []
    for cfg in cfgs:
        rd = os.path.join(sweep_dir, run_name(cfg))
        try:
            os.makedirs(rd, exist_ok=True)
        except OSError as exc:                  # a full disk: the line names the directory
            for other in held:
                other.release()
            raise StorageError(f"cannot create run directory {rd}: {exc.strerror}; free space "
                               "on its file system, then re-run the same command") from None
        lock = locks.Lock(os.path.join(rd, ".lock"))
        if not lock.acquire():
            for other in held:
                other.release()
            return f"{run_name(cfg)} is being trained by {lock.holder()}"
        held.append(lock)
    return held


def check_run_identity(run_dir, cfg, backend):
    """Raise StorageError (one line naming the file) unless ``run_dir/config.json`` is
    valid (:func:`gmmdiff.experiments.checks.read_config`) and records configuration
    ``cfg`` on ``backend``: a summary, a fit and a figure read a sweep's run directories
    as resuming it does. Reads, writes nothing (a read-only sweep can be summarized)."""
    read_config(run_dir)
    check_identity(os.path.join(run_dir, "config.json"), runs_identity(cfg, backend),
                   f"{run_dir} holds a run with a different configuration",
                   "remove it or restore the sweep's run directory")


def check_sweep_files(sweep_dir):
    """Read and check every file of a sweep that its figures use (sweep.json; per
    finished configuration its transition, config, index, metrics and arrays; every
    fit file, transfer.json) before a figure is written: StorageError naming the first
    damaged one or a run directory of another configuration."""
    ident, spec = read_sweep_file(os.path.join(sweep_dir, "sweep.json"))
    for cfg in spec.configurations():
        rd = os.path.join(sweep_dir, run_name(cfg))
        if os.path.exists(os.path.join(rd, "transition.json")):
            check_run_identity(rd, cfg, ident["backend"])
            read_transition(os.path.join(rd, "transition.json"), completed_sizes(rd))
            check_run(rd)
    for name in sorted(os.listdir(sweep_dir)):
        if name.startswith("fit_") and name.endswith(".json"):
            read_fit_scores(os.path.join(sweep_dir, name))
    if os.path.exists(os.path.join(sweep_dir, "transfer.json")):
        read_transfer(os.path.join(sweep_dir, "transfer.json"))
