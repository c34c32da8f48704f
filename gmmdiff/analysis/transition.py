"""Phase-transition detection on a measured memorization curve (SPEC 9).

M_pt is where the memorization ratio crosses 1/2; start and end are its crossings of
0.1 and 0.9. The documented rule, for sizes M_1 < ... < M_J and ratios r_j:

- the crossing of a level is the linear interpolation between the first pair
  (j-1, j) with r_{j-1} < level <= r_j (the first upward crossing);
- a curve that never reaches the level, or already sits at or above it at the smallest
  size, has no crossing (``None``, status "never crosses" / "above at smallest M"):
  nothing is extrapolated;
- a curve that falls back below the level after the first crossing and rises again is
  reported with its first crossing and status "multiple crossings";
- the uncertainty of a crossing is the interval between the crossings of the upper
  and the lower 95% (Wilson) bound curves of the ratio (the upper bound crosses
  first); an end that does not exist is ``None``.
"""
import numpy as np

from gmmdiff.backend import to_host

LEVELS = {"M_pt": 0.5, "start": 0.1, "end": 0.9}


def crossing(M, ratio, level):
    """(M at the first upward crossing of ``level`` or None, status string).

    M : (J,) increasing sizes; ratio : (J,) values in [0, 1]; host or device arrays or
    lists (a summary for the host: device curves are copied to the host once).
    """
    M = to_host(M).astype(np.float64)
    r = to_host(ratio).astype(np.float64)
    if M.ndim != 1 or M.shape != r.shape or M.size == 0:
        raise ValueError(f"M and ratio must be (J,) arrays of equal length; got {M.shape} and {r.shape}")
    if np.any(np.diff(M) <= 0):
        raise ValueError("model sizes M must be strictly increasing")
    if r[0] >= level:
        return None, "above at smallest M"
    up = np.nonzero((r[:-1] < level) & (r[1:] >= level))[0]
    if up.size == 0:
        return None, "never crosses"
    j = up[0] + 1
    f = (level - r[j - 1]) / (r[j] - r[j - 1])
    value = float(M[j - 1] + f * (M[j] - M[j - 1]))
    return value, ("multiple crossings" if up.size > 1 else "ok")


def detect(M, ratio, lower=None, upper=None):
    """The paper's two-point rule on one memorization curve: the interpolated
    crossings of 1/2 (M_pt), 0.1 (start) and 0.9 (end).

    Sweeps measure M_pt by the whole-curve fit instead and keep this rule beside it
    (``M_pt_two_point`` in ``summary.csv``); see :doc:`/science`.

    Parameters
    ----------
    M : (J,) array
        Strictly increasing model sizes.
    ratio : (J,) array
        Memorization ratios in [0, 1].
    lower, upper : (J,) arrays, optional
        Bounds of the ratios' 95% intervals; the crossings' intervals come from them.

    Returns
    -------
    dict
        For each of ``"M_pt"``, ``"start"``, ``"end"``: ``{"value": float or None,
        "interval": [lo, hi] (entries may be None), "status": str}``; and ``"status"``,
        the 1/2 crossing's: ``"ok"``, ``"never crosses"``, ``"above at smallest M"``
        or ``"multiple crossings"``.

    Examples
    --------
    >>> import gmmdiff
    >>> gmmdiff.detect([2, 4, 6, 8], [0.0, 0.2, 0.6, 1.0])["M_pt"]["value"]
    5.5
    """
    out = {}
    for name, level in LEVELS.items():
        value, status = crossing(M, ratio, level)
        interval = [None, None]
        if upper is not None and lower is not None:
            interval = [crossing(M, upper, level)[0], crossing(M, lower, level)[0]]
        out[name] = {"value": value, "interval": interval, "status": status}
    out["status"] = out["M_pt"]["status"]
    return out


