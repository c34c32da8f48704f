"""Sweeps over configurations (N, d, K, data variance s*, seed), each a run directory of
its own.

A sweep directory holds ``sweep.json`` (the sweep's identity: the grids and every
training setting) and one run directory per configuration, named
``N{N}-d{d}-K{K}-s{seed}`` (``N{N}-d{d}-K{K}-v{s*}-s{seed}`` for s* other than 1), in the format of :mod:`gmmdiff.runs` (atomic files,
resume, refusal of foreign configurations). Per configuration:

1. train the coarse grid M = N/10, 2N/10, ..., N;
2. detect the transition on it and train about ten more sizes evenly between the
   coarse start (last size below 0.1) and end (first size at or above 0.9);
3. write ``baselines.json`` (per-time Monte Carlo losses of theta*, theta_mem and
   theta_pmem,M at every trained size, the three approximations and their relative
   error against Monte Carlo) and, last, ``transition.json`` -- its presence marks the
   configuration complete.

``--shard i/n`` takes configurations i, i + n, i + 2n, ... (0-based) of the canonical
order, so n processes (a Slurm array, several GPUs) split a sweep with no overlap.
Within a shard, unfinished configurations that share N, d and s* (several seeds and K)
train together in one array program per phase, each model with its own draws; the
phase's checkpoint lives in the sweep directory.
"""
import csv
import dataclasses
import io
import os
import signal
import time
from dataclasses import dataclass, field

import numpy as np

from . import locks
from .backend import backend_name, probe_cupy
from .config import TrainConfig
from .data import check_positive_int
from .memory import check_run_fits
from .predict import SOURCES, approximation_curves, config_of, curves_from_results, predicted_ratio
from .runs import RESULTS_FORMAT, open_run_dir, run_batch
from .runs import identity as runs_identity
from .storage import (RunDir, StorageError, atomic_write_bytes, check_identity, completed_sizes,
                      leftovers_only, load_run, read_checked, read_metrics, read_model_arrays,
                      read_record, read_transition,
                      remove_temporaries, schema_error, write_json)
from .state import TrainState
from .transition import MIN_SIZES, detect, fit_curve

SWEEP_FIELDS = ("samples", "dim", "components", "seed")


def parse_int_list(spec, name, minimum=1):
    """'50,100,150' -> [50, 100, 150] (sorted, distinct); ValueError names the value."""
    try:
        values = sorted({int(p) for p in str(spec).split(",") if p.strip()})
    except ValueError:
        raise ValueError(f"{name} {spec!r} must be a comma-separated list of integers") from None
    if not values or values[0] < minimum:
        raise ValueError(f"{name} {spec!r} must be integers >= {minimum}")
    return values


def parse_float_list(spec, name):
    """'0.5,1,2' -> (0.5, 1.0, 2.0) (sorted, distinct, finite and > 0); ValueError names
    the value."""
    try:
        values = sorted({float(p) for p in str(spec).split(",") if p.strip()})
    except ValueError:
        raise ValueError(f"{name} {spec!r} must be a comma-separated list of numbers") from None
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} {spec!r} must be finite numbers > 0")
    return values


def parse_shard(spec):
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(p) for p in str(spec).split("/"))
    except ValueError:
        raise ValueError(f"shard {spec!r} not understood; accepted: 'i/n' with 0 <= i < n") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {spec!r} must satisfy 0 <= i < n")
    return i, n


def shard(items, i, n):
    """The i-th of n disjoint parts of ``items`` (round robin, 0-based)."""
    return list(items)[i::n]


