"""The training noise: every step's times and noise draws, model by model (SPEC 5, 8).

One optimizer step gives every training sample one time drawn uniformly from the grid
and ``noise_draws`` noise draws. Each model draws from its own stream, keyed by
(seed, N, d, K, M) (:func:`noise_stream`), so a model's draws do not depend on which
other models share its batch.

Draws are stateless, so a run resumes from any step without saving generator state,
and one call draws a chunk of S steps at once. On numpy they come from numpy's PCG64
("pcg"): the times and noise of steps [c S, (c + 1) S) of a stream come from the stream
and the chunk index c (S = :func:`draw_chunk_steps`, a function of the data shape
only), drawn one chunk ahead on a second thread while the first trains (where the
thread budget leaves a core for it, :mod:`gmmdiff.threads`), into two buffers allocated
once. float64 runs draw float64 normals; float32 runs draw numpy's float32 normals from
the same generator (a stream of their own since results format 3). On cupy they
come from the counter-based generator of :mod:`gmmdiff.rng` on the device ("hash"): a
step's draws come from the stream and the step, so the chunk size is free to follow
the device's memory (see :func:`draw_chunk` and :class:`BatchDraws`).
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import kernels
from . import rng as counter_rng
from .backend import available_bytes
from .streams import STREAM_NOISE, rng_for

NOISE_SOURCES = ("pcg", "hash")
DEVICE_CHUNK_FRACTION = 0.0625      # of the free device memory, per draw chunk


def draw_chunk_steps(N, n, size, budget=1 << 20):
    """Steps per draw chunk: as many as keep one chunk of noise under ``budget``
    numbers (at most 64); ``size`` numbers per sample. Depends only on the data shape,
    never on the batch."""
    return int(max(1, min(64, budget // (N * n * size))))


def noise_stream(cfg, M):
    """The key of model size M's times and noise: (seed, N, d, K, M), so models of
    different configurations draw independently; with ``cfg.common_noise`` every model
    of the same (N, d) shares one stream (0, N, d)."""
    if cfg.common_noise:
        return (0, cfg.samples, cfg.dim)
    return (cfg.seed, cfg.samples, cfg.dim, cfg.components, M)


def device_chunk_steps(U, per_step, xp, fraction=None, cap=512):
    """Steps per draw chunk on a GPU: as many as fit ``U`` streams of ``per_step``
    numbers per step (float64 noise and int64 rows) in ``fraction`` of the device's free
    memory, at most ``cap``. The hash draws of a step do not depend on the chunking, so
    this only sets how often the draw kernels run (every S steps)."""
    fraction = DEVICE_CHUNK_FRACTION if fraction is None else fraction
    return int(max(1, min(cap, fraction * available_bytes(xp) // (8 * U * per_step))))


def _stream_keys(stream):
    """Base keys (times, noise) of a stream: Python ints."""
    seed, rest = stream[0], tuple(stream[1:])
    return tuple(counter_rng.stream_key(seed, STREAM_NOISE, *rest, k) for k in (0, 1))


def _hash_chunk(base_t, base_e, first, steps, N, n, per, L, xp, dtype=np.float64):
    """Steps first .. first + steps - 1 of the streams with base keys ``base_t``,
    ``base_e`` (U,) uint64 on ``xp``: ``(rows (U, S, N n) grid index of each row's time,
    eps (U, S, per))`` -- the kernels of :mod:`gmmdiff.kernels` on a device (noise
    computed in float64 and stored in ``dtype``: the float64 draws rounded once, as a
    cast would, without a per-step cast), the same arithmetic as array code on numpy
    (float64)."""
    if xp is not np:
        return (kernels.step_rows(base_t, first, steps, N, n, L),
                kernels.step_normals(base_e, first, steps, per, dtype))
    t = counter_rng.integers_of(counter_rng.step_keys(base_t, first, steps), L, N)
    return np.repeat(t, n, axis=-1), counter_rng.normals_of(counter_rng.step_keys(base_e, first, steps), per)


def draw_chunk(stream, chunk, steps, N, n, shape, L, *, xp=np, source="pcg", rows_last=False,
               dtype=np.float64, out=None, scratch=None):
    """Times and noise of one stream (:func:`noise_stream`) for steps
    [chunk * steps, (chunk + 1) * steps): ``(t_idx (S, N), eps (S, N n, *shape))``;
    rows of eps are sample-major (row = i n + k). With ``rows_last`` (``shape`` = (d,))
    eps is (S, d, N n): source "hash" draws it in that layout, "pcg" transposes its
    draws. ``dtype`` (pcg): float64, or float32 for float32 runs (numpy's float32
    normals, ``standard_normal(dtype=float32)``: a stream of its own, not float64
    draws rounded); hash draws are float64. ``out`` (pcg): an array of eps's shape and
    dtype to draw into (no new array); ``scratch``: with ``rows_last``, an array of
    shape (S, N n, d) to draw into before the transposed copy into ``out``.

    source "pcg": numpy's PCG64 on the host, one generator per (stream, chunk) (the
    numpy default: fastest on a CPU); "hash": the counter-based generator of
    :mod:`gmmdiff.rng`, drawn on backend ``xp``, one key per (stream, step), so a
    step's draws do not depend on the chunk size (the cupy default: nothing crosses the
    bus, and numpy with "hash" gives the same draws up to the last bits of the normals).
    :class:`BatchDraws` draws all streams of a batch at once the same way.
    """
    if source == "hash":
        kt, ke = (xp.asarray(np.array([k], dtype=np.uint64)) for k in _stream_keys(stream))
        eps_shape = (steps, shape[0], N * n) if rows_last else (steps, N * n) + tuple(shape)
        rows, eps = _hash_chunk(kt, ke, chunk * steps, steps, N, n, int(np.prod(shape)) * N * n,
                                L, xp)
        return rows[0, :, ::n], eps[0].reshape(eps_shape)
    if source != "pcg":
        raise ValueError(f"unknown noise source {source!r}; accepted: {', '.join(NOISE_SOURCES)}")
    seed, rest = stream[0], tuple(stream[1:])
    g = rng_for(seed, STREAM_NOISE, *rest, chunk)
    t_idx = g.integers(0, L, size=(steps, N))
    draw_shape = (steps, N * n) + tuple(shape)
    if out is not None and not rows_last:
        return t_idx, g.standard_normal(dtype=dtype, out=out)
    eps = g.standard_normal(dtype=dtype, out=scratch) if scratch is not None else \
        g.standard_normal(draw_shape, dtype=dtype)
    eps = xp.swapaxes(eps, -1, -2) if rows_last else eps
    if out is not None:
        out[...] = eps
        return t_idx, out
    return t_idx, eps


class BatchDraws:
    """The times and noise of a batch of J models, step by step.

    Parameters
    ----------
    streams : (J,) stream keys (:func:`noise_stream`); models with the same key share
        one stream's draws (``--common-noise``), drawn once
    N, n, shape : training samples, noise draws per sample, shape of one sample
    L : grid size (times are grid indices)
    xp : the training backend;  dtype : the training dtype of the noise
    source : "pcg" (default on numpy) or "hash" (default on cupy), see :func:`draw_chunk`
    rows_last : noise laid out (J, d, B) instead of (J, B, d)

    With "hash" every distinct stream of the batch is drawn at once, chunk by chunk: on
    cupy by the two kernels of :mod:`gmmdiff.kernels` (2 launches per chunk, whatever
    the number of streams; chunks sized by device memory, :func:`device_chunk_steps`),
    on numpy by the same arithmetic as array code. With "pcg" each stream is drawn on the
    host by its own generator (on cupy its noise then crosses the bus every step).
    """

    def __init__(self, streams, N, n, shape, L, *, xp, dtype, source=None, rows_last=False):
        self.xp, self.dtype = xp, dtype
        self.source = source or ("pcg" if xp is np else "hash")
        if self.source not in NOISE_SOURCES:
            raise ValueError(f"unknown noise source {self.source!r}; accepted: {', '.join(NOISE_SOURCES)}")
        self.dev = xp if self.source == "hash" else np                   # where draws live
        self.N, self.n, self.shape, self.L = N, n, tuple(shape), L
        self.rows_last = rows_last
        self.unique = list(dict.fromkeys(streams))                       # first-appearance order
        self.which = [self.unique.index(st) for st in streams]           # model -> stream
        self.J = len(streams)
        self.which_dev = self.dev.asarray(np.asarray(self.which))        # one copy, not per step
        self.one_stream_each = self.which == list(range(self.J))
        self.eps_shape = (self.shape[0], N * n) if rows_last else (N * n,) + self.shape
        per_step = N * n * int(np.prod(shape))
        self.S = draw_chunk_steps(N, n, int(np.prod(shape)))
        # pcg: the noise of float32 runs is drawn in float32; chunks are drawn into two
        # buffers allocated once, in turn (chunk c into buffer c % 2: the one the chunk
        # before last used, which no step reads any more once chunk c - 1 is current)
        self.draw_dtype = np.float32 if np.dtype(dtype) == np.float32 else np.float64
        self._buffers = self._scratch = None
        if self.source == "pcg":
            self._buffers = [np.empty((len(self.unique), self.S) + self.eps_shape,
                                      dtype=self.draw_dtype) for _ in range(2)]
            self._scratch = (np.empty((self.S, N * n) + self.shape, dtype=self.draw_dtype)
                             if rows_last else None)
        if self.source == "hash":
            keys = np.array([_stream_keys(st) for st in self.unique], dtype=np.uint64)
            self.base_t, self.base_e = self.dev.asarray(keys[:, 0]), self.dev.asarray(keys[:, 1])
            if self.dev is not np:
                self.S = device_chunk_steps(len(self.unique), per_step + N * n, self.dev)

    def chunk(self, c):
        """Chunk ``c`` of every distinct stream: ``(rows (U, S, B) grid index of each
        row's time, eps (U, S, ...))``. With "pcg", eps is one of two buffers used in
        turn: valid until chunk c + 2 is drawn."""
        dev, U, S, N, n = self.dev, len(self.unique), self.S, self.N, self.n
        if self.source == "hash":
            rows, eps = _hash_chunk(self.base_t, self.base_e, c * S, S, N, n,
                                    int(np.prod(self.eps_shape)), self.L, dev, self.dtype)
            return rows, eps.reshape((U, S) + self.eps_shape)
        t_c = np.empty((U, S, N), dtype=np.int64)
        e_c = self._buffers[c % 2]                       # the chunk before last's buffer
        for u, st in enumerate(self.unique):
            t_c[u] = draw_chunk(st, c, S, N, n, self.shape, self.L, source="pcg",
                                rows_last=self.rows_last, dtype=self.draw_dtype, out=e_c[u],
                                scratch=self._scratch)[0]
        return np.repeat(t_c, n, axis=-1), e_c

    def _at(self, rows, eps, offset):
        """One step of a chunk for every model: (rows (J, B), eps (J, ...))."""
        dev = self.dev
        if self.one_stream_each:
            return rows[:, offset], eps[:, offset]
        if len(self.unique) == 1:                                        # --common-noise: no copies
            return (dev.broadcast_to(rows[0, offset], (self.J,) + rows.shape[2:]),
                    dev.broadcast_to(eps[0, offset], (self.J,) + eps.shape[2:]))
        return rows[self.which_dev, offset], eps[self.which_dev, offset]  # some streams shared

    def steps(self, start, stop, prefetch=True):
        """Generator of ``(k, rows (J, B) grid index of each row, eps (J, ...))`` for the
        steps k = start..stop-1, on the training backend and dtype (B = N n rows,
        sample-major). Use it with :func:`contextlib.closing`: closing it stops the
        prefetching thread.

        With ``prefetch``, host draws of the next chunk are made on a second thread while
        this one trains (numpy releases the GIL while it fills arrays); the draws depend
        only on the chunk index, so prefetching changes nothing in the results.
        """
        xp, dev, S = self.xp, self.dev, self.S
        pool = ThreadPoolExecutor(1) if prefetch and dev is np and start < stop else None
        pending = None
        try:
            for k in range(start, stop):
                chunk, offset = divmod(k, S)
                if offset == 0 or k == start:
                    rows_c, eps_c = pending.result() if pending is not None else self.chunk(chunk)
                    pending = None
                    if pool is not None and (chunk + 1) * S < stop:
                        pending = pool.submit(self.chunk, chunk + 1)
                rows, eps = self._at(rows_c, eps_c, offset)
                yield k, xp.asarray(rows), xp.asarray(eps, dtype=self.dtype)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
