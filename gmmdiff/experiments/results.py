"""Results for analysis: :func:`load_run` and :func:`load_sweep` (read-only).

A run directory (``gmmdiff-train``, or one configuration of a sweep) loads as a
:class:`RunResults`: its configuration, one metrics dict per trained model size, the
main metrics as arrays over the sizes, and each size's arrays (learned parameters,
generated samples) read from its NPZ only when asked for. A sweep directory
(``gmmdiff-sweep``) loads as a :class:`SweepResults`: one row per configuration with
its measured transition, and each configuration's per-size curves.

Nothing here writes; the files are read by :mod:`gmmdiff.io` (which names a damaged
file in its error) and :func:`gmmdiff.experiments.sweep.summary.transition_summary`.
"""
import os

import numpy as np

from gmmdiff.experiments.convergence import series_arrays

from gmmdiff.io.files import read_npz
from gmmdiff.io.rundir import RunDir, read_run


class RunResults:
    """One run directory, as loaded by :func:`load_run`.

    Attributes
    ----------
    path : the directory
    config : dict, every setting the results depend on (``config.json``'s identity:
        dim, components, samples, seed, steps, ..., backend)
    meta : dict, facts recorded beside it (gmmdiff version, template file)
    sizes : list of the completed model sizes M, increasing
    metrics : list of per-size metric dicts (``model_M*.json``), in the order of ``sizes``
    """

    def __init__(self, path, config, meta, metrics):
        self.path = path
        self.config = config
        self.meta = meta
        self.metrics = metrics
        self.sizes = [int(m["M"]) for m in metrics]
        self._arrays = {}

    def __repr__(self):
        c = self.config
        what = (f"templates K={c.get('components')}" if c.get("model") == "templates"
                else f"d={c.get('dim')} K={c.get('components')}")
        return (f"RunResults({self.path!r}: {what} N={c.get('samples')} seed={c.get('seed')}, "
                f"sizes {self.sizes})")

    def column(self, key):
        """(n_sizes,) float64 array of one metric over the sizes; ``key`` may be dotted
        (``"memorization.ratio"``)."""
        out = []
        for m in self.metrics:
            v = m
            for part in key.split("."):
                if not isinstance(v, dict) or part not in v:
                    raise KeyError(f"metric {key!r} not in {self.path} (keys at M={m['M']}: "
                                   f"{', '.join(sorted(m))})")
                v = v[part]
            out.append(v)
        return np.asarray(out, dtype=np.float64)

    @property
    def M(self):
        """(n_sizes,) model sizes."""
        return np.asarray(self.sizes)

    @property
    def M_over_N(self):
        return self.column("M_over_N")

    @property
    def ratio(self):
        """(n_sizes,) memorization ratio of each size."""
        return self.column("memorization.ratio")

    @property
    def interval(self):
        """(n_sizes, 2) 95% Wilson interval of the ratio."""
        return np.asarray([m["memorization"]["interval"] for m in self.metrics], dtype=np.float64)

    @property
    def learned_variance(self):
        return self.column("learned_variance")

    @property
    def times(self):
        """(T,) the time grid of the per-time losses."""
        return np.asarray(self.metrics[0]["times"], dtype=np.float64)

    def per_time(self, key):
        """(n_sizes, T) one per-time loss over the sizes, e.g. ``"model_train"``,
        ``"pmem_train"``, ``"generalizing_test"``."""
        return np.asarray([m["per_time_losses"][key] for m in self.metrics], dtype=np.float64)

    @property
    def eval_steps(self):
        """(E,) int64 steps of the evaluations along training (empty without them)."""
        if not self.metrics or "along_training" not in self.metrics[0]:
            return np.zeros(0, dtype=np.int64)
        return series_arrays(self.metrics, "ratio")[0]

    def series(self, key):
        """(E, n_sizes) float64 array of one metric along training (steps x sizes):
        ``"ratio"``, ``"ratio_lo"``, ``"ratio_hi"``, ``"count"``, ``"n"``,
        ``"variance"``, ``"train_loss"``, ``"test_loss"``, ``"near_true_mean"``,
        ``"near_sample"``, ``"dist_true_mean"``, ``"dist_sample"``; the steps are
        :attr:`eval_steps`. KeyError for a run without evaluations along training."""
        if not self.metrics or "along_training" not in self.metrics[0]:
            raise KeyError(f"{self.path} has no evaluations along training (results format "
                           "5 or earlier, or --eval-steps none)")
        if key not in self.metrics[0]["along_training"] or key in ("steps", "status"):
            raise KeyError(f"metric {key!r} not along training in {self.path}; recorded: "
                           + ", ".join(k for k in sorted(self.metrics[0]["along_training"])
                                       if k not in ("steps", "status", "status_reason")))
        return series_arrays(self.metrics, key)[1]

    @property
    def status(self):
        """list of each size's convergence status (:mod:`gmmdiff.experiments.convergence`:
        "converged", "moving", "at init", "unknown")."""
        return [m.get("along_training", {}).get("status", "unknown") for m in self.metrics]

    def arrays(self, M):
        """dict of host arrays of model size ``M`` (``means (M, d)``, ``std`` (the
        standard deviation, variance = std^2), ``generated (eval_samples, d)``), read from its NPZ on first use."""
        M = int(M)
        if M not in self.sizes:
            raise KeyError(f"no completed model size M = {M} in {self.path}; completed: "
                           f"{self.sizes}")
        if M not in self._arrays:
            self._arrays[M] = read_npz(
                os.path.join(self.path, RunDir.model_stem(M) + ".npz"))
        return self._arrays[M]

    def __getitem__(self, M):
        """The metrics dict of model size ``M``."""
        M = int(M)
        if M not in self.sizes:
            raise KeyError(f"no completed model size M = {M} in {self.path}; completed: "
                           f"{self.sizes}")
        return self.metrics[self.sizes.index(M)]


