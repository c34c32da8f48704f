"""The closed-form GMM denoiser against independent brute-force computations."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import special, stats

from gmmdiff.model import denoisers as dn
from gmmdiff.model.data import make_dataset
from gmmdiff.model.denoisers import _posterior, gmm_denoise, gmm_x0, to_x0
from gmmdiff.softmax import LOGIT_FLOOR
from gmmdiff.model.process import coefficients, target_coefficients, time_grid

from helpers import assert_close

GRID = time_grid()
TIMES = st.one_of(st.sampled_from([0.001, 0.999, 0.5]), st.floats(0.001, 0.999))
VARS = st.one_of(st.sampled_from([0.0, 1e-6, 1.0, 10.0]), st.floats(0.0, 10.0))


def brute_force_posterior_mean(x_t, t, means, var, process):
    """E[x0 | x_t] from explicit Gaussian densities: component m has x_t ~
    N(alpha mu_m, (alpha^2 s + sigma^2) I) and E[x0 | x_t, m] = mu_m + (alpha s / v)
    (x_t - alpha mu_m)."""
    c = coefficients(t, process)
    alpha, sigma = float(c.alpha), float(c.sigma)
    v = alpha ** 2 * var + sigma ** 2
    d = means.shape[1]
    out = np.empty_like(x_t)
    for i, x in enumerate(x_t):
        logp = np.array([stats.multivariate_normal.logpdf(x, alpha * mu, v * np.eye(d))
                         for mu in means])
        w = np.exp(logp - special.logsumexp(logp))
        cond = means + (alpha * var / v) * (x[None, :] - alpha * means)
        out[i] = w @ cond
    return out


@given(seed=st.integers(0, 2**31), M=st.integers(1, 6), d=st.integers(1, 5),
       B=st.integers(1, 5), t=TIMES, var=VARS, process=st.sampled_from(["vp", "fm"]))
def test_denoiser_equals_brute_force_bayes(seed, M, d, B, t, var, process):
    rng = np.random.default_rng(seed)
    means = 2.0 * rng.standard_normal((M, d))
    c = coefficients(t, process)
    # x_t from the model itself, around a random component, so posteriors are non-trivial
    x_t = c.alpha * means[rng.integers(0, M, B)] + np.sqrt(c.alpha ** 2 * var + c.sigma ** 2) * rng.standard_normal((B, d))
    got = gmm_x0(x_t, t, means, var, process=process)
    want = brute_force_posterior_mean(x_t, t, means, var, process)
    scale = 1.0 + np.abs(means).max()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale)


@given(seed=st.integers(0, 2**31), t=TIMES, var=VARS, process=st.sampled_from(["vp", "fm"]),
       target=st.sampled_from(["eps", "v", "score"]))
def test_parametrizations_round_trip_and_match_definitions(seed, t, var, process, target):
    rng = np.random.default_rng(seed)
    means, x_t = rng.standard_normal((4, 3)), rng.standard_normal((6, 3))
    x0hat = gmm_denoise(x_t, t, means, var, process=process, target="x0")
    pred = gmm_denoise(x_t, t, means, var, process=process, target=target)
    c = coefficients(t, process)
    eps = (x_t - c.alpha * x0hat) / c.sigma
    want = {"eps": eps, "v": c.dalpha * x0hat + c.dsigma * eps, "score": -eps / c.sigma}[target]
    # both sides cancel x_t against alpha x0hat: the error scale is that of the terms
    cx, c0 = target_coefficients(t, process, target)
    scale = abs(cx) * np.abs(x_t).max() + abs(c0) * np.abs(x0hat).max()
    np.testing.assert_allclose(pred, want, rtol=1e-10, atol=1e-13 * scale)
    back = to_x0(pred, x_t, t, process=process, target=target)
    np.testing.assert_allclose(back, x0hat, rtol=1e-8, atol=1e-8 * (1 + np.abs(x0hat).max()))


@given(seed=st.integers(0, 2**31), M=st.integers(2, 8), d=st.integers(1, 10))
def test_zero_variance_small_t_is_nearest_neighbour(seed, M, d):
    rng = np.random.default_rng(seed)
    means = 3.0 * rng.standard_normal((M, d))
    t = 0.001
    c = coefficients(t, "vp")
    k = rng.integers(0, M, 8)
    x_t = c.alpha * means[k] + c.sigma * rng.standard_normal((8, d))
    D = ((x_t[:, None, :] - c.alpha * means[None]) ** 2).sum(-1)
    Ds = np.sort(D, axis=1)
    unique = Ds[:, 1] - Ds[:, 0] > 1e-4        # nearest unique by a margin (logit gap > 25)
    got = gmm_x0(x_t, t, means, 0.0)
    want = means[np.argmin(D, axis=1)]
    np.testing.assert_allclose(got[unique], want[unique], atol=1e-9, rtol=0)


@pytest.mark.parametrize("t", [0.001, 0.04, 0.5, 0.999])
@pytest.mark.parametrize("var", [0.0, 1e-6, 1.0])
def test_expanded_logits_equal_direct_difference_float64(t, var, rng):
    """The matrix-product expansion of the logits against -(D - D_min) / (2v) from
    direct differences, on realistic shapes where |x|^2 ~ 100 >> D ~ d t^2."""
    ds = make_dataset(50, 12, 200, seed=3)
    means = ds.X[:160]
    c = coefficients(t, "vp")
    x_t = c.alpha * ds.X + c.sigma * rng.standard_normal(ds.X.shape)
    n = x_t.shape[0]
    _, _, S, v = _posterior(x_t.T, np.full(n, float(c.alpha)), np.full(n, float(c.sigma)), means, var, np)
    D = ((x_t[:, None, :] - c.alpha * means[None]) ** 2).sum(-1)        # (B, M)
    direct = -(D - D.min(axis=1, keepdims=True)) / (2 * v[:, None])
    direct = np.maximum(direct, LOGIT_FLOOR).T                                # (M, B) as returned
    # expansion error ~ eps_64 (|x|^2 + |mu|^2) / (2v) in logit units: at most ~2e-9 * 5e5
    tol = 1e-14 * (np.abs(x_t) ** 2).sum(1).max() * 4 / (2 * v.min())
    np.testing.assert_allclose(S, direct, rtol=1e-9, atol=max(tol, 1e-12))
    assert tol < 1e-3      # far below the logit gaps that decide any weight


# Measured (d = 50, M = 160, B = 2000, all 26 grid times, var in {0, 1e-6, 1}): the
# worst element differs by up to 9e-5 of max |x0hat| (var = 0, t = 0.04: rounding x_t
# to float32 moves logits of near-tied components by ~1e-3); the median element by
# ~3e-8. The float32 path computes distances in float64, so t = 0.001 is not the worst.
FLOAT32_RTOL = 2e-4
FLOAT32_MEDIAN_ATOL = 1e-6


@pytest.mark.parametrize("t", [float(GRID[-1]), float(GRID[-2]), float(GRID[12]), float(GRID[0])])
def test_float32_matches_float64_on_realistic_shapes(t, xp):
    ds = make_dataset(50, 12, 2000, seed=1)
    rng = np.random.default_rng(2)
    c = coefficients(t, "vp")
    x_t = c.alpha * ds.X + c.sigma * rng.standard_normal(ds.X.shape)        # B = 2000
    means = ds.X[rng.choice(2000, 160, replace=False)]                        # M = 160
    for var in (0.0, 1e-6, 1.0):
        ref = gmm_x0(xp.asarray(x_t), t, xp.asarray(means), var)
        f32 = gmm_x0(xp.asarray(x_t, dtype=xp.float32), t, xp.asarray(means, dtype=xp.float32), var)
        assert f32.dtype == xp.float32
        diff = xp.abs(f32.astype(xp.float64) - ref)
        err = float(xp.max(diff)) / float(xp.max(xp.abs(ref)))
        assert err < FLOAT32_RTOL, (t, var, err)
        assert float(xp.median(diff)) < FLOAT32_MEDIAN_ATOL, (t, var)


def test_backend_result_matches_numpy_float64(xp):
    rng = np.random.default_rng(0)
    means, x_t = rng.standard_normal((7, 4)), rng.standard_normal((9, 4))
    t = rng.uniform(0.001, 0.999, 9)
    ref = gmm_denoise(x_t, t, means, 0.3, target="v")
    got = gmm_denoise(xp.asarray(x_t), xp.asarray(t), xp.asarray(means), 0.3, target="v")
    assert_close(got, ref, rtol=1e-12, atol=1e-12, xp=xp, dtype=np.float64)


@pytest.mark.parametrize("t", [0.001, 0.999])
@pytest.mark.parametrize("var", [0.0, 10.0])
@pytest.mark.parametrize("target", ["x0", "eps", "v", "score"])
def test_extreme_times_and_variances_stay_finite(t, var, target):
    rng = np.random.default_rng(0)
    means = 30.0 * rng.standard_normal((20, 50))
    x_t = 30.0 * rng.standard_normal((50, 50))      # far from every component
    out = gmm_denoise(x_t, t, means, var, target=target)
    assert np.all(np.isfinite(out))


def test_constructors():
    ds = make_dataset(5, 3, 20, seed=0)
    g = dn.generalizing(ds.mixture)
    assert g.means.shape == (3, 5) and g.var == 1.0
    m = dn.memorizing(ds.X)
    assert m.means is ds.X and m.var == 0.0
    p, subset = dn.partially_memorizing(ds.X, 7, seed=0)
    assert p.means.shape == (7, 5) and len(set(subset)) == 7
    np.testing.assert_array_equal(p.means, ds.X[subset])
    with pytest.raises(ValueError, match="M = 21"):
        dn.partially_memorizing(ds.X, 21, seed=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(x_t=np.zeros((2, 3)), means=np.zeros((4, 2))), "dimension mismatch"),
    (dict(var=-1.0), "var = -1.0"),
    (dict(t=0.0), "t = 0.0"),
    (dict(t=1.0), "t = 1.0"),
    (dict(t=np.array([0.5, 1.5])), "t = 1.5"),
    (dict(target="noise"), "unknown target 'noise'"),
    (dict(process="ve"), "unknown process 've'"),
    (dict(x_t=np.zeros(3)), "x_t must have shape"),
])
def test_bad_input_names_the_value(kwargs, match):
    args = dict(x_t=np.zeros((2, 3)), t=0.5, means=np.zeros((4, 3)), var=1.0)
    opts = {k: kwargs.pop(k) for k in ("target", "process") if k in kwargs}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gmm_denoise(args["x_t"], args["t"], args["means"], args["var"], **opts)
