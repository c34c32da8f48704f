#!/usr/bin/env python3
"""Kill gmmdiff-train and gmmdiff-sweep with SIGKILL at random moments, restart them,
and check what the project promises about crashes:

- no locked directory: every restart is accepted (never refused), and the run finally
  completes with exit code 0;
- no leftovers: once complete, no temporary file, lock file or checkpoint remains;
- no differing result: every result file equals, byte for byte (arrays bit for bit),
  the one of an uninterrupted run of the same command.

    python benchmarks/kill_harness.py --kills 20 --what both      # prints a report

The kill moments are uniform over the uninterrupted run's duration (seeded), so they
land in imports, directory creation, training, checkpoints and evaluation alike. For
the sweep, kills are also aimed (``--aimed N``) at the moments random ones rarely hit:
the end of each phase of a unit (coarse sizes trained, refinement planned, refinement
trained) and between a configuration's last result and its ``transition.json``
(after ``baselines.json``, after ``transition.json``), at the 1st, 2nd, ... time the
sweep reaches each point (:func:`gmmdiff.experiments.sweep.units.crash_point`); each aimed kill on a
fresh directory, resumed once, then compared.
tests/test_kill_harness.py runs it small in CI.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {
    "train": ["gmmdiff-train", "--dim", "3", "--components", "2", "--samples", "10",
              "--model-sizes", "2,5,10", "--steps", "1500", "--noise-draws", "2",
              "--eval-samples", "8", "--eval-noise-draws", "2", "--eval-steps", "log:4",
              "--checkpoint-every", "100", "--quiet"],
    # two units (N = 8, N = 12) of two seeds; the coarse grid of each configuration
    # brackets its transition, so every configuration has a refinement phase. Both
    # commands evaluate at 6 steps along training (not the default 14: they were half
    # of the sweep's time), each resumed from the checkpoints like the rest
    "sweep": ["gmmdiff-sweep", "-N", "8,12", "-d", "4", "-K", "2", "--seeds", "0,1", "--coarse",
              "4", "--refine", "2", "--steps", "600", "--target", "x0", "--lr", "1e-2",
              "--noise-draws", "2", "--eval-samples", "16", "--eval-noise-draws", "2",
              "--eval-steps", "log:4", "--checkpoint-every", "50", "--quiet"],
}
# the points of a sweep unit an aimed kill lands at (gmmdiff.experiments.sweep.units.crash_point)
POINTS = ("coarse-done", "refine-planned", "refine-done", "baselines-written", "transition-written")
LEFTOVER = (".tmp-", ".lock", "checkpoint")


def command(kind, out, extra=()):
    script, *args = COMMANDS[kind]
    return [sys.executable, os.path.join(ROOT, "bin", script), *args, *extra, "--out", out]


def files(top):
    """Relative paths of every regular file under ``top``."""
    out = []
    for d, _, names in os.walk(top):
        out += [os.path.relpath(os.path.join(d, n), top) for n in names]
    return sorted(out)


def same(a, b):
    if a.endswith(".npz"):
        with np.load(a) as za, np.load(b) as zb:
            return za.files == zb.files and all(np.array_equal(za[k], zb[k]) for k in za.files)
    if a.endswith(".json"):
        with open(a) as fa, open(b) as fb:
            return json.load(fa) == json.load(fb)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def compare(ref, target):
    """(leftovers, differing files, unexpected files) of ``target`` against ``ref``."""
    left = [f for f in files(target) if os.path.basename(f).startswith(LEFTOVER)]
    ref_files = [f for f in files(ref) if not f.startswith("summary")]
    differing = [f for f in ref_files
                 if not os.path.exists(os.path.join(target, f))
                 or not same(os.path.join(ref, f), os.path.join(target, f))]
    extra = sorted(set(files(target)) - set(files(ref)) - set(left))
    return left, differing, extra


def harness(kind, kills, seed, workdir, extra=(), aimed=0):
    """Returns a report dict: kills made, restarts refused, final exit code,
    leftovers, differing files. ``extra``: more options for the command (e.g. the
    backend). ``aimed``: for a sweep, kill at the 1st, ..., ``aimed``-th time it
    reaches each of :data:`POINTS` (fewer where the sweep reaches a point fewer times);
    with ``kills`` 0 the report holds the aimed kills' only."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GMMDIFF_KILL_AT", None)
    ref, target = os.path.join(workdir, f"{kind}-ref"), os.path.join(workdir, f"{kind}-killed")
    t0 = time.perf_counter()
    subprocess.run(command(kind, ref, extra), env=env, check=True, capture_output=True)
    duration = time.perf_counter() - t0
    rng = random.Random(seed)
    killed = refused = 0
    for _ in range(kills):
        proc = subprocess.Popen(command(kind, target, extra), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=rng.uniform(0.0, duration))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
        else:
            refused += proc.returncode != 0
        proc.stderr.close()
    report = {"what": kind, "uninterrupted_s": round(duration, 2)}
    if kind == "sweep" and aimed:
        report["aimed"] = aimed_kills(kind, ref, workdir, env, extra, aimed)
    if kills == 0 and aimed:            # aimed kills only: no random phase to finish
        return report
    final = subprocess.run(command(kind, target, extra), env=env, capture_output=True, text=True)
    again = subprocess.run(command(kind, target, extra), env=env, capture_output=True, text=True)
    left, differing, unexpected = compare(ref, target)
    report |= {"what": kind, "kills": killed, "completed_before_kill": kills - killed,
              "refused_restarts": refused, "final_exit_code": final.returncode,
              "rerun_exit_code": again.returncode, "final_error": final.stderr.strip()[-300:],
              "leftovers": left, "differing_files": differing, "unexpected_files": unexpected,
              "files_compared": len([f for f in files(ref) if not f.startswith("summary")])}
    return report


