"""Closed-form loss approximations and the predicted memorization transition (SPEC 6-7).

Excess losses are measured against the memorizing model theta_mem, per grid time, in
the training target's scale (the x0-scale forms times w_t = :func:`loss_scale`):

- generalizing:   L_{N,t}(theta*) - L_{N,t}(theta_mem) ~= w_t d s* / (1 + SNR_t s*)
- partially memorizing, three forms of L_{N,t}(theta_pmem,M) - L_{N,t}(theta_mem):

  "simple"    w_t d s* (1 - M/N)                      (the released reference code)
  "nearest"   w_t (1/N) sum_{i not in S} min_{j in S} |x_i - x_j|^2   (needs the data)
  "expected"  the expectation of "nearest" under the data model (needs K)

Where each holds is stated in :data:`VALIDITY`; :func:`compare_with_monte_carlo`
measures each form's error against Monte Carlo on a concrete data set.

Whole curves over the model size M come in one call: :func:`nearest_excess_curve` (one
pass over the nested subsets of :func:`gmmdiff.data.memorization_order`, O(N^2 d) in
matrix products) and :func:`expected_excess_curve` (the binomial mixing in closed form,
a quadrature cost independent of M). :func:`crossover_search` finds the transition
exactly to one model size while evaluating Delta(M) only on a few dozen sizes.
"""
import functools

import numpy as np
from scipy import stats

from .backend import to_host
from .process import check_process, check_target, TRAIN_TARGETS, loss_scale, snr

METHODS = ("simple", "nearest", "expected")

VALIDITY = {
    "generalizing": (
        "Theorem 3.1 form; accurate (about 1% against Monte Carlo at d = 50, K = 12, N = 200) "
        "for t up to about 0.88 when the clusters are well separated and N >> K; fails as "
        "t -> 1, where both losses are large and the eps-scale weight w_t tends to 0."),
    "simple": (
        "d s* (1 - M/N): treats every non-memorized point as costing its full variance; "
        "too small whenever the nearest memorized point lies farther than one variance "
        "(typically 30-50% low for M/N in [0.5, 0.8]); a rough guide only."),
    "nearest": (
        "low-noise regime (sigma_t^2 well below the squared nearest-neighbour gaps, in "
        "practice t <~ 0.5 at d = 50): the memorizing model's posterior then picks the "
        "nearest memorized point; needs the actual data and subset."),
    "expected": (
        "the expectation of 'nearest' under the data model, with the memorized count per "
        "cluster Binomial(M, 1/K) and other clusters ignored (well-separated means); same "
        "low-noise regime as 'nearest'; needs K, not the data."),
}


def _check_common(d, var_star, target, process):
    if isinstance(d, bool) or int(d) != d or d < 1:
        raise ValueError(f"dim d = {d!r} must be an integer >= 1")
    if not (np.isfinite(var_star) and var_star > 0):
        raise ValueError(f"variance var_star = {var_star!r} must be finite and > 0")
    check_target(target, TRAIN_TARGETS)
    check_process(process)


def generalizing_excess_loss(t, d, var_star, *, target="eps", process="vp"):
    """w_t d s* / (1 + SNR_t s*): generalizing minus memorizing training loss.

    t : scalar or (T,) in (0, 1). Returns the shape of ``t`` on its backend.
    """
    _check_common(d, var_star, target, process)
    return loss_scale(t, process, target) * d * var_star / (1.0 + snr(t, process) * var_star)


def partial_memorizing_excess_loss(t, d, var_star, M, N, *, target="eps", process="vp",
                                   method="simple", X=None, subset=None, K=None):
    """Partially memorizing minus memorizing training loss, in the target's scale.

    Parameters
    ----------
    t : scalar or (T,) in (0, 1);  d, var_star : the data model;  M, N : model and
    training-set size;  method : "simple" | "nearest" | "expected"
    X : (N, d) training set and subset : (M,) memorized indices, for "nearest"
    K : number of mixture components, for "expected"

    Returns
    -------
    The shape of ``t``, on the backend of ``t`` (numpy for Python scalars).
    """
    _check_common(d, var_star, target, process)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ValueError(f"samples N = {N!r} must be an integer >= 1")
    if isinstance(M, bool) or int(M) != M or not 1 <= M <= N:
        raise ValueError(f"model size M = {M!r} must be an integer in [1, N = {N}]")
    w = loss_scale(t, process, target)
    if method == "simple":
        return w * d * var_star * (1.0 - M / N)
    if method == "nearest":
        if X is None or subset is None:
            raise ValueError("method 'nearest' needs the training set X (N, d) and the "
                             "memorized subset indices (M,)")
        return w * nearest_excess(X, subset)
    if K is None:
        raise ValueError("method 'expected' needs the number of components K (keyword K=)")
    return w * expected_nearest_excess(d, var_star, M, N, K)


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
        (:func:`gmmdiff.data.memorization_order`)
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


