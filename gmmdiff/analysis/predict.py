"""Predicting the memorization transition, and fitting the time weights (SPEC 7).

For one configuration, a *source* gives per-time curves on a common footing:
``gen (T,)`` for the generalizing model and ``pmem (J, T)`` for the partially
memorizing models of sizes ``M (J,)``:

- ``"mc"``: Monte Carlo training losses stored by training (absolute; the memorizing
  loss cancels in the difference), at the trained sizes;
- ``"simple"``, ``"nearest"``, ``"expected"``: the approximations of
  :mod:`gmmdiff.theory.approximations` (excess over the memorizing model), on
  :func:`gmmdiff.theory.crossover.size_grid` (every M = 1..N for N <= 2000, a documented grid
  beyond).

The predicted transition is the sign change of Delta(M) = sum_t lam_t [gen_t - pmem_t(M)]
(:func:`gmmdiff.theory.crossover`); :func:`predicted_ratios` finds it exactly to one
model size for given weightings, without whole curves. For fitting, a curve without a
sign change is clamped to the end of the size grid it points to (Delta >= 0
everywhere: the smallest size; Delta < 0 everywhere: N), so that the objective stays
defined; reports mark those configurations.

The fits of the time weights live in :mod:`gmmdiff.analysis.fits`.
"""

import numpy as np

from gmmdiff.backend import get_dtype
from gmmdiff.model.data import make_dataset
from gmmdiff.model.process import loss_scale
from gmmdiff.theory.approximations import excess_curve, generalizing_excess_loss
from gmmdiff.theory.crossover import crossover, crossover_search, size_grid

SOURCES = ("mc", "simple", "nearest", "expected")


def config_of(base, entry):
    """The settings of one configuration of a sweep summary, as a plain dict: the sweep's
    ``base`` settings (dict) with the entry's N, d, K, seed and s* (an entry without
    ``data_var``, from a sweep of one s*, takes the base's). Keys as
    :class:`gmmdiff.training.config.TrainConfig`'s fields (``samples``, ``dim``,
    ``components``, ``seed``, ``data_var``, ...)."""
    data_var = entry.get("data_var", base.get("data_var", 1.0))
    return dict(base, samples=int(entry["N"]), dim=int(entry["d"]), components=int(entry["K"]),
                seed=int(entry["seed"]), data_var=float(data_var))


def training_set(config):
    """X (N, d): the seeded training set of a Gaussian-mixture configuration given as plain
    settings (``dim``, ``components``, ``samples``, ``data_var``, ``seed``; ``dtype``
    "float64" by default), the set training drew (:func:`gmmdiff.model.data.make_dataset`),
    for the "nearest" source."""
    if config.get("model", "gmm") != "gmm":
        raise ValueError(f"the training set of model {config['model']!r} is not a mixture's; "
                         "accepted: gmm")
    return make_dataset(int(config["dim"]), int(config["components"]), int(config["samples"]),
                        var=float(config.get("data_var", 1.0)), seed=int(config.get("seed", 0)),
                        dtype=get_dtype(config.get("dtype", "float64"))).X


