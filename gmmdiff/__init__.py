"""gmmdiff: when do Gaussian-mixture diffusion denoisers memorize their training data?

Modules (one concept each):

- :mod:`gmmdiff.backend`   -- numpy/cupy switch, dtype policy, host conversion
- :mod:`gmmdiff.process`   -- diffusion processes (VP, flow matching) and the time grid
- :mod:`gmmdiff.data`      -- the isotropic Gaussian-mixture data model
- :mod:`gmmdiff.denoisers` -- closed-form GMM denoisers and target conversions
- :mod:`gmmdiff.losses`    -- denoising losses, Monte Carlo estimates, hand-derived gradients
- :mod:`gmmdiff.theory`    -- closed-form loss approximations and the predicted transition
- :mod:`gmmdiff.optim`     -- clip + Adam + warmup-decay schedule + averaged updates
- :mod:`gmmdiff.rng`       -- counter-based draws, identical on numpy and cupy
- :mod:`gmmdiff.streams`   -- the random streams of one seed, evaluation seeds
- :mod:`gmmdiff.softmax`   -- the stable softmax over components (logit floor, padding)
- :mod:`gmmdiff.config`    -- TrainConfig (every setting of a run), model sizes
- :mod:`gmmdiff.families`  -- the model-family contract and registry
- :mod:`gmmdiff.gmm`       -- the GMM family: init, training loss, evaluation, baselines
- :mod:`gmmdiff.state`     -- the training state of a batch and its checkpoints
- :mod:`gmmdiff.draws`     -- training times and noise, stream by stream, chunk by chunk
- :mod:`gmmdiff.buckets`   -- models of different sizes in padded buckets
- :mod:`gmmdiff.train`     -- the optimizer loop over a batch of models
- :mod:`gmmdiff.runs`      -- run directories, resume, run / run_batch
- :mod:`gmmdiff.sampling`  -- DDIM and DDPM samplers
- :mod:`gmmdiff.metrics`   -- memorization ratio, learned-means statistics, W2
- :mod:`gmmdiff.storage`   -- atomic JSON/NPZ results, run directories
- :mod:`gmmdiff.locks`     -- one live process per run directory or sweep unit
- :mod:`gmmdiff.memory`    -- the memory a run needs, checked before it starts
- :mod:`gmmdiff.transition`-- phase-transition detection
- :mod:`gmmdiff.predict`   -- predicted transitions and the fitted time weights
- :mod:`gmmdiff.sweep`     -- sweeps over configurations, shards, summaries
- :mod:`gmmdiff.templates` -- the colored-template (image-like) model family
- :mod:`gmmdiff.template_io` -- template files (IDX, NumPy) and the shipped set
- :mod:`gmmdiff.plotting`  -- figures 1, 2, 3, 5 and 7
- :mod:`gmmdiff.kernels`   -- hand-written CUDA kernels (fused loss, draws, optimizer)
- :mod:`gmmdiff.cli`       -- shared options of the click scripts in bin/, workers
- :mod:`gmmdiff.progress`  -- progress bars and lines of training runs and sweeps
- :mod:`gmmdiff.results`   -- load_run / load_sweep: results for analysis

The main functions import from the package itself (``from gmmdiff import load_run``);
each is loaded on first use, so ``import gmmdiff`` stays cheap.
"""
import importlib

__version__ = "0.5.0"

# name -> module that defines it (see each function's docstring)
_EXPORTS = {
    "load_run": "results", "load_sweep": "results", "RunResults": "results",
    "SweepResults": "results",
    "make_dataset": "data", "make_mixture": "data", "Dataset": "data",
    "GaussianMixture": "data",
    "gmm_denoise": "denoisers", "gmm_x0": "denoisers", "convert": "denoisers",
    "generalizing": "denoisers", "memorizing": "denoisers",
    "partially_memorizing": "denoisers", "GMMParams": "denoisers",
    "loss_and_grad": "losses", "denoising_loss": "losses", "per_time_losses": "losses",
    "time_grid": "process", "coefficients": "process",
    "generalizing_excess_loss": "theory", "partial_memorizing_excess_loss": "theory",
    "predict_transition": "theory", "compare_with_monte_carlo": "theory",
    "predicted_ratios": "predict", "shipped_fits": "predict", "read_fit": "predict",
    "TrainConfig": "config", "parse_model_sizes": "config",
    "run": "runs", "run_batch": "runs",
    "SweepSpec": "sweep", "run_sweep": "sweep", "summarize": "sweep", "fit_sweep": "sweep",
    "sample": "sampling", "memorization": "metrics", "detect": "transition",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
