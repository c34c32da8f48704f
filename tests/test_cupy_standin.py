"""The CuPy stand-in (tests/cupy_standin) and gmmdiff's cupy path on it.

1. The stand-in itself: each CuPy rule it enforces raises or counts as CuPy does
   (these tests skip on a real GPU, where CuPy itself enforces the rules).
2. gmmdiff's public functions with device inputs give, on the device, the numpy
   results.
3. Training, ``run`` and the scripts on the cupy backend.
4. A counting smoke test: launches, syncs and host->device copies per training step
   and per draw chunk (printed; budgets come with the training-loop rework).

Parts 2-4 run on whatever ``cupy`` is: the stand-in without a GPU, CuPy with one.
"""
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff import rng
from gmmdiff.analysis import transition
from gmmdiff.families import templates
from gmmdiff.model import data, denoisers, losses, metrics, sampling
from gmmdiff.theory import approximations as theory
from gmmdiff.training import optim
from gmmdiff.backend import array_namespace, cupy_available, get_xp, to_host
from gmmdiff.model.process import time_grid
from helpers import assert_close, load_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")
HERE = "tests/test_cupy_standin.py"


@pytest.fixture(scope="module")
def cp():
    """The cupy module: the stand-in, or CuPy on a GPU."""
    if not cupy_available():
        pytest.skip("neither CuPy with a GPU nor the CuPy stand-in is active")
    return get_xp("cupy")


@pytest.fixture(scope="module")
def standin(cp):
    if not getattr(cp, "STANDIN", False):
        pytest.skip("checks of the CuPy stand-in itself (real CuPy enforces its own rules)")
    return cp


@pytest.fixture
def counting(standin):
    return standin._standin.counting


def line():
    """The caller's line number."""
    return sys._getframe(1).f_lineno


def needs_compiler(cp):
    if getattr(cp, "STANDIN", False):
        from cupy._kernels import compiler
        if compiler() is None:
            pytest.skip("no host C++ compiler for the stand-in's raw kernels")


# =============================================================== 1. the stand-in

def test_backend_treats_the_standin_as_cupy(standin):
    from gmmdiff import backend
    assert backend.cupy_available() and backend.get_xp("cupy") is standin
    x = standin.arange(3.0)
    assert array_namespace(x) is standin and standin.get_array_module(x) is standin
    assert standin.get_array_module(np.ones(2)) is np
    np.testing.assert_array_equal(to_host(x), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="different backends"):
        array_namespace(x, np.ones(3))


