"""The training noise: every step's times and noise draws, model by model (SPEC 5, 8).

One optimizer step gives every training sample one time drawn uniformly from the grid
and ``noise_draws`` noise draws. Each model draws from its own stream, keyed by
(seed, N, d, K, M) (:func:`noise_stream`), so a model's draws do not depend on which
other models share its batch.

Draws are stateless, so a run resumes from any step without saving generator state,
and one call draws a chunk of S steps at once. On numpy they come from numpy's PCG64
("pcg"): the times and noise of steps [c S, (c + 1) S) of a stream come from the stream
and the chunk index c (S = :func:`draw_chunk_steps`, a function of the data shape
only), drawn one chunk ahead, stream by stream, as background jobs of the training
loop's helper threads (:class:`gmmdiff.engine.threads.Crew`, where there is a core for one)
into two buffers allocated once, in the layout the loss reads (rows last: (S, d, N n)
since results format 4, no transposed copy). float64 runs draw float64 normals;
float32 runs draw numpy's float32 normals from the same generator (a stream of their
own since results format 3). On cupy they
come from the counter-based generator of :mod:`gmmdiff.rng` on the device ("hash"): a
step's draws come from the stream and the step, so the chunk size is free to follow
the device's memory (see :func:`draw_chunk` and :class:`BatchDraws`).
"""
import numpy as np