# Named sweeps of gmmdiff-sweep --preset: the grids, model-size points and the training
# settings that differ from TrainConfig's defaults (50,000 steps, pmem init, the paper's
# schedule and 26-point grid in both).
#
# "cpu" is the paper's experiment at laptop sizes: 3 x 3 x 3 configurations x 2 seeds,
# sizes like the built-in default's (N = 20, d = 10, K = 2) and up, 10 noise draws like
# the built-in default. Chosen from measured step times (2-core CPU, 30 models per
# batch: ~0.1 ms per model-step at N = 20, d = 10 and ~0.4 ms at N = 40, d = 20) so that
# the sweep takes about an hour with --jobs 2: a coarse grid of 5 sizes (0.2N .. N)
# and 6 refinement sizes between the coarse start and end, about 10 trained sizes per
# configuration.
PRESETS = {
    "paper": dict(samples="50,100,150,200", dims="30,40,50,60", components="3,6,9,12",
                  seeds="0", coarse=10, refine=10, noise_draws=100),
    "cpu": dict(samples="20,30,40", dims="10,15,20", components="2,3,4", seeds="0,1",
                coarse=5, refine=6, noise_draws=10),
    # "svar" tests the one prediction the simple theory makes (M*/N moves with the data
    # variance s*, not with N, d or K): s* in {0.5, 1, 2} at 2 laptop settings (N = 20,
    # d = 10, K in {2, 3}), 5 seeds each, the cpu preset's protocol: 30 configurations in
    # 3 units (one per s*). Sized from timings measured on the shared 2-core machine
    # (2,000-step pilots: about 1 s of CPU per configuration at N = 20, 2.5x that with
    # the refinement sizes): about 1,900 CPU seconds, ~21 minutes with --jobs 2 on 2 idle
    # cores. (A first version with N in {20, 30} -- ~40 idle minutes -- ran at a quarter of
    # a core per worker on the machine shared with four other jobs and would have missed
    # its deadline; it was stopped after 9 minutes.)
    "svar": dict(samples="20", dims="10", components="2,3", seeds="0,1,2,3,4",
                 data_vars="0.5,1,2", coarse=5, refine=6, noise_draws=10),
}


MAX_POINTS = 1000           # model sizes per phase and configuration


@dataclass(frozen=True)
class SweepSpec:
    """The grids of a sweep and the training settings shared by its configurations."""
    samples: tuple = (50, 100, 150, 200)
    dims: tuple = (30, 40, 50, 60)
    components: tuple = (3, 6, 9, 12)
    seeds: tuple = (0,)
    data_vars: tuple = None     # data variances s*; None: the base's data_var only
    base: TrainConfig = field(default_factory=lambda: TrainConfig(noise_draws=100))
    coarse: int = 10
    refine: int = 10

    def validate(self, xp=None):
        """Raise ValueError naming the first bad setting or, given the backend ``xp``,
        a unit whose training would not fit in its memory; writes nothing."""
        check_positive_int("coarse grid points (--coarse)", self.coarse, minimum=2)
        check_positive_int("refinement points (--refine)", self.refine, minimum=0)
        if self.coarse > MAX_POINTS or self.refine > MAX_POINTS:
            raise ValueError(f"--coarse {self.coarse} / --refine {self.refine}: at most "
                             f"{MAX_POINTS} model sizes per phase")
        for cfg in self.configurations():
            cfg.validate()
        if xp is None:
            return self
        # the costliest unit: the largest N and d, every K and seed in one batch
        big = max(self.configurations(), key=lambda c: (c.samples, c.dim))
        n_big = len(self.components) * len(self.seeds)
        check_run_fits(big, coarse_sizes(big.samples, self.coarse) * n_big, xp, n_configs=n_big)
        return self

    def variances(self):
        """The data variances s* of the sweep: ``data_vars`` or the base's one."""
        return tuple(self.data_vars) if self.data_vars is not None else (self.base.data_var,)

    def configurations(self):
        """Every configuration, in the canonical order (N, d, K, s*, seed)."""
        return [dataclasses.replace(self.base, samples=N, dim=d, components=K, data_var=v, seed=s)
                for N in self.samples for d in self.dims for K in self.components
                for v in self.variances() for s in self.seeds]

    def identity(self, backend):
        base = {k: v for k, v in dataclasses.asdict(self.base).items() if k not in SWEEP_FIELDS}
        ident = {"samples": list(self.samples), "dims": list(self.dims),
                 "components": list(self.components), "seeds": list(self.seeds),
                 "coarse": self.coarse, "refine": self.refine, "base": base,
                 "backend": backend, "results_format": RESULTS_FORMAT}
        if self.data_vars is not None:  # (absent from sweeps of one s*, as before the axis)
            ident["data_vars"] = [float(v) for v in self.data_vars]
            base.pop("data_var")
        return ident


def _var_tag(cfg):
    """'' for s* = 1 (the names of sweeps before the s* axis), '-v0.5' otherwise."""
    return "" if cfg.data_var == 1.0 else f"-v{cfg.data_var:g}"


