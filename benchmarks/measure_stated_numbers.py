"""Re-measure the times and counts README.rst and the documentation state, and write
them into their record, docs/measurements.json, and into the sentences that state them.

The record holds, per number, its value, the command that measured it, the date, the
machine, the load (``/proc/loadavg``'s 1-minute average before and after) and the
gmmdiff version; its ``places`` are the sentences that state it, as templates filled
from the record. ``tests/test_docs.py`` checks that every place states the record, that
the test count is the one collected now (within the record's margin), and that the
times were measured with this version of gmmdiff -- a test cannot time, so a new version
asks for this script to be run again:

    python benchmarks/measure_stated_numbers.py builtin fit count    # print, write nothing
    python benchmarks/measure_stated_numbers.py builtin fit count --write
    python benchmarks/measure_stated_numbers.py suite --write         # the whole suite: minutes

``builtin``: the built-in job, ``gmmdiff-train`` with no options, in a fresh temporary
directory; ``fit``: ``gmmdiff-predict --fit`` on a copy of the shipped CPU sweep (every
source); ``count``: the tests ``pytest --collect-only`` finds; ``suite``: the count and
the wall time of ``python -m pytest -q tests`` (less the one test that fails until
this very measurement is made with the present version). Wall and CPU times (the child's user +
system) include Python's start and imports, as a user waits for them. Run it from the
checkout, with gmmdiff installed (its commands on PATH).
"""
import argparse
import datetime
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = os.path.join(ROOT, "docs", "measurements.json")
# fails until the times are measured with this version: left out of the suite's timing run
VERSION_TEST = "tests/test_docs.py::test_the_stated_times_were_measured_with_this_version"


def loadavg():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def machine():
    """'2-core Intel Xeon (AVX-512)': cores, CPU model and its widest AVX."""
    model, flags = "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    model = re.sub(r"\((R|TM)\)|\bProcessor\b|\bCPU\b|@.*$|\s+\d+-Core", "", model)
    model = " ".join(model.split())
    avx = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{os.cpu_count()}-core {model} ({avx})"


def timed(cmd, cwd, env=None):
    """(wall s, CPU s of the child, its stdout, load before, load after) of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, t = loadavg(), time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-6000:]}\n"
                         f"{r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r.stdout, load0, loadavg()


def common(load0, load1):
    import gmmdiff
    return {"date": datetime.date.today().isoformat(), "machine": machine(),
            "load": f"{load0:.1f} to {load1:.1f}", "gmmdiff": gmmdiff.__version__}


def about_seconds(s):
    """'about 30 seconds' (10-second steps) / 'about 2 minutes' for a duration."""
    if s < 90:
        return f"about {max(10, int(round(s / 10.0)) * 10)} seconds"
    return f"about {int(round(s / 60.0))} minutes"


def measure(what):
    with tempfile.TemporaryDirectory(prefix="gmmdiff-measure-") as tmp:
        if what == "builtin":
            wall, cpu, _, l0, l1 = timed(["gmmdiff-train", "--quiet"], tmp)
            return {"command": "gmmdiff-train", "wall_s": round(wall, 1), "cpu_s": round(cpu),
                    "about": about_seconds(wall), **common(l0, l1)}
        if what == "fit":
            from gmmdiff.analysis.fit_files import SHIPPED
            os.makedirs(os.path.join(tmp, "runs"))
            shutil.copytree(SHIPPED, os.path.join(tmp, "runs", "cpu-shipped"))
            wall, cpu, _, l0, l1 = timed(["gmmdiff-predict", "--fit", "runs/cpu-shipped"], tmp)
            return {"command": "gmmdiff-predict --fit runs/cpu-shipped (4 sources, 5 folds)",
                    "wall_s": round(wall, 1), "cpu_s": round(cpu), **common(l0, l1)}
        if what in ("count", "suite"):
            wall, _, out, l0, l1 = timed([sys.executable, "-m", "pytest", "--collect-only", "-q",
                                          "tests"], ROOT)
            count = int(re.search(r"(\d+) tests? collected", out).group(1))
            entry = {"command": "python -m pytest --collect-only -q tests", "tests": count,
                     **common(l0, l1)}
            if what == "suite":         # (less the test that asks for this measurement)
                wall, _, out, l0, l1 = timed([sys.executable, "-m", "pytest", "-q", "tests",
                                              "--deselect", VERSION_TEST], ROOT)
                entry.update(command="python -m pytest -q tests", minutes=round(wall / 60, 1),
                             result=out.strip().splitlines()[-1], **common(l0, l1))
            return entry
    raise SystemExit(f"unknown measurement {what!r}; accepted: builtin, fit, count, suite")


def rendered(record, name):
    """The sentences of the record's entry ``name``: [(file, text)]."""
    entry = record[name]
    return [(p["file"], p["text"].format(**entry)) for p in entry.get("places", [])]


def rewrapped(found, text):
    """``text`` with the line breaks (and indentation) of ``found``, the sentence it
    replaces, kept between the same words: a number that changes leaves the page's
    wrapping as it was."""
    gaps = re.findall(r"\s+", found.strip())
    words = text.split()
    return "".join(w + (gaps[k] if k < len(gaps) else " ") for k, w in enumerate(words[:-1])) + words[-1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="+", choices=("builtin", "fit", "count", "suite"))
    p.add_argument("--write", action="store_true",
                   help="update docs/measurements.json and the sentences that state the numbers")
    args = p.parse_args(argv)
    record = json.load(open(RECORD))
    new = json.loads(json.dumps(record))
    for what in args.what:
        key = {"builtin": "builtin_job", "fit": "shipped_fit", "count": "suite", "suite": "suite"}[what]
        got = measure(what)
        if what == "count":         # the suite's time stays as it was measured
            got = {k: v for k, v in got.items() if k in ("tests",)}
        print(f"{key}: {json.dumps(got)}", flush=True)
        new[key].update(got)
    if args.write:
        write(record, new)


def write(record, new):
    """Write the record ``new`` (docs/measurements.json) and rewrite each sentence of
    ``record`` (the one on disk) into the sentence of ``new``."""
    for name in record:
        if not isinstance(record[name], dict) or "places" not in record[name]:
            continue
        for (path, old), (_, text) in zip(rendered(record, name), rendered(new, name)):
            full = os.path.join(ROOT, path)
            content = open(full, encoding="utf-8").read()
            pattern = r"\s+".join(re.escape(word) for word in old.split())   # across line breaks
            content, found = re.subn(pattern, lambda m: rewrapped(m.group(0), text), content)
            if not found:
                raise SystemExit(f"{path}: the sentence {old!r} is not there (edited by hand?); "
                                 "make it the record's again, then re-run")
            open(full, "w", encoding="utf-8").write(content)
    with open(RECORD, "w", encoding="utf-8") as fh:
        json.dump(new, fh, indent=1)
        fh.write("\n")
    print(f"written: {os.path.relpath(RECORD, ROOT)} and the sentences it lists")


if __name__ == "__main__":
    main()
