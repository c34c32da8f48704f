"""The mathematics of the laboratory (SPEC 2-5, 9).

- :mod:`gmmdiff.model.process`   -- diffusion processes (VP, flow matching), the time grid;
- :mod:`gmmdiff.model.data`      -- the isotropic Gaussian-mixture data model;
- :mod:`gmmdiff.model.denoisers` -- closed-form GMM denoisers and target conversions;
- :mod:`gmmdiff.model.losses`    -- denoising losses, Monte Carlo estimates,
  hand-derived gradients;
- :mod:`gmmdiff.model.sampling`  -- DDIM and DDPM samplers;
- :mod:`gmmdiff.model.metrics`   -- memorization ratio, learned-means statistics, W2.

May import: the base modules and :mod:`gmmdiff.io`, :mod:`gmmdiff.engine` (the fused
kernels of the loss).
"""
