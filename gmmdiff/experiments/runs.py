"""The run protocol: train and evaluate model sizes into run directories, resumably.

A run directory (:class:`gmmdiff.io.rundir.RunDir`) belongs to one configuration; it holds
one result per finished model size and, while a batch trains, its checkpoint.
:func:`run` trains the sizes of one configuration that are not finished yet;
:func:`run_batch` trains several configurations (that may differ in seed and K) in one
array program, each writing into its own run directory. A killed run resumes from its
last checkpoint; finished sizes are never retrained.
"""
import hashlib
import os

from gmmdiff.backend import backend_name, probe_cupy, to_host
from gmmdiff.analysis import convergence
from gmmdiff.experiments.checks import (
    check_checkpoint,
    check_results,
    check_resumed,
    check_run_dir,
)
from gmmdiff.io.files import StorageError, check_regular_file
from gmmdiff.io.rundir import RunDir, completed_sizes
from gmmdiff.training import interrupt
from gmmdiff.training.sizes import check_batchable, check_sizes
from gmmdiff.training.loop import Diverged, check_fused, train
from gmmdiff.training.memory import check_run_fits
from gmmdiff.training.state import TrainState, initial_state

# Bumped whenever the same settings give different results, so that a directory of
# older results is refused instead of resumed with a mix of both. 2: theta_pmem,M's
# subsets nested along one order (gmmdiff 0.2), hash draws keyed by step. 3: float32
# runs draw float32 noise (gmmdiff.training.draws); the numpy loss sums its rows block by block
# (gmmdiff.engine.blocked: float64 results move by rounding only). 4: numpy's rows-last noise
# is drawn in its own layout, (S, d, N n), not transposed from (S, N n, d)
# (gmmdiff.training.draws); the loss's row blocks are summed in groups (tasks) and the groups in
# order (rounding only). 5: the numpy loss computes the same formulas rearranged
# (gmmdiff.engine.blocked: U straight from x0 and eps, the weights' normalization and b folded
# into per-row coefficients; rounding only). 6: evaluation along training (the settings
# eval_steps and track_noise_draws, "along_training" in each size's metrics; training
# itself unchanged); the numpy float32 loss computes x0hat - x0, d/dstd and R.mubar in
# forms without cancellation (gmmdiff.engine.blocked), and so do the cupy loss (array
# program and fused kernels) and numpy's float32 evaluation losses (gmmdiff.model.losses);
# float64 unchanged bit for bit.
RESULTS_FORMAT = 6


def identity(cfg, backend):
    """The settings a run directory is tied to (:meth:`TrainConfig.settings`: the
    optimizer's and batch's only where they differ from full-batch Adam) and
    :data:`RESULTS_FORMAT`. A template file enters by the SHA-256 of its content, not its
    path: the same file by another path is the same run, a file changed in place is not."""
    ident = dict(cfg.settings(), backend=backend, results_format=RESULTS_FORMAT)
    if cfg.template_file is not None:
        ident["template_file"] = "sha256:" + file_sha256(cfg.template_file)
    return ident


def file_sha256(path):
    """Hex SHA-256 of a file's content (ValueError naming an unreadable file)."""
    h = hashlib.sha256()
    check_regular_file(path, "template file")       # a FIFO would block here
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise ValueError(f"cannot read template file {path}: {exc.strerror}") from None
    return h.hexdigest()


def run(cfg, sizes, out, xp, *, checkpoint_every=0, callback=None, log_every=None, fused=False):
    """Train and evaluate every model size not yet complete in run directory ``out``.

    What ``gmmdiff-train`` runs. Resumes from ``out/checkpoint.npz`` when it holds the
    pending sizes; otherwise the pending sizes start from scratch. Finished sizes are
    never trained again; a directory of another configuration is refused.

    Parameters
    ----------
    cfg : TrainConfig
        The configuration.
    sizes : list of int
        Model sizes M (:func:`parse_model_sizes`); above N only up to 2N with the pmem
        init.
    out : str
        The run directory (created if new).
    xp : module
        ``numpy`` (CPU) or ``cupy`` (GPU).
    checkpoint_every : int
        Steps between checkpoints (0: only at the end of the batch).
    callback : callable, optional
        Called as ``callback(step, losses)`` at log intervals, ``losses`` a (J,) host
        array of the models' current training losses.
    log_every : int, optional
        Steps between logged losses (default: steps // 200).
    fused : bool
        cupy: train with the fused kernels (the same results up to rounding).

    Returns
    -------
    list of dict
        The metrics of every requested size (finished earlier or now), in increasing M:
        the content of each ``model_M*.json`` (see :doc:`/files`).
    """
    return run_batch([(cfg, out, sizes)], xp, checkpoint_every=checkpoint_every,
                     callback=callback, log_every=log_every, fused=fused)[0]


