r"""The numpy training loss in cache-sized row blocks, into buffers reused every step,
spread over the cores as tasks.

:func:`gmmdiff.model.losses._batched_loss_and_grad` is the reference: one array program over
all B rows, written once for numpy and cupy. On a CPU that program makes about 30
passes over the (J, M, B) and (J, d, B) blocks per step, most into a fresh array, so
at the paper's shape it moves ~14 GB per step through main memory and page-faults on
every new array. :func:`blocked_tasks` computes the same quantities on blocks of rows
small enough that a block's (J, M, rows) arrays stay in the cache, into buffers of a
:class:`Workspace` allocated on the first step and reused on every later one.

Its formulas are the reference's rearranged to make fewer passes over the blocks
(every per-row factor is computed once per task on (J, rows) arrays, where it is
cheap), with a = alpha, s = sigma, v = a^2 var + s^2, av = a / v, b = s^2 / v and
E = exp(S) (the weights W = E / sum E, unnormalized):

- U = av x_t = (a av) x0 + (s av) eps straight from x0 and eps (no x_t array), and
  err = x0hat - x0 = b (mubar - x0) + var s av eps: the reference's x0hat - x0 loses
  x0's share to cancellation (a^2 var / v - 1 = -b, nearly 0 at small t), which this
  form cancels exactly, so its float32 losses are closer to float64's;
- 1 / sum E goes into the per-row factors of mubar's and R's uses (no pass dividing
  the (J, M, rows) block);
- R'' = (2 / B) wt b err / sum E carries the factor b of every gradient term, so that
  G' = b G = E (mu R'' - R'.mubar / sum E), W (b R)^T = E R''^T, and the reference's
  G (c1 x_t)^T and G c1 alpha (c1 = b av) are G' U^T and -2 G' U_d: one product with
  U, no (J, d + 1, rows) operand of their own;
- d/dstd = 2 std sum (R'.U - a av (R'.mubar + G'.S)), R' = b R.

So results equal the reference's to rounding (the tests bound the difference), not
bit for bit.

float32 avoids three cancellations that its rounding (~1e-7 \|x0\|) turns into errors
near memorized states (means ~1e-5 from the data, variance ~1e-9, t = 0.001: float32
gradients were 1-2e-3 off float64's on the same inputs, up to 19%; now ~1e-7, at most
2e-5); float64 keeps the forms above, bit for bit. D = b (mubar - x0) comes from
mubar sum E - (sum E) x0, the difference first (exact where one weight holds), not b
mubar - b x0; R'.U - a av R'.mubar = R'.(s av eps - (a / s)^2 D) = ke \|eps\|^2 + kd
D.eps - kq \|D\|^2 (err = D + ce eps), with no x_t - a mubar (~1e-3 \|x0\| at t = 0.001);
R'.mubar = sum_m E_m (R''.mu_m) from G's own products, so G = 0 exactly where one
weight holds (else ~1e-7 R.mu, times av x_t ~ 1e6 x_t in the means' gradient).

Every loss and gradient term is a sum over rows, so the blocks' sums simply add up.
The blocks are grouped into at most :data:`MAX_TASKS` tasks of consecutive blocks (a
function of the shapes only); a task sums its blocks in order into a slot of its own,
and the slots are added in task order at the end. So the tasks may run on any threads
in any order (:class:`gmmdiff.engine.threads.Crew`) and the result is the same bit for bit,
on one core or many.

Models without padding (every model of the block as large as the block) skip the
padding work; padded models get their padding logits and weights set by slices (only
the padded entries are touched), where the reference multiplies by a mask; where the
exp runs on each model's own components only, the padded weights are set once per
buffer (:meth:`Workspace.clean_padding`), not on every block. The logit floor is a
constant array, not a scalar (numpy's ``maximum`` has no SIMD loop for a scalar
operand).
"""
import math

import numpy as np

from gmmdiff.softmax import PAD_LOGIT, logit_floor

