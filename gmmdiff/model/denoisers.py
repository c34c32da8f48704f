"""Closed-form Gaussian-mixture denoisers (SPEC section 4).

For theta = (mu_1..mu_M, s) with uniform weights and isotropic variance s >= 0::

    v_t   = alpha_t^2 s + sigma_t^2
    l_m   = -|x_t - alpha_t mu_m|^2 / (2 v_t)
    w     = softmax(l)
    x0hat = (alpha_t s / v_t) x_t + (sigma_t^2 / v_t) sum_m w_m mu_m

The x0 prediction is written once (:func:`gmm_x0`); eps, v and score come from the
one conversion :func:`convert`. Since v_t >= sigma_t^2 > 0 for t in (0, 1), s = 0 is
handled exactly: the softmax then sharpens towards the nearest-neighbour rule.

Logits use the expansion of ``|x - alpha mu|^2`` (one matrix product), always accumulated
in float64: in float32 that expansion loses every digit at t = 0.001 (``|x|^2 ~ 2d``
against distances ``~ d t^2``). Inputs in float32 therefore get float64 logits and float32
everything else; tests show the float64 expansion equals the direct difference.
"""
from dataclasses import dataclass

import numpy as np

from gmmdiff.backend import array_namespace
from gmmdiff.model.data import memorized_subset
from gmmdiff.model.process import (
    check_process,
    check_target,
    check_times,
    coefficients,
    target_coefficients,
)
from gmmdiff.softmax import PAD_LOGIT, logit_floor, softmax_


@dataclass(frozen=True)
class GMMParams:
    """Parameters theta of a GMM denoiser (uniform weights, isotropic variance).

    Attributes
    ----------
    means : (M, d) array
        The component means.
    var : float
        The component variance s >= 0 (0: the hard nearest-neighbour limit).
    """
    means: object
    var: float


def generalizing(mixture):
    """theta*, the generalizing parameters: the K true means and the true variance s*.

    Parameters
    ----------
    mixture : GaussianMixture
        The data model (``Dataset.mixture``).

    Returns
    -------
    GMMParams
        ``means`` (K, d), ``var`` s*.
    """
    return GMMParams(mixture.means, float(mixture.var))


def memorizing(X):
    """theta_mem, the memorizing parameters: every training point as a component,
    variance 0.

    Parameters
    ----------
    X : (N, d) array
        The training set.

    Returns
    -------
    GMMParams
        ``means`` X (N, d), ``var`` 0.
    """
    return GMMParams(X, 0.0)


def partially_memorizing(X, M, seed):
    """theta_pmem,M, the partially memorizing parameters: M distinct training points
    (a seeded subset), variance 0.

    Subsets are nested: with one seed, the subset of size M is the first M entries of
    one seeded order of the training points.

    Parameters
    ----------
    X : (N, d) array
        The training set.
    M : int
        Number of memorized points, 1 <= M <= N.
    seed : int
        Seed of the order of the training points.

    Returns
    -------
    params : GMMParams
        ``means`` (M, d) on the backend of ``X``, ``var`` 0.
    subset : (M,) int numpy array
        The host indices into ``X`` of the memorized points.
    """
    subset = memorized_subset(X.shape[0], M, seed)
    xp = array_namespace(X)
    return GMMParams(X[xp.asarray(subset)], 0.0), subset


# ---------------------------------------------------------------------------------
# batched internals: leading axes "..." index independent models (J models in training)
# ---------------------------------------------------------------------------------

def _rowdot(a, b, xp):
    """Dot products along the last axis: (..., d), (..., d) -> (...).

    numpy: einsum, ~4x faster than sum(a * b, -1) for short rows. cupy: an elementwise
    product summed over the last axis: CuPy's einsum runs this contraction as a batched
    matrix product with m = n = 1 (cupy/linalg/_einsum.py), one tiny product per row."""
    if xp is np:
        return xp.einsum("...d,...d->...", a, b)
    return xp.sum(a * b, axis=-1)


def _coldot(a, b, xp):
    """Dot products down the columns of rows-last blocks: (..., d, B), (..., d, B) ->
    (..., B).

    On cupy an elementwise product summed over the contracted axis: CuPy's einsum
    would copy both operands into (batch, B, d) order and run one 1 x 1 matrix product
    per column (cupy/linalg/_einsum.py), about three times the traffic."""
    if xp is np:
        return xp.einsum("...db,...db->...b", a, b)
    return xp.sum(a * b, axis=-2)


