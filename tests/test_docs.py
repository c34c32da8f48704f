"""README.rst and the documentation site (docs/) run as written.

Each page is run as a user would, in a fresh directory, block after block in document
order (:func:`test_page_runs_as_written`):

- ``.. code-block:: python``: executed, in one namespace per page;
- ``.. code-block:: pycon``: run as a doctest (``>>>`` lines and their output);
- ``.. code-block:: console``: every ``$`` line runs in bash and must exit 0; the lines
  shown below it are compared with what it printed (text exactly, numbers within
  :data:`ABS_TOL` or :data:`REL_TOL`, ``...`` matching anything;
  ``GMMDIFF_DOCS_EXACT=1``: digit for digit);
- a comment ``.. parse-only: <why>`` before a block: its commands are not run but
  parsed (each ``gmmdiff-*`` command by click, with the paths it reads created empty);
  used for what takes more than ~30 s, installs, or needs a GPU;
- a comment ``.. expect-exit: N`` before a block: its commands must exit with N, and
  the shown lines are compared with their stderr.

The longer tables are compared with a fresh run by their own tests below, and the keys
of every file a run and a sweep write must be named in docs/files.rst.
"""
import contextlib
import doctest
import glob
import io
import json
import os
import re
import shlex
import subprocess
import sys

import click
import numpy as np
import pytest

import gmmdiff
from test_cli import ROOT, load_script

DOCS = os.path.join(ROOT, "docs")
PAGES = ["README.rst"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(DOCS, "**", "*.rst"),
                                                                              recursive=True))
ABS_TOL, REL_TOL = 0.06, 0.15       # another CPU's table differs in the last digits
EXACT = os.environ.get("GMMDIFF_DOCS_EXACT") == "1"
COMMAND_TIMEOUT_S = 300             # the docs promise under ~30 s; a loaded machine is slower


# ------------------------------------------------------------------ reading the pages

class Block:
    def __init__(self, page, line, lang, text, marker):
        self.page, self.line, self.lang, self.text, self.marker = page, line, lang, text, marker

    def __repr__(self):
        return f"{self.page}:{self.line} ({self.lang})"

    def commands(self):
        """[(command, shown output lines)] of a console block; continuation lines (a
        trailing backslash) joined."""
        out, lines = [], self.text.splitlines()
        k = 0
        while k < len(lines):
            ln = lines[k]
            if ln.startswith("$ "):
                cmd = ln[2:]
                while cmd.endswith("\\") and k + 1 < len(lines):
                    k += 1
                    cmd = cmd[:-1] + " " + lines[k].strip()
                out.append([cmd, []])
            elif out:
                out[-1][1].append(ln)
            k += 1
        return [(c, [ln for ln in shown if ln.strip()]) for c, shown in out]


MARKER = re.compile(r"^\.\. (parse-only|expect-exit): *(.*)$")
DIRECTIVE = re.compile(r"^( *)\.\. code-block:: *(\w+) *$")


def blocks(page):
    """The code blocks of ``page`` in document order, each with the marker comment
    (``("parse-only", why)`` or ``("expect-exit", "2")``) written just before it."""
    lines = open(os.path.join(ROOT, page), encoding="utf-8").read().splitlines()
    out, marker, k = [], None, 0
    while k < len(lines):
        ln = lines[k]
        m, d = MARKER.match(ln), DIRECTIVE.match(ln)
        if m:
            marker = (m.group(1), m.group(2).strip())
        elif d:
            indent, start = len(d.group(1)), k + 1
            k += 1
            while k < len(lines) and lines[k].strip().startswith(":"):
                k += 1                                   # directive options
            body = []
            while k < len(lines) and (not lines[k].strip() or
                                      len(lines[k]) - len(lines[k].lstrip()) > indent):
                body.append(lines[k])
                k += 1
            while body and not body[-1].strip():
                body.pop()
            width = min(len(b) - len(b.lstrip()) for b in body if b.strip())
            text = "\n".join(b[width:] for b in body).strip("\n") + "\n"
            out.append(Block(page, start, d.group(2), text, marker))
            marker = None
            continue
        elif ln.strip():
            marker = None
        k += 1
    return out


# ------------------------------------------------------------------ comparing output

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
PIECE = re.compile(rf"(\.\.\.|{NUMBER}|\s+)")


