"""The colored-template model: denoiser against dense Gaussians, gradients, IO."""
import gzip

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import special, stats

from gmmdiff.model.process import coefficients, target_coefficients
from gmmdiff.families.template_io import (DEFAULT_TEMPLATES, TemplateFileError,
                                          draw_default_templates, load_templates, read_idx,
                                          write_idx)
from gmmdiff.families.templates import loss_and_grad, template_denoise

from helpers import assert_close


def dense_posterior_mean(x_t, t, A, Mu, s, process="vp"):
    """Explicit (C P)-dimensional Gaussians: component k has mean m_k (x) a_k and
    covariance s I_C (x) a_k a_k^T; E[x0 | x_t, k] by a dense solve."""
    c = coefficients(t, process)
    M, C = Mu.shape
    P = A.shape[1]
    out = np.empty_like(x_t)
    for b, y in enumerate(x_t.reshape(len(x_t), -1)):
        logp, post = [], []
        for k in range(M):
            mean0 = np.kron(Mu[k], A[k])
            cov0 = s * np.kron(np.eye(C), np.outer(A[k], A[k]))
            cov = c.alpha ** 2 * cov0 + c.sigma ** 2 * np.eye(C * P)
            logp.append(stats.multivariate_normal.logpdf(y, c.alpha * mean0, cov))
            post.append(mean0 + c.alpha * cov0 @ np.linalg.solve(cov, y - c.alpha * mean0))
        w = np.exp(np.array(logp) - special.logsumexp(logp))
        out[b] = (w @ np.array(post)).reshape(C, P)
    return out


@given(seed=st.integers(0, 2**31), M=st.integers(1, 4), C=st.integers(1, 3), P=st.integers(1, 5),
       t=st.sampled_from([0.05, 0.3, 0.7, 0.95]), s=st.sampled_from([0.0, 0.3, 1.0, 3.0]))
def test_denoiser_equals_dense_gaussian_mixture(seed, M, C, P, t, s):
    rng = np.random.default_rng(seed)
    A = rng.uniform(0.1, 1.0, (M, P)) * rng.uniform(0.3, 2.0, (M, 1))   # templates of different norms
    Mu = rng.standard_normal((M, C))
    x_t = rng.standard_normal((3, C, P))
    got = template_denoise(x_t, t, A, Mu, s)
    want = dense_posterior_mean(x_t, t, A, Mu, s)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9)


def test_dense_check_is_sensitive_to_the_log_determinant_factor():
    """With the released code's single log-determinant term (factor 1 instead of C) the
    weights change whenever templates differ in norm: the test above would catch it."""
    from gmmdiff.families import templates as tm
    rng = np.random.default_rng(1)
    A = np.array([[0.2, 0.1, 0.3], [2.0, 1.5, 2.5]])
    Mu, s, t, C = np.zeros((2, 3)), 1.0, 0.6, 3
    x_t = rng.standard_normal((4, C, 3))
    right = template_denoise(x_t, t, A, Mu, s)
    c = coefficients(t)
    f_wrong = tm._forward(x_t.reshape(1, 4, C, 3), c.alpha * np.ones((1, 4)), c.sigma * np.ones((1, 4)),
                          A[None], Mu[None], np.array([s]), np)
    # recompute the weights with the wrong factor: add back (C - 1)/2 log den
    n, den = tm._coeffs(c.alpha * np.ones((1, 4)), c.sigma * np.ones((1, 4)), A[None], np.array([s]), np)
    wrong_logw = np.log(f_wrong["W"]) + 0.5 * (C - 1) * np.log(den)
    wrong_w = np.exp(wrong_logw - special.logsumexp(wrong_logw, axis=-1, keepdims=True))
    wrong = np.matmul(wrong_w[..., None, :] * f_wrong["chat"], A[None, None])[0]
    assert np.abs(wrong - right).max() > 1e-2
    np.testing.assert_allclose(right, dense_posterior_mean(x_t, t, A, Mu, s), atol=1e-10)


def test_one_template_one_color_is_a_rank_one_gaussian():
    """K = 1, C = 1: x0 = c a with c ~ N(m, s); E[x0 | y] = (m + alpha s a.(y - alpha m a)
    / (sigma^2 + alpha^2 s |a|^2)) a, written out by hand."""
    a = np.array([0.5, 1.0, -0.25, 2.0])
    m, s, t = 0.7, 1.3, 0.4
    c = coefficients(t)
    y = np.array([0.3, -1.0, 0.8, 1.7])
    chat = m + c.alpha * s * a @ (y - c.alpha * m * a) / (c.sigma ** 2 + c.alpha ** 2 * s * a @ a)
    got = template_denoise(y.reshape(1, 1, 4), t, a[None], np.array([[m]]), s)
    np.testing.assert_allclose(got[0, 0], chat * a, rtol=1e-12)


