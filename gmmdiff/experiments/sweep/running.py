"""Running a sweep: its units, one array program per phase.

Per configuration:

1. train the coarse grid M = N/10, 2N/10, ..., N;
2. detect the transition on it and train about ten more sizes evenly between the
   coarse start (last size below 0.1) and end (first size at or above 0.9);
3. write ``baselines.json`` (per-time Monte Carlo losses of theta*, theta_mem and
   theta_pmem,M at every trained size, the three approximations and their relative
   error against Monte Carlo) and, last, ``transition.json`` -- its presence marks the
   configuration complete.

Within a shard, unfinished configurations that share N, d and s* (several seeds and K)
train together in one array program per phase, each model with its own draws; the
phase's checkpoint lives in the sweep directory.
"""
import os

import numpy as np

from gmmdiff.backend import backend_name, probe_cupy
from gmmdiff.experiments.runs import open_run_dir, run_batch
from gmmdiff.experiments.sweep.plans import PLAN_FILE, check_refine, coarse_sizes, read_plan
from gmmdiff.experiments.sweep.spec import run_name
from gmmdiff.experiments.sweep.units import (
    check_configuration,
    check_unit_checkpoints,
    crash_point,
    hold_run_dirs,
    is_complete,
    open_sweep,
    shard_units,
    tidy_finished_unit,
)
from gmmdiff.analysis.transition import detect, fit_curve
from gmmdiff.io import locks
from gmmdiff.io.files import write_json
from gmmdiff.training import interrupt


def run_group(cfgs, sweep_dir, xp, *, coarse=10, refine=10, tag="group", callback=None,
              checkpoint_every=1000, fused=False, echo=None):
    """Coarse grid, adaptive refinement, baselines and transition of configurations that
    share N and d, each phase training all of them in one array program
    (:func:`gmmdiff.experiments.runs.run_batch`); checkpoints live in ``sweep_dir``.

    ONE plan of sizes: each configuration's ``plan.json`` records the sizes of a phase
    (atomically) before the phase trains -- the coarse sizes first, the refinement
    sizes (:func:`refine_sizes` of the coarse curve alone) once the coarse phase is
    done -- and a resumed unit trains exactly the recorded sizes, so a killed and
    resumed sweep ends with the files of an uninterrupted one. A recorded refinement
    that is not :func:`refine_sizes` of the coarse results is refused
    (:func:`check_refine`) before any refinement size trains. ``echo`` (a function of
    one line) reports how many sizes the refinement added per configuration."""
    echo = echo or (lambda line: None)
    backend = backend_name(xp)
    plans = []
    for c in cfgs:
        rd = os.path.join(sweep_dir, run_name(c))
        open_run_dir(c, rd, backend).close()            # config.json before the plan
        plan = read_plan(rd, c, coarse)
        if plan is None:
            plan = {"coarse": coarse_sizes(c.samples, coarse)}
            write_json(os.path.join(rd, PLAN_FILE), plan)
        plans.append((c, rd, plan))
    kw = dict(callback=callback, checkpoint_every=checkpoint_every, fused=fused)
    rows = run_batch([(c, rd, p["coarse"]) for c, rd, p in plans], xp,
                     checkpoint=os.path.join(sweep_dir, f"checkpoint-{tag}-coarse.npz"), **kw)
    rows = [_evaluated(r) for r in rows]
    crash_point("coarse-done")
    for (c, rd, plan), coarse_rows in zip(plans, rows):
        # a recorded refinement is checked here too: with coarse results missing (a
        # damaged size removed from the index), the check before the unit could not
        # make it; the coarse phase retrained them, the refinement has not trained
        derived = check_refine(rd, plan, [r["M"] for r in coarse_rows],
                               [r["memorization"]["ratio"] for r in coarse_rows], c.samples, refine)
        if "refine" not in plan:
            plan["refine"] = derived
            write_json(os.path.join(rd, PLAN_FILE), plan)
        added = plan["refine"]
        echo(f"{run_name(c)}: refinement adds {len(added)} sizes"
             + (f" ({', '.join(map(str, added))})" if added else
                " (the coarse grid brackets no crossing of 1/2)" if refine else ""))
    crash_point("refine-planned")
    extra = [(k, (c, rd, p["refine"])) for k, (c, rd, p) in enumerate(plans) if p["refine"]]
    if extra:
        done = run_batch([item for _, item in extra], xp,
                         checkpoint=os.path.join(sweep_dir, f"checkpoint-{tag}-refine.npz"), **kw)
        for (k, _), more in zip(extra, done):
            rows[k] = sorted(rows[k] + _evaluated(more), key=lambda r: r["M"])
    crash_point("refine-done")
    for (_, rd, _), config_rows in zip(plans, rows):
        if not config_rows:             # every size diverged: no curve, no transition
            echo(f"{os.path.basename(rd)}: every model size diverged; no transition")
            continue
        write_json(os.path.join(rd, "baselines.json"), baselines_table(config_rows))
        crash_point("baselines-written")
        write_json(os.path.join(rd, "transition.json"), transition_of(config_rows))
        crash_point("transition-written")


