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
    python benchmarks/bench_train_step.py --seeds 10          # 10 seeds x 10 sizes per batch
    python benchmarks/bench_train_step.py --backend cupy --paper --fused

With ``--seeds S`` a batch holds S configurations (seeds 0..S-1) x the sizes, as a sweep
groups them; the loop still trains one model at a time. ``--fused`` adds rows for the
fused CUDA kernels (:mod:`gmmdiff.kernels`) beside the plain cupy array program.

GPU timings use CUDA events through cupyx.profiler.benchmark (never wall clock around
asynchronous work).

``--roofline`` (numpy) prints ms/step at the three standard shapes (default, middle,
paper) beside a lower bound from a roofline it measures in the same run (GEMM, exp,
memory, normal draws) and their ratio, float64 and float32; ``--old PATH`` times an
older checkout interleaved with this one (see ``benchmarks/roofline.py``)::

    git worktree add /tmp/old21 6540a89
    python benchmarks/bench_train_step.py --roofline --old /tmp/old21 --repeats 3

``--launches`` prints kernel launches, device syncs and host-to-device copies per
optimizer step and per draw chunk, for the batch shapes given, plain and fused,
counted by the CuPy stand-in of tests/cupy_standin (which stands in for CuPy where no
GPU is present; the counting model is in its docstring)::

    python benchmarks/bench_train_step.py --launches            # CPU only, seconds