def open_run_dir(cfg, out, backend):
    """The :class:`RunDir` of configuration ``cfg`` at ``out`` (created with its
    config.json if new; a foreign directory refused), held until closed."""
    ident = identity(cfg, backend)
    meta = {"template_file": cfg.template_file} if cfg.template_file is not None else {}
    return RunDir(out, ident, meta=meta)


def _resume(path, labels, owners, sizes, xp):
    """The checkpointed state restricted to ``labels`` (None when it lacks any)."""
    if not os.path.exists(path):
        return None
    loaded = TrainState.load(path, xp)
    if not set(labels) <= set(loaded.labels):
        return None
    try:
        return loaded.select([loaded.labels.index(lab) for lab in labels], owners, sizes)
    except ValueError as exc:
        raise StorageError(f"checkpoint {path} is damaged: {exc}; remove it to start the "
                           "pending sizes from scratch") from None


def run_batch(items, xp, *, checkpoint=None, checkpoint_every=0, callback=None, log_every=None,
              fused=False):
    """Train several configurations in one array program and write each one's results
    into its own run directory.

    Parameters
    ----------
    items : list of (TrainConfig, str, list of int)
        (configuration, run directory, model sizes) triples; the configurations may
        differ only in seed and K.
    xp : module
        ``numpy`` (CPU) or ``cupy`` (GPU).
    checkpoint : str, optional
        Path of the batch's checkpoint (default: the first run directory's
        ``checkpoint.npz``); a checkpoint holding every pending model resumes them.
    checkpoint_every : int
        Steps between checkpoints (0: only at the end).
    callback : callable, optional
        Called as ``callback(step, losses)`` at log intervals, ``losses`` a (J,) host
        array over every model of the batch.
    log_every : int, optional
        Steps between logged losses (default: steps // 200).
    fused : bool
        Train with the fused cupy kernels; results are the same up to rounding, so it
        is not part of a run's identity.

    Returns
    -------
    list of list of dict
        Per item, the per-size metric dicts in increasing M (as :func:`run`).
    """
    cfgs = [c.validate() for c, _, _ in items]
    check_batchable(cfgs)
    check_fused(fused, cfgs[0], xp)
    for c, _, sz in items:
        check_sizes(sz, c.samples, c.init)
    backend = backend_name(xp)
    if backend == "cupy":
        probe_cupy(xp)          # CuPy's CUDA libraries load on first use: fail before writing
    idents = [identity(c, backend) for c in cfgs]
    # everything is checked before anything is written: the directories, the data (a
    # bad template file raises here), the memory the pending sizes need
    for (c, out, _), ident in zip(items, idents):
        check_run_dir(out, ident)
    pending = [M for (_, out, sz) in items for M in sz
               if not os.path.isdir(out) or M not in completed_sizes(out)]
    if pending:
        check_run_fits(cfgs[0], pending, xp, n_configs=len(cfgs))
    datasets = [c.dataset(xp) for c in cfgs]
    for c, (_, out, _) in zip(cfgs, items):     # every finished size: what writing reads
        if os.path.isdir(out):
            check_results(out, c)
    check_checkpoint(checkpoint or os.path.join(items[0][1], "checkpoint.npz"), cfgs,
                     [os.path.basename(os.path.abspath(out)) for _, out, _ in items])
    meta = [{"template_file": c.template_file} if c.template_file is not None else {} for c in cfgs]
    rds = []
    try:
        for (c, out, _), ident, m in zip(items, idents, meta):
            rds.append(RunDir(out, ident, meta=m))
        _train_and_evaluate(items, cfgs, datasets, rds, xp, checkpoint=checkpoint,
                            checkpoint_every=checkpoint_every, callback=callback,
                            log_every=log_every, fused=fused)
        return [[rd.read_result(M)[0] for M in sz] for rd, (_, _, sz) in zip(rds, items)]
    finally:
        for rd in rds:
            rd.close()


