"""The low-rank "colored template" model of image-like data (SPEC 11).

A sample picks template k uniformly, draws a color c ~ N(m_k, s_c I_C) and forms the
image x = c (outer) a_k: channel i is c_i a_k, with a_k in R^P a grayscale template.
Component k is Gaussian with mean m_k (outer) a_k and covariance s_c I_C (kron) a_k a_k^T
(rank C), so each channel y_i of x_t is, given k, N(alpha m_{k,i} a_k,
alpha^2 s_c a_k a_k^T + sigma^2 I_P), independently across channels. With Woodbury
(never a dense P C x P C matrix), per component and channel::

    z_{k,i}   = a_k . y_i - alpha m_{k,i} |a_k|^2          (= a_k . ybar_i)
    den_k     = sigma^2 + alpha^2 s_c |a_k|^2
    chat_{k,i} = m_{k,i} + alpha s_c z_{k,i} / den_k
    log p_k   = sum_i [ (alpha m_{k,i} a_k.y_i - alpha^2 m_{k,i}^2 |a_k|^2 / 2) / sigma^2
                        + alpha^2 s_c z_{k,i}^2 / (2 sigma^2 den_k) ]
                - (C / 2) log den_k + (terms equal for every k)
    x0hat     = sum_k softmax_k(log p_k) chat_k (outer) a_k

The factor C on the log-determinant term is where the authors' released code is wrong
(it applies it once); tests compare with a dense Gaussian computation.

Gradients of the denoising loss with respect to templates, color means and the color
std are derived by hand (see ``_batched_loss_and_grad``); with r the gradient of
the loss at x0hat, E_k = sum_i (r_i . a_k) chat_{k,i} and G_k = w_k (E_k - sum_j w_j E_j)::

    dlogp_k/dm_{k,i} = alpha z_{k,i} / den_k
    dlogp_k/da_k     = (alpha / sigma^2) sum_i chat_{k,i} (y_i - alpha chat_{k,i} a_k)
                       - C alpha^2 s_c a_k / den_k
    dlogp_k/ds_c     = alpha^2 / (2 den_k^2) sum_i z_{k,i}^2 - C alpha^2 |a_k|^2 / (2 den_k)
"""
from dataclasses import dataclass

import numpy as np

from gmmdiff.backend import array_namespace, get_dtype, to_host
from gmmdiff.families.registry import Family
from gmmdiff.families.template_io import load_templates
from gmmdiff.model.data import check_positive_int, memorized_subset
from gmmdiff.model.denoisers import convert
from gmmdiff.model.losses import monte_carlo_per_time
from gmmdiff.model.metrics import memorization
from gmmdiff.model.process import (
    TRAIN_TARGETS,
    check_process,
    check_target,
    check_times,
    coefficients,
    loss_scale,
)
from gmmdiff.model.sampling import sample_with
from gmmdiff.softmax import PAD_LOGIT, softmax_
from gmmdiff.streams import (
    STREAM_INIT,
    STREAM_SAMPLE,
    STREAM_TEST,
    STREAM_TRAIN,
    eval_seed,
    rng_for,
)


@dataclass(frozen=True)
class TemplateMixture:
    """Colored-template data model.

    templates : (K, P) grayscale templates (flattened H x W images)
    color_means : (K, C);  color_var : scalar s_c >= 0;  shape : (H, W)
    """
    templates: object
    color_means: object
    color_var: float
    shape: tuple

    def sample(self, n, rng, *, xp=None):
        """``(X (n, C, P), labels (n,))``; draws on the host with numpy Generator ``rng``."""
        xp = array_namespace(self.templates) if xp is None else xp
        X, labels, _ = _draw(self, n, rng, xp, self.templates.dtype)
        return X, xp.asarray(labels)


# ------------------------------------------------------------------------- internals