# Entries of one (J, M, rows) block: 2^16 float64 = 512 KiB per array, the four such
# arrays of a block (logits, weights in float64, weights and G in the training dtype)
# within the 2-4 MiB of cache per core of current CPUs with the (J, d, rows) arrays
# beside them; blocks never go below MIN_ROWS rows (call overhead).
BLOCK_ENTRIES = 1 << 16
MIN_ROWS = 64
# Row-block groups per loss call (per bucket of sizes): each group's partial sums are
# kept apart (a (J, M, d + 1) slot each) until the end, so this bounds that memory.
MAX_TASKS = 16
# numpy's ufunc buffer (elements) while a task runs. A per-row factor broadcast over a
# block's (J, d, rows) array, the block's most common operation, leaves numpy's
# iterator an inner loop of one block row; with its default buffer of 8192 it copies
# the broadcast operand into buffers to run longer inner loops, which costs more than
# it saves: with 1024 such a multiply ran 1.3-1.9x faster at blocks of 1,310 and 327
# rows (numpy 2.4), and the whole loss (one thread, CPU time, medians of interleaved
# calls) 6% faster at the default shape, 8% at the middle and 5% at the paper's. The
# buffer size never changes a result: only how the loops are cut (the tests check the
# bits).
UFUNC_BUFSIZE = 1024
# Padded share of a bucket's entries from which its exp skips the padding (_exp_parts).
PADDED_EXP = 0.25


class Workspace:
    """Buffers for :func:`blocked_tasks`, allocated once and reused: one per training
    run. Each thread slot gets one flat buffer per kind of block array, sized for the
    largest bucket it has met and shared by all (a slot runs one task at a time), and
    each loss call site (``tag``, one per bucket of sizes) its own partial sums."""

    def __init__(self):
        self._sets = {}
        self._views = {}              # slot -> {shape key -> views of the slot's buffers}
        self._pads = {}               # (tag, mask) -> (padded, pads, exp parts)
        self._groups = {}             # (B, rows per block, max tasks) -> task_blocks
        self._floors = {}             # (dtype str) -> a flat float64 array of the floor
        self._clean = {}              # slot -> (views, pads) whose W padding is 0

    def _set(self, key, shapes):
        bufs = self._sets.get(key)
        if bufs is None:
            bufs = self._sets[key] = {name: np.empty(shape, dtype=t)
                                      for name, (shape, t) in shapes.items()}
        return bufs

    def buffers(self, J, M, d, k, Bb, dtype, slot=0):
        """The block buffers of thread ``slot`` for blocks of ``Bb`` rows of J models of
        M components in d dimensions (k columns of logit factors), weights in
        ``dtype``: a dict of uninitialized arrays, views of the slot's flat buffers
        (grown, once, where a larger bucket needs more): the same memory on every
        call once every bucket has been met."""
        key = (J, M, d, k, Bb, dtype)
        mine = self._views.setdefault(slot, {})   # this slot's own: no other thread writes it
        views = mine.get(key)
        if views is not None:
            return views
        dt = np.dtype(dtype)
        f64 = np.float64
        shapes = {"scr": ((J, d, Bb), dt), "err": ((J, d, Bb), dt),
                  "U": ((J, k, Bb), f64), "S": ((J, M, Bb), f64), "W": ((J, M, Bb), f64),
                  "G": ((J, M, Bb), dt), "mubar": ((J, d, Bb), dt),
                  "GP": ((J, M, d + 1), dt), "GM": ((J, M, d), dt)}
        if dt != f64:
            shapes["Ut"] = ((J, k, Bb), dt)
            shapes["Wt"] = ((J, M, Bb), dt)
        flat = self._sets.setdefault(("block", slot, dt.str), {})
        out = {}
        for name, (shape, t) in shapes.items():
            size = math.prod(shape)
            buf = flat.get(name)
            if buf is None or buf.size < size:
                buf = flat[name] = np.empty(size, dtype=t)
                mine.clear()
            out[name] = buf[:size].reshape(shape)
        mine[key] = out
        return out

    def floor(self, shape, dtype):
        """A read-only float64 array of ``shape`` holding :func:`logit_floor` of
        ``dtype`` everywhere (a view of one flat array per dtype, shared by every
        thread): numpy's ``maximum`` has SIMD loops for two arrays but not for an array
        and a scalar, which ran ~3x slower (numpy 2.4)."""
        key = np.dtype(dtype).str
        size = math.prod(shape)
        flat = self._floors.get(key)
        if flat is None or flat.size < size:
            flat = np.full(size, logit_floor(dtype), dtype=np.float64)
            flat.flags.writeable = False
            self._floors[key] = flat
        return flat[:size].reshape(shape)

    def clean_padding(self, slot, views, pads):
        """Before a task's exps on thread ``slot`` with ``views`` (its
        :meth:`buffers`): where ``pads`` are given (the exp writes each model's own
        components only, :func:`_exp_parts`), set the padded entries of ``views["W"]``
        to 0 unless the last call on this slot, with the same views and pads, already
        did (nothing has written the buffer since: a buffer grown anew comes with new
        views); ``pads`` None: the exp writes all of W, so that record is dropped."""
        if pads is None:
            self._clean.pop(slot, None)
            return
        got = self._clean.get(slot)
        if got is not None and got[0] is views and got[1] == pads:
            return
        W = views["W"]
        for j, m in pads:
            W[j, m:] = 0.0
        self._clean[slot] = (views, pads)

    def sums(self, tag, T, J, M, d, k):
        """The partial sums of ``T`` tasks of one loss call site (float64): loss (T,
        J), ds (T, J), gp (T, J, M, d + 1), gm (T, J, M, d), and the logits' left factor
        rows (J, M, k)."""
        f64 = np.float64
        return self._set(("sums", tag, T, J, M, d, k),
                         {"loss": ((T, J), f64), "ds": ((T, J), f64),
                          "gp": ((T, J, M, d + 1), f64), "gm": ((T, J, M, d), f64),
                          "rows": ((J, M, k), f64)})

    def padding(self, tag, mask):
        """``(padded, pads, parts)`` of ``mask`` (J, M) or None: whether any component
        is padding, :func:`_padding` (``[]`` where none is) and :func:`_exp_parts`;
        computed once per call site and mask."""
        if mask is None:
            return False, [], None
        key = (tag, mask.shape, mask.tobytes())
        got = self._pads.get(key)
        if got is None:
            padded = not bool(mask.all())
            pads = _padding(mask) if padded else []
            got = self._pads[key] = (padded, pads, _exp_parts(mask) if pads else None)
        return got

    def task_blocks(self, B, Bb, max_tasks=None):
        """:func:`task_blocks`, computed once per shape."""
        key = (B, Bb, max_tasks)
        got = self._groups.get(key)
        if got is None:
            got = self._groups[key] = task_blocks(B, Bb, max_tasks)
        return got

    def nbytes(self):
        """Bytes held by every buffer."""
        return sum(b.nbytes for bufs in self._sets.values() for b in bufs.values())


