"""How often the verdict's bootstrap interval covers the truth, against the number of
held-out settings G: the measurement behind gmmdiff.analysis.verdict.MIN_SETTINGS.

The verdict (gmmdiff.analysis.verdict.paired_verdict) takes per held-out setting the
mean difference of squared errors (predictor - trivial predictor) and a percentile
bootstrap 95% interval of their mean over settings. For each G this draws many sets of
G per-setting differences whose true mean is known, computes the interval as the
verdict does (bootstrap_interval: 4,000 resamples), and counts how often it holds the
true mean (coverage; nominal 95%), and how often it lies wholly below it (a false
"beats trivial" when the truth is a tie) or above it. Shapes of the differences:

- normal: N(0, 1) per setting, the textbook case;
- squared error: this laboratory's pipeline simulated -- settings of 2 seeds, true
  M_pt/N 0.8 + N(0, 0.005^2) per setting, measurement noise N(0, 0.018^2) per seed
  (the CPU sweep's noise floor, 0.00032), the trivial predictor the mean of the other
  settings, a predictor off by N(0, 0.025^2) per setting (held-out MSE about 0.0009,
  as the shipped fits'): differences of squares, skewed like a chi-square;
- shipped mc / expected / nearest: the 27 per-setting held-out differences of the
  shipped CPU-sweep fits (gmmdiff/assets/cpu_sweep) of that source, resampled: the
  shapes this package's own verdicts rest on.

    python benchmarks/bench_verdict_coverage.py                 # 2,000 trials per cell
    python benchmarks/bench_verdict_coverage.py --trials 500 --settings 1,2,3,10

The minimum printed at the end is the smallest G from which the coverage is at least
--target (0.85) in every shape but "squared error" (reported beside it: a predictor
whose error per setting dominates the differences is the worst case) at every G
measured from there on.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gmmdiff.analysis.fit_files import SHIPPED  # noqa: E402
from gmmdiff.analysis.verdict import MIN_SETTINGS, bootstrap_interval  # noqa: E402


def normal(rng, G):
    return rng.standard_normal(G)


def squared_error(rng, G, seeds=2, between=0.005, noise=0.018, predictor=0.025):
    mu = 0.8 + between * rng.standard_normal(G)                          # (G,) true M_pt/N
    y = mu[:, None] + noise * rng.standard_normal((G, seeds))             # (G, S) measured
    total = y.sum()
    trivial = ((total - y.sum(axis=1)) / (seeds * (G - 1)) if G > 1     # the other settings' mean
               else np.full(G, 0.8))
    pred = mu + predictor * rng.standard_normal(G)                       # (G,)
    return ((pred[:, None] - y) ** 2 - (trivial[:, None] - y) ** 2).mean(axis=1)


def shipped(source):
    """(draw, population mean) for the per-setting differences of a shipped fit."""
    fit = json.load(open(os.path.join(SHIPPED, f"fit_{source}.json")))
    m = np.asarray(fit["measured"])
    d = (np.asarray(fit["cv_predicted"]) - m) ** 2 - (np.asarray(fit["trivial_cv_predicted"]) - m) ** 2
    settings = [tuple(s) for s in fit["settings"]]
    per = np.array([d[[i for i, s in enumerate(settings) if s == u]].mean()
                    for u in sorted(set(settings))])                      # (27,)
    return (lambda rng, G: per[rng.integers(0, per.size, G)]), float(per.mean())


def coverage(draw, G, trials, seed, truth=None):
    """(coverage, fraction wholly below the truth, fraction wholly above)."""
    rng = np.random.default_rng(seed)
    sets = [draw(rng, G) for _ in range(trials)]
    if truth is None:                       # the mean difference's expectation at this G
        truth = float(np.mean([s.mean() for s in sets]))
    below = above = 0
    for k, per in enumerate(sets):
        lo, hi = bootstrap_interval(per, seed=seed * 100003 + k)
        below += hi < truth
        above += lo > truth
    return 1 - (below + above) / trials, below / trials, above / trials


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--settings", default="1,2,3,4,5,6,7,8,9,10,12,15,20,27,40")
    p.add_argument("--target", type=float, default=0.85)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    Gs = [int(g) for g in args.settings.split(",")]
    shapes = {"normal": (normal, 0.0), "squared error": (squared_error, None)}
    for src in ("mc", "expected", "nearest"):
        shapes[f"shipped {src}"] = shipped(src)
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else "?"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load}; "
          f"{args.trials} trials per cell, 95% percentile bootstrap (4,000 resamples); "
          f"MIN_SETTINGS now {MIN_SETTINGS}")
    print("coverage of the 95% interval [fraction wholly below the truth: a false 'beats']")
    print(f"{'G':>3}  " + "  ".join(f"{name:>17}" for name in shapes))
    table, t0 = {}, time.perf_counter()
    for G in Gs:
        row = []
        for k, (name, (draw, truth)) in enumerate(shapes.items()):
            c, below, _ = coverage(draw, G, args.trials, seed=args.seed + 1000 * G + k, truth=truth)
            table[G, name] = c
            row.append(f"{c:6.3f} [{below:5.3f}]")
        print(f"{G:>3}  " + "  ".join(f"{cell:>17}" for cell in row), flush=True)
    judged = [name for name in shapes if name != "squared error"]
    ok = [G for G in Gs if all(table[g, n] >= args.target for g in Gs if g >= G for n in judged)]
    print(f"minimum: {min(ok) if ok else 'none'} settings (coverage >= {args.target:g} from there on "
          f"in {', '.join(judged)}); {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
