"""The named sweeps of ``gmmdiff-sweep --preset``: each preset's grids, model-size points
and the training settings that differ from :class:`gmmdiff.training.config.TrainConfig`'s
defaults, with the measurements that sized it. ``bin/gmmdiff-sweep`` fills a
:class:`gmmdiff.experiments.sweep.spec.SweepSpec` from them; options given explicitly
override a preset's values.
"""

# Named sweeps of gmmdiff-sweep --preset: the grids, model-size points and the training
# settings that differ from TrainConfig's defaults (50,000 steps, pmem init, the paper's
# schedule and 26-point grid in both).
#
# "cpu" is the paper's experiment at laptop sizes: 3 x 3 x 3 configurations x 2 seeds,
# sizes like the built-in default's (N = 20, d = 10, K = 2) and up, 10 noise draws like
# the built-in default. Chosen from measured step times (2-core CPU, 30 models per
# batch: ~0.1 ms per model-step at N = 20, d = 10 and ~0.4 ms at N = 40, d = 20) so that
# the sweep takes about an hour with --jobs 2: a coarse grid of 5 sizes (0.2N .. N)
# and 6 refinement sizes between the coarse start and end, about 10 trained sizes per
# configuration.
PRESETS = {
    "paper": dict(samples="50,100,150,200", dims="30,40,50,60", components="3,6,9,12",
                  seeds="0", coarse=10, refine=10, noise_draws=100),
    "cpu": dict(samples="20,30,40", dims="10,15,20", components="2,3,4", seeds="0,1",
                coarse=5, refine=6, noise_draws=10),
    # "svar" tests the one prediction the simple theory makes (M*/N moves with the data
    # variance s*, not with N, d or K): s* in {0.5, 1, 2} at 2 laptop settings (N = 20,
    # d = 10, K in {2, 3}), 5 seeds each, the cpu preset's protocol: 30 configurations in
    # 3 units (one per s*). Sized from timings measured on the shared 2-core machine
    # (2,000-step pilots: about 1 s of CPU per configuration at N = 20, 2.5x that with
    # the refinement sizes): about 1,900 CPU seconds, ~21 minutes with --jobs 2 on 2 idle
    # cores. (A first version with N in {20, 30} -- ~40 idle minutes -- ran at a quarter of
    # a core per worker on the machine shared with four other jobs and would have missed
    # its deadline; it was stopped after 9 minutes.)
    "svar": dict(samples="20", dims="10", components="2,3", seeds="0,1,2,3,4",
                 data_vars="0.5,1,2", coarse=5, refine=6, noise_draws=10),
    # "init" tests the theory's claim that the transition does not depend on where
    # training starts: the svar preset's settings at s* = 1, each from the paper's pmem
    # start and from the prior, paired by seed. From the prior the transition lies
    # beyond M = N (a pilot: M_pt/N 1.65 [1.38, 1.92] against pmem's 0.78), so the first
    # sizes run to 2N for both starts (pmem repeats training points beyond N).
    "init": dict(samples="20", dims="10", components="2,3", seeds="0,1,2,3,4",
                 inits="pmem,prior", size_ratios="0.2,0.4,0.6,0.8,1,1.2,1.4,1.6,1.8,2",
                 refine=6, noise_draws=10),
    # "time" measures the memorization-time law (gmmdiff.analysis.timelaw): fixed
    # ratios M/N = 1 and 2 from the prior start (the models must find the training
    # points), N from 10 to 80, 4 seeds, a constant learning rate after a 1% warm-up so
    # that a step means the same at every N, 31 evaluations along 30,000 steps. A pilot
    # (one seed, 100,000 steps) put the onsets near 5,000 steps at every N and the
    # ratios' plateaus at 0.2-0.4 (M/N = 1) and 0.5-0.8 (M/N = 2).
    "time": dict(samples="10,20,40,80", dims="10", components="2", seeds="0,1,2,3",
                 inits="prior", size_ratios="1,2", refine=0, noise_draws=10, steps=30_000,
                 lr_final=1e-3, warmup_frac=0.01, eval_steps="log:30"),
    # "quick" shows the transition, its fits and figures 3 and 7 in about 90 seconds on
    # 2 idle cores (--jobs 2; then --summary, gmmdiff-predict --fit, gmmdiff-plot): 8
    # settings x 2 seeds at N 16-24, d 8-12, with settings that converge in 8,000 steps,
    # the x0 target at a peak learning rate of 5e-3 (pilots at N = 24, d = 8: at 1e-2, 2
    # of 4 sizes near the transition stayed "moving", their variance jittering by ~10% in
    # the last 10% of steps; at 5e-3 none), 200 generated samples per size. Measured on
    # the shared 2-core machine: 206 s of CPU training (two workers), 74 s fitting the
    # four sources, 6 s of figures; 122 of the 128 sizes below N passed the convergence
    # check, M_pt/N 0.76-0.83 with intervals about 0.05 wide.
    "quick": dict(samples="16,24", dims="8,12", components="2,3", seeds="0,1", coarse=5,
                  refine=4, noise_draws=10, eval_samples=200, steps=8000, target="x0",
                  lr_peak=5e-3),
}
# The memorization-time law per training protocol (SPEC 12; gmmdiff.analysis.timelaw):
# one laboratory -- d = 10, K = 2, the prior start, M/N = 2 (plateaus of the ratio well
# above the 0.1 threshold), N from 10 to 160 (a factor 16), 4 seeds, 5 noise draws (half
# the time preset's: full batch at N = 160 is the cost of the whole experiment), a
# constant learning rate after a 1% warm-up, 31 evaluations -- trained four ways: the
# paper's full-batch Adam (lr 1e-3, the time preset's), full-batch gradient descent,
# and minibatches of B = 10 samples (at N = 10: full batch) with Adam and with heavy-ball
# momentum 0.9. One learning rate per protocol for every N, from pilots at N = 10 and
# 40 (M/N = 1, 30,000-60,000 steps): gradient descent at 1e-6 .. 3e-5 never left the
# prior start in 30,000 steps, at 1e-3 it reached the 0.1 threshold only near the end,
# at 1e-2 at ~3,500 steps (N = 10) and ~10,500 (N = 40) without diverging; momentum 0.9
# at 1e-3 (the same effective rate, 1e-3 / (1 - 0.9)) at ~3,400 steps (N = 10) and, with
# B = 10, ~10,500 (N = 40); minibatch Adam at 1e-3 at ~3,400 (N = 40). The descent
# protocols get 60,000 steps so that an onset growing like N still lands inside.
_TIME_PROTOCOL = dict(samples="10,20,40,80,160", dims="10", components="2", seeds="0,1,2,3",
                      inits="prior", size_ratios="2", refine=0, noise_draws=5, warmup_frac=0.01,
                      eval_steps="log:30")
