"""Model families: what training, evaluation and the run protocol need of a model.

A family is one kind of denoiser that gmmdiff trains: the isotropic Gaussian mixture
of SPEC 4 (:mod:`gmmdiff.families.gmm`) or the colored low-rank templates of SPEC 11
(:mod:`gmmdiff.families.templates`). Each family lives in its own module, next to its model code
or calling it, and defines a module-level ``FAMILY = Family(...)``; :data:`REGISTRY`
below maps the family's name (``TrainConfig.model``, ``--model``) to that module. The
training loop (:mod:`gmmdiff.training.loop`) and the run protocol (:mod:`gmmdiff.experiments.runs`) look a
family up with :func:`get` and import none of them.

What a family must provide (the fields of :class:`Family`; J models are trained at once,
padded to a common number of components Mmax, padding masked out):

``dataset(cfg, xp)``
    the seeded data set of a :class:`gmmdiff.training.config.TrainConfig` on backend ``xp``: an
    object with ``X (N, ...)`` training rows, ``X_test (n_test, ...)`` held-out rows and
    whatever the family's own functions need (the data model, labels). It is built
    before anything is written, so it is also where bad data settings (an unreadable
    template file, more templates than images) raise their ValueError.
``init(dataset, M, cfg)``
    initial parameters of one model of size M: a dict of float64 host arrays, each
    per-component array with first axis M, and the scalar ``"std"``.
``loss(params, x0, eps, alpha, sigma, wt, xp, mask)``
    the mean training loss of J models and its gradients, ``(loss (J,), grads)`` with
    ``grads`` shaped like ``params`` (per-component arrays (J, Mmax, ...), "std" (J,)).
    x0 : (J, B, ...) or (B, ...) (shared by the batch), eps : (J, B, ...); with
    ``rows_last`` both have their rows last, (J, d, B) and (d, B). alpha, sigma, wt :
    (J, B) float64 per row; mask : (J, Mmax) bool.
``evaluate(dataset, M, params, cfg, xp, baselines)``
    metrics of one trained model (params sliced to its M components): ``(metrics, arrays)``
    with a JSON-able dict and a dict of host arrays holding at least ``"generated"``.
``baselines(dataset, cfg, xp)``
    per-time losses of the family's reference models, shared by every size of a
    configuration (a dict of (T,) host arrays, merged into each size's metrics).
``track(dataset, M, params, cfg, xp)`` (optional)
    the light metrics of one model along training, at the steps of ``cfg.eval_steps``
    (:func:`gmmdiff.training.config.eval_step_list`): a flat dict of host floats, the
    same keys at every call, at least ``ratio``, ``ratio_lo``, ``ratio_hi``, ``count``,
    ``n`` (the memorization ratio, its 95% Wilson interval, the memorized count of ``n``
    generated samples), ``variance``, ``train_loss`` and ``test_loss``. It draws only
    from evaluation streams, so training is the same with and without it. None: the
    family records no time series.

Capabilities: ``rows_last`` (the loss takes its rows as the last axis), ``fusable``
(the loss accepts ``fused=True``: the cupy kernels of :mod:`gmmdiff.engine.kernels`) and
``workspace`` (the loss accepts ``ws=``, a :class:`gmmdiff.engine.blocked.Workspace` of
buffers the training loop keeps for the whole run, and on numpy ``defer=True, tag=``:
it then returns ``(tasks, finish)``, tasks the loop spreads over the cores,
:func:`gmmdiff.engine.buckets.bucketed`).

Adding a family, say a low-rank mixture: write ``gmmdiff/families/lowrank.py`` defining
``FAMILY = Family(...)`` and add one line ``"lowrank": "gmmdiff.families.lowrank"`` to
:data:`REGISTRY`.
"""
import importlib
from dataclasses import dataclass

REGISTRY = {
    "gmm": "gmmdiff.families.gmm",
    "templates": "gmmdiff.families.templates",
}
MODELS = tuple(REGISTRY)


@dataclass(frozen=True)
class Family:
    """One model family (see the module docstring for each field's contract)."""
    dataset: object
    init: object
    loss: object
    evaluate: object
    baselines: object
    track: object = None
    rows_last: bool = False
    fusable: bool = False
    workspace: bool = False


def get(name):
    """The :class:`Family` registered under ``name`` ("gmm", "templates", ...)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; accepted: {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name]).FAMILY
