"""Checks of a run directory's files against the configuration they belong to, made
before the files are used -- by training, a resume, a figure -- so that a damaged file
is refused in one line naming it before anything is written:

- :func:`read_config`: ``config.json`` read as the :class:`TrainConfig` it records, each
  setting of the type and value a TrainConfig accepts;
- :func:`check_model_arrays`: a model size's NPZ holding the arrays its family writes,
  in the shapes of its configuration (:func:`model_shapes`);
- :func:`check_results` and :func:`check_run`: both, for every completed size of a
  run directory (the sizes read together: one time grid, one series of steps), and
  :func:`check_run_dir`: the directory check of training with config.json read first;
- :func:`check_resumed` and :func:`check_checkpoint`: a checkpoint that can continue
  the models it holds (their step count, sizes, parameter names, shapes and dtypes).
"""
import dataclasses
import os

import numpy as np

from gmmdiff.backend import BACKENDS, available_bytes
from gmmdiff.io.files import StorageError
from gmmdiff.io.rundir import RunDir, evaluated_sizes, read_model_arrays, read_run, read_sizes
from gmmdiff.io.schemas import SCHEMAS, read_checked, schema_error, short_repr
from gmmdiff.training.config import TrainConfig, eval_step_list
from gmmdiff.training.memory import data_bytes
from gmmdiff.training.state import TrainState, initial_state

CONFIG_ADVICE = "restore it, or remove the run directory to retrain it"
ARRAYS_ADVICE = ("remove the run directory's damaged size from index.json or the directory "
                 "itself to retrain it")
CHECKPOINT_ADVICE = "remove it to start the pending sizes from scratch"


def field_schema(f):
    """The JSON type (:mod:`gmmdiff.io.schemas`) of a :class:`TrainConfig` field, from
    its default; None for ``template_file`` (a path, or null)."""
    if f.name == "template_file":
        return None
    if f.name == "batch_size":              # None (full batch) is not written
        return "int"
    return {bool: "bool", int: "int", float: "num", str: "str"}[type(f.default)]


