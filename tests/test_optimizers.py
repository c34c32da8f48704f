"""Gradient descent, momentum and minibatches (SPEC 12): each optimizer step for step
against a plain float64 loop written from the formulas, training with them against a
reference loop built from the per-row loss, the epochs' permutations, full batch bit for
bit, and divergence."""
import dataclasses
import json
import math
import os

import numpy as np
import pytest

from gmmdiff.experiments.runs import identity, run
from gmmdiff.io.rundir import diverged_sizes, read_run
from gmmdiff.model.losses import loss_and_grad
from gmmdiff.model.process import coefficients
from gmmdiff.training import batches, optim
from gmmdiff.training.config import TrainConfig
from gmmdiff.training.draws import draw_chunk, draw_chunk_steps, noise_stream
from gmmdiff.training.loop import train
from gmmdiff.training.state import initial_state

DESCENT = [("sgd", False), ("momentum", False), ("momentum", True)]


class ReferenceDescent:
    """sgd / momentum for one model, coordinate by coordinate in Python floats, from
    SPEC 12 and optax's semantics: the gradient in (means, u = log std^2), clip by the
    model's global norm, trace v <- m v + g (Nesterov: g + m v), update -lr * direction,
    the bias-corrected average of the updates, p <- p + ema / (1 - decay^k), std <- sign
    exp(u / 2)."""

    def __init__(self, means, std, cfg):
        self.means = [float(x) for x in np.ravel(means)]
        self.sign = math.copysign(1.0, std)
        self.u = math.log(std * std)
        self.cfg = cfg
        n = len(self.means) + 1
        self.trace, self.ema, self.k = [0.0] * n, [0.0] * n, 0

    @property
    def std(self):
        return self.sign * math.exp(self.u / 2)

    def step(self, g_means, g_std, lr):
        c = self.cfg
        g = [float(x) for x in np.ravel(g_means)] + [g_std * self.std / 2]
        norm = math.sqrt(sum(x * x for x in g))
        if not norm < c.clip_norm:
            g = [x * c.clip_norm / norm for x in g]
        self.k += 1
        coords = self.means + [self.u]
        for i, gi in enumerate(g):
            if c.optimizer == "momentum":
                self.trace[i] = c.momentum * self.trace[i] + gi
                direction = gi + c.momentum * self.trace[i] if c.nesterov else self.trace[i]
            else:
                direction = gi
            self.ema[i] = c.ema_decay * self.ema[i] + (1 - c.ema_decay) * (-lr * direction)
            coords[i] += self.ema[i] / (1 - c.ema_decay ** self.k)
        self.means, self.u = coords[:-1], coords[-1]


