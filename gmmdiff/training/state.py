"""The training state of a batch of models and its checkpoint format.

Models of sizes M_1..M_J are packed into per-component arrays ``(J, Mmax, ...)`` with a
component mask ``(J, Mmax)``; padding components get weight 0 and zero gradient, so each
model trains exactly as it would alone. A checkpoint is one NPZ file (no pickle) holding
the parameters (``param_<name>``), the optimizer state (``opt_<slot>_<name>``,
``opt_count``), the mask, the step, the sizes, each model's configuration index
(``owners``) and name (``labels``), the logged losses and the evaluations along training
so far (``eval_steps`` and ``eval_<metric>``): everything needed to continue bit for bit
(the training noise is stateless, :mod:`gmmdiff.training.draws`) and to resume to the
same time series.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np

from gmmdiff.backend import array_namespace, get_dtype, to_host
from gmmdiff.io.files import StorageError, read_npz, write_npz
from gmmdiff.io.schemas import SCHEMAS, schema_error, series_problem
from gmmdiff.training import optim

CHECKPOINT_KEYS = ("mask", "sizes", "step", "opt_count", "loss_steps", "losses", "owners", "labels",
                   "eval_steps")


@dataclass
class TrainState:
    """Everything needed to continue training bit for bit.

    params : dict name -> (J, Mmax, ...) per-component arrays and "std" (J,);
    mask : (J, Mmax) bool;  opt : optimizer state;  step : steps done;
    sizes : (J,) model sizes;  loss_steps, losses : logged training losses (host);
    owners : (J,) index of each model's configuration in a multi-configuration batch
    (all 0 for one configuration);  labels : (J,) names checked when resuming;
    eval_steps : (E,) steps of the evaluations along training done so far;
    evals : dict metric -> list of E rows, each (J,) host floats (the family's
    ``track``).
    """
    sizes: list
    params: dict
    mask: object
    opt: dict
    step: int
    loss_steps: list
    losses: list
    owners: list = None
    labels: list = None
    eval_steps: list = None
    evals: dict = None

    def __post_init__(self):
        self.owners = list(self.owners) if self.owners is not None else [0] * len(self.sizes)
        self.labels = list(self.labels) if self.labels is not None else [f"M={M}" for M in self.sizes]
        self.eval_steps = list(self.eval_steps) if self.eval_steps is not None else []
        self.evals = dict(self.evals) if self.evals is not None else {}

    def record_eval(self, step, values):
        """Append the evaluation at ``step``: ``values`` a dict metric -> (J,) host
        values (the same metrics at every step)."""
        if self.evals and set(values) != set(self.evals):
            raise ValueError(f"evaluation metrics {sorted(values)} differ from the series' "
                             f"{sorted(self.evals)}")
        self.eval_steps.append(int(step))
        for k, v in values.items():
            self.evals.setdefault(k, []).append([float(x) for x in np.asarray(v, dtype=np.float64)])

    def series(self, j):
        """Model ``j``'s evaluations along training: {"steps": [...], metric: [...]}."""
        return {"steps": list(self.eval_steps),
                **{k: [row[j] for row in rows] for k, rows in self.evals.items()}}

    @property
    def means(self):
        """GMM means (J, Mmax, d) (the "gmm" family's per-component parameter)."""
        return self.params["means"]

    @property
    def std(self):
        """Standard deviations (J,)."""
        return self.params["std"]

    def save(self, path):
        """Write the checkpoint NPZ atomically."""
        arrays = {"mask": to_host(self.mask), "sizes": np.asarray(self.sizes),
                  "step": np.asarray(self.step), "opt_count": np.asarray(self.opt["count"]),
                  "loss_steps": np.asarray(self.loss_steps, dtype=np.int64),
                  "losses": np.asarray(self.losses, dtype=np.float64).reshape(-1, len(self.sizes)),
                  "owners": np.asarray(self.owners, dtype=np.int64), "labels": np.asarray(self.labels),
                  "eval_steps": np.asarray(self.eval_steps, dtype=np.int64)}
        arrays.update({"eval_" + k: np.asarray(v, dtype=np.float64).reshape(-1, len(self.sizes))
                       for k, v in self.evals.items()})
        arrays.update({"param_" + k: to_host(v) for k, v in self.params.items()})
        arrays.update({"opt_" + k: to_host(v) for k, v in self.opt.items() if k != "count"})
        write_npz(path, arrays)

    def select(self, idx, owners, sizes):
        """The models ``idx`` of this state (each trains independently of the others),
        relabelled with the caller's ``owners`` and checked against ``sizes``."""
        if [self.sizes[i] for i in idx] != list(sizes):
            raise ValueError("checkpoint sizes do not match its labels")
        if list(idx) == list(range(len(self.sizes))):
            return dataclasses.replace(self, owners=list(owners))
        xp = array_namespace(self.mask)
        ix = xp.asarray(np.asarray(idx))
        Mmax = max(sizes)
        pick = lambda a: a[ix] if a.ndim == 1 else a[ix, :Mmax]  # noqa: E731
        return TrainState(list(sizes), {k: pick(v) for k, v in self.params.items()},
                          self.mask[ix, :Mmax],
                          {k: (v if k == "count" else pick(v)) for k, v in self.opt.items()},
                          self.step, list(self.loss_steps),
                          [[row[i] for i in idx] for row in self.losses], list(owners),
                          [self.labels[i] for i in idx], list(self.eval_steps),
                          {k: [[row[i] for i in idx] for row in rows] for k, rows in self.evals.items()})

    @staticmethod
    def _read(path):
        """The checkpoint's arrays, checked for what a checkpoint holds: its keys, their
        dtypes and mutually consistent shapes ((J,) sizes, owners, labels; (J, Mmax)
        mask; (J, Mmax, ...) or (J,) parameters and optimizer slots of one shape each;
        (L,) steps and (L, J) losses), finite numbers and a step >= 0. StorageError
        naming the file and what is wrong otherwise."""
        z = read_npz(path, "checkpoint")
        advice = "remove it to start the pending sizes from scratch"
        missing = [k for k in CHECKPOINT_KEYS if k not in z]
        if missing or not any(k.startswith("param_") for k in z):
            raise StorageError(f"{path} is not a gmmdiff checkpoint (missing "
                               f"{', '.join(missing) or 'parameters'}); {advice}")
        problem = _checkpoint_problem(z)
        if problem:
            raise StorageError(f"checkpoint {path} is damaged: {problem}; {advice}")
        return z

    @classmethod
    def labels_in(cls, path):
        """The model labels of the checkpoint at ``path`` (StorageError if it is none)."""
        return [str(v) for v in cls._read(path)["labels"]]

    @classmethod
    def load(cls, path, xp):
        """The state saved at ``path``, its arrays on backend ``xp``."""
        z = cls._read(path)
        opt = {"count": int(z["opt_count"])}
        opt.update({k[4:]: xp.asarray(v) for k, v in z.items()
                    if k.startswith("opt_") and k != "opt_count"})
        params = {k[6:]: xp.asarray(v) for k, v in z.items() if k.startswith("param_")}
        return cls(sizes=[int(m) for m in z["sizes"]], params=params, mask=xp.asarray(z["mask"]),
                   opt=opt, step=int(z["step"]), loss_steps=[int(s) for s in z["loss_steps"]],
                   losses=[list(r) for r in z["losses"]], owners=[int(o) for o in z["owners"]],
                   labels=[str(v) for v in z["labels"]],
                   eval_steps=[int(s) for s in z["eval_steps"]],
                   evals={k[5:]: [[float(x) for x in row] for row in v] for k, v in z.items()
                          if k.startswith("eval_") and k != "eval_steps"})


