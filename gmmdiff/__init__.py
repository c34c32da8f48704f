"""gmmdiff: when do Gaussian-mixture diffusion denoisers memorize their training data?

The package in layers, each importing only from the layers listed before it (a test,
``tests/test_layout.py``, parses every import and fails on one that points up):

- base modules: :mod:`gmmdiff.backend` (numpy/cupy switch, dtypes, host conversion),
  :mod:`gmmdiff.rng` (counter-based draws), :mod:`gmmdiff.streams` (the random
  streams of a seed), :mod:`gmmdiff.softmax` (the stable softmax over components),
  :mod:`gmmdiff.version`;
- :mod:`gmmdiff.io` -- files on disk: atomic JSON/NPZ, their schemas, run directories,
  locks;
- :mod:`gmmdiff.engine` -- the machinery of the fast step, no science of its own: row
  blocks, CUDA kernels, threads, size buckets;
- :mod:`gmmdiff.model` -- the mathematics of the laboratory: processes, data, denoisers,
  losses and gradients, sampling, metrics;
- :mod:`gmmdiff.theory` -- the closed-form loss approximations and the predicted
  transition;
- :mod:`gmmdiff.families` -- the model families the training loop trains (the GMM, the
  colored templates) and their registry;
- :mod:`gmmdiff.training` -- settings, state, draws, optimizer, the loop, memory checks;
- :mod:`gmmdiff.analysis` -- the estimators on measured numbers (arrays and plain
  dicts): transitions, convergence, predictions and their fits, verdicts, the s*
  transfer, the initialization gap, the time law;
- :mod:`gmmdiff.experiments` -- what runs and stores experiments: runs, sweeps, their
  results for analysis;
- :mod:`gmmdiff.cli` -- what the click scripts of ``bin/`` share: options, workers,
  progress, figures.

The main functions import from the package itself (``from gmmdiff import load_run``);
each is loaded on first use, so ``import gmmdiff`` stays cheap.
"""
import importlib

from gmmdiff import version as _version

#: The installed version of gmmdiff, a string such as ``"0.7.0"``; every file a run or a
#: sweep writes records it (``gmmdiff_version``).
__version__ = _version.__version__

# name -> module that defines it (see each function's docstring)
_EXPORTS = {
    "load_run": "experiments.results", "load_sweep": "experiments.results",
    "RunResults": "experiments.results", "SweepResults": "experiments.results",
    "make_dataset": "model.data", "make_mixture": "model.data", "Dataset": "model.data",
    "GaussianMixture": "model.data",
    "gmm_denoise": "model.denoisers", "gmm_x0": "model.denoisers", "convert": "model.denoisers",
    "generalizing": "model.denoisers", "memorizing": "model.denoisers",
    "partially_memorizing": "model.denoisers", "GMMParams": "model.denoisers",
    "loss_and_grad": "model.losses", "denoising_loss": "model.losses",
    "per_time_losses": "model.losses",
    "time_grid": "model.process", "coefficients": "model.process",
    "generalizing_excess_loss": "theory.approximations",
    "partial_memorizing_excess_loss": "theory.approximations",
    "predict_transition": "theory.approximations",
    "compare_with_monte_carlo": "theory.approximations",
    "predicted_ratios": "analysis.predict", "shipped_fits": "analysis.fit_files",
    "read_fit": "analysis.fit_files",
    "TrainConfig": "training.config", "parse_model_sizes": "training.sizes",
    "run": "experiments.runs", "run_batch": "experiments.runs",
    "SweepSpec": "experiments.sweep.spec", "run_sweep": "experiments.sweep.running",
    "summarize": "experiments.sweep.summary", "fit_sweep": "experiments.sweep.summary",
    "sample": "model.sampling", "memorization": "model.metrics",
    "detect": "analysis.transition",
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
