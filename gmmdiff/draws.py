"""The training noise: every step's times and noise draws, model by model (SPEC 5, 8).

One optimizer step gives every training sample one time drawn uniformly from the grid
and ``noise_draws`` noise draws. Each model draws from its own stream, keyed by
(seed, N, d, K, M) (:func:`noise_stream`), so a model's draws do not depend on which
other models share its batch.

Draws are stateless: the times and noise of steps [c S, (c + 1) S) of a stream come
from the stream and the chunk index c (S = :func:`draw_chunk_steps`), so a run resumes
from any step without saving generator state, and one call draws S steps at once. On
numpy they come from numpy's PCG64 ("pcg"), drawn one chunk ahead on a second thread
while the first trains; on cupy from the counter-based generator of :mod:`gmmdiff.rng`
on the device ("hash"; see :func:`draw_chunk`).
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import rng as counter_rng
from .streams import STREAM_NOISE, rng_for

NOISE_SOURCES = ("pcg", "hash")


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


def draw_chunk(stream, chunk, steps, N, n, shape, L, *, xp=np, source="pcg", fused=False,
               rows_last=False):
    """Times and noise of one stream (:func:`noise_stream`) for one chunk:
    ``(t_idx (S, N), eps (S, N n, *shape))``, float64; rows of eps are sample-major
    (row = i n + k). With ``rows_last`` (``shape`` = (d,)) eps is (S, d, N n): source
    "hash" draws it in that layout, "pcg" transposes its draws.

    source "pcg": numpy's PCG64 on the host (the numpy default: fastest on a CPU);
    "hash": the counter-based generator of :mod:`gmmdiff.rng`, drawn on backend ``xp``
    (the cupy default: nothing crosses the bus, and numpy with "hash" gives the same
    draws up to the last bits of the normals); ``fused`` draws those normals with one
    cupy kernel.
    """
    seed, rest = stream[0], tuple(stream[1:])
    if source == "hash":
        key_t = counter_rng.stream_key(seed, STREAM_NOISE, *rest, chunk, 0)
        key_eps = counter_rng.stream_key(seed, STREAM_NOISE, *rest, chunk, 1)
        eps_shape = (steps, shape[0], N * n) if rows_last else (steps, N * n) + tuple(shape)
        return (counter_rng.integers(key_t, L, (steps, N), xp),
                counter_rng.normals(key_eps, eps_shape, xp, fused=fused))
    if source != "pcg":
        raise ValueError(f"unknown noise source {source!r}; accepted: {', '.join(NOISE_SOURCES)}")
    g = rng_for(seed, STREAM_NOISE, *rest, chunk)
    t_idx = g.integers(0, L, size=(steps, N))
    eps = g.standard_normal((steps, N * n) + tuple(shape))
    return t_idx, (xp.swapaxes(eps, -1, -2) if rows_last else eps)


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
    fused : cupy and "hash" only: normals from one kernel
    rows_last : noise laid out (J, d, B) instead of (J, B, d)
    """

    def __init__(self, streams, N, n, shape, L, *, xp, dtype, source=None, fused=False,
                 rows_last=False):
        self.xp, self.dtype = xp, dtype
        self.source = source or ("pcg" if xp is np else "hash")
        self.dev = xp if self.source == "hash" else np                   # where draws live
        self.N, self.n, self.shape, self.L = N, n, tuple(shape), L
        self.S = draw_chunk_steps(N, n, int(np.prod(shape)))
        self.fused = fused and self.dev is not np
        self.rows_last = rows_last
        self.unique = list(dict.fromkeys(streams))                       # first-appearance order
        self.which = [self.unique.index(st) for st in streams]           # model -> stream
        self.J = len(streams)
        self.eps_shape = (self.shape[0], N * n) if rows_last else (N * n,) + self.shape

    def chunk(self, c):
        """Chunk ``c`` of every distinct stream: ``(t_idx (U, S, N), eps (U, S, ...))``."""
        dev, U = self.dev, len(self.unique)
        t_c = dev.empty((U, self.S, self.N), dtype=dev.int64)
        e_c = dev.empty((U, self.S) + self.eps_shape)
        for u, st in enumerate(self.unique):
            t_c[u], e_c[u] = draw_chunk(st, c, self.S, self.N, self.n, self.shape, self.L,
                                        xp=dev, source=self.source, fused=self.fused,
                                        rows_last=self.rows_last)
        return t_c, e_c

    def _at(self, t_chunk, eps_chunk, offset):
        """One step of a chunk for every model: (t_idx (J, N), eps (J, ...))."""
        dev = self.dev
        if self.which == list(range(self.J)):
            return t_chunk[:, offset], eps_chunk[:, offset]
        if len(self.unique) == 1:                                        # --common-noise: no copies
            return (dev.broadcast_to(t_chunk[0, offset], (self.J, self.N)),
                    dev.broadcast_to(eps_chunk[0, offset], (self.J,) + eps_chunk.shape[2:]))
        return t_chunk[self.which, offset], eps_chunk[self.which, offset]  # some streams shared

    def steps(self, start, stop):
        """Generator of ``(k, rows (J, B) grid index of each row, eps (J, ...))`` for the
        steps k = start..stop-1, on the training backend and dtype (B = N n rows,
        sample-major). Use it with :func:`contextlib.closing`: closing it stops the
        prefetching thread.

        Host draws of the next chunk are made on a second thread while this one trains
        (numpy releases the GIL while it fills arrays); the draws depend only on the
        chunk index, so prefetching changes nothing in the results.
        """
        xp, dev, S = self.xp, self.dev, self.S
        pool = ThreadPoolExecutor(1) if dev is np and start < stop else None
        pending = None
        try:
            for k in range(start, stop):
                chunk, offset = divmod(k, S)
                if offset == 0 or k == start:
                    t_chunk, eps_chunk = pending.result() if pending is not None else self.chunk(chunk)
                    pending = None
                    if pool is not None and (chunk + 1) * S < stop:
                        pending = pool.submit(self.chunk, chunk + 1)
                t_now, eps_now = self._at(t_chunk, eps_chunk, offset)
                rows = xp.asarray(dev.repeat(t_now, self.n, axis=1))     # (J, B)
                yield k, rows, xp.asarray(eps_now, dtype=self.dtype)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
