"""The "nearest" form of the partially memorizing excess loss (SPEC 6), on actual data::

    L_{N,t}(theta_pmem,M) - L_{N,t}(theta_mem) ~= (1/N) sum_{i not in S} min_{j in S} |x_i - x_j|^2

on the x0 scale, S the memorized subset: :func:`nearest_excess` for one subset and
:func:`nearest_excess_curve` for every nested subset of a memorization order in one pass
(O(N^2 d) in matrix products). Where it holds: :data:`gmmdiff.theory.approximations.VALIDITY`.
"""
import numpy as np

from gmmdiff.backend import to_host


def nearest_excess(X, subset):
    """(1/N) sum_{i not in S} min_{j in S} |x_i - x_j|^2 on the x0 scale. Python float.

    X : (N, d) on any backend; subset : (M,) distinct indices. Distances are the direct
    differences in float64 on the host.
    """
    X = np.asarray(to_host(X), dtype=np.float64)
    subset = np.asarray(to_host(subset)).astype(np.int64).reshape(-1)
    N = X.shape[0]
    if subset.size == 0 or subset.min() < 0 or subset.max() >= N or np.unique(subset).size != subset.size:
        raise ValueError(f"subset must hold distinct indices in [0, {N}); got {subset.size} "
                         f"indices in [{subset.min() if subset.size else None}, "
                         f"{subset.max() if subset.size else None}]")
    rest = np.setdiff1d(np.arange(N), subset)
    S = X[subset]
    total = 0.0
    for start in range(0, rest.size, 256):
        diff = X[rest[start:start + 256], None, :] - S[None, :, :]      # (b, M, d)
        total += float(np.sum(np.min(np.sum(diff * diff, axis=-1), axis=1)))
    return total / N


# memory of one block of squared distances in nearest_excess_curve (and of one chunk of
# integrands in expected_excess_curve)
BLOCK_BYTES = 64 * 2 ** 20


def check_sizes(sizes, N):
    """``sizes`` as a (J,) int64 array of model sizes in [1, N]; ValueError otherwise."""
    arr = np.asarray(to_host(sizes))
    flat = arr.reshape(-1)
    if arr.ndim > 1 or flat.size == 0 or not np.all(np.isfinite(flat.astype(np.float64))) \
            or np.any(flat != np.round(flat)) or flat.min() < 1 or flat.max() > N:
        raise ValueError(f"model sizes must be a non-empty 1-d array of integers in [1, N = {N}]; "
                         f"got shape {arr.shape}"
                         + (f" with values in [{flat.min()}, {flat.max()}]" if flat.size else ""))
    return flat.astype(np.int64)


def nearest_excess_curve(X, order, sizes=None, *, block_bytes=BLOCK_BYTES):
    """:func:`nearest_excess` for every nested subset S_M = order[:M], in one pass.

    Parameters
    ----------
    X : (N, d) training set, any backend (computed in float64 on the host)
    order : (N,) a permutation of 0..N-1, the order in which points are memorized
        (:func:`gmmdiff.model.data.memorization_order`)
    sizes : (J,) model sizes in [1, N]; default all M = 1..N
    block_bytes : memory of one block of squared distances

    Returns
    -------
    (J,) float64 numpy: (1/N) sum_{i not in S_M} min_{j in S_M} |x_i - x_j|^2 per size.

    Since the subsets are nested, the sum equals sum over all i of the running minimum
    m_i(M) = min_{j in S_M} |x_i - x_j|^2, which is exactly 0 once x_i is memorized. Points
    are visited in ``order``; a block of b columns gives the squared distances (b, N - s)
    from the new points to the points not memorized before the block, as
    |x|^2 + |y|^2 - 2 x.y of the centred data (float64 matrix product, clipped at 0);
    a cumulative minimum down the block joined with the running minima, and row sums,
    give the b curve values. Cost N^2 d / 2 multiply-adds up to max(sizes); memory
    O(N d) plus ``block_bytes``. The Gram form costs about eps |x - mean|^2 / |x_i - x_j|^2
    in relative accuracy against :func:`nearest_excess` (direct differences), with
    |x_i - x_j|^2 the smallest nearest-neighbour squared distance: ~1e-14 on mixture data
    with s* = 1 (d >= 10), more where points nearly coincide (tight clusters, tiny d).
    """
    X = np.asarray(to_host(X), dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"X must be a non-empty (N, d) array; got shape {X.shape}")
    N = X.shape[0]
    order = np.asarray(to_host(order)).reshape(-1)
    if order.size != N or not np.array_equal(np.sort(order), np.arange(N)):
        raise ValueError(f"order must be a permutation of 0..{N - 1} (N = {N} rows of X); "
                         f"got {order.size} entries")
    sizes = np.arange(1, N + 1) if sizes is None else check_sizes(sizes, N)
    M_max = int(sizes.max())
    Y = X[order.astype(np.int64)]                                        # (N, d) in join order
    Y -= Y.mean(axis=0)              # centring keeps |x|^2 small next to the distances
    sq = np.einsum("ij,ij->i", Y, Y)                                     # (N,)
    running = np.full(N, np.inf)     # running minimum of each point, by join position
    totals = np.zeros(M_max)         # totals[M - 1] = N * excess of S_M
    b = int(max(1, min(M_max, block_bytes // (8 * N))))
    for s in range(0, M_max, b):
        e = min(s + b, M_max)
        D = Y[s:e] @ Y[s:].T                                             # (b, N - s)
        D *= -2.0
        D += sq[s:e, None]
        D += sq[None, s:]
        np.maximum(D, 0.0, out=D)
        # the point at position s + r joins at block row r: zero from there on
        D[:, :e - s][np.tril_indices(e - s)] = 0.0
        np.minimum(D[0], running[s:], out=D[0])
        for r in range(1, e - s):    # cumulative minimum down the block, row by row
            np.minimum(D[r], D[r - 1], out=D[r])  # (4x faster than minimum.accumulate)
        totals[s:e] = D.sum(axis=1)
        running[s:] = D[-1]
    return totals[sizes - 1] / N


def _nearest_excess_curve_per_m(X, order, sizes):
    """Reference for :func:`nearest_excess_curve`: :func:`nearest_excess` per size,
    from scratch (O(N M d) each). Used by the tests and the benchmark."""
    order = np.asarray(to_host(order)).reshape(-1)
    return np.array([nearest_excess(X, order[:M]) for M in check_sizes(sizes, order.size)])
