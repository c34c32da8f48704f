#!/usr/bin/env python3
"""Feed gmmdiff damaged files and options it cannot honour, and check what the project
promises about bad input: each command that reads a damaged file either refuses it --
exit code 2, one line naming the file, the directory byte for byte as it was -- or,
where the changed value is one its reader accepts, ends as on the undamaged directory,
without a traceback or a warning; no command refuses what another reads as valid.

    python benchmarks/file_probe.py --per-type 20 --seed 1          # prints a report
    PYTHONPATH=/path/to/other/checkout python benchmarks/file_probe.py --root /path/to/other/checkout

Two kinds of case:

- the named cases of issue 37 (items 5-7): a damaged file a command read after writing,
  or gave a traceback on; an option it accepted and could not honour;
- damaged copies of every file gmmdiff writes (:data:`FILES`), one field at a time
  (:func:`mutate`: its type, its sign, NaN or infinity, a huge value, emptied,
  removed), run through every command that reads the file (:func:`commands`).

The fixtures (:func:`build`) are small: a run of two sizes with a checkpoint of a
third, a sweep of 4 tiny configurations (two starts, fixed ratios M/N, series along
training: every analysis of --summary) and a directory holding only a summary (6
configurations of the shipped CPU sweep) with a fit and a transfer made from it.
``tests/test_fuzz_files.py`` runs the damaged copies through hypothesis, a few per file
type. ``--root`` runs another checkout's scripts (with its package first on PYTHONPATH):
how the figures before and after a change were measured.
"""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
import warnings
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--dim", "3", "--components", "2", "--samples", "8", "--model-sizes", "2,8",
         "--steps", "60", "--noise-draws", "2", "--eval-samples", "10", "--quiet"]
WITH_4 = [a if a != "2,8" else "2,4,8" for a in SMALL]
# two starts x two seeds at fixed ratios M/N over two N: --summary writes inits.json and
# time_law.json (a time law needs several N)
TS = ["-N", "8,10", "-d", "3", "-K", "2", "--seeds", "0,1", "--inits", "pmem,prior",
      "--size-ratios", "0.5,1", "--refine", "0", "--steps", "40", "--noise-draws", "2",
      "--eval-samples", "6", "--eval-noise-draws", "2", "--quiet"]
TINY = ["-d", "3", "-N", "8", "-M", "2", "--steps", "20", "--noise-draws", "2",
        "--eval-samples", "6", "--quiet"]
# a preset's grid and length overridden: accepted, a preset case runs seconds, not an hour
TINY_GRID = ["-N", "8", "-d", "3", "-K", "2", "--seeds", "0", "--steps", "20", "--noise-draws",
             "2", "--eval-samples", "6", "--eval-noise-draws", "2", "--quiet"]


def scripts(root=ROOT):
    """{name: click command} of the scripts in ``root/bin``."""
    out = {}
    for name in ("gmmdiff-train", "gmmdiff-sweep", "gmmdiff-plot", "gmmdiff-predict"):
        loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"),
                                                      os.path.join(root, "bin", name))
        spec = importlib.util.spec_from_loader(loader.name, loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        out[name[8:]] = module.main
    return out


def invoke(cli, args):
    """(result, warnings) of one command run in-process (click's CliRunner)."""
    from click.testing import CliRunner
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)
        result = CliRunner().invoke(cli, [str(a) for a in args])
    return result, [w for w in caught if not issubclass(w.category, (DeprecationWarning,
                                                                      PendingDeprecationWarning))]


def _ok(result):
    if result.exit_code != 0:
        raise RuntimeError(f"a fixture command failed: {result.output}")


class _Stop(Exception):
    pass


