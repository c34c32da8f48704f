#!/usr/bin/env python3
"""Time one training step: the batched path (all sizes in one array program) beside
the one-model-at-a-time loop, in the same run.

Prints ms per step (device and host), model-steps per second, an estimate of achieved
FLOP/s (the five (rows x components x d) matrix products of a step, 2 flops per
multiply-add), peak GPU memory-pool bytes, peak host memory, the device and versions,
and the projected wall time of the paper's 64-configuration sweep (about 20 sizes x
50,000 steps each) at the measured rate.

    python benchmarks/bench_train_step.py                      # CPU, small shapes
    python benchmarks/bench_train_step.py --paper              # the issue's standard shapes
    python benchmarks/bench_train_step.py --backend cupy --paper
    python benchmarks/bench_train_step.py --seeds 10          # 10 seeds x 10 sizes per batch
    python benchmarks/bench_train_step.py --backend cupy --paper --fused

With ``--seeds S`` a batch holds S configurations (seeds 0..S-1) x the sizes, as a sweep
groups them; the loop still trains one model at a time. ``--fused`` adds rows for the
fused CUDA kernels (:mod:`gmmdiff.engine.kernels`) beside the plain cupy array program.

What is timed: steady-state optimizer steps only. Each repeat is one training run;
the boundary of every step is marked as training asks for its draws (host clock, and on
cupy a CUDA event recorded on the stream, never a synchronization inside the loop).
Set-up (data, initial state, draw streams), compilation and the whole first draw chunk
are warm-up; on cupy the run lasts at least three chunks, so the peak memory of the
memory pool includes a second live chunk, and the steps that also launch the next
chunk's draws are reported apart ("draw ms"). Per step: device time (CUDA events; on
numpy the host clock) beside host time (how long Python took to issue the step: above
the device time, the run is launch-bound). ``--json PATH`` writes the rows too.

``--roofline`` (numpy) prints ms/step at the three standard shapes (default, middle,
paper) beside a lower bound from a roofline it measures in the same run (GEMM, exp,
memory, normal draws) and their ratio, float64 and float32; ``--old PATH`` times an
older checkout interleaved with this one (see ``benchmarks/roofline.py``)::

    git worktree add /tmp/old21 6540a89
    python benchmarks/bench_train_step.py --roofline --old /tmp/old21 --repeats 3

``--launches`` prints kernel launches, device syncs, host-to-device copies and the
bytes allocated and copied (with CuPy's own hidden temporaries) per optimizer step and
per draw chunk, for the batch shapes given, plain and fused,
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

from gmmdiff.training import draws as draws_module
from gmmdiff.training import loop as train_module
from gmmdiff.backend import backend_name, get_xp
from gmmdiff.training.config import TrainConfig
from gmmdiff.training.state import initial_state
from gmmdiff.training.loop import train

SMALL = [(10, 2, 20, 10, 10)]                       # (d, K, N, noise draws, sizes)
PAPER = [(50, 12, 200, 100, 20), (60, 12, 200, 100, 20), (30, 3, 50, 100, 20)]


def step_flops(sizes, N, n, d):
    B = N * n
    return sum(5 * 2 * B * M * d for M in sizes)


class _MarkedDraws(draws_module.BatchDraws):
    """:class:`gmmdiff.training.draws.BatchDraws` that marks the boundary of every step as
    training asks for it: the host clock and, on cupy, a CUDA event recorded on the
    stream (asynchronous: no synchronization inside the loop). Mark k is taken when step
    k's draws are handed out, before its work is issued; the last mark after the last
    step's work. The draws themselves are unchanged."""
    last = None

    def steps(self, start, stop, **kwargs):
        rec = _MarkedDraws.last = {"S": self.S, "start": start, "host": [], "events": []}
        cupy_events = self.xp is not np

        def mark():
            rec["host"].append(time.perf_counter())
            if cupy_events:  # pragma: no cover - GPU (the stand-in's events use the host clock)
                ev = self.xp.cuda.Event()
                ev.record()
                rec["events"].append(ev)

        gen = super().steps(start, stop, **kwargs)
        try:
            for item in gen:
                mark()
                yield item
            mark()
        finally:
            gen.close()


