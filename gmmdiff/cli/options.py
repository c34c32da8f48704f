"""Shared pieces of the click scripts in ``bin/``: options and parameter types (their
errors and interrupts: :mod:`gmmdiff.cli.errors`)."""
import os
import sys

import click

from gmmdiff.backend import BACKENDS, DTYPES
from gmmdiff.model.process import PROCESSES, TRAIN_TARGETS
from gmmdiff.training.config import INITS, MODELS, TrainConfig
from gmmdiff.training.optim import OPTIMIZERS


class Command(click.Command):
    """A click command whose every error is one line on stderr: click's usage errors
    (a bad option value, a missing argument) too, without the Usage/Try lines."""

    # Refuse an option given twice (click keeps the last value). Off by default: the
    # scripts' tests and users' wrappers append overrides to a base command line.
    refuse_repeated = False

    def parse_args(self, ctx, args):
        only = None if self.refuse_repeated is True else self.refuse_repeated
        repeated = repeated_option(self, args, only) if self.refuse_repeated else None
        if repeated:
            raise click.UsageError(f"option {repeated} given more than once; give it once "
                                   "(a second value would silently replace the first)", ctx=ctx)
        return super().parse_args(ctx, args)

    def main(self, *args, standalone_mode=True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


class StrictCommand(Command):
    """A :class:`Command` that refuses an option given twice (gmmdiff-predict: a second
    --fit-file used to replace the first silently)."""
    refuse_repeated = True


class PresetCommand(Command):
    """A :class:`Command` that refuses ``--preset`` given twice (gmmdiff-sweep: the
    second preset replaced the first silently); other options may be repeated, a later
    value overriding."""
    refuse_repeated = ("preset",)


def repeated_option(command, args, only=None):
    """The first option of ``command`` (not ``multiple``; among the parameter names
    ``only`` when given) that ``args`` give twice, by any of its names ('--steps 5',
    '--steps=5', '-N 5', '-N5'), or None."""
    names, seen = {}, {}
    for p in command.params:
        if isinstance(p, click.Option) and not p.multiple and not p.count:
            for opt in p.opts + p.secondary_opts:
                names[opt] = p
    k = 0
    while k < len(args):
        a = args[k]
        k += 1
        if a == "--":
            break
        p = names.get(a)
        if p is None and a.startswith("--") and "=" in a:
            p = names.get(a.split("=", 1)[0])
        elif p is None and a.startswith("-") and not a.startswith("--") and len(a) > 2:
            p = names.get(a[:2])                         # '-N5'
            if p is not None and p.is_flag:
                p = None
        elif p is not None and not p.is_flag:
            k += 1                                       # its value
        if p is None or (only is not None and p.name not in only):
            continue
        name = a.split("=", 1)[0] if a.startswith("--") else a[:2]
        if p.name in seen:
            return seen[p.name] if seen[p.name] == name else f"{seen[p.name]} / {name}"
        seen[p.name] = name
    return None


def positive(minimum=1):
    def check(ctx, param, value):
        if value is not None and value < minimum:
            raise click.BadParameter(f"{value} is below {minimum}")
        return value
    return check


class ExistingDirectory(click.Path):
    """``click.Path(exists=True, file_okay=False)`` whose refusal of a file says what to
    give instead: ``file_hint(path)`` completes "PATH is a file; ..." (click's own
    message, "Directory 'PATH' is a file.", left a user who gave a fit file to --fit
    guessing)."""

    def __init__(self, file_hint):
        super().__init__(exists=True, file_okay=False)
        self.file_hint = file_hint

    def convert(self, value, param, ctx):
        if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
            self.fail(f"{os.fspath(value)} is a file; {self.file_hint(os.fspath(value))}", param, ctx)
        return super().convert(value, param, ctx)


D = TrainConfig()


def data_options(f, notes=None):
    """--dim, --components, --samples, --seed (SPEC 2); ``notes`` as for
    :func:`optimization_options` (see :func:`noted_data_options`)."""
    for opt in reversed([
        click.option("--dim", "-d", type=int, default=D.dim, show_default=True,
                     callback=positive(1), help="data dimension d"),
        click.option("--components", "-K", type=int, default=D.components, show_default=True,
                     callback=positive(1),
                     help=noted("number of mixture components K (K above N is allowed: the "
                                "data model is defined for any K, and then some components "
                                "have no training sample)", "components", notes)),
        click.option("--samples", "-N", type=int, default=D.samples, show_default=True,
                     callback=positive(2), help=noted("number of training samples N", "samples", notes)),
        click.option("--seed", type=int, default=D.seed, show_default=True,
                     callback=positive(0), help="seed of data, initialization and noise"),
    ]):
        f = opt(f)
    return f


def noted_data_options(notes):
    """:func:`data_options` with ``notes`` in the help."""
    return lambda f: data_options(f, notes)


def noted(help_text, name, notes):
    """``help_text`` with the default that applies elsewhere, e.g. '(--model templates: 8)'."""
    return f"{help_text} ({notes[name]})" if notes and name in notes else help_text


def optimization_options(defaults=D, notes=None):
    """The settings of :class:`gmmdiff.training.config.TrainConfig` beyond the data options, with
    the given defaults (the CPU default for gmmdiff-train, the paper's for sweeps);
    ``notes``: option name -> the default under another --model or --preset, added to
    its help."""
    def decorate(f):
        for opt in reversed([
            click.option("--steps", type=int, default=defaults.steps, show_default=True,
                         callback=positive(1), help=noted("optimizer steps (full batch: one step = one "
                                                           "epoch)", "steps", notes)),
            click.option("--noise-draws", type=int, default=defaults.noise_draws, show_default=True,
                         callback=positive(1),
                         help=noted("noise draws per sample and step", "noise_draws", notes)),
            click.option("--eval-samples", type=int, default=defaults.eval_samples, show_default=True,
                         callback=positive(1),
                         help=noted("generated samples for the memorization ratio and W2",
                                    "eval_samples", notes)),
            click.option("--eval-noise-draws", type=int, default=defaults.eval_noise_draws,
                         show_default=True, callback=positive(1),
                         help="noise draws per sample for the per-time losses"),
            click.option("--eval-steps", default=defaults.eval_steps, show_default=True,
                         help=noted("steps at which every model is evaluated along training: "
                                    "'log:K' (step 0 and K log-spaced steps up to the last), a "
                                    "list such as '0,1000,50000' (the last step is always "
                                    "added), or 'none'", "eval_steps", notes)),
            click.option("--track-noise-draws", type=int, default=defaults.track_noise_draws,
                         show_default=True, callback=positive(1),
                         help="noise draws per sample for the train and test losses along "
                              "training"),
            click.option("--backend", type=click.Choice(BACKENDS), default="numpy", show_default=True,
                         help="numpy: the CPU; cupy: a GPU (pip install '.[cuda12]')"),
            click.option("--dtype", type=click.Choice(DTYPES), default=defaults.dtype, show_default=True,
                         help="precision of training (float64 is the reference)"),
            click.option("--init", type=click.Choice(INITS), default=defaults.init, show_default=True,
                         help="initial means: pmem (M training points, the paper's), prior "
                              "(M draws of the data mixture, variance s*) or gaussian "
                              "(N(0, scale^2/d I))"),
            click.option("--init-var", type=float, default=defaults.init_var, show_default=True,
                         help="initial variance for inits pmem and gaussian"),
            click.option("--init-noise-var", type=float, default=defaults.init_noise_var,
                         show_default=True, help="pmem: variance of the noise added to the "
                                                 "training points taken as means"),
            click.option("--init-scale", "gaussian_scale", type=float,
                         default=defaults.gaussian_scale, show_default=True,
                         help="gaussian: means ~ N(0, scale^2 / d I)"),
            click.option("--target", type=click.Choice(TRAIN_TARGETS), default=defaults.target,
                         show_default=True,
                         help=noted("what the denoiser predicts and the loss compares: noise "
                                    "eps, clean x0 or velocity v", "target", notes)),
            click.option("--process", type=click.Choice(PROCESSES), default=defaults.process,
                         show_default=True,
                         help="diffusion process: vp (alpha_t = sqrt(1 - t^2), sigma_t = t) or "
                              "fm (flow matching, alpha_t = 1 - t)"),
            click.option("--data-var", type=float, default=defaults.data_var, show_default=True,
                         help="variance s* of the data mixture"),
            click.option("--lr", "lr_peak", type=float, default=defaults.lr_peak, show_default=True,
                         help=noted("peak learning rate", "lr_peak", notes)),
            click.option("--lr-final", type=float, default=defaults.lr_final, show_default=True,
                         help=noted("learning rate at the last step (linear decay after the "
                                    "warm-up)", "lr_final", notes)),
            click.option("--warmup", "warmup_frac", type=float, default=defaults.warmup_frac,
                         show_default=True,
                         help=noted("fraction of steps of linear warm-up", "warmup_frac", notes)),
            click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=defaults.optimizer,
                         show_default=True,
                         help=noted("adam (the paper's), sgd (plain gradient descent) or "
                                    "momentum (heavy ball); sgd and momentum move the variance "
                                    "in its log; all three share the clipping, the schedule and "
                                    "the update average", "optimizer", notes)),
            click.option("--momentum", type=float, default=defaults.momentum, show_default=True,
                         help=noted("momentum coefficient in [0, 1) of --optimizer momentum",
                                    "momentum", notes)),
            click.option("--nesterov", is_flag=True,
                         help="--optimizer momentum: Nesterov's form"),
            click.option("--batch-size", type=int, default=defaults.batch_size,
                         callback=positive(1),
                         help=noted("training samples per step B in [1, N] (default: N, full "
                                    "batch); each epoch a fresh permutation of the samples in "
                                    "ceil(N / B) steps", "batch_size", notes)),
            click.option("--t-min", type=float, default=defaults.t_min, show_default=True,
                         help="smallest time of the training and evaluation grid"),
            click.option("--t-max", type=float, default=defaults.t_max, show_default=True,
                         help="largest time of the grid"),
            click.option("--grid-size", type=int, default=defaults.grid_size, show_default=True,
                         help="number of grid times (evenly spaced from --t-min to --t-max)"),
            click.option("--sampler", type=click.Choice(["ddim", "ddpm"]), default=defaults.sampler,
                         show_default=True,
                         help="sampler of the generated samples that the memorization ratio "
                              "is measured on (ddim: deterministic)"),
            click.option("--common-noise", is_flag=True,
                         help="all models of a batch share one stream of times and noise "
                              "(default: each model its own)"),
            click.option("--fused-kernels", is_flag=True,
                         help="cupy: run the loss's passes over the (components x rows) "
                              "blocks as fused CUDA kernels (same results up to rounding)"),
            click.option("--checkpoint-every", type=int, default=1000, show_default=True,
                         callback=positive(0), help="steps between checkpoints (0: only at the end)"),
            click.option("--quiet", "-q", is_flag=True,
                         help="no progress on stderr (default: a bar on a terminal, otherwise "
                              "a line every 30 s, or every $GMMDIFF_PROGRESS_SECONDS)"),
        ]):
            f = opt(f)
        return f
    return decorate


