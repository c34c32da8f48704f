"""Model families: what training, evaluation and the run protocol need of a model.

- :mod:`gmmdiff.families.registry`    -- the contract (:class:`~gmmdiff.families.registry.Family`)
  and the registry of families by name;
- :mod:`gmmdiff.families.gmm`         -- the isotropic GMM (SPEC 4): init, training loss,
  evaluation, baselines;
- :mod:`gmmdiff.families.templates`   -- the colored low-rank templates (SPEC 11);
- :mod:`gmmdiff.families.template_io` -- template files (IDX, NumPy) and the shipped set.

May import: the base modules, :mod:`gmmdiff.io`, :mod:`gmmdiff.engine`,
:mod:`gmmdiff.model`, :mod:`gmmdiff.theory`.
"""
