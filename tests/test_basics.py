"""Backend switch, processes and the time grid, the data model."""
import numpy as np
import pytest

from gmmdiff import backend
from gmmdiff.model.data import make_dataset, make_mixture, memorized_subset
from gmmdiff.model.process import coefficients, loss_scale, snr, time_grid


def test_backend_by_name_and_errors(monkeypatch):
    assert backend.get_xp("numpy") is np
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        backend.get_xp("jax")
    if backend.cupy_available():          # a GPU or the test suite's CuPy stand-in: hide it
        monkeypatch.setattr(backend, "_cupy", None)
        monkeypatch.setattr(backend, "_CUPY_IMPORT_ERROR", "ModuleNotFoundError: No module named 'cupy'")
    with pytest.raises(ValueError, match="pip install .*\\[cuda12\\]'.*'numpy', which works everywhere"):
        backend.get_xp("cupy")
    with pytest.raises(ValueError, match="unknown dtype 'float16'"):
        backend.get_dtype("float16")
    assert backend.array_namespace(np.zeros(2), 1.0, None) is np


def test_time_grid_defaults():
    g = time_grid()
    assert g.shape == (26,) and g[0] == 0.999 and g[-1] == 0.001
    assert np.all(np.diff(g) < 0)
    np.testing.assert_allclose(np.diff(g), -(0.998 / 25))
    with pytest.raises(ValueError, match="t_min = 0.5, t_max = 0.4"):
        time_grid(26, 0.5, 0.4)


@pytest.mark.parametrize("process", ["vp", "fm"])
def test_process_derivatives_by_finite_differences(process):
    t = np.linspace(0.01, 0.98, 17)
    h = 1e-6
    c, cp, cm = coefficients(t, process), coefficients(t + h, process), coefficients(t - h, process)
    np.testing.assert_allclose(c.dalpha, (cp.alpha - cm.alpha) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(c.dsigma, (cp.sigma - cm.sigma) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(snr(t, process), c.alpha ** 2 / c.sigma ** 2)
    if process == "vp":
        np.testing.assert_allclose(c.alpha ** 2 + c.sigma ** 2, 1.0)
    np.testing.assert_allclose(loss_scale(t, process, "eps"), snr(t, process), rtol=1e-12)
    np.testing.assert_array_equal(loss_scale(t, process, "x0"), 1.0)


def test_mixture_means_on_sphere_and_seeded():
    m = make_mixture(30, 7, seed=4)
    np.testing.assert_allclose(np.linalg.norm(m.means, axis=1), np.sqrt(30))
    np.testing.assert_array_equal(m.means, make_mixture(30, 7, seed=4).means)
    assert not np.allclose(m.means, make_mixture(30, 7, seed=5).means)


def test_dataset_statistics_and_labels():
    ds = make_dataset(20, 3, 3000, var=0.5, seed=1)
    resid = ds.X - ds.mixture.means[ds.labels]
    assert abs(resid.var() - 0.5) < 0.02              # 60,000 coordinates: se ~ 0.003
    counts = np.bincount(ds.labels, minlength=3) / 3000
    np.testing.assert_allclose(counts, 1 / 3, atol=0.03)
    assert ds.X_test.shape == (100, 20) and ds.labels_test.shape == (100,)
    assert not np.allclose(ds.X[:100], ds.X_test)


def test_same_seed_same_data_on_every_backend(xp):
    a = make_dataset(5, 2, 10, seed=9)
    b = make_dataset(5, 2, 10, seed=9, xp=xp)
    np.testing.assert_array_equal(backend.to_host(b.X), a.X)
    np.testing.assert_array_equal(backend.to_host(b.labels), a.labels)


def test_subset_and_validation():
    s = memorized_subset(50, 20, seed=0)
    assert len(np.unique(s)) == 20 and s.max() < 50
    np.testing.assert_array_equal(s, memorized_subset(50, 20, seed=0))
    with pytest.raises(ValueError, match="samples = 0"):
        make_dataset(3, 2, 0)
    with pytest.raises(ValueError, match="dim = 2.5"):
        make_mixture(2.5, 2)
    with pytest.raises(ValueError, match="seed = -1"):
        make_dataset(3, 2, 5, seed=-1)


def test_two_nearest_equals_the_dense_direct_differences():
    from gmmdiff.model.metrics import _two_nearest
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((37, 5)), rng.standard_normal((23, 5))
    D = np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(-1))          # (37, 23)
    d1, d2 = _two_nearest(A, B)
    srt = np.sort(D, axis=1)
    np.testing.assert_allclose(d1, srt[:, 0], rtol=1e-13)
    np.testing.assert_allclose(d2, srt[:, 1], rtol=1e-13)
    d1, d2 = _two_nearest(A, B[:1])
    np.testing.assert_allclose(d1, D[:, 0], rtol=1e-13)
    assert np.all(np.isinf(d2))


def test_wilson_interval_matches_the_score_formula():
    from gmmdiff.model.metrics import wilson_interval
    z = 1.959963984540054
    for k, n in ((0, 50), (7, 50), (25, 50), (50, 50), (130, 500)):
        p = k / n
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(max(0.0, c - h), abs=1e-12)
        assert hi == pytest.approx(min(1.0, c + h), abs=1e-12)
    assert all(np.isnan(wilson_interval(0, 0)))