def read_config(run_dir):
    """``run_dir/config.json`` checked: every setting it records that a
    :class:`TrainConfig` has must be of that field's JSON type and, together, pass
    :meth:`TrainConfig.validate` (settings it does not record take their defaults;
    ones a TrainConfig does not have, a newer version's, are left to the identity
    comparison) and the backend one of :data:`gmmdiff.backend.BACKENDS`. Returns (the
    file's dict, the TrainConfig, its ``template_file`` the path recorded in meta);
    StorageError naming the file and the first bad value otherwise."""
    path = os.path.join(run_dir, "config.json")
    cfg = read_checked(path, SCHEMAS["config"], advice=CONFIG_ADVICE)
    ident = cfg["identity"]
    if ident["backend"] not in BACKENDS:
        raise StorageError(f"{path} is not a valid gmmdiff file: identity.backend is "
                           f"{short_repr(ident['backend'])}, expected one of {', '.join(BACKENDS)}; "
                           f"{CONFIG_ADVICE}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key in sorted(ident):
        if key in fields:
            want, value = field_schema(fields[key]), ident[key]
            err = ((None if value is None else schema_error(value, "str", f"identity.{key}"))
                   if want is None else schema_error(value, want, f"identity.{key}"))
            if err:
                raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {CONFIG_ADVICE}")
    settings = {k: v for k, v in ident.items() if k in fields and k != "template_file"}
    try:
        config = TrainConfig(**settings).validate()
    except ValueError as exc:
        raise StorageError(f"{path} is not a valid gmmdiff file: {exc}; {CONFIG_ADVICE}") from None
    template = cfg.get("meta", {}).get("template_file") if ident.get("template_file") else None
    return cfg, dataclasses.replace(config, template_file=template if isinstance(template, str)
                                    else None)


def model_shapes(config, M, dataset=None):
    """{name: shape} of the arrays a model of size ``M`` of ``config`` is saved with:
    its family's parameters (per-component arrays (M, ...), "std" ()) and
    "generated" (eval_samples, ...) -- rows of the data's shape. ``dataset``: the
    configuration's (built when not given)."""
    ds = dataset if dataset is not None else config.dataset()
    shapes = {k: np.shape(v) for k, v in config.family().init(ds, M, config).items()}
    shapes["generated"] = (config.eval_samples,) + tuple(ds.X.shape[1:])
    return shapes


def check_model_arrays(path, config, M, dataset=None):
    """A model size's NPZ (:func:`gmmdiff.io.rundir.read_model_arrays`: finite floating
    point) with every array of :func:`model_shapes` in its shape; StorageError naming
    the file and the array otherwise. Returns the arrays."""
    arrays = read_model_arrays(path)
    for name, shape in model_shapes(config, M, dataset).items():
        got = arrays[name].shape if name in arrays else None
        if got != shape:
            raise StorageError(f"{path} is not a valid gmmdiff file: "
                               + (f"it has no array {name!r}" if got is None else
                                  f"{name} has shape {got}, a model of size {M} of its "
                                  f"configuration {shape}") + f"; {ARRAYS_ADVICE}")
    return arrays


def check_results(run_dir, config, dataset=None):
    """Every completed size of run directory ``run_dir`` of configuration ``config``,
    read and checked as a resume, a summary or a figure reads it: the metrics together
    (:func:`gmmdiff.io.rundir.read_sizes`) on the configuration's time grid, and the
    arrays (:func:`check_model_arrays`). Returns the per-size metric dicts in increasing
    M ([] when none is complete); StorageError naming the first damaged file."""
    sizes = evaluated_sizes(run_dir)
    rows = read_sizes(run_dir, sizes, config.samples)
    grid = config.grid()
    for M, r in zip(sizes, rows):
        if len(r["times"]) != grid.size or not np.allclose(r["times"], grid, rtol=1e-12, atol=0):
            raise StorageError(f"{os.path.join(run_dir, RunDir.model_stem(M))}.json is not a valid "
                               "gmmdiff file: its times are not its configuration's time grid; "
                               f"{ARRAYS_ADVICE}")
    if dataset is None and sizes:
        need, avail = data_bytes(config), available_bytes(np)
        if avail is not None and need > avail:      # (a damaged size: numpy's error, no file)
            raise StorageError(f"{os.path.join(run_dir, 'config.json')} records a data set of "
                               f"about {need / 2**30:.3g} GiB, more than the {avail / 2**30:.3g} "
                               f"GiB of memory available; {CONFIG_ADVICE}")
    ds = dataset if dataset is not None or not sizes else config.dataset()
    for M in sizes:
        check_model_arrays(os.path.join(run_dir, RunDir.model_stem(M) + ".npz"), config, M, ds)
    return rows


def check_run(run_dir):
    """Read and check a run directory as its figures read it: its configuration
    (:func:`read_config`), every completed size's metrics and arrays
    (:func:`check_results`). Returns (config dict, per-size metric dicts, the
    TrainConfig)."""
    cfg_json, config = read_config(run_dir)
    rows = read_run(run_dir)[1]
    check_results(run_dir, config)
    return cfg_json, rows, config


def check_run_dir(path, identity):
    """:meth:`gmmdiff.io.rundir.RunDir.check` (``path`` can become or is a run directory of
    ``identity``), its config.json first read by :func:`read_config`, so that a damaged
    value is named as such rather than as a difference from ``identity``."""
    if os.path.isdir(path) and os.path.lexists(os.path.join(path, "config.json")):
        read_config(path)
    RunDir.check(path, identity)


def check_resumed(path, state, fresh, steps):
    """Raise StorageError unless the checkpointed ``state`` can continue the run whose
    fresh start is ``fresh``: the same parameter and optimizer arrays (names, shapes,
    dtypes) and at most ``steps`` steps done."""
    if state.step > steps:
        raise StorageError(f"checkpoint {path} is at step {state.step}, beyond the run's "
                           f"{steps} steps: it is not this run's; {CHECKPOINT_ADVICE}")
    for what, got, want in (("parameter", state.params, fresh.params),
                            ("optimizer slot", state.opt, fresh.opt)):
        if set(got) != set(want):
            raise StorageError(f"checkpoint {path} holds the {what}s {sorted(got)}, this run "
                               f"has {sorted(want)}; {CHECKPOINT_ADVICE}")
        for k, v in want.items():
            if k != "count" and (got[k].shape != v.shape or got[k].dtype != v.dtype):
                raise StorageError(f"checkpoint {path}: {what} {k} is {got[k].shape} "
                                   f"{got[k].dtype}, this run's is {v.shape} {v.dtype}; "
                                   f"{CHECKPOINT_ADVICE}")


def check_checkpoint(path, cfgs, names):
    """Raise StorageError (one line naming the file) unless the checkpoint at ``path``
    (absent: nothing to check) could continue each of its models that belongs to the
    configurations ``cfgs`` (run directories named ``names``, a batch of
    :func:`gmmdiff.experiments.runs.run_batch`): the file is a checkpoint, each such
    model's size is its label's, and :func:`check_resumed` holds against their fresh
    start. What resuming would refuse, found before anything is written; reads,
    writes nothing."""
    if not os.path.lexists(path):
        return
    state = TrainState.load(path, np)
    own = {name: o for o, name in enumerate(names)}
    idx, owners, sizes = [], [], []
    for j, label in enumerate(state.labels):
        name, sep, size = label.rpartition(":M=")
        if sep and name in own:
            if size != str(state.sizes[j]):
                raise StorageError(f"checkpoint {path} is damaged: its model {label!r} has size "
                                   f"{state.sizes[j]}; {CHECKPOINT_ADVICE}")
            idx.append(j)
            owners.append(own[name])
            sizes.append(state.sizes[j])
    if not idx:                             # none of these models: resuming ignores it
        return
    datasets = [c.dataset(np) for c in cfgs]
    fresh = initial_state(datasets, sizes, list(cfgs), np, owners=owners)
    check_resumed(path, state.select(idx, owners, sizes), fresh, cfgs[0].steps)
    _check_series(path, state, cfgs[owners[0]], datasets[owners[0]], sizes[0], fresh)


def _check_series(path, state, cfg, dataset, M, fresh):
    """Raise StorageError unless the checkpoint's evaluations along training are those
    this run records: at its steps of ``cfg.eval_steps`` up to the checkpoint's step
    (that step itself may be missing: resuming evaluates it first), of the metrics its
    family's ``track`` gives (the first model's, at its start: one light evaluation)."""
    steps = [s for s in eval_step_list(cfg.eval_steps, cfg.steps) if s <= state.step]
    fam = cfg.family()
    want = set()
    if state.eval_steps and fam.track is not None:
        params = {k: (v[0] if k == "std" else v[0, :M]) for k, v in fresh.params.items()}
        want = set(fam.track(dataset, M, params, cfg, np))
    done = state.eval_steps if fam.track is not None else state.eval_steps + [None]
    if done not in (steps, [s for s in steps if s < state.step]) or set(state.evals) != want:
        raise StorageError(f"checkpoint {path} is damaged: its evaluations along training (at "
                           f"{len(state.eval_steps)} steps, of {', '.join(sorted(state.evals)) or 'nothing'})"
                           " are not this run's; " + CHECKPOINT_ADVICE)
