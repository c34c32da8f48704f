"""Analysis: the estimators that turn measured numbers into transitions, exponents and
verdicts, apart from the machinery that produces those numbers.

- :mod:`gmmdiff.analysis.transition`  -- the memorization transition of a curve (the
  two-point rule and the whole-curve fit with its interval);
- :mod:`gmmdiff.analysis.convergence` -- has a model finished training (statuses per size);
- :mod:`gmmdiff.analysis.predict`     -- predicted transitions from loss curves;
- :mod:`gmmdiff.analysis.fits`        -- the fitted time weights, cross-validated;
- :mod:`gmmdiff.analysis.fit_files`   -- fit files, the shipped results, held-out scores;
- :mod:`gmmdiff.analysis.verdict`     -- paired verdicts against the trivial predictor;
- :mod:`gmmdiff.analysis.transfer`    -- the data-variance (s*) transfer experiment;
- :mod:`gmmdiff.analysis.inits`       -- the transition by initialization, paired by seed;
- :mod:`gmmdiff.analysis.timelaw`     -- the memorization-time law (tau_mem, tau_gen ~ N^gamma);
- :mod:`gmmdiff.analysis.protocols`   -- the time law per training protocol (optimizer,
  batch) against the mechanism that would set it.

The estimators take arrays and plain dicts (a sweep summary's entries, a run's series),
never a run directory, so they run on numbers from any code. A prediction that needs a
configuration's training set ("nearest") rebuilds it from plain settings
(:func:`gmmdiff.analysis.predict.training_set`); the shipped results are read from
``gmmdiff/assets`` by :mod:`gmmdiff.analysis.fit_files`.

May import: the base modules, :mod:`gmmdiff.io`, :mod:`gmmdiff.model` and
:mod:`gmmdiff.theory` -- nothing from :mod:`gmmdiff.training`, the experiments that run
and store the numbers, or the command line.
"""