def _train_and_evaluate(items, cfgs, datasets, rds, xp, *, checkpoint, checkpoint_every,
                        callback, log_every, fused):
    """The pending sizes of the (open, locked) run directories ``rds``: resume or start,
    train, evaluate, write each result; the batch's checkpoint is removed at the end."""
    sizes, owners, labels = [], [], []
    for o, ((_, _, sz), rd) in enumerate(zip(items, rds)):
        done = set(rd.completed())
        for M in sz:
            if M not in done:
                sizes.append(M)
                owners.append(o)
                labels.append(f"{os.path.basename(rd.path)}:M={M}")
    ckpt = checkpoint or rds[0].file("checkpoint.npz")
    if not sizes:
        _remove_finished_checkpoint(ckpt, rds)
        return
    fresh = initial_state(datasets, sizes, cfgs, xp, owners=owners, labels=labels)
    state = _resume(ckpt, labels, owners, sizes, xp)
    if state is not None:
        check_resumed(ckpt, state, fresh, cfgs[0].steps)
    else:
        state = fresh
    fam = cfgs[0].family()                                               # shared by the batch
    while state is not None and state.step < cfgs[0].steps:
        try:
            state = train(datasets, state, cfgs, xp, callback=callback, log_every=log_every,
                          checkpoint=ckpt, checkpoint_every=checkpoint_every, fused=fused,
                          on_eval=_tracker(fam, state, cfgs, datasets, xp))
        except Diverged as exc:         # those models end here; the others train on
            state = _end_diverged(exc, cfgs, rds)
    if state is None:                   # every pending model diverged
        if os.path.exists(ckpt):
            os.unlink(ckpt)
        return
    baselines = {}
    for j, (M, o) in enumerate(zip(state.sizes, state.owners)):
        cfg, ds = cfgs[o], datasets[o]
        if o not in baselines:
            baselines[o] = fam.baselines(ds, cfg, xp)
        params = {k: (v[j] if k == "std" else v[j, :M]) for k, v in state.params.items()}
        metrics, extra = fam.evaluate(ds, M, params, cfg, xp, baselines[o])
        metrics["training_loss"] = {"steps": list(state.loss_steps),
                                    "loss": [row[j] for row in state.losses]}
        if state.eval_steps:
            series = state.series(j)
            if cfg.batch() < cfg.samples:               # minibatches: epochs beside steps
                series["epochs"] = cfg.epochs(series["steps"]).tolist()
            series["status"], series["status_reason"] = convergence.status(series, cfg.data_var)
            metrics["along_training"] = series
        rds[o].write_result(M, metrics, {**{k: to_host(v) for k, v in params.items()},
                                         "generated": extra["generated"]})
        if j + 1 < len(state.sizes):    # a signal (stop_on): the checkpoint stays, the
            interrupt.check("while evaluating the trained models")   # rest resume from it
    os.unlink(ckpt)


def _end_diverged(exc, cfgs, rds):
    """Write the record of each model of :class:`~gmmdiff.training.loop.Diverged`
    ``exc`` (status "diverged", the step, the reason; its finite training losses) and
    return the state of the other models (None when none is left)."""
    state = exc.state
    for j in exc.models:
        M, o = state.sizes[j], state.owners[j]
        cfg = cfgs[o]
        reason = (f"the training loss or parameters became non-finite, or the variance ran "
                  f"away, by step {exc.step} of {cfg.steps} (optimizer {cfg.optimizer}, "
                  f"learning rate {cfg.lr_peak:g}): the learning rate is too large for this "
                  "model; a smaller --lr trains it")
        record = {"M": int(M), "M_over_N": M / cfg.samples, "times": cfg.grid().tolist(),
                  "status": "diverged", "diverged_at": exc.step, "reason": reason,
                  "training_loss": {"steps": list(state.loss_steps),
                                    "loss": [row[j] for row in state.losses]}}
        rds[o].write_result(M, record, None)
    keep = [j for j in range(len(state.sizes)) if j not in set(exc.models)]
    if not keep:
        return None
    return state.select(keep, [state.owners[j] for j in keep], [state.sizes[j] for j in keep])


def _tracker(fam, state, cfgs, datasets, xp):
    """The training loop's ``on_eval``: the family's ``track`` of every model of the
    batch, its parameters sliced to its own M components (None: the family tracks
    nothing)."""
    if fam.track is None:
        return None

    def on_eval(step, params):
        rows = [fam.track(datasets[o], M, {k: (v[j] if k == "std" else v[j, :M])
                                           for k, v in params.items()}, cfgs[o], xp)
                for j, (M, o) in enumerate(zip(state.sizes, state.owners))]
        return {k: [r[k] for r in rows] for k in rows[0]}
    return on_eval


def _remove_finished_checkpoint(path, rds):
    """A checkpoint whose every model is already complete is what a kill between the
    last result and the checkpoint's removal leaves: remove it."""
    if not os.path.exists(path):
        return
    try:
        labels = TrainState.labels_in(path)
    except StorageError:
        return
    done = {f"{os.path.basename(rd.path)}:M={M}" for rd in rds for M in rd.completed()}
    if set(labels) <= done:
        os.unlink(path)
