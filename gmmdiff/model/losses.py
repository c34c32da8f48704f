r"""Denoising losses, their Monte Carlo estimates and hand-derived gradients (SPEC 5).

Per sample and time, for target y in {eps, x0, v}::

    loss(theta; x0, t) = E_eps |F_theta(alpha_t x0 + sigma_t eps, t) - y|^2
                       = w_t E_eps |x0hat - x0|^2                 (w_t: loss_scale)

Gradients with respect to the means and the standard deviation (variance = std^2) are
derived by hand; with r = dLoss/dx0hat, a = alpha s / v, b = sigma^2 / v,
mubar = sum_m w_m mu_m and g_j = w_j (r.mu_j - r.mubar)::

    dLoss/dmu_j = sum_rows b [ w_j r + g_j alpha (x_t - alpha mu_j) / v ]
    dLoss/ds    = sum_rows (alpha sigma^2 / v^2)(r.x_t - alpha r.mubar)
                  + b sum_j g_j alpha^2 |x_t - alpha mu_j|^2 / (2 v^2)

Every term is a matrix product over the (rows x components) block.

float32 (as gmmdiff.engine.blocked, whose docstring measures why) avoids three forms
that cancel near memorized states (variance ~1e-9, means ~1e-5 from the data, rows at
t = 0.001): x0hat - x0 = D + ce eps with D = b (mubar - x0), the difference first
(ce = a sigma), not a x_t + b mubar - x0; the std gradient's r.x_t - alpha r.mubar =
sigma r.eps - (alpha / b) r.D, two dots of vectors formed without cancellation
combined in float64, never x_t - alpha mubar (~1e-3 \|x0\|) (blocked's dots \|D\|^2,
D.eps, \|eps\|^2 grouped by r = (2 / B) wt err: r.eps and r.D are their sums, within
the same rounding bounds, in fewer passes); and
r.mubar = sum_m w_m (r.mu_m) from g's own products, so g = 0 exactly where one weight
holds. float64 keeps the forms above, bit for bit.
"""
import numpy as np

from gmmdiff.backend import array_namespace, to_host
from gmmdiff.engine import kernels
from gmmdiff.model.denoisers import _coldot, _posterior, _rowdot, _scaled_stack, _x0_from_posterior
from gmmdiff.model.process import (
    TRAIN_TARGETS,
    check_process,
    check_target,
    check_times,
    coefficients,
    loss_scale,
)


def _narrow_forms(dtype):
    """Whether the loss of ``dtype`` takes float32's forms (module docstring): every
    dtype but float64, which keeps the reference's."""
    return np.dtype(dtype) != np.float64


