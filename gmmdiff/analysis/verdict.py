"""Whether a predictor of the transition beats the trivial one, measured honestly
(SPEC 7): the noise floor from seed replicates, folds held out by setting, and a
paired comparison with a confidence interval.

- :func:`noise_floor`: the per-measurement noise variance, pooled within settings
  (configurations that differ only in seed), with its chi-square 95% interval. No
  predictor can expect a held-out mean squared error below it on single measurements.
- :func:`grouped_folds`: k folds of whole settings (every seed of a setting on one
  side), seeded; :func:`fold_count`: k, checked against the settings.
- :func:`paired_verdict`: the mean over settings of (squared error of the predictor -
  squared error of the trivial predictor) on the same held-out measurements, with a
  percentile bootstrap interval over settings; "beats trivial" when the interval lies
  below -delta, "worse than trivial" above +delta, "indistinguishable from trivial"
  otherwise, with delta = 0.1% of the trivial predictor's mean squared error (a tie
  within an optimizer's tolerance, such as a fit that can only reproduce the mean, is
  not a difference). Below :data:`MIN_SETTINGS` held-out settings it gives the mean
  difference without an interval or a verdict (:data:`NO_VERDICT`), saying why: there
  the bootstrap interval is not one (one setting: width 0; two: their range, which
  holds the true difference about half the time).
"""
import numpy as np

VERDICTS = ("beats trivial", "indistinguishable from trivial", "worse than trivial")


def _group_index(groups):
    """(G,) labels and (C,) integer group of each item, for hashable ``groups`` (C,)."""
    labels = sorted(set(groups), key=repr)
    where = {g: i for i, g in enumerate(labels)}
    return labels, np.array([where[g] for g in groups], dtype=np.int64)


def noise_floor(values, groups, *, level=0.95):
    """Pooled within-setting variance of ``values`` (C,) given each one's setting
    ``groups`` (C,): sum_g sum_i (v_gi - mean_g)^2 / sum_g (n_g - 1), with its
    chi-square interval on those degrees of freedom. Returns a dict with ``value``,
    ``interval``, ``df`` and ``settings`` (replicated settings); value None when no
    setting has two measurements."""
    from scipy import stats
    values = np.asarray(values, dtype=np.float64)
    _, g = _group_index(list(groups))
    ss, df, reps = 0.0, 0, 0
    for k in np.unique(g):
        v = values[g == k]
        if v.size >= 2:
            ss += float(np.sum((v - v.mean()) ** 2))
            df += v.size - 1
            reps += 1
    if df == 0:
        return {"value": None, "interval": [None, None], "df": 0, "settings": 0}
    est = ss / df
    a = (1 - level) / 2
    return {"value": est, "interval": [ss / stats.chi2.ppf(1 - a, df), ss / stats.chi2.ppf(a, df)],
            "df": df, "settings": reps}


DEFAULT_FOLDS = 5


def fold_count(n_folds, n_settings, what="settings"):
    """The number of folds over ``n_settings`` settings (``what`` names them):
    ``n_folds``, or for None :data:`DEFAULT_FOLDS`, one per setting where there are
    fewer. ValueError for a count that cannot be right: below 2, or above the settings
    (a fold holds at least one)."""
    if n_settings < 2:
        raise ValueError(f"need at least 2 settings to hold any out; got {n_settings}")
    if n_folds is None:
        return min(DEFAULT_FOLDS, n_settings)
    if isinstance(n_folds, bool) or int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"folds = {n_folds!r} must be an integer >= 2")
    if n_folds > n_settings:
        raise ValueError(f"folds (--folds) = {n_folds}: more than the {n_settings} {what} there "
                         f"are to hold out (a fold holds at least one); accepted: 2 to {n_settings}")
    return int(n_folds)


def grouped_folds(groups, n_folds=None, *, seed=0):
    """Test index sets of ``n_folds`` folds (:func:`fold_count`: at most one per
    setting; None: :data:`DEFAULT_FOLDS` or fewer) that keep each setting whole:
    settings shuffled (seeded) and dealt in turn. Returns a list of sorted (C_f,) int
    arrays covering 0..C-1 exactly once."""
    labels, g = _group_index(list(groups))
    n_folds = fold_count(n_folds, len(labels))
    perm = np.random.default_rng(seed).permutation(len(labels))
    fold_of = np.empty(len(labels), dtype=np.int64)
    fold_of[perm] = np.arange(len(labels)) % n_folds
    return [np.flatnonzero(fold_of[g] == f) for f in range(n_folds)]


