"""The run protocol: train and evaluate model sizes into run directories, resumably.

A run directory (:class:`gmmdiff.storage.RunDir`) belongs to one configuration; it holds
one result per finished model size and, while a batch trains, its checkpoint.
:func:`run` trains the sizes of one configuration that are not finished yet;
:func:`run_batch` trains several configurations (that may differ in seed and K) in one
array program, each writing into its own run directory. A killed run resumes from its
last checkpoint; finished sizes are never retrained.
"""
import dataclasses
import os

from .backend import backend_name, to_host
from .config import check_batchable, check_sizes
from .state import TrainState, initial_state
from .storage import RunDir
from .train import check_fused, train


def identity(cfg, backend):
    """The settings a run directory is tied to."""
    return dict(dataclasses.asdict(cfg), backend=backend)


def run(cfg, sizes, out, xp, *, checkpoint_every=0, callback=None, log_every=None, fused=False):
    """Train and evaluate every model size not yet complete in run directory ``out``.

    Returns the list of per-size metric dicts of all requested sizes (finished earlier
    or now), in increasing M. Resumes from ``out/checkpoint.npz`` when it holds the
    pending sizes; otherwise the pending sizes start from scratch.
    """
    return run_batch([(cfg, out, sizes)], xp, checkpoint_every=checkpoint_every,
                     callback=callback, log_every=log_every, fused=fused)[0]


def _resume(path, labels, owners, sizes, xp):
    """The checkpointed state restricted to ``labels`` (None when it lacks any)."""
    if not os.path.exists(path):
        return None
    loaded = TrainState.load(path, xp)
    if not set(labels) <= set(loaded.labels):
        return None
    return loaded.select([loaded.labels.index(lab) for lab in labels], owners, sizes)


def run_batch(items, xp, *, checkpoint=None, checkpoint_every=0, callback=None, log_every=None,
              fused=False):
    """Train several configurations in one array program and write each one's results
    into its own run directory.

    Parameters
    ----------
    items : list of (TrainConfig, run directory, model sizes); the configurations may
        differ only in seed and K (:func:`gmmdiff.config.check_batchable`)
    checkpoint : path of the batch's checkpoint (default: the first run directory's
        ``checkpoint.npz``); a checkpoint holding every pending model resumes them
    fused : train with the fused cupy kernels (:func:`gmmdiff.train.train`); results are
        the same up to rounding, so it is not part of a run's identity

    Returns, per item, the list of per-size metric dicts in increasing M.
    """
    cfgs = [c.validate() for c, _, _ in items]
    check_batchable(cfgs)
    check_fused(fused, cfgs[0], xp)
    for c, _, sz in items:
        check_sizes(sz, c.samples, c.init)
    backend = backend_name(xp)
    rds = [RunDir(out, identity(c, backend)) for c, out, _ in items]
    sizes, owners, labels = [], [], []
    for o, ((_, _, sz), rd) in enumerate(zip(items, rds)):
        done = set(rd.completed())
        for M in sz:
            if M not in done:
                sizes.append(M)
                owners.append(o)
                labels.append(f"{os.path.basename(rd.path)}:M={M}")
    if sizes:
        datasets = [c.dataset(xp) for c in cfgs]
        ckpt = checkpoint or rds[0].file("checkpoint.npz")
        state = _resume(ckpt, labels, owners, sizes, xp)
        if state is None:
            state = initial_state(datasets, sizes, cfgs, xp, owners=owners, labels=labels)
        if state.step < cfgs[0].steps:
            state = train(datasets, state, cfgs, xp, callback=callback, log_every=log_every,
                          checkpoint=ckpt, checkpoint_every=checkpoint_every, fused=fused)
        fam = cfgs[0].family()                                           # shared by the batch
        baselines = {}
        for j, (M, o) in enumerate(zip(state.sizes, state.owners)):
            cfg, ds = cfgs[o], datasets[o]
            if o not in baselines:
                baselines[o] = fam.baselines(ds, cfg, xp)
            params = {k: (v[j] if k == "std" else v[j, :M]) for k, v in state.params.items()}
            metrics, extra = fam.evaluate(ds, M, params, cfg, xp, baselines[o])
            metrics["training_loss"] = {"steps": list(state.loss_steps),
                                        "loss": [row[j] for row in state.losses]}
            rds[o].write_result(M, metrics, {**{k: to_host(v) for k, v in params.items()},
                                             "generated": extra["generated"]})
        os.unlink(ckpt)
    return [[rd.read_result(M)[0] for M in sz] for rd, (_, _, sz) in zip(rds, items)]