from gmmdiff import rng as counter_rng
from gmmdiff.backend import available_bytes
from gmmdiff.engine import kernels, threads
from gmmdiff.streams import STREAM_NOISE, rng_for

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
    eps (U, S, per))`` -- the kernels of :mod:`gmmdiff.engine.kernels` on a device (noise
    computed in float64 and stored in ``dtype``: the float64 draws rounded once, as a
    cast would, without a per-step cast), the same arithmetic as array code on numpy
    (float64)."""
    if xp is not np:
        return (kernels.step_rows(base_t, first, steps, N, n, L),
                kernels.step_normals(base_e, first, steps, per, dtype))
    t = counter_rng.integers_of(counter_rng.step_keys(base_t, first, steps), L, N)
    return np.repeat(t, n, axis=-1), counter_rng.normals_of(counter_rng.step_keys(base_e, first, steps), per)


def draw_chunk(stream, chunk, steps, N, n, shape, L, *, xp=np, source="pcg", rows_last=False,
               dtype=np.float64, out=None):
    """Times and noise of one stream (:func:`noise_stream`) for steps
    [chunk * steps, (chunk + 1) * steps): ``(t_idx (S, N), eps (S, N n, *shape))``;
    rows of eps are sample-major (row = i n + k). With ``rows_last`` (``shape`` = (d,))
    eps is (S, d, N n), drawn in that layout by both sources (pcg: since results
    format 4; before, (S, N n, d) drawn and transposed). ``dtype`` (pcg): float64, or
    float32 for float32 runs (numpy's float32 normals,
    ``standard_normal(dtype=float32)``: a stream of its own, not float64 draws rounded);
    hash draws are float64. ``out`` (pcg): an array of eps's shape and dtype to draw
    into (no new array).

    source "pcg": numpy's PCG64 on the host, one generator per (stream, chunk) (the
    numpy default: fastest on a CPU); "hash": the counter-based generator of
    :mod:`gmmdiff.rng`, drawn on backend ``xp``, one key per (stream, step), so a
    step's draws do not depend on the chunk size (the cupy default: nothing crosses the
    bus, and numpy with "hash" gives the same draws up to the last bits of the normals).
    :class:`BatchDraws` draws all streams of a batch at once the same way.
    """
    eps_shape = (steps, shape[0], N * n) if rows_last else (steps, N * n) + tuple(shape)
    if source == "hash":
        kt, ke = (xp.asarray(np.array([k], dtype=np.uint64)) for k in _stream_keys(stream))
        rows, eps = _hash_chunk(kt, ke, chunk * steps, steps, N, n, int(np.prod(shape)) * N * n,
                                L, xp)
        return rows[0, :, ::n], eps[0].reshape(eps_shape)
    if source != "pcg":
        raise ValueError(f"unknown noise source {source!r}; accepted: {', '.join(NOISE_SOURCES)}")
    seed, rest = stream[0], tuple(stream[1:])
    g = rng_for(seed, STREAM_NOISE, *rest, chunk)
    t_idx = g.integers(0, L, size=(steps, N))
    if out is not None:
        return t_idx, g.standard_normal(dtype=dtype, out=out)
    return t_idx, g.standard_normal(eps_shape, dtype=dtype)


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
    noise_dtype : pcg: the dtype the normals are drawn in (default float32 for float32
        runs, else float64; float64 draws for a float32 run are rounded once per step)

    With "hash" every distinct stream of the batch is drawn at once, chunk by chunk: on
    cupy by the two kernels of :mod:`gmmdiff.engine.kernels` (2 launches per chunk, whatever
    the number of streams; chunks sized by device memory, :func:`device_chunk_steps`),
    on numpy by the same arithmetic as array code. With "pcg" each stream is drawn on the
    host by its own generator (on cupy its noise then crosses the bus every step).
    """

    def __init__(self, streams, N, n, shape, L, *, xp, dtype, source=None, rows_last=False,
                 noise_dtype=None):
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
        # sets of buffers allocated once, in turn (chunk c into set c % 2: the one the
        # chunk before last used, which no step reads any more once chunk c - 1 is
        # current)
        self.draw_dtype = np.dtype(noise_dtype if noise_dtype is not None else
                                   np.float32 if np.dtype(dtype) == np.float32 else np.float64)
        self._buffers = self._rows = None
        if self.source == "pcg":
            U = len(self.unique)
            self._buffers = [np.empty((U, self.S) + self.eps_shape, dtype=self.draw_dtype)
                             for _ in range(2)]
            self._rows = [np.empty((U, self.S, N * n), dtype=np.int64) for _ in range(2)]
        if self.source == "hash":
            keys = np.array([_stream_keys(st) for st in self.unique], dtype=np.uint64)
            self.base_t, self.base_e = self.dev.asarray(keys[:, 0]), self.dev.asarray(keys[:, 1])
            if self.dev is not np:
                self.S = device_chunk_steps(len(self.unique), per_step + N * n, self.dev)

    def _draw_stream(self, c, u):
        """pcg: stream ``u``'s part of chunk ``c``, into buffer set c % 2."""
        S, N, n = self.S, self.N, self.n
        t = draw_chunk(self.unique[u], c, S, N, n, self.shape, self.L, source="pcg",
                       rows_last=self.rows_last, dtype=self.draw_dtype,
                       out=self._buffers[c % 2][u])[0]
        self._rows[c % 2][u].reshape(S, N, n)[...] = t[:, :, None]   # each row's sample's time

    def _chunk_jobs(self, c):
        """The jobs drawing chunk ``c``: one per stream (pcg), or one for all (hash)."""
        if self.source == "pcg":
            return [lambda u=u: self._draw_stream(c, u) for u in range(len(self.unique))]
        return [lambda: self.chunk(c)]

    def _done(self, c, results):
        return (self._rows[c % 2], self._buffers[c % 2]) if self.source == "pcg" else results[0]

    def chunk(self, c):
        """Chunk ``c`` of every distinct stream: ``(rows (U, S, B) grid index of each
        row's time, eps (U, S, ...))``. With "pcg", both are one of two buffer sets used
        in turn: valid until chunk c + 2 is drawn."""
        dev, U, S, N, n = self.dev, len(self.unique), self.S, self.N, self.n
        if self.source == "hash":
            rows, eps = _hash_chunk(self.base_t, self.base_e, c * S, S, N, n,
                                    int(np.prod(self.eps_shape)), self.L, dev, self.dtype)
            return rows, eps.reshape((U, S) + self.eps_shape)
        for u in range(U):
            self._draw_stream(c, u)
        return self._rows[c % 2], self._buffers[c % 2]

    def _at(self, rows, eps, offset):
        """One step of a chunk for every model: (rows (J, B), eps (J, ...))."""
        dev = self.dev
        if self.one_stream_each:
            return rows[:, offset], eps[:, offset]
        if len(self.unique) == 1:                                        # --common-noise: no copies
            return (dev.broadcast_to(rows[0, offset], (self.J,) + rows.shape[2:]),
                    dev.broadcast_to(eps[0, offset], (self.J,) + eps.shape[2:]))
        return rows[self.which_dev, offset], eps[self.which_dev, offset]  # some streams shared

    def steps(self, start, stop, prefetch=True, crew=None):
        """Generator of ``(k, rows (J, B) grid index of each row, eps (J, ...))`` for the
        steps k = start..stop-1, on the training backend and dtype (B = N n rows,
        sample-major). Use it with :func:`contextlib.closing`: closing it stops the
        drawing of the chunk ahead.

        With ``prefetch``, host draws of the next chunk are made ahead, as background
        jobs of ``crew`` (a :class:`gmmdiff.engine.threads.Crew`; None: a crew of one helper
        of its own) while this thread trains (numpy releases the GIL while it fills
        arrays); the draws depend only on the chunk index, so prefetching changes
        nothing in the results.
        """
        xp, dev, S = self.xp, self.dev, self.S
        own = None
        if prefetch and dev is np and start < stop and crew is None:
            crew = own = threads.Crew(1)
        if not (prefetch and dev is np):
            crew = None
        pending = None
        try:
            for k in range(start, stop):
                chunk, offset = divmod(k, S)
                if offset == 0 or k == start:
                    if pending is not None:
                        rows_c, eps_c = self._done(chunk, crew.wait_all(pending))
                    else:
                        rows_c, eps_c = self.chunk(chunk)
                    pending = None
                    if crew is not None and (chunk + 1) * S < stop:
                        pending = [crew.submit(fn) for fn in self._chunk_jobs(chunk + 1)]
                rows, eps = self._at(rows_c, eps_c, offset)
                yield k, xp.asarray(rows), xp.asarray(eps, dtype=self.dtype)
        finally:
            for job in pending or ():             # closed early: drop or finish them
                crew.cancel(job)
            if own is not None:
                own.close()
