"""The isotropic Gaussian-mixture model family (SPEC 4, 8, 9): how a GMM denoiser with
M components is initialized, trained and evaluated.

The model code itself lives in :mod:`gmmdiff.model.denoisers` (the closed-form denoiser) and
:mod:`gmmdiff.model.losses` (the loss and its hand-derived gradients); this module adapts it
to the :class:`gmmdiff.families.registry.Family` contract: parameters ``{"means" (M, d),
"std" ()}``, the rows-last training loss (fusable with the cupy kernels), the metrics of
a trained model and the per-time losses of the baselines theta*, theta_mem and
theta_pmem,M beside the approximations of :mod:`gmmdiff.theory.approximations`.
"""
import numpy as np

from gmmdiff.backend import get_dtype, to_host
from gmmdiff.engine.blocked import blocked_tasks
from gmmdiff.families.registry import Family
from gmmdiff.model.data import make_dataset
from gmmdiff.model.denoisers import generalizing, memorizing, partially_memorizing
from gmmdiff.model.losses import _batched_loss_and_grad, per_time_losses
from gmmdiff.model.metrics import learned_means_stats, memorization, wasserstein2
from gmmdiff.model.sampling import sample
from gmmdiff.streams import STREAM_FRESH, STREAM_INIT, STREAM_SAMPLE, eval_seed, rng_for
from gmmdiff.theory.approximations import (
    METHODS,
    generalizing_excess_loss,
    partial_memorizing_excess_loss,
)


def dataset(cfg, xp=np):
    """The seeded mixture, training and held-out sets of ``cfg`` on backend ``xp``."""
    return make_dataset(cfg.dim, cfg.components, cfg.samples, var=cfg.data_var,
                        seed=cfg.seed, n_test=cfg.test_samples, xp=xp,
                        dtype=get_dtype(cfg.dtype))


def init_means(dataset, M, cfg):
    """Initial (means (M, d) float64 host array, variance) for one model size.

    pmem: M training points drawn without replacement (M > N: all N, then random
    repeats) plus N(0, init_noise_var) noise, variance init_var; prior: M samples of
    pi*, variance s*; gaussian: N(0, scale^2 / d I), variance init_var (SPEC 8)."""
    rng = rng_for(cfg.seed, STREAM_INIT, M)
    X = to_host(dataset.X).astype(np.float64)
    N, d = X.shape
    if cfg.init == "pmem":
        perm = rng.permutation(N)
        idx = perm[:M] if M <= N else np.concatenate([perm, rng.integers(0, N, M - N)])
        means = X[idx] + np.sqrt(cfg.init_noise_var) * rng.standard_normal((M, d))
        return means, cfg.init_var
    if cfg.init == "prior":
        means, _ = dataset.mixture.sample(M, rng, xp=np)
        return np.asarray(means, dtype=np.float64), cfg.data_var
    return cfg.gaussian_scale / np.sqrt(d) * rng.standard_normal((M, d)), cfg.init_var


def init(dataset, M, cfg):
    """Initial {"means" (M, d), "std"} as float64 host arrays (:func:`init_means`)."""
    means, var = init_means(dataset, M, cfg)
    return {"means": means, "std": np.sqrt(var)}


def loss(params, x0, eps, alpha, sigma, wt, xp, mask, fused=False, ws=None, defer=False,
         tag=0):
    """Training loss and gradients of J models, rows last
    (:func:`gmmdiff.model.losses._batched_loss_and_grad`): params {"means" (J, M, d),
    "std" (J,)}; x0 (J, d, B) or (d, B); eps (J, d, B). On numpy the same arithmetic
    runs in cache-sized row blocks (:func:`gmmdiff.engine.blocked.blocked_tasks`) into the
    buffers of ``ws`` (a :class:`gmmdiff.engine.blocked.Workspace`, one per run); with
    ``defer`` (numpy) it returns ``(tasks, finish)`` instead, the row-block tasks to
    run (on any threads, :class:`gmmdiff.engine.threads.Crew`) and the function that then
    gives ``(loss, grads)``; ``tag`` keys the call site's sums in ``ws``."""
    if xp is np and not fused:
        tasks, finish = blocked_tasks(params["means"], params["std"], x0, eps, alpha, sigma,
                                      wt, mask, ws=ws, tag=tag)

        def done():
            l, gm, gs = finish()
            return l, {"means": gm, "std": gs}
        if defer:
            return tasks, done
        for t in tasks:
            t(0)
        return done()
    if defer:
        raise ValueError("defer=True needs the numpy backend without fused kernels")
    l, gm, gs = _batched_loss_and_grad(params["means"], params["std"], x0, eps, alpha,
                                       sigma, wt, xp, mask, fused=fused)
    return l, {"means": gm, "std": gs}


def baseline_losses(dataset, cfg, xp):
    """Per-time train/test losses of theta* and theta_mem, (T,) host arrays each."""
    grid = cfg.grid()
    kw = dict(n_noise=cfg.eval_noise_draws, process=cfg.process, target=cfg.target)
    out = {}
    for name, p in (("generalizing", generalizing(dataset.mixture)), ("memorizing", memorizing(dataset.X))):
        for split, S, key in (("train", dataset.X, 0), ("test", dataset.X_test, 1)):
            seed = eval_seed(cfg, key)
            out[f"{name}_{split}"] = to_host(per_time_losses(p.means, p.var, S, grid, seed=seed, **kw))
    return out


