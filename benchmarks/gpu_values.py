#!/usr/bin/env python3
"""The cupy training paths against numpy at the paper's shape, with the same draws.

A few optimizer steps of the same batch (default: (d, K, N) = (50, 12, 200), 100 noise
draws, 20 model sizes N/20 .. N) on numpy float64 (the reference), cupy plain and cupy
fused, in float64 and float32, all with the counter-based "hash" draws (the same
numbers on every backend up to the last bits of the device's log1p, cos and sin).
Prints, per path and dtype, the maximum relative difference (max |a - ref| / max |ref|)
of the logged losses, of the gradients every step hands to the optimizer, and of the
parameters after the last step; exits 1 when one exceeds the screening threshold
(float64 1e-9, float32 1e-2: above rounding at these shapes -- the float32 plain path
loses up to about 5e-4 of its mean gradients where one component takes all the weight
and G - r.mubar cancels (see tests/test_kernels.py) -- and far below a wrong
formula; the derived tolerances are the tests of tests/test_device_arithmetic.py).

    PYTHONPATH=. python benchmarks/gpu_values.py --json values.json
    PYTHONPATH=tests/cupy_standin:. python benchmarks/gpu_values.py --small   # no GPU
"""
import argparse
import dataclasses
import sys
import time

import numpy as np

from gmmdiff.engine import kernels
from gmmdiff.training import optim
from gmmdiff.backend import get_xp, to_host
from gmmdiff.training.config import TrainConfig
from gmmdiff.training.state import initial_state
from gmmdiff.training.loop import train

THRESHOLDS = {"float64": 1e-9, "float32": 1e-2}


def trajectory(cfg, sizes, xp, fused):
    """Train ``cfg.steps`` steps with hash draws, logging every step; returns host
    float64 arrays: loss (steps, J), grad_<name> (steps, ...) as handed to the
    optimizer, and the final parameters."""
    grads_seen = []
    saved = optim.step, kernels.adam_step, optim.FlatStep.__call__     # every optimizer path

    def capture(step):
        def wrapped(*args):                  # (self,) params, grads, opt, lr, ocfg
            grads_seen.append({k: to_host(v).astype(np.float64) for k, v in args[-4].items()})
            return step(*args)
        return wrapped

    optim.step, kernels.adam_step, optim.FlatStep.__call__ = (capture(f) for f in saved)
    losses = []
    try:
        ds = cfg.dataset(xp)
        state = initial_state(ds, sizes, cfg, xp)
        state = train(ds, state, cfg, xp, fused=fused, noise_source="hash", log_every=1,
                      callback=lambda step, loss: losses.append(np.array(loss, dtype=np.float64)))
    finally:
        optim.step, kernels.adam_step, optim.FlatStep.__call__ = saved
    out = {"loss": np.stack(losses)}
    for name in grads_seen[0]:
        out[f"grad_{name}"] = np.stack([g[name] for g in grads_seen])
    for name, v in state.params.items():
        out[name] = to_host(v).astype(np.float64)
    return out


def max_rel(a, ref):
    scale = float(np.abs(ref).max())
    return float(np.abs(a - ref).max() / scale) if scale > 0 else float(np.abs(a).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=50)
    ap.add_argument("--components", type=int, default=12)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--noise-draws", type=int, default=100)
    ap.add_argument("--sizes", type=int, default=20, help="model sizes N/s, 2N/s, ..., N")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="d=5, K=2, N=20, 4 draws, 4 sizes")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.small:
        args.dim, args.components, args.samples, args.noise_draws, args.sizes = 5, 2, 20, 4, 4
    cp = get_xp("cupy")
    N = args.samples
    sizes = sorted({max(1, round(N * k / args.sizes)) for k in range(1, args.sizes + 1)})
    base = TrainConfig(dim=args.dim, components=args.components, samples=N,
                       noise_draws=args.noise_draws, steps=args.steps)
    t0 = time.perf_counter()
    ref = trajectory(base, sizes, np, False)
    print(f"# (d, K, N) = ({args.dim}, {args.components}, {N}), {args.noise_draws} draws, "
          f"{len(sizes)} sizes, {args.steps} steps; numpy float64 reference "
          f"{time.perf_counter() - t0:.1f} s")
    names = list(ref)
    print(f"{'path':>6} {'dtype':>8} " + " ".join(f"{n:>12}" for n in names) + "  verdict")
    rows, bad = [], []
    for dtype in ("float64", "float32"):
        cfg = dataclasses.replace(base, dtype=dtype)
        for fused in (False, True):
            got = trajectory(cfg, sizes, cp, fused)
            diffs = {n: max_rel(got[n], ref[n]) for n in names}
            ok = all(v <= THRESHOLDS[dtype] for v in diffs.values()) and all(
                np.all(np.isfinite(got[n])) for n in names)
            path = "fused" if fused else "plain"
            print(f"{path:>6} {dtype:>8} " + " ".join(f"{diffs[n]:>12.2e}" for n in names)
                  + f"  {'ok' if ok else 'FAIL'} (threshold {THRESHOLDS[dtype]:g})")
            rows.append({"path": path, "dtype": dtype, "max_rel_diff": diffs, "ok": ok})
            if not ok:
                bad.append(f"{path} {dtype}")
    if args.json:
        from gmmdiff.io.files import write_json
        write_json(args.json, {"shape": {"d": args.dim, "K": args.components, "N": N,
                                         "noise_draws": args.noise_draws, "sizes": sizes,
                                         "steps": args.steps}, "rows": rows})
    if bad:
        print("beyond the screening thresholds: " + ", ".join(bad))
        sys.exit(1)


if __name__ == "__main__":
    main()
