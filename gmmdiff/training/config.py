"""The settings of a training run: :class:`TrainConfig`.

A :class:`TrainConfig` holds every setting that determines a run's results (model
sizes aside: each size's result does not depend on the others, and they are given
separately, :mod:`gmmdiff.training.sizes`); its defaults are the built-in CPU
configuration of ``gmmdiff-train``. The steps at which a run evaluates its models along
training are ``eval_steps`` (:func:`eval_step_list`).
"""
import dataclasses
from dataclasses import dataclass

import numpy as np

from gmmdiff.backend import get_dtype
from gmmdiff.families import registry as families
from gmmdiff.model.data import check_positive_int
from gmmdiff.model.process import TRAIN_TARGETS, check_process, check_target, time_grid
from gmmdiff.training import optim

INITS = ("pmem", "prior", "gaussian")
MAX_STEPS = 10**9           # optimizer steps (about a week at the fastest rates measured)
MAX_GRID_SIZE = 10_000      # times of the grid (the paper's is 26): each is a sampler step
                            # and a Monte Carlo evaluation of every model
MAX_DRAWS = 10**6           # noise draws per sample (training, evaluation, figure 1)
MAX_SHAPE = 2**53           # N, d, K and every other count: the largest integers float64
                            # (and JSON readers) hold exactly; the memory check refuses far
                            # smaller ones on a given machine, but a file is read on any
MAX_SCALE = 1e8             # s*, the initial variances and scale: squared distances and
                            # Adam's squared gradients overflow float64 near 1e300