def aimed_kills(kind, ref, workdir, env, extra, per_point):
    """Kill the sweep at the n-th visit of each point of :data:`POINTS` (n = 1 ..
    ``per_point``), each on a fresh directory, resume it once and compare it with
    ``ref``. Returns {point: [kills landed, differing/leftover/unexpected files,
    failed resumes]} and the totals."""
    from concurrent.futures import ThreadPoolExecutor

    def at(point):                  # each point on its own directories: two at a time
        return point, _aimed_at(point, kind, ref, workdir, env, extra, per_point)

    out, total = {}, {"kills": 0, "differing": 0, "leftovers": 0, "unexpected": 0, "failed": 0}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for point, (landed, bad, counts) in pool.map(at, POINTS):
            for k, v in counts.items():
                total[k] += v
            total["kills"] += landed
            out[point] = {"kills": landed, "problems": bad}
    return {"points": out, "total": total}


def _aimed_at(point, kind, ref, workdir, env, extra, per_point):
    """:func:`aimed_kills` at one point: (kills landed, problems, counts)."""
    total = {"differing": 0, "leftovers": 0, "unexpected": 0, "failed": 0}
    landed, bad = 0, []
    for n in range(1, per_point + 1):
        target = os.path.join(workdir, f"{kind}-aimed-{point}-{n}")
        cut = subprocess.run(command(kind, target, extra), capture_output=True,
                             env=dict(env, GMMDIFF_KILL_AT=f"{point}:{n}"))
        if cut.returncode == 0:          # the sweep reaches this point fewer times
            shutil.rmtree(target)
            break
        if cut.returncode != -signal.SIGKILL:
            bad.append(f"{point}:{n}: exit {cut.returncode} before the kill")
            total["failed"] += 1
            continue
        landed += 1
        resumed = subprocess.run(command(kind, target, extra), env=env, capture_output=True,
                                 text=True)
        left, differing, unexpected = compare(ref, target)
        if resumed.returncode:
            bad.append(f"{point}:{n}: resume exit {resumed.returncode}: "
                       f"{resumed.stderr.strip()[-200:]}")
            total["failed"] += 1
        bad += [f"{point}:{n}: {f}" for f in left + differing + unexpected]
        total["differing"] += len(differing)
        total["leftovers"] += len(left)
        total["unexpected"] += len(unexpected)
        shutil.rmtree(target)
    return landed, bad, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--what", choices=["train", "sweep", "both"], default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="default: a temporary directory")
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    ap.add_argument("--aimed", type=int, default=4,
                    help="sweep: aimed kills per point of a unit (1st, 2nd, ... visit)")
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="gmmdiff-kills-")
    kinds = ["train", "sweep"] if args.what == "both" else [args.what]
    extra = ("--backend", args.backend)
    reports = [harness(k, args.kills, args.seed + i, workdir, extra, aimed=args.aimed)
               for i, k in enumerate(kinds)]
    print(json.dumps(reports, indent=1))
    bad = [r for r in reports if any(r.get(k) for k in ("refused_restarts", "final_exit_code",
                                                        "rerun_exit_code", "leftovers",
                                                        "differing_files", "unexpected_files"))
           or any(r.get("aimed", {}).get("total", {}).get(k) for k in
                  ("differing", "leftovers", "unexpected", "failed"))]
    for r in reports:
        if "kills" in r:
            print(f"{r['what']}: {r['kills']} random kills, {r['refused_restarts']} locked, "
                  f"{len(r['leftovers'])} leftovers, {len(r['differing_files'])} differing of "
                  f"{r['files_compared']} files")
        if "aimed" in r:
            t = r["aimed"]["total"]
            print(f"{r['what']}: {t['kills']} aimed kills ("
                  + ", ".join(f"{p} {v['kills']}" for p, v in r["aimed"]["points"].items())
                  + f"), {t['failed']} failed resumes, {t['leftovers']} leftovers, "
                  f"{t['differing']} differing, {t['unexpected']} unexpected files")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
