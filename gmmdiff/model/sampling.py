"""Samplers over the descending time grid (SPEC 9): deterministic DDIM, stochastic DDPM."""
import numpy as np

from gmmdiff.backend import array_namespace, to_host
from gmmdiff.model.denoisers import gmm_x0
from gmmdiff.model.process import check_process, coefficients


def sample(means, var, grid, x_T, *, process="vp", method="ddim", rng=None):
    """Generate samples by walking the descending ``grid`` from ``x_T`` at grid[0].

    Parameters
    ----------
    means : (M, d) array
        Component means of the denoiser.
    var : float
        Its variance, >= 0.
    grid : (L,) array
        Descending times in (0, 1), a host-side grid (a device array is copied to the
        host once).
    x_T : (n, d) array
        Starting points (N(0, I) draws at t_max).
    process : {"vp", "fm"}
        Variance-preserving or flow matching.
    method : {"ddim", "ddpm"}
        Deterministic DDIM, or stochastic DDPM (needs ``rng``).
    rng : numpy.random.Generator, optional
        DDPM's noise; its draws are made on the host so numpy and cupy give the same
        samples.

    Returns
    -------
    (n, d) array
        The state at the last grid time (t_min).

    Notes
    -----
    With primes for the next grid time::

        DDIM:  x' = (sigma'/sigma) x + alpha' (1 - alpha sigma'/(alpha' sigma)) x0hat(x, t)
        DDPM:  r11 = (alpha/alpha')(sigma'/sigma), r12 = r11 sigma'/sigma,
               r22 = (alpha/alpha') r12,
               x' = r12 x + alpha' (1 - r22) x0hat + sigma' sqrt(1 - r11^2) z
    """
    def x0_fn(x, t):
        return gmm_x0(x, t, means, var, process=process)

    return sample_with(x0_fn, grid, x_T, process=process, method=method, rng=rng)


def sample_with(x0_fn, grid, x_T, *, process="vp", method="ddim", rng=None):
    """The samplers of :func:`sample` for any denoiser ``x0_fn(x (n, ...), t) -> x0hat``
    (x may have any trailing shape, e.g. (n, C, P) images)."""
    check_process(process)
    if method not in ("ddim", "ddpm"):
        raise ValueError(f"unknown sampler {method!r}; accepted: ddim, ddpm")
    if method == "ddpm" and rng is None:
        raise ValueError("the ddpm sampler needs rng (a numpy Generator)")
    grid = to_host(grid).astype(np.float64)                             # host constants
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) >= 0):
        raise ValueError("grid must be a descending (L,) array with L >= 2")
    xp = array_namespace(x_T)
    x = x_T
    for t, tn in zip(grid[:-1], grid[1:]):
        c, cn = coefficients(float(t), process), coefficients(float(tn), process)
        a, s, an, sn = float(c.alpha), float(c.sigma), float(cn.alpha), float(cn.sigma)
        x0hat = x0_fn(x, float(t))
        if method == "ddim":
            x = (sn / s) * x + an * (1.0 - a * sn / (an * s)) * x0hat
        else:
            r11 = (a / an) * (sn / s)
            r12 = r11 * sn / s
            r22 = (a / an) * r12
            z = xp.asarray(rng.standard_normal(x.shape), dtype=x.dtype)
            x = r12 * x + an * (1.0 - r22) * x0hat + sn * np.sqrt(max(1.0 - r11 * r11, 0.0)) * z
    return x