def load_run(run_dir):
    """Load a run directory (``gmmdiff-train --out``, or a configuration of a sweep) as a
    :class:`RunResults`; arrays are read lazily. A directory that is not a run, or a
    damaged file, raises :class:`gmmdiff.io.files.StorageError` naming it."""
    cfg, rows = read_run(run_dir)
    return RunResults(os.path.abspath(run_dir), cfg["identity"], cfg.get("meta", {}), rows)


class SweepResults:
    """One sweep directory, as loaded by :func:`load_sweep`.

    Attributes
    ----------
    path : the directory
    spec : the :class:`gmmdiff.experiments.sweep.spec.SweepSpec` (grids and shared settings)
    times : (T,) the time grid (None before any configuration finished)
    rows : list of dicts, one per configuration in the canonical order: ``name``,
        ``N``, ``d``, ``K``, ``seed``, ``status`` ("ok", "crosses twice", ... or
        "incomplete" / "missing"), and for finished ones ``M_pt_over_N`` with its
        95% ``interval``, ``start_over_N``, ``end_over_N``, the trained ``sizes`` with
        their measured ``ratios``, and ``mc`` (the Monte Carlo curves of the fits)
    """

    def __init__(self, path, spec, summary):
        self.path = path
        self.spec = spec
        self.identity = summary["identity"]
        self.times = None if summary["times"] is None else np.asarray(summary["times"])
        self.rows = summary["configs"]

    def __repr__(self):
        done = sum("M_pt_over_N" in r for r in self.rows)
        return f"SweepResults({self.path!r}: {done}/{len(self.rows)} configurations complete)"

    def __len__(self):
        return len(self.rows)

    def complete(self):
        """The rows of finished configurations."""
        return [r for r in self.rows if "M_pt_over_N" in r]

    def column(self, key):
        """(n_configurations,) float64 array of one row field (nan where missing)."""
        return np.asarray([np.nan if r.get(key) is None else r[key] for r in self.rows],
                          dtype=np.float64)

    def curve(self, name):
        """(M (n,), ratio (n,)) the measured memorization ratio of configuration
        ``name`` (``"N20-d10-K2-s0"``) over its trained sizes."""
        row = self._row(name)
        if "sizes" not in row:
            raise KeyError(f"configuration {name} of {self.path} is {row['status']}")
        return np.asarray(row["sizes"], dtype=np.float64), np.asarray(row["ratios"], dtype=np.float64)

    def run(self, name):
        """The :class:`RunResults` of configuration ``name`` (every per-size metric)."""
        self._row(name)
        return load_run(os.path.join(self.path, name))

    def _row(self, name):
        for r in self.rows:
            if r["name"] == name:
                return r
        raise KeyError(f"no configuration {name!r} in {self.path}; e.g. {self.rows[0]['name']}")


def load_sweep(sweep_dir):
    """Load a sweep directory (``gmmdiff-sweep --out``) as a :class:`SweepResults`: one
    row per configuration with its measured transition and per-size ratios (finished
    or not: unfinished rows carry their status only). Raises
    :class:`gmmdiff.io.files.StorageError` naming a directory that is not a sweep or a
    damaged file."""
    from gmmdiff.experiments.sweep.spec import read_sweep
    from gmmdiff.experiments.sweep.summary import transition_summary
    spec = read_sweep(sweep_dir)
    return SweepResults(os.path.abspath(sweep_dir), spec, transition_summary(sweep_dir))
