"""The counter-based generator: distribution, independence, determinism, backends."""
import numpy as np
import pytest
from scipy import stats

from gmmdiff import rng
from gmmdiff.backend import to_host
from gmmdiff.training.config import TrainConfig
from gmmdiff.training.draws import draw_chunk
from gmmdiff.training.loop import train
from gmmdiff.training.state import initial_state


def test_normals_are_standard_normal():
    z = rng.normals(rng.stream_key(0, 1), (400, 500))
    assert z.shape == (400, 500) and z.dtype == np.float64
    n = z.size                                   # 200,000 draws: se(mean) = 0.0022
    assert abs(z.mean()) < 5 / np.sqrt(n) and abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.kurtosis(z.ravel())) < 5 * np.sqrt(24 / n)
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3


def test_streams_are_independent_and_reproducible():
    a = rng.normals(rng.stream_key(3, 11, 5, 0), 100_000)
    b = rng.normals(rng.stream_key(3, 11, 5, 1), 100_000)
    np.testing.assert_array_equal(a, rng.normals(rng.stream_key(3, 11, 5, 0), 100_000))
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size)
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 5 / np.sqrt(a.size)
    # a prefix of a longer draw is not what training relies on, but shapes must not matter
    np.testing.assert_array_equal(rng.normals(7, (10, 4)).ravel(), rng.normals(7, 40))


def test_integers_are_uniform():
    t = rng.integers(rng.stream_key(1, 2), 26, (260_000,))
    counts = np.bincount(t, minlength=26)
    assert t.min() == 0 and t.max() == 25
    assert stats.chisquare(counts).pvalue > 1e-3


def test_hash_noise_source_trains_deterministically_and_differs_from_pcg():
    cfg = TrainConfig(dim=3, components=2, samples=8, steps=20, noise_draws=2, lr_peak=1e-2)
    ds = cfg.dataset()
    a = train(ds, initial_state(ds, [3, 8], cfg, np), cfg, np, noise_source="hash")
    b = train(ds, initial_state(ds, [3, 8], cfg, np), cfg, np, noise_source="hash")
    c = train(ds, initial_state(ds, [3, 8], cfg, np), cfg, np, noise_source="pcg")
    np.testing.assert_array_equal(a.means, b.means)
    assert not np.allclose(a.means, c.means)
    with pytest.raises(ValueError, match="noise source 'x'"):
        draw_chunk((0, 3), 0, 1, 8, 2, (3,), 26, source="x")


def test_device_draws_equal_numpy(xp):
    """Integers and uniforms bit for bit; normals to a few ulp (the device's log1p, cos
    and sin may round differently)."""
    key = rng.stream_key(5, 9)
    np.testing.assert_array_equal(to_host(rng.uniforms(key, 501, xp)), rng.uniforms(key, 501))
    np.testing.assert_array_equal(to_host(rng.integers(key, 26, (500,), xp)), rng.integers(key, 26, (500,)))
    np.testing.assert_allclose(to_host(rng.normals(key, (300, 7), xp)), rng.normals(key, (300, 7)),
                               rtol=1e-14, atol=1e-15)


def test_backend_training_equals_numpy_with_the_same_draws(xp):
    """cupy (hash draws on the device) against numpy with the same hash draws."""
    cfg = TrainConfig(dim=4, components=2, samples=10, steps=30, noise_draws=3, lr_peak=1e-2)
    ref_ds = cfg.dataset()
    ref = train(ref_ds, initial_state(ref_ds, [4, 10], cfg, np), cfg, np, noise_source="hash")
    ds = cfg.dataset(xp)
    got = train(ds, initial_state(ds, [4, 10], cfg, xp), cfg, xp, noise_source="hash")
    np.testing.assert_allclose(to_host(got.means), ref.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_host(got.std), ref.std, rtol=1e-10)


def test_batch_draws_of_several_streams_equal_each_stream_drawn_alone():
    """BatchDraws (hash) draws all distinct streams of a batch at once; each equals the
    single-stream reference draw_chunk, and a step's draws do not depend on the chunk."""
    import numpy as np
    from gmmdiff.training.draws import BatchDraws, draw_chunk
    streams = [(0, 8, 3, 2, 2), (0, 8, 3, 2, 5), (0, 8, 3, 2, 2), (1, 8, 3, 2, 8)]
    bd = BatchDraws(streams, 8, 2, (3,), 26, xp=np, dtype=np.float64, source="hash", rows_last=True)
    rows, eps = bd.chunk(1)
    assert len(bd.unique) == 3 and rows.shape == (3, bd.S, 16) and eps.shape == (3, bd.S, 3, 16)
    for u, st in enumerate(bd.unique):
        t_ref, e_ref = draw_chunk(st, 1, bd.S, 8, 2, (3,), 26, source="hash", rows_last=True)
        np.testing.assert_array_equal(rows[u], np.repeat(t_ref, 2, axis=-1))
        np.testing.assert_array_equal(eps[u], e_ref)
    # the same steps in chunks of another size
    t_half, e_half = draw_chunk(bd.unique[0], 2, bd.S // 2, 8, 2, (3,), 26, source="hash",
                                rows_last=True)
    np.testing.assert_array_equal(e_half, eps[0, :bd.S // 2])