MODELS = families.MODELS
SAMPLERS = ("ddim", "ddpm")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting that determines a run's results (model sizes aside: each size's
    result does not depend on the others). Defaults: the built-in CPU configuration.

    Every field is an option of ``gmmdiff-train`` of the same name (``lr_peak`` is
    ``--lr``, ``warmup_frac`` ``--warmup``, ``gaussian_scale`` ``--init-scale``);
    :meth:`validate` checks them all.

    Attributes
    ----------
    dim : int
        Data dimension d (the GMM model; templates: colors x image_size^2).
    components : int
        Mixture components K (templates: the number of templates).
    samples : int
        Training samples N, >= 2.
    steps : int
        Optimizer steps (full batch: one step is one epoch; with ``batch_size`` B < N an
        epoch is ceil(N / B) steps).
    noise_draws : int
        Noise draws per training sample and step.
    eval_samples : int
        Generated samples per model for the memorization ratio and W2.
    eval_noise_draws : int
        Noise draws per sample for the final per-time losses.
    eval_steps : str
        Steps of the evaluations along training: ``"log:K"`` (step 0 and K log-spaced
        steps), a list such as ``"0,1000,50000"``, or ``"none"``; 90% of training and
        the last step are always added.
    track_noise_draws : int
        Noise draws per sample for the losses along training.
    seed : int
        Seed of the data, the initialization and the training noise.
    dtype : {"float64", "float32"}
        Precision of training (float64 is the reference).
    init : {"pmem", "prior", "gaussian"}
        Initial means: M training points (the paper's), M draws of the data mixture, or
        ``N(0, gaussian_scale^2 / d I)``.
    init_var : float
        Initial variance for the pmem and gaussian inits.
    init_noise_var : float
        pmem: variance of the noise added to the training points taken as means.
    gaussian_scale : float
        gaussian: the scale of the initial means.
    target : {"eps", "x0", "v"}
        What the denoiser predicts and the loss compares.
    process : {"vp", "fm"}
        Variance-preserving or flow matching.
    data_var : float
        The data variance s* > 0.
    test_samples : int
        Held-out samples for the test losses.
    grid_size : int
        Times of the grid (26: the paper's).
    t_min, t_max : float
        The smallest and largest grid time.
    lr_peak : float
        Peak learning rate of the warmup-stable-decay schedule.
    lr_final : float
        Learning rate at the last step.
    warmup_frac : float
        Fraction of the steps of linear warm-up.
    sampler : {"ddim", "ddpm"}
        Sampler of the generated samples.
    model : {"gmm", "templates"}
        The model family: isotropic mixture or colored templates.
    template_file : str or None
        Templates model: an MNIST/Fashion-MNIST IDX file or a .npy/.npz image array
        (None: the set shipped with gmmdiff).
    image_size : int
        Templates model: pixels per side.
    colors : int
        Templates model: color channels C.
    common_noise : bool
        All models of a batch share one stream of times and noise.
    optimizer : {"adam", "sgd", "momentum"}
        Adam (the paper's), plain gradient descent, or heavy-ball momentum
        (:mod:`gmmdiff.training.optim`; the last two move the variance in its log).
    momentum : float
        The momentum coefficient m in [0, 1) of ``optimizer="momentum"``.
    nesterov : bool
        Nesterov's form of ``optimizer="momentum"``.
    batch_size : int or None
        Training samples per step, B in [1, N]; None (or N): full batch. With B < N each
        epoch is a fresh permutation of the samples (shared by the model sizes of the
        configuration) split into ceil(N / B) steps (:mod:`gmmdiff.training.batches`).

    Examples
    --------
    >>> import gmmdiff
    >>> cfg = gmmdiff.TrainConfig(dim=4, samples=12, steps=3000).validate()
    >>> cfg.grid().shape
    (26,)
    """
    dim: int = 10
    components: int = 2
    samples: int = 20
    steps: int = 50_000
    noise_draws: int = 10
    eval_samples: int = 500
    eval_noise_draws: int = 20
    eval_steps: str = "log:12"
    track_noise_draws: int = 5
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
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = False
    batch_size: int = None

    def __post_init__(self):
        # the canonical text of the evaluation steps ('0,5' for '5, 0'): one configuration,
        # one identity (a malformed text stays as given, for validate to name)
        try:
            object.__setattr__(self, "eval_steps", eval_steps_text(self.eval_steps))
        except ValueError:
            pass

    def validate(self):
        """Raise ValueError naming the first bad setting."""
        check_positive_int("dim", self.dim)
        check_positive_int("components", self.components)
        check_positive_int("samples", self.samples, minimum=2)
        for f in dataclasses.fields(self):          # every count (a seed is any integer)
            v = getattr(self, f.name)
            if type(f.default) is int and f.name != "seed" and isinstance(v, int) and v > MAX_SHAPE:
                raise ValueError(f"{f.name} = {v} is above the limit of 2^53 (the largest "
                                 "integer a float64 holds exactly)")
        check_positive_int("seed", self.seed, minimum=0)
        check_positive_int("steps", self.steps)
        if self.steps > MAX_STEPS:
            raise ValueError(f"steps = {self.steps} is above the limit of {MAX_STEPS:.0e} steps")
        check_positive_int("noise draws", self.noise_draws)
        check_positive_int("eval samples", self.eval_samples)
        check_positive_int("eval noise draws", self.eval_noise_draws)
        check_draws("noise draws (--noise-draws)", self.noise_draws)
        check_draws("eval noise draws (--eval-noise-draws)", self.eval_noise_draws)
        check_positive_int("noise draws along training (--track-noise-draws)", self.track_noise_draws)
        check_draws("noise draws along training (--track-noise-draws)", self.track_noise_draws)
        eval_step_list(self.eval_steps, self.steps)
        check_positive_int("test samples", self.test_samples)
        get_dtype(self.dtype)
        check_target(self.target, TRAIN_TARGETS)
        check_process(self.process)
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; accepted: {', '.join(INITS)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; accepted: {', '.join(SAMPLERS)}")
        for name in ("init_var", "init_noise_var", "data_var", "gaussian_scale"):
            v = getattr(self, name)
            if not (np.isfinite(v) and 0 <= v <= MAX_SCALE):
                raise ValueError(f"{name} = {v!r} must be finite, >= 0 and at most {MAX_SCALE:g} "
                                 "(larger scales overflow the squared distances)")
        if self.data_var <= 0:
            raise ValueError(f"data_var = {self.data_var!r} must be > 0")
        check_positive_int("grid size", self.grid_size, minimum=2)
        if self.grid_size > MAX_GRID_SIZE:
            raise ValueError(f"grid size (--grid-size) {self.grid_size} is above the limit of "
                             f"{MAX_GRID_SIZE} times (the paper's grid has 26): each time is a "
                             "sampler step and a Monte Carlo evaluation of every model")
        time_grid(self.grid_size, self.t_min, self.t_max)
        self.optim().validate()
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov = {self.nesterov!r} must be true or false")
        if self.batch_size is not None:
            check_positive_int("batch size (--batch-size)", self.batch_size)
            if self.batch_size > self.samples:
                raise ValueError(f"batch size (--batch-size) {self.batch_size} is above the "
                                 f"number of training samples N = {self.samples}; accepted: "
                                 f"1 to {self.samples}")
        if self.optimizer != "adam" and self.init_var == 0 and self.init != "prior":
            raise ValueError(f"optimizer {self.optimizer!r} moves the variance in its log, "
                             "which cannot leave init_var = 0; give --init-var > 0")
        if self.model not in families.REGISTRY:
            raise ValueError(f"unknown model {self.model!r}; accepted: "
                             f"{', '.join(families.REGISTRY)}")
        check_positive_int("image size", self.image_size, minimum=2)
        check_positive_int("colors", self.colors)
        return self

    def optim(self):
        """The optimizer's hyperparameters (:class:`gmmdiff.training.optim.OptimConfig`)."""
        return optim.OptimConfig(optimizer=self.optimizer, momentum=self.momentum,
                                 nesterov=self.nesterov, lr_peak=self.lr_peak,
                                 lr_final=self.lr_final, warmup_frac=self.warmup_frac)

    def batch(self):
        """The training samples per step B (N for full batch)."""
        return self.samples if self.batch_size is None else int(self.batch_size)

    def steps_per_epoch(self):
        """Optimizer steps per epoch: ceil(N / B) (1 for full batch)."""
        return -(-self.samples // self.batch())

    def epochs(self, steps):
        """Epochs done after a number of optimizer steps.

        Parameters
        ----------
        steps : int or (E,) array
            Optimizer steps done.

        Returns
        -------
        float or (E,) float64 array
            The epochs: whole epochs plus the samples of the current one over N (steps
            B / N within an epoch, exact at each epoch's end, where the last step may be
            shorter); equal to ``steps`` for full batch.
        """
        k = np.asarray(steps, dtype=np.float64)
        spe = self.steps_per_epoch()
        return np.floor(k / spe) + np.minimum(k % spe * self.batch(), self.samples) / self.samples

    def settings(self):
        """The fields that determine results, as a dict (a run's and a sweep's identity):
        every field, except the optimizer's and batch's at their defaults, so that run
        directories made before those settings existed (full-batch Adam) stay the same
        identity: ``momentum`` and ``nesterov`` appear only for ``optimizer="momentum"``,
        ``optimizer`` only when not "adam", ``batch_size`` only when below N."""
        out = dataclasses.asdict(self)
        if out["optimizer"] == "adam":
            del out["optimizer"]
        if self.optimizer != "momentum":
            del out["momentum"], out["nesterov"]
        if self.batch_size is None or self.batch_size >= self.samples:
            del out["batch_size"]
        return out

    def grid(self):
        """The descending time grid (L,) of training, sampling and evaluation."""
        return time_grid(self.grid_size, self.t_min, self.t_max)

    def family(self):
        """The model family of ``self.model`` (:mod:`gmmdiff.families.registry`)."""
        return families.get(self.model)

    def dataset(self, xp=np):
        """The seeded data set of this configuration.

        Parameters
        ----------
        xp : module
            The array module of the result, ``numpy`` or ``cupy``.

        Returns
        -------
        Dataset
            For the templates model, its own data set class.
        """
        return self.family().dataset(self, xp)


MAX_EVAL_STEPS = 1000      # evaluations along one run


def eval_step_list(spec, steps):
    """The steps at which a run of ``steps`` steps evaluates its models along training.

    spec : "log:K" -- step 0 (the initialization) and K steps spaced evenly in log from
        max(1, steps / 1000) to ``steps`` (rounded, distinct); "none" -- no evaluation
        along training (the final evaluation only); or a comma-separated list of steps
        in 0..steps such as "0,100,1000".
    Returns a sorted list of distinct ints; every list but "none"'s holds the step
    ``round(0.9 steps)`` and ends with ``steps`` (the last point of a time series is the
    trained model, and the convergence check compares it with the model 10% of training
    earlier, :mod:`gmmdiff.analysis.convergence`). ValueError names a bad spec.
    """
    spec = str(spec).strip()
    accepted = ("accepted: 'log:K' (K log-spaced steps, 1 <= K <= %d), 'none', or a list of "
                "steps in 0..%d such as '0,100,1000'" % (MAX_EVAL_STEPS, steps))
    if spec == "none":
        return []
    try:
        if spec.startswith("log:"):
            K = int(spec[4:])
            if not 1 <= K <= MAX_EVAL_STEPS:
                raise ValueError
            first = max(1.0, steps / 1000.0)
            points = {0} | {int(round(v)) for v in np.geomspace(first, steps, K)}
        else:
            points = {int(p) for p in split_items(spec, "eval steps (--eval-steps)")}
            if min(points) < 0 or max(points) > steps or len(points) > MAX_EVAL_STEPS:
                raise ValueError
    except ValueError as exc:
        if "has an empty item" in str(exc):
            raise
        raise ValueError(f"eval steps (--eval-steps) {spec!r} not understood; {accepted}") from None
    return sorted(points | {int(round(0.9 * steps)), steps})


def eval_steps_text(spec):
    """The canonical text of an ``eval_steps`` spec, the one a run's identity records:
    'none', 'log:K', or the listed steps sorted and distinct ('0,1000' for '1000, 0').
    ValueError for a text :func:`eval_step_list` cannot read."""
    spec = str(spec).strip()
    if spec == "none":
        return spec
    if spec.startswith("log:"):
        return f"log:{int(spec[4:])}"
    return ",".join(str(p) for p in sorted({int(p) for p in split_items(spec, "eval steps")}))


def split_items(spec, name):
    """The comma-separated items of ``spec``, stripped; ValueError naming ``name`` for
    an empty list or an empty item ('0,,5', a trailing comma), which would otherwise
    vanish silently."""
    items = [p.strip() for p in str(spec).split(",")]
    if not all(items):
        raise ValueError(f"{name} {str(spec)!r} " + ("is empty" if not any(items) else
                                                     "has an empty item")
                         + "; give a comma-separated list without empty items")
    return items


def check_draws(name, n):
    """Raise ValueError when ``n`` noise draws per sample exceed :data:`MAX_DRAWS` (a
    Monte Carlo average that would run for days is refused, not started)."""
    if n > MAX_DRAWS:
        raise ValueError(f"{name} {n} is above the limit of {MAX_DRAWS:.0e} draws per sample")
    return n
