"""The fused CUDA kernels of gmmdiff.kernels.

On a machine with a GPU they run through cupy.RawKernel against the float64 array
program. Everywhere else the very same kernel bodies are compiled for the host with a
C++ compiler (kernels.emulation_source: every thread of the grid runs in turn, exact
for kernels without shared memory or synchronization), so their arithmetic is checked
on CPU-only machines too; that path skips cleanly without a compiler. The cupy cases
also run there, on the test suite's CuPy stand-in (tests/cupy_standin), whose
RawKernel builds the CUDA source with the same host compiler.
"""
import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from gmmdiff import kernels
from gmmdiff import rng as counter_rng
from gmmdiff.denoisers import LOGIT_FLOOR, _posterior
from gmmdiff.losses import _batched_loss_and_grad
from gmmdiff.process import coefficients, loss_scale

CXX = shutil.which("g++") or shutil.which("c++")


def skip_unless_kernels_run(xp):
    """The cupy tests need cupy: CuPy on a GPU, or the test suite's CuPy stand-in, which
    runs RawKernels through a host C++ compiler."""
    if xp is np:
        pytest.skip("the fused kernels run on cupy only")
    if getattr(xp, "STANDIN", False) and xp._kernels.compiler() is None:
        pytest.skip("the CuPy stand-in runs raw kernels with a host C++ compiler; none found")


