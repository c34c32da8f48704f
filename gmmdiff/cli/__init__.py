"""What the click scripts of ``bin/`` share: options, worker processes, progress, figures.

- :mod:`gmmdiff.cli.options`     -- shared click options;
- :mod:`gmmdiff.cli.errors`      -- bad input as one line (exit 2), Ctrl-C as what was kept;
- :mod:`gmmdiff.cli.workers`     -- ``--jobs`` and ``--devices`` worker processes;
- :mod:`gmmdiff.cli.progress`    -- progress bars and lines of runs, sweeps and fits;
- :mod:`gmmdiff.cli.terminal`    -- the bar redrawn in place on a terminal;
- :mod:`gmmdiff.cli.plotting`    -- figures of one run directory (1, 2, 5);
- :mod:`gmmdiff.cli.sweep_plots` -- figures of a sweep (3, 7).
- :mod:`gmmdiff.cli.slurm`       -- a sweep as a Slurm job array: the batch script of
  ``gmmdiff-sweep --sbatch``.

May import: every layer (it is the top).
"""