def model_options(f):
    """--model and the colored-template model's options (SPEC 11)."""
    for opt in reversed([
        click.option("--model", type=click.Choice(MODELS), default="gmm", show_default=True,
                     help="gmm: isotropic mixture; templates: colored low-rank templates "
                          "(--components is then the number of templates)"),
        click.option("--template-file", type=click.Path(dir_okay=False), default=None,
                     help="MNIST/Fashion-MNIST IDX (.gz or not), .npy or .npz images "
                          "(default: the set shipped with gmmdiff)"),
        click.option("--image-size", type=int, default=D.image_size, show_default=True,
                     callback=positive(2), help=noted("templates are resized to this many pixels a side",
                                                         "image_size", TEMPLATE_NOTES)),
        click.option("--colors", type=int, default=D.colors, show_default=True,
                     callback=positive(1), help="color channels C"),
    ]):
        f = opt(f)
    return f


def version_option(script):
    """--version: the script's name and gmmdiff's version."""
    from gmmdiff.version import __version__
    return click.version_option(__version__, "--version", prog_name=script,
                                message="%(prog)s (gmmdiff) %(version)s")


# Built-in defaults of `gmmdiff-train --model templates` where an option is not given:
# 8 templates (the paper's count) at 10 x 10, 24 samples, the x0 target, which converges
# in 3,000 steps at a peak learning rate of 1e-2 (measured; ~1 minute on 2 cores).
TEMPLATE_DEFAULTS = {"components": 8, "samples": 24, "image_size": 10, "steps": 3000,
                     "lr_peak": 1e-2, "target": "x0", "noise_draws": 4}