def _coeffs(alpha, sigma, A, var, xp):
    """|a_k|^2 (..., M) and den = sigma^2 + alpha^2 s |a|^2 (..., B, M), float64."""
    n = xp.einsum("...kp,...kp->...k", A, A)                             # (..., M)
    a2 = (alpha * alpha)[..., None]                                      # (..., B, 1)
    den = (sigma * sigma)[..., None] + a2 * xp.asarray(var)[..., None, None] * n[..., None, :]
    return n, den


def _forward(x_t, alpha, sigma, A, Mu, var, xp, mask=None):
    """Posterior pieces for rows ``x_t (..., B, C, P)``; ``A (..., M, P)``,
    ``Mu (..., M, C)``, ``var (...)``; alpha, sigma (..., B) float64.

    Returns dict with z, chat (..., B, C, M), zz = sum_i z_i^2 and den (..., B, M),
    n = |a|^2 (..., M), mT (..., 1, C, M) the color means, W (..., B, M) posterior
    weights and x0hat (..., B, C, P). float64 throughout.
    """
    f64 = xp.float64
    x_t, A, Mu = (a.astype(f64, copy=False) for a in (x_t, A, Mu))
    var = xp.asarray(var, dtype=f64)
    C = x_t.shape[-2]
    n, den = _coeffs(alpha, sigma, A, var, xp)                           # (.., M), (.., B, M)
    al = alpha[..., None, None]                                          # (..., B, 1, 1)
    s2 = (sigma * sigma)[..., None]                                      # (..., B, 1)
    Q = xp.matmul(x_t, xp.swapaxes(A, -1, -2)[..., None, :, :])          # (..., B, C, M)
    mT = xp.swapaxes(Mu, -1, -2)[..., None, :, :]                        # (..., 1, C, M)
    z = Q - al * mT * n[..., None, None, :]                              # (..., B, C, M)
    sv = var[..., None, None, None]
    chat = mT + al * sv * z / den[..., None, :]                          # (..., B, C, M)
    lin = xp.sum(al * mT * Q - 0.5 * al * al * mT * mT * n[..., None, None, :], axis=-2) / s2
    zz = xp.sum(z * z, axis=-2)                                          # (..., B, M)
    quad = (alpha * alpha)[..., None] * var[..., None, None] * zz / (2 * s2 * den)
    logits = lin + quad - 0.5 * C * xp.log(den)                         # (..., B, M)
    if mask is not None:
        logits = logits + xp.where(mask, 0.0, PAD_LOGIT)[..., None, :]
    W = softmax_(logits, -1, xp, None if mask is None else mask[..., None, :])
    x0hat = xp.matmul(W[..., None, :] * chat, A[..., None, :, :])        # (..., B, C, P)
    return {"z": z, "zz": zz, "chat": chat, "den": den, "n": n, "mT": mT, "W": W, "x0hat": x0hat}


