"""The whole-curve M_pt estimator (gmmdiff.analysis.transition.fit_curve) on simulated curves
with a known 1/2 crossing, shaped and scattered like the measured ones."""
import time

import numpy as np
import pytest

from gmmdiff.analysis.transition import _link, _link_offset, crossing, fit_curve, fitted_ratio


def simulate(rng, n, *, tau=0.5, lam=0.0, N=30):
    """One curve measured by the sweep protocol: the coarse grid 0.2N..N, then 6 sizes
    between the coarse start and end. Truth: the complementary log-log shape (the
    measured curves' best-fitting asymmetric shape) with slope 8-20 per unit of M/N (the
    measured slopes are 8.5-12, 10th-90th percentile), and each size's position
    scattered by N(0, tau^2) on the link scale (tau = 0.5 gives a Pearson dispersion of
    about 2.5 at n = 50, like the shipped sweep's 2.6)."""
    x_half, b, c = rng.uniform(0.7, 0.85), rng.uniform(8, 20), _link_offset(lam)

    def draw(M):
        eta = b * (np.asarray(M) / N - x_half) + c + tau * rng.standard_normal(len(M))
        return rng.binomial(n, _link(eta, lam)[0])

    M = [int(round(N * f)) for f in (0.2, 0.4, 0.6, 0.8, 1.0)]
    k = list(draw(M))
    r = np.array(k) / n
    below, above = np.nonzero(r < 0.1)[0], np.nonzero(r >= 0.9)[0]
    if above.size and below[below < above[0]].size:
        lo, hi = M[below[below < above[0]][-1]], M[above[0]]
        new = sorted({int(round(v)) for v in np.linspace(lo, hi, 8)[1:-1]} - set(M))
        M, k = M + new, k + list(draw(new))
    order = np.argsort(M)
    return np.array(M)[order], np.array(k)[order], x_half


def test_unbiased_and_covering_on_200_overdispersed_asymmetric_curves():
    rng = np.random.default_rng(2)
    t0 = time.process_time()
    err, covered, two_point_err = [], 0, []
    for _ in range(200):
        M, k, x_half = simulate(rng, 50)
        fit = fit_curve(M, k, 50, 30)
        assert fit["status"] in ("ok", "outside sizes") and fit["se"] is not None, fit
        err.append(fit["value"] - x_half)
        covered += fit["interval"][0] <= x_half <= fit["interval"][1]
        tp = crossing(M / 30, k / 50, 0.5)[0]
        if tp is not None:
            two_point_err.append(tp - x_half)
    err = np.array(err)
    assert abs(err.mean()) < 3 * err.std() / np.sqrt(err.size), err.mean()   # unbiased within its SE
    assert covered >= 180, covered                                            # >= 90% of 200
    # and the better estimate: a smaller error than the two-point rule's on the same curves
    assert np.sqrt(np.mean(err ** 2)) < 0.8 * np.sqrt(np.mean(np.square(two_point_err)))
    assert time.process_time() - t0 < 20


def test_statuses_and_validation():
    M = np.array([4, 8, 12, 16, 20])
    assert fit_curve(M[:3], [0, 10, 50], 50, 20)["status"] == "too few sizes"
    assert fit_curve(M, [0] * 5, 50, 20)["status"] == "no rise"
    assert fit_curve(M, [50] * 5, 50, 20)["status"] == "no rise"
    falling = fit_curve(M, [50, 40, 25, 10, 0], 50, 20)
    assert falling["status"] == "not sigmoid-like" and falling["value"] is None
    with pytest.raises(ValueError, match="increasing"):
        fit_curve([4, 4, 8, 12], [0, 1, 2, 3], 50, 20)
    with pytest.raises(ValueError, match="counts"):
        fit_curve(M, [0, 1, 2, 3, 60], 50, 20)


def test_noiseless_curves_of_either_link_give_their_crossing():
    x = np.linspace(0.2, 1.0, 17)
    for lam in (0.0, 1.0):
        p = _link(14.0 * (x - 0.73) + _link_offset(lam), lam)[0]
        fit = fit_curve(x * 1000, np.round(p * 10 ** 6), 10 ** 6, 1000, shape=lam)
        assert fit["value"] == pytest.approx(0.73, abs=2e-4)
        assert fit["slope"] == pytest.approx(14.0, rel=1e-2)


def test_fitted_ratio_is_the_curve_the_fit_found():
    """fitted_ratio (what the gallery draws through the measured ratios) against the
    link's closed forms, written out here: the complementary log-log (lam = 0) and the
    logistic (lam = 1), and on a noiseless curve the truth it was fitted to."""
    x = np.linspace(0.0, 1.2, 25)
    cloglog = 1 - np.exp(-np.exp(12.0 * (x - 0.8) + np.log(np.log(2.0))))
    logistic = 1 / (1 + np.exp(-12.0 * (x - 0.8)))
    for lam, truth in ((0.0, cloglog), (1.0, logistic)):
        got = fitted_ratio(x, {"value": 0.8, "slope": 12.0, "link_shape": lam})
        np.testing.assert_allclose(got, truth, rtol=1e-12, atol=1e-15)
    M = np.arange(4, 31)
    p = 1 - np.exp(-np.exp(10.0 * (M / 30 - 0.75) + np.log(np.log(2.0))))
    fit = fit_curve(M, np.round(p * 10 ** 6), 10 ** 6, 30)
    np.testing.assert_allclose(fitted_ratio(M / 30, fit), p, atol=1e-4)
    assert fitted_ratio([fit["value"]], fit)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no curve"):
        fitted_ratio(x, fit_curve(M[:3], [0, 10, 50], 50, 30))
