"""The predicted transition as a sign change (SPEC 7): Delta(M) = sum_t lam_t [gen_t -
pmem_t(M)] over model sizes, its first crossing from negative to nonnegative
(:func:`crossover` on given sizes, :func:`crossover_search` exactly to one size over
M = 1..N evaluating only a few dozen sizes) and the size grid of whole curves.
"""
import numpy as np

from gmmdiff.backend import to_host


def _delta(gen, pmem, weights):
    """Delta (J,) = sum_t lam_t [gen_t - pmem_t(M)], summed per row so that a size gets
    the same value whatever other sizes are evaluated with it."""
    return np.sum((gen[None, :] - pmem) * weights[None, :], axis=1)


def _first_crossing(delta):
    """Index j of the first delta[j - 1] < 0 <= delta[j], or None."""
    hits = np.flatnonzero((delta[:-1] < 0) & (delta[1:] >= 0))
    return int(hits[0]) + 1 if hits.size else None


def _crossover_weights(weights, T):
    if weights is None:
        return np.full(T, 1.0 / T)
    weights = np.asarray(to_host(weights), dtype=np.float64)
    if weights.shape != (T,) or np.any(weights < 0):
        raise ValueError(f"weights must be nonnegative with shape ({T},)")
    return weights


def crossover(M_values, gen, pmem, weights=None):
    """Model size where Delta(M) = sum_t lam_t [gen_t - pmem_t(M)] changes sign.

    Parameters
    ----------
    M_values : (J,) increasing model sizes
    gen : (T,) generalizing losses (absolute, or excess over theta_mem)
    pmem : (J, T) partially memorizing losses on the same footing as ``gen``
    weights : (T,) nonnegative time weights (default uniform)

    Returns
    -------
    (M_star, delta) with M_star the linear interpolation of the first sign change from
    negative to nonnegative, or ``nan`` when Delta never changes sign on the grid
    (never extrapolated); delta : (J,) the values of Delta.
    """
    M_values = np.asarray(to_host(M_values), dtype=np.float64)
    gen = np.asarray(to_host(gen), dtype=np.float64)
    pmem = np.asarray(to_host(pmem), dtype=np.float64)
    if pmem.shape != (M_values.size, gen.size):
        raise ValueError(f"pmem must have shape (J, T) = ({M_values.size}, {gen.size}); "
                         f"got {pmem.shape}")
    weights = _crossover_weights(weights, gen.size)
    delta = _delta(gen, pmem, weights)                                   # (J,)
    j = _first_crossing(delta)
    if j is None:
        return float("nan"), delta
    f = -delta[j - 1] / (delta[j] - delta[j - 1])
    return float(M_values[j - 1] + f * (M_values[j] - M_values[j - 1])), delta


def crossover_search(N, gen, pmem_at, weights=None, *, n_coarse=64):
    """:func:`crossover` over all sizes M = 1..N, evaluating ``pmem`` only where needed.

    Parameters
    ----------
    N : largest size;  gen : (T,);  weights : (T,) nonnegative (default uniform)
    pmem_at : callable, sizes (J,) int64 -> pmem (J, T), deterministic per size
    n_coarse : sizes per level of the search

    Returns
    -------
    (M_star, sizes (J,), delta (J,)): the sizes evaluated, increasing, and Delta there.

    Delta is evaluated on ``n_coarse`` sizes spread over 1..N; the first bracket
    Delta(a) < 0 <= Delta(b) is refined the same way until a and b are consecutive
    integers, then interpolated as in :func:`crossover`. When Delta is monotone (as for
    the nested "nearest" curves and for "simple" and "expected") the result equals
    :func:`crossover` on every integer M = 1..N; a non-monotone Delta could hide an
    earlier sign change between two coarse sizes. nan when no bracket is found.
    """
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ValueError(f"samples N = {N!r} must be an integer >= 1")
    if isinstance(n_coarse, bool) or int(n_coarse) != n_coarse or n_coarse < 3:
        raise ValueError(f"n_coarse = {n_coarse!r} must be an integer >= 3")
    gen = np.asarray(to_host(gen), dtype=np.float64)
    weights = _crossover_weights(weights, gen.size)
    known = {}

    def evaluate(sizes):
        new = np.array([M for M in sizes if M not in known], dtype=np.int64)
        if new.size:
            pmem = np.asarray(to_host(pmem_at(new)), dtype=np.float64)
            if pmem.shape != (new.size, gen.size):
                raise ValueError(f"pmem_at must return shape ({new.size}, {gen.size}); got {pmem.shape}")
            known.update(zip(new.tolist(), _delta(gen, pmem, weights).tolist()))
        return np.array([known[M] for M in sizes])

    lo, hi, M_star = 1, int(N), float("nan")
    while True:
        sizes = np.unique(np.round(np.linspace(lo, hi, int(n_coarse))).astype(np.int64))
        delta = evaluate(sizes.tolist())
        j = _first_crossing(delta)
        if j is None:
            break
        lo, hi = int(sizes[j - 1]), int(sizes[j])
        if hi - lo == 1:
            f = -delta[j - 1] / (delta[j] - delta[j - 1])
            M_star = float(lo + f)
            break
    sizes = np.array(sorted(known), dtype=np.int64)
    return M_star, sizes, np.array([known[M] for M in sizes.tolist()])


def size_grid(N, *, max_sizes=2000):
    """(J,) int64 model sizes for whole curves over M (plots, fits), increasing.

    Every M = 1..N when N <= ``max_sizes``. Otherwise ``max_sizes`` sizes (before
    rounding and dropping repeats): a quarter geometric from 1 to N (the curves bend most
    at small M) and the rest uniform, spacing about 4 N / (3 max_sizes); a crossover
    between two grid sizes is then linearly interpolated over that spacing.
    """
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ValueError(f"samples N = {N!r} must be an integer >= 1")
    if isinstance(max_sizes, bool) or int(max_sizes) != max_sizes or max_sizes < 4:
        raise ValueError(f"max_sizes = {max_sizes!r} must be an integer >= 4")
    N, max_sizes = int(N), int(max_sizes)
    if N <= max_sizes:
        return np.arange(1, N + 1, dtype=np.int64)
    n_geo = max_sizes // 4
    grid = np.concatenate([np.geomspace(1, N, n_geo), np.linspace(1, N, max_sizes - n_geo)])
    return np.unique(np.round(grid).astype(np.int64))
