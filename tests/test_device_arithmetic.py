"""The kernels under a GPU's arithmetic, with tolerances derived from rounding bounds.

On a GPU, NVRTC contracts a * b + c into fused multiply-adds (``fma.rn``; --fmad=true
is its default) and CuPy compiles every kernel with -ftz=true (float32 subnormals read
and written as 0). The CuPy stand-in runs the same sources as C++ with
-ffp-contract=off, so bit-for-bit agreement with the stand-in proves nothing about a
device. These tests run the kernels both ways on the stand-in (``exact``, and
``device``: contraction on the host's FMA unit and the x86 FTZ/DAZ flags, see
``cupy._kernels.device_math``), and on a real GPU in its own arithmetic, against the
float64 array program, within tolerances derived as follows (u = unit roundoff of the
working dtype, 2^-53 or 2^-24):

- A sum of n products evaluated in any order, with or without fused multiply-adds, is
  within gamma_n = n u / (1 - n u) times the sum of the absolute terms of the exact
  value (Higham, Accuracy and Stability, 3.1); FMA removes roundings, it never adds
  any, so the bound covers the device. The loss and its gradients are sums over the B
  rows of per-row quantities that are themselves sums over d or M, plus about ten
  per-row operations: n = B + d + M + 10.
- The sum of absolute terms over the result is the problem's amplification of
  rounding errors, kappa. It is measured, not assumed: the float32 array program's
  error against float64 in units of 2^-24 (at least 1), computing the forms of the
  dtype under test: float32 has forms of its own (gmmdiff.model.losses), so float64's
  kappa comes from float64's forms run in float32.
- -ftz: a flushed float32 value is off by less than the smallest normal float32,
  2^-126, in absolute terms (the optimizer's second moments of tiny gradients; the
  softmax's float32 weights are floored above it).
"""
import numpy as np
import pytest

from gmmdiff.engine import kernels
from gmmdiff.training import optim
from gmmdiff.backend import to_host
from gmmdiff.model import losses
from gmmdiff.model.losses import _batched_loss_and_grad
from helpers import MEMORIZED_STATES, float32_errors, memorized_problem, std_gradient_cancellation
from test_kernels import cp, on, packed_problem  # noqa: F401 (cp: the kernel fixture)

U32 = 2.0 ** -24
TINY32 = 2.0 ** -126          # smallest normal float32


def unit_roundoff(dtype):
    return float(np.finfo(dtype).eps) / 2


def gamma(n, u):
    return n * u / (1 - n * u)


@pytest.fixture(params=["exact", "device"])
def arith(request, cp):
    """The arithmetic the kernels run in: on the stand-in exact (-ffp-contract=off) or
    the device's kinds (FMA contraction, FTZ); on a GPU, the GPU's own (once)."""
    if not getattr(cp, "STANDIN", False):
        if request.param == "exact":
            pytest.skip("a GPU has one arithmetic, its own (run as 'device')")
        yield request.param
        return
    from cupy import _kernels
    if request.param == "device" and not _kernels.device_math_available():
        pytest.skip("the stand-in's device arithmetic needs a host with FMA")
    with _kernels.device_math(request.param == "device"):
        yield request.param


