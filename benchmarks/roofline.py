"""The numpy training step against the machine's limit: ``bench_train_step.py --roofline``.

Measures, in the same run, a roofline of this machine on one core (BLAS held to one
thread; the best of several timings in the thread's CPU time, measured again after the
step timings and the better of the two kept): GEMM (GFLOP/s, a 1024^3 product), exp (G elements/s, on
cache-resident logits in [-60, 0]), memory (GB/s, a 256 MiB copy) and numpy's normal
generator (M draws/s, the dtype of the run), and from it a lower bound on the time of
one optimizer step:

    bound = (flops / GEMM + exps / exp + bytes / memory + normals / normal rate) / cores

with the work a step cannot avoid: the five (rows x components x d) products of the
loss and its gradients (2 flops per multiply-add), one exp per (row, component), the
noise written once by the draws and read once by the loss, and the normals themselves,
each model counted at its own size (no padding). Dividing by the cores assumes every
part spreads perfectly over them, so no step can run faster. The same rates are also
measured with one thread per core running each kernel at once (``xa``: cores share
caches, memory bandwidth and clocks, so together they deliver less than cores times
one; on the project's 2-core machine 1.4-1.9x one core), the bound a step spread over
all cores can actually meet.

Each step time is the median over rounds of one subprocess per (code, shape, dtype)
that trains ``steps`` steps after one warm-up step, timed from the end of the second
draw chunk to the last step: the first is drawn before the loop can prefetch, and the
second is drawn in the background while the first steps still fault in their buffers
(at the middle shape it was late by one wait of ~0.1 s at its boundary, 4 ms per step
of a 24-step window; at every later boundary the draws were done: a run of 50,000
steps draws all chunks but the first two ahead); with ``--old PATH`` (a checkout of
an older commit, e.g. ``git worktree add /tmp/old21 6540a89``) the older code is timed
in the same rounds, interleaved with this checkout, so both see the same machine load.
The load average (``/proc/loadavg``) is printed before and after, and beside each
wall time the process's CPU time per step (all its threads: on a loaded machine it
shows the work done where the wall time also counts the waits for a core) and its
ratio to the bound's one-core work (``cx``, which a loaded machine barely moves).
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

SHAPES = [(10, 2, 20, 10, 10), (30, 3, 50, 100, 20), (50, 12, 200, 100, 20)]
STEPS = {SHAPES[0]: 384, SHAPES[1]: 42, SHAPES[2]: 5}
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sizes_of(N, J):
    return sorted({max(1, int(round(N * k / J))) for k in range(1, J + 1)})


def step_work(shape, dtype):
    """(flops, exps, bytes, normals) one optimizer step cannot avoid, at ``shape`` =
    (d, K, N, noise draws, sizes)."""
    d, _, N, n, J = shape
    B = N * n
    item = np.dtype(dtype).itemsize
    Ms = sizes_of(N, J)
    flops = sum(5 * 2 * B * M * d for M in Ms)
    exps = sum(B * M for M in Ms)
    normals = len(Ms) * B * d
    return flops, exps, 2 * normals * item, normals


def _best(fn, repeats=7):
    """The shortest of ``repeats`` timings (after one warm-up) in CPU time of the calling
    thread, which runs all of the work (BLAS at one thread): a roofline is the best rate
    a core gives, and on a shared machine wall time would fold the other processes' load
    into the bound and flatter the ratios."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return float(np.min(times))