class Emulated:
    """kernels.softmax_columns / weigh_columns on numpy arrays via the host build."""

    def __init__(self, lib):
        self.lib = lib

    @staticmethod
    def _p(a, dtype):
        assert a.dtype == dtype and a.flags.c_contiguous, (a.dtype, a.flags)
        return a.ctypes.data_as(ctypes.c_void_p)

    def _grid(self, J, B):
        return ctypes.c_uint((J * B + kernels.BLOCK - 1) // kernels.BLOCK), ctypes.c_uint(kernels.BLOCK)

    def counter_normals(self, key, n):
        out = np.empty(n)
        f = self.lib[np.dtype(np.float64)].launch_gmm_counter_normals
        f(*self._grid(1, (n + 1) // 2), ctypes.c_ulonglong(key), ctypes.c_longlong(n),
          self._p(out, np.float64))
        return out

    def softmax_columns(self, S, W, sizes):
        J, M, B = S.shape
        f = getattr(self.lib[W.dtype], "launch_gmm_softmax_columns")
        f(*self._grid(J, B), ctypes.c_longlong(J), ctypes.c_longlong(M), ctypes.c_longlong(B),
          self._p(sizes, np.int32), ctypes.c_double(LOGIT_FLOOR), self._p(S, np.float64),
          self._p(W, W.dtype))

    def weigh_columns(self, G, W, S, rmbar, sizes, GS):
        J, M, B = G.shape
        f = getattr(self.lib[G.dtype], "launch_gmm_weigh_columns")
        f(*self._grid(J, B), ctypes.c_longlong(J), ctypes.c_longlong(M), ctypes.c_longlong(B),
          self._p(sizes, np.int32), self._p(W, G.dtype), self._p(S, np.float64),
          self._p(rmbar, G.dtype), self._p(G, G.dtype), self._p(GS, np.float64))


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    if CXX is None:
        pytest.skip("no C++ compiler to build the kernel emulation")
    libs = {}
    for dtype, ctype in ((np.dtype(np.float64), "double"), (np.dtype(np.float32), "float")):
        d = tmp_path_factory.mktemp(f"kernels_{ctype}")
        src, so = d / "k.cpp", d / "k.so"
        src.write_text(kernels.emulation_source(ctype=ctype))
        subprocess.run([CXX, "-O1", "-shared", "-fPIC", "-o", str(so), str(src)], check=True,
                       capture_output=True)
        libs[dtype] = ctypes.CDLL(str(so))
    return Emulated(libs)


@pytest.fixture
def use_emulation(emulated, monkeypatch):
    """Route the fused path of the numpy array program through the host build."""
    monkeypatch.setattr(kernels, "softmax_columns", emulated.softmax_columns)
    monkeypatch.setattr(kernels, "weigh_columns", emulated.weigh_columns)


def packed_problem(seed=0, sizes=(3, 7, 1, 5), d=4, B=37, dtype=np.float64):
    rng = np.random.default_rng(seed)
    J, Mmax = len(sizes), max(sizes)
    means = 3.0 * rng.standard_normal((J, Mmax, d))     # padding holds junk: it must not count
    mask = np.zeros((J, Mmax), dtype=bool)
    for j, M in enumerate(sizes):
        means[j, :M] = rng.standard_normal((M, d))
        mask[j, :M] = True
    std = np.array([0.3, 1e-3, 1.0, 0.05][:J])
    x0 = rng.standard_normal((d, B))
    eps = rng.standard_normal((J, d, B))
    t = rng.uniform(0.001, 0.999, (J, B))
    c = coefficients(t)
    return (means.astype(dtype), std.astype(dtype), x0.astype(dtype), eps.astype(dtype),
            c.alpha, c.sigma, loss_scale(t), mask)


def test_kernel_sources_declare_every_parameter_once():
    for k in kernels.KERNELS:
        names = [n for _, n in k.params]
        assert len(set(names)) == len(names)
        for ctype in ("double", "float"):
            src = k.source(ctype)
            assert f"typedef {ctype} T;" in src and f"void {k.name}(" in src


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_emulated_counter_normals_equal_the_array_program(emulated, n):
    key = counter_rng.stream_key(3, 11, n)
    want = counter_rng.normals(key, (n,))
    got = emulated.counter_normals(key, n)
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=1e-300)   # same libm: ~bitwise


def test_emulated_softmax_equals_array_program(use_emulation):
    means, std, x0, eps, alpha, sigma, wt, mask = packed_problem()
    x_t = alpha[:, None, :] * x0 + sigma[:, None, :] * eps
    var = std ** 2
    W0, mb0, S0, v0 = _posterior(x_t, alpha, sigma, means, var, np, mask)
    W1, mb1, S1, v1 = _posterior(x_t, alpha, sigma, means, var, np, mask,
                                 counts=kernels.component_counts(mask, means.shape, np))
    np.testing.assert_allclose(W1, W0, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(mb1, mb0, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(W1[~mask], 0.0)                        # padding exactly 0
    np.testing.assert_allclose(S1[mask], S0[mask], rtol=1e-13, atol=1e-12)
    assert np.all(S1[mask] >= LOGIT_FLOOR) and np.all(S1[~mask] == 0.0)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-11), (np.float32, 2e-5)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_emulated_fused_loss_and_gradients_equal_array_program(use_emulation, dtype, rtol, seed):
    args = packed_problem(seed, dtype=dtype)
    ref = _batched_loss_and_grad(*args[:7], np, args[7])
    got = _batched_loss_and_grad(*args[:7], np, args[7], fused=True)
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype
        scale = np.abs(r).max()
        np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * scale)
    np.testing.assert_array_equal(got[1][~args[7]], 0.0)                 # no gradient on padding


def test_emulated_fused_gradients_equal_finite_differences(use_emulation):
    """Directional derivatives of the fused loss (means and std together) against
    Richardson-extrapolated central differences of the same fused loss."""
    means, std, x0, eps, alpha, sigma, wt, mask = packed_problem(3)
    rng = np.random.default_rng(4)
    dm = rng.standard_normal(means.shape) * mask[..., None]
    ds = rng.standard_normal(std.shape) * std

    def loss(h):
        return _batched_loss_and_grad(means + h * dm, std + h * ds, x0, eps, alpha, sigma, wt,
                                      np, mask, grad=False, fused=True)[0]

    _, gm, gs = _batched_loss_and_grad(means, std, x0, eps, alpha, sigma, wt, np, mask, fused=True)
    want = np.einsum("jmd,jmd->j", gm, dm) + gs * ds

    def central(h):
        return (loss(h) - loss(-h)) / (2 * h)

    h = 1e-4
    fd = (4 * central(h / 2) - central(h)) / 3
    err = np.abs(central(h / 2) - central(h))
    np.testing.assert_array_less(np.abs(want - fd), 1e-6 * np.abs(fd) + 4 * err + 1e-12)
    # and a gradient off by 1e-4 in one model would be caught
    bad = want.copy()
    bad[1] *= 1 + 1e-4
    assert np.any(np.abs(bad - fd) >= 1e-6 * np.abs(fd) + 4 * err + 1e-12)


@pytest.mark.gpu
def test_cupy_fused_equals_numpy_float64(xp):
    skip_unless_kernels_run(xp)
    args = packed_problem(5, sizes=(20, 200, 77), d=50, B=2000)
    ref = _batched_loss_and_grad(*args[:7], np, args[7])
    dev = [xp.asarray(a) for a in args]
    got = _batched_loss_and_grad(*dev[:7], xp, dev[7], fused=True)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(xp.asnumpy(g), r, rtol=1e-10, atol=1e-10 * np.abs(r).max())


def test_emulated_fused_training_equals_array_program(use_emulation, monkeypatch):
    """The whole training loop (size buckets, masks, optimizer) with the fused path,
    its kernels built for the host, against the array program."""
    import gmmdiff.train as tr
    monkeypatch.setattr(tr, "check_fused", lambda fused, cfg, xp: None)   # numpy allowed here
    cfg = tr.TrainConfig(dim=5, components=2, samples=16, steps=60, noise_draws=3, lr_peak=1e-2)
    sizes = [2, 5, 11, 16]
    ds = cfg.dataset(np)
    ref = tr.train(ds, tr.initial_state(ds, sizes, cfg, np), cfg, np, bucket_overhead=500)
    got = tr.train(ds, tr.initial_state(ds, sizes, cfg, np), cfg, np, bucket_overhead=500,
                   fused=True)
    np.testing.assert_allclose(got.means, ref.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.std, ref.std, rtol=1e-10)
    assert len(tr.plan_buckets(sizes, 16 * 3, 500)) == 2                 # two buckets, each padded


@pytest.mark.gpu
def test_cupy_fused_training_equals_numpy(xp):
    """Training with the fused kernels on cupy against the numpy array program with the
    same (hash) draws, float64, several buckets of padded sizes."""
    skip_unless_kernels_run(xp)
    from gmmdiff.train import TrainConfig, initial_state, train
    cfg = TrainConfig(dim=6, components=3, samples=30, steps=50, noise_draws=4, lr_peak=1e-2)
    sizes = [3, 9, 17, 30]
    ref_ds = cfg.dataset(np)
    ref = train(ref_ds, initial_state(ref_ds, sizes, cfg, np), cfg, np, noise_source="hash",
                bucket_overhead=0)
    ds = cfg.dataset(xp)
    got = train(ds, initial_state(ds, sizes, cfg, xp), cfg, xp, noise_source="hash",
                bucket_overhead=0, fused=True)
    np.testing.assert_allclose(xp.asnumpy(got.means), ref.means, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(xp.asnumpy(got.std), ref.std, rtol=1e-9)


@pytest.mark.gpu
def test_cupy_counter_normals_equal_numpy(xp):
    skip_unless_kernels_run(xp)
    key = counter_rng.stream_key(7, 1)
    got = counter_rng.normals(key, (4001, 3), xp, fused=True)
    np.testing.assert_allclose(xp.asnumpy(got), counter_rng.normals(key, (4001, 3)),
                               rtol=1e-14, atol=1e-15)
