"""Full-batch training of GMM denoisers, all model sizes of a run in one array program.

Models of sizes M_1..M_J are packed into ``means (J, Mmax, d)`` with a component mask
``(J, Mmax)``; padding components get weight 0 and zero gradient, so each model trains
exactly as it would alone. Each model draws its own times and noise from its own
stream, keyed by (seed, N, d, K, M): a model's draws do not depend on which other
models share the batch.

Draws are stateless: the times and noise of steps [c S, (c + 1) S) of a model come
from its stream and the chunk index c (S = :func:`draw_chunk_steps`), so a run resumes
from any step without saving generator state, and one call draws S steps at once. On
numpy they come from numpy's PCG64, drawn one chunk ahead on a second thread while the
first trains; on cupy from the counter-based generator of :mod:`gmmdiff.rng` on the
device (see :func:`draw_chunk`). The GMM loss takes its rows last, ``(J, d, B)``.

One optimizer step (SPEC 8): every training sample gets one time drawn uniformly from
the grid and ``noise_draws`` noise draws; the loss is the mean over the N * noise_draws
rows of the target-scale squared error; gradients are the hand-derived ones of
:mod:`gmmdiff.losses`; the update is :func:`gmmdiff.optim.step`.
"""
import dataclasses
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import optim
from . import rng as counter_rng
from .backend import array_namespace, backend_name, get_dtype, to_host
from .data import check_positive_int, make_dataset, rng_for
from .denoisers import generalizing, memorizing, partially_memorizing
from .losses import _batched_loss_and_grad, per_time_losses
from .metrics import learned_means_stats, memorization, wasserstein2
from .process import (TRAIN_TARGETS, check_process, check_target, coefficients,
                      loss_scale, time_grid)
from .sampling import sample
from .storage import RunDir, read_npz, write_npz
from .theory import METHODS, generalizing_excess_loss, partial_memorizing_excess_loss

INITS = ("pmem", "prior", "gaussian")
MODELS = ("gmm", "templates")
# random streams of one seed (data streams 0-4 live in gmmdiff.data)
STREAM_INIT, STREAM_NOISE, STREAM_SAMPLE, STREAM_FRESH, STREAM_EVAL = 10, 11, 12, 13, 14


@dataclass(frozen=True)
class TrainConfig:
    """Every setting that determines a run's results (model sizes aside: each size's
    result does not depend on the others). Defaults: the built-in CPU configuration."""
    dim: int = 10
    components: int = 2
    samples: int = 20
    steps: int = 50_000
    noise_draws: int = 10
    eval_samples: int = 50
    eval_noise_draws: int = 20
    seed: int = 0
    dtype: str = "float64"
    init: str = "pmem"
    init_var: float = 1e-6
    init_noise_var: float = 0.0
    gaussian_scale: float = 1.0
    target: str = "eps"
    process: str = "vp"
    data_var: float = 1.0
    test_samples: int = 100
    grid_size: int = 26
    t_min: float = 0.001
    t_max: float = 0.999
    lr_peak: float = 1e-3
    lr_final: float = 1e-6
    warmup_frac: float = 0.1
    sampler: str = "ddim"
    model: str = "gmm"
    template_file: object = None
    image_size: int = 15
    colors: int = 3
    common_noise: bool = False

    def validate(self):
        """Raise ValueError naming the first bad setting."""
        check_positive_int("dim", self.dim)
        check_positive_int("components", self.components)
        check_positive_int("samples", self.samples, minimum=2)
        check_positive_int("steps", self.steps)
        check_positive_int("noise draws", self.noise_draws)
        check_positive_int("eval samples", self.eval_samples)
        check_positive_int("eval noise draws", self.eval_noise_draws)
        check_positive_int("test samples", self.test_samples)
        get_dtype(self.dtype)
        check_target(self.target, TRAIN_TARGETS)
        check_process(self.process)
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; accepted: {', '.join(INITS)}")
        if self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"unknown sampler {self.sampler!r}; accepted: ddim, ddpm")
        for name in ("init_var", "init_noise_var", "data_var", "gaussian_scale"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} = {v!r} must be finite and >= 0")
        if self.data_var <= 0:
            raise ValueError(f"data_var = {self.data_var!r} must be > 0")
        time_grid(self.grid_size, self.t_min, self.t_max)
        self.optim().validate()
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; accepted: {', '.join(MODELS)}")
        check_positive_int("image size", self.image_size, minimum=2)
        check_positive_int("colors", self.colors)
        return self

    def optim(self):
        return optim.OptimConfig(lr_peak=self.lr_peak, lr_final=self.lr_final,
                                 warmup_frac=self.warmup_frac)

    def grid(self):
        return time_grid(self.grid_size, self.t_min, self.t_max)

    def dataset(self, xp=np):
        """The seeded data set of this configuration on backend ``xp``."""
        if self.model == "templates":
            from .templates import make_template_dataset
            return make_template_dataset(self, xp)
        return make_dataset(self.dim, self.components, self.samples, var=self.data_var,
                            seed=self.seed, n_test=self.test_samples, xp=xp,
                            dtype=get_dtype(self.dtype))


