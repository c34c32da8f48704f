"""Metrics of a trained model (SPEC 9). Inputs may be numpy or cupy; results are host
Python values (these run at evaluation time, never inside the training step)."""
import numpy as np

from gmmdiff.backend import to_host

PERCENTILES = (10, 25, 50, 75, 90)


def _two_nearest(A, B):
    """Euclidean distances from each row of A (n, d) to its nearest and second-nearest
    row of B (m, d): two (n,) arrays (second = inf when m = 1).

    A k-d tree over B (``scipy.spatial.cKDTree``, exact; distances from direct
    differences) instead of the dense (n, m, d) difference array: memory O((n + m) d),
    so the number of generated samples n can grow freely."""
    from scipy.spatial import cKDTree
    A = np.asarray(to_host(A), dtype=np.float64)
    B = np.asarray(to_host(B), dtype=np.float64)
    if B.shape[0] == 1:
        return np.sqrt(((A - B[0]) ** 2).sum(-1)), np.full(A.shape[0], np.inf)
    dist, _ = cKDTree(B).query(A, k=2)                                   # (n, 2)
    return dist[:, 0], dist[:, 1]


def wilson_interval(k, n, confidence=0.95):
    """Wilson score interval for k successes out of n: (low, high); nan for n = 0.

    The closed form (no continuity correction), the interval of
    ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`` (a test compares
    them): with z the normal quantile of (1 + confidence) / 2 and p = k / n,
    center = (k + z^2 / 2) / (n + z^2), half = z sqrt(n p (1 - p) + z^2 / 4) / (n + z^2),
    the interval center -/+ half, whose ends at k = 0 and k = n are 0 and 1 exactly."""
    from scipy.special import ndtri      # (scipy.stats.norm.ppf's own function; a lighter import)
    if n <= 0:
        return (float("nan"), float("nan"))
    z = float(ndtri(0.5 + confidence / 2))
    k, n = float(k), float(n)
    center = (k + z * z / 2) / (n + z * z)
    half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    lo = 0.0 if k == 0 else max(0.0, center - half)       # exact ends: 0 of n, n of n
    hi = 1.0 if k == n else min(1.0, center + half)
    return (float(lo), float(hi))


def memorization(samples, X):
    """Memorized fraction of generated samples given the training set.

    A sample is memorized when its distance to the nearest training point is below 1/3
    of the distance to the second nearest.

    Parameters
    ----------
    samples : (n, d) array
        Generated samples.
    X : (N, d) array
        The training set, N >= 2.

    Returns
    -------
    dict
        ``ratio`` (float), ``interval`` ([lo, hi], the 95% Wilson interval),
        ``count`` (memorized samples) and ``n``.
    """
    d1, d2 = _two_nearest(samples, X)
    flags = d1 < d2 / 3.0
    k, n = int(flags.sum()), int(flags.size)
    return {"ratio": k / n, "interval": list(wilson_interval(k, n)), "count": k, "n": n}


def _stats(values):
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    return {"mean": float(values.mean()),
            **{f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES}}


def learned_means_stats(means, true_means, X):
    """Where the learned means sit: near a true mean, near a training sample, or neither.

    A mean is near a true mean when the nearest true mean is closer than 1/3 of both the
    nearest training point and the second-nearest true mean; near a sample likewise with
    the roles swapped. Returns counts, and the mean and percentiles 10/25/50/75/90 of the
    distance to the nearest true mean and to the nearest training point.
    """
    m1, m2 = _two_nearest(means, true_means)
    x1, x2 = _two_nearest(means, X)
    near_mean = (m1 < x1 / 3.0) & (m1 < m2 / 3.0)
    near_sample = (x1 < m1 / 3.0) & (x1 < x2 / 3.0)
    return {
        "n_means": int(m1.size),
        "near_true_mean": int(near_mean.sum()),
        "near_sample": int(near_sample.sum()),
        "neither": int((~near_mean & ~near_sample).sum()),
        "dist_nearest_true_mean": _stats(m1),
        "dist_nearest_sample": _stats(x1),
    }


def wasserstein2(A, B):
    """Exact 2-Wasserstein distance between two equal-size point clouds (n, d)."""
    from scipy.optimize import linear_sum_assignment
    A = np.asarray(to_host(A), dtype=np.float64)
    B = np.asarray(to_host(B), dtype=np.float64)
    if A.shape != B.shape:
        raise ValueError(f"point clouds must have equal shapes; got {A.shape} and {B.shape}")
    C = ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(C)
    return float(np.sqrt(C[r, c].mean()))
