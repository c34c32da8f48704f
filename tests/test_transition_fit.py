"""The whole-curve M_pt estimator (gmmdiff.analysis.transition.fit_curve) on simulated curves
with a known 1/2 crossing, shaped and scattered like the measured ones."""
import time

import numpy as np
import pytest

from gmmdiff.analysis.transition import _link, _link_offset, crossing, fit_curve


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