def checkpoint_of_size_4(run_dir):
    """A real checkpoint of size 4 of the run (stopped after step 30 of 60, with its
    evaluations along training so far), as a killed ``gmmdiff-train -M 2,4,8`` leaves."""
    from gmmdiff.experiments.runs import run
    from gmmdiff.training.config import TrainConfig

    def stop(step, losses):
        if step >= 40:
            raise _Stop
    cfg = TrainConfig(dim=3, components=2, samples=8, steps=60, noise_draws=2, eval_samples=10)
    try:
        run(cfg, [2, 4, 8], str(run_dir), np, checkpoint_every=30, callback=stop, log_every=5)
    except _Stop:
        pass
    assert os.path.exists(os.path.join(run_dir, "checkpoint.npz"))


def build(top, cli):
    """Make the fixture directories ``top/run``, ``top/ts`` and ``top/F`` with the
    scripts ``cli`` (:func:`scripts`)."""
    from gmmdiff.analysis.fit_files import SHIPPED
    run, ts, fdir = (os.path.join(top, k) for k in ("run", "ts", "F"))
    _ok(invoke(cli["train"], SMALL + ["--out", run])[0])
    checkpoint_of_size_4(run)
    _ok(invoke(cli["sweep"], TS + ["--out", ts])[0])
    _ok(invoke(cli["sweep"], ["--summary", ts])[0])
    os.makedirs(fdir)
    with open(os.path.join(SHIPPED, "summary.json")) as fh:
        summary = json.load(fh)
    summary["configs"] = [c for c in summary["configs"] if c["N"] == 20 and c["d"] == 10]
    with open(os.path.join(fdir, "summary.json"), "w") as fh:
        json.dump(summary, fh)
    _ok(invoke(cli["predict"], ["--fit", fdir, "--source", "simple", "--folds", "2"])[0])
    _ok(invoke(cli["predict"], ["--transfer", fdir, "--source", "simple", "--fits-dir", fdir])[0])
    shutil.move(os.path.join(fdir, "transfer.json"), os.path.join(ts, "transfer.json"))
    shutil.copy(os.path.join(fdir, "fit_simple.json"), os.path.join(ts, "fit_simple.json"))


def commands(top, cli):
    """name -> (click command, args) of every command that reads the fixtures in ``top``."""
    run, ts, fdir = (os.path.join(top, k) for k in ("run", "ts", "F"))
    return {
        "train": (cli["train"], SMALL + ["--out", run]),
        "train +M=4": (cli["train"], WITH_4 + ["--out", run]),
        "plot run": (cli["plot"], [run, "--dpi", "20"]),
        "sweep": (cli["sweep"], TS + ["--out", ts]),
        "summary": (cli["sweep"], ["--summary", ts]),
        "plot sweep": (cli["plot"], [ts, "--dpi", "20"]),
        "fit sweep": (cli["predict"], ["--fit", ts, "--source", "simple"]),
        "transfer sweep": (cli["predict"], ["--transfer", ts, "--source", "simple", "--fits-dir", fdir]),
        "fit": (cli["predict"], ["--fit", fdir, "--source", "simple", "--folds", "2"]),
        "transfer": (cli["predict"], ["--transfer", fdir, "--source", "simple", "--fits-dir", fdir]),
        "fit file": (cli["predict"], ["-N", "20", "-d", "10", "-K", "2", "--fit-file",
                                      os.path.join(fdir, "fit_simple.json")]),
    }