def block_rows(J, M, B, entries=None):
    """Rows per block: ``entries`` (default :data:`BLOCK_ENTRIES`) / (J M), at least
    :data:`MIN_ROWS`, at most B."""
    entries = BLOCK_ENTRIES if entries is None else entries
    return int(min(B, max(MIN_ROWS, entries // max(1, J * M))))


def task_blocks(B, Bb, max_tasks=None):
    """The row blocks of each task: a list of lists of (b0, b1), consecutive blocks of
    ``Bb`` rows (the last may be shorter) split into at most ``max_tasks`` (default
    :data:`MAX_TASKS`) near-equal groups of consecutive blocks. Shapes only: never the
    number of cores."""
    max_tasks = MAX_TASKS if max_tasks is None else max_tasks
    blocks = [(b0, min(B, b0 + Bb)) for b0 in range(0, B, Bb)]
    T = min(len(blocks), max(1, max_tasks))
    return [blocks[g * len(blocks) // T:(g + 1) * len(blocks) // T] for g in range(T)]


def _padding(mask):
    """Padded models of a bucket as (model, size) pairs where the mask is a prefix
    (True for the first components only, as training's padding is), else None."""
    sizes = mask.sum(axis=1)
    if not np.array_equal(mask, np.arange(mask.shape[1]) < sizes[:, None]):
        return None
    return [(j, int(m)) for j, m in enumerate(sizes) if m < mask.shape[1]]


def _exp_parts(mask):
    """Where a prefix-padded bucket (:func:`_padding`) is mostly padding (at least
    :data:`PADDED_EXP` of its entries), the exp runs on each model's own components
    only: runs of consecutive models of one size as ``(j0, j1, size)``; else None (one
    exp over the whole block). The exp is a block's costliest pass where numpy's
    float64 exp has no SIMD loop (CPUs without AVX-512: ~5 ns each); the default
    shape's one bucket (sizes 2, 4, ..., 20) is 45% padding."""
    sizes = mask.sum(axis=1)
    if 1.0 - sizes.sum() / mask.size < PADDED_EXP:
        return None
    parts, j0 = [], 0
    for j in range(1, len(sizes) + 1):
        if j == len(sizes) or sizes[j] != sizes[j0]:
            if sizes[j0] > 0:
                parts.append((j0, j, int(sizes[j0])))
            j0 = j
    return parts


def blocked_tasks(means, std, x0, eps, alpha, sigma, wt, mask=None, *, ws=None,
                  entries=None, tag=0, max_tasks=None):
    """:func:`gmmdiff.model.losses._batched_loss_and_grad` (numpy) in row blocks, as tasks (its
    formulas rearranged, see the module's docstring: equal to rounding).

    means: (J, M, d); std: (J,); x0: (J, d, B) or (d, B); eps: (J, d, B); alpha, sigma,
    wt: (J, B) float64; mask: (J, M) bool or None; ws: :class:`Workspace` (a fresh one
    when None); entries: block size in (J x M x rows) entries (:func:`block_rows`);
    tag: the call site's key in ``ws`` (calls whose tasks are pending at the same time
    need different tags); max_tasks: see :func:`task_blocks`.

    Returns ``(tasks, finish)``: every ``task(slot)`` must be called once, in any order
    and on any thread (``slot``: the calling thread's own index, 0, 1, ...; two tasks
    running at once need different slots), then ``finish()`` returns ``(loss (J,),
    grad_means (J, M, d), grad_std (J,))``, dtype of ``means`` (the same on every call
    until the call site's tasks run again).
    """
    ws = Workspace() if ws is None else ws
    dt = means.dtype
    f64 = np.float64
    J, M, d = means.shape
    B = eps.shape[-1]
    if alpha.shape != (J, B):
        alpha, sigma, wt = (np.broadcast_to(a, (J, B)) for a in (alpha, sigma, wt))
    padded, pads, parts = ws.padding(tag, mask)
    by_slices = pads is not None
    pads = pads or []
    groups = ws.task_blocks(B, block_rows(J, M, B, entries), max_tasks)
    Bb = groups[0][0][1] - groups[0][0][0]
    var = std.astype(f64) ** 2                                           # (J,)
    var_t = var.astype(dt)[:, None, None]
    mu = means.astype(f64, copy=False)
    # the logits' left factor [mu, |mu|^2] (U's rows: [av x_t, -alpha av / 2]), with the
    # pad bias as a last column where the padding is not a prefix of the components
    k = d + 1 + (padded and not by_slices)
    sums = ws.sums(tag, len(groups), J, M, d, k)
    rows = sums["rows"]
    rows[..., :d] = mu
    np.einsum("jmd,jmd->jm", mu, mu, out=rows[..., d])
    if k > d + 1:
        rows[..., d + 1] = np.where(mask, 0.0, PAD_LOGIT)
    meansT = np.swapaxes(means, -1, -2)                                  # (J, d, M) view
    FL_b = ws.floor((J, M, Bb), dt)                                      # the logit floor
    narrow, shared_x0 = dt != f64, x0.ndim == 2    # narrow: float32's forms (docstring)

    def task(g, slot):
        old = np.setbufsize(UFUNC_BUFSIZE)           # this thread's, while the task runs
        try:
            _task(g, slot)
        finally:
            np.setbufsize(old)

    def _task(g, slot):
        buf = ws.buffers(J, M, d, k, Bb, dt, slot)
        ws.clean_padding(slot, buf, None if parts is None else pads)     # W's padding: 0
        scr_b, err_b, U_b, S_b, W_b = (buf[n] for n in ("scr", "err", "U", "S", "W"))
        Ut_b, Wt_b = buf.get("Ut"), buf.get("Wt")                        # None in float64
        G_b, mubar_b, GP_b, GM_b = (buf[n] for n in ("G", "mubar", "GP", "GM"))
        loss, ds, gp, gm = (sums[n][g] for n in ("loss", "ds", "gp", "gm"))
        loss[...] = 0.0
        ds[...] = 0.0
        gp[...] = 0.0
        gm[...] = 0.0
        # the per-row coefficients of the task's rows, (J, rows) float64, once per task
        r0, r1 = groups[g][0][0], groups[g][-1][1]
        a, s = alpha[:, r0:r1], sigma[:, r0:r1]
        ss = s * s
        v = a * a * var[:, None] + ss                                    # alpha^2 var + sigma^2
        av = a / v
        cx0 = a * av                                                     # U = av x_t = cx0 x0 + cs eps
        cs = s * av
        b = ss / v                                                       # sigma^2 / v
        rs = ((2.0 / B) * wt[:, r0:r1]) * b                              # R' = b dL/dx0hat = rs err
        ud = -0.5 * cx0                                                  # U's last row
        cx0_t, cs_t, b_t, w_t = (c.astype(dt, copy=False) for c in (cx0, cs, b, wt[:, r0:r1]))
        if narrow:      # per-row factors of |D|^2, D.eps, |eps|^2 (module docstring)
            q2, ce = (a / s) ** 2, var[:, None] * cs                     # err = D + ce eps
            ce2, cee = 2.0 * ce, ce * ce                                 # in |err|^2
            ke, kd, kq = rs * cs * ce, rs * (cs - q2 * ce), rs * q2      # in R'.(U - a av mubar)
        for b0, b1 in groups[g]:
            n = b1 - b0
            i0, i1 = b0 - r0, b1 - r0                                    # in the task's rows
            scr, err, U, S, W = (x[..., :n] for x in (scr_b, err_b, U_b, S_b, W_b))
            G, mubar = G_b[..., :n], mubar_b[..., :n]
            Ut = U if Ut_b is None else Ut_b[..., :n]                    # U in dtype dt
            x0b = x0[:, b0:b1] if shared_x0 else x0[:, :, b0:b1]         # (d, n) | (J, d, n)
            # U = [av x_t; -alpha av / 2 (; 1)] with x_t = alpha x0 + sigma eps, and the
            # logits S = [mu, |mu|^2 (, pad)] @ U  (J, M, n)
            np.multiply(cs_t[:, None, i0:i1], eps[:, :, b0:b1], out=scr)
            np.multiply(cx0_t[:, None, i0:i1], x0b, out=Ut[:, :d])
            Ut[:, :d] += scr
            Ut[:, d] = ud[:, i0:i1]
            if k > d + 1:
                Ut[:, d + 1] = 1.0
            if Ut_b is not None:
                U[...] = Ut
            np.matmul(rows, U, out=S)
            for j, m in pads:                        # the reference's pad bias, exactly
                S[j, m:] = PAD_LOGIT
            # softmax over components, floored by dtype (gmmdiff.softmax.softmax_)
            S -= S.max(axis=1, keepdims=True)
            np.maximum(S, FL_b[..., :n], out=S)
            if parts is None:
                np.exp(S, out=W)
                if by_slices:
                    for j, m in pads:                # W * mask, on the padded entries only
                        W[j, m:] = 0.0
                elif padded:
                    W *= mask[..., None]
            else:                                    # each model's own components only
                for j0, j1, m in parts:              # (the padding is 0: clean_padding)
                    np.exp(S[j0:j1, :m], out=W[j0:j1, :m])
            # the weights are W = E / sum E with E = exp(S): E is kept, and 1 / sum E
            # goes into the per-row coefficients (no pass dividing the block)
            sumE = W.sum(axis=1)                                         # (J, n) float64
            inv = 1.0 / sumE
            if Wt_b is None:
                Wt = W
            else:
                Wt = Wt_b[..., :n]
                Wt[...] = W
            np.matmul(meansT, Wt, out=mubar)                             # mubar sum E  (J, d, n)
            # err = x0hat - x0 = (a var / v) x_t + b mubar - x0 = b (mubar - x0) + var s av eps
            # (a^2 var / v - 1 = -b: x0's share cancels exactly here, not in rounding)
            scr *= var_t                                                 # var s av eps
            bi = b[:, i0:i1] * inv
            if narrow:  # D = b (mubar - x0), the difference first (module docstring)
                np.multiply(sumE.astype(dt)[:, None, :], x0b, out=err)
                np.subtract(mubar, err, out=err)
                err *= bi.astype(dt)[:, None, :]                         # D  (J, d, n)
                epsb = eps[:, :, b0:b1]
                dd, de, ee = (np.einsum("jdb,jdb->jb", p, q)            # |D|^2, D.eps, |eps|^2
                              for p, q in ((err, err), (err, epsb), (epsb, epsb)))
                err += scr
                sq = dd + ce2[:, i0:i1] * de + cee[:, i0:i1] * ee        # |err|^2 (float64)
                loss += np.einsum("jb,jb->j", wt[:, b0:b1], sq)
            else:
                np.multiply(bi.astype(dt, copy=False)[:, None, :], mubar, out=err)
                err += scr
                np.multiply(b_t[:, None, i0:i1], x0b, out=scr)
                err -= scr
                loss += np.einsum("jb,jb->j", w_t[:, i0:i1], np.einsum("jdb,jdb->jb", err, err))
            # R'' = R' / sum E, R' = b R, R = dL/dx0hat = (2 / B) wt err, in place
            R = err
            R *= (rs[:, i0:i1] * inv).astype(dt, copy=False)[:, None, :]
            # G' = b G, G_m = W_m (R.mu_m - R.mubar) = E_m (R''.mu_m - R'.mubar / sum E)
            if narrow:  # R'.mubar from G's products: G = 0 where one weight holds
                np.matmul(means, R, out=G)                               # (J, M, n)
                rmbar = np.einsum("jmb,jmb->jb", G, Wt)                  # R'.mubar = b (R.mubar)
            else:
                rmbar = np.einsum("jdb,jdb->jb", R, mubar)               # R'.mubar = b (R.mubar)
                np.matmul(means, R, out=G)                               # (J, M, n)
            G -= (rmbar * inv).astype(dt, copy=False)[:, None, :]
            G *= Wt
            GS = np.einsum("jmb,jmb->jb", G, S)                          # (J, n) float64
            # G (c1 x_t)^T with c1 = b a / v is G' (av x_t)^T; G c1 alpha is -2 G' U_d
            np.matmul(G, np.swapaxes(Ut[:, :d + 1], -1, -2), out=GP_b)
            gp += GP_b
            np.matmul(Wt, np.swapaxes(R, -1, -2), out=GM_b)             # E R''^T = W (b R)^T
            gm += GM_b
            # ds = sum (alpha sigma^2 / v^2)(R.x_t - alpha R.mubar) - (b alpha^2 / v) GS
            #    = sum R'.U - (alpha av)(R'.mubar + G'.S)
            #    (per row in float64, whatever the dtype)
            if narrow:  # R'.U - a av R'.mubar from the dots (module docstring)
                dsr = ke[:, i0:i1] * ee + kd[:, i0:i1] * de - kq[:, i0:i1] * dd
                dsr -= cx0[:, i0:i1] * GS
            else:
                dsr = np.einsum("jdb,jdb->jb", R, Ut[:, :d]) * sumE      # R'.U  (float64)
                dsr -= cx0[:, i0:i1] * (rmbar + GS)
            ds += dsr.sum(axis=-1)

    def finish():
        loss, ds, gp, gm = (sums[n] for n in ("loss", "ds", "gp", "gm"))
        lt, dst, gpt, gmt = loss[0].copy(), ds[0].copy(), gp[0].copy(), gm[0].copy()
        for g in range(1, len(groups)):                                  # in task order
            lt += loss[g]
            dst += ds[g]
            gpt += gp[g]
            gmt += gm[g]
        gmt += gpt[..., :-1]
        gmt += (2.0 * gpt[..., -1:]) * means                             # G c1 alpha = -2 G' U_d
        grad_means = gmt.astype(dt)
        grad_std = (2.0 * std.astype(f64) * dst).astype(dt)
        return (lt / B).astype(dt), grad_means, grad_std

    return [lambda slot, g=g: task(g, slot) for g in range(len(groups))], finish


def blocked_loss_and_grad(means, std, x0, eps, alpha, sigma, wt, mask=None, *, ws=None,
                          entries=None, max_tasks=None):
    """:func:`blocked_tasks` run here, task after task: ``(loss (J,), grad_means (J, M,
    d), grad_std (J,))``, the same bits as the tasks spread over any threads."""
    tasks, finish = blocked_tasks(means, std, x0, eps, alpha, sigma, wt, mask, ws=ws,
                                  entries=entries, max_tasks=max_tasks)
    for t in tasks:
        t(0)
    return finish()
