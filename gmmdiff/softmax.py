"""The stable softmax over mixture components, shared by every denoiser and the fused
kernels of :mod:`gmmdiff.engine.kernels`.

Logits are shifted by their maximum over components (so the largest weight is exp(0) =
1), floored at :data:`LOGIT_FLOOR`, exponentiated and normalized. Padding components of
a batch of models of different sizes carry the logit bias :data:`PAD_LOGIT` and a mask
that sets their weight to exactly 0.
"""

# Shifted logits below this are clipped before exp: exp(-100) ~ 4e-44 is far below
# float64 resolution against the largest weight exp(0) = 1 (so every weight sum and mean
# is unchanged), and exp near underflow takes a slower path.
LOGIT_FLOOR = -100.0
# The floor for weights stored in float32 (the logits themselves are always float64):
# exp(-100) = 3.7e-44 is a float32 *subnormal*, and every product that touches one runs
# tens of times slower on x86 (a microcode assist per operand). exp(-60) = 8.8e-27 is
# normal with 2^40 of headroom above the smallest normal float32 (1.2e-38), so the
# products of weights with rows of size 1e-6 or more stay normal too; and it is still
# 2^62 below float32 resolution against the largest weight (2^-24 ~ exp(-16.6)), so every
# weight sum, mean and gradient is the same as with -100 up to the last bit in
# practice (the tests compare training bit for bit).
LOGIT_FLOOR_FLOAT32 = -60.0
PAD_LOGIT = -1e300      # logit bias of padding components (finite, so 0 * bias stays 0)


def logit_floor(dtype):
    """The logit floor for weights stored in ``dtype``: :data:`LOGIT_FLOOR_FLOAT32` for
    float32 (and narrower), :data:`LOGIT_FLOOR` otherwise. Python float."""
    import numpy as np
    return LOGIT_FLOOR_FLOAT32 if np.dtype(dtype).itemsize <= 4 else LOGIT_FLOOR


def softmax_(logits, axis, xp, mask=None, floor=LOGIT_FLOOR):
    """Softmax of ``logits`` along ``axis``, computed in place: on return ``logits``
    holds the shifted, floored logits S = max(l - max l, floor). Returns the
    weights exp(S) / sum exp(S) (a new array, dtype of ``logits``).

    mask : None or a bool array broadcastable to ``logits`` (False = padding component,
    weight exactly 0; its logit should already carry :data:`PAD_LOGIT`).
    floor : :func:`logit_floor` of the dtype the weights will be stored in.
    """
    logits -= xp.max(logits, axis=axis, keepdims=True)
    xp.maximum(logits, floor, out=logits)
    W = xp.exp(logits)
    if mask is not None:
        W *= mask
    W /= xp.sum(W, axis=axis, keepdims=True)
    return W