def _pattern(expected):
    """(regex, expected numbers) of one shown line."""
    parts, numbers = [], []
    for piece in PIECE.split(expected.strip()):
        if not piece:
            continue
        if piece == "...":
            parts.append(".*?")
        elif re.fullmatch(NUMBER, piece):
            parts.append(f"({NUMBER})")
            numbers.append(piece)
        elif piece.isspace():
            parts.append(r"\s+")
        else:
            parts.append(re.escape(piece))
    return "".join(parts), numbers


def _close(expected, got, exact):
    """Whether a printed number matches the shown one: integers (sizes, counts)
    exactly; numbers of 0.01 and more within ABS_TOL or REL_TOL; smaller ones within
    REL_TOL, or, written with an exponent (a memorizing model's variance, 1e-9), within
    a factor of 3."""
    if exact or not re.search(r"[.eE]", expected):
        return expected == got
    a, b = float(expected), float(got)
    if abs(a) >= 0.01:
        return abs(a - b) <= max(ABS_TOL, REL_TOL * abs(a))
    if re.search(r"[eE]", expected):
        return a == b or (a * b > 0 and 1 / 3 <= b / a <= 3)
    return abs(a - b) <= REL_TOL * abs(a)


def compare_output(shown, printed, where, exact=None):
    """Assert that ``printed`` (a command's output) matches the ``shown`` lines."""
    if not shown:
        return
    exact = EXACT if exact is None else exact
    got = [ln.rstrip() for ln in printed.rstrip("\n").splitlines() if ln.strip()]
    assert len(got) == len(shown), (f"{where}: {len(shown)} lines shown, {len(got)} printed:\n"
                                    + "\n".join(got))
    for exp, act in zip(shown, got):
        pattern, numbers = _pattern(exp)
        m = re.fullmatch(pattern, act.strip())
        assert m, f"{where}: shown\n  {exp.strip()}\nprinted\n  {act.strip()}"
        for e, g in zip(numbers, m.groups()):
            assert _close(e, g, exact), f"{where}: {e} shown, {g} printed in\n  {act.strip()}"


def test_compare_output_tolerates_rounding_and_catches_stale_tables():
    shown = ["     6   0.25       0.03    [0.02, 0.05]      0.197       6.408        9.32",
             "results in /.../runs/x (... s)"]
    compare_output(shown, "     6   0.25       0.04    [0.02, 0.06]      0.199       6.41        9.3\n"
                          "results in /tmp/a/runs/x (12.5 s)\n", "ok", exact=False)
    with pytest.raises(AssertionError):       # the stale templates row: 0.30 [0.19, 0.44]
        compare_output(shown[:1], "     6   0.25       0.30    [0.19, 0.44]      0.197       6.408        9.32",
                       "stale", exact=False)
    with pytest.raises(AssertionError):       # a size is an integer: exactly
        compare_output(["refinement adds 2 sizes (5, 10)"], "refinement adds 2 sizes (6, 10)", "sizes")
    with pytest.raises(AssertionError):       # a small error is compared relatively
        compare_output(["held-out MSE 0.00103"], "held-out MSE 0.00027", "mse", exact=False)
    compare_output(["variance 9.67e-10"], "variance 2.1e-09", "tiny", exact=False)


# ------------------------------------------------------------------ running the pages

def _env():
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("GMMDIFF_PROGRESS_SECONDS", None)
    return env