TEMPLATE_NOTES = {k: f"--model templates: {v}" for k, v in TEMPLATE_DEFAULTS.items()}


def apply_model_defaults(ctx, opts):
    """Replace option values left at their defaults by the template model's defaults."""
    if opts.get("model") != "templates":
        return opts
    from click.core import ParameterSource
    out = dict(opts)
    for name, value in TEMPLATE_DEFAULTS.items():
        if ctx.get_parameter_source(name) in (ParameterSource.DEFAULT, None):
            out[name] = value
    return out


def given_options(ctx):
    """Names of the parameters of ``ctx`` set explicitly (command line or environment),
    not left at their defaults."""
    from click.core import ParameterSource
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}


def option_label(ctx, name):
    """'--init-var' for the parameter ``name`` of the command of ``ctx``."""
    for p in ctx.command.params:
        if p.name == name:
            return max(p.opts, key=len) if p.opts else name
    return name  # pragma: no cover


def refuse_without_effect(ctx, rules):
    """Raise a one-line UsageError for the first option given explicitly where it would
    have no effect. ``rules``: (parameter names, whether they take effect here, why
    not) triples."""
    given = given_options(ctx)
    for names, applies, why in rules:
        for name in names:
            if name in given and not applies:
                raise click.UsageError(f"{option_label(ctx, name)} has no effect {why}; leave it out")


