"""Training of J models at once: the optimizer loop (SPEC 8, 12).

One optimizer step, for every model of the batch:

1. the step's training samples: all N (full batch, the default), or B of them
   (``batch_size``: each epoch a fresh permutation, :mod:`gmmdiff.training.batches`);
   every such sample gets one time drawn uniformly from the grid and
   ``noise_draws`` noise draws (:class:`gmmdiff.training.draws.BatchDraws`: each model its own
   stream, drawn chunk by chunk);
2. the loss is the mean over the step's samples * noise_draws rows of the target-scale squared
   error, with the hand-derived gradients of the model family (:mod:`gmmdiff.families.registry`;
   models of similar size share a padded bucket, :mod:`gmmdiff.engine.buckets`; on numpy the
   GMM loss runs in cache-sized row blocks into buffers kept for the run, spread over
   the cores, :mod:`gmmdiff.engine.blocked`);
3. the learning rate follows the warmup-stable-decay schedule at the 0-based step and
   the update is clip + Adam (or gradient descent, or momentum) + averaged updates
   (:func:`gmmdiff.training.optim.step`; Adam on numpy in place on flat buffers,
   :class:`gmmdiff.training.optim.FlatStep`, the same bits);
4. at log intervals the losses come to the host (the loop's only synchronizations),
   and at checkpoint intervals the whole state is saved (:mod:`gmmdiff.training.state`).
   A model whose loss or parameters are no longer finite at such a point (or at an
   evaluation) stops the loop with :class:`Diverged` before anything of that step is
   recorded; the run protocol ends that model as "diverged" and trains the others on.

On numpy the loop runs a crew of helper threads, one per core beyond its own
(:class:`gmmdiff.engine.threads.Crew`): they share each step's row-block tasks with it and
draw the next noise chunk in between; every thread calls the BLAS at one thread (held
so while training runs, restored when it returns), so no core is oversubscribed and
the results are the same bit for bit on any number of cores.

The loop knows no model family: it takes the family's loss from ``cfg.family()``
(:mod:`gmmdiff.families.registry`). Run directories, resume and evaluation after training are
:mod:`gmmdiff.experiments.runs`'s.
"""
import contextlib
import functools

import numpy as np

from gmmdiff.backend import backend_name, get_dtype, to_host
from gmmdiff.engine import kernels, threads
from gmmdiff.engine.blocked import Workspace
from gmmdiff.engine.buckets import BUCKET_OVERHEAD, bucketed, plan_buckets
from gmmdiff.model.process import coefficients, loss_scale
from gmmdiff.training import interrupt, optim
from gmmdiff.training.batches import MiniBatches
from gmmdiff.training.config import eval_step_list
from gmmdiff.training.sizes import check_batchable
from gmmdiff.training.draws import BatchDraws, noise_stream


class Diverged(Exception):
    """Models whose training loss or parameters became non-finite.

    Raised by :func:`train` at the first check after it happened (a logged loss, an
    evaluation along training, a checkpoint), before anything of that step is recorded
    or saved. ``models``: their indices in the state; ``step``: the steps done;
    ``state``: the training state at that step (the diverged models' parameters
    non-finite, the others' as they are, ready to train on)."""

    def __init__(self, models, step, state):
        super().__init__(f"models {models} diverged by step {step}")
        self.models, self.step, self.state = list(models), int(step), state


# A variance this many times the data variance s* has run away: the model is the
# identity denoiser to 1e-12, a plateau of the loss that gradient descent in the
# variance's log can reach with a learning rate too large (its gradient vanishes there)
RUNAWAY_VARIANCE = 1e12


def diverged_flags(params, xp, data_var=1.0):
    """(J,) bool on the device: the models that diverged -- a parameter whose square is
    not finite (a variance std^2 or a squared distance would overflow), or a variance
    std^2 above :data:`RUNAWAY_VARIANCE` times ``data_var``."""
    bad = None
    for name, v in params.items():
        flat = v.reshape(v.shape[0], -1)
        sq = flat * flat
        b = ~xp.all(xp.isfinite(sq), axis=1)                                   # (J,)
        if name == "std":
            b = b | xp.any(sq > RUNAWAY_VARIANCE * data_var, axis=1)
        bad = b if bad is None else bad | b
    return bad


def nonfinite_models(params, xp, data_var=1.0):
    """Indices of the models of :func:`diverged_flags`; one host transfer."""
    return [int(j) for j in np.flatnonzero(to_host(diverged_flags(params, xp, data_var)))]


