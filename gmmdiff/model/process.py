"""Diffusion processes x_t = alpha_t x_0 + sigma_t eps and the sampling time grid.

Two processes (SPEC section 3):

- ``"vp"`` (variance preserving, the default): alpha_t = sqrt(1 - t^2), sigma_t = t.
- ``"fm"`` (flow matching): alpha_t = 1 - t, sigma_t = t.

Every coefficient function takes ``t`` as a Python float or an array of any shape and
returns the same shape on the same backend.
"""
from dataclasses import dataclass

import numpy as np

from gmmdiff.backend import array_namespace

PROCESSES = ("vp", "fm")
TARGETS = ("eps", "x0", "v", "score")
TRAIN_TARGETS = ("eps", "x0", "v")


def check_process(process):
    """Raise ValueError unless ``process`` is a known process name."""
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; accepted: {', '.join(PROCESSES)}")


def check_target(target, accepted=TARGETS):
    """Raise ValueError unless ``target`` is one of ``accepted``."""
    if target not in accepted:
        raise ValueError(f"unknown target {target!r}; accepted: {', '.join(accepted)}")


def check_times(t):
    """Raise ValueError unless every time lies in the open interval (0, 1).

    Public boundary check only: it syncs a device array to host, so the training loop
    never calls it.
    """
    xp = array_namespace(t)
    tt = xp.asarray(t)
    if tt.size == 0:
        return
    lo, hi = float(tt.min()), float(tt.max())
    if not (lo > 0.0 and hi < 1.0) or not (np.isfinite(lo) and np.isfinite(hi)):
        bad = lo if not lo > 0.0 else hi
        raise ValueError(f"time t = {bad!r} is outside the open interval (0, 1)")


@dataclass(frozen=True)
class Coefficients:
    """alpha_t, sigma_t and their time derivatives, arrays shaped like t."""
    alpha: object
    sigma: object
    dalpha: object
    dsigma: object


def coefficients(t, process="vp"):
    """The process's coefficients alpha_t, sigma_t and their time derivatives.

    Parameters
    ----------
    t : float or array, any shape
        Times in (0, 1).
    process : {"vp", "fm"}
        Variance-preserving (``alpha_t = sqrt(1 - t^2)``, ``sigma_t = t``) or flow
        matching (``alpha_t = 1 - t``, ``sigma_t = t``).

    Returns
    -------
    Coefficients
        A frozen dataclass with fields ``alpha``, ``sigma``, ``dalpha``, ``dsigma``,
        each shaped like ``t``, on its backend.
    """
    check_process(process)
    xp = array_namespace(t)
    t = xp.asarray(t)
    if process == "vp":
        alpha = xp.sqrt(1.0 - t * t)
        return Coefficients(alpha, t, -t / alpha, xp.ones_like(t))
    return Coefficients(1.0 - t, t, -xp.ones_like(t), xp.ones_like(t))


def snr(t, process="vp"):
    """Signal-to-noise ratio alpha_t^2 / sigma_t^2, shaped like ``t``."""
    c = coefficients(t, process)
    return (c.alpha / c.sigma) ** 2


def target_coefficients(t, process="vp", target="eps"):
    """(c_x, c_0) with F_target = c_x x_t + c_0 x0hat; arrays shaped like ``t``.

    Every parametrization of a denoiser is affine in the x0 prediction:

    - x0:    (0, 1)
    - eps:   (1/sigma, -alpha/sigma)
    - v:     (sigma'/sigma, alpha' - sigma' alpha/sigma)
    - score: (-1/sigma^2, alpha/sigma^2)
    """
    check_target(target)
    c = coefficients(t, process)
    xp = array_namespace(c.alpha)
    if target == "x0":
        return xp.zeros_like(c.alpha), xp.ones_like(c.alpha)
    if target == "eps":
        return 1.0 / c.sigma, -c.alpha / c.sigma
    if target == "v":
        return c.dsigma / c.sigma, c.dalpha - c.dsigma * c.alpha / c.sigma
    return -1.0 / c.sigma ** 2, c.alpha / c.sigma ** 2


def loss_scale(t, process="vp", target="eps"):
    """w_t: the factor from the x0-scale squared error to the target's, shaped like t.

    For any denoiser, |F_hat - F|^2 = w_t |x0hat - x0|^2 where F is the target computed
    from the same (x0, eps): w = 1 (x0), SNR_t (eps),
    alpha^2 (sigma'/sigma - alpha'/alpha)^2 (v).
    """
    check_target(target, TRAIN_TARGETS)
    _, c0 = target_coefficients(t, process, target)
    return c0 * c0


def time_grid(n=26, t_min=0.001, t_max=0.999):
    """The sampling grid: ``n`` times uniform on [t_min, t_max], descending.

    Parameters
    ----------
    n : int
        Number of times, >= 2 (the paper's 26).
    t_min, t_max : float
        The smallest and largest time, 0 < t_min < t_max < 1.

    Returns
    -------
    (n,) float64 numpy array
        A host-side constant, ``t_max`` first; move it with ``xp.asarray`` where needed.
    """
    if int(n) != n or n < 2:
        raise ValueError(f"grid size n = {n!r} must be an integer >= 2")
    if not (0.0 < t_min < t_max < 1.0):
        raise ValueError(f"time grid needs 0 < t_min < t_max < 1; got t_min = {t_min!r}, "
                         f"t_max = {t_max!r}")
    return np.linspace(t_max, t_min, int(n))
