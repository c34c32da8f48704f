"""The theory: closed-form loss approximations and the predicted transition (SPEC 6-7).

- :mod:`gmmdiff.theory.approximations` -- the excess losses of the generalizing and
  partially memorizing models (simple, nearest, expected forms), their check against
  Monte Carlo, the predicted transition;
- :mod:`gmmdiff.theory.nearest`  -- the instance-wise nearest-neighbour form;
- :mod:`gmmdiff.theory.expected` -- its expectation over the data model;
- :mod:`gmmdiff.theory.crossover` -- the sign change of Delta(M) over model sizes.

May import: the base modules, :mod:`gmmdiff.io`, :mod:`gmmdiff.engine`,
:mod:`gmmdiff.model`.
"""