"""
import argparse
import dataclasses
import platform
import resource
import time

import numpy as np

from gmmdiff.backend import backend_name, get_xp
from gmmdiff.config import TrainConfig
from gmmdiff.state import initial_state
from gmmdiff.train import train

SMALL = [(10, 2, 20, 10, 10)]                       # (d, K, N, noise draws, sizes)
PAPER = [(50, 12, 200, 100, 20), (60, 12, 200, 100, 20), (30, 3, 50, 100, 20)]


def step_flops(sizes, N, n, d):
    B = N * n
    return sum(5 * 2 * B * M * d for M in sizes)


def time_steps(cfg, sizes, xp, steps, repeats, seeds=1, fused=False):
    """Median seconds per step of ``steps`` optimizer steps (after one warm-up step) for
    a batch of ``seeds`` configurations x ``sizes``."""
    cfgs = [dataclasses.replace(cfg, seed=s) for s in range(seeds)]
    dss = [c.dataset(xp) for c in cfgs]
    all_sizes = [M for _ in cfgs for M in sizes]
    owners = [o for o in range(seeds) for _ in sizes]

    def go(c):
        state = initial_state(dss, all_sizes, c, xp, owners=owners)
        return train(dss, state, c, xp, fused=fused, log_every=c[0].steps)   # syncs once, at the end

    go([dataclasses.replace(c, steps=1) for c in cfgs])                 # warm-up, compiles
    if backend_name(xp) == "cupy":  # pragma: no cover - GPU only
        from cupyx.profiler import benchmark
        res = benchmark(lambda: go(cfgs), n_repeat=repeats, n_warmup=1)
        return float(np.median(res.gpu_times)) / steps
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        go(cfgs)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / steps


def launch_counts(cp, cfg, sizes, fused, seeds=1, chunk_steps=8, site_category="launch"):
    """Events of training on the CuPy stand-in ``cp``: ``(S, {category: (per step, per
    draw chunk)}, per-step launches by (site, op))`` for a batch of ``seeds``
    configurations x ``sizes``, drawing chunks of S = ``chunk_steps`` steps (on a GPU S
    follows free memory, :func:`gmmdiff.draws.device_chunk_steps`; the counts per chunk
    do not depend on it); per step = (4 steps - 2 steps) / 2 and per chunk =
    (S + 1 steps - S steps) - per step, both inside the loop (log_every beyond the end).
    Categories: launch, sync, h2d (events), alloc and copy (bytes); the per-step
    breakdown is of ``site_category``."""
    from gmmdiff import draws
    cfgs = [dataclasses.replace(cfg, seed=s) for s in range(seeds)]
    all_sizes = [M for _ in cfgs for M in sizes]
    owners = [o for o in range(seeds) for _ in sizes]
    S = chunk_steps
    if S < 4:
        raise ValueError(f"draw chunks of {S} steps: per-step counts need at least 4")

    def counts(steps):
        cs = [dataclasses.replace(c, steps=steps) for c in cfgs]
        dss = [c.dataset(cp) for c in cs]
        state = initial_state(dss, all_sizes, cs, cp, owners=owners)
        with cp._standin.counting() as c:
            train(dss, state, cs, cp, log_every=10**9, fused=fused)
        return c

    saved = draws.device_chunk_steps
    draws.device_chunk_steps = lambda *args, **kwargs: S
    try:
        c2, c4, cS, cS1 = (counts(k) for k in (2, 4, S, S + 1))
    finally:
        draws.device_chunk_steps = saved
    out = {}
    for cat in ("launch", "sync", "h2d", "alloc", "copy"):
        step = (c4.total(cat) - c2.total(cat)) / 2
        out[cat] = (step, cS1.total(cat) - cS.total(cat) - step)
    sites = c4.by_site_op(site_category)
    sites.subtract(c2.by_site_op(site_category))
    return S, out, {k: v / 2 for k, v in sites.items() if v}


def print_launches(shapes, seeds):
    """Per step and per chunk counts from the stand-in, with draw chunks of 8 steps
    (the counts do not depend on array sizes; the number of size buckets does); this
    process re-runs itself with the stand-in first on its path (it must be there before
    gmmdiff imports cupy)."""
    import os
    import sys
    standin = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "tests", "cupy_standin")
    if os.environ.get("GMMDIFF_BENCH_STANDIN") != "1":
        env = dict(os.environ, GMMDIFF_BENCH_STANDIN="1",
                   PYTHONPATH=os.pathsep.join([standin] + [p for p in os.environ.get(
                       "PYTHONPATH", "").split(os.pathsep) if p]))
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)
    import cupy
    if not getattr(cupy, "STANDIN", False):
        raise SystemExit("--launches counts with the CuPy stand-in; a real CuPy was imported")
    print(f"{'d':>3} {'K':>3} {'N':>4} {'draws':>5} {'models':>6} {'path':>6} {'launch/step':>11} "
          f"{'launch/chunk':>12} {'chunk steps':>11} {'sync/step':>9} {'h2d/step':>8}")
    for d, K, N, n, J in shapes:
        sizes = sorted({max(1, int(round(N * k / J))) for k in range(1, J + 1)})
        cfg = TrainConfig(dim=d, components=K, samples=N, noise_draws=n)
        for fused in (False, True):
            S, per, _ = launch_counts(cupy, cfg, sizes, fused, seeds)
            print(f"{d:>3} {K:>3} {N:>4} {n:>5} {len(sizes) * seeds:>6} {'fused' if fused else 'plain':>6} "
                  f"{per['launch'][0]:>11g} {per['launch'][1]:>12g} {S:>11d} {per['sync'][0]:>9g} "
                  f"{per['h2d'][0]:>8g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    ap.add_argument("--dtype", default="both", choices=["float64", "float32", "both"])
    ap.add_argument("--paper", action="store_true", help="the issue's standard shapes")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-loop", action="store_true", help="skip the one-at-a-time loop")
    ap.add_argument("--seeds", type=int, default=1, help="configurations per batch")
    ap.add_argument("--fused", action="store_true", help="cupy: also time the fused kernels")
    ap.add_argument("--launches", action="store_true",
                    help="count launches, syncs and copies with the CuPy stand-in instead of timing")
    ap.add_argument("--roofline", action="store_true",
                    help="numpy: ms/step at the three standard shapes beside a lower bound from "
                         "a roofline measured in the same run (benchmarks/roofline.py)")
    ap.add_argument("--old", default=None, metavar="PATH",
                    help="with --roofline: also time the checkout at PATH, interleaved")
    ap.add_argument("--shapes", type=int, nargs="+", default=None, metavar="I",
                    help="with --roofline: only these shapes (0 default, 1 middle, 2 paper)")
    args = ap.parse_args()
    if args.roofline:
        import roofline
        roofline.main(args)
        return
    if args.launches:
        print_launches(PAPER if args.paper else SMALL, args.seeds)
        return
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
    print(f"{'d':>3} {'K':>3} {'N':>4} {'draws':>5} {'models':>6} {'dtype':>7} {'path':>8} "
          f"{'ms/step':>10} {'model-steps/s':>14} {'GFLOP/s':>8} {'sweep h':>8}")
    for d, K, N, n, J in shapes:
        sizes = sorted({max(1, int(round(N * k / J))) for k in range(1, J + 1)})
        for dt in dtypes:
            cfg = TrainConfig(dim=d, components=K, samples=N, noise_draws=n, steps=steps, dtype=dt)
            S = args.seeds
            models = len(sizes) * S
            rows = [("batched", time_steps(cfg, sizes, xp, steps, args.repeats, S))]
            if args.fused:
                rows.append(("fused", time_steps(cfg, sizes, xp, steps, args.repeats, S, True)))
            if not args.no_loop:
                loop = sum(time_steps(dataclasses.replace(cfg, seed=s), [M], xp, steps, args.repeats)
                           for s in range(S) for M in sizes)
                rows.append(("loop", loop))
            for path, sec in rows:
                rate = models / sec
                gflops = S * step_flops(sizes, N, n, d) / sec / 1e9
                sweep_h = 64 * 20 * 50_000 / rate / 3600
                print(f"{d:>3} {K:>3} {N:>4} {n:>5} {models:>6} {dt:>7} {path:>8} "
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
