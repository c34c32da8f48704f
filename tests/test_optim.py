"""The optimizer against a hand-computed sequence, and the learning-rate schedule."""
import math

import numpy as np
import pytest

from gmmdiff.training import optim


def test_schedule_warmup_then_linear_decay():
    cfg = optim.OptimConfig(lr_peak=1e-3, lr_final=1e-6, warmup_frac=0.1)
    lr = [optim.learning_rate(k, 100, cfg) for k in range(100)]
    assert lr[0] == 0.0
    assert lr[5] == pytest.approx(0.5e-3)
    assert lr[10] == pytest.approx(1e-3)
    assert lr[55] == pytest.approx(1e-3 + (45 / 90) * (1e-6 - 1e-3))
    assert optim.learning_rate(100, 100, cfg) == pytest.approx(1e-6)
    assert np.all(np.diff(lr[:10]) > 0) and np.all(np.diff(lr[10:]) < 0)


def test_three_steps_by_hand_with_clipping():
    """clip (global norm 1.0, triggered at step 1) -> Adam -> -lr -> bias-corrected EMA
    of the updates, each written out in scalar arithmetic."""
    cfg = optim.OptimConfig(b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0, ema_decay=0.99)
    params = {"means": np.array([[[1.0, -2.0]]]), "std": np.array([0.5])}
    grads = [({"means": np.array([[[3.0, 0.0]]]), "std": np.array([4.0])}),   # norm 5 -> clipped
             ({"means": np.array([[[0.1, -0.2]]]), "std": np.array([0.2])}),   # norm 0.3
             ({"means": np.array([[[-0.3, 0.1]]]), "std": np.array([0.0])})]
    lrs = [0.1, 0.05, 0.02]

    # hand computation, coordinate by coordinate: p = (m0, m1, s)
    p = [1.0, -2.0, 0.5]
    m = [0.0] * 3
    v = [0.0] * 3
    e = [0.0] * 3
    for k, (g, lr) in enumerate(zip(grads, lrs), start=1):
        gl = [g["means"][0, 0, 0], g["means"][0, 0, 1], g["std"][0]]
        norm = math.sqrt(sum(x * x for x in gl))
        if not norm < 1.0:
            gl = [x / norm * 1.0 for x in gl]
        for i in range(3):
            m[i] = 0.9 * m[i] + 0.1 * gl[i]
            v[i] = 0.999 * v[i] + 0.001 * gl[i] ** 2
            u = -lr * (m[i] / (1 - 0.9 ** k)) / (math.sqrt(v[i] / (1 - 0.999 ** k)) + 1e-8)
            e[i] = 0.99 * e[i] + 0.01 * u
            p[i] += e[i] / (1 - 0.99 ** k)
    state = optim.init_state(params)
    for g, lr in zip(grads, lrs):
        params, state = optim.step(params, g, state, lr, cfg)
    np.testing.assert_allclose(params["means"][0, 0], p[:2], rtol=1e-14)
    np.testing.assert_allclose(params["std"][0], p[2], rtol=1e-14)
    assert state["count"] == 3


def test_models_are_clipped_independently():
    cfg = optim.OptimConfig(clip_norm=1.0)
    params = {"std": np.array([0.0, 0.0])}
    grads = {"std": np.array([10.0, 0.5])}
    s0 = optim.init_state(params)
    _, s1 = optim.step(params, grads, s0, 0.1, cfg)
    # first moments hold (1 - b1) * clipped gradient: model 0 clipped to 1, model 1 not
    np.testing.assert_allclose(s1["mu_std"], [0.1 * 1.0, 0.1 * 0.5])


def test_config_validation():
    with pytest.raises(ValueError, match="lr_peak = -1"):
        optim.OptimConfig(lr_peak=-1).validate()
    with pytest.raises(ValueError, match="ema_decay = 1.0"):
        optim.OptimConfig(ema_decay=1.0).validate()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_flat_step_equals_step_bit_for_bit_and_leaves_the_inputs_alone(dtype):
    """:class:`optim.FlatStep` (numpy training's optimizer: in place on flat buffers)
    gives :func:`optim.step`'s parameters and moments bit for bit over 30 steps, with
    the clip acting on every other step; the arrays it was built from are never
    written; it refuses dicts that are not its own."""
    rng = np.random.default_rng(3)
    J, M, d = 4, 6, 3
    params = {"means": rng.standard_normal((J, M, d)).astype(dtype),
              "std": np.full(J, 0.3, dtype)}
    keep = {k: v.copy() for k, v in params.items()}
    cfg = optim.OptimConfig(clip_norm=5.0)
    p, s = params, optim.init_state(params)
    flat = optim.FlatStep(params, s)
    fp, fs = flat.params, flat.state
    clipped = 0
    for k in range(30):
        g = {n: (rng.standard_normal(v.shape) * (0.1 if k % 2 else 10.0)).astype(dtype)
             for n, v in params.items()}
        clipped += np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in g.values())) > 5
        p, s = optim.step(p, g, s, 1e-2 * (k + 1), cfg)
        fp, fs = flat(fp, g, fs, 1e-2 * (k + 1), cfg)
    assert clipped == 15
    for n in p:
        assert fp[n].dtype == p[n].dtype and fp[n].shape == p[n].shape
        np.testing.assert_array_equal(fp[n], p[n])
    assert fs["count"] == s["count"] == 30
    for k in s:
        np.testing.assert_array_equal(fs[k], s[k])
    for k, v in keep.items():
        np.testing.assert_array_equal(params[k], v)
    with pytest.raises(ValueError, match="its own"):
        flat(p, g, fs, 1e-3, cfg)
    mixed = {"means": params["means"].astype(np.float64), "std": params["std"].astype(np.float32)}
    with pytest.raises(ValueError, match="one dtype"):
        optim.FlatStep(mixed, optim.init_state(mixed))