def _batched_loss_and_grad(means, std, x0, eps, alpha, sigma, wt, xp, mask=None, grad=True,
                           fused=False):
    """Loss and gradients for J independent models at once, rows last.

    means: (J, M, d); std: (J,); x0: (J, d, B) or (d, B); eps: (J, d, B) (the rows are
    the columns: every per-row scalar broadcasts along the contiguous axis);
    alpha, sigma: (J, B) or (B,) float64; wt: (J, B) or (B,) row weights (the loss
    scale times any time weighting); mask: (J, M) bool or None.

    Returns ``(loss (J,), grad_means (J, M, d), grad_std (J,))``; loss is the mean over
    the B rows of wt |x0hat - x0|^2. With ``grad=False`` the gradients are None.

    ``fused`` (cupy only): :func:`_fused_loss_and_grad`, the same arithmetic with the
    per-row work and the column passes over the (J, M, B) blocks as kernels.
    """
    if fused:
        return _fused_loss_and_grad(means, std, x0, eps, alpha, sigma, wt, xp, mask, grad)
    dt = means.dtype
    B = eps.shape[-1]
    var = std.astype(xp.float64) ** 2                                   # (J,)
    x_t = (alpha.astype(dt, copy=False)[..., None, :] * x0
           + sigma.astype(dt, copy=False)[..., None, :] * eps)           # (J, d, B)
    Wt, mubar, S, v = _posterior(x_t, alpha, sigma, means, var, xp, mask)
    b = sigma * sigma / v                                                # (J, B) float64
    narrow = _narrow_forms(dt)               # float32: its forms (module docstring)
    if narrow:  # x0hat - x0 = D + ce eps, D = b (mubar - x0) the difference first
        D = mubar - x0                                                   # (J, d, B)
        D *= b.astype(dt)[..., None, :]
        av = alpha / v                                                   # (J, B)
        ce = av * sigma * var[..., None]                                 # (J, B) a sigma
        err = eps * ce.astype(dt)[..., None, :]
        err += D                                                         # (J, d, B)
    else:
        err = _x0_from_posterior(x_t, alpha, sigma, var, mubar, v, xp)  # (J, d, B)
        err -= x0
    loss = _rowdot(wt.astype(dt, copy=False), _coldot(err, err, xp), xp) / B  # (J,)
    if not grad:
        return loss, None, None
    R = err
    R *= ((2.0 / B) * wt).astype(dt, copy=False)[..., None, :]          # (J, d, B) dL/dx0hat
    c1 = b * alpha / v                                                   # (J, B)
    # G_mb = w_mb (r_b.mu_m - r_b.mubar_b), built in place on mu R   (components x rows)
    if narrow:  # r.mubar = sum_m w_m (r.mu_m), from G's own products
        Gt = xp.matmul(means, R)                                         # (J, M, B)
        rmbar = _coldot(Gt, Wt, xp)                                      # (J, B)
    else:
        rmbar = _coldot(R, mubar, xp)                                    # (J, B)
        Gt = xp.matmul(means, R)                                         # (J, M, B)
    Gt -= rmbar[..., None, :]
    Gt *= Wt
    GS = _coldot(Gt, S, xp)                                              # (J, B) float64
    # grad_means = W (b R)^T + G (c1 x_t)^T - (G c1 alpha) mu: one product for the last
    # two, with c1 alpha appended to c1 x_t as an extra column; both right operands
    # (J, B, d+1) and (J, B, d), rows first
    Pt = _scaled_stack(x_t, c1.astype(dt, copy=False),
                       [(c1 * alpha).astype(dt, copy=False)[..., None, :]], xp, rows_first=True)
    GP = xp.matmul(Gt, Pt)                                               # (J, M, d+1)
    grad_means = xp.matmul(Wt, _scaled_stack(R, b.astype(dt, copy=False), [], xp, rows_first=True))
    grad_means += GP[..., :-1]
    grad_means -= GP[..., -1:] * means                                   # (J, M, d)
    # d/ds through a and b (weights fixed), then through the weights: with
    # sum_m G_m = 0, sum_m G_m D_m = sum_m G_m (D_m - D_min) = -2 v sum_m G_m S_m
    if narrow:  # (alpha b / v) r.(x_t - alpha mubar) = (alpha / v)(b sigma r.eps - alpha r.D)
        ds1 = xp.sum(av * (b * sigma * _coldot(R, eps, xp) - alpha * _coldot(R, D, xp)), axis=-1)
    else:
        rx = _coldot(R, x_t, xp)                                         # (J, B)
        ds1 = xp.sum((alpha * sigma * sigma / (v * v)) * (rx - alpha * rmbar), axis=-1)
    ds2 = -xp.sum(b * alpha * alpha / v * GS, axis=-1)
    grad_std = (2.0 * std.astype(xp.float64) * (ds1 + ds2)).astype(dt)   # (J,)
    return loss, grad_means, grad_std


def _fused_loss_and_grad(means, std, x0, eps, alpha, sigma, wt, xp, mask=None, grad=True):
    """:func:`_batched_loss_and_grad` with its per-row work and its column passes as the
    kernels of :mod:`gmmdiff.engine.kernels` (cupy; about 35 launches instead of about 90):
    :func:`gmmdiff.engine.kernels.row_setup` (x_t, the logit columns, the per-row
    coefficients), the softmax and weighted-gradient column kernels, and
    :func:`gmmdiff.engine.kernels.row_finish` (error, loss rows, R, the gradient columns). The
    matrix products are those of the array program; the sums over d run in float64.
    float32 takes the module docstring's forms in row_finish (r.mubar for G comes from
    G's own products in the weighted-gradient kernel, whatever the dtype)."""
    dt = means.dtype
    J, _, B = eps.shape
    var = std.astype(xp.float64) ** 2                                   # (J,)
    alpha, sigma, wt = (xp.ascontiguousarray(xp.broadcast_to(a, (J, B)), dtype=xp.float64)
                        for a in (alpha, sigma, wt))
    x0, eps = xp.ascontiguousarray(x0), xp.ascontiguousarray(eps)
    x_t, U, C = kernels.row_setup(x0, eps, alpha, sigma, wt, var)
    mu = means.astype(xp.float64, copy=False)
    S = xp.matmul(xp.concatenate([mu, _rowdot(mu, mu, xp)[..., None]], axis=-1), U)  # (J, M, B)
    counts = kernels.component_counts(mask, means.shape, xp)              # (J,) int32
    Wt = xp.empty(S.shape, dtype=dt)
    kernels.softmax_columns(S, Wt, counts)
    mubar = xp.matmul(xp.swapaxes(means, -1, -2), Wt)                    # (J, d, B)
    loss_rows, R, Rb, P, rmbar, ds_rows = kernels.row_finish(x0, eps, x_t, mubar, alpha, sigma, C)
    loss = (xp.sum(loss_rows, axis=-1) / B).astype(dt)                   # (J,)
    if not grad:
        return loss, None, None
    Gt = xp.matmul(means, R)                                             # (J, M, B)
    GS = xp.empty((J, B), dtype=xp.float64)
    kernels.weigh_columns(Gt, Wt, S, counts, GS)
    GP = xp.matmul(Gt, xp.swapaxes(P, -1, -2))                          # (J, M, d+1)
    grad_means = xp.matmul(Wt, xp.swapaxes(Rb, -1, -2))
    grad_means += GP[..., :-1]
    grad_means -= GP[..., -1:] * means                                   # (J, M, d)
    ds = xp.sum(ds_rows - C[:, 5] * GS, axis=-1)                         # (J,)
    grad_std = (2.0 * std.astype(xp.float64) * ds).astype(dt)
    return loss, grad_means, grad_std


