"""The numpy fast paths of the training step against the float64 reference
(:func:`gmmdiff.model.losses._batched_loss_and_grad`): row blocks, reused buffers, buckets as
views without padding work, the float32 logit floor."""
import numpy as np
import pytest

from gmmdiff import softmax
from gmmdiff.engine import blocked
from gmmdiff.engine.blocked import Workspace, block_rows, blocked_loss_and_grad
from gmmdiff.engine.buckets import bucketed
from gmmdiff.training.config import TrainConfig
from gmmdiff.model.denoisers import _posterior
from gmmdiff.families.gmm import loss as gmm_loss
from gmmdiff.model.losses import _batched_loss_and_grad
from gmmdiff.training.state import initial_state
from gmmdiff.training.loop import train

from helpers import (MEMORIZED_STATES, float32_errors, memorized_problem,
                     std_gradient_cancellation)

GRID = np.linspace(0.001, 0.999, 26)


def problem(J, M, d, B, dtype=np.float64, pad=(), shared_x0=False, seed=0):
    """A batch at training-like conditions: times from the grid (logits up to ~1e6 at
    t = 0.001), means near the data, std 0.3; ``pad``: (model, size) pairs padded."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((J, M, d))
    mask = np.ones((J, M), bool)
    for j, m in pad:
        mask[j, m:] = False
        means[j, m:] = 0.0
    x0 = rng.standard_normal((d, B) if shared_x0 else (J, d, B))
    eps = rng.standard_normal((J, d, B))
    t = rng.choice(GRID, (J, B))
    alpha, sigma = np.sqrt(1 - t * t), t
    wt = alpha ** 2 / sigma ** 2
    cast = lambda a: a.astype(dtype)                                      # noqa: E731
    return (cast(means), cast(np.full(J, 0.3)), cast(x0), cast(eps), alpha, sigma, wt, mask)


def reference(means, std, x0, eps, alpha, sigma, wt, mask):
    return _batched_loss_and_grad(means, std, x0, eps, alpha, sigma, wt, np, mask)


# The blocked path computes the reference's formulas rearranged (gmmdiff.engine.blocked: no
# x_t, the weights' normalization and b folded into per-row coefficients), so each
# per-row term differs from the reference's by a few float64 roundings (~1e-15
# relative), and each result is a sum of B such terms whose cancellation stays below
# ~100x at these shapes: 1e-11 of the largest entry bounds both, with a margin of 100.
ROUNDING = 1e-11


def assert_rounding_close(got, ref):
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype and g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=ROUNDING, atol=ROUNDING * np.max(np.abs(r)))


def test_one_block_equals_the_reference_to_rounding():
    """B = 150 rows in one block, padded, unpadded and with a shared x0; each gradient
    term the rearrangement touches (the -2 of the logits' last column, 1 / sum E, b in
    R) changes the results by far more than rounding when it is wrong."""
    for kw in ({}, {"pad": [(0, 7), (2, 3)]}, {"shared_x0": True}):
        p = problem(3, 12, 5, 150, **kw)
        got = blocked_loss_and_grad(*p)
        ref = reference(*p)
        assert_rounding_close(got, ref)
        # the loss, the means' and the std's gradients each move by > 1e-3 if the
        # per-model variance is off by 1%
        off = list(p)
        off[1] = p[1] * np.sqrt(1.01)
        for g, r in zip(blocked_loss_and_grad(*off), ref):
            assert np.max(np.abs(g - r)) > 1e-3 * np.max(np.abs(r))


@pytest.mark.parametrize("kw", [{}, {"pad": [(1, 9)]}, {"shared_x0": True}])
def test_many_blocks_equal_the_reference_to_rounding(kw):
    """1,000 rows in blocks of 64 (16 blocks): the order of the sums over rows differs
    too. Reordering a float64 sum of B terms moves it by at most ~B 2^-53 of the sum of
    |terms| (<= ~1e-13 relative here): within :data:`ROUNDING`."""
    p = problem(2, 16, 6, 1000, **kw)
    assert block_rows(2, 16, 1000, entries=2 * 16 * 64) == 64
    got = blocked_loss_and_grad(*p, entries=2 * 16 * 64)
    ref = reference(*p)
    assert_rounding_close(got, ref)
    # and a wrong block sum is far outside that: dropping the last block's rows
    short = blocked_loss_and_grad(*(a[..., :936] if a.ndim > 1 and a.shape[-1] == 1000 else a
                                    for a in p), entries=2 * 16 * 64)
    assert not np.allclose(short[1], ref[1], rtol=1e-6)


def test_float32_blocks_equal_the_float32_reference():
    """float32: both sum B = 1,200 float32 terms (the blocked path accumulates the block
    sums in float64), each ~2^-24 relative per operation and ~sqrt(B) of them: a few
    1e-6 of the largest entry; 3e-5 allows the log-sum of the softmax too."""
    p = problem(2, 10, 8, 1200, dtype=np.float32, pad=[(0, 4)])
    got = blocked_loss_and_grad(*p, entries=2 * 10 * 100)
    for g, r in zip(got, reference(*p)):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=3e-5, atol=3e-5 * np.max(np.abs(r)))


def test_float32_losses_at_small_t_do_not_lose_x0_to_cancellation():
    """At t = 0.001, x0hat - x0 is ~1e-5 of x0: the reference's (a var / v) x_t + b mubar
    - x0 cancels x0 in float32 rounding (loss errors of 1-2e-6 relative to float64's
    here), the blocked form b (mubar - x0) + var s av eps cancels it exactly, leaving a
    few float32 roundings of each term (measured <= 2.1e-7 over these seeds): 1e-6."""
    for seed in range(4):
        p64 = list(problem(3, 8, 6, 400, seed=seed))
        t = np.full(p64[4].shape, 0.001)
        p64[4], p64[5] = np.sqrt(1 - t * t), t
        p64[6] = p64[4] ** 2 / t ** 2
        p32 = [a.astype(np.float32) if i < 4 else a for i, a in enumerate(p64)]
        truth = reference(*p64)[0]
        got = blocked_loss_and_grad(*p32)[0]
        assert np.max(np.abs(got - truth) / truth) < 1e-6, seed


@pytest.mark.parametrize("var, offset", MEMORIZED_STATES)
def test_float32_gradients_near_a_memorized_state_match_float64(var, offset):
    """The built-in data (d = 10, N = 20, 10 rows each) with memorized means (the
    training points, ``offset`` rms away: the end of a built-in run has variance ~1e-9
    and offsets ~1e-5) and times from the grid, float32 against float64 on the same
    float32 inputs (helpers.memorized_problem). At t = 0.001 each row's x0hat - x0 is
    ~1e-6 |x0| and x_t - alpha mubar ~1e-3 |x0|: formed as differences of
    float32-rounded vectors (2^-24 |x0| each) they left d/dstd 1e-3-5e-3 and d/dmeans
    5e-3 off here (issue 29). Without them each row's d/dstd is three float32 dot
    products of d = 10 terms (<= ~10 2^-24 = 6e-7 relative each) under float64
    factors, so ~1e-6 per row; the sum over rows cancels by at most the factor
    measured below (|terms| summed over |sum|, <= 10 asserted; 1.0-3.7 here): 1e-5.
    The means' gradient sums float32 products of the same rows: 1e-5 of its largest
    entry; the loss, a sum of positive terms: 1e-6. Measured after the change:
    <= 1.2e-7, 5.5e-7, 3e-7. (The cupy paths: tests/test_losses.py and
    tests/test_device_arithmetic.py, the same states and bounds.)"""
    for seed in range(3):
        args = memorized_problem(var, offset, seed)
        assert std_gradient_cancellation(args) < 10, seed
        loss, gm, gs = float32_errors(blocked_loss_and_grad(*args), args)
        assert gs < 1e-5 and gm < 1e-5 and loss < 1e-6, (seed, loss, gm, gs)


def test_the_workspace_allocates_once_and_keeps_results():
    p = problem(2, 8, 4, 500)
    ws = Workspace()
    first = blocked_loss_and_grad(*p, ws=ws, entries=2 * 8 * 64)
    buffers = {key: dict(bufs) for key, bufs in ws._sets.items()}
    nbytes = ws.nbytes()
    second = blocked_loss_and_grad(*p, ws=ws, entries=2 * 8 * 64)
    assert ws._sets.keys() == buffers.keys() and ws.nbytes() == nbytes > 0
    assert all(ws._sets[key][n] is b for key, bufs in buffers.items()
               for n, b in bufs.items())                                  # the same arrays
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)                             # no state leaks


@pytest.mark.parametrize("buckets", [[[0], [1, 2], [3]], [[0, 2], [1, 3]], [[0, 1, 2, 3]]])
def test_buckets_as_views_equal_the_padded_batch(buckets):
    """Contiguous buckets (views, unpadded buckets without a mask) and a non-contiguous
    one (gathered) against the whole padded batch through the reference. A bucket's
    products have fewer components than the padded batch's (the sum over components
    in mubar = W^T mu is shorter), which OpenBLAS may round differently in the last
    bit: 1e-13 relative. A misplaced or missing scatter is O(1) off. The padding's
    gradients are exactly 0."""
    sizes = [4, 7, 7, 10]
    J, Mmax, d, B = 4, 10, 3, 120
    p = problem(J, Mmax, d, B, pad=[(j, M) for j, M in enumerate(sizes) if M < Mmax])
    means, std, x0, eps, alpha, sigma, wt, mask = p
    params = {"means": means, "std": std}
    loss_fn = bucketed(lambda *a: gmm_loss(*a, ws=Workspace()), buckets, sizes, np)
    loss, grads = loss_fn(params, x0, eps, alpha, sigma, wt, np, mask)
    ref = reference(*p)
    for g, r in zip((loss, grads["means"], grads["std"]), ref):
        np.testing.assert_allclose(g, r, rtol=1e-13, atol=1e-13 * np.max(np.abs(r)))
    for j, M in enumerate(sizes):
        assert np.all(grads["means"][j, M:] == 0.0)


def test_float32_weights_have_no_subnormals_and_train_as_with_the_old_floor(monkeypatch):
    """With the float32 floor exp(-60) no float32 weight is subnormal where the float64
    floor exp(-100) made most of them so; training is bit-identical to training with
    the old floor (the floored weights sit far below float32 resolution)."""
    p = problem(1, 40, 10, 400, dtype=np.float32)
    means, std, x0, eps, alpha, sigma = p[:6]
    x_t = alpha.astype(np.float32)[:, None] * x0 + sigma.astype(np.float32)[:, None] * eps
    tiny = np.finfo(np.float32).tiny
    for floor, subnormal_expected in ((-100.0, True), (softmax.LOGIT_FLOOR_FLOAT32, False)):
        monkeypatch.setattr(softmax, "LOGIT_FLOOR_FLOAT32", floor)
        W = _posterior(x_t, alpha, sigma, means, std.astype(np.float64) ** 2, np)[0]
        sub = np.count_nonzero((W != 0) & (np.abs(W) < tiny))
        assert (sub > W.size // 50) if subnormal_expected else sub == 0, (floor, sub, W.size)
    cfg = TrainConfig(dim=10, components=2, samples=30, steps=15, noise_draws=10,
                      dtype="float32", lr_peak=1e-2)
    runs = []
    for floor in (-100.0, -60.0):
        monkeypatch.setattr(softmax, "LOGIT_FLOOR_FLOAT32", floor)
        ds = cfg.dataset()
        runs.append(train(ds, initial_state(ds, [5, 30], cfg, np), cfg, np, log_every=5))
    np.testing.assert_array_equal(runs[0].means, runs[1].means)
    np.testing.assert_array_equal(runs[0].std, runs[1].std)
    assert runs[0].losses == runs[1].losses


def test_pcg_draws_keep_their_documented_stream_and_float32_draws_its_own():
    """Chunk c of a stream: times g.integers(0, L, (S, N)), then the noise
    g.standard_normal((S, d, N n)) of g = rng_for(seed, STREAM_NOISE, *key, c), drawn
    rows last (results format 4: no transposed copy); float32 runs draw
    g.standard_normal(..., dtype=float32) instead. Both through BatchDraws' two buffer
    sets over several chunks (reused in turn), drawn ahead by a crew's helper and on
    the training thread alone: the same draws."""
    from gmmdiff.training.draws import BatchDraws
    from gmmdiff.streams import STREAM_NOISE, rng_for
    streams = [(0, 8, 3, 2, 4), (0, 8, 3, 2, 8)]
    N, n, d, L = 8, 5, 3, 26
    for dtype, prefetch in ((np.float64, True), (np.float32, True), (np.float64, False)):
        bd = BatchDraws(streams, N, n, (d,), L, xp=np, dtype=dtype, rows_last=True)
        for k, rows, eps in bd.steps(0, 3 * bd.S + 2, prefetch=prefetch):
            c, o = divmod(k, bd.S)
            assert eps.dtype == dtype and eps.shape == (2, d, N * n)
            for j, st in enumerate(streams):
                g = rng_for(st[0], STREAM_NOISE, *st[1:], c)
                t = g.integers(0, L, size=(bd.S, N))
                e = g.standard_normal((bd.S, d, N * n), dtype=dtype)
                np.testing.assert_array_equal(rows[j], np.repeat(t[o], n))
                np.testing.assert_array_equal(eps[j], e[o])
    z = BatchDraws(streams, 400, 50, (d,), L, xp=np, dtype=np.float32).chunk(0)[1]
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)


def test_buckets_pass_views_and_no_mask_where_nothing_is_padded():
    """What each bucket's loss receives: contiguous buckets get views of the batch's
    parameters and noise (no gather), buckets whose models all have the bucket's size
    get mask=None (no padding work), padded buckets their mask slice."""
    sizes = [4, 7, 7, 10]
    p = problem(4, 10, 3, 50, pad=[(j, M) for j, M in enumerate(sizes) if M < 10])
    means, std, x0, eps, alpha, sigma, wt, mask = p
    seen = []

    def spy(params, x0_b, eps_b, alpha_b, sigma_b, wt_b, xp, mask_b):
        seen.append((np.shares_memory(eps_b, eps), np.shares_memory(params["means"], means),
                     None if mask_b is None else mask_b.copy()))
        return gmm_loss(params, x0_b, eps_b, alpha_b, sigma_b, wt_b, xp, mask_b)

    bucketed(spy, [[0], [1, 2], [3]], sizes, np)({"means": means, "std": std}, x0, eps,
                                                 alpha, sigma, wt, np, mask)
    assert [s[:2] for s in seen] == [(True, True)] * 3
    assert all(s[2] is None for s in seen)
    seen.clear()
    bucketed(spy, [[0, 1], [2, 3]], sizes, np)({"means": means, "std": std}, x0, eps,
                                               alpha, sigma, wt, np, mask)
    np.testing.assert_array_equal(seen[0][2], mask[:2, :7])               # 4 of 7 padded
    np.testing.assert_array_equal(seen[1][2], mask[2:, :10])


def test_a_mask_that_is_not_a_prefix_is_multiplied_as_the_reference_does():
    """Training pads the last components only (slices set just those entries); any
    other mask takes the reference's multiply and pad column: equal to the reference
    to rounding either way, and padding components get exactly zero gradient."""
    p = list(problem(3, 9, 4, 140, pad=[(1, 5)]))
    p[-1][0, 2] = False                                   # a hole: not a prefix
    p[-1][2, 0] = False
    assert blocked._padding(p[-1]) is None
    got = blocked_loss_and_grad(*p)
    assert_rounding_close(got, reference(*p))
    assert np.all(got[1][~p[-1]] == 0.0)
    assert blocked._padding(problem(3, 9, 4, 10, pad=[(1, 5)])[-1]) == [(1, 5)]


def test_tasks_give_the_same_bits_in_any_order_on_any_slots():
    """40 blocks in 16 tasks (groups of consecutive blocks): run backwards on three
    alternating slots, interleaved with another call site's tasks, the results equal
    the in-order run bit for bit -- each task sums into its own slot, added in task
    order at the end."""
    p = problem(2, 6, 5, 40 * 64, pad=[(0, 4)])
    ws = Workspace()
    seq = blocked_loss_and_grad(*p, ws=Workspace(), entries=2 * 6 * 64)
    tasks, finish = blocked.blocked_tasks(*p, ws=ws, entries=2 * 6 * 64, tag=0)
    other, other_finish = blocked.blocked_tasks(*problem(2, 6, 5, 300, seed=1), ws=ws,
                                                entries=2 * 6 * 64, tag=1)
    assert len(tasks) == blocked.MAX_TASKS == 16
    assert blocked.task_blocks(40 * 64, 64)[0] == [(0, 64), (64, 128)]   # 40 blocks -> 16
    order = list(reversed(tasks)) + other
    for i, t in enumerate(order):
        t(i % 3)
    for a, b in zip(finish(), seq):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(other_finish(), blocked_loss_and_grad(*problem(2, 6, 5, 300, seed=1),
                                                           entries=2 * 6 * 64)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_ufunc_buffer_size_changes_no_bit_and_is_restored(monkeypatch, dtype):
    """The tasks run with numpy's ufunc buffer at :data:`blocked.UFUNC_BUFSIZE`: the
    results equal those at numpy's default buffer (8192) and at a tiny one (16) bit for
    bit, padded and with a shared x0, in blocks of 700 rows (an inner loop longer than
    1024) and 100; and the caller's buffer size is back after every call, a failing
    one included."""
    p = problem(3, 10, 7, 1400, dtype=dtype, pad=[(1, 4)], shared_x0=True)
    assert blocked.UFUNC_BUFSIZE == 1024
    for entries in (3 * 10 * 700, 3 * 10 * 100):
        runs = []
        for size in (blocked.UFUNC_BUFSIZE, 8192, 16):
            monkeypatch.setattr(blocked, "UFUNC_BUFSIZE", size)
            runs.append(blocked_loss_and_grad(*p, entries=entries))
        for other in runs[1:]:
            for a, b in zip(other, runs[0]):
                np.testing.assert_array_equal(a, b)
    before = np.getbufsize()
    np.setbufsize(4096)
    try:
        blocked_loss_and_grad(*p)
        assert np.getbufsize() == 4096
        bad = list(p)
        bad[2] = p[2][:-1]                               # x0 short of a row: fails in a task
        tasks, _ = blocked.blocked_tasks(*bad)
        with pytest.raises(ValueError):
            tasks[0](0)
        assert np.getbufsize() == 4096
        with pytest.raises(ValueError):
            blocked_loss_and_grad(*bad)
        assert np.getbufsize() == 4096
    finally:
        np.setbufsize(before)


def test_exp_of_own_components_only_changes_no_bit(monkeypatch):
    """A bucket at least :data:`blocked.PADDED_EXP` padding takes the exp of each
    model's own components only (runs of models of one size): the results equal one
    exp over the whole block bit for bit, and the padding's weights stay 0 (a padded
    mean moved far changes nothing)."""
    pad = [(0, 2), (1, 2), (2, 5), (4, 9)]                               # 5 models of 10
    p = problem(5, 10, 4, 300, pad=pad, shared_x0=True)
    assert blocked._exp_parts(p[-1]) == [(0, 2, 2), (2, 3, 5), (3, 4, 10), (4, 5, 9)]
    assert blocked._exp_parts(problem(5, 10, 4, 30, pad=[(0, 8)])[-1]) is None   # 4% padding
    got = blocked_loss_and_grad(*p, entries=5 * 10 * 64)
    monkeypatch.setattr(blocked, "PADDED_EXP", 2.0)                      # never
    whole = blocked_loss_and_grad(*p, entries=5 * 10 * 64)
    for a, b in zip(got, whole):
        np.testing.assert_array_equal(a, b)
    assert_rounding_close(got, reference(*p))
    monkeypatch.setattr(blocked, "PADDED_EXP", 0.25)
    moved = list(p)
    moved[0] = p[0].copy()
    moved[0][2, 5:] = 50.0
    for a, b in zip(blocked_loss_and_grad(*moved, entries=5 * 10 * 64), got):
        np.testing.assert_array_equal(a, b)


def test_padding_weights_are_cleared_once_and_again_after_other_writers():
    """A bucket whose exp writes each model's own components only clears its padded
    weights once per buffer (:meth:`Workspace.clean_padding`), not on every block: run
    on one slot in turn with call sites of the same block shape that write the whole
    weight buffer (no padding) or pad other models, each call still equals the same
    call on a fresh workspace bit for bit, and so does a bucket met again after its
    buffer grew for a larger one."""
    J, M, d, B = 4, 10, 3, 200
    pads = {"a": [(0, 2), (1, 3), (2, 5)], "b": [], "c": [(3, 1), (1, 2), (0, 4)]}
    probs = {k: problem(J, M, d, B, pad=v, seed=i) for i, (k, v) in enumerate(pads.items())}
    for k in ("a", "c"):
        assert blocked._exp_parts(probs[k][-1]) is not None
    probs["b"] = probs["b"][:-1] + (None,)
    fresh = {k: blocked_loss_and_grad(*p, entries=J * M * 64) for k, p in probs.items()}
    ws = Workspace()
    for k in ["a", "a", "b", "a", "c", "a", "b", "c", "c"]:
        for t in blocked.blocked_tasks(*probs[k], ws=ws, entries=J * M * 64, tag=k)[0]:
            t(0)
        got = blocked.blocked_tasks(*probs[k], ws=ws, entries=J * M * 64, tag=k)
        for t in got[0]:
            t(0)
        for a, b in zip(got[1](), fresh[k]):
            np.testing.assert_array_equal(a, b)
    big = problem(J, 2 * M, d, B, pad=[(0, 3)], seed=5)                  # grows the buffers
    blocked_loss_and_grad(*big, ws=ws, entries=J * M * 64)
    for a, b in zip(blocked_loss_and_grad(*probs["a"], ws=ws, entries=J * M * 64), fresh["a"]):
        np.testing.assert_array_equal(a, b)
    floor = ws.floor((J, M, 64), np.float64)
    assert not floor.flags.writeable and np.all(floor == softmax.LOGIT_FLOOR)
    assert np.all(ws.floor((2, 3), np.float32) == softmax.LOGIT_FLOOR_FLOAT32)


def test_padding_clean_record_is_per_slot_and_per_block_shape():
    """The record of cleared padded weights is kept per thread slot and per block shape:
    the same pads met on another slot, at another block size or in another dimension,
    with whole-buffer writers of those shapes in between, still give a fresh
    workspace's bits; and ``finish`` gives the same results when called again."""
    J, M, d, B = 4, 10, 3, 200
    pads = [(0, 2), (1, 3), (2, 5)]
    a = problem(J, M, d, B, pad=pads, seed=1)
    a2 = problem(J, M, d + 1, B, pad=pads, seed=2)                      # other views key
    full = problem(J, M, d, B, seed=3)[:-1] + (None,)
    full2 = problem(J, M, d + 1, B, seed=4)[:-1] + (None,)
    E = J * M * 64

    def run(p, ws, tag, slot, entries):
        tasks, finish = blocked.blocked_tasks(*p, ws=ws, entries=entries, tag=tag)
        for t in tasks:
            t(slot)
        first = finish()
        for x, y in zip(finish(), first):
            np.testing.assert_array_equal(x, y)
        return first

    fresh = {"a": blocked_loss_and_grad(*a, entries=E), "a2": blocked_loss_and_grad(*a2, entries=E),
             "a128": blocked_loss_and_grad(*a, entries=2 * E)}
    ws = Workspace()
    for name, p, tag, slot, e in [("a", a, 0, 0, E), ("a128", a, 4, 0, 2 * E), ("a", a, 0, 0, E),
                                  ("a", a, 0, 0, E), (None, full, 1, 1, E), ("a", a, 0, 1, E),
                                  ("a2", a2, 2, 0, E), (None, full2, 3, 0, E), ("a", a, 0, 0, E),
                                  ("a2", a2, 2, 0, E), ("a", a, 0, 1, E)]:
        got = run(p, ws, tag, slot, e)
        if name:
            for x, y in zip(got, fresh[name]):
                np.testing.assert_array_equal(x, y)
