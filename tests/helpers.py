"""Test helpers: host conversion and namespace/shape/dtype-aware comparisons."""
import importlib.util
import os

import numpy as np

from gmmdiff.backend import array_namespace, to_host


def assert_close(actual, expected, *, rtol, atol=0.0, xp=None, dtype=None):
    """Check namespace, shape and dtype before values (array-api-extra style)."""
    if xp is not None:
        assert array_namespace(actual) is xp, "result left the input's backend"
    a = to_host(actual)
    e = to_host(expected)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    if dtype is not None:
        assert a.dtype == np.dtype(dtype), f"dtype {a.dtype} != {dtype}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def load_benchmark(name="bench_train_step"):
    """The module ``benchmarks/<name>.py``, imported from its path (benchmarks/ is no package)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "benchmarks", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Memorized tiny-variance states, (variance, rms offset of the means from the training
# points): the end of a built-in run has variance ~1e-9 and offsets ~1e-5.
MEMORIZED_STATES = [(1e-9, 1e-5), (1e-8, 3e-5), (1e-6, 3e-4)]
TRAIN_GRID = np.linspace(0.001, 0.999, 26)          # TrainConfig's default time grid


def memorized_problem(var, offset, seed):
    """Loss arguments at a memorized state: the built-in data (d = 10, N = 20, 10 rows
    each), the means the training points ``offset`` rms away, std = sqrt(``var``),
    times from the training grid (t = 0.001 included). Returns float32 means (1, N, d),
    std (1,), x0 (d, B), eps (1, d, B) and float64 alpha, sigma, wt (1, B)."""
    from gmmdiff.model.data import make_dataset
    X = make_dataset(10, 2, 20, seed=0).X                                  # (N, d)
    rng = np.random.default_rng(seed)
    means = (X + offset * rng.standard_normal(X.shape)).astype(np.float32)[None]
    x0 = np.ascontiguousarray(np.repeat(X, 10, axis=0).T, dtype=np.float32)  # (d, B)
    B = x0.shape[1]
    eps = rng.standard_normal((1, 10, B), dtype=np.float32)
    t = rng.choice(TRAIN_GRID, (1, B))
    alpha, sigma = np.sqrt(1 - t * t), t
    return (means, np.array([np.sqrt(var)], np.float32), x0, eps, alpha, sigma,
            alpha ** 2 / sigma ** 2)


def float32_errors(got, args):
    """Relative errors (loss, grad_means, grad_std) of float32 results ``got`` (host
    arrays) against the float64 array program on the same float32 ``args``
    (:func:`memorized_problem`); each relative to the float64 value (grad_means: to
    its largest entry)."""
    from gmmdiff.model.losses import _batched_loss_and_grad
    f64 = [a.astype(np.float64) for a in args]
    loss, gm, gs = _batched_loss_and_grad(*f64, np)
    for g in got:
        assert g.dtype == np.float32
    return (abs(got[0][0] - loss[0]) / loss[0], np.max(np.abs(got[1] - gm)) / np.max(np.abs(gm)),
            abs(got[2][0] - gs[0]) / abs(gs[0]))


def std_gradient_cancellation(args):
    """sum over rows of |d/dstd| / |d/dstd| in float64: how much the sum over the rows
    of :func:`memorized_problem`'s std gradient cancels."""
    from gmmdiff.model.losses import _batched_loss_and_grad
    means, std, x0, eps, alpha, sigma, wt = [a.astype(np.float64) for a in args]
    B = x0.shape[-1]
    # one model per row: J = B copies of the model, each seeing one row
    rows = _batched_loss_and_grad(np.repeat(means, B, 0), np.repeat(std, B), x0.T[:, :, None],
                                  np.ascontiguousarray(eps[0].T[:, :, None]),
                                  alpha.T, sigma.T, wt.T, np)[2]
    return np.sum(np.abs(rows)) / abs(np.sum(rows))