def _rows_last(a, xp):
    """(B, d) -> contiguous (d, B)."""
    return xp.ascontiguousarray(a.T)


def _check_loss_inputs(means, x0, t, eps):
    if getattr(means, "ndim", None) != 2:
        raise ValueError(f"means must have shape (M, d); got shape {getattr(means, 'shape', None)}")
    for name, a in (("x0", x0), ("eps", eps)):
        if getattr(a, "ndim", None) != 2:
            raise ValueError(f"{name} must have shape (B, d); got shape {getattr(a, 'shape', None)}")
    if x0.shape != eps.shape:
        raise ValueError(f"x0 and eps must have the same shape; got {x0.shape} and {eps.shape}")
    if x0.shape[1] != means.shape[1]:
        raise ValueError(f"dimension mismatch: x0 has d = {x0.shape[1]} but means have "
                         f"d = {means.shape[1]}")
    xp = array_namespace(means, x0, eps)
    t = xp.asarray(t, dtype=xp.float64)
    if t.ndim == 0:
        t = xp.full((x0.shape[0],), float(t))
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must have shape (B,) = ({x0.shape[0]},); got shape {t.shape}")
    check_times(t)
    return xp, t


def loss_and_grad(means, std, x0, t, eps, *, process="vp", target="eps"):
    """Denoising loss and its gradients with respect to the means and the std.

    One forward pass gives the loss and both gradients (derived by hand; see the
    module :mod:`gmmdiff.model.losses`).

    Parameters
    ----------
    means : (M, d) array
        Component means.
    std : float or 0-d array
        Component standard deviation (variance = std^2).
    x0 : (B, d) array
        Clean points.
    t : (B,) array or float
        Times in (0, 1); a scalar is broadcast.
    eps : (B, d) array
        Noise; ``x_t = alpha_t x0 + sigma_t eps``.
    process : {"vp", "fm"}
        Variance-preserving or flow matching.
    target : {"eps", "x0", "v"}
        What the denoiser predicts and the loss compares.

    Returns
    -------
    loss : 0-d array
        The mean over the B rows of ``|F_theta(x_t, t) - y|^2`` summed over dims.
    grad_means : (M, d) array
        d loss / d means.
    grad_std : 0-d array
        d loss / d std.
    """
    check_process(process)
    check_target(target, TRAIN_TARGETS)
    xp, t = _check_loss_inputs(means, x0, t, eps)
    std = xp.asarray(std, dtype=means.dtype)
    if not bool(xp.isfinite(std)):
        raise ValueError(f"std = {std!r} must be finite")
    c = coefficients(t, process)
    wt = loss_scale(t, process, target)
    loss, gm, gs = _batched_loss_and_grad(means[None], std[None], _rows_last(x0, xp),
                                          _rows_last(eps, xp)[None], c.alpha, c.sigma, wt, xp)
    return loss[0], gm[0], gs[0]