PRESETS.update({
    "time-adam": dict(_TIME_PROTOCOL, steps=30_000, lr_peak=1e-3, lr_final=1e-3),
    "time-sgd": dict(_TIME_PROTOCOL, steps=60_000, optimizer="sgd", lr_peak=1e-2, lr_final=1e-2),
    "time-adam-b10": dict(_TIME_PROTOCOL, steps=60_000, lr_peak=1e-3, lr_final=1e-3, batch_size=10),
    "time-momentum-b10": dict(_TIME_PROTOCOL, steps=60_000, optimizer="momentum", momentum=0.9,
                              lr_peak=1e-3, lr_final=1e-3, batch_size=10),
})
# The size law under other optimizers: does the edge M_pt/N ~ 0.8 depend on how the
# models are trained? The built-in family (N = 20, d = 10, K = 2 and 3, seeds 0-3, the
# pmem start, the cpu preset's 5 coarse and 6 refinement sizes and 10 noise draws: the
# same configurations as the svar preset at s* = 1; size-adam trains them with full-batch
# Adam, the reference the others are paired with by seed), trained by full-batch gradient descent at 1e-3 with the
# paper's warmup-decay schedule over its 50,000 steps (pilots at N = 20, sizes 4..20,
# 100,000 steps: at 1e-3 no size diverged and the ratios had settled by step 15,000; at
# 1e-4 every size converged by the end; at 1e-5 sizes near the transition were still
# moving), and by Adam on minibatches of B = 5 (4 steps an epoch) over 50,000 steps.
_SIZE_FAMILY = dict(samples="20", dims="10", components="2,3", seeds="0,1,2,3", coarse=5,
                    refine=6, noise_draws=10)
PRESETS.update({
    "size-adam": dict(_SIZE_FAMILY, steps=50_000),      # the reference, with this version
    "size-sgd": dict(_SIZE_FAMILY, optimizer="sgd", lr_peak=1e-3, steps=50_000),
    "size-adam-b5": dict(_SIZE_FAMILY, batch_size=5, steps=50_000),
    # the initialization gap along training: 80,000 steps (1.6 times the init preset's)
    # at a constant learning rate, so that nothing stalls the movement at the end as the
    # init preset's decay did, both starts, 11 fixed sizes around both transitions,
    # K = 2 and 3 x 3 seeds, paired by seed
    "init-long": dict(samples="20", dims="10", components="2,3", seeds="0,1,2",
                      inits="pmem,prior",
                      size_ratios="0.5,0.6,0.7,0.8,0.9,1,1.2,1.4,1.6,1.8,2", refine=0,
                      noise_draws=10, steps=80_000, lr_final=1e-3, warmup_frac=0.01,
                      eval_steps="log:30"),
})


def _parse_inits(text):
    from gmmdiff.experiments.sweep.spec import parse_inits   # (spec reads no preset)
    return parse_inits(text)


def check_preset(name, given, settings):
    """Raise ValueError when an option given explicitly (``given``: their names;
    ``settings``: every option's value after the preset filled in the rest) removes what
    preset ``name``'s result is made from: a preset measured along training (``time``,
    ``time-*``, ``init-long``: evaluation steps at fixed ratios M/N) needs its
    evaluations and no refinement, a preset of several starts (``init``, ``init-long``)
    two starts or more."""
    preset = PRESETS[name]
    along = "eval_steps" in preset and preset.get("refine") == 0
    if along and "eval_steps" in given and str(settings["eval_steps"]).strip() == "none":
        raise ValueError(f"--eval-steps none with --preset {name}: its result is measured from "
                         "the evaluations along training; leave --eval-steps out (the preset's "
                         f"{preset['eval_steps']}) or give other steps")
    if along and "refine" in given and settings["refine"] != 0:
        raise ValueError(f"--refine {settings['refine']} with --preset {name}: its result is "
                         "measured at the fixed ratios M/N, without refinement; leave --refine out")
    several = "inits" in preset and len(_parse_inits(preset["inits"])) > 1
    if several and "inits" in given and len(_parse_inits(settings["inits"])) < 2:
        raise ValueError(f"--inits {settings['inits']} with --preset {name}: the initialization "
                         "experiment compares two starts or more, e.g. pmem,prior")