def expected_nearest_excess(d, var_star, M, N, K):
    """Expectation of :func:`nearest_excess` under the data model, for one M (0 for
    M >= N). Python float; see :func:`expected_excess_curve`."""
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ValueError(f"components K = {K!r} must be an integer >= 1")
    if M >= N:
        return 0.0
    return float(expected_excess_curve(d, var_star, [M], N, K)[0])


def _log_grid(d, lam, N, n_grid):
    """Per-node quadrature in u for int_0^inf g(u) du with g flat (= g(0)) below the
    1e-16 / N quantile of ncx2(d, lam): log-spaced points from that quantile to the 1e-16
    upper quantile, trapezoid in log u, and the part below the first point summed
    analytically as the trapezoid's infinite left tail (g(0) u_0 h / expm1(h)), which keeps
    the rule spectrally accurate. lam : (Q,). Returns u (Q, G), weights (Q, G), and the
    weight of g(0) (Q,)."""
    hi = stats.ncx2.isf(1e-16, d, lam)                                   # (Q,)
    lo = np.maximum(stats.ncx2.ppf(1e-16 / N, d, lam), 1e-60 * hi)       # (Q,)
    h = (np.log(hi) - np.log(lo)) / (n_grid - 1)                         # (Q,)
    u = np.exp(np.log(lo)[:, None] + h[:, None] * np.arange(n_grid))     # (Q, G)
    weights = u * h[:, None]                                             # (Q, G)
    weights[:, -1] *= 0.5
    return u, weights, lo * h / np.expm1(h)


@functools.lru_cache(maxsize=16)
def _expected_quadrature(d, var_star, N, K, n_nodes, n_grid):
    """Cached tables of :func:`expected_excess_curve` (read-only float64 arrays).

    Gauss-Legendre nodes in probability space for lam ~ chi2(d): weights wq (Q,);
    for the memorized points of the own cluster (m >= 1, p = 1/K): log(1 - p F) and
    log((1 - p) / (1 - p F)) on the grid (Q, G), F = cdf of ncx2(d, lam); for m = 0
    (K > 1): log S of the shifted noncentrality lam + 2 d / s* on its own grid (Q, G).
    """
    xg, wg = np.polynomial.legendre.leggauss(n_nodes)
    lam = stats.chi2.ppf(0.5 * (xg + 1.0), d)                            # (Q,)
    p = 1.0 / K
    tables = {"wq": 0.5 * wg}

    def cdf_sf(u, lam_):
        return stats.ncx2.cdf(u, d, lam_[:, None]), stats.ncx2.sf(u, d, lam_[:, None])

    u, tables["w"], tables["w0"] = _log_grid(d, lam, N, n_grid)
    F, S = cdf_sf(u, lam)                                                # (Q, G) each
    left = F <= 0.5                  # use whichever of F, S is accurate there
    with np.errstate(divide="ignore"):
        if K == 1:
            tables["log_a"] = np.where(left, np.log1p(-F), np.log(S))    # log S
        else:
            one_minus_pF = np.where(left, 1.0 - p * F, (1.0 - p) + p * S)
            tables["log_a"] = np.where(left, np.log1p(-p * F), np.log(one_minus_pF))
            tables["log_r"] = np.log1p(-p * S / one_minus_pF)            # <= 0
            u, tables["w_shift"], tables["w0_shift"] = _log_grid(d, lam + 2.0 * d / var_star, N, n_grid)
            F, S = cdf_sf(u, lam + 2.0 * d / var_star)
            tables["log_shift"] = np.where(F <= 0.5, np.log1p(-F), np.log(S))
    for value in tables.values():
        value.setflags(write=False)
    return tables


