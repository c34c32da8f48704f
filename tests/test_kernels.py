"""The hand-written CUDA kernels of gmmdiff.engine.kernels against the numpy array program.

They run wherever ``cupy`` runs: CuPy on a GPU, or the test suite's CuPy stand-in
(tests/cupy_standin), whose RawKernel compiles the very same CUDA source with the host
C++ compiler and runs every thread of the grid in turn (exact for kernels without
shared memory or synchronization; skipped cleanly without a compiler). Tolerances
allow a GPU's own rounding (fused multiply-adds, its log1p/cos/sin); on the stand-in
most results are bit-identical. tests/test_nvrtc.py compiles the sources for the GPUs.
"""
import numpy as np
import pytest

from gmmdiff.engine import kernels
from gmmdiff.training import optim
from gmmdiff import rng as counter_rng
from gmmdiff.backend import cupy_available, get_xp, to_host
from gmmdiff.softmax import LOGIT_FLOOR
from gmmdiff.model.losses import _batched_loss_and_grad
from gmmdiff.model.process import coefficients, loss_scale


@pytest.fixture(scope="module")
def cp():
    """cupy: CuPy on a GPU, or the CuPy stand-in with a host compiler."""
    if not cupy_available():
        pytest.skip("neither CuPy with a GPU nor the CuPy stand-in is active")
    xp = get_xp("cupy")
    if getattr(xp, "STANDIN", False) and xp._kernels.compiler() is None:
        pytest.skip("the CuPy stand-in runs raw kernels with a host C++ compiler; none found")
    return xp


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


def on(xp, args):
    return [xp.asarray(a) for a in args]


def test_kernel_sources_declare_every_parameter_once():
    for k in kernels.KERNELS:
        names = [n for _, n in k.params]
        assert len(set(names)) == len(names)
        for ctype in ("double", "float"):
            src = k.source(ctype)
            assert f"typedef {ctype} T;" in src and f"void {k.name}(" in src


def test_fused_softmax_equals_array_program(cp):
    """The softmax kernel on logits with junk in the padding against gmmdiff.softmax on
    the same logits with the padding bias and mask."""
    from gmmdiff.softmax import PAD_LOGIT, softmax_
    rng = np.random.default_rng(0)
    sizes = np.array([3, 7, 1, 5], dtype=np.int32)
    J, M, B = 4, 7, 37
    S = rng.standard_normal((J, M, B)) * 30                              # floors some weights
    mask = np.arange(M)[None, :] < sizes[:, None]
    S_ref = np.where(mask[..., None], S, S + PAD_LOGIT)
    W0 = softmax_(S_ref, -2, np, mask[..., None])
    S1, W1 = cp.asarray(S), cp.empty((J, M, B))
    kernels.softmax_columns(S1, W1, cp.asarray(sizes))
    W1, S1 = to_host(W1), to_host(S1)
    np.testing.assert_allclose(W1, W0, rtol=1e-13, atol=1e-300)
    np.testing.assert_array_equal(W1[~mask], 0.0)                        # padding exactly 0
    np.testing.assert_allclose(S1[mask], S_ref[mask], rtol=1e-13, atol=1e-12)
    assert np.all(S1[mask] >= LOGIT_FLOOR) and np.all(S1[~mask] == 0.0)


def test_fused_loss_with_a_data_set_per_model(cp):
    """Models of several configurations in one batch (a sweep's unit): x0 (J, d, B)."""
    means, std, _, eps, alpha, sigma, wt, mask = packed_problem(7)
    x0 = np.random.default_rng(8).standard_normal(eps.shape)
    ref = _batched_loss_and_grad(means, std, x0, eps, alpha, sigma, wt, np, mask)
    d = on(cp, (means, std, x0, eps, alpha, sigma, wt, mask))
    got = [to_host(g) for g in _batched_loss_and_grad(*d[:7], cp, d[7], fused=True)]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-11 * np.abs(r).max())


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-11), (np.float32, 2e-6)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_loss_and_gradients_equal_array_program(cp, dtype, rtol, seed):
    """Against the float64 array program (the reference) for both dtypes, relative to
    each output's largest entry. float32: 2e-6 (measured: at most 1.3e-7, and the
    float32 array program's own error as well since it forms r.mubar from G too
    (gmmdiff.model.losses); with the reference's form it reached 3.5e-5 on seed 2,
    where one component takes all the weight and G - r.mubar cancels)."""
    args = packed_problem(seed, dtype=dtype)
    ref = _batched_loss_and_grad(*packed_problem(seed)[:7], np, args[7])
    d = on(cp, args)
    got = [to_host(g) for g in _batched_loss_and_grad(*d[:7], cp, d[7], fused=True)]
    for g, r in zip(got, ref):
        assert g.dtype == dtype
        scale = np.abs(r).max()
        np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * scale)
    np.testing.assert_array_equal(got[1][~args[7]], 0.0)                 # no gradient on padding


