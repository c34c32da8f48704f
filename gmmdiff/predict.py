"""Predicting the memorization transition, and fitting the time weights (SPEC 7).

For one configuration, a *source* gives per-time curves on a common footing:
``gen (T,)`` for the generalizing model and ``pmem (J, T)`` for the partially
memorizing models of sizes ``M (J,)``:

- ``"mc"``: Monte Carlo training losses stored by training (absolute; the memorizing
  loss cancels in the difference), at the trained sizes;
- ``"simple"``, ``"nearest"``, ``"expected"``: the approximations of
  :mod:`gmmdiff.theory` (excess over the memorizing model), on
  :func:`gmmdiff.theory.size_grid` (every M = 1..N for N <= 2000, a documented grid
  beyond).

The predicted transition is the sign change of Delta(M) = sum_t lam_t [gen_t - pmem_t(M)]
(:func:`gmmdiff.theory.crossover`); :func:`predicted_ratios` finds it exactly to one
model size for given weightings, without whole curves. For fitting, a curve without a
sign change is clamped to the end of the size grid it points to (Delta >= 0
everywhere: the smallest size; Delta < 0 everywhere: N), so that the objective stays
defined; reports mark those configurations.

:func:`fit_weights` fits lam on the probability simplex by minimizing the mean squared
error of the predicted M*/N over a training split of configurations.
"""
import os

import numpy as np
from scipy.optimize import minimize

from .process import loss_scale
from .theory import crossover, crossover_search, excess_curve, generalizing_excess_loss, size_grid

SOURCES = ("mc", "simple", "nearest", "expected")


def config_of(base, entry):
    """The :class:`gmmdiff.config.TrainConfig` of one configuration of a sweep summary:
    the sweep's ``base`` settings (dict) with the entry's N, d, K, seed and s* (an entry
    without ``data_var``, from a sweep of one s*, takes the base's)."""
    from .config import TrainConfig
    data_var = entry.get("data_var", base.get("data_var", 1.0))
    return TrainConfig(**dict(base, samples=entry["N"], dim=entry["d"], components=entry["K"],
                              seed=entry["seed"], data_var=data_var))


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
    model sizes in [1, N], default :func:`gmmdiff.theory.size_grid` (every M = 1..N
    for N <= 2000). M is returned as float64.
    """
    N, w, gen, x0_at = _approximation_setup(times, config, source, X)
    sizes = size_grid(N) if sizes is None else sizes
    x0 = x0_at(sizes)                                                    # (J,)
    return np.asarray(sizes, dtype=np.float64), gen, x0[:, None] * w[None, :]


def predicted_ratios(times, config, source, weightings, *, X=None):
    """[(M*/N, crossed)] per weighting, exact to one model size (no whole curve needed).

    times : (T,);  config, X : as for :func:`approximation_curves`;  weightings : list
    of (T,) nonnegative time weights. Each is searched with
    :func:`gmmdiff.theory.crossover_search`, which equals :func:`predicted_ratio` on
    every M = 1..N with ``clamp=False`` when Delta is monotone. "nearest" computes its
    curve once (one pass for all M); "expected" is evaluated only where the search needs.
    A missing sign change gives (nan, False).
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


def _time_scales(curves):
    """Per-time scales making the curves comparable across times (fitting only)."""
    mags = np.array([np.abs(gen) + np.abs(pmem).mean(axis=0) for _, gen, pmem, _ in curves])
    scale = mags.mean(axis=0)
    return np.where(scale > 0, scale, 1.0)


def fit_weights(curves, measured, *, n_restarts=4, seed=0):
    """Time weights on the simplex minimizing the mean squared error of M*/N.

    Parameters
    ----------
    curves : list of (M (J,), gen (T,), pmem (J, T), N) per configuration
    measured : (C,) measured M_pt / N of the same configurations
    Returns
    -------
    weights : (T,) nonnegative, summing to 1, for the curves as given.

    The optimization runs in per-time normalized units (the eps-scale weight spans six
    orders of magnitude over the grid) with SLSQP on the simplex from the uniform start
    and ``n_restarts`` seeded random starts; the best is kept.
    """
    measured = np.asarray(measured, dtype=np.float64)
    if len(curves) != measured.size or measured.size == 0:
        raise ValueError("need one measured ratio per configuration, at least one")
    scale = _time_scales(curves)
    stack = _Stack([(M, gen / scale, pmem / scale[None, :], N) for M, gen, pmem, N in curves])
    T = scale.size

    def loss(lam):
        lam = np.maximum(lam, 0.0)
        if lam.sum() <= 0:
            return 1.0
        return float(np.mean((stack.ratios(lam) - measured) ** 2))

    rng = np.random.default_rng(seed)
    starts = [np.full(T, 1.0 / T)] + [rng.dirichlet(np.full(T, 0.5)) for _ in range(n_restarts)]
    best = None
    for x0 in starts:
        res = minimize(loss, x0, method="SLSQP", bounds=[(0.0, 1.0)] * T,
                       constraints=[{"type": "eq", "fun": lambda l: np.sum(l) - 1.0}],
                       options={"maxiter": 200, "ftol": 1e-12, "eps": 1e-4})
        cand = np.maximum(res.x, 0.0)
        cand /= cand.sum()
        value = loss(cand)
        if best is None or value < best[0]:
            best = (value, cand)
    lam = best[1] / scale
    return lam / lam.sum()