def run_name(cfg):
    return f"N{cfg.samples}-d{cfg.dim}-K{cfg.components}{_var_tag(cfg)}-s{cfg.seed}"


def coarse_sizes(N, points):
    """M = N/points, 2N/points, ..., N, rounded (distinct, >= 1)."""
    return sorted({max(1, int(round(N * k / points))) for k in range(1, points + 1)})


def refine_sizes(M, ratio, N, points):
    """Up to ``points`` new sizes around the transition of a coarse curve (SPEC 9).

    M : (J,) increasing coarse sizes;  ratio : (J,) their memorization ratios.
    Whenever the coarse grid brackets an upward crossing of 1/2 (``r[j-1] < 1/2 <=
    r[j]``, the first one, as :func:`gmmdiff.transition.crossing` takes it), the new
    sizes lie strictly between the coarse start and end: the last size below 0.1
    before the crossing and the first size at or above 0.9 after it; where the coarse
    grid has no start or no end (nothing below 0.1, or nothing at or above 0.9),
    between the sizes that bracket the crossing, ``M[j-1]`` and ``M[j]``. The sizes are integers of that open range that are not
    coarse sizes, spread evenly over them: ``points`` of them, or all when the range
    holds fewer. Without a bracketed crossing (or with ``points`` 0) nothing is added.
    """
    M = [int(m) for m in M]
    r = np.asarray(ratio, dtype=np.float64)                                  # (J,)
    up = np.nonzero((r[:-1] < 0.5) & (r[1:] >= 0.5))[0]
    if points == 0 or up.size == 0:
        return []
    j = int(up[0]) + 1                                   # r[j - 1] < 1/2 <= r[j]
    below = [i for i in range(j) if r[i] < 0.1]
    above = [i for i in range(j, len(M)) if r[i] >= 0.9]
    lo, hi = (M[below[-1]], M[above[0]]) if below and above else (M[j - 1], M[j])
    coarse = set(M)
    free = [m for m in range(lo + 1, hi) if m not in coarse]
    if len(free) <= points:
        return free
    step = (len(free) + 1) / (points + 1)                # > 1: distinct picks
    return [free[int(round((k + 1) * step)) - 1] for k in range(points)]


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


def _tidy_finished_unit(sweep_dir, name, cfgs):
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


PLAN_FILE = "plan.json"


def read_plan(run_dir, cfg, coarse):
    """The plan of sizes recorded in ``run_dir/plan.json`` (None without one): a dict
    with "coarse" (the coarse sizes, which must be the sweep's) and, once the coarse
    phase is done, "refine" (the refinement sizes). A damaged or foreign plan raises
    StorageError naming the file."""
    path = os.path.join(run_dir, PLAN_FILE)
    if not os.path.exists(path):
        return None
    plan = read_record(path, ("coarse",), advice="remove the configuration's directory to "
                                                 "retrain it")
    expected = coarse_sizes(cfg.samples, coarse)
    if plan["coarse"] != expected:
        raise StorageError(f"{path} records coarse sizes {plan['coarse']!r}, the sweep's are "
                           f"{expected}; remove the configuration's directory to retrain it")
    refine = plan.get("refine", [])
    if (set(plan) - {"coarse", "refine"} or not isinstance(refine, list)
            or not all(type(m) is int and 1 <= m <= 2 * cfg.samples for m in refine)
            or len(set(refine)) != len(refine) or set(refine) & set(expected)):
        raise StorageError(f"{path} is not a gmmdiff plan (expected \"coarse\" and "
                           "\"refine\": distinct model sizes); remove the configuration's "
                           "directory to retrain it")
    return plan