TIE = 1e-3                  # delta, relative to the trivial predictor's mean squared error


# The fewest held-out settings a verdict is given on. A percentile bootstrap over G
# settings covers the true mean difference far less often than its nominal 95% when G is
# small (G = 1: never, the interval has width 0; G = 2: [min, max], about half the time).
# Measured by benchmarks/bench_verdict_coverage.py (docs/science.rst, "Verdicts"; 2,000
# trials a cell): the smallest G from which the 95% interval covers at least 85% of
# the time for normal differences and for the per-setting differences of the shipped
# CPU-sweep fits, resampled -- 0.894, 0.870, 0.850 and 0.861 at G = 8 (0.50 at 2, 0.66-0.74
# at 3). Where one predictor's error per setting dominates (differences skewed like a
# chi-square) 8 settings cover 0.80, 27 settings 0.90.
MIN_SETTINGS = 8


NO_VERDICT = "no verdict: too few settings"


def bootstrap_interval(per, *, n_boot=4000, seed=0, level=0.95):
    """Percentile bootstrap interval of the mean of ``per`` (G,), resampled ``n_boot``
    times with a generator seeded ``seed``: ``[lo, hi]`` as floats. Its coverage is
    below ``level`` for small G (:data:`MIN_SETTINGS`)."""
    per = np.asarray(per, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boot = per[rng.integers(0, per.size, size=(n_boot, per.size))].mean(axis=1)   # (n_boot,)
    a = (1 - level) / 2
    return [float(v) for v in np.quantile(boot, [a, 1 - a])]


def no_verdict_reason(settings, min_settings=MIN_SETTINGS):
    """Why no verdict is given on ``settings`` held-out settings (one line)."""
    return (f"{settings} held-out setting{'s' if settings != 1 else ''}, fewer than the "
            f"{min_settings} a verdict needs (a bootstrap interval over fewer covers the true "
            "difference too rarely)")


def paired_verdict(sq_pred, sq_trivial, groups, *, n_boot=4000, seed=0, level=0.95,
                   min_settings=MIN_SETTINGS):
    """Paired comparison of two predictors' squared errors (C,) on the same held-out
    measurements: the mean over settings of the per-setting mean difference
    (predictor - trivial), a percentile bootstrap interval over settings
    (:func:`bootstrap_interval`), and the verdict (:data:`VERDICTS`; differences
    within :data:`TIE` of the trivial error are ties).

    Below ``min_settings`` settings (:data:`MIN_SETTINGS`) there is no interval
    (``[None, None]``) and no verdict: ``verdict`` is :data:`NO_VERDICT` and ``why``
    says why. Returns a dict with ``mean_difference``, ``interval``, ``settings``,
    ``verdict`` (and ``why`` without one)."""
    diff = np.asarray(sq_pred, dtype=np.float64) - np.asarray(sq_trivial, dtype=np.float64)
    _, g = _group_index(list(groups))
    per = np.array([diff[g == k].mean() for k in np.unique(g)])           # (G,)
    if per.size < min_settings:
        return {"mean_difference": float(per.mean()), "interval": [None, None],
                "settings": int(per.size), "verdict": NO_VERDICT,
                "why": no_verdict_reason(int(per.size), min_settings)}
    lo, hi = bootstrap_interval(per, n_boot=n_boot, seed=seed, level=level)
    delta = TIE * float(np.mean(sq_trivial))
    verdict = VERDICTS[0] if hi < -delta else VERDICTS[2] if lo > delta else VERDICTS[1]
    return {"mean_difference": float(per.mean()), "interval": [lo, hi], "settings": int(per.size),
            "verdict": verdict}


def stated_verdict(verdict):
    """The verdict text of a stored verdict dict (a fit file's, a transfer's), with the
    minimum applied to files written before it: :data:`NO_VERDICT` where it rests on
    fewer than :data:`MIN_SETTINGS` settings."""
    settings = verdict.get("settings")
    if settings is not None and settings < MIN_SETTINGS:
        return NO_VERDICT
    return verdict["verdict"]