def run_command(cmd, cwd, expect=0):
    r = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=_env(), capture_output=True, text=True,
                       timeout=COMMAND_TIMEOUT_S)
    assert r.returncode == expect, (f"$ {cmd}\nexit {r.returncode} (expected {expect})\n"
                                    f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def parse_command(cmd, cwd):
    """Parse every ``gmmdiff-*`` command of a shell line with click, after creating the
    paths it reads (empty files and directories, as the commands before it would)."""
    for part in re.split(r"&&|;|\|\|", cmd):
        part = part.split(" #")[0].strip()
        if not re.match(r"gmmdiff-(train|sweep|predict|plot)\b", part):
            continue
        words = []
        for w in shlex.split(part.replace("${SLURM_ARRAY_TASK_ID}", "0")):
            if w in (">", ">>", "|", "2>", "2>&1"):
                break
            words.append(w)
        for w in words[1:]:
            if "/" in w and not w.startswith("-") and not os.path.isabs(w):
                path = os.path.join(cwd, w)
                if re.search(r"\.(json|gz|npy|npz)$", w):
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    open(path, "a").close()
                else:
                    os.makedirs(path, exist_ok=True)
        main = load_script(words[0])
        with main.make_context(words[0], words[1:]) as ctx:
            assert isinstance(ctx, click.Context)


def run_page(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    ran = 0
    for b in blocks(page):
        parse_only = b.marker is not None and b.marker[0] == "parse-only"
        expect = int(b.marker[1]) if b.marker is not None and b.marker[0] == "expect-exit" else 0
        where = repr(b)
        if b.lang == "python":
            code = compile(b.text, where, "exec")
            if not parse_only:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(code, namespace)
                ran += 1
        elif b.lang == "pycon":
            test = doctest.DocTestParser().get_doctest(b.text, namespace, where, page, b.line)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            report = io.StringIO()
            runner.run(test, out=report.write, clear_globs=False)
            assert runner.failures == 0, report.getvalue()
            ran += 1
        elif b.lang == "console":
            for cmd, shown in b.commands():
                if parse_only:
                    parse_command(cmd, str(tmp_path))
                    continue
                r = run_command(cmd, str(tmp_path), expect)
                compare_output(shown, r.stderr if expect else r.stdout, f"{where}: $ {cmd}")
                ran += 1
    return ran


RUNNABLE = [p for p in PAGES if any(b.lang in ("python", "pycon", "console") for b in blocks(p))]


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_runs_as_written(page, tmp_path, monkeypatch):
    run_page(page, tmp_path, monkeypatch)


def test_every_shell_example_is_run_or_says_why_not():
    """A console block is run, or marked parse-only with its reason; every command of
    the four scripts appears somewhere in README or the guide."""
    names = set()
    for page in PAGES:
        for b in blocks(page):
            if b.lang != "console":
                continue
            if b.marker is not None and b.marker[0] == "parse-only":
                assert len(b.marker[1]) > 10, f"{b}: parse-only needs its reason"
            for cmd, _ in b.commands():
                names |= set(re.findall(r"\b(gmmdiff-(?:train|sweep|predict|plot))\b", cmd))
    assert names == {"gmmdiff-train", "gmmdiff-sweep", "gmmdiff-predict", "gmmdiff-plot"}


# ------------------------------------------------------------------ the longer tables

def shown_block(page, prefix, *, whole=False):
    """(command, shown lines) of the console command of ``page`` starting with
    ``prefix`` (``whole``: equal to it)."""
    for b in blocks(page):
        for cmd, shown in (b.commands() if b.lang == "console" else []):
            if cmd == prefix or (not whole and cmd.startswith(prefix + " ")):
                return cmd, shown
    raise AssertionError(f"no command {prefix!r} in {page}")


def test_templates_table_matches_a_fresh_run(tmp_path):
    """The templates table of the guide (README showed one 4 sizes of 8 stale, with
    intervals of 50 samples) against the command run now: about 35 s of CPU."""
    cmd, shown = shown_block("docs/guide/templates.rst", "gmmdiff-train --model templates --model-sizes")
    r = run_command(cmd, str(tmp_path))
    compare_output(shown, r.stdout, "docs/guide/templates.rst")


@pytest.mark.skipif(os.environ.get("GMMDIFF_DOCS_FULL") != "1",
                    reason="the built-in job takes about a minute of CPU: GMMDIFF_DOCS_FULL=1 runs it")
def test_builtin_job_table_matches_a_fresh_run(tmp_path):
    cmd, shown = shown_block("docs/getting_started.rst", "gmmdiff-train", whole=True)
    assert cmd == "gmmdiff-train" and len(shown) == 13
    r = run_command(cmd, str(tmp_path))
    compare_output(shown, r.stdout, "docs/getting_started.rst")


def _table(page, anchor=""):
    """The lines of the first table (header to 'results in') after ``anchor``."""
    text = open(os.path.join(ROOT, page), encoding="utf-8").read()
    lines = text[text.index(anchor):].splitlines()
    start = next(i for i, ln in enumerate(lines) if "M/N mem. ratio" in ln)
    end = next(i for i, ln in enumerate(lines) if i > start and "results in" in ln)
    return [ln.strip() for ln in lines[start:end + 1]]


def test_readme_and_the_docs_show_the_same_builtin_table():
    readme = _table("README.rst")
    docs = _table("docs/getting_started.rst", "$ gmmdiff-train\n")
    assert len(readme) == 13 and readme == docs


def test_builtin_job_time_is_stated_the_same_everywhere():
    """One time for the built-in job, the record's (docs/measurements.json): README said
    40 seconds, --help a minute, when it was measured at 28.6 s."""
    from click.testing import CliRunner
    help_text = " ".join(CliRunner().invoke(load_script("gmmdiff-train"), ["--help"]).output.split())
    places = {
        "README.rst": " ".join(open(os.path.join(ROOT, "README.rst")).read().split()),
        "docs/getting_started.rst": " ".join(open(os.path.join(DOCS, "getting_started.rst")).read().split()),
        "gmmdiff-train --help": help_text,
        "bin/gmmdiff-train": " ".join(open(os.path.join(ROOT, "bin", "gmmdiff-train")).read().split()),
    }
    for where, text in places.items():
        found = set(re.findall(r"(about (?:a minute|\d+ seconds|\d+ s\b|half a minute|\d+ minutes?)) on 2 (?:idle )?CPU cores",
                               text))
        assert found == {RECORD["builtin_job"]["about"]}, (where, found)


# ------------------------------------------------------------------ numbers that cannot rot

# The times and counts README and the docs state about gmmdiff itself, each with its
# date, machine, load and version, and the sentences that state them (templates);
# benchmarks/measure_stated_numbers.py re-measures them and rewrites those sentences.
RECORD = json.load(open(os.path.join(DOCS, "measurements.json"), encoding="utf-8"))
REMEASURE = "python benchmarks/measure_stated_numbers.py"


def _flat(text):
    return " ".join(text.split())


def test_stated_numbers_are_the_record():
    """Every sentence that states a recorded time or count states the record: one
    changed by hand without the record (or the record without the sentence) fails."""
    for name, entry in RECORD.items():
        assert entry["places"], name
        for place in entry["places"]:
            text = place["text"].format(**entry)
            page = _flat(open(os.path.join(ROOT, place["file"]), encoding="utf-8").read())
            assert _flat(text) in page, (f"{place['file']} does not state {name} as "
                                         f"docs/measurements.json has it: {text!r}")


def test_every_stated_test_count_is_the_record():
    """'687 tests' stood in README while 761 were collected: every count of tests
    stated in README and the docs is the record's."""
    for page in PAGES:
        text = _flat(open(os.path.join(ROOT, page), encoding="utf-8").read())
        for count in re.findall(r"\b(\d[\d,]*) tests\b", text):
            assert int(count.replace(",", "")) == RECORD["suite"]["tests"], (page, count)


def test_the_stated_test_count_is_the_collected_one():
    """The record's test count against the tests collected now, within its margin (a
    count derived at test time: checked, not trusted)."""
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                        os.path.join(ROOT, "tests")], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    now = int(re.search(r"(\d+) tests? collected", r.stdout).group(1))
    stated, margin = RECORD["suite"]["tests"], RECORD["suite"]["margin"]
    assert abs(now - stated) <= margin * stated, (
        f"README and the docs state {stated} tests, {now} are collected (more than "
        f"{margin:.0%} apart): run `{REMEASURE} count --write`")


def test_the_stated_times_were_measured_with_this_version():
    """A test cannot time: each stated time carries its date, machine and load, and was
    measured with this minor version of gmmdiff -- a new version asks for them again."""
    minor = gmmdiff.__version__.split(".")[:2]
    for name, entry in RECORD.items():
        assert {"date", "machine", "load", "gmmdiff", "command"} <= set(entry), name
        assert re.fullmatch(r"20\d\d-\d\d-\d\d", entry["date"]), name
        assert entry["gmmdiff"].split(".")[:2] == minor, (
            f"{name} was measured with gmmdiff {entry['gmmdiff']}, this is {gmmdiff.__version__}: "
            f"run `{REMEASURE} builtin fit suite --write` (the suite takes minutes)")


# ------------------------------------------------------------------ README as a front page

def test_readme_is_a_front_page():
    """README stays short, states today's numbers only and points to the docs: no
    commit hashes, no dated logs (history goes to CHANGELOG.rst)."""
    text = open(os.path.join(ROOT, "README.rst"), encoding="utf-8").read()
    assert len(text.splitlines()) <= 200
    assert not re.search(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b", text), "a commit hash"
    recorded = {e["date"] for e in RECORD.values() if isinstance(e, dict)}   # a stated number's date
    assert set(re.findall(r"\b20\d\d-\d\d-\d\d\b", text)) <= recorded, "a dated log, not a measurement"
    assert "python3 -m venv .venv && . .venv/bin/activate && pip install . && gmmdiff-train" in text
    test_command = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' "
                    "&& python -m pytest -q tests")
    assert test_command in text
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "python -m pytest -q tests" in ci and "sphinx-build -W --keep-going" in ci
    assert "Training time" in text and "added here by the time experiment" not in text


# ------------------------------------------------------------------ the API pages

def test_every_public_name_is_in_the_api_reference():
    api = open(os.path.join(DOCS, "api.rst")).read()
    documented = set(re.findall(r"^\.\. auto(?:function|class|data):: (?:gmmdiff\.)?(\w+)", api, re.M))
    assert documented == set(gmmdiff.__all__)


def test_docstring_examples_of_public_names_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    finder, ran = doctest.DocTestFinder(recurse=False), 0
    for name in gmmdiff.__all__:
        obj = getattr(gmmdiff, name)
        if name == "__version__":
            continue
        for test in finder.find(obj, f"gmmdiff.{name}", globs={}):
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            report = io.StringIO()
            runner.run(test, out=report.write)
            assert runner.failures == 0, report.getvalue()
            ran += len(test.examples)
    assert ran >= 10


# ------------------------------------------------------------------ the files reference

def _keys(obj, skip_values_of=()):
    """Every dict key in ``obj``, recursively (the keys under ``skip_values_of`` are
    names of data -- configurations, data variances -- not of fields: their values'
    keys are collected, not the names)."""
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in skip_values_of and isinstance(v, dict):
                for sub in v.values():
                    out |= _keys(sub, skip_values_of)
                out.add(k)
                continue
            out.add(k)
            out |= _keys(v, skip_values_of)
    elif isinstance(obj, list):
        for v in obj[:3]:
            out |= _keys(v, skip_values_of)
    return out


def test_every_key_of_the_files_a_run_and_a_sweep_write_is_documented(tmp_path):
    from gmmdiff.analysis.fit_files import ASSETS
    from gmmdiff.experiments.sweep.summary import SUMMARY_COLUMNS, summarize, transition_summary
    reference = open(os.path.join(DOCS, "files.rst"), encoding="utf-8").read()
    documented = set(re.findall(r"``([A-Za-z_][\w<>*.]*)``", reference))
    cfg = gmmdiff.TrainConfig(dim=3, components=2, samples=8, steps=40, noise_draws=2, eval_samples=10,
                              eval_noise_draws=2, eval_steps="0,20,40")
    spec = gmmdiff.SweepSpec(samples=(8,), dims=(3,), components=(2,), seeds=(0,), base=cfg, coarse=2, refine=0)
    sweep = tmp_path / "sweep"
    gmmdiff.run_sweep(spec, str(sweep), np, echo=lambda line: None)
    tcfg = gmmdiff.TrainConfig(model="templates", components=2, samples=6, image_size=3, steps=20,
                               noise_draws=2, eval_samples=10, eval_noise_draws=2)
    gmmdiff.run(tcfg, [2, 6], str(tmp_path / "templates"), np)
    files = [p for p in glob.glob(str(tmp_path / "**" / "*.json"), recursive=True)]
    assert {os.path.basename(p) for p in files} >= {"config.json", "index.json", "model_M00004.json",
                                                   "plan.json", "baselines.json", "transition.json",
                                                   "sweep.json"}
    keys = {}
    for p in files:
        keys[p] = _keys(json.load(open(p)))
    for p in glob.glob(str(tmp_path / "**" / "*.npz"), recursive=True):
        keys[p] = set(np.load(p).files)
    summary = transition_summary(str(sweep))
    keys["summary.json"] = _keys(summary)
    for name in ("fit_mc.json", "fit_simple.json"):
        keys[name] = _keys(json.load(open(os.path.join(ASSETS, "cpu_sweep", name))))
    transfer = json.load(open(os.path.join(ASSETS, "svar_sweep", "transfer.json")))
    keys["transfer.json"] = _keys(transfer, skip_values_of=("measured", "per_data_var", "sources"))
    keys["summary.csv"] = set(SUMMARY_COLUMNS)
    assert summarize(str(sweep))[1].splitlines()[0].split(",") == list(SUMMARY_COLUMNS)
    data_names = {"0.5", "1", "2", "mc", "simple", "nearest", "expected", "N", "d", "K"}
    for where, ks in keys.items():
        missing = sorted(k for k in ks - data_names - documented if not re.fullmatch(r"[\d.]+", k))
        assert not missing, f"{os.path.basename(where)}: keys not in docs/files.rst: {missing}"


def test_readme_results_are_the_outputs_the_docs_check():
    """README's headline numbers are copied from command outputs shown (and compared
    with a fresh run) in the docs: the fits' held-out errors from docs/science.rst, the
    s* experiment's measured M_pt/N from docs/guide/predict.rst's transfer table."""
    readme = open(os.path.join(ROOT, "README.rst"), encoding="utf-8").read()
    _, fit_out = shown_block("docs/science.rst", "gmmdiff-predict --fit runs/cpu-shipped")
    held_out = {}
    source = None
    for ln in fit_out:
        if ln.startswith("source "):
            source = ln.split()[1].rstrip(":")
        elif ln.startswith("simplex"):
            held_out[source] = float(ln.split()[4])
    table = dict(re.findall(r"^(mc|simple|expected|nearest)\s+(0\.\d+)\s", readme, re.M))
    assert {k: float(v) for k, v in table.items()} == pytest.approx(held_out, rel=0.02)
    _, transfer = shown_block("docs/guide/predict.rst", "head -4 transfer.txt")
    measured = re.findall(r"(0\.\d{3}) \[(0\.\d{3}),(0\.\d{3})\]", transfer[2])
    readme_row = re.search(r"^measured\s+(.*)$", readme, re.M).group(1)
    assert re.findall(r"(0\.\d{3}) \[(0\.\d{3}), (0\.\d{3})\]", readme_row) == measured[:3]
    assert "0.798" in readme and "0.00032 [0.00020, 0.00060]" in readme and "0.000324 [0.000203, 0.0006]" in fit_out[1]


def test_readme_training_time_numbers_are_the_shipped_experiments():
    """README's init, time-law and size-law numbers are what the shipped summaries give
    (compare_inits; protocol_laws over every N and over N >= 20; compare_protocols)."""
    import json

    from gmmdiff.analysis.fit_files import ASSETS
    from gmmdiff.analysis.inits import compare_inits
    readme = open(os.path.join(ROOT, "README.rst"), encoding="utf-8").read()
    inits = compare_inits(json.load(open(os.path.join(ASSETS, "init_sweep", "summary.json"))))
    for init, m in inits["per_init"].items():
        row = f"{init:<8} {m['mean']:.3f} [{m['interval'][0]:.3f}, {m['interval'][1]:.3f}]    {m['sd']:.3f}"
        assert row in readme, row
    pair = inits["pairs"][0]
    assert f"{pair['mean']:+.3f} [{pair['interval'][0]:+.3f}, {pair['interval'][1]:+.3f}]" in readme
    from gmmdiff.analysis.protocols import compare_protocols, protocol_laws
    names = ("time-adam", "time-sgd", "time-adam-b10", "time-momentum-b10")
    sweeps = {n: json.load(open(os.path.join(ASSETS, "time_protocols", n, "summary.json")))
              for n in names}
    above10 = {n: dict(s, configs=[c for c in s["configs"] if c["N"] >= 20]) for n, s in sweeps.items()}

    def cell(f):
        return f"{f['exponent']:+.2f} [{f['interval'][0]:+.2f}, {f['interval'][1]:+.2f}]"

    for every, late in zip(protocol_laws(sweeps)["rows"], protocol_laws(above10)["rows"]):
        cells = [cell(every["gamma"]), cell(late["gamma"]), cell(every["beta"])]
        row = re.search(r"^\S.*" + r"\s+".join(map(re.escape, cells)) + r"\s", readme, re.M)
        assert row, (every["protocol"], cells)
    size = compare_protocols({n: json.load(open(os.path.join(ASSETS, "size_protocols", n, "summary.json")))
                              for n in ("size-adam", "size-sgd", "size-adam-b5")}, "size-adam")
    for p in size["pairs"]:
        assert f"{p['mean']:+.3f} [{p['interval'][0]:+.3f}, {p['interval'][1]:+.3f}]" in readme, p["other"]


def test_every_module_is_in_the_module_index():
    """docs/layout.rst shows every module's docstring: a new module must be added."""
    index = set(re.findall(r"^\.\. automodule:: (\S+)$",
                           open(os.path.join(DOCS, "layout.rst")).read(), re.M))
    pkg = os.path.dirname(gmmdiff.__file__)
    modules = set()
    for root, _, files in os.walk(pkg):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), os.path.dirname(pkg))[:-3]
                name = rel.replace(os.sep, ".")
                modules.add(name[:-len(".__init__")] if name.endswith(".__init__") else name)
    assert modules - {"gmmdiff.version"} <= index, sorted(modules - index)