@pytest.mark.parametrize("name,nesterov", DESCENT)
def test_descent_step_for_step_against_a_float64_loop(name, nesterov):
    """250 steps of random gradients for two models (each its own clip: model 1's
    gradients are 3x larger and clipped on most steps), the warmup-stable-decay
    schedule; every step's parameters agree with the loop to 1e-12."""
    cfg = optim.OptimConfig(optimizer=name, nesterov=nesterov, momentum=0.8, clip_norm=2.0,
                            lr_peak=0.05, lr_final=1e-3, warmup_frac=0.1).validate()
    rng = np.random.default_rng(7)
    J, M, d, steps = 2, 3, 2, 250
    params = {"means": rng.standard_normal((J, M, d)), "std": np.array([0.7, -1.3])}
    refs = [ReferenceDescent(params["means"][j], params["std"][j], cfg) for j in range(J)]
    state = optim.init_state(params, name)
    assert sorted(k for k in state if k != "count") == sorted(
        f"{slot}_{p}" for slot in optim.SLOTS[name] for p in ("means", "std"))
    clipped = 0
    for k in range(steps):
        grads = {"means": rng.standard_normal((J, M, d)) * np.array([0.5, 1.5])[:, None, None],
                 "std": rng.standard_normal(J) * np.array([0.5, 1.5])}
        lr = optim.learning_rate(k, steps, cfg)
        params, state = optim.step(params, grads, state, lr, cfg)
        for j, ref in enumerate(refs):
            g = np.append(grads["means"][j].ravel(), grads["std"][j] * ref.std / 2)
            clipped += np.linalg.norm(g) >= cfg.clip_norm
            ref.step(grads["means"][j], grads["std"][j], lr)
            np.testing.assert_allclose(params["means"][j].ravel(), ref.means, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(params["std"][j], ref.std, rtol=1e-12)
    assert 0 < clipped < 2 * steps                       # the clip acted, not always
    assert np.sign(params["std"]).tolist() == [1.0, -1.0]   # the variance's log keeps std's sign


def test_adam_ignores_the_descent_settings_and_refuses_unknown_optimizers():
    rng = np.random.default_rng(0)
    params = {"means": rng.standard_normal((1, 2, 2)), "std": np.array([0.5])}
    grads = {"means": rng.standard_normal((1, 2, 2)), "std": np.array([0.3])}
    a = optim.step(params, grads, optim.init_state(params), 1e-2, optim.OptimConfig())
    b = optim.step(params, grads, optim.init_state(params), 1e-2,
                   optim.OptimConfig(momentum=0.5, nesterov=True))
    np.testing.assert_array_equal(a[0]["means"], b[0]["means"])
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'; accepted: adam, sgd, momentum"):
        optim.OptimConfig(optimizer="lbfgs").validate()
    with pytest.raises(ValueError, match="momentum = 1.0 must lie in"):
        optim.OptimConfig(optimizer="momentum", momentum=1.0).validate()
    with pytest.raises(ValueError, match="FlatStep is Adam's step"):
        flat = optim.FlatStep(params, optim.init_state(params))
        flat(flat.params, grads, flat.state, 1e-2, optim.OptimConfig(optimizer="sgd"))


# ---------------------------------------------------------------------------- minibatches


@pytest.mark.parametrize("N,B", [(12, 5), (12, 4), (7, 1), (9, 9)])
def test_each_epoch_visits_every_sample_once_in_ceil_n_over_b_steps(N, B):
    S = -(-N // B)
    for epoch in range(3):
        seen = np.concatenate([batches.step_samples(11, N, B, epoch * S + j) for j in range(S)])
        assert sorted(seen.tolist()) == list(range(N))
        assert [len(batches.step_samples(11, N, B, epoch * S + j)) for j in range(S)] == \
            [B] * (S - 1) + [N - (S - 1) * B]
    if B < N:          # a fresh permutation per epoch, fixed by the seed
        e0, e1 = batches.epoch_order(11, N, 0), batches.epoch_order(11, N, 1)
        assert not np.array_equal(e0, e1)
        np.testing.assert_array_equal(e0, batches.epoch_order(11, N, 0))
        assert not np.array_equal(e0, batches.epoch_order(12, N, 0))


def test_epochs_count_samples_seen():
    cfg = TrainConfig(samples=12, batch_size=5)
    assert cfg.steps_per_epoch() == 3
    np.testing.assert_allclose(cfg.epochs([0, 1, 2, 3, 4, 6]), [0, 5 / 12, 10 / 12, 1, 1 + 5 / 12, 2])
    np.testing.assert_allclose(TrainConfig(samples=12).epochs([0, 7]), [0, 7])


def _reference_training(cfg, M):
    """The model's parameters after ``cfg.steps`` steps by a loop of its own: the
    step's samples from the epochs' permutations split by hand, each sample's time and
    noise drawn as training draws them (B rows a step), the per-row loss and
    gradients of :func:`gmmdiff.model.losses.loss_and_grad`, and
    :class:`ReferenceDescent` (or Adam by :func:`optim.step`)."""
    ds = cfg.dataset()
    st = initial_state(ds, [M], cfg, np)
    means, std = st.params["means"][0].copy(), float(st.params["std"][0])
    N, B, n, d = cfg.samples, cfg.batch(), cfg.noise_draws, cfg.dim
    ocfg = cfg.optim()
    ref = ReferenceDescent(means, std, ocfg)
    grid = cfg.grid()
    S = draw_chunk_steps(B, n, d)
    order = []
    for epoch in range(cfg.steps):                      # the epochs' samples, in order
        perm = batches.epoch_order(cfg.seed, N, epoch) if B < N else np.arange(N)
        order.extend(perm[i:i + B] for i in range(0, N, B))
        if len(order) >= cfg.steps:
            break
    for k in range(cfg.steps):
        t_idx, eps = draw_chunk(noise_stream(cfg, M), k // S, S, B, n, (d,), cfg.grid_size,
                                rows_last=True)
        idx = order[k]
        b = len(idx)
        x0 = np.repeat(ds.X[idx], n, axis=0)                              # (b n, d)
        t = grid[np.repeat(t_idx[k % S][:b], n)]                          # (b n,)
        e = eps[k % S].T[:b * n]                                          # (b n, d)
        _, gm, gs = loss_and_grad(np.asarray(ref.means).reshape(M, d), ref.std, x0, t, e,
                                  target=cfg.target)
        ref.step(gm, float(gs), optim.learning_rate(k, cfg.steps, ocfg))
    return np.asarray(ref.means).reshape(M, d), ref.std


@pytest.mark.parametrize("optimizer,B", [("sgd", 5), ("momentum", 12), ("momentum", 4)])
def test_training_equals_a_reference_loop(optimizer, B):
    """The loop (numpy's blocked loss, the minibatch gather, the shorter last step of
    an epoch when B does not divide N) against the reference loop: the same
    parameters to rounding after 60 steps (5 epochs at B = 5)."""
    cfg = TrainConfig(dim=3, components=2, samples=12, steps=60, noise_draws=2,
                      optimizer=optimizer, lr_peak=3e-4, lr_final=1e-5, batch_size=B,
                      init="prior", eval_steps="none").validate()
    ds = cfg.dataset()
    got = train(ds, initial_state(ds, [5], cfg, np), cfg, np)
    means, std = _reference_training(cfg, 5)
    np.testing.assert_allclose(got.params["means"][0], means, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(got.params["std"][0], std, rtol=1e-9)


def test_minibatch_training_moves_only_with_the_chosen_samples():
    """A step with B samples is not full batch: the same settings with B = N differ."""
    cfg = TrainConfig(dim=3, components=2, samples=12, steps=20, noise_draws=2, init="prior",
                      eval_steps="none", lr_peak=1e-2)
    ds = cfg.dataset()
    full = train(ds, initial_state(ds, [4], cfg, np), cfg, np)
    mini = dataclasses.replace(cfg, batch_size=6)
    part = train(ds, initial_state(ds, [4], mini, np), mini, np)
    assert not np.allclose(full.params["means"], part.params["means"])


def test_full_batch_by_option_is_full_batch_bit_for_bit(tmp_path):
    """--batch-size N is no option at all: the same files, the same identity."""
    cfg = TrainConfig(dim=3, components=2, samples=10, steps=200, noise_draws=2, eval_samples=20,
                      eval_noise_draws=2, eval_steps="log:3")
    run(cfg, [3, 10], str(tmp_path / "a"), np)
    run(dataclasses.replace(cfg, batch_size=10), [3, 10], str(tmp_path / "b"), np)
    for name in sorted(os.listdir(tmp_path / "a")):
        if not name.startswith("."):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert "batch_size" not in identity(dataclasses.replace(cfg, batch_size=10), "numpy")
    assert "optimizer" not in identity(cfg, "numpy") and "momentum" not in identity(cfg, "numpy")
    ident = identity(dataclasses.replace(cfg, optimizer="momentum", batch_size=4), "numpy")
    assert (ident["optimizer"], ident["momentum"], ident["nesterov"], ident["batch_size"]) == \
        ("momentum", 0.9, False, 4)


class Stop(Exception):
    pass


def test_a_minibatch_run_records_epochs_and_resumes_bit_for_bit(tmp_path):
    """A minibatch momentum run stopped after its checkpoint at step 150 (the training
    callback raises at step 200) and run again ends with the files of an uninterrupted
    run; its series carry epochs beside steps."""
    cfg = TrainConfig(dim=3, components=2, samples=10, steps=300, noise_draws=2, eval_samples=20,
                      eval_noise_draws=2, eval_steps="log:4", optimizer="momentum",
                      lr_peak=1e-4, batch_size=4, init="prior")
    run(cfg, [4, 10], str(tmp_path / "whole"), np)

    def stop_at_200(step, losses):
        if step >= 200:
            raise Stop

    with pytest.raises(Stop):
        run(cfg, [4, 10], str(tmp_path / "resumed"), np, checkpoint_every=150, log_every=10,
            callback=stop_at_200)
    assert (tmp_path / "resumed" / "checkpoint.npz").exists()
    run(cfg, [4, 10], str(tmp_path / "resumed"), np)
    for name in ("model_M00004.npz", "model_M00010.npz", "model_M00004.json"):
        a, b = (tmp_path / "whole" / name).read_bytes(), (tmp_path / "resumed" / name).read_bytes()
        if name.endswith(".json"):      # the logged losses' steps differ (log_every)
            a, b = (json.loads(x)["along_training"] for x in (a, b))
        assert a == b, name
    whole = json.loads((tmp_path / "whole" / "model_M00004.json").read_text())["along_training"]
    assert whole["epochs"] == pytest.approx(cfg.epochs(whole["steps"]).tolist())
    assert whole["epochs"][-1] == pytest.approx(300 * 4 / 10 * 10 / 12)  # 100 epochs of 3 steps


def test_a_diverging_model_ends_as_diverged_and_the_others_train_on(tmp_path):
    """Gradient descent at a learning rate too large for the memorized start: every
    diverging size gets a "diverged" record (the step, the reason, finite numbers
    only) and no NPZ; a size that does not diverge trains to the end as it would
    alone; re-running the command redoes nothing."""
    cfg = TrainConfig(dim=3, components=2, samples=10, steps=400, noise_draws=2, eval_samples=20,
                      eval_noise_draws=2, eval_steps="log:4", optimizer="momentum", lr_peak=1.0,
                      warmup_frac=0.0)
    out = str(tmp_path / "run")
    rows = run(cfg, [3, 10], out, np)
    assert [r["status"] for r in rows] == ["diverged", "diverged"]
    assert diverged_sizes(out) == [3, 10]
    for r in rows:
        assert 0 < r["diverged_at"] <= cfg.steps and "learning rate is too large" in r["reason"]
        assert not os.path.exists(os.path.join(out, f"model_M{r['M']:05d}.npz"))
        text = open(os.path.join(out, f"model_M{r['M']:05d}.json")).read()
        assert "NaN" not in text and "Infinity" not in text
    with pytest.raises(Exception, match="every completed size diverged"):
        read_run(out)
    mtimes = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in os.listdir(out)}
    run(cfg, [3, 10], out, np)                       # nothing left to do
    assert {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in os.listdir(out)} == mtimes
    # per model: at a smaller rate M = 3 diverges and M = 10 (every training point a
    # mean) does not; M = 10 trains on to the same bits as alone
    mild = dataclasses.replace(cfg, optimizer="sgd", lr_peak=1e-3)
    with np.errstate(all="raise"):                   # no floating-point warning escapes
        rows = run(mild, [3, 10], str(tmp_path / "mixed"), np)
    assert [r.get("status") for r in rows] == ["diverged", None]
    alone = run(mild, [10], str(tmp_path / "alone"), np)
    assert rows[1] == alone[0]
    assert (tmp_path / "mixed" / "model_M00010.npz").read_bytes() == \
        (tmp_path / "alone" / "model_M00010.npz").read_bytes()
    assert read_run(str(tmp_path / "mixed"))[1] == [rows[1]]