def test_scripts_in_subprocesses_get_the_standin(standin):
    out = subprocess.run([sys.executable, "-c", "import cupy; print(cupy.STANDIN)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_implicit_conversion_raises_cupys_type_error(standin, counting):
    x = standin.arange(6.0)
    for convert in (np.asarray, np.array, lambda a: a.__array__(),
                    lambda a: np.array([a[0], a[1]]), lambda a: np.asarray(list(a)),
                    lambda a: np.testing.assert_allclose(a, np.arange(6.0))):
        with pytest.raises(TypeError, match=re.escape(IMPLICIT)):
            convert(x)
    with counting() as c:                       # iteration yields device views, no sync
        items = list(x)
    assert all(isinstance(i, standin.ndarray) and i.shape == () for i in items)
    assert c.syncs == 0 and c.launches == 0


def test_numpy_ndarray_operands_raise_and_scalars_do_not(standin):
    x = standin.arange(3.0)
    h, h0 = np.arange(3.0), np.array(2.0)
    for f in (lambda: x + h, lambda: h + x, lambda: x * h0, lambda: h0 * x,
              lambda: standin.add(x, h), lambda: np.add(x, h), lambda: standin.maximum(x, h0),
              lambda: standin.where(x > 1, x, h), lambda: standin.concatenate([x, h])):
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            f()
    with pytest.raises(TypeError):               # lists are not operands either
        x + [1.0, 2.0, 3.0]
    for f in (lambda: standin.ascontiguousarray(h), lambda: standin.broadcast_to(h, (2, 3)),
              lambda: standin.matmul(h, x), lambda: standin.stack([x, h])):
        with pytest.raises(TypeError, match="incorrect type"):      # Cython-typed arguments
            f()
    # Python scalars are weak, numpy scalars strong (CuPy's CScalar, NumPy 2 rules)
    x32 = x.astype(standin.float32)
    assert (x32 * 2.0).dtype == np.float32 and (x32 * np.float64(2.0)).dtype == np.float64
    assert (x + np.int64(1)).dtype == np.float64 and (2 ** x).dtype == np.float64
    # comparisons take a 0-d numpy array as a scalar (core.pyx __richcmp__)
    np.testing.assert_array_equal((x < h0).get(), [True, True, False])
    np.testing.assert_array_equal(np.less(x, h0).get(), [True, True, False])


def test_host_data_cupy_copies_itself_is_accepted_and_counted(standin, counting):
    x = standin.arange(6.0).reshape(2, 3)
    with counting() as c:
        y = x[:, np.array([0, 2])]               # host fancy index: copied to the device
    assert (c.h2d, c.launches) == (1, 1)
    np.testing.assert_array_equal(y.get(), [[0.0, 2.0], [3.0, 5.0]])
    with counting() as c:
        z = standin.einsum("ij,j->i", x, np.ones(3))
    assert c.h2d == 1 and isinstance(z, standin.ndarray)
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        x[0] = np.array([1.0, 2.0, 3.0])
    with counting() as c:
        x[0] = 5.0                               # a scalar travels as a kernel argument
        x[np.array([1])] = np.ones((1, 3))       # advanced: index and value copied
    assert (c.h2d, c.launches) == (2, 2)
    np.testing.assert_array_equal(x.get(), [[5.0] * 3, [1.0] * 3])
    assert standin.sum(np.arange(3.0)) == 3.0    # cupy.sum is a.sum(...): numpy's on a host array


def test_numpy_functions_dispatch_to_cupy(standin):
    x = standin.arange(6.0).reshape(2, 3)
    for r in (np.sum(x), np.max(x, axis=0), np.sqrt(x), np.concatenate([x, x]),
              np.einsum("ij->", x), np.isfinite(x), np.matmul(x, x.T), np.where(x > 1, x, 0.0),
              np.abs(-x), np.swapaxes(x, 0, 1)):
        assert isinstance(r, standin.ndarray)
    with pytest.raises(TypeError, match="no implementation found"):
        np.nanpercentile(x, 50)                  # CuPy has no nanpercentile
    with pytest.raises(NotImplementedError, match="cupy.cumsum"):
        np.cumsum(x)                             # CuPy has it, the stand-in not (yet)


def test_reductions_and_integer_indices_give_0d_device_arrays(standin):
    x = standin.arange(6.0).reshape(2, 3)
    for r in (x.sum(), x.max(), standin.sum(x), np.max(x), x.mean(), (x > 1).any(),
              x.sum(axis=(0, 1)), x[1, 2], x[0][1], standin.einsum("ij,ij->", x, x)):
        assert isinstance(r, standin.ndarray) and r.shape == (), r
    v = x[1, 2]                                  # a view, as in CuPy
    v[...] = 9.0
    assert float(x[1, 2]) == 9.0


def test_host_reads_work_and_count_one_sync_each(standin, counting):
    x = standin.arange(3.0)
    s = x.sum()
    with counting() as c:
        assert float(s) == 3.0 and int(s) == 3 and bool(s) and s.item() == 3.0
        assert x.tolist() == [0.0, 1.0, 2.0]
        np.testing.assert_array_equal(x.get(), [0.0, 1.0, 2.0])
        np.testing.assert_array_equal(standin.asnumpy(x), [0.0, 1.0, 2.0])
        assert f"{s:.1f}" == "3.0"
    assert (c.syncs, c.launches, c.h2d) == (8, 0, 0)
    with pytest.raises(ValueError, match="truth value of an array with more than one"):
        bool(x)
    with counting() as c:
        x[x > 0.5]                               # a mask reads its count back
    assert (c.syncs, c.launches) == (1, 3)       # comparison, scan, copy


def test_host_to_device_copies_are_counted(standin, counting):
    h = np.arange(4.0)
    with counting() as c:
        a = standin.asarray(h)                   # 1 h2d
        b = standin.asarray(a)                   # same array: nothing
        standin.asarray(a, dtype=standin.float32)   # a cast on the device: 1 launch
        standin.array(a)                         # a copy on the device: 1 launch
        standin.asarray(0.5)                     # 0-d host value: 1 h2d, its fill kernel
        standin.asarray([a[0], a[1]])            # device leaves: concatenated, no h2d
    assert b is a
    assert (c.h2d, c.launches) == (2, 5)
    with pytest.raises(TypeError, match=re.escape(IMPLICIT)):
        standin.asarray([a[0], 1.0])             # mixed leaves go through numpy
    with pytest.raises(ValueError, match="Unsupported dtype"):
        standin.asarray(np.array(["a"]))


def _launches(cp):
    A = cp.arange(60.0).reshape(4, 3, 5)
    B = cp.ones((4, 5, 2))
    x = cp.arange(6.0)
    return [
        ("elementwise", lambda: x * 2.0 + 1.0, 2),
        ("in-place", lambda: x.__iadd__(1.0), 1),
        ("reduction", lambda: A.sum(axis=-1), 1),
        ("views", lambda: (A.T, A.swapaxes(0, 1), A[1:, ::2], A.reshape(12, 5), A[0],
                           cp.broadcast_to(x, (3, 6)), cp.expand_dims(x, 0)), 0),
        ("empty", lambda: cp.empty((3, 3)), 0),
        ("filled creation", lambda: (cp.zeros(3), cp.ones(3), cp.full(3, 2.0), cp.arange(3),
                                     cp.zeros_like(x), cp.ones_like(x)), 6),
        ("astype", lambda: (A.astype(cp.float32), A.astype(A.dtype, copy=False)), 1),
        ("ascontiguousarray", lambda: (cp.ascontiguousarray(A), cp.ascontiguousarray(A.T)), 1),
        ("reshape that copies", lambda: A.swapaxes(1, 2).reshape(4, 15), 1),
        ("batched matmul", lambda: cp.matmul(A, B), 1),
        ("matmul, transposed operand", lambda: cp.matmul(A, cp.ones((4, 2, 5)).swapaxes(1, 2)), 2 + 1),
        ("matmul, broadcast batch", lambda: cp.matmul(A, B[:1]), 4),
        ("2-d matmul, C and F layouts", lambda: (cp.matmul(A[0], B[0]), cp.matmul(A[0].T, A[0])), 2),
        ("2-d matmul, strided operand", lambda: cp.matmul(A[:, 0, :], B[0]), 2),
        ("einsum over rows last", lambda: cp.einsum("...db,...db->...b", A, A), 3),
        ("einsum over contiguous rows", lambda: cp.einsum("...d,...d->...", A, A), 1),
        ("einsum without contraction", lambda: cp.einsum("ij,ij->ij", A[0], A[0]), 1),
        ("concatenate", lambda: cp.concatenate([x, x]), 2),
        ("concatenate, many small", lambda: cp.concatenate([x] * 10), 1),
        ("stack", lambda: cp.stack([x, x, x]), 3),
        ("take", lambda: x[cp.arange(2)], 1 + 1),
        ("tile, repeat", lambda: (cp.tile(x, 2), cp.repeat(x, 2)), 2),
        ("where", lambda: cp.where(x > 1, x, 0.0), 2),
    ]


def test_einsum_that_runs_as_batched_1x1_products_is_named_so(standin, counting):
    """CuPy runs a contraction with nothing free on either side, batched, as a batched
    matrix product with m = n = 1 (cupy/linalg/_einsum.py): the stand-in records it
    under its own operation name, so that a test can find it in a step."""
    cp = standin
    A, B = cp.arange(60.0).reshape(4, 3, 5), cp.ones((4, 5, 2))
    for subscripts, ops, one_by_one in (("...d,...d->...", (A, A), True),
                                        ("...db,...db->...b", (A, A), True),
                                        ("ij,j->i", (A[0], cp.ones(5)), False),
                                        ("bij,bjk->bik", (A, B), False),
                                        ("ij,ij->ij", (A[0], A[0]), False)):
        with counting() as c:
            cp.einsum(subscripts, *ops)
        assert set(c.by_op("launch")) == {"einsum batched 1x1 matmul" if one_by_one else "einsum"}, \
            (subscripts, c.report())


@pytest.mark.parametrize("case", range(23))
def test_launches_follow_the_documented_model(standin, counting, case):
    cases = _launches(standin)
    assert len(cases) == 23
    name, f, want = cases[case]
    with counting() as c:
        f()
    assert c.launches == want, (name, c.report())
    assert c.syncs == 0 and c.h2d == 0, name


def test_events_are_counted_per_call_site(standin, counting):
    x = standin.arange(4.0)
    with counting() as outer:
        la = line() + 1
        y = x * 2
        with counting() as inner:
            lb = line() + 1
            total = float(np.sum(y))             # numpy frames are skipped too
    assert total == 12.0
    assert outer.by_site("launch") == {f"{HERE}:{la}": 1, f"{HERE}:{lb}": 1}
    assert inner.by_site("launch") == {f"{HERE}:{lb}": 1}
    assert outer.by_site("sync") == {f"{HERE}:{lb}": 1}
    assert outer.by_op("launch") == {"multiply": 1, "sum": 1}
    assert f"{HERE}:{la}" in outer.report()
    x_t, means = standin.ones((5, 2)), standin.zeros((3, 2))
    with counting() as c:                        # gmmdiff's own lines are the sites
        denoisers.gmm_x0(x_t, 0.5, means, 0.1)
    assert c.launches > 0 and all(s.startswith("gmmdiff/") for s in c.by_site("launch"))
    standin._standin.reset()
    x + 1
    assert standin._standin.TOTAL.launches == 1


SAXPY = r"""
extern "C" __global__ void saxpy(const float a, const float* x, float* y, const long long n)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"""

ADD2D = r"""
typedef double T;
extern "C" __global__ void add2d(const T* a, const T* b, T* c, int rows, int cols)
{
    const int r = blockIdx.y * blockDim.y + threadIdx.y;
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows && k < cols) c[r * cols + k] = a[r * cols + k] + b[r * cols + k];
}
"""


def test_raw_kernel_runs_every_thread_on_the_host(standin, counting):
    needs_compiler(standin)
    k = standin.RawKernel(SAXPY, "saxpy")
    x = standin.arange(1000, dtype=standin.float32)
    y = standin.ones(1000, dtype=standin.float32)
    with counting() as c:
        k((4,), (256,), (np.float32(2.0), x, y, np.int64(1000)))
    assert (c.launches, c.syncs, c.h2d) == (1, 0, 0)
    np.testing.assert_array_equal(y.get(), 2 * np.arange(1000, dtype=np.float32) + 1)
    a = standin.asarray(np.arange(35.0).reshape(5, 7))
    out = standin.empty((5, 7))
    standin.RawKernel(ADD2D, "add2d")((2, 3), (4, 2), (a, a, out, np.int32(5), np.int32(7)))
    np.testing.assert_array_equal(out.get(), 2 * np.arange(35.0).reshape(5, 7))


def test_raw_kernel_argument_passing_is_cupys(standin):
    needs_compiler(standin)
    from cupy._kernels import StandinWarning
    k = standin.RawKernel(SAXPY, "saxpy")
    x = standin.arange(8, dtype=standin.float32)
    y = standin.zeros(8, dtype=standin.float32)
    with pytest.warns(StandinWarning, match="argument type mismatch"):
        k((1,), (8,), (2.0, x, y, 8))            # a double for a float: the low half, 0.0
    np.testing.assert_array_equal(y.get(), 0.0)
    with pytest.warns(StandinWarning, match="non-contiguous array passed as a raw pointer"):
        k((1,), (4,), (np.float32(1.0), x[::2], y[:4], np.int64(4)))
    np.testing.assert_array_equal(y.get()[:4], [0.0, 1.0, 2.0, 3.0])   # x[0:4], not x[::2]
    a = standin.ones((2, 3))
    out = standin.empty((2, 3))
    with pytest.warns(StandinWarning, match="argument type mismatch"):   # int64 for int: works
        standin.RawKernel(ADD2D, "add2d")((1,), (4, 2), (a, a, out, 2, 3))   # on little-endian
    np.testing.assert_array_equal(out.get(), 2.0)
    with pytest.raises(TypeError, match="Only numpy.ndarrays of size one"):
        k((1,), (8,), (np.float32(1.0), np.ones(8, np.float32), y, np.int64(8)))
    with pytest.raises(TypeError, match="is a pointer"):
        k((1,), (8,), (np.float32(1.0), 3, y, np.int64(8)))


def test_raw_kernels_the_host_cannot_run_are_refused(standin, monkeypatch):
    from cupy import _kernels
    from cupy.cuda.runtime import CUDARuntimeError
    shared = SAXPY.replace("if (i < n)", "__shared__ float s[256]; __syncthreads(); if (i < n)")
    x = standin.ones(4, dtype=standin.float32)
    with pytest.raises(NotImplementedError, match="cooperate"):
        standin.RawKernel(shared, "saxpy")((1,), (4,), (np.float32(1), x, x, np.int64(4)))
    with pytest.raises(CUDARuntimeError, match="named symbol not found"):
        standin.RawKernel(SAXPY.replace('extern "C" ', ""), "saxpy")((1,), (4,), ())
    monkeypatch.setattr(_kernels, "compiler", lambda: None)
    with pytest.raises(RuntimeError, match="host C\\+\\+ compiler"):
        standin.RawKernel(SAXPY + "\n// new source", "saxpy")((1,), (4,), ())


def test_elementwise_kernel_and_fuse(standin, counting):
    needs_compiler(standin)
    axpy = standin.ElementwiseKernel("T x, T y, float64 a", "T z", "z = a * x + y", "axpy")
    x = standin.arange(6.0).reshape(2, 3)
    y = standin.arange(3.0)
    with counting() as c:
        z = axpy(x, y, 2.0)                      # broadcast, output allocated
    assert c.launches == 1 and z.shape == (2, 3) and z.dtype == np.float64
    np.testing.assert_array_equal(z.get(), 2 * np.arange(6.0).reshape(2, 3) + np.arange(3.0))
    ema = standin.ElementwiseKernel("T g, float64 b", "T m", "m = b * m + (1 - b) * g", "ema")
    m = standin.ones(3, dtype=standin.float32)
    ema(standin.zeros(3, dtype=standin.float32), 0.25, m)   # the output read and written in place
    np.testing.assert_array_equal(m.get(), 0.25)
    with pytest.raises(TypeError, match="Type is mismatched"):
        axpy(x, y.astype(standin.float32), 2.0)

    @standin.fuse()
    def f(a, b):
        return a * b + 1.0

    with counting() as c:
        r = f(x, x)
    assert c.launches == 1
    np.testing.assert_array_equal(r.get(), np.arange(6.0).reshape(2, 3) ** 2 + 1)
    assert isinstance(f(np.ones(2), 2.0), np.ndarray)      # host arguments: plain Python


def test_cuda_runtime_devices_streams_pool_and_benchmark(standin, counting, monkeypatch):
    rt = standin.cuda.runtime
    assert rt.getDeviceCount() == 1
    for vis, n in (("", 0), ("0", 1), ("1", 0)):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", vis)
        assert rt.getDeviceCount() == n, vis
    monkeypatch.setenv("CUPY_STANDIN_DEVICES", "2")
    for vis, n in (("1", 1), ("0,1", 2), ("1,0,5", 2)):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", vis)
        assert rt.getDeviceCount() == n, vis
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.delenv("CUPY_STANDIN_DEVICES")
    props = rt.getDeviceProperties(0)
    assert isinstance(props["name"], bytes) and props["totalGlobalMem"] > 0
    with pytest.raises(rt.CUDARuntimeError, match="invalid device ordinal"):
        rt.getDeviceProperties(1)
    with counting() as c:
        with standin.cuda.Device(0) as dev:
            dev.synchronize()
        with standin.cuda.Stream(non_blocking=True) as s:
            standin.ones(3)
        s.synchronize()
    assert (c.syncs, c.launches) == (2, 1)
    pool = standin.get_default_memory_pool()
    import gc
    gc.collect()
    before = pool.used_bytes()
    a = standin.zeros(1000)
    assert pool.used_bytes() == before + 8192 and pool.total_bytes() >= pool.used_bytes()
    del a
    assert pool.used_bytes() == before
    from cupyx.profiler import benchmark
    res = benchmark(lambda: standin.ones(3) + 1, n_repeat=3, n_warmup=1)
    assert res.cpu_times.shape == (3,) and res.gpu_times.shape == (1, 3) and "GPU-0" in str(res)


# ====================================================== 2. gmmdiff on the device

@pytest.fixture(scope="module")
def problem():
    r = np.random.default_rng(7)
    return {"X": r.standard_normal((12, 3)), "means": r.standard_normal((4, 3)),
            "t": r.uniform(0.05, 0.95, 12), "eps": r.standard_normal((12, 3)),
            "grid": time_grid(6), "A": r.uniform(size=(3, 9)), "Mu": r.standard_normal((3, 2)),
            "Y": r.standard_normal((5, 2, 9)), "tY": r.uniform(0.1, 0.9, 5)}


@pytest.mark.parametrize("target", ["x0", "eps", "v", "score"])
def test_denoisers_on_device(cp, problem, target):
    X, t, means = problem["X"], problem["t"], problem["means"]
    got = denoisers.gmm_denoise(cp.asarray(X), cp.asarray(t), cp.asarray(means), 0.3, target=target)
    want = denoisers.gmm_denoise(X, t, means, 0.3, target=target)
    assert_close(got, want, rtol=1e-12, atol=1e-12, xp=cp, dtype=np.float64)
    X32, m32 = X.astype(np.float32), means.astype(np.float32)
    got = denoisers.gmm_x0(cp.asarray(X32), 0.4, cp.asarray(m32), cp.asarray(0.3))
    assert_close(got, denoisers.gmm_x0(X32, 0.4, m32, 0.3), rtol=1e-5, atol=1e-6, xp=cp,
                 dtype=np.float32)
    got = denoisers.convert(cp.asarray(X), cp.asarray(X), cp.asarray(t), target=target)
    assert_close(got, denoisers.convert(X, X, t, target=target), rtol=1e-12, atol=1e-12, xp=cp)


def test_losses_on_device(cp, problem):
    X, t, means, eps, grid = (problem[k] for k in ("X", "t", "means", "eps", "grid"))
    d = cp.asarray
    got = losses.loss_and_grad(d(means), d(0.4), d(X), d(t), d(eps), target="v")
    for g, w in zip(got, losses.loss_and_grad(means, 0.4, X, t, eps, target="v")):
        assert_close(g, w, rtol=1e-11, atol=1e-13, xp=cp, dtype=np.float64)
    assert_close(losses.denoising_loss(d(means), 0.16, d(X), d(t), d(eps)),
                 losses.denoising_loss(means, 0.16, X, t, eps), rtol=1e-12, xp=cp)
    want = losses.per_time_losses(means, 0.1, X, grid, n_noise=3, seed=2)
    for times in (grid, d(grid)):                # a device grid crosses to the host once
        got = losses.per_time_losses(d(means), 0.1, d(X), times, n_noise=3, seed=2)
        assert_close(got, want, rtol=1e-12, xp=cp, dtype=np.float64)
    mc = losses.monte_carlo_per_time(lambda x0, e, a, s, w: (x0 * e).sum() / x0.shape[0], d(X),
                                     d(grid), n_noise=2, seed=1)
    assert_close(mc, losses.monte_carlo_per_time(lambda x0, e, a, s, w: (x0 * e).sum() / x0.shape[0],
                                                 X, grid, n_noise=2, seed=1), rtol=1e-12, xp=cp)


def test_templates_on_device(cp, problem):
    A, Mu, Y, tY = (problem[k] for k in ("A", "Mu", "Y", "tY"))
    d = cp.asarray
    got = templates.template_denoise(d(Y), d(tY), d(A), d(Mu), 0.5, target="eps")
    assert_close(got, templates.template_denoise(Y, tY, A, Mu, 0.5, target="eps"), rtol=1e-12,
                 atol=1e-12, xp=cp, dtype=np.float64)
    got = templates.loss_and_grad(d(A), d(Mu), 0.5, d(Y), d(tY), d(Y[::-1].copy()))
    for g, w in zip(got, templates.loss_and_grad(A, Mu, 0.5, Y, tY, Y[::-1].copy())):
        assert_close(g, w, rtol=1e-11, atol=1e-12, xp=cp)


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_samplers_on_device(cp, problem, method):
    means, X, grid = problem["means"], problem["X"], problem["grid"]
    want = sampling.sample(means, 0.1, grid, X, method=method, rng=np.random.default_rng(3))
    for g in (grid, cp.asarray(grid)):
        got = sampling.sample(cp.asarray(means), 0.1, g, cp.asarray(X), method=method,
                              rng=np.random.default_rng(3))
        assert_close(got, want, rtol=1e-11, atol=1e-12, xp=cp, dtype=np.float64)
    got = sampling.sample_with(lambda x, t: 0.5 * x, cp.asarray(grid), cp.asarray(X))
    assert_close(got, sampling.sample_with(lambda x, t: 0.5 * x, grid, X), rtol=1e-12, xp=cp)


def test_transition_detection_of_device_curves(cp):
    M, r = np.array([10.0, 20, 30, 40]), np.array([0.0, 0.3, 0.7, 1.0])
    lo, hi = np.array([0.0, 0.1, 0.5, 0.9]), np.array([0.2, 0.5, 0.9, 1.0])
    d = cp.asarray
    assert transition.detect(d(M), d(r), d(lo), d(hi)) == transition.detect(M, r, lo, hi)
    assert transition.crossing(d(M), d(r), 0.5) == transition.crossing(M, r, 0.5)


def test_theory_array_functions_on_device(cp, problem):
    grid, X = problem["grid"], problem["X"]
    g = cp.asarray(grid)
    assert_close(theory.generalizing_excess_loss(g, 3, 1.0),
                 theory.generalizing_excess_loss(grid, 3, 1.0), rtol=1e-13, xp=cp)
    for method, kw in (("simple", {}), ("nearest", {"X": cp.asarray(X), "subset": np.arange(5)}),
                       ("expected", {"K": 2})):
        got = theory.partial_memorizing_excess_loss(g, 3, 1.0, 5, 12, method=method, **kw)
        kw_host = dict(kw, X=X) if "X" in kw else kw
        want = theory.partial_memorizing_excess_loss(grid, 3, 1.0, 5, 12, method=method, **kw_host)
        assert_close(got, want, rtol=1e-12, xp=cp)


def test_simple_transition_ratio_of_a_device_grid(cp, problem):
    grid = problem["grid"]
    assert theory.simple_transition_ratio(cp.asarray(grid), 3, 1.0) == pytest.approx(
        theory.simple_transition_ratio(grid, 3, 1.0), rel=1e-12)


@pytest.mark.parametrize("method", ["simple", "expected"])
def test_predict_transition_of_a_device_grid(cp, problem, method):
    grid = problem["grid"]
    got = theory.predict_transition(12, 3, 2, times=cp.asarray(grid), method=method)
    assert got == pytest.approx(theory.predict_transition(12, 3, 2, times=grid, method=method), rel=1e-12)


def test_compare_with_monte_carlo_of_a_device_grid(cp, problem):
    grid = problem["grid"]
    ds_h, ds_d = data.make_dataset(3, 2, 12, seed=1), data.make_dataset(3, 2, 12, seed=1, xp=cp)
    got = theory.compare_with_monte_carlo(ds_d, 5, cp.asarray(grid), n_noise=2)
    want = theory.compare_with_monte_carlo(ds_h, 5, grid, n_noise=2)
    for k, v in want.items():
        np.testing.assert_allclose(to_host(got[k]), v, rtol=1e-10, err_msg=k)


def test_data_metrics_rng_and_optimizer_on_device(cp, problem):
    host, dev = data.make_dataset(3, 2, 12, seed=4), data.make_dataset(3, 2, 12, seed=4, xp=cp)
    for k in ("X", "labels", "X_test", "labels_test"):
        assert array_namespace(getattr(dev, k)) is cp
        np.testing.assert_array_equal(to_host(getattr(dev, k)), getattr(host, k))
    X, means = problem["X"], problem["means"]
    assert metrics.memorization(cp.asarray(means), cp.asarray(X)) == metrics.memorization(means, X)
    assert metrics.learned_means_stats(cp.asarray(means), dev.mixture.means, dev.X) == \
        metrics.learned_means_stats(means, host.mixture.means, host.X)
    assert metrics.wasserstein2(cp.asarray(X), cp.asarray(X[::-1])) == pytest.approx(
        metrics.wasserstein2(X, X[::-1]), rel=1e-12)
    key = rng.stream_key(5, 9)
    np.testing.assert_array_equal(to_host(rng.integers(key, 26, (40, 3), cp)), rng.integers(key, 26, (40, 3)))
    np.testing.assert_array_equal(to_host(rng.uniforms(key, 101, cp)), rng.uniforms(key, 101))
    normals = rng.normals(key, (33, 3), cp)
    if getattr(cp, "STANDIN", False):            # the stand-in's libm is numpy's: bit for bit
        np.testing.assert_array_equal(to_host(normals), rng.normals(key, (33, 3)))
    np.testing.assert_allclose(to_host(normals), rng.normals(key, (33, 3)), rtol=1e-14, atol=1e-15)
    r = np.random.default_rng(1)
    params = {"means": r.standard_normal((2, 4, 3)), "std": np.array([0.3, 0.4])}
    grads = {k: r.standard_normal(v.shape) for k, v in params.items()}
    dp, dg = ({k: cp.asarray(v) for k, v in p.items()} for p in (params, grads))
    cfg = optim.OptimConfig(clip_norm=1.0)
    (p1, s1), (p0, s0) = (optim.step(dp, dg, optim.init_state(dp), 1e-2, cfg),
                          optim.step(params, grads, optim.init_state(params), 1e-2, cfg))
    for k in p0:
        assert_close(p1[k], p0[k], rtol=1e-13, xp=cp)
    assert s1["count"] == s0["count"] == 1


# ================================================================= 3. training

def small_config(model="gmm", dtype="float64", steps=20, **kw):
    from gmmdiff.training.config import TrainConfig
    kw.setdefault("lr_peak", 1e-2)
    return TrainConfig(dim=4, components=2, samples=10, steps=steps, noise_draws=3,
                       model=model, dtype=dtype, image_size=4, eval_samples=10,
                       eval_noise_draws=2, **kw)


@pytest.mark.parametrize("model, dtype", [("gmm", "float64"), ("gmm", "float32"),
                                          ("templates", "float64"), ("templates", "float32")])
def test_training_on_device_equals_numpy_with_the_same_draws(cp, model, dtype):
    from gmmdiff.training.loop import train
    from gmmdiff.training.state import initial_state
    cfg = small_config(model, dtype)
    sizes = [3, 10]
    ref_ds = cfg.dataset(np)
    ref = train(ref_ds, initial_state(ref_ds, sizes, cfg, np), cfg, np, noise_source="hash")
    ds = cfg.dataset(cp)
    got = train(ds, initial_state(ds, sizes, cfg, cp), cfg, cp, noise_source="hash")
    for k, v in ref.params.items():
        # the device draws its normals in a kernel (the C library's log1p, cos, sin; on
        # the stand-in the host's) and numpy with its own: equal to the last bits
        assert array_namespace(got.params[k]) is cp and got.params[k].dtype == v.dtype
        rtol = 1e-10 if dtype == "float64" else 2e-5
        np.testing.assert_allclose(to_host(got.params[k]), v, rtol=rtol, atol=rtol, err_msg=k)
    # float32 losses: numpy's GMM loss (gmmdiff.engine.blocked) and the device's array
    # program (gmmdiff.model.losses) both compute x0hat - x0 in float32's form without
    # cancellation, arranged differently; here within 1.3e-6 and 1.7e-6 of the float64
    # run's, 9.7e-7 apart: 1e-5 (4e-5 while the device kept the reference's form, 2.3e-5)
    np.testing.assert_allclose(np.array(got.losses), np.array(ref.losses),
                               rtol=1e-10 if dtype == "float64" else 1e-5)


@pytest.mark.parametrize("optimizer, batch_size, fused", [("sgd", 4, False), ("momentum", None, False),
                                                        ("momentum", 4, True), ("adam", 4, False)])
def test_descent_and_minibatches_on_device_equal_numpy(cp, optimizer, batch_size, fused):
    """Gradient descent, momentum and minibatches on the device (the array program; with
    --fused-kernels the loss's fused kernels and the descent step's array code) give
    numpy's parameters with the same draws."""
    if fused:
        needs_compiler(cp)
    from gmmdiff.training.loop import train
    from gmmdiff.training.state import initial_state
    cfg = small_config(steps=25, optimizer=optimizer, batch_size=batch_size, init="prior",
                       lr_peak=1e-3 if optimizer != "adam" else 1e-2)
    sizes = [3, 10]
    ref_ds = cfg.dataset(np)
    ref = train(ref_ds, initial_state(ref_ds, sizes, cfg, np), cfg, np, noise_source="hash")
    ds = cfg.dataset(cp)
    got = train(ds, initial_state(ds, sizes, cfg, cp), cfg, cp, noise_source="hash", fused=fused)
    assert sorted(got.opt) == sorted(ref.opt)
    for k, v in ref.params.items():
        assert array_namespace(got.params[k]) is cp
        np.testing.assert_allclose(to_host(got.params[k]), v, rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 2e-5)])