@pytest.mark.parametrize("target", ["eps", "x0", "v", "score"])
def test_parametrizations_go_through_the_core_conversion(target):
    rng = np.random.default_rng(2)
    A, Mu, x_t = rng.uniform(0, 1, (3, 4)), rng.standard_normal((3, 2)), rng.standard_normal((5, 2, 4))
    t = 0.3
    x0 = template_denoise(x_t, t, A, Mu, 0.5)
    cx, c0 = target_coefficients(t, "vp", target)
    np.testing.assert_allclose(template_denoise(x_t, t, A, Mu, 0.5, target=target),
                               cx * x_t + c0 * x0, rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 2**31), target=st.sampled_from(["eps", "x0", "v"]),
       std=st.sampled_from([0.05, 0.5, 1.0, 2.0]), t_range=st.sampled_from([(0.01, 0.2), (0.01, 0.99)]))
def test_gradients_equal_finite_differences(seed, target, std, t_range):
    rng = np.random.default_rng(seed)
    M, C, P, B = 3, 2, 4, 6
    A = rng.uniform(0.1, 1.0, (M, P)) * rng.uniform(0.5, 2.0, (M, 1))
    Mu = rng.standard_normal((M, C))
    x0 = rng.standard_normal((B, C, P))
    eps = rng.standard_normal((B, C, P))
    t = rng.uniform(*t_range, B)
    _, gA, gM, gs = loss_and_grad(A, Mu, std, x0, t, eps, target=target)
    DA, DM, Ds = rng.standard_normal(A.shape), rng.standard_normal(Mu.shape), std * rng.standard_normal()
    h = 1e-6      # logits move by ~h |DA| / sigma^2: stay in the linear regime at t = 0.01

    def f(e):
        return float(loss_and_grad(A + e * DA, Mu + e * DM, std + e * Ds, x0, t, eps, target=target)[0])

    d1, d2 = (f(h) - f(-h)) / (2 * h), (f(h / 2) - f(-h / 2)) / h
    fd = (4 * d2 - d1) / 3                                              # Richardson
    terms = np.array([np.sum(gA * DA), np.sum(gM * DM), gs * Ds])
    # |d1 - d2| bounds the finite difference's own error (truncation and rounding)
    assert abs(terms.sum() - fd) <= 1e-6 * np.abs(terms).sum() + 4 * abs(d1 - d2), (terms.sum(), fd)


def test_backend_matches_numpy(xp):
    rng = np.random.default_rng(3)
    A, Mu, x_t = rng.uniform(0, 1, (3, 4)), rng.standard_normal((3, 2)), rng.standard_normal((5, 2, 4))
    ref = template_denoise(x_t, 0.4, A, Mu, 0.5)
    got = template_denoise(xp.asarray(x_t), 0.4, xp.asarray(A), xp.asarray(Mu), 0.5)
    assert_close(got, ref, rtol=1e-12, atol=1e-12, xp=xp, dtype=np.float64)


def test_bad_input():
    A, Mu, x = np.ones((2, 4)), np.zeros((2, 3)), np.zeros((5, 3, 4))
    with pytest.raises(ValueError, match="color_means must have shape"):
        template_denoise(x, 0.5, A, np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="color_var = -1"):
        template_denoise(x, 0.5, A, Mu, -1.0)
    with pytest.raises(ValueError, match="templates must have shape"):
        template_denoise(x, 0.5, np.ones((2, 5)), Mu, 1.0)
    with pytest.raises(ValueError, match="t = 1.0"):
        template_denoise(x, 1.0, A, Mu, 1.0)


# ------------------------------------------------------------------------------ IO

def test_idx_round_trip_plain_and_gzipped(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 7, 6), dtype=np.uint8)
    write_idx(tmp_path / "a.idx", images)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a.idx")), images)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress((tmp_path / "a.idx").read_bytes()))
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a.idx.gz")), images)
    T = load_templates(str(tmp_path / "a.idx.gz"), K=3, size=4, seed=1)
    assert T.shape == (3, 16) and T.min() == 0.0 and T.max() == 1.0


