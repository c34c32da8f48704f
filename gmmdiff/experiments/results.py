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

from gmmdiff.analysis.convergence import series_arrays
from gmmdiff.io.files import read_npz
from gmmdiff.io.rundir import RunDir, read_diverged, read_run


class RunResults:
    """One run directory, as loaded by :func:`load_run`.

    Index it by a model size (``run[20]``) for that size's metrics dict.

    Attributes
    ----------
    path : str
        The directory (absolute).
    config : dict
        Every setting the results depend on (``config.json``'s identity: dim,
        components, samples, seed, steps, ..., backend, results_format).
    meta : dict
        Facts recorded beside it (gmmdiff version, template file path).
    sizes : list of int
        The completed model sizes M with results, increasing.
    metrics : list of dict
        Per-size metrics (``model_M*.json``), in the order of ``sizes``.
    diverged : list of dict
        The records of the sizes whose training diverged (``M``, ``diverged_at``: the
        step, ``reason``), increasing in M; not in ``sizes``.
    """

    def __init__(self, path, config, meta, metrics, diverged=()):
        self.path = path
        self.config = config
        self.meta = meta
        self.metrics = metrics
        self.diverged = list(diverged)
        self.sizes = [int(m["M"]) for m in metrics]
        self._arrays = {}

    def __repr__(self):
        c = self.config
        what = (f"templates K={c.get('components')}" if c.get("model") == "templates"
                else f"d={c.get('dim')} K={c.get('components')}")
        return (f"RunResults({self.path!r}: {what} N={c.get('samples')} seed={c.get('seed')}, "
                f"sizes {self.sizes})")

    def column(self, key):
        """One metric over the sizes.

        Parameters
        ----------
        key : str
            A key of ``model_M*.json``, dotted for nested ones
            (``"memorization.ratio"``).

        Returns
        -------
        (n_sizes,) float64 array
        """
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
        """(n_sizes,) model sizes over N."""
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
        """(n_sizes,) learned variance of each size."""
        return self.column("learned_variance")

    @property
    def times(self):
        """(T,) the time grid of the per-time losses."""
        return np.asarray(self.metrics[0]["times"], dtype=np.float64)

    def per_time(self, key):
        """One per-time loss over the sizes.

        Parameters
        ----------
        key : str
            A key of ``per_time_losses``: ``"model_train"``, ``"model_test"``,
            ``"generalizing_train"``, ``"memorizing_test"``, ``"pmem_train"``, ...

        Returns
        -------
        (n_sizes, T) float64 array
        """
        return np.asarray([m["per_time_losses"][key] for m in self.metrics], dtype=np.float64)

    @property
    def eval_steps(self):
        """(E,) int64 steps of the evaluations along training (empty without them)."""
        if not self.metrics or "along_training" not in self.metrics[0]:
            return np.zeros(0, dtype=np.int64)
        return series_arrays(self.metrics, "ratio")[0]

    def series(self, key):
        """One metric along training, steps x sizes.

        Parameters
        ----------
        key : str
            ``"ratio"``, ``"ratio_lo"``, ``"ratio_hi"``, ``"count"``, ``"n"``,
            ``"variance"``, ``"train_loss"``, ``"test_loss"``, ``"near_true_mean"``,
            ``"near_sample"``, ``"dist_true_mean"`` or ``"dist_sample"`` (the GMM
            family records the last four).

        Returns
        -------
        (E, n_sizes) float64 array
            At the steps :attr:`eval_steps`.

        Raises
        ------
        KeyError
            For a run without evaluations along training (``--eval-steps none``, or
            results format 5 and earlier).
        """
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
        """list of each size's convergence status (:mod:`gmmdiff.analysis.convergence`:
        "converged", "moving", "at init", "unknown")."""
        return [m.get("along_training", {}).get("status", "unknown") for m in self.metrics]

    def arrays(self, M):
        """The arrays of one model size, read from its NPZ on first use.

        Parameters
        ----------
        M : int
            A completed model size.

        Returns
        -------
        dict of numpy arrays
            The GMM family's ``means`` (M, d), ``std`` (the standard deviation,
            variance = std^2) and ``generated`` (eval_samples, d); see :doc:`/files`
            for the templates family's.
        """
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
    """Load a run directory (``gmmdiff-train --out``, or a configuration of a sweep).

    Parameters
    ----------
    run_dir : str
        The run directory.

    Returns
    -------
    RunResults
        Its configuration and per-size metrics; arrays are read from the NPZ files
        only when asked for (:meth:`RunResults.arrays`).

    Raises
    ------
    gmmdiff.io.files.StorageError
        A ``ValueError`` naming the directory that is not a run, or the damaged file.
    """
    cfg, rows = read_run(run_dir)
    return RunResults(os.path.abspath(run_dir), cfg["identity"], cfg.get("meta", {}), rows,
                      read_diverged(run_dir))