def test_fused_gradients_equal_finite_differences(cp):
    """Directional derivatives of the fused loss (means and std together) against
    Richardson-extrapolated central differences of the same fused loss."""
    means, std, x0, eps, alpha, sigma, wt, mask = packed_problem(3)
    rng = np.random.default_rng(4)
    dm = rng.standard_normal(means.shape) * mask[..., None]
    ds = rng.standard_normal(std.shape) * std
    rest = on(cp, (x0, eps, alpha, sigma, wt))
    dmask = cp.asarray(mask)

    def loss(h):
        return to_host(_batched_loss_and_grad(cp.asarray(means + h * dm), cp.asarray(std + h * ds),
                                              *rest, cp, dmask, grad=False, fused=True)[0])

    _, gm, gs = _batched_loss_and_grad(cp.asarray(means), cp.asarray(std), *rest, cp, dmask, fused=True)
    want = np.einsum("jmd,jmd->j", to_host(gm), dm) + to_host(gs) * ds

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


@pytest.mark.parametrize("n", [1, 2, 7, 1001])
def test_step_kernels_equal_the_array_program(cp, n):
    """Times (as row indices) and normals of a chunk of steps for three streams: integers
    bit for bit, normals to a few ulp (a GPU's log1p, cos and sin)."""
    base = np.array([counter_rng.stream_key(3, 11, u) for u in range(3)], dtype=np.uint64)
    keys = counter_rng.step_keys(base, 5, 4)                             # steps 5..8
    want_t = np.repeat(counter_rng.integers_of(keys, 26, n), 3, axis=-1)
    want_e = counter_rng.normals_of(keys, n)
    np.testing.assert_array_equal(to_host(kernels.step_rows(cp.asarray(base), 5, 4, n, 3, 26)), want_t)
    np.testing.assert_allclose(to_host(kernels.step_normals(cp.asarray(base), 5, 4, n)), want_e,
                               rtol=1e-14, atol=1e-15)
    # the same steps drawn in another chunking are the same numbers
    part = to_host(kernels.step_normals(cp.asarray(base), 7, 2, n))
    np.testing.assert_array_equal(part, to_host(kernels.step_normals(cp.asarray(base), 5, 4, n))[:, 2:])


def test_float32_noise_is_the_float64_noise_rounded_once(cp):
    """Training in float32 draws its noise as float32 on the device (no per-step cast):
    the same float64 computation, rounded once when stored, bit for bit the cast."""
    base = cp.asarray(np.array([counter_rng.stream_key(1, 11, u) for u in range(2)], dtype=np.uint64))
    e64 = to_host(kernels.step_normals(base, 3, 5, 101))
    e32 = to_host(kernels.step_normals(base, 3, 5, 101, np.float32))
    assert e32.dtype == np.float32 and e32.shape == e64.shape == (2, 5, 101)
    np.testing.assert_array_equal(e32, e64.astype(np.float32))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_fused_adam_equals_the_array_program(cp, dtype, rtol):
    """Several steps of the two-kernel optimizer against gmmdiff.training.optim.step, with a clip
    norm small enough to clip some models and not others."""
    rng = np.random.default_rng(0)
    params = {"means": rng.standard_normal((3, 5, 4)).astype(dtype),
              "std": rng.uniform(0.5, 1.5, 3).astype(dtype)}
    cfg = optim.OptimConfig(clip_norm=3.0)
    ref_p, ref_s = params, optim.init_state(params)
    got_p = {k: cp.asarray(v) for k, v in params.items()}
    got_s = optim.init_state(got_p)
    for k in range(5):
        grads = {"means": (rng.standard_normal((3, 5, 4)) * [[[0.1]], [[1.0]], [[5.0]]]).astype(dtype),
                 "std": rng.standard_normal(3).astype(dtype)}
        lr = optim.learning_rate(k, 50, cfg)
        ref_p, ref_s = optim.step(ref_p, grads, ref_s, lr, cfg)
        got_p, got_s = kernels.adam_step(got_p, {n: cp.asarray(g) for n, g in grads.items()},
                                         got_s, lr, cfg)
    assert got_s["count"] == ref_s["count"] == 5
    for name in params:
        assert got_p[name].dtype == dtype
        np.testing.assert_allclose(to_host(got_p[name]), ref_p[name], rtol=rtol, atol=rtol)
        for slot in ("mu", "nu", "ema"):
            np.testing.assert_allclose(to_host(got_s[f"{slot}_{name}"]), ref_s[f"{slot}_{name}"],
                                       rtol=rtol * 10, atol=rtol * 1e-3)
