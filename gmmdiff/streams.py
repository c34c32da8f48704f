"""Random streams: every random draw of gmmdiff comes from one integer seed.

A stream is a :class:`numpy.random.SeedSequence` of the seed with a spawn key; draws
of different keys are independent, and a key names what the draws are for, so adding a
draw somewhere never shifts the draws of anything else. The keys of one seed:

====  ==========================  =========================================
key   constant                    draws
====  ==========================  =========================================
0     ``STREAM_MEANS``            the mixture's means (SPEC 2)
1     ``STREAM_TRAIN``            the training set (and its labels)
2     ``STREAM_TEST``             the held-out set
3     ``STREAM_SUBSET``           the memorization order of theta_pmem,M
10    ``STREAM_INIT``             a model's initial parameters (+ M)
11    ``STREAM_NOISE``            training times and noise (+ stream, chunk;
                                  :mod:`gmmdiff.training.draws`)
12    ``STREAM_SAMPLE``           starting points and DDPM noise of sampling (+ M)
13    ``STREAM_FRESH``            fresh data for the W2 distance (+ M)
14    ``STREAM_EVAL``             per-time evaluation noise (+ split)
15    ``STREAM_BATCH``            the minibatches' order of the training set (+ N,
                                  epoch; :mod:`gmmdiff.training.batches`)
20    ``STREAM_TEMPLATE_PICK``    which images of a template file are used
====  ==========================  =========================================
"""
import numpy as np

STREAM_MEANS, STREAM_TRAIN, STREAM_TEST, STREAM_SUBSET = 0, 1, 2, 3
STREAM_INIT, STREAM_NOISE, STREAM_SAMPLE, STREAM_FRESH, STREAM_EVAL = 10, 11, 12, 13, 14
STREAM_BATCH = 15
STREAM_TEMPLATE_PICK = 20


def rng_for(seed, *key):
    """A numpy Generator for the stream ``key`` of ``seed`` (independent per key)."""
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed = {seed!r} must be a non-negative integer")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(key)))


def eval_seed(cfg, split):
    """Seed of the evaluation noise for a split (0 train, 1 test) of configuration
    ``cfg``: shared by every model and baseline of the configuration (common random
    numbers, so differences between models are far less noisy)."""
    return int(rng_for(cfg.seed, STREAM_EVAL, split).integers(2**63))
