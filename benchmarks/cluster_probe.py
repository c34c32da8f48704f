#!/usr/bin/env python3
"""Probe the cluster path as a hostile user and a hostile scheduler would (issue 37,
items 1-4), and print a report:

- names: ``gmmdiff-sweep --sbatch`` with a sweep directory, a script, a current
  directory and (where the checkout has ``--logs``) a log directory named to inject a
  command or to break a line (command substitution, backquotes, quotes, ``;``, ``|``,
  ``&``, a newline, a carriage return, control characters, a leading ``-``, ``%``,
  ``#``, a backslash, bytes that are not UTF-8 ...). Each case is either *refused*
  (exit 2, one line, nothing written) or *written*: the script is then run by bash, as
  the submitter and as an array task, with fake sbatch/srun/scontrol that record their
  arguments; it is *safe* when nothing else ran (no file ``PWNED`` appeared) and srun
  got the sweep command with ``--out`` intact, *UNSAFE* otherwise;
- env: ``--shard slurm`` with Slurm array variables Slurm never sets (a step of 0, ids
  of -1 or 10^23, ids outside [min, max] or off the step, floats, signs, spaces, other
  digits, missing variables): *refused* (exit 2, one line naming the variable, nothing
  written), *RAN* (it trained something) or *TRACEBACK*;
- signals: SIGTERM to a training sweep twice 50 ms apart, at random moments of its
  first ~1.5 s, to the parent of ``--jobs 2`` and to its process group, and to
  ``gmmdiff-train``: the exit statuses (75 wanted; counted apart where the signal came
  before the process had a handler, seen in /proc/PID/status, i.e. while Python
  itself was starting), and for every fifth try the re-run compared file by file with
  an uninterrupted run.

    python benchmarks/cluster_probe.py                    # this checkout
    python benchmarks/cluster_probe.py --root /work/main --skip logs   # another one

Takes ~10 minutes on 2 loaded cores (``--tries`` scales the signal part).
"""
import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["-N", "12,16", "-d", "3", "-K", "2", "--seeds", "0,1", "--coarse", "3", "--refine", "2",
         "--steps", "2000", "--noise-draws", "2", "--eval-samples", "20", "--eval-noise-draws", "2"]
TRAIN = ["--dim", "3", "--components", "2", "--samples", "10", "--model-sizes", "2,5,10",
         "--steps", "3000", "--noise-draws", "2", "--eval-samples", "8", "--eval-noise-draws", "2",
         "--checkpoint-every", "500", "--quiet"]
PAYLOADS = ["$(touch PWNED)", "x\ntouch PWNED #", "`touch PWNED`", "'; touch PWNED; '", '"; touch PWNED; "',
            "a b  c", "-rf", "--help", "x\ntouch PWNED", "x\rtouch PWNED", "x\n#SBATCH --x",
            "\\", "#x", "%A %a 100%", "${IFS}touch${IFS}PWNED", "é ü 中", "\x1b[2J",
            "|touch PWNED", "&touch PWNED&", ">PWNED", "*", "~", "!!", "x\ttouch PWNED",
            os.fsdecode(b"\xff\xfe"), "SUMMARY", "$HOME", "'", '"']
FAKE = r"""#!/bin/bash
n=$(ls "$RECORD" | grep -c "^$(basename "$0")-.*\.args$")
printf '%s\0' "$@" > "$RECORD/$(basename "$0")-$n.args"
if [ "$(basename "$0")" = sbatch ]; then cat > "$RECORD/sbatch-$n.stdin"; echo $((100 + n)); fi
if [ "$(basename "$0")" = srun ]; then exit 75; fi
exit 0
"""


def script(root, name):
    return [sys.executable, os.path.join(root, "bin", name)]


