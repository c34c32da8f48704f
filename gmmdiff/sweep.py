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
from dataclasses import dataclass, field

import numpy as np

from . import locks
from .backend import backend_name
from .config import TrainConfig
from .data import check_positive_int
from .memory import check_run_fits
from .predict import SOURCES, approximation_curves, config_of, curves_from_results, predicted_ratio
from .runs import RESULTS_FORMAT, run_batch
from .storage import (StorageError, atomic_write_bytes, check_identity, leftovers_only, load_run,
                      read_record, remove_temporaries, write_json)
from .transition import detect

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
    """About ``points`` new sizes evenly between the coarse start and end (SPEC 9)."""
    M = np.asarray(M)
    r = np.asarray(ratio)
    below = np.nonzero(r < 0.1)[0]
    above = np.nonzero(r >= 0.9)[0]
    if points == 0 or below.size == 0 or above.size == 0:
        return []
    hi_idx = above[0]
    lo_candidates = below[below < hi_idx]
    if lo_candidates.size == 0:
        return []
    lo, hi = M[lo_candidates[-1]], M[hi_idx]
    new = {int(round(v)) for v in np.linspace(lo, hi, points + 2)[1:-1]}
    return sorted(new - set(int(m) for m in M))


def open_sweep(sweep_dir, spec, backend):
    """Create or check ``sweep_dir/sweep.json`` (a different sweep, or a directory that
    holds anything else, is refused) and remove temporary files of killed writers."""
    path = os.path.join(sweep_dir, "sweep.json")
    ident = spec.identity(backend)
    if os.path.exists(sweep_dir) and not os.path.isdir(sweep_dir):
        raise StorageError(f"--out {sweep_dir} exists and is not a directory")
    if (not os.path.exists(path) and os.path.isdir(sweep_dir) and not leftovers_only(sweep_dir)
            and not os.path.exists(path)):      # (another process may just have created it)
        raise StorageError(f"{sweep_dir} is not empty and is not a gmmdiff sweep directory; "
                           "choose an empty or new --out")
    if os.path.exists(path):
        check_identity(path, ident, f"{sweep_dir} holds a different sweep", "choose another directory")
    try:
        os.makedirs(sweep_dir, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create sweep directory {sweep_dir}: {exc.strerror}") from None
    remove_temporaries(sweep_dir)     # (a lock file left by a killed process is harmless:
                                      # the next claim of its unit takes it over)
    if not os.path.exists(path):
        write_json(path, {"identity": ident})


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


def results_of(run_dir):
    return load_run(run_dir)[1]


def run_group(cfgs, sweep_dir, xp, *, coarse=10, refine=10, tag="group", callback=None,
              checkpoint_every=1000, fused=False):
    """Coarse grid, adaptive refinement, baselines and transition of configurations that
    share N and d, each phase training all of them in one array program
    (:func:`gmmdiff.runs.run_batch`); checkpoints live in ``sweep_dir``."""
    items = [(c, os.path.join(sweep_dir, run_name(c)), coarse_sizes(c.samples, coarse)) for c in cfgs]
    kw = dict(callback=callback, checkpoint_every=checkpoint_every, fused=fused)
    run_batch(items, xp, checkpoint=os.path.join(sweep_dir, f"checkpoint-{tag}-coarse.npz"), **kw)
    extra = []
    for c, rd, _ in items:
        rows = results_of(rd)
        new = refine_sizes([r["M"] for r in rows], [r["memorization"]["ratio"] for r in rows],
                           c.samples, refine)
        if new:
            extra.append((c, rd, new))
    if extra:
        run_batch(extra, xp, checkpoint=os.path.join(sweep_dir, f"checkpoint-{tag}-refine.npz"), **kw)
    for _, rd, _ in items:
        rows = results_of(rd)
        write_json(os.path.join(rd, "baselines.json"), baselines_table(rows))
        write_json(os.path.join(rd, "transition.json"), transition_of(rows))


def transition_of(rows):
    M = np.array([r["M"] for r in rows], dtype=np.float64)
    ratio = [r["memorization"]["ratio"] for r in rows]
    lo = [r["memorization"]["interval"][0] for r in rows]
    hi = [r["memorization"]["interval"][1] for r in rows]
    return dict(detect(M, ratio, lo, hi), M=M.tolist(), ratio=ratio)


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
              checkpoint_every=1000, group=True, fused=False):
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
    """
    spec.validate(xp)
    open_sweep(sweep_dir, spec, backend_name(xp))
    i, n = shard_spec
    mine = shard(spec.configurations(), i, n)
    for cfg in mine:
        echo(f"{run_name(cfg)}: {'done' if is_complete(sweep_dir, cfg) else 'to train'}")
    units = work_units(mine, group=group, tag=f"-shard{i}of{n}")
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
                          callback=callback, checkpoint_every=checkpoint_every, fused=fused)
            finally:
                for rd_lock in held:
                    rd_lock.release()
    return busy


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
                   "start_over_N", "end_over_N", "n_sizes"] + [f"pred_{s}" for s in SOURCES]


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
                       M_pt_hi=c["interval"][1], start_over_N=c["start_over_N"],
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


def read_sweep(sweep_dir):
    """The :class:`SweepSpec` stored in ``sweep_dir/sweep.json``."""
    path = os.path.join(sweep_dir, "sweep.json")
    if not os.path.isfile(path):
        raise StorageError(f"{sweep_dir} is not a gmmdiff sweep directory (no sweep.json)")
    try:
        return spec_from_identity(read_record(path, ("identity",))["identity"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StorageError):
            raise
        raise StorageError(f"{path} is not a gmmdiff sweep file ({type(exc).__name__}: {exc}); "
                           "it was not written by gmmdiff-sweep") from None


def spec_from_identity(ident):
    """The :class:`SweepSpec` of a sweep identity (``sweep.json``)."""
    base = TrainConfig(**ident["base"]).validate()
    data_vars = ident.get("data_vars")
    return SweepSpec(samples=tuple(ident["samples"]), dims=tuple(ident["dims"]),
                     components=tuple(ident["components"]), seeds=tuple(ident["seeds"]),
                     data_vars=None if data_vars is None else tuple(data_vars),
                     base=base, coarse=ident["coarse"], refine=ident["refine"])


def transition_summary(sweep_dir):
    """The compact record of a sweep that fits are made from (``summary.json``): the
    sweep's identity and provenance, the grid of times and, per configuration, its
    measured transition (M_pt/N with interval, start, end, status) and its Monte Carlo
    curves (generalizing and partially memorizing training losses at the trained sizes,
    the "mc" source of :mod:`gmmdiff.predict`). Incomplete configurations are listed
    with their status. A fit needs nothing else (:func:`gmmdiff.predict.fit_summary`)."""
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
        if not os.path.exists(tpath):
            configs.append(dict(entry, status="incomplete" if os.path.isdir(rd) else "missing"))
            continue
        tr = read_record(tpath, ("M_pt", "status"))
        meta, rows = load_run(rd)
        trained_with.add(meta.get("meta", {}).get("gmmdiff_version", "?"))
        times = rows[0]["times"]
        M, gen, pmem = curves_from_results(rows, "mc", config=dataclasses.asdict(cfg))
        scale = (lambda v: None if v is None else v / cfg.samples)  # noqa: E731
        entry.update(status=tr["status"], M_pt_over_N=scale(tr["M_pt"]["value"]),
                     interval=[scale(v) for v in tr["M_pt"]["interval"]],
                     start_over_N=scale(tr["start"]["value"]), end_over_N=scale(tr["end"]["value"]),
                     sizes=tr["M"], ratios=tr["ratio"],
                     mc={"M": M.tolist(), "gen": gen.tolist(), "pmem": pmem.tolist()})
        configs.append(entry)
    ident = read_record(os.path.join(sweep_dir, "sweep.json"), ("identity",))["identity"]
    return {"identity": ident, "times": times,
            "configs": configs,
            "provenance": {"gmmdiff_version": __version__, "trained_with": sorted(trained_with),
                           "date": _time.strftime("%Y-%m-%d"),
                           "sweep_dir": os.path.basename(os.path.abspath(sweep_dir)),
                           "python": platform.python_version(), "numpy": np.__version__,
                           "machine": platform.machine()}}


def fit_sweep(sweep_dir, source="mc", *, test_fraction=0.25, seed=0):
    """Fit the time weights on a seeded split of the sweep's configurations.

    Uses every complete configuration whose measured curve crosses 1/2; the others are
    listed under ``excluded`` with their status. Writes ``summary.json``
    (:func:`transition_summary`) and ``fit_<source>.json`` atomically and returns the
    fit (:func:`gmmdiff.predict.fit_summary`).
    """
    from .predict import SOURCES, check_test_fraction, fit_summary
    check_test_fraction(test_fraction)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; accepted: {', '.join(SOURCES)}")
    summary = transition_summary(sweep_dir)
    write_json(os.path.join(sweep_dir, "summary.json"), summary)
    result = fit_summary(summary, source, test_fraction=test_fraction, seed=seed)
    write_json(os.path.join(sweep_dir, f"fit_{source}.json"), result)
    return result
