"""The optimizers: clip by global norm, then Adam, plain gradient descent or heavy-ball
momentum, a warmup-stable-decay learning rate and an exponential moving average of the
updates (SPEC 8, 12).

Semantics are those of ``optax.chain(clip_by_global_norm(c), OPT, ema(decay,
debias=True))`` with OPT one of

- ``"adam"`` (the default): ``optax.adam(schedule, b1, b2, eps)``;
- ``"sgd"``: ``optax.sgd(schedule)``, the update ``-lr g``;
- ``"momentum"``: ``optax.sgd(schedule, momentum=m, nesterov=...)``, the trace
  ``v <- m v + g`` and the update ``-lr v`` (Nesterov: ``-lr (g + m v)``),

written out by hand for parameter dictionaries whose arrays carry a leading model axis J
(every model is optimized independently, with its own global norm). The step is a pure
function ``(params, grads, state) -> (params, state)``; the state is a flat dict of
plain arrays and one integer, which saves to NPZ as it is.

The variance under gradient descent. Adam's step is invariant to the scale of each
coordinate; gradient descent's is not, and the standard deviation is the worst case.
The loss at grid time t depends on the variance s through s / sigma_t^2 (v = alpha_t^2 s
+ sigma_t^2), so near a memorized state (s ~ sigma_t^2 = 1e-6 at the smallest time) its
curvature in std carries a factor 1 / sigma_t^2 (up to 1e6 on the paper's grid) that its
curvature in u = log std^2 does not: in u each time's loss is a function of
u - log sigma_t^2, whose slope and curvature are of the order of that time's loss, as
the means' are. So ``"sgd"`` and ``"momentum"`` move the parameters named in
:data:`LOG_VARIANCE` (``std``, both families' scale) in u: the gradient they see is
dL/du = (std / 2) dL/dstd, and a step du becomes std <- std exp(du / 2). One learning
rate then serves the means and the variance; std keeps its sign and never crosses 0
(a start at variance 0 is refused). Adam is left as it is (bit for bit): its step is
already scale-free. The checkpoint keeps std; the momentum trace of std is in u.
"""
from dataclasses import dataclass

import numpy as np

from gmmdiff.backend import array_namespace


OPTIMIZERS = ("adam", "sgd", "momentum")
LOG_VARIANCE = ("std",)        # parameters that sgd and momentum move in log(std^2)
SLOTS = {"adam": ("mu", "nu", "ema"), "sgd": ("ema",), "momentum": ("trace", "ema")}