def evaluate(dataset, M, means, var, cfg, xp, baselines):
    """Metrics of one trained model ``means (M, d)``, variance ``var``: a JSON-able dict.

    Per-time losses use common random numbers across models (the same eval seed), so
    the trained model and every baseline see the same noise.
    """
    grid = cfg.grid()
    X = dataset.X
    gen = _generated(dataset, M, means, var, cfg, xp)
    fresh, _ = dataset.mixture.sample(cfg.eval_samples, rng_for(cfg.seed, STREAM_FRESH, M), xp=xp)
    kw = dict(n_noise=cfg.eval_noise_draws, process=cfg.process, target=cfg.target)
    losses = {}
    M_pm = min(M, X.shape[0])
    pmem, subset = partially_memorizing(X, M_pm, cfg.seed)
    for split, S, key in (("train", X, 0), ("test", dataset.X_test, 1)):
        seed = eval_seed(cfg, key)
        losses[f"model_{split}"] = to_host(per_time_losses(means, var, S, grid, seed=seed, **kw))
        losses[f"pmem_{split}"] = to_host(per_time_losses(pmem.means, 0.0, S, grid, seed=seed, **kw))
    losses.update(baselines)
    d, N = X.shape[1], X.shape[0]
    approx = {"generalizing": generalizing_excess_loss(grid, d, cfg.data_var, target=cfg.target,
                                                       process=cfg.process)}
    for method in METHODS:
        approx[method] = partial_memorizing_excess_loss(
            grid, d, cfg.data_var, M_pm, N, target=cfg.target, process=cfg.process,
            method=method, X=X, subset=subset, K=cfg.components)
    mem = memorization(gen, X)
    return {
        "M": int(M), "M_over_N": M / N,
        "memorization": mem,
        "learned_variance": float(var),
        "learned_means": learned_means_stats(means, dataset.mixture.means, X),
        "final_train_loss": float(np.mean(losses["model_train"])),
        "final_test_loss": float(np.mean(losses["model_test"])),
        "w2": wasserstein2(gen, fresh),
        "times": grid.tolist(),
        "per_time_losses": {k: np.asarray(v).tolist() for k, v in losses.items()},
        "approximations_excess_over_memorizing": {k: np.asarray(v).tolist() for k, v in approx.items()},
        "pmem_subset": subset.tolist(),
    }, {"generated": to_host(gen)}


def _generated(dataset, M, means, var, cfg, xp):
    """The evaluation's generated samples (eval_samples, d) of a model: the sampler from
    the starting points of stream (STREAM_SAMPLE, M), the same at every call."""
    x_T = xp.asarray(rng_for(cfg.seed, STREAM_SAMPLE, M).standard_normal(
        (cfg.eval_samples, dataset.X.shape[1])), dtype=means.dtype)
    srng = rng_for(cfg.seed, STREAM_SAMPLE, M, 1)
    return sample(means, var, cfg.grid(), x_T, process=cfg.process, method=cfg.sampler, rng=srng)


def track(dataset, M, params, cfg, xp):
    """Metrics of one model along training (the Family's ``track``), in float64 whatever
    the training dtype: the memorization ratio of ``eval_samples`` generated samples
    (the final evaluation's starting points, so a series and its last point compare
    with common random numbers), its Wilson interval, the variance, the mean train and
    test loss over the grid (``track_noise_draws`` noise draws, the evaluation seeds),
    and where the means sit (counts near a true mean / near a sample, and the median
    distances to the nearest true mean and training point).

    params : {"means": (M, d), "std": ()}; returns a flat dict of host floats."""
    means = params["means"].astype(xp.float64)
    var = float(to_host(params["std"]).astype(np.float64) ** 2)
    X = dataset.X.astype(xp.float64)
    mem = memorization(_generated(dataset, M, means, var, cfg, xp), X)
    kw = dict(n_noise=cfg.track_noise_draws, process=cfg.process, target=cfg.target)
    grid = cfg.grid()
    loss = {split: float(np.mean(to_host(per_time_losses(means, var, S.astype(xp.float64), grid,
                                                         seed=eval_seed(cfg, key), **kw))))
            for split, S, key in (("train", X, 0), ("test", dataset.X_test, 1))}
    stats = learned_means_stats(means, dataset.mixture.means, X)
    return {"ratio": mem["ratio"], "ratio_lo": mem["interval"][0], "ratio_hi": mem["interval"][1],
            "count": mem["count"], "n": mem["n"], "variance": var,
            "train_loss": loss["train"], "test_loss": loss["test"],
            "near_true_mean": stats["near_true_mean"], "near_sample": stats["near_sample"],
            "dist_true_mean": stats["dist_nearest_true_mean"]["p50"],
            "dist_sample": stats["dist_nearest_sample"]["p50"]}


def evaluate_gmm(dataset, M, params, cfg, xp, baselines):
    """:func:`evaluate` for a parameter dict {"means": (M, d), "std": ()}."""
    var = float(to_host(params["std"]).astype(np.float64) ** 2)
    return evaluate(dataset, M, params["means"], var, cfg, xp, baselines)


FAMILY = Family(dataset=dataset, init=init, loss=loss, evaluate=evaluate_gmm,
                baselines=baseline_losses, track=track, rows_last=True, fusable=True,
                workspace=True)
