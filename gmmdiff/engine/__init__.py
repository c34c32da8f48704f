"""The machinery that makes the training step fast; it has no science of its own.

- :mod:`gmmdiff.engine.blocked` -- the GMM loss in cache-sized row blocks, into buffers
  kept for the run;
- :mod:`gmmdiff.engine.kernels` -- hand-written CUDA kernels (fused loss, draws,
  optimizer), rendered to C++ for tests on machines without a GPU;
- :mod:`gmmdiff.engine.threads` -- a crew of helper threads and the BLAS thread count;
- :mod:`gmmdiff.engine.buckets` -- models of different sizes in padded buckets.

May import: the base modules (:mod:`gmmdiff.backend`, :mod:`gmmdiff.rng`,
:mod:`gmmdiff.softmax`).
"""