def check_test_fraction(test_fraction):
    """Raise ValueError unless 0 < test_fraction < 1 (NaN included)."""
    if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test fraction (--test-fraction) = {test_fraction!r} must lie strictly "
                         "between 0 and 1")


def split_configurations(n, *, test_fraction=0.25, seed=0):
    """Seeded split of ``n`` configurations: (train indices, test indices), sorted."""
    check_test_fraction(test_fraction)
    if n < 2:
        raise ValueError(f"need at least 2 configurations to split; got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def fit_and_score(curves, measured, *, test_fraction=0.25, seed=0):
    """Fit on a seeded training split, score on held-out configurations.

    Returns a dict with ``weights``, ``train``/``test`` index lists, per-configuration
    ``predicted`` ratios, and mean squared errors of the fit and of the trivial
    predictor (mean measured ratio of the training split) on both splits.
    """
    measured = np.asarray(measured, dtype=np.float64)
    tr, te = split_configurations(len(curves), test_fraction=test_fraction, seed=seed)
    lam = fit_weights([curves[i] for i in tr], measured[tr], seed=seed)
    pred = _Stack(curves).ratios(lam)
    trivial = float(measured[tr].mean())

    def mse(idx, values):
        return float(np.mean((values[idx] - measured[idx]) ** 2))

    return {
        "weights": lam.tolist(), "train": tr.tolist(), "test": te.tolist(),
        "predicted": pred.tolist(), "measured": measured.tolist(),
        "mse_train": mse(tr, pred), "mse_test": mse(te, pred),
        "trivial_prediction": trivial,
        "trivial_mse_train": mse(tr, np.full_like(measured, trivial)),
        "trivial_mse_test": mse(te, np.full_like(measured, trivial)),
        # a tie (within 0.1%, e.g. a source whose prediction is the same for every
        # configuration, fitted to the training mean) does not count as beating it
        "beats_trivial_on_test": mse(te, pred) < 0.999 * mse(te, np.full_like(measured, trivial)),
    }


def fit_summary(summary, source, *, test_fraction=0.25, seed=0):
    """Fit the time weights of ``source`` on a sweep's summary
    (:func:`gmmdiff.sweep.transition_summary`), needing no run directory: "mc" uses the
    Monte Carlo curves the summary holds, the approximations are computed from each
    configuration (and its seeded training set, for "nearest").

    Uses every configuration whose measured curve crosses 1/2; the others are listed
    under ``excluded``. Returns :func:`fit_and_score`'s dict with the source, the time
    grid, the configurations used, their fitted range of N, d and K, the split, the
    target and process, and the summary's provenance.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; accepted: {', '.join(SOURCES)}")
    base = summary["identity"]["base"]
    times = np.asarray(summary["times"], dtype=np.float64)
    names, curves, measured, excluded, used = [], [], [], [], []
    for c in summary["configs"]:
        if c.get("M_pt_over_N") is None:
            excluded.append({"config": c["name"], "status": c["status"]})
            continue
        cfg = config_of(base, c)
        if source == "mc":
            M, gen, pmem = (np.asarray(c["mc"][k], dtype=np.float64) for k in ("M", "gen", "pmem"))
        else:
            X = cfg.dataset().X if source == "nearest" else None
            M, gen, pmem = approximation_curves(times, vars(cfg), source, X=X)
        names.append(c["name"])
        curves.append((M, gen, pmem, c["N"]))
        measured.append(c["M_pt_over_N"])
        used.append(c)
    intervals = [c.get("interval", [None, None]) for c in used]
    if len(curves) < 2:
        raise ValueError(f"{len(curves)} configuration(s) with a measured transition; a fit "
                         "needs at least 2")
    result = fit_and_score(curves, measured, test_fraction=test_fraction, seed=seed)
    result.update(source=source, times=times.tolist(), configs=names, measured_interval=intervals,
                  excluded=excluded,
                  split_seed=seed, test_fraction=test_fraction, target=base["target"],
                  process=base["process"], data_var=base["data_var"],
                  range={k: [min(c[k] for c in used), max(c[k] for c in used)] for k in ("N", "d", "K")},
                  provenance=summary.get("provenance", {}))
    return result


def read_fit(path, times):
    """A fit file (``fit_<source>.json``) for the time grid ``times`` (T,): its dict, or
    ValueError naming the file and what is wrong with it."""
    from .storage import read_record
    fit = read_record(path, ("weights", "times", "source"),
                      advice="give a fit file written by `gmmdiff-predict --fit SWEEP_DIR`")
    try:
        w = np.asarray(fit["weights"], dtype=np.float64)
        t = np.asarray(fit["times"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: weights and times must be lists of numbers") from None
    if fit["source"] not in SOURCES:
        raise ValueError(f"{path}: unknown source {fit['source']!r}; accepted: {', '.join(SOURCES)}")
    if t.shape != np.shape(times) or not np.allclose(t, times):
        raise ValueError(f"{path} was fitted on another time grid ({t.size} times)")
    if w.shape != t.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"{path}: the weights must be {t.size} finite numbers >= 0, not all 0")
    return fit


SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "cpu_sweep")


def shipped_fits():
    """The fits that ship with gmmdiff (source -> fit dict), made on the CPU sweep
    (``gmmdiff-sweep --preset cpu``; its summary is ``assets/cpu_sweep/summary.json``).
    Empty when none ships."""
    from .storage import read_json
    out = {}
    for source in SOURCES:
        path = os.path.join(SHIPPED, f"fit_{source}.json")
        if os.path.exists(path):
            out[source] = read_json(path)
    return out