def fused(cp, args):
    d = on(cp, args)
    return [to_host(g) for g in _batched_loss_and_grad(*d[:7], cp, d[7], fused=True)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_loss_and_gradients_within_the_rounding_bound(cp, arith, dtype, seed):
    """Loss, mean gradients and std gradients of the fused path against the float64
    array program: |got - ref| <= gamma_n(u) kappa max|ref| per output, n and kappa as
    in the module docstring (seed 2 has one component taking all the weight: float64's
    forms form G - r.mubar from a separately rounded r.mubar, kappa about 600 for the
    mean gradients there; float32's form r.mubar from G's own products, kappa 1)."""
    sizes, d, B = (3, 7, 1, 5), 4, 37
    exact = packed_problem(seed)
    ref = _batched_loss_and_grad(*exact[:7], np, exact[7])
    low = packed_problem(seed, dtype=np.float32)
    with pytest.MonkeyPatch.context() as mp:
        if dtype == np.float64:                      # float64's forms, run in float32
            mp.setattr(losses, "_narrow_forms", lambda dtype: False)
        arr32 = _batched_loss_and_grad(*low[:7], np, low[7])
    got = fused(cp, packed_problem(seed, dtype=dtype))
    n = B + d + max(sizes) + 10
    for name, g, r, a in zip(("loss", "grad_means", "grad_std"), got, ref, arr32):
        assert g.dtype == dtype
        scale = np.abs(r).max()
        kappa = max(1.0, np.abs(a - r).max() / scale / U32)
        tol = gamma(n, unit_roundoff(dtype)) * kappa * scale
        err = np.abs(g - r).max()
        assert err <= tol, (name, arith, err / scale, tol / scale, kappa)


@pytest.mark.parametrize("var, offset", MEMORIZED_STATES)
def test_fused_float32_gradients_near_a_memorized_state_match_float64(cp, arith, var, offset):
    """The fused path in float32 at a memorized tiny-variance state with rows at
    t = 0.001, against the float64 array program on the same float32 inputs, within
    the bounds derived in tests/test_blocked.py's test of the same name (rounding
    bounds of float32 dot products of d = 10 terms, times the rows' cancellation):
    d/dstd 1e-5, d/dmeans 1e-5 of its largest entry, the loss 1e-6; FMA contraction
    only removes roundings and -ftz only flushes values below 2^-126 (the float32
    weights are floored at exp(-60)), so the bounds hold in the device's arithmetic.
    Before the kernel's float32 forms (gmmdiff.engine.kernels.ROW_FINISH) it was
    6.1e-3, 9.0e-3 and 1.6e-7 off at variance 1e-9 on the stand-in (6.2e-3, 9.0e-3,
    2.2e-7 in its device arithmetic); after, at most 3.6e-8, 5.3e-7 and 6.1e-8 at the
    three variances, in both."""
    for seed in range(3):
        args = memorized_problem(var, offset, seed)
        assert std_gradient_cancellation(args) < 10, seed
        got = [to_host(g) for g in _batched_loss_and_grad(*on(cp, args), cp, fused=True)]
        loss, gm, gs = float32_errors(got, args)
        assert gs < 1e-5 and gm < 1e-5 and loss < 1e-6, (seed, arith, loss, gm, gs)


def test_softmax_in_float32_within_one_rounding(cp, arith):
    """Weights computed in float64 and stored in float32: each within one float32
    rounding of the float64 weight (plus the float64 sum's gamma_{M+3}); float32 logits
    are floored at gmmdiff.softmax.logit_floor(float32) = -60, so no float32 weight is
    subnormal and -ftz has nothing to flush here."""
    from gmmdiff.softmax import logit_floor
    rng = np.random.default_rng(1)
    J, M, B = 2, 6, 41
    S = -rng.uniform(0.0, 100.0, (J, M, B))
    S[:, 0] = 0.0                                                         # one weight near 1
    sizes = np.array([M, 4], dtype=np.int32)
    mask = np.arange(M)[None, :, None] < sizes[:, None, None]
    E = np.where(mask, np.exp(np.maximum(S, logit_floor(np.float32))), 0.0)
    W64 = E / E.sum(axis=1, keepdims=True)
    W = cp.empty((J, M, B), dtype=np.float32)
    kernels.softmax_columns(cp.asarray(S), W, cp.asarray(sizes))
    W = to_host(W).astype(np.float64)
    bound = (U32 + gamma(M + 3, unit_roundoff(np.float64))) * W64
    assert np.all(np.abs(W - W64) <= bound), np.max(np.abs(W - W64) / np.maximum(bound, 1e-300))
    assert np.all(W[~np.broadcast_to(mask, W.shape)] == 0.0)
    assert np.all(W[np.broadcast_to(mask, W.shape)] >= TINY32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_within_the_rounding_bound(cp, arith, dtype):
    """Five optimizer steps: about twelve operations per element after the clip scale,
    whose per-model norm sums P = 21 squares: n = 12 + P per step, five steps; the
    moments and parameters are not cancellation-prone (kappa = 1), except the update
    m / (sqrt(v) + eps), bounded by 1 / (1 - b1) in relative terms. Model 0's gradients
    are about 1e-21: in float32 its second moments (1e-45) are subnormal, flushed to 0
    under -ftz: within 2^-126 of the float64 moments, and the flush moves the update by
    at most sqrt(2^-126) / eps ~ 1e-11 of itself, far inside the bound."""
    rng = np.random.default_rng(0)
    params = {"means": rng.standard_normal((3, 5, 4)).astype(dtype),
              "std": rng.uniform(0.5, 1.5, 3).astype(dtype)}
    cfg = optim.OptimConfig(clip_norm=3.0)
    ref_p, ref_s = {k: v.astype(np.float64) for k, v in params.items()}, None
    ref_s = optim.init_state(ref_p)
    got_p = {k: cp.asarray(v) for k, v in params.items()}
    got_s = optim.init_state(got_p)
    for k in range(5):
        grads = {"means": rng.standard_normal((3, 5, 4)) * [[[1e-21]], [[1.0]], [[5.0]]],
                 "std": rng.standard_normal(3)}
        lr = optim.learning_rate(k, 50, cfg)
        ref_p, ref_s = optim.step(ref_p, grads, ref_s, lr, cfg)
        got_p, got_s = kernels.adam_step(got_p, {n: cp.asarray(g.astype(dtype)) for n, g in grads.items()},
                                         got_s, lr, cfg)
    n = 5 * (12 + 21) + 1                                                 # + the input rounding
    tol_rel = gamma(n, unit_roundoff(dtype)) / (1 - cfg.b1)
    for name in params:
        got, ref = to_host(got_s[f"nu_{name}"]).astype(np.float64), ref_s[f"nu_{name}"]
        assert np.all(np.abs(got - ref) <= tol_rel * np.abs(ref) + TINY32), name
        got, ref = to_host(got_p[name]).astype(np.float64), ref_p[name]
        # parameters move by lr-sized updates: the bound applies to |p| and to the updates
        scale = np.abs(ref) + np.abs(ref - params[name].astype(np.float64))
        assert np.all(np.abs(got - ref) <= tol_rel * scale), (name, np.max(np.abs(got - ref) / scale))


def test_device_arithmetic_is_not_the_exact_one(cp):
    """The stand-in's device mode changes results (else the tests above would only
    repeat the exact ones): contraction moves the last bits of the gradients, the flush
    zeroes float32 subnormal second moments of the optimizer."""
    if not getattr(cp, "STANDIN", False):
        pytest.skip("checks the CuPy stand-in's emulation")
    from cupy import _kernels
    if not _kernels.device_math_available():
        pytest.skip("the stand-in's device arithmetic needs a host with FMA")
    args = packed_problem(0)
    with _kernels.device_math(False):
        exact = fused(cp, args)
    with _kernels.device_math(True):
        dev = fused(cp, args)
    assert not all(np.array_equal(a, b) for a, b in zip(exact, dev))
    g = {"means": cp.asarray(np.full((1, 2, 2), 1e-21, dtype=np.float32)),
         "std": cp.asarray(np.ones(1, dtype=np.float32))}
    p = {k: cp.zeros_like(v) for k, v in g.items()}
    nu = {}
    for mode in (False, True):
        with _kernels.device_math(mode):
            _, state = kernels.adam_step(p, g, optim.init_state(p), 1e-3, optim.OptimConfig())
            nu[mode] = to_host(state["nu_means"])
    assert np.all(nu[False] > 0) and np.all(nu[False] < TINY32) and np.all(nu[True] == 0)