@dataclass(frozen=True)
class OptimConfig:
    """Hyperparameters (defaults from the reference implementation); ``optimizer`` one
    of :data:`OPTIMIZERS`, ``momentum`` and ``nesterov`` used by "momentum" only."""
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = False
    lr_peak: float = 1e-3
    lr_final: float = 1e-6
    warmup_frac: float = 0.1
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    clip_norm: float = 1e9
    ema_decay: float = 0.99

    def validate(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; accepted: {', '.join(OPTIMIZERS)}")
        if not (isinstance(self.momentum, (int, float)) and 0.0 <= self.momentum < 1.0):
            raise ValueError(f"momentum = {self.momentum!r} must lie in [0, 1)")
        for name in ("lr_peak", "lr_final", "eps", "clip_norm"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} = {v!r} must be finite and > 0")
        for name in ("b1", "b2", "ema_decay", "warmup_frac"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} = {v!r} must lie in [0, 1)")
        return self


def learning_rate(step, total_steps, cfg):
    """Warmup-stable-decay schedule at the 0-based ``step``. Python float.

    Linear 0 -> lr_peak over the first ``warmup_frac * total_steps`` steps, then linear
    lr_peak -> lr_final over the rest (optax.join_schedules of two linear schedules).
    """
    warm = int(cfg.warmup_frac * total_steps)
    if step < warm:
        return cfg.lr_peak * step / warm
    rest = max(total_steps - warm, 1)
    frac = min((step - warm) / rest, 1.0)
    return cfg.lr_peak + frac * (cfg.lr_final - cfg.lr_peak)


def init_state(params, optimizer="adam"):
    """The zero state of ``optimizer`` for ``params`` (dict name -> (J, ...)): the step
    count and, per parameter, its slots (:data:`SLOTS`: Adam's moments ``mu``, ``nu``,
    the momentum ``trace``, the update average ``ema``), keyed ``<slot>_<name>``."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; accepted: {', '.join(OPTIMIZERS)}")
    xp = array_namespace(*params.values())
    state = {"count": 0}
    for name, p in params.items():
        for slot in SLOTS[optimizer]:
            state[f"{slot}_{name}"] = xp.zeros_like(p)
    return state


def _model_sq_norm(a, xp):
    """Sum of squares over every axis but the leading model axis: (J, ...) -> (J,)."""
    return xp.sum((a * a).reshape(a.shape[0], -1), axis=1)


def step(params, grads, state, lr, cfg):
    """One optimizer step for J independent models.

    Parameters
    ----------
    params, grads : dict name -> array (J, ...), same keys and shapes
    state : dict from :func:`init_state` (or a previous step)
    lr : Python float, the learning rate of this step (:func:`learning_rate`)
    cfg : :class:`OptimConfig`

    Returns
    -------
    (new_params, new_state); the inputs are not modified.
    """
    if cfg.optimizer != "adam":
        return _descent_step(params, grads, state, lr, cfg)
    xp = array_namespace(*params.values())
    names = sorted(params)
    J = params[names[0]].shape[0]
    gnorm = xp.sqrt(sum(_model_sq_norm(grads[n], xp) for n in names))   # (J,)
    scale = xp.where(gnorm < cfg.clip_norm, 1.0, cfg.clip_norm / xp.maximum(gnorm, 1e-300))
    count = state["count"] + 1
    c1 = 1.0 - cfg.b1 ** count
    c2 = 1.0 - cfg.b2 ** count
    ce = 1.0 - cfg.ema_decay ** count
    new_params, new_state = {}, {"count": count}
    for n in names:
        shape = (J,) + (1,) * (params[n].ndim - 1)
        g = grads[n] * scale.reshape(shape).astype(grads[n].dtype)
        mu = cfg.b1 * state[f"mu_{n}"] + (1.0 - cfg.b1) * g
        nu = cfg.b2 * state[f"nu_{n}"] + (1.0 - cfg.b2) * (g * g)
        upd = -lr * (mu / c1) / (xp.sqrt(nu / c2) + cfg.eps)
        ema = cfg.ema_decay * state[f"ema_{n}"] + (1.0 - cfg.ema_decay) * upd
        new_params[n] = params[n] + ema / ce
        new_state[f"mu_{n}"], new_state[f"nu_{n}"], new_state[f"ema_{n}"] = mu, nu, ema
    return new_params, new_state


def _descent_step(params, grads, state, lr, cfg):
    """:func:`step` for "sgd" and "momentum": the parameters of :data:`LOG_VARIANCE` in
    u = log std^2 (the module's docstring), the others as they are."""
    xp = array_namespace(*params.values())
    names = sorted(params)
    J = params[names[0]].shape[0]
    # the gradient in the optimized coordinates: dL/du = dL/dstd * std / 2
    coord = {n: grads[n] * (0.5 * params[n]) if n in LOG_VARIANCE else grads[n] for n in names}
    gnorm = xp.sqrt(sum(_model_sq_norm(coord[n], xp) for n in names))  # (J,)
    scale = xp.where(gnorm < cfg.clip_norm, 1.0, cfg.clip_norm / xp.maximum(gnorm, 1e-300))
    count = state["count"] + 1
    ce = 1.0 - cfg.ema_decay ** count
    new_params, new_state = {}, {"count": count}
    for n in names:
        shape = (J,) + (1,) * (params[n].ndim - 1)
        g = coord[n] * scale.reshape(shape).astype(coord[n].dtype)
        if cfg.optimizer == "momentum":
            trace = cfg.momentum * state[f"trace_{n}"] + g                 # v <- m v + g
            direction = g + cfg.momentum * trace if cfg.nesterov else trace
            new_state[f"trace_{n}"] = trace
        else:
            direction = g
        upd = -lr * direction
        ema = cfg.ema_decay * state[f"ema_{n}"] + (1.0 - cfg.ema_decay) * upd
        if n in LOG_VARIANCE:
            new_params[n] = params[n] * xp.exp(0.5 * (ema / ce))         # u <- u + ema / ce
        else:
            new_params[n] = params[n] + ema / ce
        new_state[f"ema_{n}"] = ema
    return new_params, new_state


class FlatStep:
    """:func:`step` for numpy, in place on flat buffers: the same bits, in about half the
    calls and no new arrays.

    At small shapes the step is ~50 numpy calls on arrays of a few thousand entries,
    their cost being the calls themselves. Here every parameter, gradient and moment
    lives in one (J, P) buffer per kind (P: the entries of one model, all parameters
    side by side), and the step runs each operation once on the whole buffer, into
    buffers allocated once. Each entry sees :func:`step`'s operations in its order
    and the per-model norm sums each parameter's row as :func:`step` does, so results
    are bit-identical to it (the tests check).

    Construction copies ``params`` (dict name -> (J, ...), all of one dtype; else
    ValueError) and ``state`` (from :func:`init_state` or a checkpoint) into the
    buffers; ``self.params`` and ``self.state`` are then dicts of views of them, in
    their shapes. Calling the object
    as :func:`step` with those dicts updates them in place and returns them: the
    caller's arrays are never written, and views handed out earlier change with every
    step (copy what must be kept).
    """

    def __init__(self, params, state):
        names = self.names = sorted(params)
        dtype = params[names[0]].dtype
        if any(params[n].dtype != dtype for n in names):          # one buffer, one dtype
            raise ValueError("FlatStep needs parameters of one dtype; got "
                             + ", ".join(f"{n} {params[n].dtype}" for n in names))
        J = params[names[0]].shape[0]
        sizes = [int(np.prod(params[n].shape[1:], dtype=np.int64)) for n in names]
        P = sum(sizes)
        self._cols = {}
        o = 0
        for n, size in zip(names, sizes):
            self._cols[n] = slice(o, o + size)
            o += size
        self._buf = {k: np.empty((J, P), dtype=dtype)
                     for k in ("p", "mu", "nu", "ema", "g", "t1", "t2")}    # t1, t2: scratch
        self._views = {k: {n: self._buf[k][:, self._cols[n]].reshape(params[n].shape)
                           for n in names} for k in ("p", "mu", "nu", "ema", "g")}
        for n in names:
            self._views["p"][n][...] = params[n]
            for k in ("mu", "nu", "ema"):
                self._views[k][n][...] = state[f"{k}_{n}"]
        self.params = dict(self._views["p"])
        self.state = {"count": int(state["count"])}
        self.state.update({f"{k}_{n}": self._views[k][n] for k in ("mu", "nu", "ema")
                           for n in names})

    def __call__(self, params, grads, state, lr, cfg):
        """:func:`step` with ``params`` and ``state`` this object's own (``self.params``,
        ``self.state``), updated in place; returns them."""
        if params is not self.params or state is not self.state:
            raise ValueError("FlatStep steps only its own params and state "
                             "(FlatStep.params, FlatStep.state)")
        if cfg.optimizer != "adam":
            raise ValueError(f"FlatStep is Adam's step; got optimizer {cfg.optimizer!r}")
        b = self._buf
        g, t1, t2 = b["g"], b["t1"], b["t2"]
        for n in self.names:
            self._views["g"][n][...] = grads[n]
        np.multiply(g, g, out=t1)
        sq = sum(t1[:, self._cols[n]].sum(axis=1) for n in self.names)  # as step: by parameter
        gnorm = np.sqrt(sq)
        scale = np.where(gnorm < cfg.clip_norm, 1.0, cfg.clip_norm / np.maximum(gnorm, 1e-300))
        count = state["count"] + 1
        c1 = 1.0 - cfg.b1 ** count
        c2 = 1.0 - cfg.b2 ** count
        ce = 1.0 - cfg.ema_decay ** count
        mu, nu, ema, p = b["mu"], b["nu"], b["ema"], b["p"]
        g *= scale.astype(g.dtype)[:, None]
        mu *= cfg.b1                                                     # mu = b1 mu + (1 - b1) g
        np.multiply(g, 1.0 - cfg.b1, out=t1)
        mu += t1
        np.multiply(g, g, out=t1)                                        # nu = b2 nu + (1 - b2) g^2
        t1 *= 1.0 - cfg.b2
        nu *= cfg.b2
        nu += t1
        np.divide(mu, c1, out=t1)                                        # upd = -lr (mu / c1) /
        np.multiply(t1, -lr, out=t1)                                     #   (sqrt(nu / c2) + eps)
        np.divide(nu, c2, out=t2)
        np.sqrt(t2, out=t2)
        t2 += cfg.eps
        t1 /= t2
        ema *= cfg.ema_decay                                             # ema = d ema + (1 - d) upd
        t1 *= 1.0 - cfg.ema_decay
        ema += t1
        np.divide(ema, ce, out=t1)                                       # p = p + ema / ce
        p += t1
        state["count"] = count
        return params, state
