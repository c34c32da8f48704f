"""Sweeps over configurations (N, d, K, data variance s*, seed), each a run directory
of its own.

- :mod:`gmmdiff.experiments.sweep.spec`    -- the grids and ``sweep.json``;
- :mod:`gmmdiff.experiments.sweep.presets` -- the named sweeps of ``--preset``;
- :mod:`gmmdiff.experiments.sweep.plans`   -- the coarse and refinement sizes and
  ``plan.json``;
- :mod:`gmmdiff.experiments.sweep.units`   -- units of work, shards, the sweep directory
  and what is checked before anything is written;
- :mod:`gmmdiff.experiments.sweep.running` -- running (or resuming) a shard's units;
- :mod:`gmmdiff.experiments.sweep.summary` -- ``summary.json``, ``summary.csv``, fits.

May import: every layer below and the other modules of :mod:`gmmdiff.experiments`.
"""
