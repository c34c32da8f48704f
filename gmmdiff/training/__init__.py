"""Training J models at once (SPEC 8), knowing no model family but through the registry.

- :mod:`gmmdiff.training.config` -- :class:`~gmmdiff.training.config.TrainConfig`
  (every setting of a run);
- :mod:`gmmdiff.training.sizes`  -- the model sizes of a run, and which runs train
  together;
- :mod:`gmmdiff.training.batches` -- the minibatches of each step;
- :mod:`gmmdiff.training.state`  -- the training state of a batch and its checkpoints;
- :mod:`gmmdiff.training.draws`  -- training times and noise, stream by stream, chunk by
  chunk;
- :mod:`gmmdiff.training.optim`  -- clip + Adam, gradient descent or momentum +
  warmup-decay schedule + averaged updates;
- :mod:`gmmdiff.training.loop`   -- the optimizer loop over a batch of models;
- :mod:`gmmdiff.training.interrupt` -- stopping on SIGTERM (Slurm) with the checkpoint
  saved;
- :mod:`gmmdiff.training.memory` -- the memory a run needs, checked before it starts.

May import: every layer below (base, :mod:`gmmdiff.io`, :mod:`gmmdiff.engine`,
:mod:`gmmdiff.model`, :mod:`gmmdiff.theory`, :mod:`gmmdiff.families`).
"""
