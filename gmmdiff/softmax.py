"""The stable softmax over mixture components, shared by every denoiser and the fused
kernels of :mod:`gmmdiff.kernels`.

Logits are shifted by their maximum over components (so the largest weight is exp(0) =
1), floored at :data:`LOGIT_FLOOR`, exponentiated and normalized. Padding components of
a batch of models of different sizes carry the logit bias :data:`PAD_LOGIT` and a mask
that sets their weight to exactly 0.
"""

# Shifted logits below this are clipped before exp: exp(-100) ~ 4e-44 is far below
# float64 resolution against the largest weight exp(0) = 1 (so every weight sum and mean
# is unchanged), and exp near underflow takes a slower path.
LOGIT_FLOOR = -100.0
PAD_LOGIT = -1e300      # logit bias of padding components (finite, so 0 * bias stays 0)


def softmax_(logits, axis, xp, mask=None):
    """Softmax of ``logits`` along ``axis``, computed in place: on return ``logits``
    holds the shifted, floored logits S = max(l - max l, LOGIT_FLOOR). Returns the
    weights exp(S) / sum exp(S) (a new array, dtype of ``logits``).

    mask : None or a bool array broadcastable to ``logits`` (False = padding component,
    weight exactly 0; its logit should already carry :data:`PAD_LOGIT`).
    """
    logits -= xp.max(logits, axis=axis, keepdims=True)
    xp.maximum(logits, LOGIT_FLOOR, out=logits)
    W = xp.exp(logits)
    if mask is not None:
        W *= mask
    W /= xp.sum(W, axis=axis, keepdims=True)
    return W