def step_times(rec, xp, warmup):
    """Per-step seconds from the marks of :class:`_MarkedDraws`: ``(device (n,), host
    (n,), draw_steps (m,))`` for the steady-state steps k >= ``warmup`` whose interval
    holds no draw of a new chunk (on cupy: the step before a chunk starts carries the
    next chunk's draw kernels, reported apart as ``draw_steps``; on numpy draws are
    made ahead on a second thread and every step counts), the last step excluded (it
    syncs the final losses)."""
    host = np.diff(np.asarray(rec["host"]))                               # (steps,)
    if rec["events"]:  # pragma: no cover - GPU
        rec["events"][-1].synchronize()
        dev = np.array([xp.cuda.get_elapsed_time(a, b) / 1e3
                        for a, b in zip(rec["events"][:-1], rec["events"][1:])])
    else:
        dev = host
    k = rec["start"] + np.arange(host.shape[0])
    S = rec["S"]
    draws_next = ((k + 1) % S == 0) if xp is not np else np.zeros(k.shape, dtype=bool)
    keep = (k >= warmup) & (k < k[-1]) & ~draws_next
    return dev[keep], host[keep], dev[(k >= warmup) & draws_next & (k < k[-1])]


def time_steps(cfg, sizes, xp, steps, repeats, seeds=1, fused=False):
    """Steady-state step times of a batch of ``seeds`` configurations x ``sizes``: one
    training run per repeat of at least ``steps`` steps and, on cupy, across at least two
    draw-chunk boundaries after the first chunk (set-up, compilation and the first chunk
    are warm-up and not timed). Returns a dict: median device and host seconds per
    step, the draw chunk steps S, steps timed, median seconds of a step that also draws
    the next chunk, and on cupy the memory pool's peak bytes."""
    cfgs = [dataclasses.replace(cfg, seed=s) for s in range(seeds)]
    dss = [c.dataset(xp) for c in cfgs]
    all_sizes = [M for _ in cfgs for M in sizes]
    owners = [o for o in range(seeds) for _ in sizes]
    cupy = backend_name(xp) == "cupy"
    if cupy:
        per_step = cfg.samples * cfg.noise_draws * (cfg.dim + 1)
        S = draws_module.device_chunk_steps(len(all_sizes), per_step, xp)
    else:
        S = draws_module.draw_chunk_steps(cfg.samples, cfg.noise_draws, cfg.dim)
    warmup = S if cupy else min(S, 2)
    total = max(steps + warmup, 3 * S + 2) if cupy else steps + warmup + 1
    run_cfgs = [dataclasses.replace(c, steps=total) for c in cfgs]
    pool = xp.get_default_memory_pool() if cupy else None
    dev, host, draw = [], [], []
    saved = train_module.BatchDraws
    train_module.BatchDraws = _MarkedDraws
    try:
        for _ in range(repeats):
            if pool is not None:
                pool.free_all_blocks()
            state = initial_state(dss, all_sizes, run_cfgs, xp, owners=owners)
            train(dss, state, run_cfgs, xp, fused=fused, log_every=total)  # syncs at the end
            d, h, w = step_times(_MarkedDraws.last, xp, warmup)
            dev.append(d), host.append(h), draw.append(w)
    finally:
        train_module.BatchDraws = saved
    dev, host, draw = (np.concatenate(a) for a in (dev, host, draw))
    return {"device": float(np.median(dev)), "host": float(np.median(host)),
            "S": _MarkedDraws.last["S"], "timed": int(dev.size),
            "draw": float(np.median(draw)) if draw.size else float("nan"),
            "peak": pool.total_bytes() if pool is not None else None}