def run_group(cfgs, sweep_dir, xp, *, coarse=10, refine=10, tag="group", callback=None,
              checkpoint_every=1000, fused=False, echo=None):
    """Coarse grid, adaptive refinement, baselines and transition of configurations that
    share N and d, each phase training all of them in one array program
    (:func:`gmmdiff.runs.run_batch`); checkpoints live in ``sweep_dir``.

    ONE plan of sizes: each configuration's ``plan.json`` records the sizes of a phase
    (atomically) before the phase trains -- the coarse sizes first, the refinement
    sizes (:func:`refine_sizes` of the coarse curve alone) once the coarse phase is
    done -- and a resumed unit trains exactly the recorded sizes, so a killed and
    resumed sweep ends with the files of an uninterrupted one. ``echo`` (a function of
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
    crash_point("coarse-done")
    for (c, rd, plan), coarse_rows in zip(plans, rows):
        if "refine" not in plan:
            plan["refine"] = refine_sizes([r["M"] for r in coarse_rows],
                                          [r["memorization"]["ratio"] for r in coarse_rows],
                                          c.samples, refine)
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
            rows[k] = sorted(rows[k] + more, key=lambda r: r["M"])
    crash_point("refine-done")
    for (_, rd, _), config_rows in zip(plans, rows):
        write_json(os.path.join(rd, "baselines.json"), baselines_table(config_rows))
        crash_point("baselines-written")
        write_json(os.path.join(rd, "transition.json"), transition_of(config_rows))
        crash_point("transition-written")


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


def work_units(cfgs, *, group=True, tag=""):
    """The units of work of a sweep (or of one shard of it, ``tag`` naming the shard):
    ``[(name, [configurations])]``. With ``group``, configurations that share N, d and
    s* (seeds and K) form one unit, trained in one array program; without, each
    configuration is a unit. Units come largest first (estimated cost per step
    ~ N noise_draws (N + d) per configuration), so processes that take units in turn
    finish close together."""
    units = {}
    for cfg in cfgs:
        key = f"N{cfg.samples}-d{cfg.dim}{_var_tag(cfg)}{tag}" if group else run_name(cfg)
        units.setdefault(key, []).append(cfg)

    def cost(item):
        c = item[1][0]
        return c.samples * c.noise_draws * (c.samples + c.dim) * len(item[1])

    return sorted(units.items(), key=cost, reverse=True)


def is_complete(sweep_dir, cfg):
    """Whether configuration ``cfg`` of the sweep is finished (its transition.json)."""
    return os.path.exists(os.path.join(sweep_dir, run_name(cfg), "transition.json"))


def run_sweep(spec, sweep_dir, xp, *, shard_spec=(0, 1), callback=None, echo=print,
              checkpoint_every=1000, group=True, fused=False, progress=None):
    """Run (or resume) this shard's configurations; finished ones are skipped.

    With ``group`` the shard's configurations that share N and d (different seeds and
    K) train together in one array program per phase; without it, one configuration at
    a time. Results are the same either way (each model keeps its own draws), up to
    floating-point rounding, and the same whichever process trains a unit.

    Each unit of work (:func:`work_units`) is claimed with a lock file in the sweep
    directory (:mod:`gmmdiff.locks`) for as long as it trains: several processes running
    the same sweep command on one directory (``--jobs``, ``--devices``, or commands
    started by hand on several machines) share the units dynamically, each taking the
    next free one. Returns the units this process skipped because another live process
    held them, as ``[(name, holder)]``.

    ``progress``: a :class:`gmmdiff.progress.SweepProgress` of this shard's units; it
    reports during training (with ``callback``, if any) and after each unit.
    """
    spec.validate(xp)
    if backend_name(xp) == "cupy":
        probe_cupy(xp)          # CuPy's CUDA libraries load on first use: fail before writing
    open_sweep(sweep_dir, spec, backend_name(xp))
    i, n = shard_spec
    mine = shard(spec.configurations(), i, n)
    for cfg in mine:                    # every damaged file refused before any work
        check_configuration(sweep_dir, cfg, spec, backend_name(xp))
    units = work_units(mine, group=group, tag=f"-shard{i}of{n}")
    for name, _ in units:
        locks.check_lock_path(os.path.join(sweep_dir, f".lock-{name}"))
        check_unit_checkpoints(sweep_dir, name)
    for cfg in mine:
        echo(f"{run_name(cfg)}: {'done' if is_complete(sweep_dir, cfg) else 'to train'}")
    busy = []
    for name, cfgs in units:
        lock = locks.try_lock(os.path.join(sweep_dir, f".lock-{name}"))
        if lock is not None and all(is_complete(sweep_dir, c) for c in cfgs):
            with lock:
                _tidy_finished_unit(sweep_dir, name, cfgs)
            continue
        if lock is None:
            holder = locks.Lock(os.path.join(sweep_dir, f".lock-{name}")).holder()
            echo(f"{name}: being trained by {holder}; skipped")
            busy.append((name, holder))
            continue
        with lock:
            todo = [c for c in cfgs if not is_complete(sweep_dir, c)]  # as of the claim
            if not todo:
                _tidy_finished_unit(sweep_dir, name, cfgs)
                continue
            # the configurations' run directories, held for the whole unit: a process
            # that split the sweep otherwise (--shard, --no-group) skips them too
            held = _hold_run_dirs(sweep_dir, todo)
            if isinstance(held, str):
                echo(f"{name}: {held}; skipped")
                busy.append((name, held))
                continue
            try:
                echo(f"training {', '.join(run_name(c) for c in todo)}")
                run_group(todo, sweep_dir, xp, coarse=spec.coarse, refine=spec.refine, tag=name,
                          callback=_both(callback, progress and progress.training_callback(name)),
                          checkpoint_every=checkpoint_every, fused=fused, echo=echo)
            finally:
                for rd_lock in held:
                    rd_lock.release()
            if progress is not None:
                progress.report(force=True)
            # lock files and temporaries a killed process left in the unit's other
            # configurations (finished before the kill): the completing run removes them
            _tidy_finished_unit(sweep_dir, name, cfgs)
    return busy


def _both(a, b):
    """One training callback calling ``a`` and ``b`` (either may be None)."""
    if a is None or b is None:
        return a or b
    return lambda step, losses: (a(step, losses), b(step, losses))


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
    RunDir.check(rd, runs_identity(cfg, backend))
    locks.check_lock_path(os.path.join(rd, ".lock"))
    done = completed_sizes(rd)
    read_plan(rd, cfg, spec.coarse)
    if os.path.exists(os.path.join(rd, "transition.json")):
        read_transition(os.path.join(rd, "transition.json"))
        return
    for M in done:                          # what resuming the configuration reads
        stem = os.path.join(rd, RunDir.model_stem(M))
        read_metrics(stem + ".json", M)
        read_model_arrays(stem + ".npz")


def check_unit_checkpoints(sweep_dir, name):
    """Raise StorageError (one line naming the file) when a checkpoint of unit ``name``
    in the sweep directory is damaged; reads, writes nothing."""
    for phase in ("coarse", "refine"):
        path = os.path.join(sweep_dir, f"checkpoint-{name}-{phase}.npz")
        if os.path.lexists(path):
            TrainState.labels_in(path)


def _hold_run_dirs(sweep_dir, cfgs):
    """Locks on the run directories of ``cfgs`` (created if missing), or, when another
    process holds one, a line naming it (and nothing held)."""
    held = []
    for cfg in cfgs:
        rd = os.path.join(sweep_dir, run_name(cfg))
        os.makedirs(rd, exist_ok=True)
        lock = locks.Lock(os.path.join(rd, ".lock"))
        if not lock.acquire():
            for other in held:
                other.release()
            return f"{run_name(cfg)} is being trained by {lock.holder()}"
        held.append(lock)
    return held


SUMMARY_COLUMNS = ["N", "d", "K", "data_var", "seed", "status", "M_pt_over_N", "M_pt_lo", "M_pt_hi",
                   "M_pt_two_point", "start_over_N", "end_over_N", "n_sizes"] + [f"pred_{s}" for s in SOURCES]


def summarize(sweep_dir, *, weights=None):
    """One row per configuration of the sweep (missing ones included, marked).

    Predicted M*/N use the naive (uniform, i.e. training) weighting unless ``weights``
    (T,) is given; a prediction without a sign change is left empty. Writes
    ``summary.csv`` atomically and returns (rows, csv text).
    """
    summary = transition_summary(sweep_dir)
    base = summary["identity"]["base"]
    rows = []
    for c in summary["configs"]:
        row = {k: c.get(k, base.get("data_var")) for k in ("N", "d", "K", "data_var", "seed", "status")}
        row["data_var"] = f"{row['data_var']:g}"
        if "mc" in c:
            row.update(M_pt_over_N=c["M_pt_over_N"], M_pt_lo=c["interval"][0],
                       M_pt_hi=c["interval"][1], M_pt_two_point=c["two_point"]["M_pt_over_N"],
                       start_over_N=c["start_over_N"],
                       end_over_N=c["end_over_N"], n_sizes=len(c["sizes"]))
            cfg = config_of(base, c)
            X = cfg.dataset().X
            for source in SOURCES:
                if source == "mc":
                    M, gen, pmem = (np.asarray(c["mc"][k], dtype=np.float64) for k in ("M", "gen", "pmem"))
                else:
                    M, gen, pmem = approximation_curves(summary["times"], vars(cfg), source, X=X)
                w = weights if weights is not None else np.full(gen.size, 1.0 / gen.size)
                r, ok = predicted_ratio(M, gen, pmem, w, c["N"], clamp=False)
                row[f"pred_{source}"] = r if ok else None
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in SUMMARY_COLUMNS})
    text = buf.getvalue()
    atomic_write_bytes(os.path.join(sweep_dir, "summary.csv"), text.encode())
    return rows, text


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


SWEEP_SCHEMA = {"identity": {"samples": ["int"], "dims": ["int"], "components": ["int"],
                             "seeds": ["int"], "coarse": "int", "refine": "int", "base": {},
                             "backend": "str", "results_format": "int", "data_vars?": ["num"]}}


def _field_schema(f):
    """The JSON type of a :class:`TrainConfig` field, from its default."""
    if f.name == "template_file":
        return None
    return {bool: "bool", int: "int", float: "num", str: "str"}[type(f.default)]


def read_sweep_file(path):
    """A sweep's ``sweep.json``, checked: the grids lists of integers, every training
    setting of the right type and value (:meth:`SweepSpec.validate`). Returns
    (the stored identity dict, its :class:`SweepSpec`); StorageError naming the file."""
    advice = "it was not written by gmmdiff-sweep, or is damaged"
    ident = read_checked(path, SWEEP_SCHEMA, advice=advice)["identity"]
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in ident["base"].items():
        if key not in fields or key in SWEEP_FIELDS:
            raise StorageError(f"{path} is not a valid gmmdiff file: identity.base.{key} is not "
                               f"a training setting; {advice}")
        sub = _field_schema(fields[key])
        err = (None if value is None else schema_error(value, "str", f"identity.base.{key}")) \
            if sub is None else schema_error(value, "num" if sub == "num" else sub,
                                             f"identity.base.{key}")
        if err:
            raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {advice}")
    try:
        spec = spec_from_identity(ident).validate()
    except ValueError as exc:
        if isinstance(exc, StorageError):
            raise
        raise StorageError(f"{path} is not a valid gmmdiff file: {exc}; {advice}") from None
    return ident, spec


def read_sweep(sweep_dir):
    """The :class:`SweepSpec` stored in ``sweep_dir/sweep.json``."""
    path = os.path.join(sweep_dir, "sweep.json")
    if not os.path.isfile(path):
        raise StorageError(f"{sweep_dir} is not a gmmdiff sweep directory (no sweep.json)")
    return read_sweep_file(path)[1]


def spec_from_identity(ident):
    """The :class:`SweepSpec` of a sweep identity (``sweep.json``)."""
    base = TrainConfig(**ident["base"]).validate()
    data_vars = ident.get("data_vars")
    return SweepSpec(samples=tuple(ident["samples"]), dims=tuple(ident["dims"]),
                     components=tuple(ident["components"]), seeds=tuple(ident["seeds"]),
                     data_vars=None if data_vars is None else tuple(data_vars),
                     base=base, coarse=ident["coarse"], refine=ident["refine"])


def transition_summary(sweep_dir, *, partial=False):
    """The compact record of a sweep that fits are made from (``summary.json``): the
    sweep's identity and provenance, the grid of times and, per configuration, its
    measured transition (M_pt/N with interval, start, end, status) and its Monte Carlo
    curves (generalizing and partially memorizing training losses at the trained sizes,
    the "mc" source of :mod:`gmmdiff.predict`). Incomplete configurations are listed
    with their status. A fit needs nothing else (:func:`gmmdiff.predict.fit_summary`).

    With ``partial``, an incomplete configuration (a sweep stopped before its
    refinement finished) is measured from the sizes it has finished, at least
    :data:`gmmdiff.transition.MIN_SIZES` of them, and marked ``"complete": False``
    (its status prefixed "partial: ")."""
    import platform
    import time as _time

    from . import __version__
    spec = read_sweep(sweep_dir)
    configs, times, trained_with = [], None, set()
    for cfg in spec.configurations():
        rd = os.path.join(sweep_dir, run_name(cfg))
        entry = {"name": run_name(cfg), "N": cfg.samples, "d": cfg.dim, "K": cfg.components,
                 "data_var": cfg.data_var, "seed": cfg.seed}
        tpath = os.path.join(rd, "transition.json")
        complete = os.path.exists(tpath)
        if not complete and not (partial and os.path.isdir(rd)
                                 and len(completed_sizes(rd)) >= MIN_SIZES):
            configs.append(dict(entry, status="incomplete" if os.path.isdir(rd) else "missing"))
            continue
        if complete:
            read_transition(tpath)                 # (complete: its transition.json is valid)
        meta, rows = load_run(rd)
        trained_with.add(meta.get("meta", {}).get("gmmdiff_version", "?"))
        times = rows[0]["times"]
        M, gen, pmem = curves_from_results(rows, "mc", config=dataclasses.asdict(cfg))
        entry.update(sizes=[float(r["M"]) for r in rows],
                     ratios=[r["memorization"]["ratio"] for r in rows],
                     counts=[r["memorization"]["count"] for r in rows],
                     n_generated=[r["memorization"]["n"] for r in rows],
                     mc={"M": M.tolist(), "gen": gen.tolist(), "pmem": pmem.tolist()})
        measure_entry(entry, rows)
        if not complete:
            entry["complete"] = False
            _mark_partial(entry)
        configs.append(entry)
    ident = read_sweep_file(os.path.join(sweep_dir, "sweep.json"))[0]
    return {"identity": ident, "times": times,
            "configs": configs,
            "provenance": {"gmmdiff_version": __version__, "trained_with": sorted(trained_with),
                           "date": _time.strftime("%Y-%m-%d"),
                           "sweep_dir": os.path.basename(os.path.abspath(sweep_dir)),
                           "transition_estimator": ESTIMATOR,
                           "python": platform.python_version(), "numpy": np.__version__,
                           "machine": platform.machine()}}


ESTIMATOR = ("M_pt_over_N: gmmdiff.transition.fit_curve (complementary log-log, quasi-likelihood "
             "with the sizes' scatter on the link scale, t interval); two_point: the interpolated "
             "1/2 crossing")


def measure_entry(entry, rows=None):
    """Fill in a summary entry's measured transition from its curve (``sizes``,
    ``counts`` and ``n_generated``, or for summaries written before the counts,
    ``ratios`` times the identity's ``eval_samples``, given as ``n_generated``):

    - ``M_pt_over_N``, ``interval``, ``se``, ``status``: the whole-curve fit
      (:func:`gmmdiff.transition.fit_curve`); M_pt_over_N is None unless its status is "ok";
    - ``fit``: the fit's slope, tau, dispersion, degrees of freedom, link shape;
    - ``two_point``: the paper's rule (:func:`gmmdiff.transition.detect`: the
      interpolated 1/2 crossing, its interval from the Wilson bound curves, status),
      and ``start_over_N`` / ``end_over_N`` from it (the 0.1 and 0.9 crossings).

    Returns the entry (changed in place)."""
    N = entry["N"]
    M = np.asarray(entry["sizes"], dtype=np.float64)
    n = np.asarray(entry["n_generated"], dtype=np.float64) * np.ones(M.size)
    counts = (np.asarray(entry["counts"], dtype=np.float64) if "counts" in entry
              else np.round(np.asarray(entry["ratios"]) * n))
    if rows is not None:
        lo = [r["memorization"]["interval"][0] for r in rows]
        hi = [r["memorization"]["interval"][1] for r in rows]
    else:
        from .metrics import wilson_interval
        lo, hi = zip(*(wilson_interval(int(k), int(m)) for k, m in zip(counts, n)))
    two = detect(M, counts / n, lo, hi)
    scale = (lambda v: None if v is None else v / N)  # noqa: E731
    fit = fit_curve(M, counts, n, N)
    ok = fit["status"] == "ok"
    entry.update(status=fit["status"], M_pt_over_N=fit["value"] if ok else None,
                 interval=fit["interval"] if ok else [None, None], se=fit["se"] if ok else None,
                 fit={k: fit[k] for k in ("value", "slope", "tau", "dispersion", "df", "link_shape")},
                 two_point={"M_pt_over_N": scale(two["M_pt"]["value"]),
                            "interval": [scale(v) for v in two["M_pt"]["interval"]],
                            "status": two["status"]},
                 start_over_N=scale(two["start"]["value"]), end_over_N=scale(two["end"]["value"]))
    return entry


def _mark_partial(entry):
    """A measured entry of an incomplete configuration: status "partial: <status>"; its
    M_pt kept only when the fit is "ok"."""
    entry["status"] = "partial: " + entry["status"]
    if entry["status"] != "partial: ok":
        entry.update(M_pt_over_N=None, interval=[None, None], se=None)


def reanalyse_summary(summary):
    """A summary (``summary.json``) with every complete configuration's transition
    measured again by :func:`measure_entry` from the curve it holds (no run directory):
    how summaries written before the whole-curve fit are brought up to date."""
    import copy
    out = copy.deepcopy(summary)
    n_default = out["identity"]["base"]["eval_samples"]
    for entry in out["configs"]:
        if "sizes" in entry:
            entry.setdefault("n_generated", [n_default] * len(entry["sizes"]))
            measure_entry(entry)
            if entry.get("complete") is False:
                _mark_partial(entry)
    out.setdefault("provenance", {})["transition_estimator"] = ESTIMATOR
    return out


def sweep_summary(sweep_dir):
    """The summary of a sweep directory: :func:`transition_summary` of its run
    directories, or, for a directory holding only a
    ``summary.json`` (a shipped sweep), that summary re-measured by
    :func:`reanalyse_summary`. Writes nothing (:func:`fit_sweep` writes it after a fit
    succeeded)."""
    from .storage import read_json
    if os.path.isfile(os.path.join(sweep_dir, "sweep.json")):
        return transition_summary(sweep_dir)
    if os.path.isfile(os.path.join(sweep_dir, "summary.json")):
        return reanalyse_summary(read_json(os.path.join(sweep_dir, "summary.json")))
    raise StorageError(f"{sweep_dir} is not a gmmdiff sweep directory (no sweep.json or "
                       "summary.json)")


def fit_path(sweep_dir, source, data_var=None):
    """``fit_<source>.json``, or ``fit_<source>_v<s*>.json`` for one s* of a sweep."""
    tag = "" if data_var is None else f"_v{float(data_var):g}"
    return os.path.join(sweep_dir, f"fit_{source}{tag}.json")


def fit_sweep(sweep_dir, source="mc", *, n_folds=5, seed=0, data_var=None, summary=None):
    """Fit and cross-validate the time weights on the sweep's configurations
    (:func:`gmmdiff.predict.fit_summary`: folds of whole settings, the noise floor and
    the paired verdict), of one data variance ``data_var`` where the sweep varies it.

    Writes ``summary.json`` (:func:`sweep_summary`, unless ``summary`` is given) and the
    fit (:func:`fit_path`) atomically, both only once the fit succeeded, and returns the
    fit.
    """
    from .predict import SOURCES, fit_summary
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; accepted: {', '.join(SOURCES)}")
    check_positive_int("folds (--folds)", n_folds, minimum=2)
    if summary is None:
        summary = sweep_summary(sweep_dir)
    result = fit_summary(summary, source, n_folds=n_folds, seed=seed, data_var=data_var)
    write_json(os.path.join(sweep_dir, "summary.json"), summary)      # after a fit succeeded:
    write_json(fit_path(sweep_dir, source, data_var), result)         # a refusal writes none
    return result


def check_sweep_files(sweep_dir):
    """Read and check every file of a sweep that its figures use (sweep.json; per
    finished configuration its transition, config, index, metrics and arrays; every
    fit file) before a figure is written: StorageError naming the first damaged one."""
    from .storage import read_fit_scores
    spec = read_sweep(sweep_dir)
    for cfg in spec.configurations():
        rd = os.path.join(sweep_dir, run_name(cfg))
        if os.path.exists(os.path.join(rd, "transition.json")):
            read_transition(os.path.join(rd, "transition.json"))
            load_run(rd, check_arrays=True)
    for name in sorted(os.listdir(sweep_dir)):
        if name.startswith("fit_") and name.endswith(".json"):
            read_fit_scores(os.path.join(sweep_dir, name))