def _batched_loss_and_grad(A, Mu, std, x0, eps, alpha, sigma, wt, xp, mask=None, grad=True):
    """Loss and gradients for J template models at once.

    A: (J, M, P); Mu: (J, M, C); std: (J,); x0: (J, B, C, P) or (B, C, P);
    eps: (J, B, C, P); alpha, sigma, wt: (J, B) float64; mask: (J, M) or None.
    Returns ``(loss (J,), grad_A (J, M, P), grad_Mu (J, M, C), grad_std (J,))``.
    Computed in float64; results cast to the dtype of ``A``.
    """
    dt = A.dtype
    f64 = xp.float64
    var = std.astype(f64) ** 2
    x0_ = x0.astype(f64, copy=False)
    y = alpha[..., None, None] * x0_ + sigma[..., None, None] * eps.astype(f64, copy=False)
    f = _forward(y, alpha, sigma, A, Mu, var, xp, mask)
    B = eps.shape[-3]
    err = f["x0hat"] - x0_
    loss = xp.sum(wt * xp.sum(err * err, axis=(-2, -1)), axis=-1) / B    # (J,)
    if not grad:
        return loss.astype(dt), None, None, None
    A64 = A.astype(f64, copy=False)
    R = (2.0 / B) * wt[..., None, None] * err                            # (J, B, C, P)
    W, z, zz, chat, den, n, mT = (f[k] for k in ("W", "z", "zz", "chat", "den", "n", "mT"))
    C = y.shape[-2]
    al = alpha[..., None, None]                                          # (J, B, 1, 1)
    s2 = (sigma * sigma)[..., None, None]
    sv = var[..., None, None, None]
    d3 = den[..., None, :]                                               # (J, B, 1, M)
    W3 = W[..., None, :]
    RA = xp.matmul(R, xp.swapaxes(A64, -1, -2)[..., None, :, :])         # (J, B, C, M)
    E = xp.sum(RA * chat, axis=-2)                                       # (J, B, M)
    G = W * (E - xp.sum(W * E, axis=-1, keepdims=True))                  # (J, B, M) dL/dlogit
    G3 = G[..., None, :]
    WRA = W3 * RA                                                        # (J, B, C, M)
    # color means: chat depends on m with slope sigma^2/den; logits with alpha z / den
    grad_mT = xp.sum(WRA * s2 / d3 + G3 * al * z / d3, axis=-3)          # (J, C, M)
    # templates
    K1 = WRA * al * sv / d3 + G3 * al * chat / s2                        # (J, B, C, M)
    K2 = W3 * chat
    scal = (xp.sum(WRA * al * sv * (2 * al * mT / d3 + 2 * al * al * sv * z / (d3 * d3)),
                   axis=(-3, -2))
            + xp.sum(G * ((alpha * alpha)[..., None] / (sigma * sigma)[..., None]
                          * xp.sum(chat * chat, axis=-2)
                          + C * (alpha * alpha)[..., None] * var[..., None, None] / den), axis=-2))
    K1f = K1.reshape(K1.shape[:-3] + (-1, K1.shape[-1]))                 # (J, B C, M)
    K2f = K2.reshape(K2.shape[:-3] + (-1, K2.shape[-1]))
    yf = y.reshape(y.shape[:-3] + (-1, y.shape[-1]))                     # (J, B C, P)
    Rf = R.reshape(R.shape[:-3] + (-1, R.shape[-1]))
    grad_A = (xp.matmul(xp.swapaxes(K1f, -1, -2), yf) + xp.matmul(xp.swapaxes(K2f, -1, -2), Rf)
              - scal[..., None] * A64)                                   # (J, M, P)
    # color variance
    a2 = (alpha * alpha)[..., None]
    ds = (xp.sum(WRA * al * z * s2 / (d3 * d3), axis=(-3, -2, -1))
          + xp.sum(G * (a2 / (2 * den * den) * zz
                        - C * a2 * n[..., None, :] / (2 * den)), axis=(-2, -1)))
    grad_std = 2.0 * std.astype(f64) * ds
    return (loss.astype(dt), grad_A.astype(dt), xp.swapaxes(grad_mT, -1, -2).astype(dt),
            grad_std.astype(dt))


# -------------------------------------------------------------------------- public

def _check(x_t, templates, color_means, color_var):
    if getattr(x_t, "ndim", None) != 3:
        raise ValueError(f"x_t must have shape (B, C, P); got shape {getattr(x_t, 'shape', None)}")
    if getattr(templates, "ndim", None) != 2 or templates.shape[1] != x_t.shape[2]:
        raise ValueError(f"templates must have shape (M, P) with P = {x_t.shape[2]}; got "
                         f"shape {getattr(templates, 'shape', None)}")
    if getattr(color_means, "ndim", None) != 2 or color_means.shape != (templates.shape[0], x_t.shape[1]):
        raise ValueError(f"color_means must have shape (M, C) = ({templates.shape[0]}, {x_t.shape[1]}); "
                         f"got shape {getattr(color_means, 'shape', None)}")
    v = float(color_var)
    if not (np.isfinite(v) and v >= 0):
        raise ValueError(f"color variance color_var = {color_var!r} must be finite and >= 0")
    return v


