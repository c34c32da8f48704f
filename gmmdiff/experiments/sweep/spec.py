"""A sweep's specification: its grids, presets and training settings, and ``sweep.json``.

A sweep varies N, d, K, the data variance s* and the seed over a grid
(:class:`SweepSpec`); every other training setting is shared (its ``base``
:class:`gmmdiff.training.config.TrainConfig`). Each configuration gets a run directory
named by :func:`run_name`: ``N{N}-d{d}-K{K}-s{seed}`` (``N{N}-d{d}-K{K}-v{s*}-s{seed}``
for s* other than 1). :data:`PRESETS` are the named sweeps of ``gmmdiff-sweep
--preset``; ``sweep.json`` holds a sweep's identity and has one reader,
:func:`read_sweep_file`.
"""
import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np

from gmmdiff.training.config import TrainConfig
from gmmdiff.model.data import check_positive_int
from gmmdiff.training.memory import check_run_fits
from gmmdiff.experiments.runs import RESULTS_FORMAT
from gmmdiff.io.files import (StorageError)
from gmmdiff.io.schemas import read_checked, schema_error
from gmmdiff.experiments.sweep.plans import coarse_sizes


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


def slurm_array_task(environ):
    """(i, n) of ``--shard slurm``: this task's place among the n tasks of its Slurm job
    array, from the variables Slurm sets in every array task (``environ``, e.g.
    ``os.environ``): task ids MIN, MIN + STEP, ..., MAX are tasks 0 .. n-1 (``--array=0-63``,
    ``--array=1-64`` and ``--array=0-126:2`` all give n = 64). A requeued task keeps its
    id. ValueError, naming the values, outside an array or for ids that are not evenly
    spaced (``--array=1,4,9``: submit a new array instead, it takes what is left)."""
    values = {k: environ.get(k, "").strip() for k in SLURM_ARRAY_VARIABLES}
    if not values["SLURM_ARRAY_TASK_ID"]:
        raise ValueError("--shard slurm reads SLURM_ARRAY_TASK_ID, which is not set: run it as a "
                         "task of a Slurm job array (gmmdiff-sweep ... --sbatch FILE writes one), "
                         "or give --shard i/n")
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items() if v)
    try:
        task, low, high = (int(values[k] or values["SLURM_ARRAY_TASK_ID"]) for k in
                           ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX"))
        step = int(values["SLURM_ARRAY_TASK_STEP"] or 1)
        count = int(values["SLURM_ARRAY_TASK_COUNT"] or (high - low) // step + 1)
    except ValueError:
        raise ValueError(f"--shard slurm: the Slurm array variables are not integers ({shown})") from None
    if not (step >= 1 and low <= task <= high and (task - low) % step == 0
            and (high - low) % step == 0 and (high - low) // step + 1 == count):
        raise ValueError(f"--shard slurm needs an array of evenly spaced task ids, such as "
                         f"--array=0-15; got {shown}")
    return (task - low) // step, count


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


def var_tag(cfg):
    """'' for s* = 1 (the names of sweeps before the s* axis), '-v0.5' otherwise."""
    return "" if cfg.data_var == 1.0 else f"-v{cfg.data_var:g}"


def run_name(cfg):
    return f"N{cfg.samples}-d{cfg.dim}-K{cfg.components}{var_tag(cfg)}-s{cfg.seed}"


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