CONFIG_DIRS = ["N8-d3-K2-s0", "N8-d3-K2-iprior-s1"]
SWEEP_READERS = ["sweep", "summary", "plot sweep", "fit sweep"]
# file type -> (the files of that type, {fixture: the commands that read them}); None: no
# command reads it, and --summary, which writes it, must rewrite it whatever it holds
FILES = {
    "config.json": (["run/config.json"] + [f"ts/{c}/config.json" for c in CONFIG_DIRS],
                    {"run": ["train", "plot run"], "ts": SWEEP_READERS}),
    "index.json": (["run/index.json"] + [f"ts/{c}/index.json" for c in CONFIG_DIRS],
                   {"run": ["train", "plot run"], "ts": SWEEP_READERS}),
    "model json": (["run/model_M00002.json", "run/model_M00008.json"]
                   + [f"ts/{c}/model_M00004.json" for c in CONFIG_DIRS],
                   {"run": ["train", "plot run"], "ts": ["summary", "plot sweep", "fit sweep"]}),
    "model npz": (["run/model_M00002.npz", "run/model_M00008.npz"]
                  + [f"ts/{c}/model_M00008.npz" for c in CONFIG_DIRS],
                  {"run": ["train", "plot run"], "ts": ["plot sweep"]}),
    "checkpoint": (["run/checkpoint.npz"], {"run": ["train +M=4", "train"]}),
    "plan.json": ([f"ts/{c}/plan.json" for c in CONFIG_DIRS], {"ts": ["sweep"]}),
    "transition.json": ([f"ts/{c}/transition.json" for c in CONFIG_DIRS], {"ts": SWEEP_READERS}),
    "sweep.json": (["ts/sweep.json"], {"ts": SWEEP_READERS + ["transfer sweep"]}),
    "summary.json": (["F/summary.json"], {"F": ["fit", "transfer"]}),
    "fit file": (["F/fit_simple.json", "ts/fit_simple.json"],
                 {"F": ["fit file", "transfer"], "ts": ["plot sweep"]}),
    "transfer.json": (["ts/transfer.json"], {"ts": ["plot sweep"]}),
    "time_law.json": (["ts/time_law.json"], None),
    "inits.json": (["ts/inits.json"], None),
    "sweep summary.json": (["ts/summary.json"], None),
}


# ------------------------------------------------------------------ mutations

KINDS = ("type", "sign", "nan/inf", "huge", "empty", "missing")