def _checkpoint_problem(z):
    """What is wrong with the arrays ``z`` of a checkpoint, or None."""
    def kind(k, kinds, ndim):
        a = z[k]
        return (None if a.dtype.kind in kinds and a.ndim == ndim else
                f"{k} has dtype {a.dtype} and {a.ndim} dimensions")
    for k, kinds, ndim in (("sizes", "iu", 1), ("owners", "iu", 1), ("labels", "U", 1),
                           ("mask", "b", 2), ("step", "iu", 0), ("opt_count", "iu", 0),
                           ("loss_steps", "iu", 1), ("losses", "f", 2), ("eval_steps", "iu", 1)):
        bad = kind(k, kinds, ndim)
        if bad:
            return bad
    J = z["sizes"].shape[0]
    if J == 0 or z["sizes"].min() < 1:
        return "its model sizes are not sizes >= 1"
    Mmax = int(z["sizes"].max())
    if z["mask"].shape != (J, Mmax) or not np.array_equal(z["mask"].sum(axis=1), z["sizes"]):
        return f"its mask {z['mask'].shape} does not match its sizes"
    if z["owners"].shape != (J,) or z["labels"].shape != (J,) or z["owners"].min() < 0:
        return "its owners or labels do not match its sizes"
    L = z["loss_steps"].shape[0]
    if z["losses"].shape != (L, J):
        return f"its losses {z['losses'].shape} do not match ({L}, {J})"
    if int(z["step"]) < 0 or int(z["opt_count"]) < 0:
        return "a negative step count"
    if L and (np.any(np.diff(z["loss_steps"]) <= 0) or z["loss_steps"][0] < 0
              or z["loss_steps"][-1] > int(z["step"])):
        return "its logged loss steps are not increasing steps up to its step"
    err = schema_error([None if np.isnan(v) else float(v) for v in z["losses"].ravel()],
                       SCHEMAS["metrics"]["training_loss?"]["loss"], "losses (flattened)")
    if err:                                 # (what the results' training_loss will hold)
        return err
    E = z["eval_steps"].shape[0]
    if E and (np.any(np.diff(z["eval_steps"]) <= 0) or z["eval_steps"][0] < 0
              or z["eval_steps"][-1] > int(z["step"])):
        return "its evaluation steps are not increasing steps up to its step"
    along = SCHEMAS["metrics"]["along_training?"]
    for k in z:
        if k.startswith("eval_") and k != "eval_steps":
            if z[k].dtype.kind != "f" or z[k].shape != (E, J):
                return f"{k} {z[k].shape} does not match ({E}, {J})"
            # the values the results will hold, checked as their reader checks them
            err = schema_error([None if np.isnan(v) else float(v) for v in z[k].ravel()],
                               along.get(k[5:], ["num?"]), k)
            if err:
                return err.replace(f"{k}[", f"{k} (flattened)[")
    for j in range(J if E else 0):
        err = series_problem({"steps": z["eval_steps"].tolist(),
                              **{k[5:]: z[k][:, j].tolist() for k in z
                                 if k.startswith("eval_") and k != "eval_steps"}},
                             where=f"the evaluations of model {j}")
        if err:
            return err
    params = {k[6:]: z[k] for k in z if k.startswith("param_")}
    for name, a in params.items():
        if a.dtype.kind != "f" or a.shape[:1] != (J,) or (a.ndim > 1 and a.shape[1] != Mmax):
            return f"parameter {name} has shape {a.shape} (dtype {a.dtype})"
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(a * a)):     # (a square that overflows: no training)
                return f"parameter {name} holds NaN, infinite or absurdly large values"
    for k in z:
        if k.startswith("opt_") and k != "opt_count":
            name = k[4:].partition("_")[2]
            a = z[k]
            if name not in params or a.shape != params[name].shape or a.dtype.kind != "f":
                return f"optimizer slot {k} does not match the parameters"
            with np.errstate(over="ignore"):
                if not np.all(np.isfinite(a * a)):
                    return f"optimizer slot {k} holds NaN, infinite or absurdly large values"
            if k.startswith("opt_nu_") and np.any(a < 0):
                return f"optimizer slot {k} (a running mean of squares) holds negative values"
    return None


