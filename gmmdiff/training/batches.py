"""Minibatches: which training samples each optimizer step uses (SPEC 12).

With a batch size B < N, epoch e -- the steps e S .. e S + S - 1, S = ceil(N / B) -- is a
fresh permutation of the N training samples, drawn from the configuration's stream
(seed, ``STREAM_BATCH``, N, e) (:mod:`gmmdiff.streams`), and split in order into S steps
of B samples (the last one N - (S - 1) B). The loss of a step is the mean over its
samples (each with the step's time and noise draws). Full batch (B = N) is one step per
epoch over every sample in their order, as before minibatches existed.

Stateless: a step's samples depend only on the seed, N, B and the step, so a killed run
resumes bit for bit, and shards, Slurm tasks and batches of configurations give the same
samples. Every model size of a configuration sees the same samples at every step: the
sizes of one configuration are trained on one data sequence (paired, as they share the
data set and the initialization's draws; and one gather serves them all). Each size keeps
its own times and noise (:mod:`gmmdiff.training.draws`).
"""
import numpy as np

from gmmdiff.streams import STREAM_BATCH, rng_for


def epoch_order(seed, N, epoch):
    """(N,) int64: the order of the N training samples in epoch ``epoch`` (a permutation)."""
    return rng_for(seed, STREAM_BATCH, int(N), int(epoch)).permutation(int(N))


def step_samples(seed, N, B, step):
    """(b,) int64: the training samples of 0-based optimizer step ``step`` with batch
    size B (b = B, or N - (S - 1) B at the last step of an epoch)."""
    S = -(-N // B)
    epoch, j = divmod(int(step), S)
    if B >= N:
        return np.arange(N)
    return epoch_order(seed, N, epoch)[j * B:(j + 1) * B]


class MiniBatches:
    """The training rows of every step of a minibatch run, for J models.

    Parameters
    ----------
    seeds : (C,) the seed of each configuration of the batch
    X : list of C arrays (N, ...) on the training backend, in the training dtype: each
        configuration's training set
    owners : (J,) each model's configuration
    B, n : samples per step and noise draws per sample
    rows_last : the loss reads rows last ((d, rows) instead of (rows, d))

    :meth:`rows` gives a step's ``x0``: (b n, ...) (or (d, b n)) when every model
    belongs to one configuration, else (J, b n, ...) (or (J, d, b n)), row = i n + k as
    in full-batch training. Each epoch's order is moved to the device once.
    """

    def __init__(self, seeds, X, owners, B, n, *, rows_last=False):
        self.seeds, self.X, self.B, self.n = list(seeds), list(X), int(B), int(n)
        self.owners = list(owners)
        self.used = sorted(set(self.owners))
        self.N = int(self.X[0].shape[0])
        self.S = -(-self.N // self.B)                     # steps per epoch
        self.rows_last = rows_last
        self._epoch, self._order = None, None

    def size(self, step):
        """b: the samples of 0-based step ``step``."""
        j = int(step) % self.S
        return min(self.B, self.N - j * self.B)

    def rows(self, step, xp):
        """x0 of step ``step``: each chosen sample repeated n times (row = i n + k)."""
        epoch, j = divmod(int(step), self.S)
        if epoch != self._epoch:
            self._order = {o: xp.asarray(epoch_order(self.seeds[o], self.N, epoch))
                           for o in self.used}
            self._epoch = epoch
        per = {}
        for o in self.used:
            idx = self._order[o][j * self.B:(j + 1) * self.B]                # (b,)
            x = xp.repeat(self.X[o][idx], self.n, axis=0)                     # (b n, ...)
            per[o] = xp.ascontiguousarray(x.T) if self.rows_last else x
        if len(self.used) == 1:
            return per[self.used[0]]
        return xp.stack([per[o] for o in self.owners])                       # (J, ...)
