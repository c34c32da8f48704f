#!/usr/bin/env python3
"""Time ``gmmdiff-predict`` per source: the fast paths beside the per-M path they replace.

For each shape (N, d, K):

- the data set (``TrainConfig.dataset``, as the command builds it);
- per source (simple, expected, nearest), the new path (``predict.predicted_ratios``:
  "nearest" in one pass over the nested subsets, "expected" only where the crossover
  search needs it) and the old one (the per-M functions kept in ``gmmdiff.theory.approximations`` as
  references, on every M = 1..N, then ``crossover``), in the same run; the old path runs
  in a forked child that is stopped after ``--old-timeout`` seconds. Caches are cleared
  before every run (the command starts cold), the first new run is a discarded warm-up,
  and the median of ``--repeats`` runs is printed;
- the whole command, ``bin/gmmdiff-predict -N .. -d .. -K ..`` in a subprocess: wall time
  and its peak resident memory (``os.wait4``).

    python benchmarks/bench_predict.py                       # the three shapes of issue 14
    python benchmarks/bench_predict.py --shape 400,100,20 --repeats 5 --old-timeout 300

The machine, numpy and BLAS thread count are printed first; timings on shared machines
vary run to run, so compare old and new within one run.
"""
import argparse
import dataclasses
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

from gmmdiff.theory import approximations as theory
from gmmdiff.model.data import memorization_order
from gmmdiff.analysis.predict import predicted_ratio, predicted_ratios
from gmmdiff.model.process import loss_scale
from gmmdiff.theory.approximations import generalizing_excess_loss
from gmmdiff.training.config import TrainConfig

SOURCES = ("simple", "expected", "nearest")
SHAPES = ((200, 50, 12), (2000, 500, 40), (20000, 1000, 100))


def clear_caches():
    theory._expected_quadrature.cache_clear()
    theory._expected_min_table.cache_clear()


def new_path(times, conf, source, weights, X):
    return predicted_ratios(times, conf, source, [weights], X=X)[0]


def old_path(times, conf, source, weights, X):
    """Before issue 14: the per-M functions on every M = 1..N (nested subsets), then
    :func:`gmmdiff.analysis.predict.predicted_ratio` on the whole curve."""
    N, d, K, s = conf["samples"], conf["dim"], conf["components"], conf["data_var"]
    Ms = np.arange(1, N + 1)
    gen = generalizing_excess_loss(times, d, s, target=conf["target"], process=conf["process"])
    if source == "simple":
        x0 = d * s * (1.0 - Ms / N)
    elif source == "expected":
        x0 = np.array([theory._expected_nearest_excess_per_m(d, s, M, N, K) for M in Ms])
    else:
        x0 = theory._nearest_excess_curve_per_m(X, memorization_order(N, conf["seed"]), Ms)
    pmem = x0[:, None] * loss_scale(times, conf["process"], conf["target"])[None, :]
    return predicted_ratio(Ms.astype(np.float64), gen, pmem, weights, N, clamp=False)


def timed(fn, *args):
    clear_caches()
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def _child(conn, args):
    conn.send(timed(old_path, *args))
    conn.close()


def timed_old(args, timeout):
    """(seconds, result) of old_path in a forked child, or (None, None) past ``timeout``."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, args))
    proc.start()
    child.close()
    if parent.poll(timeout):
        out = parent.recv()
        proc.join()
        return out
    proc.terminate()
    proc.join()
    return None, None


def fmt(ratio_crossed):
    r, ok = ratio_crossed
    return f"M*/N = {r:.6f}" if ok else "no crossing"


def run_command(N, d, K, target):
    """Wall seconds and peak RSS (MiB) of one ``gmmdiff-predict`` process."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, os.path.join(ROOT, "bin", "gmmdiff-predict"),
           "-N", str(N), "-d", str(d), "-K", str(K), "--target", target]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out}")
    return seconds, usage.ru_maxrss / 1024, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", action="append", default=None,
                    help="N,d,K (repeatable); default the three shapes of issue 14")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--old-timeout", type=float, default=60.0,
                    help="seconds after which a run of the old per-M path is stopped")
    ap.add_argument("--target", default="eps", choices=("eps", "x0", "v"),
                    help="training target (eps, the command's default, puts the naive crossing at M = N)")
    ap.add_argument("--no-command", action="store_true", help="skip timing the whole command")
    args = ap.parse_args()
    shapes = SHAPES if args.shape is None else [tuple(int(v) for v in s.split(",")) for s in args.shape]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, numpy {np.__version__}, "
          f"OMP/OPENBLAS threads {os.environ.get('OMP_NUM_THREADS', os.environ.get('OPENBLAS_NUM_THREADS', 'default'))}, "
          f"float64, {args.repeats} repeats (median), old path stopped after {args.old_timeout:g} s")
    for N, d, K in shapes:
        cfg = TrainConfig(dim=d, components=K, samples=N, seed=0, target=args.target).validate()
        conf = dataclasses.asdict(cfg)
        times = cfg.grid()
        weights = np.full(times.size, 1.0 / times.size)
        t0 = time.perf_counter()
        X = cfg.dataset().X
        print(f"\n(N, d, K) = ({N}, {d}, {K}), target {args.target}: data set {time.perf_counter() - t0:.2f} s")
        for source in SOURCES:
            run_args = (times, conf, source, weights, X)
            timed(new_path, *run_args)                                   # warm-up
            runs = [timed(new_path, *run_args) for _ in range(args.repeats)]
            new_s, new_out = statistics.median(r[0] for r in runs), runs[0][1]
            old = []
            for _ in range(args.repeats):
                old.append(timed_old(run_args, args.old_timeout))
                if old[-1][0] is None:
                    break
            if old[-1][0] is None:
                old_text = f"old did not finish in {args.old_timeout:g} s"
            else:
                old_s = statistics.median(r[0] for r in old)
                same = old[0][1][1] == new_out[1] and (not new_out[1] or abs(old[0][1][0] - new_out[0]) <= 1e-9)
                old_text = (f"old {old_s:9.3f} s ({fmt(old[0][1])}; {old_s / new_s:,.0f}x; "
                            f"{'same' if same else 'DIFFERENT'})")
            print(f"  {source:<8} new {new_s:8.3f} s ({fmt(new_out)})   {old_text}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  peak memory of this process so far: {peak:,.0f} MiB")
        if not args.no_command:
            seconds, rss, _ = run_command(N, d, K, args.target)
            print(f"  bin/gmmdiff-predict -N {N} -d {d} -K {K} --target {args.target}: "
                  f"{seconds:.2f} s wall (imports included), peak memory {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