def template_denoise(x_t, t, templates, color_means, color_var, *, process="vp", target="x0"):
    """Posterior mean of the colored-template mixture, in any parametrization.

    Parameters
    ----------
    x_t : (B, C, P);  t : scalar or (B,) in (0, 1);  templates : (M, P);
    color_means : (M, C);  color_var : scalar >= 0
    process : "vp" | "fm";  target : "x0" | "eps" | "v" | "score"

    Returns
    -------
    (B, C, P) on the backend of the inputs (computed in float64, returned in the
    inputs' dtype).
    """
    check_process(process)
    check_target(target)
    var = _check(x_t, templates, color_means, color_var)
    xp = array_namespace(x_t, templates, color_means)
    B = x_t.shape[0]
    tt = xp.asarray(t, dtype=xp.float64)
    if tt.ndim not in (0, 1) or (tt.ndim == 1 and tt.shape[0] != B):
        raise ValueError(f"t must be a scalar or have shape (B,) = ({B},); got shape {tt.shape}")
    check_times(tt)
    tt = xp.broadcast_to(tt, (B,))
    c = coefficients(tt, process)
    f = _forward(x_t, c.alpha, c.sigma, templates, color_means, xp.asarray(var), xp)
    x0hat = f["x0hat"].astype(x_t.dtype, copy=False)
    if target == "x0":
        return x0hat
    flat = convert(x0hat.reshape(B, -1), x_t.reshape(B, -1), tt, process=process, target=target)
    return flat.reshape(x_t.shape)


def loss_and_grad(templates, color_means, std, x0, t, eps, *, process="vp", target="eps"):
    """Denoising loss of the template model and its hand-derived gradients.

    templates : (M, P);  color_means : (M, C);  std : scalar (color variance = std^2)
    x0, eps : (B, C, P);  t : (B,) or scalar in (0, 1)

    Returns ``(loss, grad_templates (M, P), grad_color_means (M, C), grad_std)``; the
    loss is the mean over rows of the squared error summed over channels and pixels.
    """
    check_process(process)
    check_target(target, TRAIN_TARGETS)
    _check(x0, templates, color_means, 0.0)
    if x0.shape != eps.shape:
        raise ValueError(f"x0 and eps must have the same shape; got {x0.shape} and {eps.shape}")
    xp = array_namespace(templates, color_means, x0, eps)
    tt = xp.asarray(t, dtype=xp.float64)
    if tt.ndim == 0:
        tt = xp.full((x0.shape[0],), float(tt))
    check_times(tt)
    c = coefficients(tt, process)
    std = xp.asarray(std, dtype=templates.dtype)
    out = _batched_loss_and_grad(templates[None], color_means[None], std[None], x0, eps[None],
                                 c.alpha[None], c.sigma[None], loss_scale(tt, process, target)[None], xp)
    return tuple(o[0] for o in out)