# ----------------------------------------------------------------- the whole-curve fit
#
# The two-point rule above reads the curve at the two sizes around 1/2 only, each a
# separately trained model. The fit below uses every trained size of a configuration:
# counts k_j of memorized samples out of n_j at x_j = M_j / N have mean n_j F(eta_j),
#
#     eta_j = b (x_j - x_half) + c,   F(eta) = 1 - (1 + lam e^eta)^(-1/lam)
#
# (the Aranda-Ordaz asymmetric family: lam = 1 is the logistic, lam -> 0 the
# complementary log-log, whose long low tail and sharp rise match the measured curves:
# pooled over the shipped CPU sweep's 54 curves it has the smallest deviance, 841
# against 865 (lam = 0.25), 922 (0.5) and 1078 (logistic); c = log((2^lam - 1) / lam)
# puts F = 1/2 at x = x_half), b > 0.
#
# Each size is its own trained model, so sizes scatter more than binomially, and most
# where the curve is steep: the scatter acts on the curve's position, eta_j + e_j with
# e_j of variance tau^2. The variance of k_j is then n p (1 - p) + n (n - 1) tau^2 f^2
# (f = F'(eta), to first order), which for tau = 0 is the binomial one. The fit is the
# quasi-likelihood of that variance (Fisher scoring on (x_half, log b), tau^2 re-estimated
# by moments from the Pearson residuals between rounds, starting from the binomial
# maximum likelihood); the 95% interval is Wald's on x_half with Student's t on J - 3
# degrees of freedom (two curve parameters and tau).

LINK_SHAPE = 0.0            # lam of the default link: complementary log-log
MIN_SIZES = 4               # sizes a fit needs (two parameters and tau)
B_RANGE = (0.5, 2000.0)     # slope b, in units of 1 / (M/N): flatter is "not sigmoid-like"


def _link_offset(lam):
    """c with F(c) = 1/2."""
    return float(np.log(np.log(2.0))) if lam == 0 else float(np.log(np.expm1(lam * np.log(2.0)) / lam))


def _link(eta, lam):
    """(F, 1 - F, f = F') of the Aranda-Ordaz family at eta (J,), stably."""
    e = np.exp(np.minimum(eta, 700.0))
    log_q = -e if lam == 0 else -np.log1p(lam * e) / lam                 # log(1 - F)
    Q = np.exp(log_q)
    return -np.expm1(log_q), Q, e * Q / (1.0 + lam * e)


def _quasi_deviance(x, k, n, th, lam, c, tau2):
    """A merit function for step halving: -2 binomial log-likelihood when tau2 = 0,
    else the Pearson statistic of the quasi-likelihood variance (both decrease along a
    scoring step that is small enough)."""
    F, Q, f = _link(np.exp(th[1]) * (x - th[0]) + c, lam)
    if tau2 == 0:
        with np.errstate(divide="ignore"):
            lp, lq = np.log(F), np.log(Q)
        return -2.0 * float(np.sum(k[k > 0] * lp[k > 0]) + np.sum((n - k)[k < n] * lq[k < n]))
    V = n * F * Q + n * (n - 1) * tau2 * f * f
    return float(np.sum((k - n * F) ** 2 / np.maximum(V, 1e-300)))


def _scoring(x, k, n, th, lam, c, tau2, iters=100):
    """Fisher scoring of the quasi-likelihood on th = (x_half, log b) within bounds
    (x_half in [x_1 - 0.5, x_J + 0.5], b in B_RANGE), with step halving. Returns th and
    the inverse Fisher information (2, 2)."""
    bounds = np.array([[x[0] - 0.5, np.log(B_RANGE[0])], [x[-1] + 0.5, np.log(B_RANGE[1])]])
    th = np.clip(np.asarray(th, dtype=np.float64), bounds[0], bounds[1])
    D = _quasi_deviance(x, k, n, th, lam, c, tau2)
    for _ in range(iters):
        info, g = _info_score(x, k, n, th, lam, c, tau2)
        step = np.linalg.solve(info + 1e-12 * np.eye(2), g)
        for _ in range(40):
            new = np.clip(th + step, bounds[0], bounds[1])
            Dn = _quasi_deviance(x, k, n, new, lam, c, tau2)
            if Dn <= D + 1e-12:
                break
            step *= 0.5
        else:
            break
        done = np.max(np.abs(new - th)) < 1e-10
        th, D = new, Dn
        if done:
            break
    info, _ = _info_score(x, k, n, th, lam, c, tau2)
    return th, info