def test_fused_training_on_device_equals_the_numpy_array_program(cp, dtype, rtol):
    needs_compiler(cp)
    from gmmdiff.training.loop import train
    from gmmdiff.training.state import initial_state
    cfg = small_config(dtype=dtype, steps=30)
    sizes = [2, 5, 10]
    # the reference is float64; in float32 the fused path computes float32's forms
    # (gmmdiff.model.losses), as the float32 array program does (measured after 30
    # steps, of each parameter's largest entry: std 6.6e-6 and means 3.5e-7 from
    # float64, both paths; with the reference's forms the fused path was 1.7e-5 and
    # 1.3e-6 off, the array program 5.1e-6 and 2.5e-5)
    ref_cfg = small_config(steps=30)
    ref_ds = ref_cfg.dataset(np)
    ref = train(ref_ds, initial_state(ref_ds, sizes, ref_cfg, np), ref_cfg, np, noise_source="hash",
                bucket_overhead=0)
    ds = cfg.dataset(cp)
    got = train(ds, initial_state(ds, sizes, cfg, cp), cfg, cp, noise_source="hash",
                bucket_overhead=0, fused=True)
    for k, v in ref.params.items():
        np.testing.assert_allclose(to_host(got.params[k]), v, rtol=rtol, atol=rtol * np.abs(v).max(),
                                   err_msg=k)


