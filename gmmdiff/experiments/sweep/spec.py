"""A sweep's specification: its grids, presets and training settings, and ``sweep.json``.

A sweep varies N, d, K, the data variance s*, the initialization and the seed over a
grid (:class:`SweepSpec`); every other training setting is shared (its ``base``
:class:`gmmdiff.training.config.TrainConfig`). Each configuration gets a run directory
named by :func:`run_name`: ``N{N}-d{d}-K{K}-s{seed}``, with ``-v{s*}`` before the seed
for s* other than 1 and ``-i{init}`` for an initialization other than pmem. :data:`gmmdiff.experiments.sweep.presets.PRESETS` are the named sweeps of ``gmmdiff-sweep
--preset``; ``sweep.json`` holds a sweep's identity and has one reader,
:func:`read_sweep_file`.
"""
import dataclasses
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from gmmdiff.backend import BACKENDS
from gmmdiff.experiments.checks import field_schema
from gmmdiff.experiments.runs import RESULTS_FORMAT
from gmmdiff.experiments.sweep.plans import coarse_sizes
from gmmdiff.io.files import StorageError
from gmmdiff.io.schemas import read_checked, schema_error
from gmmdiff.model.data import check_positive_int
from gmmdiff.training.config import INITS, TrainConfig, split_items
from gmmdiff.training.sizes import check_sizes
from gmmdiff.training.memory import check_run_fits

SWEEP_FIELDS = ("samples", "dim", "components", "seed")


def parse_int_list(spec, name, minimum=1):
    """'50,100,150' -> [50, 100, 150] (sorted, distinct); ValueError names the value."""
    items = split_items(spec, name)
    try:
        values = sorted({int(p) for p in items})
    except ValueError:
        raise ValueError(f"{name} {spec!r} must be a comma-separated list of integers") from None
    if not values or values[0] < minimum:
        raise ValueError(f"{name} {spec!r} must be integers >= {minimum}")
    return values


def parse_float_list(spec, name):
    """'0.5,1,2' -> (0.5, 1.0, 2.0) (sorted, distinct, finite and > 0); ValueError names
    the value."""
    items = split_items(spec, name)
    try:
        values = sorted({float(p) for p in items})
    except ValueError:
        raise ValueError(f"{name} {spec!r} must be a comma-separated list of numbers") from None
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} {spec!r} must be finite numbers > 0")
    return values


def parse_inits(spec):
    """'pmem,prior' -> ('pmem', 'prior') (in the order given, each once); ValueError
    names an empty item (what :meth:`SweepSpec.validate` accepts is checked there)."""
    return tuple(dict.fromkeys(split_items(spec, "inits (--inits)")))


def parse_shard(spec):
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(p) for p in str(spec).split("/"))
    except ValueError:
        raise ValueError(f"shard {spec!r} not understood; accepted: 'i/n' with 0 <= i < n, or "
                         "'slurm' (a Slurm array task's share)") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {spec!r} must satisfy 0 <= i < n")
    return i, n


def shard(items, i, n):
    """The i-th of n disjoint parts of ``items`` (round robin, 0-based)."""
    return list(items)[i::n]


SLURM_ARRAY_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                         "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT")
SLURM_MAX_TASK_ID = 4_000_000   # Slurm's largest MaxArraySize is 4000001: task ids 0 .. 4000000


def _array_variable(environ, name, minimum=0):
    """The value of the Slurm array variable ``name`` as Slurm sets it -- decimal digits,
    ``minimum`` to :data:`SLURM_MAX_TASK_ID` -- or None where it is not set; anything
    else is a ValueError naming the variable and its value."""
    raw = environ.get(name)
    if raw is None:
        return None
    if not (re.fullmatch(r"[0-9]{1,7}", raw) and minimum <= int(raw) <= SLURM_MAX_TASK_ID):
        raise ValueError(f"--shard slurm: {name}={raw!r} is not what Slurm sets there (an integer "
                         f"from {minimum} to {SLURM_MAX_TASK_ID:,}); run it as a task of a Slurm "
                         "job array, or give --shard i/n")
    return int(raw)