def init_params(dataset, M, cfg):
    """Initial parameters of one model size as float64 host arrays: a dict with
    per-component arrays (first axis M) and the scalar "std" (the family's ``init``)."""
    return cfg.family().init(dataset, M, cfg)


def initial_state(dataset, sizes, cfg, xp, *, owners=None, labels=None):
    """Packed initial parameters (padding components zero and masked out) and a fresh
    optimizer state.

    For a multi-configuration batch, ``dataset`` and ``cfg`` are lists and ``owners``
    (J,) gives each size's configuration index."""
    datasets, cfgs = (dataset, cfg) if isinstance(cfg, (list, tuple)) else ([dataset], [cfg])
    owners = list(owners) if owners is not None else [0] * len(sizes)
    dtype = get_dtype(cfgs[0].dtype)
    J, Mmax = len(sizes), max(sizes)
    inits = [init_params(datasets[o], M, cfgs[o]) for M, o in zip(sizes, owners)]
    mask = np.zeros((J, Mmax), dtype=bool)
    params = {}
    for name, first in inits[0].items():
        if np.ndim(first) == 0:
            packed = np.array([p[name] for p in inits], dtype=np.float64)
        else:
            packed = np.zeros((J, Mmax) + np.shape(first)[1:])
            for j, p in enumerate(inits):
                packed[j, :sizes[j]] = p[name]
        params[name] = xp.asarray(packed, dtype=dtype)
    for j, M in enumerate(sizes):
        mask[j, :M] = True
    return TrainState(list(sizes), params, xp.asarray(mask),
                      optim.init_state(params, cfgs[0].optimizer), 0, [], [],
                      owners, labels)