def parse_model_sizes(spec, N):
    """Model sizes from "20,40,200" (explicit) or "0.1:1.0:0.1" (fractions of N,
    start:stop:step inclusive, rounded to the nearest integer). Sorted, distinct."""
    spec = str(spec).strip()
    try:
        if ":" in spec:
            parts = [float(p) for p in spec.split(":")]
            if len(parts) != 3 or parts[2] <= 0 or parts[0] <= 0 or parts[1] < parts[0]:
                raise ValueError
            n = int(np.floor((parts[1] - parts[0]) / parts[2] + 1e-9)) + 1
            sizes = [int(round(N * (parts[0] + k * parts[2]))) for k in range(n)]
        else:
            sizes = [int(p) for p in spec.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"model sizes {spec!r} not understood; accepted: a list such as "
                         "'20,40,200' or fractions of N as 'start:stop:step' such as "
                         "'0.1:1.0:0.1'") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"model sizes {spec!r} must all be integers >= 1")
    return sorted(set(sizes))


def check_sizes(sizes, N, init):
    """Raise ValueError for a size the init cannot provide (prior/gaussian: any M)."""
    for M in sizes:
        check_positive_int("model size", M)
    if init == "pmem":
        # pmem repeats training points beyond N (SPEC 8), which only makes sense up to 2N
        big = [M for M in sizes if M > 2 * N]
        if big:
            raise ValueError(f"model size M = {big[0]} is above 2N = {2 * N}: init 'pmem' "
                             "takes training points (all N, then repeats); use init 'prior' "
                             "or 'gaussian' for larger models")


def init_params(dataset, M, cfg):
    """Initial parameters of one model size as float64 host arrays: a dict with
    per-component arrays (first axis M) and the scalar "std"."""
    return family(cfg).init(dataset, M, cfg)


def init_means(dataset, M, cfg):
    """Initial (means (M, d) float64 host array, variance) for one model size."""
    rng = rng_for(cfg.seed, STREAM_INIT, M)
    X = to_host(dataset.X).astype(np.float64)
    N, d = X.shape
    if cfg.init == "pmem":
        perm = rng.permutation(N)
        idx = perm[:M] if M <= N else np.concatenate([perm, rng.integers(0, N, M - N)])
        means = X[idx] + np.sqrt(cfg.init_noise_var) * rng.standard_normal((M, d))
        return means, cfg.init_var
    if cfg.init == "prior":
        means, _ = dataset.mixture.sample(M, rng, xp=np)
        return np.asarray(means, dtype=np.float64), cfg.data_var
    return cfg.gaussian_scale / np.sqrt(d) * rng.standard_normal((M, d)), cfg.init_var