def slurm_array_task(environ):
    """(i, n) of ``--shard slurm``: this task's place among the n tasks of its Slurm job
    array, from the variables Slurm sets in every array task (``environ``, e.g.
    ``os.environ``): task ids MIN, MIN + STEP, ..., MAX are tasks 0 .. n-1 (``--array=0-63``,
    ``--array=1-64`` and ``--array=0-126:2`` all give n = 64). A requeued task keeps its
    id. Every variable is checked as Slurm defines it: ``SLURM_ARRAY_TASK_ID``, ``_MIN``
    and ``_MAX`` set, each an integer from 0 to :data:`SLURM_MAX_TASK_ID`; ``_STEP``
    (default 1) and ``_COUNT`` (default: the ids' count), where set, integers >= 1; the id
    within [MIN, MAX] on the step. ValueError, naming the variable and its value,
    otherwise -- outside an array, or for ids that are not evenly spaced
    (``--array=1,4,9``: submit a new array instead, it takes what is left)."""
    if not environ.get("SLURM_ARRAY_TASK_ID"):
        raise ValueError("--shard slurm reads SLURM_ARRAY_TASK_ID, which is not set: run it as a "
                         "task of a Slurm job array (gmmdiff-sweep ... --sbatch FILE writes one), "
                         "or give --shard i/n")
    task, low, high = (_array_variable(environ, f"SLURM_ARRAY_TASK_{k}") for k in ("ID", "MIN", "MAX"))
    step, count = (_array_variable(environ, f"SLURM_ARRAY_TASK_{k}", 1) for k in ("STEP", "COUNT"))
    for name, value in (("MIN", low), ("MAX", high)):
        if value is None:
            raise ValueError(f"--shard slurm reads SLURM_ARRAY_TASK_{name}, which is not set (Slurm "
                             f"sets it in every array task, with SLURM_ARRAY_TASK_ID={task}); "
                             "run it as a task of a Slurm job array, or give --shard i/n")
    step = 1 if step is None else step
    shown = ", ".join(f"{k}={environ[k]!r}" for k in SLURM_ARRAY_VARIABLES if k in environ)
    if not low <= task <= high:
        raise ValueError(f"--shard slurm: SLURM_ARRAY_TASK_ID={task} is outside the array's ids "
                         f"[SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_MAX] = [{low}, {high}] ({shown})")
    if (task - low) % step or (high - low) % step or (count is not None
                                                      and (high - low) // step + 1 != count):
        raise ValueError(f"--shard slurm needs an array of evenly spaced task ids, such as "
                         f"--array=0-15; got {shown}")
    return (task - low) // step, (high - low) // step + 1


MAX_POINTS = 1000           # model sizes per phase and configuration


@dataclass(frozen=True)
class SweepSpec:
    """The grids of a sweep and the training settings shared by its configurations.

    The configurations are every combination of the grids (N x d x K x s* x init x
    seed); ``gmmdiff-sweep``'s options and presets fill these fields.

    Attributes
    ----------
    samples : tuple of int
        The grid of N.
    dims : tuple of int
        The grid of d.
    components : tuple of int
        The grid of K.
    seeds : tuple of int
        The seeds (data, initialization and noise of each configuration).
    data_vars : tuple of float or None
        The grid of the data variance s*; None: the base's ``data_var`` only.
    base : TrainConfig
        The settings shared by every configuration (its N, d, K, seed are replaced).
    coarse : int
        Coarse grid points per configuration: M = N/coarse, ..., N.
    refine : int
        Refinement sizes between the coarse curve's start and end (0: none).
    inits : tuple of str or None
        The initializations, a sweep axis; None: the base's ``init`` only.
    size_ratios : tuple of float or None
        The first sizes as M/N, instead of the coarse grid.
    """
    samples: tuple = (50, 100, 150, 200)
    dims: tuple = (30, 40, 50, 60)
    components: tuple = (3, 6, 9, 12)
    seeds: tuple = (0,)
    data_vars: tuple = None     # data variances s*; None: the base's data_var only
    base: TrainConfig = field(default_factory=lambda: TrainConfig(noise_draws=100))
    coarse: int = 10
    refine: int = 10
    inits: tuple = None         # initializations; None: the base's init only
    size_ratios: tuple = None   # the first sizes as M/N (instead of the coarse grid)

    @property
    def coarse_points(self):
        """What :func:`gmmdiff.experiments.sweep.plans.coarse_sizes` makes the first
        sizes of from N: ``size_ratios`` when given, else the ``coarse`` points."""
        return tuple(self.size_ratios) if self.size_ratios is not None else self.coarse

    def validate(self, xp=None):
        """Check every setting; writes nothing.

        Parameters
        ----------
        xp : module, optional
            The backend: given, a unit whose training would not fit in its memory is
            refused too.

        Returns
        -------
        SweepSpec
            ``self``; a bad setting raises ValueError naming it.
        """
        check_positive_int("coarse grid points (--coarse)", self.coarse, minimum=2)
        check_positive_int("refinement points (--refine)", self.refine, minimum=0)
        if self.coarse > MAX_POINTS or self.refine > MAX_POINTS:
            raise ValueError(f"--coarse {self.coarse} / --refine {self.refine}: at most "
                             f"{MAX_POINTS} model sizes per phase")
        if self.inits is not None and (not self.inits or set(self.inits) - set(INITS)
                                       or len(set(self.inits)) != len(self.inits)):
            raise ValueError(f"inits (--inits) {','.join(map(str, self.inits))!r} not understood; "
                             f"accepted: a list of distinct {', '.join(INITS)}")
        if self.size_ratios is not None and not (
                self.size_ratios and all(np.isfinite(r) and 0 < r <= 100 for r in self.size_ratios)):
            raise ValueError(f"size ratios (--size-ratios) {list(self.size_ratios)} must be numbers "
                             "M/N in (0, 100]")
        for cfg in self.configurations():
            cfg.validate()
            check_sizes(coarse_sizes(cfg.samples, self.coarse_points), cfg.samples, cfg.init)
        if xp is None:
            return self
        # the costliest unit: the largest N and d, every K and seed in one batch
        big = max(self.configurations(), key=lambda c: (c.samples, c.dim))
        n_big = len(self.components) * len(self.seeds)
        check_run_fits(big, coarse_sizes(big.samples, self.coarse_points) * n_big, xp,
                       n_configs=n_big)
        return self

    def variances(self):
        """The data variances s* of the sweep: ``data_vars`` or the base's one."""
        return tuple(self.data_vars) if self.data_vars is not None else (self.base.data_var,)

    def initializations(self):
        """The initializations of the sweep: ``inits`` or the base's one."""
        return tuple(self.inits) if self.inits is not None else (self.base.init,)

    def configurations(self):
        """Every configuration, in the canonical order (N, d, K, s*, init, seed)."""
        return [dataclasses.replace(self.base, samples=N, dim=d, components=K, data_var=v,
                                    init=i, seed=s)
                for N in self.samples for d in self.dims for K in self.components
                for v in self.variances() for i in self.initializations() for s in self.seeds]

    def identity(self, backend):
        """The identity ``sweep.json`` records (the grids, the shared settings as
        ``base``, the backend and the results format).

        Parameters
        ----------
        backend : str
            ``"numpy"`` or ``"cupy"``.

        Returns
        -------
        dict
        """
        # the optimizer's settings only where they differ from Adam's (as a run's); a
        # batch size stays whatever N it meets (B = N is full batch at that N)
        settings = dict(self.base.settings(), **({"batch_size": self.base.batch_size}
                                                 if self.base.batch_size is not None else {}))
        base = {k: v for k, v in settings.items() if k not in SWEEP_FIELDS}
        ident = {"samples": list(self.samples), "dims": list(self.dims),
                 "components": list(self.components), "seeds": list(self.seeds),
                 "coarse": self.coarse, "refine": self.refine, "base": base,
                 "backend": backend, "results_format": RESULTS_FORMAT}
        if self.data_vars is not None:  # (absent from sweeps of one s*, as before the axis)
            ident["data_vars"] = [float(v) for v in self.data_vars]
            base.pop("data_var")
        if self.inits is not None:      # (likewise for one initialization)
            ident["inits"] = list(self.inits)
            base.pop("init")
        if self.size_ratios is not None:
            ident["size_ratios"] = [float(r) for r in self.size_ratios]
        return ident


def var_tag(cfg):
    """'' for s* = 1 (the names of sweeps before the s* axis), '-v0.5' otherwise."""
    return "" if cfg.data_var == 1.0 else f"-v{cfg.data_var:g}"


def init_tag(cfg):
    """'' for the paper's pmem initialization, '-iprior' (etc.) otherwise."""
    return "" if cfg.init == "pmem" else f"-i{cfg.init}"


def run_name(cfg):
    """The name of a configuration's run directory in its sweep."""
    return f"N{cfg.samples}-d{cfg.dim}-K{cfg.components}{var_tag(cfg)}{init_tag(cfg)}-s{cfg.seed}"


SWEEP_SCHEMA = {"identity": {"samples": ("+", "int>=2"), "dims": ("+", "int>=1"),
                             "components": ("+", "int>=1"), "seeds": ("+", "int>=0"),
                             "coarse": "int>=2", "refine": "int>=0", "base": {},
                             "backend": "str", "results_format": "int>=1",
                             "data_vars?": ("+", "num>0"), "inits?": ("+", "str"),
                             "size_ratios?": ("+", "num>0")}}


def read_sweep_file(path):
    """A sweep's ``sweep.json``, checked: the grids lists of integers, every training
    setting of the right type and value (:meth:`SweepSpec.validate`). Returns
    (the stored identity dict, its :class:`SweepSpec`); StorageError naming the file."""
    advice = "it was not written by gmmdiff-sweep, or is damaged"
    ident = read_checked(path, SWEEP_SCHEMA, advice=advice)["identity"]
    return ident, check_sweep_identity(ident, path, advice)


def check_sweep_identity(ident, path, advice, where="identity"):
    """The :class:`SweepSpec` of a sweep identity read from file ``path`` (sweep.json's,
    or the copy a summary.json holds as ``where``), checked as :func:`read_sweep_file`
    checks it -- what gmmdiff-sweep's command line accepts and nothing else;
    StorageError naming the file, the value and ``advice`` otherwise."""
    err = schema_error(ident, SWEEP_SCHEMA["identity"], where)
    if err:
        raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {advice}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in ident["base"].items():
        if key not in fields or key in SWEEP_FIELDS:
            raise StorageError(f"{path} is not a valid gmmdiff file: {where}.base.{key} is not "
                               f"a training setting; {advice}")
        sub = field_schema(fields[key])
        err = (None if value is None else schema_error(value, "str", f"{where}.base.{key}")) \
            if sub is None else schema_error(value, "num" if sub == "num" else sub,
                                             f"{where}.base.{key}")
        if err:
            raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {advice}")
    # what gmmdiff-sweep writes and nothing else, so that every command reading the file
    # (the sweep, --summary, plot, predict --fit) gives it one verdict
    for key, least in (("samples", 2), ("dims", 1), ("components", 1), ("seeds", 0),
                       ("data_vars", None), ("size_ratios", None)):
        grid = ident.get(key, [1])
        if (not grid or any(a >= b for a, b in zip(grid, grid[1:]))
                or (least is not None and grid[0] < least)):
            text = json.dumps(grid)
            raise StorageError(f"{path} is not a valid gmmdiff file: {where}.{key} is "
                               f"{text if len(text) <= 40 else text[:37] + '...'}, expected "
                               f"distinct values{f' >= {least}' if least is not None else ''} "
                               f"in increasing order; {advice}")
    if ident["backend"] not in BACKENDS:
        raise StorageError(f"{path} is not a valid gmmdiff file: {where}.backend is "
                           f"{json.dumps(ident['backend'])[:40]}, expected one of "
                           f"{', '.join(BACKENDS)}; {advice}")
    if not 1 <= ident["results_format"] <= RESULTS_FORMAT:
        raise StorageError(f"{path} is not a valid gmmdiff file: {where}.results_format is "
                           f"{ident['results_format']}, this gmmdiff reads formats 1 to "
                           f"{RESULTS_FORMAT}; {advice}")
    try:
        return spec_from_identity(ident).validate()
    except ValueError as exc:
        if isinstance(exc, StorageError):
            raise
        raise StorageError(f"{path} is not a valid gmmdiff file: {exc}; {advice}") from None


def read_sweep(sweep_dir):
    """The :class:`SweepSpec` stored in ``sweep_dir/sweep.json``."""
    path = os.path.join(sweep_dir, "sweep.json")
    if not os.path.isfile(path):
        raise StorageError(f"{sweep_dir} is not a gmmdiff sweep directory (no sweep.json)")
    return read_sweep_file(path)[1]


def spec_from_identity(ident):
    """The :class:`SweepSpec` of a sweep identity (``sweep.json``)."""
    base = TrainConfig(**ident["base"]).validate()
    data_vars, inits, ratios = (ident.get(k) for k in ("data_vars", "inits", "size_ratios"))
    return SweepSpec(samples=tuple(ident["samples"]), dims=tuple(ident["dims"]),
                     components=tuple(ident["components"]), seeds=tuple(ident["seeds"]),
                     data_vars=None if data_vars is None else tuple(data_vars),
                     base=base, coarse=ident["coarse"], refine=ident["refine"],
                     inits=None if inits is None else tuple(inits),
                     size_ratios=None if ratios is None else tuple(ratios))
