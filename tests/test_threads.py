"""The CPU thread budget: the BLAS is held to the cores the draw thread leaves free,
only while training, and the thread count never changes a result."""
import numpy as np
import pytest

from gmmdiff import threads
from gmmdiff.config import TrainConfig
from gmmdiff.state import initial_state
from gmmdiff.train import train

CTL = threads.blas_controller()
needs_blas = pytest.mark.skipif(CTL is None, reason="no controllable BLAS found in this numpy")


def test_cores_follow_the_worker_share(monkeypatch):
    monkeypatch.setenv(threads.CORES_ENV, "3")
    assert threads.cpu_count() == 3
    assert threads.blas_budget(1) == 2 and threads.blas_budget(5) == 1
    assert threads.prefetch_draws()
    monkeypatch.setenv(threads.CORES_ENV, "1")
    assert threads.blas_budget(1) == 1 and not threads.prefetch_draws()
    monkeypatch.setenv(threads.CORES_ENV, "junk")                   # ignored, not an error
    assert threads.cpu_count() >= 1


@needs_blas
def test_blas_threads_caps_and_restores():
    before = CTL.get()
    CTL.set(2)
    try:
        with threads.blas_threads(1) as n:
            assert n == 1 and CTL.get() == 1
        assert CTL.get() == 2
        CTL.set(1)                                    # a lower count already in force is kept
        with threads.blas_threads(4) as n:
            assert n == 1 and CTL.get() == 1
        with pytest.raises(RuntimeError):
            with threads.blas_threads(1):
                raise RuntimeError("training failed")
        assert CTL.get() == 1                         # restored on error too
    finally:
        CTL.set(before)


def _train(cfg, sizes, callback=None):
    ds = cfg.dataset()
    return train(ds, initial_state(ds, sizes, cfg, np), cfg, np, callback=callback, log_every=5)


@needs_blas
def test_training_holds_the_budget_only_while_it_runs(monkeypatch):
    monkeypatch.setenv(threads.CORES_ENV, "2")
    before = CTL.get()
    CTL.set(2)
    seen = []
    try:
        cfg = TrainConfig(dim=6, components=2, samples=16, steps=10, noise_draws=4)
        _train(cfg, [4, 16], callback=lambda step, losses: seen.append(CTL.get()))
        assert seen and set(seen) == {1}              # 2 cores: 1 BLAS thread + the draw thread
        assert CTL.get() == 2
    finally:
        CTL.set(before)


@needs_blas
def test_prefetching_changes_nothing_and_blas_threads_only_rounding(monkeypatch):
    """1 core (1 BLAS thread, draws on the training thread), 2 (1 BLAS thread, draws
    prefetched) and 3 (2 BLAS threads) at a shape whose products OpenBLAS splits over
    threads (d = 40, M = 60, 1,200 rows). Prefetching is bit-identical; OpenBLAS's
    products differ by rounding between thread counts (their sums split differently),
    so 1 and 2 BLAS threads agree to rounding: 6 steps of an update of relative size
    ~1e-3 from gradients that differ by ~1e-15 relative leave the means within 1e-12."""
    cfg = TrainConfig(dim=40, components=3, samples=60, steps=6, noise_draws=20)
    out = {}
    before = CTL.get()
    CTL.set(2)
    try:
        for cores in ("1", "2", "3"):
            monkeypatch.setenv(threads.CORES_ENV, cores)
            out[cores] = _train(cfg, [20, 60])
    finally:
        CTL.set(before)
    np.testing.assert_array_equal(out["1"].means, out["2"].means)
    np.testing.assert_array_equal(out["1"].std, out["2"].std)
    assert out["1"].losses == out["2"].losses
    np.testing.assert_allclose(out["3"].means, out["1"].means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["3"].std, out["1"].std, rtol=1e-12)
    np.testing.assert_allclose(out["3"].losses, out["1"].losses, rtol=1e-12)


@needs_blas
def test_the_budget_controls_numpys_blas_not_scipys():
    """scipy's wheels load an OpenBLAS of their own; the budget must hold numpy's."""
    import os
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS too)
    libs = threads._loaded_libraries()
    path = threads._find_controller().path
    assert path in libs
    numpy_dir = os.path.dirname(np.__file__)
    if any("numpy" in os.path.dirname(p) for p in libs):          # numpy's wheel bundles one
        assert "numpy" in os.path.dirname(path) and not path.startswith(
            os.path.dirname(scipy.linalg.__file__)), (path, numpy_dir)