def draw_chunk_steps(N, n, size, budget=1 << 20):
    """Steps per draw chunk: as many as keep one chunk of noise under ``budget``
    numbers (at most 64); ``size`` numbers per sample. Depends only on the data shape,
    never on the batch."""
    return int(max(1, min(64, budget // (N * n * size))))


NOISE_SOURCES = ("pcg", "hash")


def noise_stream(cfg, M):
    """The key of model size M's times and noise: (seed, N, d, K, M), so models of
    different configurations draw independently; with ``cfg.common_noise`` every model
    of the same (N, d) shares one stream (0, N, d)."""
    if cfg.common_noise:
        return (0, cfg.samples, cfg.dim)
    return (cfg.seed, cfg.samples, cfg.dim, cfg.components, M)


def draw_chunk(stream, chunk, steps, N, n, shape, L, *, xp=np, source="pcg", fused=False,
               rows_last=False):
    """Times and noise of one stream (:func:`noise_stream`) for one chunk:
    ``(t_idx (S, N), eps (S, N n, *shape))``, float64; rows of eps are sample-major
    (row = i n + k). With ``rows_last`` (``shape`` = (d,)) eps is (S, d, N n): source
    "hash" draws it in that layout, "pcg" transposes its draws.

    source "pcg": numpy's PCG64 on the host (the numpy default: fastest on a CPU);
    "hash": the counter-based generator of :mod:`gmmdiff.rng`, drawn on backend ``xp``
    (the cupy default: nothing crosses the bus, and numpy with "hash" gives the same
    draws up to the last bits of the normals); ``fused`` draws those normals with one
    cupy kernel.
    """
    seed, rest = stream[0], tuple(stream[1:])
    if source == "hash":
        key_t = counter_rng.stream_key(seed, STREAM_NOISE, *rest, chunk, 0)
        key_eps = counter_rng.stream_key(seed, STREAM_NOISE, *rest, chunk, 1)
        eps_shape = (steps, shape[0], N * n) if rows_last else (steps, N * n) + tuple(shape)
        return (counter_rng.integers(key_t, L, (steps, N), xp),
                counter_rng.normals(key_eps, eps_shape, xp, fused=fused))
    if source != "pcg":
        raise ValueError(f"unknown noise source {source!r}; accepted: {', '.join(NOISE_SOURCES)}")
    g = rng_for(seed, STREAM_NOISE, *rest, chunk)
    t_idx = g.integers(0, L, size=(steps, N))
    eps = g.standard_normal((steps, N * n) + tuple(shape))
    return t_idx, (xp.swapaxes(eps, -1, -2) if rows_last else eps)


@dataclass
class TrainState:
    """Everything needed to continue training bit for bit.

    params : dict name -> (J, Mmax, ...) per-component arrays and "std" (J,);
    mask : (J, Mmax) bool;  opt : optimizer state;  step : steps done;
    sizes : (J,) model sizes;  loss_steps, losses : logged training losses (host);
    owners : (J,) index of each model's configuration in a multi-configuration batch
    (all 0 for one configuration);  labels : (J,) names checked when resuming.
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

    def __post_init__(self):
        self.owners = list(self.owners) if self.owners is not None else [0] * len(self.sizes)
        self.labels = list(self.labels) if self.labels is not None else [f"M={M}" for M in self.sizes]

    @property
    def means(self):
        """GMM means (J, Mmax, d)."""
        return self.params["means"]

    @property
    def std(self):
        """Standard deviations (J,)."""
        return self.params["std"]

    def save(self, path):
        arrays = {"mask": to_host(self.mask), "sizes": np.asarray(self.sizes),
                  "step": np.asarray(self.step), "opt_count": np.asarray(self.opt["count"]),
                  "loss_steps": np.asarray(self.loss_steps, dtype=np.int64),
                  "losses": np.asarray(self.losses, dtype=np.float64).reshape(-1, len(self.sizes)),
                  "owners": np.asarray(self.owners, dtype=np.int64), "labels": np.asarray(self.labels)}
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
                          [self.labels[i] for i in idx])

    @classmethod
    def load(cls, path, xp):
        z = read_npz(path)
        opt = {"count": int(z["opt_count"])}
        opt.update({k[4:]: xp.asarray(v) for k, v in z.items()
                    if k.startswith("opt_") and k != "opt_count"})
        params = {k[6:]: xp.asarray(v) for k, v in z.items() if k.startswith("param_")}
        return cls(sizes=[int(m) for m in z["sizes"]], params=params, mask=xp.asarray(z["mask"]),
                   opt=opt, step=int(z["step"]), loss_steps=[int(s) for s in z["loss_steps"]],
                   losses=[list(r) for r in z["losses"]], owners=[int(o) for o in z["owners"]],
                   labels=[str(v) for v in z["labels"]])


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
    return TrainState(list(sizes), params, xp.asarray(mask), optim.init_state(params), 0, [], [],
                      owners, labels)


BATCH_FREE = ("seed", "components")


def check_batchable(cfgs):
    """Configurations can train in one array program when they differ only in seed and
    K (N, d and every optimization setting shared). Raises ValueError otherwise."""
    first = dataclasses.asdict(cfgs[0])
    for c in cfgs[1:]:
        diff = [k for k, v in dataclasses.asdict(c).items() if k not in BATCH_FREE and v != first[k]]
        if diff:
            raise ValueError(f"configurations differ in {', '.join(diff)}; one batch may differ "
                             f"only in {', '.join(BATCH_FREE)}")


# Fixed cost of one batched loss evaluation, in units of (component x row) entries.
# numpy: ~0.7 ms of call overhead against ~50 ns per entry at the paper's shapes
# (measured on a 2-core CPU). cupy: ~60 kernel launches (~0.6 ms) against ~0.05 ns per
# entry of memory traffic -- an estimate, not yet measured on a GPU.
BUCKET_OVERHEAD = {"numpy": 13_000, "cupy": 10_000_000}


def plan_buckets(sizes, rows, overhead=BUCKET_OVERHEAD["numpy"]):
    """Split models into buckets of similar size, each padded only to its own largest
    size: minimizes sum over buckets of (models x largest size x rows + overhead) by
    dynamic programming over the sizes in increasing order.

    Returns a list of index arrays into ``sizes`` (one bucket: all models)."""
    order = np.argsort(np.asarray(sizes), kind="stable")
    s = np.asarray(sizes)[order]
    J = len(s)
    best = np.full(J + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(J + 1, dtype=int)
    for j in range(1, J + 1):
        for i in range(j):
            c = best[i] + (j - i) * s[j - 1] * rows + overhead
            if c < best[j]:
                best[j], cut[j] = c, i
    buckets, j = [], J
    while j > 0:
        buckets.append(np.sort(order[cut[j]:j]))
        j = cut[j]
    return buckets[::-1]


def bucketed(loss_fn, buckets, sizes, xp):
    """``loss_fn`` evaluated bucket by bucket on parameters sliced to each bucket's own
    largest size, with losses and gradients scattered back into the padded layout
    (:func:`plan_buckets`). One bucket: ``loss_fn`` itself."""
    J = len(sizes)
    if len(buckets) == 1:
        return loss_fn
    plan = [(xp.asarray(b), int(max(sizes[i] for i in b))) for b in buckets]

    def loss(params, x0, eps, alpha, sigma, wt, xp_, mask):
        total = None
        grads = {k: xp.zeros_like(v) for k, v in params.items()}
        for idx, Mg in plan:
            sub = {k: (v[idx] if v.ndim == 1 else v[idx, :Mg]) for k, v in params.items()}
            x0_b = x0[idx] if x0.ndim == eps.ndim else x0                # per-model or shared
            lb, gb = loss_fn(sub, x0_b, eps[idx], alpha[idx], sigma[idx], wt[idx], xp_,
                             mask[idx, :Mg])
            if total is None:
                total = xp.zeros(J, dtype=lb.dtype)
            total[idx] = lb
            for k, g in gb.items():
                if g.ndim == 1:
                    grads[k][idx] = g
                else:
                    grads[k][idx, :Mg] = g
        return total, grads

    return loss


@dataclass(frozen=True)
class Family:
    """What training needs of a model family (GMM or colored templates).

    init(dataset, M, cfg) -> dict of host arrays (per-component, first axis M; "std")
    loss(params, x0, eps, alpha, sigma, wt, xp, mask) -> (loss (J,), grads dict)
    evaluate(dataset, M, params, cfg, xp, baselines) -> (metrics dict, {"generated": ...})
    baselines(dataset, cfg, xp) -> dict of per-time baseline losses
    rows_last: the loss takes x0 and eps as (..., d, B) instead of (..., B, *shape)
    fusable: the loss takes ``fused=True`` (the cupy kernels of :mod:`gmmdiff.kernels`)
    """
    init: object
    loss: object
    evaluate: object
    baselines: object
    rows_last: bool = False
    fusable: bool = False


def _gmm_init(dataset, M, cfg):
    means, var = init_means(dataset, M, cfg)
    return {"means": means, "std": np.sqrt(var)}


def _gmm_loss(params, x0, eps, alpha, sigma, wt, xp, mask, fused=False):
    l, gm, gs = _batched_loss_and_grad(params["means"], params["std"], x0, eps, alpha, sigma,
                                       wt, xp, mask, fused=fused)
    return l, {"means": gm, "std": gs}


def _template_loss(params, x0, eps, alpha, sigma, wt, xp, mask):
    from .templates import _batched_loss_and_grad as tpl
    l, gA, gM, gs = tpl(params["templates"], params["colors"], params["std"], x0, eps,
                        alpha, sigma, wt, xp, mask)
    return l, {"templates": gA, "colors": gM, "std": gs}


def family(cfg):
    """The :class:`Family` of ``cfg.model`` (its data set: :meth:`TrainConfig.dataset`)."""
    if cfg.model == "templates":
        from . import templates as tm
        return Family(lambda ds, M, c: tm.init_template_params(ds, M, c, rng_for(c.seed, STREAM_INIT, M)),
                      _template_loss, tm.evaluate_templates, tm.template_baselines)
    return Family(_gmm_init, _gmm_loss, evaluate_gmm, baseline_losses, rows_last=True,
                  fusable=True)


def check_fused(fused, cfg, xp):
    """Raise ValueError unless the fused kernels can run: cupy backend, GMM model."""
    if not fused:
        return
    if backend_name(xp) != "cupy":
        raise ValueError("fused kernels (--fused-kernels) need the cupy backend; "
                         f"got backend {backend_name(xp)!r}")
    if not family(cfg).fusable:
        raise ValueError(f"fused kernels are written for the GMM model; got model {cfg.model!r}")


def train(dataset, state, cfg, xp, *, callback=None, log_every=None, checkpoint=None,
          checkpoint_every=0, noise_source=None, bucket_overhead=None, fused=False):
    """Run the optimizer from ``state.step`` to ``cfg.steps``; returns the final state.

    Parameters
    ----------
    dataset : :class:`gmmdiff.data.Dataset` (on backend ``xp``, dtype of cfg)
    state : :class:`TrainState` (initial or loaded from a checkpoint)
    callback : called as ``callback(step, losses (J,) host array)`` at log intervals
    log_every : steps between logged losses (default: steps // 200, at least 1); the
        only host-device synchronizations of the loop happen there
    checkpoint : path; the state is saved there every ``checkpoint_every`` steps and
        at the end (0 = only at the end)
    noise_source : "pcg" or "hash" (:func:`draw_chunk`); default "pcg" on numpy and
        "hash" on cupy
    bucket_overhead : fixed cost per bucket for :func:`plan_buckets` (default by
        backend, :data:`BUCKET_OVERHEAD`; large: one padded batch; 0: one bucket per size)
    fused : cupy only, GMM only: the loss's column passes and the noise draws run as
        the fused kernels of :mod:`gmmdiff.kernels` (see :func:`check_fused`)
    """
    datasets, cfgs = (dataset, cfg) if isinstance(cfg, (list, tuple)) else ([dataset], [cfg])
    check_batchable(cfgs)
    cfg = cfgs[0]
    dtype = get_dtype(cfg.dtype)
    ocfg = cfg.optim()
    N, shape = datasets[0].X.shape[0], datasets[0].X.shape[1:]
    n = cfg.noise_draws
    L = cfg.grid_size
    grid = cfg.grid()
    c = coefficients(grid, cfg.process)
    alpha_g = xp.asarray(c.alpha)                                        # (L,) float64
    sigma_g = xp.asarray(c.sigma)
    wt_g = xp.asarray(loss_scale(grid, cfg.process, cfg.target))
    J = len(state.sizes)
    fam = family(cfg)
    check_fused(fused, cfg, xp)
    x0s = [xp.repeat(ds.X.astype(dtype), n, axis=0) for ds in datasets]  # (B, ...) row = i n + k
    if fam.rows_last:
        x0s = [xp.ascontiguousarray(x.T) for x in x0s]                   # (d, B)
    used = sorted(set(state.owners))
    x0 = x0s[used[0]] if len(used) == 1 else xp.stack([x0s[o] for o in state.owners])  # (J, B, ...)
    S = draw_chunk_steps(N, n, int(np.prod(shape)))
    source = noise_source or ("pcg" if xp is np else "hash")
    dev = xp if source == "hash" else np                                 # where draws live
    streams = [noise_stream(cfgs[o], M) for M, o in zip(state.sizes, state.owners)]
    unique = list(dict.fromkeys(streams))                                # first-appearance order
    which = [unique.index(st) for st in streams]                         # model -> stream
    U = len(unique)
    identity = which == list(range(J))
    eps_shape = (shape[0], N * n) if fam.rows_last else (N * n,) + shape

    def draw(chunk):                                                     # (U, S, N), (U, S, ...)
        t_c = dev.empty((U, S, N), dtype=dev.int64)
        e_c = dev.empty((U, S) + eps_shape)
        for u, st in enumerate(unique):
            t_c[u], e_c[u] = draw_chunk(st, chunk, S, N, n, shape, L, xp=dev, source=source,
                                        fused=fused and dev is not np, rows_last=fam.rows_last)
        return t_c, e_c

    if bucket_overhead is None:
        bucket_overhead = BUCKET_OVERHEAD[backend_name(xp)]
    loss_fn = bucketed(functools.partial(fam.loss, fused=True) if fused else fam.loss,
                       plan_buckets(state.sizes, N * n, bucket_overhead), state.sizes, xp)
    log_every = log_every or max(1, cfg.steps // 200)
    params = state.params
    opt = state.opt
    # Host draws of the next chunk are made on a second thread while this one trains
    # (numpy releases the GIL while it fills arrays); the draws depend only on the
    # chunk index, so prefetching changes nothing in the results.
    start = state.step                          # (state.step moves on at checkpoints)
    pool = ThreadPoolExecutor(1) if dev is np and start < cfg.steps else None
    pending = None
    try:
        for k in range(start, cfg.steps):
            chunk, offset = divmod(k, S)
            if offset == 0 or k == start:
                t_chunk, eps_chunk = pending.result() if pending is not None else draw(chunk)
                pending = None
                if pool is not None and (chunk + 1) * S < cfg.steps:
                    pending = pool.submit(draw, chunk + 1)
            if identity:
                t_now, eps_now = t_chunk[:, offset], eps_chunk[:, offset]
            elif U == 1:                                 # --common-noise: no copies
                t_now = dev.broadcast_to(t_chunk[0, offset], (J, N))
                eps_now = dev.broadcast_to(eps_chunk[0, offset], (J,) + eps_chunk.shape[2:])
            else:                                        # some streams shared
                t_now, eps_now = t_chunk[which, offset], eps_chunk[which, offset]
            rows = xp.asarray(dev.repeat(t_now, n, axis=1))              # (J, B)
            loss, grads = loss_fn(params, x0, xp.asarray(eps_now, dtype=dtype),
                                  alpha_g[rows], sigma_g[rows], wt_g[rows], xp, state.mask)
            lr = optim.learning_rate(k, cfg.steps, ocfg)
            params, opt = optim.step(params, grads, opt, lr, ocfg)
            done = k + 1
            if done % log_every == 0 or done == cfg.steps:
                host = to_host(loss).astype(np.float64)
                state.loss_steps.append(done)
                state.losses.append(host.tolist())
                if not np.all(np.isfinite(host)):
                    raise FloatingPointError(f"training loss became non-finite at step {done}")
                if callback is not None:
                    callback(done, host)
            if checkpoint and ((checkpoint_every and done % checkpoint_every == 0)
                               or done == cfg.steps):
                state.params, state.opt, state.step = params, opt, done
                state.save(checkpoint)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    state.params, state.opt, state.step = params, opt, cfg.steps
    return state


def eval_seed(cfg, split):
    """Seed of the evaluation noise for a split (0 train, 1 test): shared by every model
    and baseline of a configuration (common random numbers)."""
    return int(rng_for(cfg.seed, STREAM_EVAL, split).integers(2**63))


def baseline_losses(dataset, cfg, xp):
    """Per-time train/test losses of theta* and theta_mem, (T,) host arrays each."""
    grid = cfg.grid()
    kw = dict(n_noise=cfg.eval_noise_draws, process=cfg.process, target=cfg.target)
    out = {}
    for name, p in (("generalizing", generalizing(dataset.mixture)), ("memorizing", memorizing(dataset.X))):
        for split, S, key in (("train", dataset.X, 0), ("test", dataset.X_test, 1)):
            seed = eval_seed(cfg, key)
            out[f"{name}_{split}"] = to_host(per_time_losses(p.means, p.var, S, grid, seed=seed, **kw))
    return out


def evaluate(dataset, M, means, var, cfg, xp, baselines):
    """Metrics of one trained model ``means (M, d)``, variance ``var``: a JSON-able dict.

    Per-time losses use common random numbers across models (the same eval seed), so
    the trained model and every baseline see the same noise.
    """
    grid = cfg.grid()
    X = dataset.X
    x_T = xp.asarray(rng_for(cfg.seed, STREAM_SAMPLE, M).standard_normal((cfg.eval_samples, X.shape[1])),
                     dtype=means.dtype)
    srng = rng_for(cfg.seed, STREAM_SAMPLE, M, 1)
    gen = sample(means, var, grid, x_T, process=cfg.process, method=cfg.sampler, rng=srng)
    fresh, _ = dataset.mixture.sample(cfg.eval_samples, rng_for(cfg.seed, STREAM_FRESH, M), xp=xp)
    kw = dict(n_noise=cfg.eval_noise_draws, process=cfg.process, target=cfg.target)
    losses = {}
    M_pm = min(M, X.shape[0])
    pmem, subset = partially_memorizing(X, M_pm, cfg.seed)
    for split, S, key in (("train", X, 0), ("test", dataset.X_test, 1)):
        seed = eval_seed(cfg, key)
        losses[f"model_{split}"] = to_host(per_time_losses(means, var, S, grid, seed=seed, **kw))
        losses[f"pmem_{split}"] = to_host(per_time_losses(pmem.means, 0.0, S, grid, seed=seed, **kw))
    losses.update(baselines)
    d, N = X.shape[1], X.shape[0]
    approx = {"generalizing": generalizing_excess_loss(grid, d, cfg.data_var, target=cfg.target,
                                                       process=cfg.process)}
    for method in METHODS:
        approx[method] = partial_memorizing_excess_loss(
            grid, d, cfg.data_var, M_pm, N, target=cfg.target, process=cfg.process,
            method=method, X=X, subset=subset, K=cfg.components)
    mem = memorization(gen, X)
    return {
        "M": int(M), "M_over_N": M / N,
        "memorization": mem,
        "learned_variance": float(var),
        "learned_means": learned_means_stats(means, dataset.mixture.means, X),
        "final_train_loss": float(np.mean(losses["model_train"])),
        "final_test_loss": float(np.mean(losses["model_test"])),
        "w2": wasserstein2(gen, fresh),
        "times": grid.tolist(),
        "per_time_losses": {k: np.asarray(v).tolist() for k, v in losses.items()},
        "approximations_excess_over_memorizing": {k: np.asarray(v).tolist() for k, v in approx.items()},
        "pmem_subset": subset.tolist(),
    }, {"generated": to_host(gen)}


def evaluate_gmm(dataset, M, params, cfg, xp, baselines):
    """:func:`evaluate` for a parameter dict {"means": (M, d), "std": ()}."""
    var = float(to_host(params["std"]).astype(np.float64) ** 2)
    return evaluate(dataset, M, params["means"], var, cfg, xp, baselines)


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
        differ only in seed and K (:func:`check_batchable`)
    checkpoint : path of the batch's checkpoint (default: the first run directory's
        ``checkpoint.npz``); a checkpoint holding every pending model resumes them
    fused : train with the fused cupy kernels (:func:`train`); results are the same up
        to rounding, so it is not part of a run's identity

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
        fam = family(cfgs[0])                                            # shared by the batch
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
