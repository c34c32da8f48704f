"""Experiments: what runs and stores them -- runs, sweeps and their results for analysis
(the estimators that analyse them are :mod:`gmmdiff.analysis`'s).

- :mod:`gmmdiff.experiments.runs`       -- run directories of training, resume,
  :func:`~gmmdiff.experiments.runs.run` and :func:`~gmmdiff.experiments.runs.run_batch`;
- :mod:`gmmdiff.experiments.checks`     -- a run directory's files (config, model arrays,
  checkpoints) checked against their configuration before they are used;
- :mod:`gmmdiff.experiments.sweep`      -- sweeps over configurations (spec and presets,
  size plans, units and shards, running, summary);
- :mod:`gmmdiff.experiments.results`    -- :func:`~gmmdiff.experiments.results.load_run`
  and :func:`~gmmdiff.experiments.results.load_sweep` for analysis.

May import: every layer below (up to :mod:`gmmdiff.analysis`).
"""