def config_rules(opts):
    """The options of :func:`optimization_options` and :func:`model_options` that only
    some settings use: (names, applies, why) for :func:`refuse_without_effect`.
    (--fused-kernels without cupy is refused by :func:`gmmdiff.training.loop.check_fused`.)"""
    init, model = opts.get("init"), opts.get("model", "gmm")
    tracked = str(opts.get("eval_steps", "")).strip() != "none"
    return [
        (("track_noise_draws",), tracked, "with --eval-steps none (nothing is evaluated along "
                                          "training)"),
        (("init_var",), init in ("pmem", "gaussian"),
         f"with --init {init} (the prior init takes the data variance)"),
        (("init_noise_var",), init == "pmem", f"with --init {init} (it perturbs pmem's means)"),
        (("gaussian_scale",), init == "gaussian", f"with --init {init} (it scales gaussian means)"),
        (("template_file", "image_size", "colors"), model == "templates",
         f"with --model {model} (they set the template model)"),
        (("dim",), model == "gmm", f"with --model {model} (the dimension is colors x image "
                                   "size squared)"),
        (("momentum", "nesterov"), opts.get("optimizer", "adam") == "momentum",
         f"with --optimizer {opts.get('optimizer', 'adam')} (they set --optimizer momentum)"),
    ]


def check_out(value, what="--out"):
    """Refuse an empty output path (it would mean the current directory)."""
    if value is not None and not str(value).strip():
        raise click.UsageError(f"{what} {value!r} is empty; give a path")
    return value


CONFIG_FIELDS = {f for f in TrainConfig.__dataclass_fields__}


def config_from_options(opts):
    """(TrainConfig, remaining options) from a click options dict."""
    fields = {k: v for k, v in opts.items() if k in CONFIG_FIELDS}
    rest = {k: v for k, v in opts.items() if k not in CONFIG_FIELDS}
    return TrainConfig(**fields).validate(), rest


def progress_callback(steps, quiet, label):
    """(callback, close) reporting training progress on stderr
    (:class:`gmmdiff.cli.progress.StepProgress`): click's bar on a terminal, otherwise a
    line every 30 s (``$GMMDIFF_PROGRESS_SECONDS``) with step, elapsed, ETA and mean
    loss. Nothing appears before the first logged step, so a command refused before
    training prints its one error line and nothing else; ``quiet``: nothing at all."""
    if quiet:
        return None, lambda: None
    from gmmdiff.cli.progress import StepProgress
    progress = StepProgress(steps, label)
    return progress, progress.close


def format_table(rows):
    """The per-model-size table printed by gmmdiff-train, with each size's convergence
    status (:mod:`gmmdiff.analysis.convergence`) where the run evaluated along
    training, and below it one line when sizes are still moving or never left their
    initialization."""
    from gmmdiff.analysis.convergence import run_verdict
    diverged = [r for r in rows if r.get("status") == "diverged"]
    rows = [r for r in rows if r.get("status") != "diverged"]
    tracked = bool(rows) and all("along_training" in r for r in rows)
    head = (f"{'M':>6} {'M/N':>6} {'mem. ratio':>10} {'95% interval':>15} {'variance':>10} "
            f"{'train loss':>11} {'test loss':>11}" + (f"  {'status':<9}" if tracked else ""))
    lines = [head, "-" * len(head)]
    for r in rows:
        lo, hi = r["memorization"]["interval"]
        lines.append(f"{r['M']:>6d} {r['M_over_N']:>6.2f} {r['memorization']['ratio']:>10.2f} "
                     f"{f'[{lo:.2f}, {hi:.2f}]':>15} {r['learned_variance']:>10.3g} "
                     f"{r['final_train_loss']:>11.4g} {r['final_test_loss']:>11.4g}"
                     + (f"  {r['along_training']['status']:<9}" if tracked else ""))
    if tracked:
        verdict = run_verdict([r["along_training"]["status"] for r in rows], [r["M"] for r in rows])
        if verdict:
            lines.append(verdict)
    for r in diverged:
        lines.append(f"M = {r['M']} diverged at step {r['diverged_at']}: no results ({r['reason']})")
    return "\n".join(line.rstrip() for line in lines)
