"""The "expected" form of the partially memorizing excess loss (SPEC 6): the expectation
of the "nearest" form (:mod:`gmmdiff.theory.nearest`) under the data model, needing K
but not the data. :func:`expected_excess_curve` does the binomial mixing over the
memorized count per cluster in closed form, at a quadrature cost independent of M; the
per-M reference it replaced is kept for the tests and the benchmark.
"""
import functools

import numpy as np

from gmmdiff.theory.nearest import BLOCK_BYTES, check_sizes



def _distributions():
    """(chi2_ppf, ncx2_cdf, ncx2_sf, ncx2_ppf, ncx2_isf): the functions scipy.stats's
    chi2 and ncx2 (noncentrality > 0) call for arguments inside their support, from
    scipy.special without importing scipy.stats (a second at every start of a training
    process, which evaluates these quadratures). Bit for bit the stats methods there
    (tests/test_theory_curves.py); where this SciPy has not the same functions, the
    stats methods themselves."""
    try:
        from scipy.special import chndtr, chndtrix, gammaincinv
        from scipy.special._ufuncs import _ncx2_isf, _ncx2_sf
    except ImportError:                                     # (another SciPy's layout)
        from scipy import stats
        return (stats.chi2.ppf, stats.ncx2.cdf, stats.ncx2.sf, stats.ncx2.ppf, stats.ncx2.isf)
    return (lambda p, d: 2 * gammaincinv(d / 2, p) * 1.0 + 0.0, chndtr, _ncx2_sf, chndtrix,
            _ncx2_isf)

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
    *_, ncx2_ppf, ncx2_isf = _distributions()
    hi = ncx2_isf(1e-16, d, lam) * 1.0 + 0.0                             # (Q,)
    lo = np.maximum(ncx2_ppf(1e-16 / N, d, lam) * 1.0 + 0.0, 1e-60 * hi)  # (Q,)
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
    chi2_ppf, ncx2_cdf, ncx2_sf, *_ = _distributions()
    xg, wg = np.polynomial.legendre.leggauss(n_nodes)
    lam = chi2_ppf(0.5 * (xg + 1.0), d)                                  # (Q,)
    p = 1.0 / K
    tables = {"wq": 0.5 * wg}

    def cdf_sf(u, lam_):
        return ncx2_cdf(u, d, lam_[:, None]), ncx2_sf(u, d, lam_[:, None])

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
    from scipy import stats
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
    from scipy import stats
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