def curves_from_results(rows, source, *, config, X=None):
    """(M (J,), gen (T,), pmem (J, T)) of one configuration for a ``source``.

    rows : per-size metric dicts of a run directory (as stored by training)
    config : dict with dim, components, samples, data_var, seed, target, process
    X : (N, d) training set, needed for "nearest"
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; accepted: {', '.join(SOURCES)}")
    t = np.asarray(rows[0]["times"], dtype=np.float64)
    if source == "mc":
        M = np.array([r["M"] for r in rows if r["M"] <= config["samples"]], dtype=np.float64)
        gen = np.asarray(rows[0]["per_time_losses"]["generalizing_train"])
        pmem = np.array([r["per_time_losses"]["pmem_train"] for r in rows
                         if r["M"] <= config["samples"]])
        return M, gen, pmem
    return approximation_curves(t, config, source, X=X)


def _approximation_setup(times, config, source, X):
    """N, w (T,), gen (T,) and x0_at: sizes (J,) -> x0-scale excess (J,) of ``source``."""
    if source not in ("simple", "nearest", "expected"):
        raise ValueError(f"unknown approximation source {source!r}; accepted: simple, nearest, expected")
    d, K, N = int(config["dim"]), int(config["components"]), int(config["samples"])
    s = float(config.get("data_var", 1.0))
    target, process = config.get("target", "eps"), config.get("process", "vp")
    times = np.asarray(times, dtype=np.float64)
    w = loss_scale(times, process, target)                               # (T,)
    gen = generalizing_excess_loss(times, d, s, target=target, process=process)

    def x0_at(sizes):
        return excess_curve(source, sizes, N, d, s, K=K, X=X, seed=int(config.get("seed", 0)))
    return N, w, gen, x0_at


def approximation_curves(times, config, source, *, X=None, sizes=None):
    """(M (J,), gen (T,), pmem (J, T)) from the approximations, target scale.

    times : (T,);  config : dict with dim, components, samples (and data_var, seed,
    target, process);  X : (N, d) training set, needed for "nearest";  sizes : (J,)
    model sizes in [1, N], default :func:`gmmdiff.theory.crossover.size_grid` (every M = 1..N
    for N <= 2000). M is returned as float64.
    """
    N, w, gen, x0_at = _approximation_setup(times, config, source, X)
    sizes = size_grid(N) if sizes is None else sizes
    x0 = x0_at(sizes)                                                    # (J,)
    return np.asarray(sizes, dtype=np.float64), gen, x0[:, None] * w[None, :]


def predicted_ratios(times, config, source, weightings, *, X=None):
    """The predicted M*/N of one configuration under several time weightings, exact to
    one model size (no whole curve needed).

    Each weighting's sign change of Delta(M) is searched on a few dozen sizes (equal to
    evaluating every M = 1..N when Delta is monotone); "nearest" computes its curve once
    (one pass for all M), "expected" only where the search needs it. This is what
    ``gmmdiff-predict`` computes per row.

    Parameters
    ----------
    times : (T,) array
        The time grid (e.g. :func:`time_grid`).
    config : dict
        The configuration: ``dim``, ``components``, ``samples`` and optionally
        ``data_var``, ``seed``, ``target``, ``process`` (``vars(TrainConfig(...))``
        will do).
    source : {"simple", "nearest", "expected"}
        The partially memorizing approximation.
    weightings : list of (T,) arrays
        Nonnegative time weights, one prediction per entry.
    X : (N, d) array, optional
        The training set, needed for ``"nearest"``.

    Returns
    -------
    list of (float, bool)
        ``(M*/N, crossed)`` per weighting; a missing sign change gives
        ``(nan, False)``.

    Examples
    --------
    >>> import numpy as np, gmmdiff
    >>> times = gmmdiff.time_grid()
    >>> fit = gmmdiff.shipped_fits()["simple"]
    >>> [(r, ok)] = gmmdiff.predicted_ratios(times, {"dim": 10, "components": 2, "samples": 20},
    ...                                      "simple", [np.asarray(fit["weights"])])
    >>> ok, round(r, 2)
    (True, 0.8)
    """
    N, w, gen, x0_at = _approximation_setup(times, config, source, X)
    if source == "nearest":
        curve = x0_at(np.arange(1, N + 1))                               # (N,)

        def pmem_at(sizes):
            return curve[sizes - 1, None] * w[None, :]
    else:
        def pmem_at(sizes):
            return x0_at(sizes)[:, None] * w[None, :]
    out = []
    for weights in weightings:
        M_star, _, _ = crossover_search(N, gen, pmem_at, weights)
        out.append((M_star / N, True) if np.isfinite(M_star) else (float("nan"), False))
    return out


def predicted_ratio(M, gen, pmem, weights, N, *, clamp=True):
    """Predicted M*/N; with ``clamp`` a missing sign change goes to the grid end it
    points to (see module docstring), else it is nan. Returns (ratio, crossed)."""
    M_star, delta = crossover(M, gen, pmem, weights)
    if np.isfinite(M_star):
        return M_star / N, True
    if not clamp:
        return float("nan"), False
    return (M[0] / N if delta[0] >= 0 else 1.0), False


class _Stack:
    """The curves of C configurations padded to a common number of sizes, so that the
    predicted ratio of every configuration comes from one array expression: the same
    arithmetic, row by row, as :func:`predicted_ratio` with ``clamp=True`` (fits call it
    thousands of times)."""

    def __init__(self, curves):
        C, J, T = len(curves), max(len(c[0]) for c in curves), curves[0][1].size
        self.D = np.full((C, J, T), np.nan)                              # gen - pmem (C, J, T)
        self.M = np.full((C, J), np.nan)
        self.N = np.array([c[3] for c in curves], dtype=np.float64)
        for k, (M, gen, pmem, _) in enumerate(curves):
            self.D[k, :len(M)] = gen[None, :] - pmem
            self.M[k, :len(M)] = M
        self.rows = np.arange(C)

    def ratios(self, weights):
        """(C,) predicted M*/N (padding is NaN, never a crossing)."""
        delta = np.sum(self.D * weights, axis=2)                          # (C, J)
        with np.errstate(invalid="ignore"):
            hits = (delta[:, :-1] < 0) & (delta[:, 1:] >= 0)
        j = np.argmax(hits, axis=1) + 1                                  # first crossing
        r, d0, d1 = self.rows, delta[self.rows, j - 1], delta[self.rows, j]
        with np.errstate(invalid="ignore", divide="ignore"):
            f = -d0 / (d1 - d0)
            crossed = (self.M[r, j - 1] + f * (self.M[r, j] - self.M[r, j - 1])) / self.N
        clamped = np.where(delta[:, 0] >= 0, self.M[:, 0] / self.N, 1.0)
        return np.where(hits.any(axis=1), crossed, clamped)

    def ratios_many(self, weights):
        """(P, C) predicted M*/N for P weight vectors ``weights`` (P, T) at once: row p
        bit for bit ``ratios(weights[p])`` (each weighted sum over the T times is the
        same contiguous reduction), for the P points of a finite-difference gradient."""
        W = np.asarray(weights, dtype=np.float64)
        # (C, J, P, T) summed over its last axis as ratios() sums (C, J, T): (P, C, J)
        delta = np.moveaxis(np.sum(self.D[:, :, None, :] * W[None, None, :, :], axis=3), 2, 0)
        with np.errstate(invalid="ignore"):
            hits = (delta[..., :-1] < 0) & (delta[..., 1:] >= 0)             # (P, C, J - 1)
        j = np.argmax(hits, axis=2) + 1                                     # (P, C)
        r = self.rows[None, :]
        d0 = np.take_along_axis(delta, (j - 1)[..., None], axis=2)[..., 0]
        d1 = np.take_along_axis(delta, j[..., None], axis=2)[..., 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            f = -d0 / (d1 - d0)
            crossed = (self.M[r, j - 1] + f * (self.M[r, j] - self.M[r, j - 1])) / self.N
        clamped = np.where(delta[..., 0] >= 0, self.M[:, 0] / self.N, 1.0)
        return np.where(hits.any(axis=2), crossed, clamped)