def denoising_loss(means, var, x0, t, eps, *, process="vp", target="eps"):
    """The loss of :func:`loss_and_grad` alone, for a variance ``var`` >= 0.

    Parameters
    ----------
    means : (M, d) array
        Component means.
    var : float
        Component variance, >= 0.
    x0 : (B, d) array
        Clean points.
    t : (B,) array or float
        Times in (0, 1); a scalar is broadcast.
    eps : (B, d) array
        Noise.
    process : {"vp", "fm"}
        Variance-preserving or flow matching.
    target : {"eps", "x0", "v"}
        What the denoiser predicts and the loss compares.

    Returns
    -------
    0-d array
        The mean over the B rows of ``|F_theta(x_t, t) - y|^2`` summed over dims.
    """
    check_process(process)
    check_target(target, TRAIN_TARGETS)
    xp, t = _check_loss_inputs(means, x0, t, eps)
    if not (np.isfinite(float(var)) and float(var) >= 0):
        raise ValueError(f"variance var = {var!r} must be finite and >= 0")
    std = xp.asarray([np.sqrt(float(var))], dtype=means.dtype)
    c = coefficients(t, process)
    loss, _, _ = _batched_loss_and_grad(means[None], std, _rows_last(x0, xp),
                                        _rows_last(eps, xp)[None], c.alpha, c.sigma,
                                        loss_scale(t, process, target), xp, grad=False)
    return loss[0]


def per_time_losses(means, var, X, times, *, n_noise=100, seed=0, process="vp",
                    target="eps", max_rows=200_000):
    """Monte Carlo per-time losses L_t(theta) on a sample set.

    Each entry is the mean over the samples and ``n_noise`` noise draws at a fixed t.
    The draws come from ``numpy.random.default_rng(seed)`` on the host, so models
    evaluated with the same seed share their noise (common random numbers, which makes
    differences between models far less noisy).

    Parameters
    ----------
    means : (M, d) array
        Component means.
    var : float
        Component variance, >= 0.
    X : (N, d) array
        The samples (a training or a held-out set).
    times : (T,) array
        Times in (0, 1), a host-side grid (a device array is copied to the host once).
    n_noise : int
        Noise draws per sample and time.
    seed : int
        Seed of the draws (the same seed: the same noise for every model).
    process : {"vp", "fm"}
        Variance-preserving or flow matching.
    target : {"eps", "x0", "v"}
        The scale of the losses.
    max_rows : int
        Rows (samples x draws) evaluated at once; bounds the memory.

    Returns
    -------
    (T,) float64 array
        On the backend of ``means``.
    """
    check_process(process)
    check_target(target, TRAIN_TARGETS)
    xp = array_namespace(means, X)
    if X.ndim != 2 or means.ndim != 2 or X.shape[1] != means.shape[1]:
        raise ValueError(f"X (N, d) and means (M, d) must share d; got shapes {X.shape} and "
                         f"{means.shape}")
    std = xp.asarray([np.sqrt(float(var))], dtype=means.dtype)
    def rows_loss(x0, eps, alpha, sigma, wt):
        return _batched_loss_and_grad(means[None], std, _rows_last(x0, xp),
                                      _rows_last(eps, xp)[None], alpha, sigma, wt, xp,
                                      grad=False)[0][0]

    return monte_carlo_per_time(rows_loss, X, times, n_noise=n_noise, seed=seed, process=process,
                                target=target, max_rows=max_rows)


def monte_carlo_per_time(rows_loss, X, times, *, n_noise=100, seed=0, process="vp", target="eps",
                         max_rows=200_000):
    """Per-time Monte Carlo losses of any model given ``rows_loss(x0, eps, alpha, sigma,
    wt) -> mean loss over rows`` (rows shaped like ``X (N, ...)`` stacked n times).

    The draws come from ``numpy.random.default_rng(seed)`` on the host, so models
    evaluated with the same seed share their noise. ``times`` (T,) is a host-side grid
    (a device array is copied to the host once). Returns (T,) on X's backend.
    """
    xp = array_namespace(X)
    times = to_host(times).astype(np.float64).reshape(-1)               # host constants
    check_times(times)
    if int(n_noise) != n_noise or n_noise < 1:
        raise ValueError(f"n_noise = {n_noise!r} must be an integer >= 1")
    N = X.shape[0]
    rng = np.random.default_rng(seed)
    per_chunk = max(1, int(max_rows) // N)
    reps = (1,) * (X.ndim - 1)
    out = np.empty(times.shape[0])
    for k, t in enumerate(times):
        c = coefficients(float(t), process)
        wt = float(loss_scale(float(t), process, target))
        total, done = 0.0, 0
        while done < n_noise:
            n = min(per_chunk, n_noise - done)
            eps = xp.asarray(rng.standard_normal((n * N,) + X.shape[1:]), dtype=X.dtype)
            x0 = xp.tile(X, (n,) + reps)                                 # (n N, ...)
            ones = xp.ones(n * N, dtype=xp.float64)
            loss = rows_loss(x0, eps, float(c.alpha) * ones, float(c.sigma) * ones, wt * ones)
            total += float(loss) * n
            done += n
        out[k] = total / n_noise
    return xp.asarray(out)
