#!/usr/bin/env python3
"""Time one optimizer step against the batch size B: per-step cost must follow B, not N.

At N = 640 (d = 10, K = 2, the prior start, 10 noise draws, sizes M = 64, 320 and 640
trained together), one training run per batch size and repeat, batch sizes interleaved
within each repeat so that the machine's load falls on all of them alike; steady-state
steps only (the run's first 20 steps are warm-up). Prints ms per step (median over the
repeats, with the spread), ms per sample-row (ms / (B n)) and the ratio to full batch,
for Adam and for momentum (the array-code step), with the machine's load average.

    python benchmarks/bench_minibatch.py [--repeats 3] [--steps 200] [--json PATH]
"""
import argparse
import json
import os
import platform
import time

import numpy as np

from gmmdiff.training.config import TrainConfig
from gmmdiff.training.loop import train
from gmmdiff.training.state import initial_state

N, SIZES, BATCHES = 640, [64, 320, 640], [10, 40, 160, 640]


def step_ms(cfg, steps, warm=20):
    """ms per optimizer step of ``steps`` steps after ``warm`` of warm-up."""
    ds = cfg.dataset()
    marks = []

    def tick(step, losses):
        marks.append((step, time.perf_counter()))
    train(ds, initial_state(ds, SIZES, cfg, np), cfg, np, log_every=1, callback=tick)
    (s0, a), (s1, b) = marks[warm - 1], marks[-1]
    return (b - a) / (s1 - s0) * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    print(f"N = {N}, sizes {SIZES}, d = 10, 10 noise draws; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    for opt in ("adam", "momentum"):
        times = {B: [] for B in BATCHES}
        for _ in range(args.repeats):
            for B in BATCHES:                                # interleaved
                cfg = TrainConfig(dim=10, components=2, samples=N, steps=args.steps, noise_draws=10,
                                  init="prior", eval_steps="none", optimizer=opt,
                                  lr_peak=1e-3 if opt == "adam" else 1e-4, batch_size=B).validate()
                times[B].append(step_ms(cfg, args.steps))
        full = float(np.median(times[N]))
        print(f"{opt}: {'B':>5} {'ms/step':>9} {'(min-max)':>15} {'us/row':>8} {'of full batch':>14}")
        for B in BATCHES:
            med = float(np.median(times[B]))
            print(f"{'':<{len(opt) + 1}} {B:>5} {med:>9.2f} {f'({min(times[B]):.2f}-{max(times[B]):.2f})':>15} "
                  f"{med / (B * 10) * 1e3:>8.2f} {med / full:>14.3f}")
            rows.append({"optimizer": opt, "B": B, "ms_per_step": med, "all": times[B]})
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