def make_template_mixture(templates, n_colors=3, *, color_var=1.0, seed=0, xp=np, dtype=np.float64,
                          shape=None):
    """Data model over ``templates (K, P)``: color means m_k = 0 (SPEC 11 default)."""
    templates = np.asarray(to_host(templates), dtype=np.float64)
    if templates.ndim != 2:
        raise ValueError(f"templates must have shape (K, P); got {templates.shape}")
    check_positive_int("colors", n_colors)
    K, P = templates.shape
    side = int(round(np.sqrt(P)))
    return TemplateMixture(xp.asarray(templates, dtype=dtype), xp.zeros((K, n_colors), dtype=dtype),
                           float(color_var), shape or (side, P // side))


# -------------------------------------------------------------- training integration

@dataclass(frozen=True)
class TemplateDataset:
    """Training and held-out images of a template mixture, with their generating
    template labels and color vectors (the pmem initialization uses both).

    X : (N, C, P);  labels : (N,);  colors : (N, C);  X_test : (n_test, C, P)
    """
    mixture: TemplateMixture
    X: object
    labels: object
    colors: object
    X_test: object
    labels_test: object
    seed: int


def _draw(mixture, n, rng, xp, dtype):
    """``(X (n, C, P) on xp, labels (n,), colors (n, C))`` -- labels and colors on the host."""
    A = to_host(mixture.templates).astype(np.float64)
    Mu = to_host(mixture.color_means).astype(np.float64)
    labels = rng.integers(0, A.shape[0], size=n)
    c = Mu[labels] + np.sqrt(mixture.color_var) * rng.standard_normal((n, Mu.shape[1]))
    X = c[:, :, None] * A[labels][:, None, :]                             # (n, C, P)
    return xp.asarray(X, dtype=dtype), labels, c


def make_template_dataset(cfg, xp=np):
    """Templates from ``cfg.template_file`` (default: the shipped set), K =
    ``cfg.components`` of them at ``cfg.image_size``^2 pixels, ``cfg.colors`` channels,
    color variance ``cfg.data_var``; N training and ``cfg.test_samples`` held-out images."""
    dtype = get_dtype(cfg.dtype)
    A = load_templates(cfg.template_file, K=cfg.components, size=cfg.image_size, seed=cfg.seed)
    mix = make_template_mixture(A, cfg.colors, color_var=cfg.data_var, xp=xp, dtype=dtype,
                                shape=(cfg.image_size, cfg.image_size))
    X, y, c = _draw(mix, cfg.samples, rng_for(cfg.seed, STREAM_TRAIN), xp, dtype)
    Xt, yt, _ = _draw(mix, cfg.test_samples, rng_for(cfg.seed, STREAM_TEST), xp, dtype)
    return TemplateDataset(mix, X, y, c, Xt, yt, int(cfg.seed))


def init_template_params(ds, M, cfg, rng):
    """Initial {"templates" (M, P), "colors" (M, C), "std"} as float64 host arrays.

    pmem: templates and color vectors of M training samples (all N, then repeats),
    color variance ``cfg.init_var``; prior: M draws of the data model with the true color
    variance; gaussian: templates ~ N(0, scale^2 / P), colors ~ N(0, 1)."""
    A = to_host(ds.mixture.templates).astype(np.float64)
    K, P = A.shape
    N = ds.labels.shape[0]
    if cfg.init == "pmem":
        perm = rng.permutation(N)
        idx = perm[:M] if M <= N else np.concatenate([perm, rng.integers(0, N, M - N)])
        colors = ds.colors[idx] + np.sqrt(cfg.init_noise_var) * rng.standard_normal((M, ds.colors.shape[1]))
        return {"templates": A[ds.labels[idx]], "colors": colors, "std": np.sqrt(cfg.init_var)}
    if cfg.init == "prior":
        lab = rng.integers(0, K, size=M)
        Mu = to_host(ds.mixture.color_means).astype(np.float64)
        colors = Mu[lab] + np.sqrt(ds.mixture.color_var) * rng.standard_normal((M, Mu.shape[1]))
        return {"templates": A[lab], "colors": colors, "std": np.sqrt(ds.mixture.color_var)}
    return {"templates": cfg.gaussian_scale / np.sqrt(P) * rng.standard_normal((M, P)),
            "colors": rng.standard_normal((M, ds.colors.shape[1])), "std": np.sqrt(cfg.init_var)}


def _per_time(A, Mu, var, S, cfg, seed, xp):
    std = xp.asarray([np.sqrt(float(var))])

    def rows_loss(x0, eps, alpha, sigma, wt):
        return _batched_loss_and_grad(A[None], Mu[None], std, x0, eps[None], alpha[None], sigma[None],
                                      wt[None], xp, grad=False)[0][0]

    return to_host(monte_carlo_per_time(rows_loss, S, cfg.grid(), n_noise=cfg.eval_noise_draws,
                                        seed=seed, process=cfg.process, target=cfg.target))


def _memorizing_params(ds, idx, xp):
    A = ds.mixture.templates[xp.asarray(ds.labels[idx])]
    return A, xp.asarray(ds.colors[idx], dtype=A.dtype)


def template_baselines(ds, cfg, xp):
    """Per-time train/test losses of the true model and of the memorizing model."""
    out = {}
    mem = _memorizing_params(ds, np.arange(ds.labels.shape[0]), xp)
    for name, (A, Mu, var) in (("generalizing", (ds.mixture.templates, ds.mixture.color_means,
                                                 ds.mixture.color_var)),
                               ("memorizing", (mem[0], mem[1], 0.0))):
        for split, S in ((0, ds.X), (1, ds.X_test)):
            out[f"{name}_{('train', 'test')[split]}"] = _per_time(A, Mu, var, S, cfg, eval_seed(cfg, split), xp)
    return out


def evaluate_templates(ds, M, params, cfg, xp, baselines):
    """Metrics of one trained template model (memorization ratio on the flattened
    images, learned color variance, per-time losses beside the baselines)."""
    A, Mu = params["templates"], params["colors"]
    var = float(to_host(params["std"]).astype(np.float64) ** 2)
    C, P = ds.X.shape[1:]
    x_T = xp.asarray(rng_for(cfg.seed, STREAM_SAMPLE, M).standard_normal((cfg.eval_samples, C, P)), dtype=A.dtype)

    def x0_fn(x, t):
        c = coefficients(t, cfg.process)
        n = x.shape[0]
        return _forward(x, xp.full(n, float(c.alpha)), xp.full(n, float(c.sigma)), A, Mu,
                        xp.asarray(var), xp)["x0hat"].astype(A.dtype)

    gen = sample_with(x0_fn, cfg.grid(), x_T, process=cfg.process, method=cfg.sampler,
                      rng=rng_for(cfg.seed, STREAM_SAMPLE, M, 1))
    N = ds.X.shape[0]
    subset = memorized_subset(N, min(M, N), cfg.seed)
    pA, pMu = _memorizing_params(ds, subset, xp)
    losses = dict(baselines)
    for split, S in ((0, ds.X), (1, ds.X_test)):
        name = ("train", "test")[split]
        losses[f"model_{name}"] = _per_time(A, Mu, var, S, cfg, eval_seed(cfg, split), xp)
        losses[f"pmem_{name}"] = _per_time(pA, pMu, 0.0, S, cfg, eval_seed(cfg, split), xp)
    return {
        "M": int(M), "M_over_N": M / N, "model": "templates",
        "memorization": memorization(gen.reshape(gen.shape[0], -1), ds.X.reshape(N, -1)),
        "learned_variance": var,
        "final_train_loss": float(np.mean(losses["model_train"])),
        "final_test_loss": float(np.mean(losses["model_test"])),
        "times": cfg.grid().tolist(),
        "per_time_losses": {k: np.asarray(v).tolist() for k, v in losses.items()},
        "pmem_subset": subset.tolist(),
    }, {"generated": to_host(gen)}


def _family_init(ds, M, cfg):
    return init_template_params(ds, M, cfg, rng_for(cfg.seed, STREAM_INIT, M))


def _family_loss(params, x0, eps, alpha, sigma, wt, xp, mask):
    l, gA, gM, gs = _batched_loss_and_grad(params["templates"], params["colors"], params["std"],
                                           x0, eps, alpha, sigma, wt, xp, mask)
    return l, {"templates": gA, "colors": gM, "std": gs}


FAMILY = Family(dataset=make_template_dataset, init=_family_init, loss=_family_loss,
                evaluate=evaluate_templates, baselines=template_baselines)