def json_paths(obj, prefix=()):
    """Every place in a JSON value (keys at any depth; of a list its first and last
    item), as key/index tuples."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += json_paths(v, prefix + (k,))
    elif isinstance(obj, list) and obj:
        for i in sorted({0, len(obj) - 1}):
            out += json_paths(obj[i], prefix + (i,))
    return out


def mutate_value(v, kind, choose):
    """The value ``v`` changed in the way ``kind`` (not "missing"); ``choose(options,
    label)`` picks one of a list."""
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "sign" and not number:
        kind = "type"                               # (a sign only numbers have)
    if kind == "type":
        others = [x for x in ("abc", 7, 2.5, True, None, [1], {"a": 1}) if type(x) is not type(v)]
        return choose(others, "new type")
    if kind == "sign":
        return -v if v != 0 else -1
    if kind == "nan/inf":
        return choose([float("nan"), float("inf"), float("-inf"), "inf"], "nan")
    if kind == "huge":
        if isinstance(v, list):
            return v * 10_000
        if isinstance(v, str):
            return v * 100_000
        return 10**30 if isinstance(v, int) and not isinstance(v, bool) else 1e300
    return {list: [], dict: {}, str: ""}.get(type(v), "")           # empty


def mutate_json(path, choose):
    """One field of JSON file ``path`` changed; returns what was done."""
    with open(path) as fh:
        obj = json.load(fh)
    where = choose(json_paths(obj) or [()], "field")
    kind = choose(list(KINDS), "kind")
    if where == ():
        obj = {} if kind == "missing" else mutate_value(obj, kind, choose)
    else:
        node = obj
        for k in where[:-1]:
            node = node[k]
        if kind == "missing":
            del node[where[-1]]
        else:
            node[where[-1]] = mutate_value(node[where[-1]], kind, choose)
    with open(path, "w") as fh:
        json.dump(obj, fh)                           # NaN and Infinity as JSON's tokens
    return f"{kind} at {'.'.join(map(str, where)) or 'the top'}"


def mutate_npz(path, choose):
    """One array of NPZ file ``path`` changed (still a valid NPZ, no pickle); returns
    what was done."""
    with zipfile.ZipFile(path) as z:
        names = sorted(n[:-4] for n in z.namelist())
    with np.load(path, allow_pickle=False) as z:
        arrays = dict(z)
    name = choose(names, "member")
    kind = choose(list(KINDS), "kind")
    a = arrays[name]
    if kind == "sign" and a.dtype.kind not in "fib":
        kind = "type"                               # (a sign only numbers have)
    if kind == "missing":
        del arrays[name]
    elif kind == "type":
        arrays[name] = (a.astype(np.int64) if a.dtype.kind == "f" else
                        a.astype(np.float64) if a.dtype.kind in "iub" else np.zeros(a.shape))
    elif kind == "sign":
        arrays[name] = ~a if a.dtype.kind == "b" else -a
    elif kind == "nan/inf":
        b = (a.astype(np.float64) if a.dtype.kind in "fiub" else np.zeros(a.shape)).ravel()
        if b.size:
            b[0] = choose([np.nan, np.inf, -np.inf], "nan")
        arrays[name] = b.reshape(a.shape)
    elif kind == "huge":
        with np.errstate(over="ignore"):
            big = a * 1e300 if a.dtype.kind == "f" else None
        arrays[name] = (big if a.dtype.kind == "f" else
                        np.full(a.shape, 2**62, dtype=np.int64) if a.dtype.kind in "iub" else
                        np.repeat(a, 1000))
    else:
        arrays[name] = a[:0] if a.ndim else np.zeros(0, dtype=a.dtype)
    np.savez(path, **arrays)
    return f"{kind} of {name}"


def mutate(path, choose):
    """One field of the file ``path`` (JSON or NPZ) changed; returns what was done."""
    return (mutate_npz if path.endswith(".npz") else mutate_json)(path, choose)


# ------------------------------------------------------------------ outcomes

def snapshot(top):
    """{relative path: bytes} of every file under ``top``."""
    out = {}
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, top)] = fh.read()
    return out


def outcome(result, caught, before, after, names, clean_code):
    """What one command did with a bad input: "refused" (exit code 2, one line naming
    each of ``names``, nothing written), "different" (refused so as another
    configuration's directory: "... differs in: ..."), "accepted" (the exit code of the
    undamaged case, ``clean_code``, without a warning), or what went wrong:
    "traceback", "wrote then refused", "refused naming no file", "not one line",
    "accepted with warnings", "accepted silently" (where a refusal was due: a
    ``clean_code`` of -1), "exit code N"."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback"
    changed = before != after
    one_line = result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: ")
    if one_line and all(n in lines[0] for n in names):
        return "wrote then refused" if changed else (
            "different" if " differs in: " in lines[0] else "refused")
    if result.exit_code == clean_code and (clean_code == 0 or not changed):
        return "accepted with warnings" if caught else "accepted"   # as the undamaged case
    if result.exit_code == 0:
        return "accepted silently"
    if changed:
        return "wrote then refused"
    return ("refused naming no file" if one_line else "not one line" if result.exit_code == 2
            else f"exit code {result.exit_code}")


GOOD = {"refused", "different", "accepted"}


def file_case(top, pristine, cli, rel, choose, clean_codes):
    """Damage one field of fixture file ``rel`` (a copy of ``pristine`` in ``top``) and
    run every command that reads it. Returns (what was done, {command: outcome}, the
    case's verdict: "ok" or what went wrong)."""
    shutil.rmtree(top, ignore_errors=True)
    shutil.copytree(pristine, top)
    path = os.path.join(top, rel)
    what = mutate(path, choose)
    file_type = next(k for k, (files, _) in FILES.items() if rel in files)
    readers = FILES[file_type][1]
    fixture = rel.split("/")[0]
    cmds = commands(top, cli)
    if readers is None:                     # an output only: --summary rewrites it
        result, caught = invoke(*cmds["summary"])
        with open(path, "rb") as fh, open(os.path.join(pristine, rel), "rb") as ref:
            same = fh.read() == ref.read()
        ok = result.exit_code == 0 and not caught and same
        return what, {"summary": "rewritten" if ok else "not rewritten"}, "ok" if ok else "not rewritten"
    out = {}
    names = [os.path.basename(path), os.path.dirname(path)]
    for name in readers[fixture]:
        before = snapshot(os.path.join(top, fixture))
        result, caught = invoke(*cmds[name])
        out[name] = outcome(result, caught, before, snapshot(os.path.join(top, fixture)), names,
                            clean_codes[name])
        if name in getattr(clean_codes, "failures", {}) and out[name] not in ("refused", "different"):
            out[name] = "undamaged case fails"
    bad = [v for v in out.values() if v not in GOOD]
    verdicts = set(out.values())
    verdict = (bad[0] if bad else "one refuses, another accepts"
               if {"refused", "accepted"} <= verdicts else "ok")
    return what, out, verdict