class SweepResults:
    """One sweep directory, as loaded by :func:`load_sweep`.

    Attributes
    ----------
    path : str
        The directory (absolute).
    spec : SweepSpec
        The grids and shared settings.
    identity : dict
        ``sweep.json``'s identity (the grids, the base settings, backend, results
        format).
    times : (T,) array or None
        The time grid (None before any configuration finished).
    rows : list of dict
        One per configuration in the canonical order, as in ``summary.json``:
        ``name``, ``N``, ``d``, ``K``, ``data_var``, ``init``, ``seed``, ``status``
        (see :doc:`/files`), and for finished ones ``M_pt_over_N`` with its 95%
        ``interval``, ``start_over_N``, ``end_over_N``, the trained ``sizes`` with
        their measured ``ratios``, and ``mc`` (the Monte Carlo curves of the fits).
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
        """One field of the rows over the configurations.

        Parameters
        ----------
        key : str
            A key of the ``rows``, e.g. ``"M_pt_over_N"``.

        Returns
        -------
        (n_configurations,) float64 array
            nan where a row lacks it.
        """
        return np.asarray([np.nan if r.get(key) is None else r[key] for r in self.rows],
                          dtype=np.float64)

    def curve(self, name):
        """The measured memorization ratio of one configuration over its trained sizes.

        Parameters
        ----------
        name : str
            The configuration's name, e.g. ``"N20-d10-K2-s0"``.

        Returns
        -------
        M : (n,) float64 array
            The trained sizes.
        ratio : (n,) float64 array
            Their memorization ratios.
        """
        row = self._row(name)
        if "sizes" not in row:
            raise KeyError(f"configuration {name} of {self.path} is {row['status']}")
        return np.asarray(row["sizes"], dtype=np.float64), np.asarray(row["ratios"], dtype=np.float64)

    def run(self, name):
        """The run directory of one configuration, loaded.

        Parameters
        ----------
        name : str
            The configuration's name, e.g. ``"N20-d10-K2-s0"``.

        Returns
        -------
        RunResults
        """
        self._row(name)
        return load_run(os.path.join(self.path, name))

    def _row(self, name):
        for r in self.rows:
            if r["name"] == name:
                return r
        raise KeyError(f"no configuration {name!r} in {self.path}; e.g. {self.rows[0]['name']}")


def load_sweep(sweep_dir):
    """Load a sweep directory (``gmmdiff-sweep --out``).

    Parameters
    ----------
    sweep_dir : str
        The sweep directory.

    Returns
    -------
    SweepResults
        One row per configuration with its measured transition and per-size ratios
        (finished or not: unfinished rows carry their status only).

    Raises
    ------
    gmmdiff.io.files.StorageError
        A ``ValueError`` naming the directory that is not a sweep, or the damaged file.
    """
    from gmmdiff.experiments.sweep.spec import read_sweep
    from gmmdiff.experiments.sweep.summary import transition_summary
    spec = read_sweep(sweep_dir)
    return SweepResults(os.path.abspath(sweep_dir), spec, transition_summary(sweep_dir))