def launch_counts(cp, cfg, sizes, fused, seeds=1, chunk_steps=8, site_category="launch"):
    """Events of training on the CuPy stand-in ``cp``: ``(S, {category: (per step, per
    draw chunk)}, per-step launches by (site, op))`` for a batch of ``seeds``
    configurations x ``sizes``, drawing chunks of S = ``chunk_steps`` steps (on a GPU S
    follows free memory, :func:`gmmdiff.training.draws.device_chunk_steps`; the counts per chunk
    do not depend on it); per step = (4 steps - 2 steps) / 2 and per chunk =
    (S + 1 steps - S steps) - per step, both inside the loop (log_every beyond the end).
    Categories: launch, sync, h2d (events), alloc and copy (bytes); the per-step
    breakdown is of ``site_category``."""
    from gmmdiff.training import draws
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
          f"{'launch/chunk':>12} {'chunk steps':>11} {'sync/step':>9} {'h2d/step':>8} "
          f"{'alloc MB/step':>13} {'copy MB/step':>12}")
    for d, K, N, n, J in shapes:
        sizes = sorted({max(1, int(round(N * k / J))) for k in range(1, J + 1)})
        cfg = TrainConfig(dim=d, components=K, samples=N, noise_draws=n)
        for fused in (False, True):
            S, per, _ = launch_counts(cupy, cfg, sizes, fused, seeds)
            print(f"{d:>3} {K:>3} {N:>4} {n:>5} {len(sizes) * seeds:>6} {'fused' if fused else 'plain':>6} "
                  f"{per['launch'][0]:>11g} {per['launch'][1]:>12g} {S:>11d} {per['sync'][0]:>9g} "
                  f"{per['h2d'][0]:>8g} {per['alloc'][0] / 1e6:>13.3f} {per['copy'][0] / 1e6:>12.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    ap.add_argument("--dtype", default="both", choices=["float64", "float32", "both"])
    ap.add_argument("--paper", action="store_true", help="the issue's standard shapes")
    ap.add_argument("--steps", type=int, default=None,
                    help="steady-state steps to time per repeat (cupy: at least enough to "
                         "cross two draw-chunk boundaries after the warm-up chunk)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-loop", action="store_true", help="skip the one-at-a-time loop")
    ap.add_argument("--seeds", type=int, default=1, help="configurations per batch")
    ap.add_argument("--fused", action="store_true", help="cupy: also time the fused kernels")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--noise-draws", type=int, default=None,
                    help="with --launches: noise draws per sample instead of the shapes' own "
                         "(row counts scale every per-step byte count linearly)")
    ap.add_argument("--first-shape", action="store_true",
                    help="only the first shape of the list (--paper: d=50, K=12, N=200)")
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
        shapes = (PAPER if args.paper else SMALL)[:1 if args.first_shape else None]
        if args.noise_draws:
            shapes = [(d, K, N, args.noise_draws, J) for d, K, N, _, J in shapes]
        print_launches(shapes, args.seeds)
        return
    xp = get_xp(args.backend)
    shapes = (PAPER if args.paper else SMALL)[:1 if args.first_shape else None]
    steps = args.steps or (4 if args.paper else 200)
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    head = {"backend": args.backend, "numpy": np.__version__, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine()}
    print(f"# gmmdiff benchmark: backend {args.backend}, numpy {np.__version__}, "
          f"python {platform.python_version()}, {head['cpu']}")
    if args.backend == "cupy":  # pragma: no cover
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        head.update(device=props["name"].decode(), cupy=cupy.__version__,
                    device_memory=int(props["totalGlobalMem"]))
        print(f"# device {head['device']}, cupy {cupy.__version__}; times: CUDA events between "
              "steps inside warm draw chunks (set-up, compilation and the first chunk excluded)")
    print(f"{'d':>3} {'K':>3} {'N':>4} {'draws':>5} {'models':>6} {'dtype':>7} {'path':>8} "
          f"{'ms/step':>9} {'host ms':>8} {'draw ms':>8} {'chunk':>5} {'timed':>5} "
          f"{'model-steps/s':>13} {'GFLOP/s':>8} {'peak GiB':>8} {'sweep h':>8}")
    out = []
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
                parts = [time_steps(dataclasses.replace(cfg, seed=s), [M], xp, steps, args.repeats)
                         for s in range(S) for M in sizes]
                rows.append(("loop", {"device": sum(p["device"] for p in parts),
                                      "host": sum(p["host"] for p in parts),
                                      "draw": float("nan"), "S": parts[0]["S"],
                                      "timed": min(p["timed"] for p in parts),
                                      "peak": max((p["peak"] or 0) for p in parts) or None}))
            for path, r in rows:
                sec = r["device"]
                rate = models / sec
                gflops = S * step_flops(sizes, N, n, d) / sec / 1e9
                sweep_h = 64 * 20 * 50_000 / rate / 3600
                peak = f"{r['peak'] / 2**30:8.2f}" if r["peak"] is not None else f"{'-':>8}"
                print(f"{d:>3} {K:>3} {N:>4} {n:>5} {models:>6} {dt:>7} {path:>8} "
                      f"{sec * 1e3:>9.3f} {r['host'] * 1e3:>8.3f} {r['draw'] * 1e3:>8.3f} "
                      f"{r['S']:>5d} {r['timed']:>5d} {rate:>13.1f} {gflops:>8.2f} {peak} "
                      f"{sweep_h:>8.1f}")
                out.append(dict(d=d, K=K, N=N, noise_draws=n, models=models, dtype=dt, path=path,
                                ms_per_step=sec * 1e3, host_ms_per_step=r["host"] * 1e3,
                                draw_step_ms=r["draw"] * 1e3, chunk_steps=r["S"],
                                steps_timed=r["timed"], model_steps_per_s=rate, gflops=gflops,
                                peak_pool_bytes=r["peak"], sweep_hours=sweep_h))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# peak host memory {peak:.0f} MiB")
    if args.json:
        from gmmdiff.io.files import write_json
        write_json(args.json, {"machine": head, "peak_host_mib": peak, "rows": out})


if __name__ == "__main__":
    main()