# the undamaged fixtures' sweep has no measured transition: a fit or a transfer of it is
# refused (exit code 2); every other command succeeds
CLEAN_EXIT_CODES = {"fit sweep": 2, "transfer sweep": 2}


class CleanExitCodes(dict):
    """command name -> its exit code on an undamaged copy of the fixtures ``pristine``
    (run in ``top`` the first time it is asked for). A code other than that of
    :data:`CLEAN_EXIT_CODES` (default 0), or a warning, is a failure of the undamaged
    case: RuntimeError with its output (``strict``), or recorded in ``failures`` and
    every damaged case of that command judged "undamaged case fails" (a probe that
    compared with a failing undamaged case would count every damaged case failing alike
    as read)."""

    def __init__(self, pristine, top, cli, strict=True):
        super().__init__()
        self.pristine, self.top, self.cli, self.strict = pristine, top, cli, strict
        self.failures = {}

    def __missing__(self, name):
        shutil.rmtree(self.top, ignore_errors=True)
        shutil.copytree(self.pristine, self.top)
        result, caught = invoke(*commands(self.top, self.cli)[name])
        shutil.rmtree(self.top, ignore_errors=True)
        if result.exit_code != CLEAN_EXIT_CODES.get(name, 0) or caught:
            what = (f"exit code {result.exit_code}, {len(caught)} warnings: "
                    + (result.output.strip().splitlines() or [""])[-1][:300])
            if self.strict:
                raise RuntimeError(f"{name} on the undamaged fixtures: {what}")
            self.failures[name] = what
        self[name] = result.exit_code
        return self[name]


# ------------------------------------------------------------------ the named cases

def _edit(path, change):
    with open(path) as fh:
        obj = json.load(fh)
    change(obj)
    with open(path, "w") as fh:
        json.dump(obj, fh)


def _nan_series_checkpoint(top):
    from gmmdiff.training.config import TrainConfig
    from gmmdiff.training.state import initial_state
    cfg = TrainConfig(dim=3, components=2, samples=8, steps=60, noise_draws=2, eval_samples=10)
    ds = cfg.dataset()
    state = initial_state(ds, [4], cfg, np, labels=["run:M=4"])
    params = {k: (v[0] if k == "std" else v[0, :4]) for k, v in state.params.items()}
    values = {k: np.asarray([v], dtype=np.float64)
              for k, v in cfg.family().track(ds, 4, params, cfg, np).items()}
    values["ratio"] = np.array([np.nan])
    state.record_eval(0, values)
    state.save(os.path.join(top, "run", "checkpoint.npz"))


def _count_above_n(m):
    m["along_training"]["count"][-1] = m["along_training"]["n"][-1] + 5