def _evaluated(rows):
    """The rows of sizes with results (a diverged size's record has none)."""
    return [r for r in rows if r.get("status") != "diverged"]


def transition_of(rows):
    M = np.array([r["M"] for r in rows], dtype=np.float64)
    ratio = [r["memorization"]["ratio"] for r in rows]
    lo = [r["memorization"]["interval"][0] for r in rows]
    hi = [r["memorization"]["interval"][1] for r in rows]
    counts = [r["memorization"]["count"] for r in rows]
    n = [r["memorization"]["n"] for r in rows]
    return dict(detect(M, ratio, lo, hi), M=M.tolist(), ratio=ratio,
                fit=fit_curve(M, counts, n, rows[0]["M"] / rows[0]["M_over_N"]))


def baselines_table(rows):
    """Per-time Monte Carlo baselines over the trained sizes, with the approximations
    and their relative error against Monte Carlo (excess over theta_mem)."""
    pl = rows[0]["per_time_losses"]
    mem_train = np.asarray(pl["memorizing_train"])
    mc_gen = np.asarray(pl["generalizing_train"]) - mem_train
    out = {"times": rows[0]["times"], "M": [r["M"] for r in rows],
           "generalizing_train": pl["generalizing_train"], "generalizing_test": pl["generalizing_test"],
           "memorizing_train": pl["memorizing_train"], "memorizing_test": pl["memorizing_test"],
           "pmem_train": [r["per_time_losses"]["pmem_train"] for r in rows],
           "pmem_test": [r["per_time_losses"]["pmem_test"] for r in rows]}
    approx = [r["approximations_excess_over_memorizing"] for r in rows]
    out["approx_generalizing"] = approx[0]["generalizing"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rel_err_generalizing"] = (np.asarray(approx[0]["generalizing"]) / mc_gen - 1).tolist()
        for method in ("simple", "nearest", "expected"):
            a = np.array([ap[method] for ap in approx])
            mc = np.array(out["pmem_train"]) - mem_train[None, :]
            out[f"approx_{method}"] = a.tolist()
            out[f"rel_err_{method}"] = (a / mc - 1).tolist()
    return out


def run_sweep(spec, sweep_dir, xp, *, shard_spec=(0, 1), array_task=None, callback=None,
              echo=print, checkpoint_every=1000, group=True, fused=False, progress=None):
    """Run (or resume) this shard's configurations; finished ones are skipped.

    ``shard_spec`` (i, n): configurations i, i + n, ... (``--shard i/n``); ``array_task``
    (t, T) instead: task t of T's share of the one-process sweep's units, the same
    batches and files as one process would make (``--shard slurm``,
    ``gmmdiff.experiments.sweep.units.shard_units``; submitit and other Python
    launchers call this with their task index and count).

    With ``group`` the shard's configurations that share N and d (different seeds and
    K) train together in one array program per phase; without it, one configuration at
    a time. Results are the same either way (each model keeps its own draws), up to
    floating-point rounding, and the same whichever process trains a unit.

    Each unit of work (the configurations trained together) is claimed with a lock file in the sweep
    directory (:mod:`gmmdiff.io.locks`) for as long as it trains: several processes running
    the same sweep command on one directory (``--jobs``, ``--devices``, or commands
    started by hand on several machines) share the units dynamically, each taking the
    next free one. Returns the units this process skipped because another live process
    held them, as ``[(name, holder)]``.

    Parameters
    ----------
    spec : SweepSpec
        The grids and shared settings.
    sweep_dir : str
        The sweep directory (created if new; another sweep's is refused).
    xp : module
        ``numpy`` (CPU) or ``cupy`` (GPU).
    shard_spec : (int, int)
        ``(i, n)``: run part i of n (0-based), as ``--shard i/n``.
    array_task : (int, int), optional
        ``(t, T)``: task t of an array of T (``--shard slurm``), instead of ``shard_spec``.
    callback : callable, optional
        Called as ``callback(step, losses)`` during training, as in :func:`run`.
    echo : callable
        Prints one line of news (sizes added by the refinement, units done).
    checkpoint_every : int
        Steps between checkpoints.
    group : bool
        Train the configurations sharing N and d together.
    fused : bool
        cupy: train with the fused kernels.
    progress : object, optional
        The progress reporter of ``gmmdiff-sweep`` (``gmmdiff.cli.progress.SweepProgress``)
        of this shard's units; it reports during training and after each unit.

    Returns
    -------
    list of (str, str)
        The units this process skipped because another live process held them, as
        ``(name, holder)``.
    """
    spec.validate(xp)
    if backend_name(xp) == "cupy":
        probe_cupy(xp)          # CuPy's CUDA libraries load on first use: fail before writing
    open_sweep(sweep_dir, spec, backend_name(xp))
    mine, units = check_shard(spec, sweep_dir, backend_name(xp), shard_spec, group=group,
                              array_task=array_task)
    for cfg in mine:
        echo(f"{run_name(cfg)}: {'done' if is_complete(sweep_dir, cfg) else 'to train'}")
    busy = []
    for name, cfgs in units:
        interrupt.check(f"before unit {name}")      # a signal inside stop_on: stop here
        lock = locks.try_lock(os.path.join(sweep_dir, f".lock-{name}"))
        if lock is not None and all(is_complete(sweep_dir, c) for c in cfgs):
            with lock:
                tidy_finished_unit(sweep_dir, name, cfgs)
            continue
        if lock is None:
            holder = locks.Lock(os.path.join(sweep_dir, f".lock-{name}")).holder()
            echo(f"{name}: being trained by {holder}; skipped")
            busy.append((name, holder))
            continue
        with lock:
            todo = [c for c in cfgs if not is_complete(sweep_dir, c)]  # as of the claim
            if not todo:
                tidy_finished_unit(sweep_dir, name, cfgs)
                continue
            # the configurations' run directories, held for the whole unit: a process
            # that split the sweep otherwise (--shard, --no-group) skips them too
            held = hold_run_dirs(sweep_dir, todo)
            if isinstance(held, str):
                echo(f"{name}: {held}; skipped")
                busy.append((name, held))
                continue
            try:
                echo(f"training {', '.join(run_name(c) for c in todo)}")
                run_group(todo, sweep_dir, xp, coarse=spec.coarse_points, refine=spec.refine, tag=name,
                          callback=_both(callback, progress and progress.training_callback(name)),
                          checkpoint_every=checkpoint_every, fused=fused, echo=echo)
            except interrupt.Interrupted as exc:
                raise interrupt.Interrupted(exc.signum, f"{exc.where} in unit {name}") from None
            finally:
                for rd_lock in held:
                    rd_lock.release()
            if progress is not None:
                progress.report(force=True)
            # lock files and temporaries a killed process left in the unit's other
            # configurations (finished before the kill): the completing run removes them
            tidy_finished_unit(sweep_dir, name, cfgs)
    return busy


def check_shard(spec, sweep_dir, backend, shard_spec=(0, 1), *, group=True, array_task=None):
    """Every file this process's share of the sweep reads -- ``shard_spec`` = (i, n), or
    the Slurm array task ``array_task`` = (t, T) (:func:`gmmdiff.experiments.sweep.units.
    shard_units`) -- checked before any work (:func:`check_configuration` of each
    configuration, the lock paths and checkpoints of each unit): StorageError naming the
    first damaged one; reads, writes nothing. Returns (the share's configurations in
    canonical order, its units)."""
    units = shard_units(spec.configurations(), group=group, shard_spec=shard_spec,
                        array_task=array_task)
    ours = {run_name(c) for _, cfgs in units for c in cfgs}
    mine = [c for c in spec.configurations() if run_name(c) in ours]
    for cfg in mine:
        check_configuration(sweep_dir, cfg, spec, backend)
    for name, cfgs in units:
        locks.check_lock_path(os.path.join(sweep_dir, f".lock-{name}"))
        check_unit_checkpoints(sweep_dir, name, cfgs)
    return mine, units


def _both(a, b):
    """One training callback calling ``a`` and ``b`` (either may be None)."""
    if a is None or b is None:
        return a or b
    return lambda step, losses: (a(step, losses), b(step, losses))