def _info_score(x, k, n, th, lam, c, tau2):
    """Fisher information (2, 2) and quasi-score (2,) at th = (x_half, log b)."""
    b = np.exp(th[1])
    F, Q, f = _link(b * (x - th[0]) + c, lam)
    V = np.maximum(n * F * Q + n * (n - 1) * tau2 * f * f, 1e-300)      # (J,)
    D = (n * f)[:, None] * np.stack([-b * np.ones_like(x), b * (x - th[0])], axis=1)  # dmu/dth (J, 2)
    return (D / V[:, None]).T @ D, D.T @ ((k - n * F) / V)


def _moment_tau2(x, k, n, th, lam, c):
    """tau^2 >= 0 from sum (k - n p)^2 = sum [n p (1 - p) + n (n - 1) tau^2 f^2], with the
    residual degrees of freedom J - 2 instead of J."""
    F, Q, f = _link(np.exp(th[1]) * (x - th[0]) + c, lam)
    J = x.size
    excess = np.sum((k - n * F) ** 2) * J / (J - 3) - np.sum(n * F * Q)
    scale = np.sum(n * (n - 1) * f * f)
    return float(max(0.0, excess / scale)) if scale > 0 else 0.0


def fit_curve(M, counts, n, N, *, shape=LINK_SHAPE, level=0.95):
    """The 1/2 crossing of a memorization curve from every trained size.

    Parameters
    ----------
    M : (J,) array
        Increasing model sizes.
    counts : (J,) array
        Memorized generated samples at each size.
    n : (J,) array or int
        Generated samples per size.
    N : int
        Training-set size.
    shape : float
        lam of the link (0: complementary log-log, 1: logistic).
    level : float
        Confidence level of the interval.

    Returns
    -------
    fit : dict
        ``value`` (M_pt / N at the fitted 1/2 crossing), ``interval`` ([lo, hi] of M_pt / N),
        ``se`` (its standard error), ``slope`` b, ``tau`` (the scatter of sizes on the
        link scale), ``dispersion`` (Pearson chi^2 / (J - 2) of the binomial fit), ``df``
        (J - 3) and ``status``: "ok"; "too few sizes" (J < 4); "no rise" (every ratio 0,
        or every ratio 1); "not sigmoid-like" (the best increasing curve is flat: its
        slope at the lower bound); "outside sizes" (the fitted crossing outside the
        trained sizes). Value, interval and se are None where no fit exists.
    """
    from scipy import stats
    x = np.asarray(to_host(M), dtype=np.float64) / float(N)
    k = np.asarray(to_host(counts), dtype=np.float64)
    n = np.broadcast_to(np.asarray(to_host(n), dtype=np.float64), x.shape).copy()
    if x.ndim != 1 or k.shape != x.shape:
        raise ValueError(f"M and counts must be (J,) arrays of equal length; got {x.shape} and {k.shape}")
    if np.any(np.diff(x) <= 0):
        raise ValueError("model sizes M must be strictly increasing")
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError("counts must lie in [0, n] with n >= 1 generated samples")
    J = x.size
    out = {"value": None, "interval": [None, None], "se": None, "slope": None, "tau": None,
           "dispersion": None, "df": J - 3, "link_shape": shape, "status": "ok"}
    if J < MIN_SIZES:
        out["status"] = "too few sizes"
        return out
    if np.all(k == 0) or np.all(k == n):
        out["status"] = "no rise"
        return out
    c = _link_offset(shape)
    start, _ = crossing(x, k / n, 0.5)
    if start is None:
        start = float(x[np.argmin(np.abs(k / n - 0.5))])
    fits = [_scoring(x, k, n, [x0, np.log(b0)], shape, c, 0.0)[0]
            for x0 in (start, start - 0.05, start + 0.05) for b0 in (10.0, 40.0)]
    th = min(fits, key=lambda t: _quasi_deviance(x, k, n, t, shape, c, 0.0))
    F, Q, _ = _link(np.exp(th[1]) * (x - th[0]) + c, shape)
    pearson = float(np.sum((k - n * F) ** 2 / np.maximum(n * F * Q, 1e-300)))
    tau2 = 0.0
    for _ in range(5):                      # tau^2 and the curve, alternately
        new = _moment_tau2(x, k, n, th, shape, c)
        if new == 0.0 and tau2 == 0.0:
            break
        th_new, _ = _scoring(x, k, n, th, shape, c, new)
        done = abs(new - tau2) <= 1e-3 * max(new, 1e-6) and np.max(np.abs(th_new - th)) < 1e-7
        tau2, th = new, th_new
        if done:
            break
    _, info = _scoring(x, k, n, th, shape, c, tau2, iters=0)
    x_hat, b_hat = float(th[0]), float(np.exp(th[1]))
    out.update(value=x_hat, slope=b_hat, tau=float(np.sqrt(tau2)), dispersion=pearson / (J - 2))
    if b_hat <= B_RANGE[0] * (1 + 1e-6):
        out["status"] = "not sigmoid-like"
        out["value"] = None
        return out
    try:
        cov = np.linalg.inv(info)
        # an information matrix that is not positive definite (a curve the fit cannot
        # bound) has no standard error: no interval, and no sqrt of a negative number
        se = float(np.sqrt(cov[0, 0])) if cov[0, 0] > 0 else float("nan")
    except np.linalg.LinAlgError:
        se = float("nan")
    if np.isfinite(se):
        t = float(stats.t.ppf(0.5 + level / 2, J - 3))
        out.update(se=se, interval=[x_hat - t * se, x_hat + t * se])
    if not x[0] <= x_hat <= x[-1]:
        out["status"] = "outside sizes"
    return out