# (name, damage of the fixtures in top, command, the fixture it writes into, what the
# refusal names); the options' cases name the option and write into top/new
NAMED = [
    ("item 5: a size added to a run whose finished model_M00002.json is damaged",
     lambda t: _edit(f"{t}/run/model_M00002.json", lambda m: m.__setitem__("memorization", "high")),
     "train +M=4", "run", "model_M00002.json"),
    ("item 5: a checkpoint whose series along training holds NaN",
     _nan_series_checkpoint, "train +M=4", "run", "checkpoint.npz"),
    ("item 5: plot of a sweep with a damaged transfer.json (sources a string)",
     lambda t: _edit(f"{t}/ts/transfer.json", lambda o: o.__setitem__("sources", "x")),
     "plot sweep", "ts", "transfer.json"),
    ("item 5: plot of a sweep with a damaged transfer.json (a mean a string)",
     lambda t: _edit(f"{t}/ts/transfer.json", lambda o: o["measured"].__setitem__("1", {"mean": "a"})),
     "plot sweep", "ts", "transfer.json"),
    ("item 5: plot of a sweep whose sizes' series are at different steps",
     lambda t: _edit(f"{t}/ts/N8-d3-K2-s0/model_M00008.json", lambda m: m["along_training"].__setitem__(
         "steps", [s + 1 for s in m["along_training"]["steps"]])), "plot sweep", "ts", "model_M00008.json"),
    ("item 6: summary.json with configs a string, --fit",
     lambda t: _edit(f"{t}/F/summary.json", lambda s: s.__setitem__("configs", "x")), "fit", "F", "summary.json"),
    ("item 6: summary.json with configs a string, --transfer",
     lambda t: _edit(f"{t}/F/summary.json", lambda s: s.__setitem__("configs", "x")), "transfer", "F",
     "summary.json"),
    ("item 6: summary.json with identity [1], --fit",
     lambda t: _edit(f"{t}/F/summary.json", lambda s: s.__setitem__("identity", [1])), "fit", "F", "summary.json"),
    ("item 6: summary.json with identity [1], --transfer",
     lambda t: _edit(f"{t}/F/summary.json", lambda s: s.__setitem__("identity", [1])), "transfer", "F",
     "summary.json"),
    ("item 6: summary.json whose times are empty, --fit",
     lambda t: _edit(f"{t}/F/summary.json", lambda s: s.__setitem__("times", [])), "fit", "F", "summary.json"),
    ("item 6: plan.json whose coarse sizes are floats (an unfinished configuration)",
     lambda t: (os.unlink(f"{t}/ts/N8-d3-K2-s0/transition.json"),
                _edit(f"{t}/ts/N8-d3-K2-s0/plan.json", lambda p: p.__setitem__("coarse", [4.0, 8.0]))),
     "sweep", "ts", "plan.json"),
    ("item 6: sweep.json with samples [10^20], --summary",
     lambda t: _edit(f"{t}/ts/sweep.json", lambda s: s["identity"].__setitem__("samples", [10**20])),
     "summary", "ts", "sweep.json"),
    ("item 6: a series whose count exceeds n, --summary",
     lambda t: _edit(f"{t}/ts/N8-d3-K2-s0/model_M00008.json", _count_above_n), "summary", "ts",
     "model_M00008.json"),
    ("item 6: a series whose count exceeds n, plot",
     lambda t: _edit(f"{t}/ts/N8-d3-K2-s0/model_M00008.json", _count_above_n), "plot sweep", "ts",
     "model_M00008.json"),
    ("item 6: a fit file whose times are empty, --transfer",
     lambda t: _edit(f"{t}/F/fit_simple.json", lambda f: f.__setitem__("times", [])), "transfer", "F",
     "fit_simple.json"),
]
OPTIONS = [
    ("item 7: --eval-steps 0,,5", "train", TINY + ["--eval-steps", "0,,5"], "--eval-steps"),
    ("item 7: --inits pmem,,prior", "sweep", TS[:-1] + ["--inits", "pmem,,prior"], "--inits"),
    ("item 7: --track-noise-draws with --eval-steps none", "train",
     TINY + ["--eval-steps", "none", "--track-noise-draws", "3"], "--track-noise-draws"),
    ("item 7: --preset time --eval-steps none", "sweep", ["--preset", "time", "--eval-steps", "none"]
     + TINY_GRID, "--eval-steps"),
    ("item 7: --preset given twice", "sweep", ["--preset", "time", "--preset", "cpu"] + TINY_GRID,
     "--preset"),
    ("item 7: --data-var 1e300", "train", TINY + ["--data-var", "1e300"], "data_var"),
]


