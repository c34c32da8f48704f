"""Size buckets: models of very different sizes trained in one array program.

Packing J models into one (J, Mmax, ...) batch pads every model to the largest size;
with sizes from N/10 to N most of that batch is padding. :func:`plan_buckets` splits
the models into buckets of similar size, each padded only to its own largest model, and
:func:`bucketed` evaluates a family's loss bucket by bucket, scattering losses and
gradients back into the padded layout. Each model's result is unchanged (padding has
weight 0 and zero gradient); only the work changes.
"""
import numpy as np

# Fixed cost of one batched loss evaluation, in units of (component x row) entries.
# numpy: ~0.7 ms of call overhead against ~50 ns per entry at the paper's shapes
# (measured on a 2-core CPU). cupy: ~35 (fused) to ~130 (plain) kernel launches per
# bucket, 5-10 us of host time each, against ~0.05 ns per entry of memory traffic --
# an estimate between the two, not yet measured on a GPU.
BUCKET_OVERHEAD = {"numpy": 13_000, "cupy": 10_000_000}


def plan_buckets(sizes, rows, overhead=BUCKET_OVERHEAD["numpy"]):
    """Split models into buckets of similar size, each padded only to its own largest
    size: minimizes sum over buckets of (models x largest size x rows + overhead) by
    dynamic programming over the sizes in increasing order.

    Returns a list of index arrays into ``sizes`` (one bucket: all models)."""
    order = np.argsort(np.asarray(sizes), kind="stable")
    s = np.asarray(sizes, dtype=np.float64)[order]       # costs in float: no int64 overflow
    J = len(s)
    best = np.full(J + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(J + 1, dtype=int)
    for j in range(1, J + 1):
        for i in range(j):
            c = best[i] + (j - i) * s[j - 1] * rows + overhead
            if c < best[j]:
                best[j], cut[j] = c, i
    buckets, j = [], J
    while j > 0:
        buckets.append(np.sort(order[cut[j]:j]))
        j = cut[j]
    return buckets[::-1]


def _index(b, xp):
    """Model indices ``b`` (sorted) as a slice where they are evenly spaced, so that a
    bucket's parameters, data and noise are views, not gathered copies; otherwise a
    device index array."""
    b = np.asarray(b)
    step = int(b[1] - b[0]) if len(b) > 1 else 1
    if step > 0 and np.all(np.diff(b) == step):
        return slice(int(b[0]), int(b[-1]) + 1, step)
    return xp.asarray(b)


def bucketed(loss_fn, buckets, sizes, xp, runner=None):
    """``loss_fn`` evaluated bucket by bucket on parameters sliced to each bucket's own
    largest size, with losses and gradients scattered back into the padded layout
    (:func:`plan_buckets`). One bucket and no ``runner``: ``loss_fn`` itself.

    A bucket whose models are a contiguous range j0..j1 of the batch (the usual case:
    sizes in increasing order) or evenly spaced (:func:`_index`) takes its parameters
    and noise as views (no gather) and writes its gradients straight into the batch's
    gradients; a bucket whose models all have its largest size gets no mask
    (``mask=None``: no padding work). Gradients beyond a bucket's largest size are set
    to 0 (only those: no zero fill of the whole batch); below it they come from the
    loss, which gives padding components exactly 0.

    runner : None, or a callable that calls every task of a list once
        (:meth:`gmmdiff.engine.threads.Crew.run`); then ``loss_fn`` must take ``defer=True`` and
        ``tag=`` (bucket index) and return ``(tasks, finish)`` (a family with
        ``workspace``, :func:`gmmdiff.engine.blocked.blocked_tasks`): the tasks of every bucket
        of a step go to the runner together, then each bucket finishes in order.
    """
    J = len(sizes)
    if len(buckets) == 1 and runner is None:
        return loss_fn
    if len(buckets) == 1:
        def whole(params, x0, eps, alpha, sigma, wt, xp_, mask):
            tasks, finish = loss_fn(params, x0, eps, alpha, sigma, wt, xp_, mask, defer=True,
                                    tag=0)
            runner(tasks)
            return finish()
        return whole
    plan = []
    for b in buckets:
        b = np.asarray(b)
        Mg = int(max(sizes[i] for i in b))
        plan.append((_index(b, xp), Mg, all(sizes[i] == Mg for i in b)))

    def loss(params, x0, eps, alpha, sigma, wt, xp_, mask):
        total = None
        grads = {k: xp.empty_like(v) for k, v in params.items()}        # all written below
        for k, g in grads.items():
            for idx, Mg, _ in plan:                  # components beyond each bucket's Mg
                if g.ndim > 1 and Mg < g.shape[1]:
                    g[idx, Mg:] = 0
        calls = []
        for tag, (idx, Mg, full) in enumerate(plan):
            sub = {k: (v[idx] if v.ndim == 1 else v[idx, :Mg]) for k, v in params.items()}
            x0_b = x0[idx] if x0.ndim == eps.ndim else x0                # per-model or shared
            args = (sub, x0_b, eps[idx], alpha[idx], sigma[idx], wt[idx], xp_,
                    None if full else mask[idx, :Mg])
            calls.append(loss_fn(*args, defer=True, tag=tag) if runner is not None else args)
        if runner is not None:
            runner([t for tasks, _ in calls for t in tasks])
        for (idx, Mg, _), call in zip(plan, calls):
            lb, gb = call[1]() if runner is not None else loss_fn(*call)
            if total is None:
                total = xp.empty(J, dtype=lb.dtype)
            total[idx] = lb
            for k, g in gb.items():
                if g.ndim == 1:
                    grads[k][idx] = g
                else:
                    grads[k][idx, :Mg] = g
        return total, grads

    return loss
