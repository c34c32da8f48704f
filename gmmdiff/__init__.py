"""gmmdiff: when do Gaussian-mixture diffusion denoisers memorize their training data?

Modules (one concept each):

- :mod:`gmmdiff.backend`   -- numpy/cupy switch, dtype policy, host conversion
- :mod:`gmmdiff.process`   -- diffusion processes (VP, flow matching) and the time grid
- :mod:`gmmdiff.data`      -- the isotropic Gaussian-mixture data model
- :mod:`gmmdiff.denoisers` -- closed-form GMM denoisers and target conversions
- :mod:`gmmdiff.losses`    -- denoising losses, Monte Carlo estimates, hand-derived gradients
- :mod:`gmmdiff.theory`    -- closed-form loss approximations and the predicted transition
"""
__version__ = "0.1.0"