@pytest.mark.parametrize("model", ["gmm", "templates"])
def test_run_on_device_writes_results_with_the_numpy_baselines(cp, tmp_path, model):
    from gmmdiff.experiments.runs import run
    cfg = small_config(model)
    rows = run(cfg, [3, 10], str(tmp_path / "dev"), cp)
    ref = run(cfg, [3, 10], str(tmp_path / "host"), np)
    ident = json.loads((tmp_path / "dev" / "config.json").read_text())["identity"]
    assert ident["backend"] == "cupy" and [r["M"] for r in rows] == [3, 10]
    for got, want in zip(rows, ref):             # baselines use host noise: equal
        for k in ("generalizing_train", "memorizing_test"):
            np.testing.assert_allclose(got["per_time_losses"][k], want["per_time_losses"][k],
                                       rtol=1e-10, err_msg=k)
        assert 0 <= got["memorization"]["ratio"] <= 1 and np.isfinite(got["final_train_loss"])


def load_script(name):
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), os.path.join(ROOT, "bin", name))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module.main


def test_train_script_on_cupy(cp, tmp_path):
    needs_compiler(cp)
    args = ["--dim", "3", "--components", "2", "--samples", "8", "--model-sizes", "2,8",
            "--steps", "30", "--noise-draws", "2", "--eval-samples", "10", "--quiet",
            "--backend", "cupy"]
    for extra, name in (([], "plain"), (["--fused-kernels", "--dtype", "float32"], "fused")):
        result = CliRunner().invoke(load_script("gmmdiff-train"), args + extra + ["--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert [ln.split()[0] for ln in result.output.splitlines()[2:4]] == ["2", "8"]
        assert json.loads((tmp_path / name / "index.json").read_text()) == {"complete": [2, 8]}


SWEEP = ["-N", "8", "-d", "3", "-K", "2", "--seeds", "0,1", "--coarse", "4", "--refine", "0",
         "--steps", "300", "--noise-draws", "2", "--target", "x0", "--lr", "3e-2",
         "--eval-samples", "20", "--eval-noise-draws", "2", "--eval-steps", "log:4", "--quiet",
         "--backend", "cupy"]


@pytest.fixture(scope="module")
def cupy_sweep(cp, tmp_path_factory):
    out = tmp_path_factory.mktemp("cupy_sweep") / "sw"
    # two settings (K = 2, 3) x two seeds: the fit holds out whole settings and needs a
    # whole-curve M_pt inside the sizes in each (at this tiny shape one seed of each has)
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), SWEEP + ["-K", "2,3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "training N8-d3-K2-s0, N8-d3-K2-s1, N8-d3-K3-s0, N8-d3-K3-s1" in result.output  # one batch
    return out


def test_sweep_summary_fit_and_plot_on_cupy(cupy_sweep):
    out = cupy_sweep
    assert json.loads((out / "sweep.json").read_text())["identity"]["backend"] == "cupy"
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), ["--summary", str(out)])
    assert result.exit_code == 0 and "0 missing or incomplete" in result.output, result.output
    lines = (out / "summary.csv").read_text().splitlines()
    rows = [dict(zip(lines[0].split(","), ln.split(","))) for ln in lines[1:]]
    # the two-point M_pt always exists; the whole-curve fit may put it outside the sizes
    assert len(rows) == 4 and all(0 < float(r["M_pt_two_point"] or r["start_over_N"]) <= 1
                                  for r in rows), rows
    assert sum(r["status"] == "ok" for r in rows) >= 2, rows
    result = CliRunner().invoke(load_script("gmmdiff-predict"), ["--fit", str(out), "--source", "mc"])
    assert result.exit_code == 0 and "trivial" in result.output, result.output
    assert (out / "fit_mc.json").exists()
    result = CliRunner().invoke(load_script("gmmdiff-plot"), [str(out)])
    assert result.exit_code == 0, result.output
    for name in ("fig1_losses_vs_approximations.png", "fig3_mc.png", "fig7_seeds.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


def test_sweep_workers_per_device_on_cupy(cp, tmp_path):
    """--devices 0,1: one worker process per device, each on its own shard; the
    workers import cupy through PYTHONPATH (the stand-in: two simulated devices)."""
    if not getattr(cp, "STANDIN", False) and cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    out = tmp_path / "workers"
    env = dict(os.environ, CUPY_STANDIN_DEVICES="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), ROOT) if p)
    quick = [a if a not in ("300", "4") else {"300": "40", "4": "2"}[a] for a in SWEEP]
    cmd = [sys.executable, os.path.join(ROOT, "bin", "gmmdiff-sweep"), *quick, "--devices", "0,1",
           "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = CliRunner().invoke(load_script("gmmdiff-sweep"), ["--summary", str(out)])
    assert "2 configurations, 0 missing or incomplete" in result.output, result.output
    for seed in (0, 1):
        ident = json.loads((out / f"N8-d3-K2-s{seed}" / "config.json").read_text())["identity"]
        assert ident["backend"] == "cupy"


# ======================================================== 4. launch budgets

@pytest.fixture(scope="module")
def bench():
    return load_benchmark()


@pytest.mark.parametrize("model, dtype, fused", [("gmm", "float64", False), ("gmm", "float64", True),
                                                 ("gmm", "float32", True), ("templates", "float64", False)])
def test_launches_per_step_and_chunk_do_not_grow_with_the_models(standin, bench, model, dtype,
                                                                 fused):
    """Counted by the stand-in between log points: no sync and no host-to-device copy
    per step; launches per step and per draw chunk the same for 2 and 20 models of the
    same shapes; the fused path within 60 launches per step; draws within 4 launches per
    chunk (chunks of 8 steps here)."""
    needs_compiler(standin)
    from gmmdiff.training.config import TrainConfig
    cfg = TrainConfig(dim=5, components=2, samples=16, noise_draws=3, model=model, dtype=dtype,
                      image_size=4)
    two = bench.launch_counts(standin, cfg, [8, 16], fused)
    twenty = bench.launch_counts(standin, cfg, [8, 16], fused, seeds=10)
    for S, per, sites in (two, twenty):
        assert per["sync"] == (0, 0) and per["h2d"] == (0, 0), per
        assert per["launch"][1] <= 4, (per, sites)
        if fused:
            assert per["launch"][0] <= 60, sorted(sites.items(), key=lambda kv: -kv[1])[:10]
    assert two[1]["launch"] == twenty[1]["launch"], (two[1], twenty[1])


def test_device_draw_chunks_follow_free_memory(standin, monkeypatch):
    """At the paper's shapes (N = 200, 100 draws, d = 50) x 20 sizes, an 80 GB device
    draws every 8 steps or less often; a device short of memory draws every step."""
    from gmmdiff.training.draws import device_chunk_steps
    per_step = 200 * 100 * 50 + 200 * 100
    monkeypatch.setattr(standin.cuda.runtime, "memGetInfo", lambda: (80 * 10**9, 80 * 10**9))
    assert device_chunk_steps(20, per_step, standin) >= 8
    monkeypatch.setattr(standin.cuda.runtime, "memGetInfo", lambda: (10**8, 80 * 10**9))
    assert device_chunk_steps(20, per_step, standin) == 1


def test_evaluation_along_training_syncs_only_at_its_steps(standin):
    """With the family's tracking on (the run protocol's on_eval), the stand-in counts
    syncs inside the evaluations only: none in the steps between them (log points
    beyond the end), whatever the number of evaluations."""
    from gmmdiff.experiments.runs import _tracker
    from gmmdiff.training.config import TrainConfig
    from gmmdiff.training.loop import train
    from gmmdiff.training.state import initial_state
    cfg = TrainConfig(dim=3, components=2, samples=8, steps=12, noise_draws=2, eval_samples=16,
                      eval_noise_draws=2, track_noise_draws=1, eval_steps="0,5")
    ds = cfg.dataset(standin)
    for eval_steps in ("none", "0,5"):
        c_cfg = TrainConfig(**{**cfg.__dict__, "eval_steps": eval_steps})
        state = initial_state(ds, [2, 8], c_cfg, standin)
        track = _tracker(c_cfg.family(), state, [c_cfg], [ds], standin)
        inside, calls = [0], []
        with standin._standin.counting() as c:
            def on_eval(step, params):
                before = c.total("sync")
                out = track(step, params)
                inside[0] += c.total("sync") - before
                calls.append(step)
                return out
            train(ds, state, c_cfg, standin, log_every=10**9,
                  on_eval=on_eval if eval_steps != "none" else None)
        outside = c.total("sync") - inside[0]
        if eval_steps == "none":
            baseline = outside                      # the loop's own (the last step's)
            assert calls == []
        else:
            assert calls == [0, 5, 11, 12] and inside[0] > 0
            # and one per evaluation in the loop: its check that no model diverged
            # before the evaluation reads the parameters
            assert outside == baseline + len(calls), (outside, baseline)