def environment(root, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PYTHONPATH"] = root
    env.update(extra)
    return env


def listing(top):
    return sorted(os.path.relpath(os.path.join(r, f), top) for r, ds, fs in os.walk(top)
                  for f in fs + ds)


def one_line(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in stderr


def probe_names(root, base, skip):
    places = [p for p in ("out", "sbatch", "cwd", "logs") if p not in skip]
    results = collections.Counter()
    unsafe = []
    for payload in PAYLOADS:
        for place in places:
            case = tempfile.mkdtemp(dir=base)
            top = os.path.join(case, payload if place == "cwd" else "top")
            try:
                os.makedirs(top)
            except (OSError, ValueError):
                results["cwd not creatable"] += 1
                continue
            name = payload if place != "cwd" else "sw"
            out = os.path.join(top, name if place == "out" else "sw")
            path = os.path.join(top, (name if place == "sbatch" else "s") + ".sh")
            args = ["--out", out, "--sbatch", path, "--time", "10"]
            if place == "logs":
                args += ["--logs", os.path.join(top, payload)]
            before = listing(case)
            r = subprocess.run(script(root, "gmmdiff-sweep") + SMALL + args, cwd=top,
                               env=environment(root), capture_output=True)
            err = r.stderr.decode(errors="replace")
            if r.returncode != 0:
                ok = r.returncode == 2 and one_line(err) and listing(case) == before
                results["refused cleanly" if ok else "refused, NOT cleanly"] += 1
                if not ok:
                    unsafe.append((place, payload, err[-300:]))
                continue
            record = os.path.join(case, "record")
            fake = os.path.join(case, "fakebin")
            os.makedirs(record)
            os.makedirs(fake)
            for tool in ("sbatch", "srun", "scontrol"):
                with open(os.path.join(fake, tool), "w") as fh:
                    fh.write(FAKE)
                os.chmod(os.path.join(fake, tool), 0o755)
            env = environment(root, PATH=f"{fake}:{os.environ['PATH']}", RECORD=record)
            subprocess.run(["bash", path], cwd=top, env=env, capture_output=True)
            task = dict(env, SLURM_JOB_ID="7", SLURM_ARRAY_JOB_ID="7", SLURM_ARRAY_TASK_ID="0",
                        SLURM_ARRAY_TASK_COUNT="2")
            subprocess.run(["bash", path], cwd=top, env=task, capture_output=True)
            srun = os.path.join(record, "srun-0.args")
            words = open(srun, "rb").read().split(b"\0")[:-1] if os.path.exists(srun) else []
            intact = (os.fsencode(out) in words and words[-2:] == [b"--shard", b"slurm"])
            pwned = any("PWNED" in fs for _, _, fs in os.walk(case))
            if pwned or not intact:
                results["UNSAFE"] += 1
                unsafe.append((place, payload, "ran a command" if pwned else f"srun got {words[-4:]}"))
            else:
                results["written, runs only gmmdiff"] += 1
    return results, unsafe


ENV_CASES = [dict(ID="0", MIN="0", MAX="3", STEP="0", COUNT="4"), dict(ID="0", MIN="0", MAX="3", STEP="0"),
             dict(ID="-1"), dict(ID=str(10 ** 23)), dict(ID="3"), dict(ID="3", MIN="0"),
             dict(ID="7", MIN="0", MAX="3", COUNT="4"), dict(ID="1", MIN="4", MAX="0"),
             dict(ID="1", MIN="0", MAX="6", STEP="2", COUNT="4"), dict(ID="0", MIN="0", MAX="3", COUNT="0"),
             dict(ID="0", MIN="0", MAX="3", COUNT="9"), dict(ID="1.0", MIN="0", MAX="3"),
             dict(ID="\u0663", MIN="0", MAX="3"), dict(ID=" 1", MIN="0", MAX="3"),
             dict(ID="0", MIN="", MAX="3"), dict(ID="0", MIN="0", MAX="3", STEP="+1"),
             dict(ID="0", MIN="0", MAX="3", STEP="-1", COUNT="4"), dict(ID="1e3", MIN="0", MAX="3"),
             dict(ID="0x1", MIN="0", MAX="3"), dict(ID="0", MIN="-5", MAX="3"),
             dict(ID="0", MIN="0", MAX=str(2 ** 64)), dict(ID="2", MIN="0", MAX="3", STEP="5", COUNT="1"),
             dict(ID="0", MIN="0", MAX="3", COUNT="4", STEP="nan"), dict(ID="٣", MIN="٠", MAX="٣")]


def probe_env(root, base):
    results = collections.Counter()
    for case in ENV_CASES:
        out = tempfile.mkdtemp(dir=base)
        env = environment(root, **{f"SLURM_ARRAY_TASK_{k}": v for k, v in case.items()})
        r = subprocess.run(script(root, "gmmdiff-sweep") + SMALL + ["--steps", "20", "--quiet",
                                                                      "--out", os.path.join(out, "sw"),
                                                                      "--shard", "slurm"],
                           env=env, capture_output=True, text=True)
        if "Traceback" in r.stderr:
            results["TRACEBACK"] += 1
        elif r.returncode == 2 and one_line(r.stderr) and not os.listdir(out):
            results["refused cleanly"] += 1
        else:
            results[f"RAN (exit {r.returncode})"] += 1
    return results


def sigcgt_term(pid):
    """Whether the process has a handler for SIGTERM (its /proc status)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        return False
    return False


def files_of(top):
    out = {}
    for r, _, fs in os.walk(top):
        for f in fs:
            if f in ("summary.csv", "summary.json") or f.startswith(".lock"):
                continue
            with open(os.path.join(r, f), "rb") as fh:
                out[os.path.relpath(os.path.join(r, f), top)] = fh.read()
    return out


def run_signal(root, kind, base, how, rng):
    """One try: start the command, signal it as ``how`` says; (exit status, out)."""
    out = tempfile.mkdtemp(dir=base)
    out = os.path.join(out, "o")
    if kind == "train":
        cmd = script(root, "gmmdiff-train") + TRAIN + ["--out", out]
    else:
        cmd = script(root, "gmmdiff-sweep") + SMALL + ["--out", out] + (
            ["--jobs", "2", "--quiet"] if how in ("jobs-parent", "jobs-group") else [])
    env = environment(root, GMMDIFF_PROGRESS_SECONDS="0")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    handler_at = None
    if how == "twice":
        for line in proc.stderr:
            if "coarse step" in line:
                break
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
    elif how == "startup":
        delay = rng.uniform(0, 1.5)
        while time.monotonic() - t0 < delay:
            if handler_at is None and sigcgt_term(proc.pid):
                handler_at = time.monotonic() - t0
            time.sleep(0.002)
        if handler_at is None and not sigcgt_term(proc.pid):
            handler_at = -1                       # signalled before it held SIGTERM
        proc.send_signal(signal.SIGTERM)
    elif how in ("jobs-parent", "jobs-group", "train"):
        time.sleep(rng.uniform(0.3, 3.0))
        if how == "jobs-group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
    proc.stderr.read()
    return proc.wait(), out, handler_at


CASES = ("twice", "startup", "jobs-parent", "jobs-group", "train")


def probe_signals(root, base, tries, rng, cases=CASES):
    reference = {}
    report = {}
    for kind, how, n in [("sweep", "twice", tries), ("sweep", "startup", tries),
                         ("sweep", "jobs-parent", max(2, tries // 4)),
                         ("sweep", "jobs-group", max(2, tries // 4)), ("train", "train", max(2, tries // 2))]:
        if how not in cases:
            continue
        codes, differ, resumed, handler = collections.Counter(), 0, 0, []
        for k in range(n):
            code, out, at = run_signal(root, kind, base, how, rng)
            codes[code] += 1
            if at == -1:
                codes[f"{code} (signalled before the handler)"] += 1
            elif at is not None:
                handler.append(at)
            if k % 5 == 0 and code in (0, 75):
                cmd = (script(root, "gmmdiff-train") + TRAIN if kind == "train"
                       else script(root, "gmmdiff-sweep") + SMALL + ["--quiet"])
                subprocess.run(cmd + ["--out", out], env=environment(root), capture_output=True)
                if kind not in reference:
                    ref = os.path.join(tempfile.mkdtemp(dir=base), "o")
                    subprocess.run(cmd + ["--out", ref], env=environment(root), capture_output=True)
                    reference[kind] = files_of(ref)
                resumed += 1
                differ += files_of(out) != reference[kind]
            shutil.rmtree(os.path.dirname(out), ignore_errors=True)
        report[f"{kind} {how}"] = (dict(codes), resumed, differ,
                                   (min(handler), max(handler)) if handler else None)
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=HERE, help="the checkout whose bin/ and package to probe")
    ap.add_argument("--tries", type=int, default=20, help="tries of each signal case")
    ap.add_argument("--skip", default="", help="comma-separated: logs (a checkout without "
                                               "--logs), names, env, signals")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default=",".join(CASES), help="signal cases: " + ", ".join(CASES))
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    rng = random.Random(args.seed)
    base = tempfile.mkdtemp(prefix="gmmdiff-cluster-probe-")
    try:
        if "names" not in skip:
            t = time.monotonic()
            results, unsafe = probe_names(args.root, base, skip)
            print(f"names: {sum(results.values())} cases ({len(PAYLOADS)} names x places): "
                  f"{dict(results)} ({time.monotonic() - t:.0f} s)")
            for case in unsafe:
                print("   ", case)
        if "env" not in skip:
            print(f"env: {len(ENV_CASES)} cases: {dict(probe_env(args.root, base))}")
        if "signals" not in skip:
            for what, (codes, resumed, differ, handler) in probe_signals(
                    args.root, base, args.tries, rng, args.cases.split(",")).items():
                extra = f"; SIGTERM handler seen from {handler[0] * 1000:.0f}-{handler[1] * 1000:.0f} ms" if handler else ""
                print(f"signals, {what}: exit statuses {codes}; {resumed} re-runs, {differ} "
                      f"differing from an uninterrupted run{extra}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