def _scaled_stack(a, c, extra, xp, rows_first=False):
    """``concatenate([a * c[..., None, :], *extra], axis=-2)``: (..., d, B) columns
    scaled per row by c (..., B), with the (..., k, B) blocks ``extra`` appended, in
    the dtype of the product; with ``rows_first`` as the (..., B, d + k) operand of a
    matrix product over the rows.

    numpy: that expression (``rows_first``: its transposed view, which numpy's matmul
    reads as it is). cupy: the product written straight into its place in a contiguous
    result, so there is neither a concatenation copy nor, ``rows_first``, the
    transposed copy CuPy's matmul makes of an operand that is not C-contiguous."""
    if xp is np:
        out = xp.concatenate([a * c[..., None, :], *extra], axis=-2) if extra else a * c[..., None, :]
        return xp.swapaxes(out, -1, -2) if rows_first else out
    d, B = a.shape[-2:]
    k = sum(e.shape[-2] for e in extra)
    dt = xp.result_type(a, c)
    lead = np.broadcast_shapes(a.shape[:-2], c.shape[:-1], *(e.shape[:-2] for e in extra))
    out = xp.empty(lead + ((B, d + k) if rows_first else (d + k, B)), dtype=dt)
    cols = xp.swapaxes(out, -1, -2) if rows_first else out            # (..., d + k, B) view
    xp.multiply(a, c[..., None, :], out=cols[..., :d, :])
    for e in extra:
        cols[..., d:d + e.shape[-2], :] = e
        d += e.shape[-2]
    return out


def _posterior(x_t, alpha, sigma, means, var, xp, mask=None):
    """Posterior weights over components and their mean, rows last.

    x_t: (..., d, B) noisy points as columns; alpha, sigma: (..., B); means: (..., M, d);
    var: (...) or scalar; mask: (..., M) bool or None (False = padding component,
    weight exactly 0).

    Returns ``(Wt (..., M, B), mubar (..., d, B), S (..., M, B), v (..., B))``: the
    weights (dtype of ``means``), their mean of the components, the shifted logits
    S = l - max_m l in float64 (S = -(D - D_min) / (2 v) with D the squared distances
    |x_t - alpha mu_m|^2, floored at :func:`gmmdiff.softmax.logit_floor` of the dtype of
    ``means``), and
    v = alpha^2 s + sigma^2 in float64.

    The logits come from one float64 matrix product of augmented columns,
    l_m = (alpha x.mu_m - alpha^2 |mu_m|^2 / 2) / v + pad_m (the |x|^2 / (2v) term is
    the same for every component and cancels in the softmax; pad_m is 0 for real
    components and -1e300 for padding). Rows last keeps every per-row scalar a
    broadcast along the contiguous axis, and the reductions over components run over
    whole contiguous rows of B entries.

    (The fused cupy path, :func:`gmmdiff.model.losses._fused_loss_and_grad`, builds the same
    logits with its own kernels.)
    """
    f64 = xp.float64
    var = xp.asarray(var, dtype=f64)[..., None]                          # (..., 1)
    a64 = alpha.astype(f64, copy=False)
    s64 = sigma.astype(f64, copy=False)
    v = a64 * a64 * var + s64 * s64                                      # (..., B)
    mu = means.astype(f64, copy=False)
    av = a64 / v
    extra = [(-0.5 * a64 * av)[..., None, :]]
    rows = [mu, _rowdot(mu, mu, xp)[..., None]]
    if mask is not None:
        extra.append(xp.ones_like(v)[..., None, :])
        rows.append(xp.where(mask, 0.0, PAD_LOGIT)[..., None])
    U = _scaled_stack(x_t, av, extra, xp)                               # (..., d+1|2, B) float64
    S = xp.matmul(xp.concatenate(rows, axis=-1), U)                     # (..., M, B)
    Wt = softmax_(S, -2, xp, None if mask is None else mask[..., None], logit_floor(means.dtype))
    Wt = Wt.astype(means.dtype, copy=False)
    mubar = xp.matmul(xp.swapaxes(means, -1, -2), Wt)                    # (..., d, B)
    return Wt, mubar, S, v


def _x0_from_posterior(x_t, alpha, sigma, var, mubar, v, xp):
    """x0hat = (alpha s / v) x_t + (sigma^2 / v) mubar; all (..., d, B)."""
    var = xp.asarray(var, dtype=xp.float64)[..., None]
    a = (alpha * var / v).astype(x_t.dtype, copy=False)[..., None, :]    # (..., 1, B)
    b = (sigma * sigma / v).astype(x_t.dtype, copy=False)[..., None, :]  # (..., 1, B)
    return a * x_t + b * mubar


# ---------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------