def test_truncated_or_malformed_files_are_refused(tmp_path):
    images = np.zeros((4, 5, 5), dtype=np.uint8)
    write_idx(tmp_path / "a.idx", images)
    raw = (tmp_path / "a.idx").read_bytes()
    (tmp_path / "cut.idx").write_bytes(raw[:-7])
    with pytest.raises(TemplateFileError, match="truncated or corrupt"):
        read_idx(str(tmp_path / "cut.idx"))
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04" + raw[4:])
    with pytest.raises(TemplateFileError, match="bad magic"):
        read_idx(str(tmp_path / "bad.idx"))
    with pytest.raises(TemplateFileError, match="cannot read"):
        load_templates(str(tmp_path / "missing.idx"))
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    with pytest.raises(TemplateFileError, match="x.npy"):
        load_templates(str(tmp_path / "x.npy"))
    with pytest.raises(ValueError, match="K = 9"):
        load_templates(K=9)


def test_default_set_ships_and_matches_its_generator():
    shipped = np.load(DEFAULT_TEMPLATES, allow_pickle=False)
    np.testing.assert_array_equal(shipped, draw_default_templates())
    T = load_templates(K=8, size=15, seed=0)
    assert T.shape == (8, 225)
    norms = np.linalg.norm(T, axis=1)
    assert norms.max() / norms.min() > 1.2          # templates of different norms


# ---------------------------------------------------------------------------- training

def test_batched_template_training_equals_each_size_alone():
    from gmmdiff.training.config import TrainConfig
    from gmmdiff.training.loop import train
    from gmmdiff.training.state import initial_state
    cfg = TrainConfig(model="templates", components=2, samples=6, image_size=3, colors=2,
                      steps=25, noise_draws=2, lr_peak=1e-2, target="eps")
    ds = cfg.dataset()

    def trained(sizes):
        return train(ds, initial_state(ds, sizes, cfg, np), cfg, np)

    together = trained([2, 6])
    for j, M in enumerate([2, 6]):
        alone = trained([M])
        for name in ("templates", "colors"):
            np.testing.assert_allclose(together.params[name][j, :M], alone.params[name][0],
                                       rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(together.std[j], alone.std[0], rtol=1e-10)


def test_template_dataset_and_pmem_init_reproduce_training_samples():
    from gmmdiff.training.config import TrainConfig
    from gmmdiff.training.state import init_params
    cfg = TrainConfig(model="templates", components=3, samples=5, image_size=4, colors=3)
    ds = cfg.dataset()
    assert ds.X.shape == (5, 3, 16)
    np.testing.assert_allclose(ds.X, ds.colors[:, :, None] * ds.mixture.templates[ds.labels][:, None, :])
    p = init_params(ds, 5, cfg)
    rebuilt = p["colors"][:, :, None] * p["templates"][:, None, :]
    assert sorted(map(tuple, rebuilt.reshape(5, -1).round(12))) == sorted(map(tuple, ds.X.reshape(5, -1).round(12)))


@pytest.mark.slow
def test_template_model_shows_the_transition(tmp_path):
    from gmmdiff.experiments.runs import run
    from gmmdiff.training.config import TrainConfig
    cfg = TrainConfig(model="templates", components=4, samples=16, image_size=8, steps=3000,
                      lr_peak=1e-2, target="x0", noise_draws=4, eval_samples=40, eval_noise_draws=4)
    rows = run(cfg, [4, 16], str(tmp_path / "run"), np)
    ratio = [r["memorization"]["ratio"] for r in rows]
    assert ratio[0] <= 0.2 and ratio[1] >= 0.8, ratio
    assert rows[0]["learned_variance"] > 10 * rows[1]["learned_variance"]


def test_cli_template_model(tmp_path):
    from click.testing import CliRunner
    from test_cli import load_script
    out = tmp_path / "t"
    args = ["--model", "templates", "--components", "2", "--samples", "6", "--image-size", "4",
            "--steps", "50", "--model-sizes", "2,6", "--eval-samples", "8", "--quiet", "--out", str(out)]
    result = CliRunner().invoke(load_script("gmmdiff-train"), args)
    assert result.exit_code == 0, result.output
    assert (out / "model_M00006.npz").exists() and "results in" in result.output
    import json
    ident = json.loads((out / "config.json").read_text())["identity"]
    assert ident["model"] == "templates" and ident["target"] == "x0" and ident["image_size"] == 4
    result = CliRunner().invoke(load_script("gmmdiff-plot"), [str(out)])
    assert result.exit_code == 0 and (out / "fig5_templates.png").exists(), result.output
    bad = CliRunner().invoke(load_script("gmmdiff-train"),
                             args[:-1] + [str(tmp_path / "u"), "--template-file", str(tmp_path / "none.idx")])
    assert bad.exit_code == 2 and "none.idx" in bad.output and "Traceback" not in bad.output