def named_cases(pristine, top, cli):
    """[(name, outcome)] of the named cases of issue 37, items 5-7."""
    out = []
    for name, damage, cmd, fixture, file_name in NAMED:
        shutil.rmtree(top, ignore_errors=True)
        shutil.copytree(pristine, top)
        damage(top)
        before = snapshot(os.path.join(top, fixture))
        result, caught = invoke(*commands(top, cli)[cmd])
        out.append((name, outcome(result, caught, before, snapshot(os.path.join(top, fixture)),
                                  [file_name], -1)))           # (each must be refused)
    for name, script, args, option in OPTIONS:
        new = os.path.join(top, "new")
        shutil.rmtree(new, ignore_errors=True)
        result, caught = invoke(cli[script], args + ["--out", new])
        written = os.path.exists(new)
        out.append((name, outcome(result, caught, {}, {"new": b""} if written else {}, [option], -1)))
    return out


def probe(per_type=10, seed=0, root=ROOT, workdir=None):
    """Run the named cases and ``per_type`` damaged copies of each file type; returns a
    dict of the outcomes (see :func:`outcome`)."""
    cli = scripts(root)
    work = workdir or tempfile.mkdtemp(prefix="gmmdiff-probe-")
    pristine, top = os.path.join(work, "pristine"), os.path.join(work, "top")
    os.makedirs(pristine, exist_ok=True)
    build(pristine, cli)
    codes = CleanExitCodes(pristine, os.path.join(work, "clean"), cli, strict=False)
    rng = random.Random(seed)
    choose = (lambda options, label: options[rng.randrange(len(options))])  # noqa: E731
    cases = []
    for file_type, (files, _) in FILES.items():
        for _ in range(per_type):
            rel = choose(files, "file")
            what, outs, verdict = file_case(top, pristine, cli, rel, choose, codes)
            cases.append({"type": file_type, "file": rel, "what": what, "outcomes": outs,
                          "verdict": verdict})
    named = named_cases(pristine, top, cli)
    if workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return {"root": root, "seed": seed, "per_type": per_type, "clean_exit_codes": dict(codes),
            "clean_failures": codes.failures,
            "named": named, "files": cases}


def report(r):
    """The probe's result as text."""
    lines = [f"named cases of issue 37 (items 5-7), scripts of {r['root']}:"]
    for name, o in r["named"]:
        lines.append(f"  {'ok ' if o == 'refused' else 'BAD'} {name}: {o}")
    ok = sum(o == "refused" for _, o in r["named"])
    lines.append(f"  {ok} of {len(r['named'])} refused cleanly (exit 2, one line naming the file "
                 "or option, nothing written)")
    for name, what in r["clean_failures"].items():
        lines.append(f"the UNDAMAGED fixtures fail in {name}: {what}")
    lines.append(f"damaged files, {r['per_type']} per file type (seed {r['seed']}):")
    by_type = {}
    for c in r["files"]:
        by_type.setdefault(c["type"], []).append(c)
    for t, cs in by_type.items():
        good = [c for c in cs if c["verdict"] == "ok"]
        refused = sum(any(o in ("refused", "different") for o in c["outcomes"].values()) for c in good)
        lines.append(f"  {t:<19} {len(good)}/{len(cs)} as promised ({refused} refused, "
                     f"{len(good) - refused} valid and accepted or rewritten)")
        for c in cs:
            if c["verdict"] != "ok":
                lines.append(f"      BAD {c['file']}: {c['what']}: {c['outcomes']}")
    good = sum(c["verdict"] == "ok" for c in r["files"])
    lines.append(f"  {good} of {len(r['files'])} damaged copies handled as promised")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-type", type=int, default=10, help="damaged copies per file type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=ROOT, help="the checkout whose bin/ scripts run")
    parser.add_argument("--json", help="also write the outcomes to this JSON file")
    args = parser.parse_args()
    r = probe(args.per_type, args.seed, args.root)
    print(report(r))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(r, fh, indent=1, default=str)


if __name__ == "__main__":
    sys.exit(main())
