"""The cost of evaluation along training: the built-in configuration (or another)
trained with --eval-steps none and with the default, in turn, in one process.

Prints per repeat the wall time of training alone, of training with the evaluations, and
the time spent inside the evaluations (measured around each call), then the medians and
the evaluations' share of training time. The final evaluation (after the last step, the
same with or without) is not part of either.

    python benchmarks/bench_tracking.py                 # built-in: 50,000 steps, 10 sizes
    python benchmarks/bench_tracking.py --steps 5000 --repeats 5
"""
import argparse
import dataclasses
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gmmdiff.experiments.runs import _tracker  # noqa: E402
from gmmdiff.training.config import TrainConfig, eval_step_list  # noqa: E402
from gmmdiff.training.loop import train  # noqa: E402
from gmmdiff.training.state import initial_state  # noqa: E402


def one(cfg, sizes, tracked):
    """(wall seconds of training, seconds inside the evaluations)."""
    ds = cfg.dataset(np)
    state = initial_state(ds, sizes, cfg, np)
    inside = [0.0]
    on_eval = None
    if tracked:
        track = _tracker(cfg.family(), state, [cfg], [ds], np)

        def on_eval(step, params):
            t = time.perf_counter()
            out = track(step, params)
            inside[0] += time.perf_counter() - t
            return out
    t = time.perf_counter()
    train(ds, state, cfg, np, on_eval=on_eval)
    return time.perf_counter() - t, inside[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--eval-steps", default=TrainConfig.eval_steps)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    cfg = dataclasses.replace(TrainConfig(), steps=args.steps, eval_steps=args.eval_steps).validate()
    sizes = [2 * k for k in range(1, 11)]
    points = eval_step_list(cfg.eval_steps, cfg.steps)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; built-in "
          f"configuration, {cfg.steps:,} steps, {len(sizes)} sizes, {len(points)} evaluations "
          f"({cfg.eval_steps}), {cfg.eval_samples} samples and {cfg.track_noise_draws} noise "
          "draws each")
    plain, tracked, inside = [], [], []
    for r in range(args.repeats):
        a, _ = one(cfg, sizes, False)
        b, e = one(cfg, sizes, True)
        plain.append(a)
        tracked.append(b)
        inside.append(e)
        print(f"repeat {r}: training {a:.2f} s; with evaluations {b:.2f} s, of which "
              f"{e:.2f} s inside them ({e / len(points) / len(sizes) * 1e3:.1f} ms per model "
              "and step)")
    a, b, e = (float(np.median(v)) for v in (plain, tracked, inside))
    print(f"median: training {a:.2f} s, with evaluations {b:.2f} s (+{(b - a) / a:.1%}); "
          f"inside the evaluations {e:.2f} s = {e / a:.1%} of training")


if __name__ == "__main__":
    main()