def fitted_ratio(M_over_N, fit):
    """The memorization ratio that a whole-curve fit (:func:`fit_curve`) gives at any
    model size: F(b (x - x_half) + c), the curve whose 1/2 crossing is the fit's M_pt/N.

    Parameters
    ----------
    M_over_N : (J,) array
        Model sizes over N, where the curve is wanted (any values).
    fit : dict
        :func:`fit_curve`'s result, or the ``fit`` entry of a sweep summary's
        configuration (``summary.json``, :attr:`gmmdiff.SweepResults.rows`): its
        ``value`` (x_half), ``slope`` (b) and ``link_shape`` (lam) are used.

    Returns
    -------
    (J,) float64 array
        Ratios in [0, 1], increasing in ``M_over_N``; 1/2 at ``fit["value"]``.

    Examples
    --------
    >>> from gmmdiff.analysis.transition import fitted_ratio
    >>> fitted_ratio([0.5, 0.8, 1.0], {"value": 0.8, "slope": 10.0, "link_shape": 0.0}).round(3)
    array([0.034, 0.5  , 0.994])
    """
    if fit.get("value") is None or fit.get("slope") is None:
        raise ValueError(f"the fit has no curve (status {fit.get('status', 'unknown')!r}): "
                         "value and slope are needed")
    lam = float(fit.get("link_shape", LINK_SHAPE))
    x = np.asarray(to_host(M_over_N), dtype=np.float64)
    eta = float(fit["slope"]) * (x - float(fit["value"])) + _link_offset(lam)
    return _link(eta, lam)[0]