def _kernels(dtype, seed=0):
    """The roofline's four kernels on fresh data: {name: (fn, work per call)}."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((1024, 1024)).astype(dtype)
    b = rng.standard_normal((1024, 1024)).astype(dtype)
    c = np.empty_like(a)
    s = -60.0 * rng.random(1 << 16)                                      # logits, float64
    w = np.empty_like(s)
    big = np.ones(32 << 20)                                             # 256 MiB
    dst = np.empty_like(big)
    g = np.random.default_rng(seed + 1)
    z = np.empty(1 << 20, dtype=dtype)
    return {"gemm": (lambda: np.matmul(a, b, out=c), 2 * 1024 ** 3),
            "exp": (lambda: np.exp(s, out=w), s.size),
            "mem": (lambda: np.copyto(dst, big), 2 * big.nbytes),
            "normal": (lambda: g.standard_normal(dtype=dtype, out=z), z.size)}


REPEATS = {"gemm": 15, "exp": 200, "mem": 5, "normal": 15}


def roofline(dtype):
    """One-core rates: {"gemm" flop/s, "exp" /s, "mem" bytes/s, "normal" /s}."""
    from gmmdiff.engine.threads import blas_threads
    with blas_threads(1):
        return {k: work / _best(fn, REPEATS[k]) for k, (fn, work) in _kernels(dtype).items()}


def roofline_all_cores(dtype, cores, rounds=5):
    """The same rates with ``cores`` threads running the same kernel at once (each on
    data of its own, BLAS at one thread, the best of ``rounds`` wall times of a run of
    each kernel's repeats): what all the cores deliver together, shared caches,
    memory bandwidth and clock limits included."""
    import threading
    from gmmdiff.engine.threads import blas_threads
    sets = [_kernels(dtype, seed=2 * i) for i in range(cores)]
    out = {}
    with blas_threads(1):
        for k in REPEATS:
            reps = max(1, REPEATS[k] // 3)
            best = np.inf
            for _ in range(rounds):
                gate = threading.Barrier(cores + 1)

                def work(fn, gate=gate, reps=reps):
                    gate.wait()
                    for _ in range(reps):
                        fn()
                ths = [threading.Thread(target=work, args=(ks[k][0],)) for ks in sets]
                for t in ths:
                    t.start()
                gate.wait()
                t0 = time.perf_counter()
                for t in ths:
                    t.join()
                best = min(best, time.perf_counter() - t0)
            out[k] = cores * reps * sets[0][k][1] / best
    return out


def bound_seconds(shape, dtype, rates, cores):
    """(bound, parts): the step's work at ``cores`` times the one-core ``rates``."""
    flops, exps, nbytes, normals = step_work(shape, dtype)
    parts = {"gemm": flops / rates["gemm"], "exp": exps / rates["exp"],
             "mem": nbytes / rates["mem"], "normal": normals / rates["normal"]}
    return sum(parts.values()) / cores, parts


def bound_all_cores(shape, dtype, rates_all):
    """The step's work at the rates all cores measured together."""
    flops, exps, nbytes, normals = step_work(shape, dtype)
    return (flops / rates_all["gemm"] + exps / rates_all["exp"] + nbytes / rates_all["mem"]
            + normals / rates_all["normal"])


WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
try:
    from gmmdiff.training.config import TrainConfig
    from gmmdiff.training.draws import draw_chunk_steps
    from gmmdiff.training.loop import train
    from gmmdiff.training.state import initial_state
except ImportError:         # a tree from before the subpackages (gmmdiff 0.5 and earlier)
    from gmmdiff.training.config import TrainConfig
    from gmmdiff.training.state import initial_state
    from gmmdiff.training.loop import draw_chunk_steps, train
d, K, N, n, J = (int(v) for v in sys.argv[2].split(","))
dtype, steps = sys.argv[3], int(sys.argv[4])
sizes = sorted({max(1, int(round(N * k / J))) for k in range(1, J + 1)})
cfg = TrainConfig(dim=d, components=K, samples=N, noise_draws=n, steps=steps, dtype=dtype)
ds = cfg.dataset(np)
warm = TrainConfig(**{**cfg.__dict__, "steps": 1})
train(ds, initial_state(ds, sizes, warm, np), warm, np, log_every=1)
state = initial_state(ds, sizes, cfg, np)
stamps = [(time.perf_counter(), time.process_time())]
train(ds, state, cfg, np, log_every=1,
      callback=lambda k, losses: stamps.append((time.perf_counter(), time.process_time())))
# steady state: from the end of the second draw chunk (the first is drawn before the loop
# can prefetch, the second while the first steps fault in their buffers)
k0 = min(2 * draw_chunk_steps(N, n, d), steps // 2)
print(json.dumps({"s_per_step": (stamps[-1][0] - stamps[k0][0]) / (steps - k0),
                  "cpu_per_step": (stamps[-1][1] - stamps[k0][1]) / (steps - k0)}))
"""


def time_code(path, shape, dtype, steps):
    """Seconds per step of the code at ``path`` (a subprocess importing gmmdiff from it)."""
    env = dict(os.environ, PYTHONPATH=path)
    res = subprocess.run([sys.executable, "-c", WORKER, path, ",".join(map(str, shape)), dtype,
                          str(steps)], capture_output=True, text=True, env=env, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return out["s_per_step"], out["cpu_per_step"]


def loadavg():
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:  # pragma: no cover
        return "unknown"


def main(args):
    from gmmdiff.engine.threads import blas_controller, cpu_count
    cores = cpu_count()
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    shapes = SHAPES if args.shapes is None else [SHAPES[i] for i in args.shapes]
    rounds = args.repeats
    ctl = blas_controller()
    print(f"# roofline benchmark: numpy {np.__version__}, {cores} cores, BLAS "
          f"{os.path.basename(ctl.path) if ctl else 'not controllable'}; load average "
          f"{loadavg()} (1, 5, 15 min)")
    codes = [("new", HERE)] + ([("old", os.path.abspath(args.old))] if args.old else [])
    if args.old:
        rev = subprocess.run(["git", "-C", args.old, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        print(f"# old = {args.old} at {rev or '?'}, timed interleaved with this checkout")
    rates = {dt: roofline(dt) for dt in dtypes}
    measured = []
    for shape in shapes:
        steps = args.steps or STEPS[shape]
        for dt in dtypes:
            times = {c: [] for c, _ in codes}
            for _ in range(rounds):                          # interleaved: new, old, new, old
                for c, path in codes:
                    times[c].append(time_code(path, shape, dt, steps))
            med = {c: tuple(float(x) for x in np.median(np.array(v), axis=0)) for c, v in times.items()}
            measured.append((shape, dt, steps, med))
            print(f"# timed {shape} {dt}: " + ", ".join(f"{c} {v[0] * 1e3:.2f} ms" for c, v in
                                                        med.items()),
                  file=sys.stderr, flush=True)
    rates_all = {}
    for dt in dtypes:                                        # the better of two measurements
        again = roofline(dt)
        rates[dt] = {k: max(v, again[k]) for k, v in rates[dt].items()}
        rates_all[dt] = roofline_all_cores(dt, cores)
    for dt, r in rates.items():
        a = rates_all[dt]
        print(f"# roofline, one core, {dt}: GEMM {r['gemm'] / 1e9:.1f} GFLOP/s, exp "
              f"{r['exp'] / 1e9:.2f} G/s, memory {r['mem'] / 1e9:.1f} GB/s, normals "
              f"{r['normal'] / 1e6:.0f} M/s; all {cores} cores at once: "
              + ", ".join(f"{k} {a[k] / r[k]:.2f}x" for k in ("gemm", "exp", "mem", "normal"))
              + " the one-core rate")
    print(f"{'d':>3} {'K':>3} {'N':>4} {'draws':>5} {'sizes':>5} {'dtype':>7} {'steps':>5} "
          f"{'bound ms':>9} {'(gemm/exp/mem/normal ms, 1 core)':>34} {'all-core ms':>11} "
          + " ".join(f"{c + ' ms':>10} {c + ' x':>6} {c + ' xa':>6} {c + ' cpu':>8} {c + ' cx':>6}"
                     for c, _ in codes))
    for shape, dt, steps, med in measured:
        bound, parts = bound_seconds(shape, dt, rates[dt], cores)
        ball = bound_all_cores(shape, dt, rates_all[dt])
        cols = " ".join(f"{med[c][0] * 1e3:>10.2f} {med[c][0] / bound:>6.1f} "
                        f"{med[c][0] / ball:>6.1f} {med[c][1] * 1e3:>8.2f} "
                        f"{med[c][1] / (bound * cores):>6.1f}" for c, _ in codes)
        split = "/".join(f"{parts[k] * 1e3:.3g}" for k in ("gemm", "exp", "mem", "normal"))
        print(f"{shape[0]:>3} {shape[1]:>3} {shape[2]:>4} {shape[3]:>5} {shape[4]:>5} {dt:>7} "
              f"{steps:>5} {bound * 1e3:>9.2f} {split:>34} {ball * 1e3:>11.2f} {cols}")
    print(f"# load average at the end {loadavg()}; x = ms/step over the bound (the one-core "
          f"rates times {cores} cores); xa = over the all-core bound (the rates {cores} "
          f"threads measured running at once); cpu = CPU ms of the process per step (all its "
          f"threads); cx = cpu over the bound's one-core work (bound x cores); {rounds} "
          f"rounds, medians")