def _check_denoiser_inputs(x_t, t, means, var):
    if getattr(x_t, "ndim", None) != 2:
        raise ValueError(f"x_t must have shape (B, d); got shape {getattr(x_t, 'shape', None)}")
    if getattr(means, "ndim", None) != 2:
        raise ValueError(f"means must have shape (M, d); got shape {getattr(means, 'shape', None)}")
    if x_t.shape[1] != means.shape[1]:
        raise ValueError(f"dimension mismatch: x_t has d = {x_t.shape[1]} but means have "
                         f"d = {means.shape[1]}")
    if means.shape[0] < 1:
        raise ValueError("means must hold at least one component (M >= 1)")
    var_f = float(var)
    if not (np.isfinite(var_f) and var_f >= 0.0):
        raise ValueError(f"variance var = {var!r} must be finite and >= 0")
    xp = array_namespace(x_t, means)
    tt = xp.asarray(t, dtype=xp.float64)
    if tt.ndim not in (0, 1) or (tt.ndim == 1 and tt.shape[0] != x_t.shape[0]):
        raise ValueError(f"t must be a scalar or have shape (B,) = ({x_t.shape[0]},); "
                         f"got shape {tt.shape}")
    check_times(tt)
    return xp, xp.broadcast_to(tt, (x_t.shape[0],)), var_f


def gmm_x0(x_t, t, means, var, *, process="vp"):
    """Posterior mean E[x_0 | x_t] under the GMM (means, var): the x0 denoiser.

    Parameters
    ----------
    x_t : (B, d) array
        Noisy points.
    t : float or (B,) array
        Times in (0, 1).
    means : (M, d) array
        Component means.
    var : float or 0-d array
        The isotropic component variance, >= 0.
    process : {"vp", "fm"}
        Variance-preserving or flow matching.

    Returns
    -------
    (B, d) array
        x0hat, on the backend and in the dtype of the inputs.
    """
    check_process(process)
    xp, t, var = _check_denoiser_inputs(x_t, t, means, var)
    c = coefficients(t, process)
    xT = x_t.T
    _, mubar, _, v = _posterior(xT, c.alpha, c.sigma, means, var, xp)
    return xp.ascontiguousarray(_x0_from_posterior(xT, c.alpha, c.sigma, var, mubar, v, xp).T)


def convert(x0hat, x_t, t, *, process="vp", target="eps"):
    """Turn an x0 prediction into the ``target`` parametrization.

    ``eps = (x_t - alpha x0) / sigma``, ``v = alpha' x0 + sigma' eps``,
    ``score = -eps / sigma``.

    Parameters
    ----------
    x0hat : (B, d) array
        The x0 prediction.
    x_t : (B, d) array
        The noisy points it was made from.
    t : float or (B,) array
        Times in (0, 1).
    process : {"vp", "fm"}
        Variance-preserving or flow matching.
    target : {"x0", "eps", "v", "score"}
        The parametrization wanted.

    Returns
    -------
    (B, d) array
        The prediction in the ``target`` parametrization.
    """
    check_target(target)
    xp = array_namespace(x0hat, x_t)
    cx, c0 = target_coefficients(xp.asarray(t, dtype=xp.float64), process, target)
    cx = xp.asarray(cx, dtype=x0hat.dtype)[..., None]
    c0 = xp.asarray(c0, dtype=x0hat.dtype)[..., None]
    return cx * x_t + c0 * x0hat


def to_x0(pred, x_t, t, *, process="vp", target="eps"):
    """Inverse of :func:`convert`: recover the x0 prediction from ``target``'s. (B, d)."""
    check_target(target)
    xp = array_namespace(pred, x_t)
    cx, c0 = target_coefficients(xp.asarray(t, dtype=xp.float64), process, target)
    cx = xp.asarray(cx, dtype=pred.dtype)[..., None]
    c0 = xp.asarray(c0, dtype=pred.dtype)[..., None]
    return (pred - cx * x_t) / c0


def gmm_denoise(x_t, t, means, var, *, process="vp", target="x0"):
    """The GMM denoiser in any parametrization: :func:`gmm_x0`, then :func:`convert`.

    Parameters
    ----------
    x_t : (B, d) array
        Noisy points.
    t : float or (B,) array
        Times in (0, 1).
    means : (M, d) array
        Component means.
    var : float or 0-d array
        The isotropic component variance, >= 0.
    process : {"vp", "fm"}
        Variance-preserving or flow matching.
    target : {"x0", "eps", "v", "score"}
        The parametrization of the prediction.

    Returns
    -------
    (B, d) array
        On the backend and in the dtype of the inputs.

    Examples
    --------
    >>> import numpy as np, gmmdiff
    >>> ds = gmmdiff.make_dataset(d=5, K=2, N=8, seed=0)
    >>> x_t = 0.9 * ds.X + 0.1 * np.ones_like(ds.X)
    >>> gmmdiff.gmm_denoise(x_t, 0.1, ds.mixture.means, 1.0, target="eps").shape
    (8, 5)
    """
    check_target(target)
    x0hat = gmm_x0(x_t, t, means, var, process=process)
    if target == "x0":
        return x0hat
    return convert(x0hat, x_t, t, process=process, target=target)
