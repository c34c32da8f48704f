"""Experiments: runs, sweeps, transitions, predictions, verdicts and their results.

- :mod:`gmmdiff.experiments.runs`       -- run directories of training, resume,
  :func:`~gmmdiff.experiments.runs.run` and :func:`~gmmdiff.experiments.runs.run_batch`;
- :mod:`gmmdiff.experiments.checks`     -- a run directory's files (config, model arrays,
  checkpoints) checked against their configuration before they are used;
- :mod:`gmmdiff.experiments.sweep`      -- sweeps over configurations (spec and presets,
  size plans, units and shards, running, summary);
- :mod:`gmmdiff.experiments.transition` -- the memorization transition of a curve;
- :mod:`gmmdiff.experiments.predict`    -- predicted transitions from loss curves;
- :mod:`gmmdiff.experiments.fits`       -- the fitted time weights, cross-validated;
- :mod:`gmmdiff.experiments.fit_files`  -- fit files, the shipped results, held-out scores;
- :mod:`gmmdiff.experiments.verdict`    -- paired verdicts against the trivial predictor;
- :mod:`gmmdiff.experiments.transfer`   -- the data-variance (s*) transfer experiment;
- :mod:`gmmdiff.experiments.convergence` -- has a model finished training (statuses per size);
- :mod:`gmmdiff.experiments.inits`      -- the transition by initialization, paired by seed;
- :mod:`gmmdiff.experiments.timelaw`    -- the memorization-time law (tau_mem, tau_gen ~ N^gamma);
- :mod:`gmmdiff.experiments.results`    -- :func:`~gmmdiff.experiments.results.load_run`
  and :func:`~gmmdiff.experiments.results.load_sweep` for analysis.

May import: every layer below (up to :mod:`gmmdiff.training`).
"""