def expected_excess_curve(d, var_star, sizes, N, K, *, n_nodes=48, n_grid=500,
                          chunk_bytes=BLOCK_BYTES // 4):
    """Expectation of :func:`nearest_excess` under the data model, for each size.

    Parameters
    ----------
    d, var_star : the data model;  sizes : (J,) model sizes in [1, N];  N : samples;
    K : number of mixture components;  n_nodes, n_grid : quadrature sizes

    Returns
    -------
    (J,) float64 numpy, 0 where M = N.

    Given a non-memorized x_i in cluster k, its squared distance to a memorized point of
    the same cluster is s* ncx2(d, lam), lam = |x_i - mu_k|^2 / s* ~ chi2(d), independently
    across those points; the number m of memorized points in the cluster is exactly
    Binomial(M, p = 1/K) (labels are i.i.d. and the subset ignores them), and
    E[min of m] = int_0^inf S(u)^m du with S the survival function. The mixing over m is
    the binomial generating function,

        sum_{m >= 1} P(m) S^m = (1 - p F)^M - (1 - p)^M = -(1 - p F)^M expm1(M log r),

    r = (1 - p) / (1 - p F), so the cost per M is one quadrature (Q nodes in lam times G
    points in u, chunked so that one (c, Q, G) integrand takes ``chunk_bytes``; a few such
    temporaries live at once), whatever M. For m = 0 (probability
    (1 - p)^M, used where > 1e-13) the nearest memorized point sits in another cluster,
    approximated by an extra noncentrality 2d / s* (the mean squared gap of means on the
    sphere of radius sqrt(d)). The result is s* (1 - M/N) times the average. The u-grid
    is log-spaced per node between the 1e-16 / N and 1 - 1e-16 quantiles, which resolves
    the minimum of up to N points for every d (agreement to ~1e-15 when n_grid doubles).
    """
    if isinstance(d, bool) or int(d) != d or d < 1:
        raise ValueError(f"dim d = {d!r} must be an integer >= 1")
    if not (np.isfinite(var_star) and var_star > 0):
        raise ValueError(f"variance var_star = {var_star!r} must be finite and > 0")
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ValueError(f"samples N = {N!r} must be an integer >= 1")
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ValueError(f"components K = {K!r} must be an integer >= 1")
    if int(n_nodes) < 2 or int(n_grid) < 2:
        raise ValueError(f"n_nodes = {n_nodes!r} and n_grid = {n_grid!r} must be integers >= 2")
    N, K, d = int(N), int(K), int(d)
    sizes = check_sizes(sizes, N)
    tab = _expected_quadrature(d, float(var_star), N, K, int(n_nodes), int(n_grid))
    wq = tab["wq"]                                                       # (Q,)
    out = np.zeros(sizes.size)
    step = int(max(1, chunk_bytes // (8 * tab["w"].size)))
    for start in range(0, sizes.size, step):
        M = sizes[start:start + step].astype(np.float64)[:, None, None]  # (c, 1, 1)
        if K == 1:
            own = np.exp(M * tab["log_a"])                               # (c, Q, G): S^M
            below = 1.0
        else:
            p0 = (1.0 - 1.0 / K) ** M[:, :, 0]                           # (c, 1)
            own = -np.exp(M * tab["log_a"]) * np.expm1(M * tab["log_r"])  # (c, Q, G)
            below = 1.0 - p0     # the integrand at u = 0
        per_node = np.sum(own * tab["w"], axis=-1) + below * tab["w0"]   # (c, Q)
        if K > 1:
            shift = np.sum(np.exp(M * tab["log_shift"]) * tab["w_shift"], axis=-1) + tab["w0_shift"]
            per_node = per_node + np.where(p0 > 1e-13, p0 * shift, 0.0)  # (c, Q)
        out[start:start + step] = np.sum(per_node * wq, axis=-1)
    return var_star * out * (1.0 - sizes / N)


@functools.lru_cache(maxsize=64)
def _expected_min_table(d, m_max, lam_shift, n_nodes=48, n_grid=3000):
    """E_lam E[min of m iid ncx2(d, lam + lam_shift)] for m = 0..m_max (entry 0 unused),
    for the reference :func:`_expected_nearest_excess_per_m`.

    lam ~ chi2(d) (a fresh point's scaled distance to its own cluster mean). Gauss-
    Legendre nodes in probability space for lam; trapezoid in u for
    E[min] = int_0^inf sf(u)^m du. Returns a read-only (m_max + 1,) array (cached).
    """
    xg, wg = np.polynomial.legendre.leggauss(n_nodes)
    p = 0.5 * (xg + 1.0)                                                 # (Q,) in (0, 1)
    lam = stats.chi2.ppf(p, d) + lam_shift                               # (Q,)
    u_max = stats.ncx2.ppf(1.0 - 1e-12, d, lam.max())
    u = np.linspace(0.0, u_max, n_grid)                                  # (G,)
    du = np.full(n_grid, u[1] - u[0])
    du[[0, -1]] *= 0.5                                                   # trapezoid weights
    logsf = np.log(np.clip(stats.ncx2.sf(u[None, :], d, lam[:, None]), 1e-300, 1.0))  # (Q, G)
    table = np.full(m_max + 1, np.nan)
    for start in range(1, m_max + 1, 32):
        m = np.arange(start, min(start + 32, m_max + 1), dtype=np.float64)
        emin = np.exp(m[:, None, None] * logsf[None]) @ du                # (c, Q)
        table[start:start + m.size] = emin @ (0.5 * wg)
    table.setflags(write=False)
    return table


def _expected_nearest_excess_per_m(d, var_star, M, N, K, n_grid=3000):
    """Reference for :func:`expected_excess_curve` (the implementation before it): per M,
    a Python loop over the binomial mixing and tables on one fixed u-grid of ``n_grid``
    points (inaccurate for d <= 2 and large M, where the minimum sits within one grid
    step of 0). Used by the tests and the benchmark. Python float.

    Given a non-memorized x_i in cluster k, its squared distance to a memorized point of
    the same cluster is s* ncx2(d, |x_i - mu_k|^2 / s*), independently across those
    points; the number m of memorized points in the cluster is exactly Binomial(M, 1/K)
    (labels are i.i.d. and the subset ignores them). The expected minimum is averaged
    over both, then multiplied by 1 - M/N. For m = 0 the nearest memorized point sits in
    another cluster, approximated by an extra noncentrality of 2d / s* (the mean squared
    gap of means on the sphere of radius sqrt(d)).
    """
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ValueError(f"components K = {K!r} must be an integer >= 1")
    if M >= N:
        return 0.0
    M, d = int(M), int(d)
    pmf = stats.binom.pmf(np.arange(1, M + 1), M, 1.0 / K)              # m = 1..M
    size = 1 << (M - 1).bit_length()        # tables of 2^k entries, reused across M
    total = float(pmf @ _expected_min_table(d, size, 0.0, 48, n_grid)[1:M + 1])
    p0 = (1.0 - 1.0 / K) ** M
    if p0 > 1e-13 and K > 1:
        total += p0 * float(_expected_min_table(d, size, 2.0 * d / var_star, 48, n_grid)[M])
    return var_star * total * (1.0 - M / N)


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


def simple_transition_ratio(times, d, var_star, weights=None, *, target="eps", process="vp"):
    """M*/N = 1 - [sum lam w d s*/(1 + SNR s*)] / [sum lam w d s*]: the crossover of the
    generalizing and "simple" approximations (independent of N). Python float.

    times : (T,);  weights : (T,) nonnegative (default uniform).
    """
    times = np.asarray(to_host(times), dtype=np.float64)           # host-side constants
    weights = (np.full(times.size, 1.0 / times.size) if weights is None
               else np.asarray(to_host(weights), dtype=np.float64))
    gen = generalizing_excess_loss(times, d, var_star, target=target, process=process)
    full = loss_scale(times, process, target) * d * var_star
    return float(1.0 - (weights @ gen) / (weights @ full))


def excess_curve(method, sizes, N, d, var_star, *, K=None, X=None, seed=0):
    """(J,) x0-scale excess of theta_pmem,M over theta_mem at ``sizes`` (J,) in [1, N].

    method "simple": d s* (1 - M/N); "nearest": :func:`nearest_excess_curve` of ``X``
    (N, d) along :func:`gmmdiff.data.memorization_order` ``(N, seed)``; "expected":
    :func:`expected_excess_curve` with ``K`` components.
    """
    from .data import memorization_order
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ValueError(f"samples N = {N!r} must be an integer >= 1")
    sizes = check_sizes(sizes, int(N))
    if method == "simple":
        return d * var_star * (1.0 - sizes / N)
    if method == "nearest":
        if X is None:
            raise ValueError("method 'nearest' needs the training set X (N, d)")
        if np.shape(X)[0] != N:
            raise ValueError(f"X has {np.shape(X)[0]} rows; N = {N}")
        return nearest_excess_curve(X, memorization_order(N, seed), sizes)
    if K is None:
        raise ValueError("method 'expected' needs the number of components K (keyword K=)")
    return expected_excess_curve(d, var_star, sizes, N, K)


def predict_transition(N, d, K, var_star=1.0, *, times, weights=None, method="expected",
                       target="eps", process="vp", X=None, seed=0):
    """Predicted transition M* (and M*/N) from the approximations, no training.

    Finds the first sign change of Delta(M) over M = 1..N with the generalizing
    approximation and the partially memorizing ``method`` ("nearest": the nested subsets
    of :func:`gmmdiff.data.memorization_order` with ``seed`` in ``X`` (N, d), one pass for
    all M; "expected": evaluated only where :func:`crossover_search` needs it), and
    returns ``(M_star, M_star / N)`` (nan where Delta never changes sign).
    """
    times = np.asarray(to_host(times), dtype=np.float64)           # a host-side constant
    gen = generalizing_excess_loss(times, d, var_star, target=target, process=process)
    if method == "simple":
        ratio = simple_transition_ratio(times, d, var_star, weights, target=target, process=process)
        return ratio * N, ratio
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    w = loss_scale(times, process, target)
    if method == "nearest":
        if X is None:
            raise ValueError("method 'nearest' needs the training set X")
        curve = excess_curve("nearest", np.arange(1, N + 1), N, d, var_star, X=X, seed=seed)

        def pmem_at(sizes):
            return curve[sizes - 1, None] * w[None, :]
    else:
        def pmem_at(sizes):
            return excess_curve(method, sizes, N, d, var_star, K=K)[:, None] * w[None, :]
    M_star, _, _ = crossover_search(N, gen, pmem_at, weights)
    return M_star, M_star / N


def compare_with_monte_carlo(dataset, M, times, *, n_noise=20, seed=0, subset_seed=0,
                             target="eps", process="vp"):
    """Monte Carlo excess losses on the training set beside each approximation.

    Parameters
    ----------
    dataset : :class:`gmmdiff.data.Dataset`;  M : model size of theta_pmem,M
    times : (T,) in (0, 1);  n_noise : draws per sample and time

    Returns
    -------
    dict of (T,) float64 numpy arrays: ``mc_gen``, ``mc_pmem`` (Monte Carlo excess over
    theta_mem, common noise for all three models), ``gen``, ``simple``, ``nearest``,
    ``expected`` (approximations), and ``rel_err_<name>`` = approx / MC - 1.
    """
    from .denoisers import generalizing, memorizing, partially_memorizing
    from .losses import per_time_losses
    times = np.asarray(to_host(times), dtype=np.float64)           # a host-side constant
    X = dataset.X
    N, d = X.shape
    K = dataset.mixture.n_components
    s = dataset.mixture.var
    kw = dict(n_noise=n_noise, seed=seed, process=process, target=target)
    gen_p, mem_p = generalizing(dataset.mixture), memorizing(X)
    pmem_p, subset = partially_memorizing(X, M, subset_seed)
    L_mem = to_host(per_time_losses(mem_p.means, mem_p.var, X, times, **kw))
    out = {
        "mc_gen": to_host(per_time_losses(gen_p.means, gen_p.var, X, times, **kw)) - L_mem,
        "mc_pmem": to_host(per_time_losses(pmem_p.means, pmem_p.var, X, times, **kw)) - L_mem,
        "gen": generalizing_excess_loss(times, d, s, target=target, process=process),
    }
    for method in METHODS:
        out[method] = partial_memorizing_excess_loss(times, d, s, M, N, target=target,
                                                     process=process, method=method, X=X,
                                                     subset=subset, K=K)
    out["rel_err_gen"] = out["gen"] / out["mc_gen"] - 1.0
    for method in METHODS:
        out[f"rel_err_{method}"] = out[method] / out["mc_pmem"] - 1.0
    return out
