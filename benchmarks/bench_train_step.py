#!/usr/bin/env python3
"""Time one training step: the batched path (all sizes in one array program) beside
the one-model-at-a-time loop, in the same run.

Prints ms per step, model-steps per second, an estimate of achieved FLOP/s (the five
(rows x components x d) matrix products of a step, 2 flops per multiply-add), peak
host memory, the device and versions, and the projected wall time of the paper's
64-configuration sweep (about 20 sizes x 50,000 steps each) at the measured rate.

    python benchmarks/bench_train_step.py                      # CPU, small shapes
    python benchmarks/bench_train_step.py --paper              # the issue's standard shapes
    python benchmarks/bench_train_step.py --backend cupy --paper

GPU timings use CUDA events through cupyx.profiler.benchmark (never wall clock around
asynchronous work).
"""
import argparse
import platform
import resource
import time

import numpy as np

from gmmdiff.backend import backend_name, get_xp
from gmmdiff.train import TrainConfig, initial_state, train

SMALL = [(10, 2, 20, 10, 10)]                       # (d, K, N, noise draws, sizes)
PAPER = [(50, 12, 200, 100, 20), (60, 12, 200, 100, 20), (30, 3, 50, 100, 20)]


def step_flops(sizes, N, n, d):
    B = N * n
    return sum(5 * 2 * B * M * d for M in sizes)


def time_steps(cfg, sizes, xp, steps, repeats):
    """Median seconds per step of ``steps`` optimizer steps (after one warm-up step)."""
    ds = cfg.dataset(xp)
    state = initial_state(ds, sizes, cfg, xp)
    warm = TrainConfig(**{**cfg.__dict__, "steps": 1})
    train(ds, state, warm, xp)
    if backend_name(xp) == "cupy":  # pragma: no cover - GPU only
        from cupyx.profiler import benchmark
        res = benchmark(lambda: train(ds, initial_state(ds, sizes, cfg, xp), cfg, xp),
                        n_repeat=repeats, n_warmup=1)
        return float(np.median(res.gpu_times)) / steps
    times = []
    for _ in range(repeats):
        state = initial_state(ds, sizes, cfg, xp)
        t0 = time.perf_counter()
        train(ds, state, cfg, xp)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    ap.add_argument("--dtype", default="both", choices=["float64", "float32", "both"])
    ap.add_argument("--paper", action="store_true", help="the issue's standard shapes")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-loop", action="store_true", help="skip the one-at-a-time loop")
    args = ap.parse_args()
    xp = get_xp(args.backend)
    shapes = PAPER if args.paper else SMALL
    steps = args.steps or (2 if args.paper else 200)
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    print(f"# gmmdiff benchmark: backend {args.backend}, numpy {np.__version__}, "
          f"python {platform.python_version()}, {platform.processor() or platform.machine()}")
    if args.backend == "cupy":  # pragma: no cover
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        print(f"# device {props['name'].decode()}, cupy {cupy.__version__}")
    print(f"{'d':>3} {'K':>3} {'N':>4} {'draws':>5} {'sizes':>5} {'dtype':>7} {'path':>8} "
          f"{'ms/step':>10} {'model-steps/s':>14} {'GFLOP/s':>8} {'sweep h':>8}")
    for d, K, N, n, J in shapes:
        sizes = sorted({max(1, int(round(N * k / J))) for k in range(1, J + 1)})
        for dt in dtypes:
            cfg = TrainConfig(dim=d, components=K, samples=N, noise_draws=n, steps=steps, dtype=dt)
            rows = [("batched", sizes, time_steps(cfg, sizes, xp, steps, args.repeats))]
            if not args.no_loop:
                loop = sum(time_steps(cfg, [M], xp, steps, args.repeats) for M in sizes)
                rows.append(("loop", sizes, loop))
            for path, sz, sec in rows:
                rate = len(sz) / sec
                gflops = step_flops(sz, N, n, d) / sec / 1e9
                sweep_h = 64 * 20 * 50_000 / rate / 3600
                print(f"{d:>3} {K:>3} {N:>4} {n:>5} {len(sz):>5} {dt:>7} {path:>8} "
                      f"{sec * 1e3:>10.2f} {rate:>14.1f} {gflops:>8.2f} {sweep_h:>8.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# peak host memory {peak:.0f} MiB")
    if args.backend == "cupy":  # pragma: no cover
        import cupy
        pool = cupy.get_default_memory_pool()
        print(f"# GPU memory pool: {pool.total_bytes() / 2**30:.2f} GiB held "
              f"({pool.used_bytes() / 2**30:.2f} GiB in use at the end)")


if __name__ == "__main__":
    main()