def check_fused(fused, cfg, xp):
    """Raise ValueError unless the fused kernels can run: cupy backend, a fusable
    model family (GMM)."""
    if not fused:
        return
    if backend_name(xp) != "cupy":
        raise ValueError("fused kernels (--fused-kernels) need the cupy backend; "
                         f"got backend {backend_name(xp)!r}")
    if not cfg.family().fusable:
        raise ValueError(f"fused kernels are written for the GMM model; got model {cfg.model!r}")


def train(dataset, state, cfg, xp, *, callback=None, log_every=None, checkpoint=None,
          checkpoint_every=0, noise_source=None, bucket_overhead=None, fused=False,
          on_eval=None):
    """Run the optimizer from ``state.step`` to ``cfg.steps``; returns the final state.

    Parameters
    ----------
    dataset : the data set of ``cfg`` (:meth:`TrainConfig.dataset`, on backend ``xp``,
        dtype of cfg); for a multi-configuration batch, ``dataset`` and ``cfg`` are
        lists (:func:`gmmdiff.training.sizes.check_batchable`)
    state : :class:`TrainState` (initial or loaded from a checkpoint)
    callback : called as ``callback(step, losses (J,) host array)`` at log intervals
    log_every : steps between logged losses (default: steps // 200, at least 1); the
        only host-device synchronizations of the loop happen there
    checkpoint : path; the state is saved there every ``checkpoint_every`` steps and
        at the end (0 = only at the end), and after the step during which a signal
        arrived inside :func:`gmmdiff.training.interrupt.stop_on`, which then raises
        :class:`~gmmdiff.training.interrupt.Interrupted`
    noise_source : "pcg" or "hash" (:func:`gmmdiff.training.draws.draw_chunk`); default "pcg" on
        numpy and "hash" on cupy
    bucket_overhead : fixed cost per bucket for :func:`plan_buckets` (default by
        backend, :data:`BUCKET_OVERHEAD`; large: one padded batch; 0: one bucket per size)
    fused : cupy only, GMM only: the loss's column passes and the optimizer step run as
        the fused kernels of :mod:`gmmdiff.engine.kernels` (see :func:`check_fused`); the
        counter-based draws are kernels on cupy whether or not
    on_eval : ``on_eval(step, params)`` -> dict metric -> (J,) host values, called at
        the steps of ``cfg.eval_steps`` (:func:`gmmdiff.training.config.eval_step_list`;
        step 0 before the first update) after that step's update and before its
        checkpoint; the values are recorded in the state (:meth:`TrainState.record_eval`,
        saved with its checkpoints, so a resumed run continues the same series). It
        must only read ``params``: training is the same bit for bit with or without it.
        Its host transfers are the loop's only other synchronizations.
    """
    datasets, cfgs = (dataset, cfg) if isinstance(cfg, (list, tuple)) else ([dataset], [cfg])
    check_batchable(cfgs)
    cfg = cfgs[0]
    fam = cfg.family()
    check_fused(fused, cfg, xp)
    dtype = get_dtype(cfg.dtype)
    ocfg = cfg.optim()
    N, shape = datasets[0].X.shape[0], datasets[0].X.shape[1:]
    n = cfg.noise_draws
    B = cfg.batch()                                                      # samples per step
    # alpha_t, sigma_t and the target's loss scale w_t at each grid time
    grid = cfg.grid()
    c = coefficients(grid, cfg.process)
    alpha_g = xp.asarray(c.alpha)                                        # (L,) float64
    sigma_g = xp.asarray(c.sigma)
    wt_g = xp.asarray(loss_scale(grid, cfg.process, cfg.target))
    # the training rows: each sample once per noise draw, row = i n + k
    used = sorted(set(state.owners))
    minibatches = None
    if B < N:                       # the step's rows are gathered step by step
        minibatches = MiniBatches([c.seed for c in cfgs], [ds.X.astype(dtype) for ds in datasets],
                                  state.owners, B, n, rows_last=fam.rows_last)
        x0 = None
    else:
        x0s = [xp.repeat(ds.X.astype(dtype), n, axis=0) for ds in datasets]  # (N n, ...)
        if fam.rows_last:
            x0s = [xp.ascontiguousarray(x.T) for x in x0s]                   # (d, N n)
        x0 = x0s[used[0]] if len(used) == 1 else xp.stack([x0s[o] for o in state.owners])  # (J, N n, ...)
    # times and noise for the B samples of a step (B = N: full batch)
    draws = BatchDraws([noise_stream(cfgs[o], M) for M, o in zip(state.sizes, state.owners)],
                       B, n, shape, cfg.grid_size, xp=xp, dtype=dtype, source=noise_source,
                       rows_last=fam.rows_last)
    if bucket_overhead is None:
        bucket_overhead = BUCKET_OVERHEAD[backend_name(xp)]
    fam_loss = fam.loss
    if fused:
        fam_loss = functools.partial(fam.loss, fused=True)
    elif xp is np and fam.workspace:
        fam_loss = functools.partial(fam.loss, ws=Workspace())           # buffers for the run
    # numpy: a crew of helper threads, one per core beyond this one, takes the loss's
    # row-block tasks beside this thread and draws the next noise chunk in the gaps;
    # every thread calls the BLAS at one thread (results never depend on the cores)
    buckets = plan_buckets(state.sizes, B * n, bucket_overhead)
    log_every = log_every or max(1, cfg.steps // 200)
    params, opt = state.params, state.opt
    # the same arithmetic three ways: fused kernels (cupy), in place on flat buffers
    # (numpy: half the calls; the dicts are then views of its buffers), or plain
    # (Adam only: gradient descent and momentum run the array code on both backends)
    if fused and ocfg.optimizer == "adam":
        optimizer_step = kernels.adam_step
    elif xp is np and len({v.dtype for v in params.values()}) == 1 and ocfg.optimizer == "adam":
        optimizer_step = optim.FlatStep(params, opt)
        params, opt = optimizer_step.params, optimizer_step.state
    else:
        optimizer_step = optim.step
    evals_at = set(eval_step_list(cfg.eval_steps, cfg.steps)) if on_eval is not None else set()

    def stop_diverged(done, models):
        state.params, state.opt, state.step = params, opt, done
        raise Diverged(models, done, state)

    def evaluate(done):
        if done in evals_at and (not state.eval_steps or done > state.eval_steps[-1]):
            bad = nonfinite_models(params, xp, cfg.data_var)
            if bad:
                stop_diverged(done, bad)
            state.record_eval(done, on_eval(done, params))

    with contextlib.ExitStack() as scope:
        # a non-finite loss or parameter is judged below (Diverged), not warned about
        scope.enter_context(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
        crew = None
        if xp is np:
            crew = scope.enter_context(threads.training_crew())
            scope.enter_context(threads.blas_threads(1))
        evaluate(state.step)                             # step 0: the initialization
        runner = crew.run if crew is not None and fam.workspace and not fused else None
        loss_fn = bucketed(fam_loss, buckets, state.sizes, xp, runner=runner)
        # on numpy the crew draws ahead (with no helper a job runs when it is due)
        steps = scope.enter_context(contextlib.closing(draws.steps(state.step, cfg.steps,
                                                                   crew=crew)))
        for k, rows, eps in steps:                       # rows: (J, B n) grid index per row
            if minibatches is not None:
                x0 = minibatches.rows(k, xp)
                b = minibatches.size(k)
                if b < B:                                # an epoch's last, shorter step
                    rows = rows[:, :b * n]
                    eps = xp.ascontiguousarray(eps[..., :b * n] if fam.rows_last else eps[:, :b * n])
            loss, grads = loss_fn(params, x0, eps, alpha_g[rows], sigma_g[rows], wt_g[rows],
                                  xp, state.mask)
            lr = optim.learning_rate(k, cfg.steps, ocfg)
            params, opt = optimizer_step(params, grads, opt, lr, ocfg)
            done = k + 1
            if done % log_every == 0 or done == cfg.steps:
                # the losses and the divergence flags in one transfer (one sync)
                both = to_host(xp.stack([loss.astype(xp.float64),
                                         diverged_flags(params, xp, cfg.data_var).astype(xp.float64)]))
                host = both[0]
                bad = np.flatnonzero(~np.isfinite(host) | (both[1] > 0)).tolist()
                if bad:
                    stop_diverged(done, bad)
                state.loss_steps.append(done)
                state.losses.append(host.tolist())
                if callback is not None:
                    callback(done, host)
            evaluate(done)
            if checkpoint and ((checkpoint_every and done % checkpoint_every == 0)
                               or done == cfg.steps):
                bad = nonfinite_models(params, xp, cfg.data_var)
                if bad:
                    stop_diverged(done, bad)
                state.params, state.opt, state.step = params, opt, done
                state.save(checkpoint)
            if checkpoint and interrupt.pending():       # SIGTERM (Slurm): save, stop
                bad = nonfinite_models(params, xp, cfg.data_var)
                if bad:                                  # (the caller trains the rest on,
                    stop_diverged(done, bad)             # and stops at their next step)
                state.params, state.opt, state.step = params, opt, done
                state.save(checkpoint)
                raise interrupt.Interrupted(interrupt.pending(), f"at step {done} of {cfg.steps}")
    state.params, state.opt, state.step = params, opt, cfg.steps
    return state
