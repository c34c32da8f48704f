"""What a new user hit on a first try (issue 30): each message says what to do next,
in the terms of this installation."""
import json
import os

import pytest
from click.testing import CliRunner

from gmmdiff import backend
from test_cli import ROOT, SMALL, load_script, train_cli


def test_cupy_hint_names_the_checkout_not_a_package_index(monkeypatch, tmp_path):
    """gmmdiff is installed from a checkout: `pip install 'gmmdiff[cuda12]'` would ask
    PyPI for a package it does not have. The hint names the checkout pip recorded
    (editable or not), or '.' with where to run it."""
    class Dist:
        def __init__(self, text):
            self.text = text

        def read_text(self, name):
            return self.text if name == "direct_url.json" else None

    from importlib import metadata
    url = {"url": "file://" + ROOT, "dir_info": {"editable": True}}
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(json.dumps(url)))
    assert backend.install_command("cuda12") == f"pip install -e '{ROOT}[cuda12]'"
    url = {"url": "file://" + ROOT, "dir_info": {}}
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(json.dumps(url)))
    assert backend.install_command("cuda13") == f"pip install '{ROOT}[cuda13]'"
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(None))
    assert backend.install_command("cuda12") == "pip install '.[cuda12]' (in the gmmdiff checkout)"


def test_unavailable_cupy_hint_is_one_line_with_this_installation(monkeypatch, tmp_path):
    if backend.cupy_available():
        monkeypatch.setattr(backend, "_cupy", None)
        monkeypatch.setattr(backend, "_CUPY_IMPORT_ERROR", "ModuleNotFoundError: No module named 'cupy'")
    result = CliRunner().invoke(train_cli, SMALL + ["--backend", "cupy", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert backend.install_command("cuda12") in result.output


def test_rerun_of_a_finished_run_says_nothing_was_trained(tmp_path):
    out = str(tmp_path / "r")
    first = CliRunner().invoke(train_cli, SMALL + ["--out", out])
    assert first.exit_code == 0, first.output
    assert "nothing trained" not in first.output
    again = CliRunner().invoke(train_cli, SMALL + ["--out", out])
    assert again.exit_code == 0, again.output
    assert "nothing trained: all 2 sizes were already complete" in again.output
    more = CliRunner().invoke(train_cli, [a if a != "2,8" else "2,5,8" for a in SMALL] + ["--out", out])
    assert more.exit_code == 0, more.output
    assert "trained 1 of 3 sizes; M = 2, 8 were already complete" in more.output


@pytest.mark.parametrize("option, words", [
    ("--model-sizes TEXT", ["above N are allowed", "up to", "2N"]),
    ("--components INTEGER", ["K above N is allowed"]),
])
def test_help_says_why_sizes_and_components_above_N_are_allowed(option, words):
    """M > N and K > N are accepted (pmem repeats training points up to 2N; the data
    model is defined for any K): --help says so instead of leaving it a surprise."""
    text = " ".join(CliRunner().invoke(train_cli, ["--help"]).output.split())
    start = text.index(option, text.index("Options:"))
    entry = text[start: start + 400]
    for w in words:
        assert w in entry, entry


predict_cli = load_script("gmmdiff-predict")


@pytest.mark.parametrize("content, says", [
    ("N,d,K,status\n20,10,2,ok\n", "looks like a CSV table"),
    ("not json at all", "this file is not JSON"),
])
def test_fit_file_that_is_not_json_says_what_was_expected(tmp_path, content, says):
    path = tmp_path / ("summary.csv" if "," in content else "fit.json")
    path.write_text(content)
    r = CliRunner().invoke(predict_cli, ["-N", "20", "-d", "10", "-K", "2", "--fit-file", str(path)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "expected the JSON file fit_<source>.json" in r.output and "gmmdiff-predict --fit" in r.output
    assert says in r.output


sweep_cli = load_script("gmmdiff-sweep")
TINY_SWEEP = ["-N", "8", "-d", "3", "-K", "2", "--coarse", "2", "--refine", "0", "--noise-draws", "2",
              "--eval-samples", "10", "--quiet"]


def test_sweep_rerun_with_other_steps_names_the_setting(tmp_path):
    """'differs in: base' told nothing: the setting, its value here and in the directory."""
    out = str(tmp_path / "sw")
    first = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--steps", "20", "--out", out])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(sweep_cli, TINY_SWEEP + ["--steps", "30", "--out", out])
    assert again.exit_code == 2, again.output
    assert "sweep.json differs in: base.steps (here 30, in the directory 20)" in again.output, again.output


def test_identity_differences_follow_nested_settings():
    from gmmdiff.io.files import identity_differences
    found = {"base": {"steps": 20, "lr_peak": 0.001}, "seeds": [0], "backend": "numpy"}
    wanted = {"base": {"steps": 30, "lr_peak": 0.001}, "seeds": [0, 1], "backend": "numpy",
              "inits": ["pmem"]}
    assert identity_differences(found, wanted) == [
        "base.steps (here 30, in the directory 20)", 'inits (here ["pmem"], in the directory absent)',
        "seeds (here [0, 1], in the directory [0])"]


def test_fit_shows_progress_on_stderr(tmp_path):
    """`gmmdiff-predict --fit` ran for a minute in silence on a small sweep (SciPy's
    SLSQP per fold): it now says what it fits and, every few seconds, how far it is."""
    import shutil
    import subprocess
    import sys
    from gmmdiff.analysis.fit_files import SHIPPED
    sweep = tmp_path / "shipped"
    sweep.mkdir()
    shutil.copy(os.path.join(SHIPPED, "summary.json"), sweep / "summary.json")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "gmmdiff-predict"), "--fit", str(sweep),
                        "--source", "simple", "--folds", "2"], capture_output=True, text=True,
                       env=dict(os.environ, GMMDIFF_PROGRESS_SECONDS="0"), timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("fitting source simple: the simplex and SNR^a weightings"), lines
    assert [ln.split(": ")[1].split(",")[0] for ln in lines[1:]] == [f"{k}/6 fits" for k in range(1, 6)]
    assert "ETA" in lines[-1] and "saved" in r.stdout       # the table itself stays on stdout


def test_fit_progress_keeps_quiet_between_intervals():
    from gmmdiff.cli.progress import FitProgress
    said = []
    p = FitProgress("fitting mc", first="fitting source mc: ...", echo=said.append, interval=3600)
    for k in range(0, 7):
        p(k, 6)
    assert said == ["fitting source mc: ..."]
    said.clear()
    p = FitProgress("fitting mc", echo=said.append, interval=0)
    for k in range(0, 7):
        p(k, 6)
    assert len(said) == 5 and said[0].startswith("fitting mc: 1/6 fits, elapsed ")


def _drawn(monkeypatch):
    """Capture the figures sweep_plots saves (the Figure objects, drawn)."""
    from gmmdiff.cli import sweep_plots
    figs = []

    def keep(fig, path):
        fig.canvas.draw()
        figs.append(fig)
    monkeypatch.setattr(sweep_plots, "save_figure", keep)
    monkeypatch.setattr(sweep_plots.pyplot(), "close", lambda fig: None)
    return figs


def _svar_spec():
    import dataclasses
    from gmmdiff.analysis.fit_files import ASSETS
    from gmmdiff.experiments.sweep.spec import SweepSpec
    from gmmdiff.training.config import TrainConfig
    ident = json.load(open(os.path.join(ASSETS, "svar_sweep", "summary.json")))["identity"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return SweepSpec(samples=tuple(ident["samples"]), dims=tuple(ident["dims"]),
                     components=tuple(ident["components"]), seeds=tuple(ident["seeds"]),
                     data_vars=tuple(ident["data_vars"]), coarse=ident["coarse"],
                     refine=ident["refine"],
                     base=TrainConfig(**{k: v for k, v in ident["base"].items() if k in fields}))


@pytest.mark.parametrize("source", ["simple", "expected"])
def test_fig3_legend_covers_no_point_and_identical_fits_stay_visible(monkeypatch, source):
    """The legend sat on the points (upper left, inside the axes); with the "simple"
    source both weightings predict the same constant and the second hid the first."""
    from gmmdiff.cli.sweep_plots import figure3
    from gmmdiff.analysis.fit_files import SHIPPED
    from gmmdiff.io.schemas import read_fit_scores
    figs = _drawn(monkeypatch)
    figure3(read_fit_scores(os.path.join(SHIPPED, f"fit_{source}.json")), "fig3.png",
            "N 20,30,40 x d 10,15,20 x K 2,3,4; 50,000 steps")
    fig = figs[0]
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent()), "the legend lies over the axes"
    markers = [ln for ln in ax.get_lines() if ln.get_marker() in ("o", "s")]
    circle = next(m for m in markers if m.get_marker() == "o")
    square = next(m for m in markers if m.get_marker() == "s")
    assert square.get_markerfacecolor() == "none" and square.get_markersize() > circle.get_markersize()
    assert "N 20,30,40 x d 10,15,20 x K 2,3,4; 50,000 steps" in ax.get_title()


def test_fig3_of_a_sweep_carries_its_settings():
    from gmmdiff.cli.sweep_plots import sweep_settings
    line = sweep_settings(_svar_spec())
    assert line == ("N 20 x d 10 x K 2,3 x s* 0.5,1,2; 50,000 steps, 10 noise draws, eps target, "
                    "seeds 0,1,2,3,4")


def test_shipped_data_variance_figure_has_a_title_and_an_unclipped_y_label(monkeypatch, tmp_path):
    from gmmdiff.cli.sweep_plots import figure3_svar, sweep_settings
    from gmmdiff.analysis.fit_files import ASSETS
    transfer = json.load(open(os.path.join(ASSETS, "svar_sweep", "transfer.json")))
    figs = _drawn(monkeypatch)
    figure3_svar(transfer, "fig.png", subtitle=sweep_settings(_svar_spec()))
    fig = figs[0]
    assert "data-variance experiment" in fig._suptitle.get_text()
    renderer = fig.canvas.get_renderer()
    label = fig.axes[0].yaxis.label.get_window_extent(renderer)
    assert fig.axes[0].get_window_extent().y0 <= label.y0 and label.y1 <= fig.axes[0].get_window_extent().y1
    monkeypatch.undo()
    # the shipped PNG is this figure: a fresh drawing has its size (a title makes it taller)
    fresh = tmp_path / "fig3.png"
    figure3_svar(transfer, str(fresh), subtitle=sweep_settings(_svar_spec()))
    from test_figures import png_size
    w, h = png_size(fresh)
    import pathlib
    sw, sh = png_size(pathlib.Path(ASSETS, "svar_sweep", "fig3_data_variance.png"))
    assert abs(sw - w) <= 0.03 * w and abs(sh - h) <= 0.03 * h and sh > 560


def test_python_m_gmmdiff_names_the_version_the_commands_and_the_docs():
    """`python -m gmmdiff` said "No module named gmmdiff.__main__"."""
    import subprocess
    import sys
    import gmmdiff
    run = lambda *a: subprocess.run([sys.executable, "-m", "gmmdiff", *a], capture_output=True,  # noqa: E731
                                    text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
    r = run()
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith(f"gmmdiff {gmmdiff.__version__}: ")
    scripts = sorted(n for n in os.listdir(os.path.join(ROOT, "bin")) if n.startswith("gmmdiff-"))
    listed = [ln.split()[0] for ln in r.stdout.splitlines() if ln.startswith("  gmmdiff-")]
    assert sorted(listed) == scripts and len(scripts) == 4
    docs = r.stdout.split("Documentation: ")[1].split(" ")[0]
    assert docs == os.path.join(ROOT, "docs") and os.path.isfile(os.path.join(docs, "index.rst"))
    assert run("--version").stdout == f"gmmdiff {gmmdiff.__version__}\n"
    bad = run("train")
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1
    assert "'train'" in bad.stderr and "gmmdiff-train" in bad.stderr


def test_python_m_gmmdiff_says_where_the_commands_are_when_they_are_not_on_path(monkeypatch):
    from gmmdiff import __main__ as entry
    monkeypatch.setattr(entry.shutil, "which", lambda name: None)
    text = entry.overview()
    assert "not on PATH: they are installed in " in text and "gmmdiff-plot not on PATH" in text


@pytest.mark.parametrize("option, name, says", [
    ("--fit", "fit_mc.json", "--fit takes a sweep directory to fit; to predict with a fit file "
                             "give --fit-file {path} (with -N, -d, -K)"),
    ("--fit", "summary.json", "--fit takes the sweep directory that holds it: --fit {dir}"),
    ("--transfer", "fit_mc.json", "--transfer takes a sweep directory (the --out of gmmdiff-sweep)"),
    ("--fits-dir", "fit_mc.json", "--fits-dir takes the directory that holds the fit_<source>.json "
                                  "files (--fits-dir {dir})"),
])
def test_a_file_given_for_a_directory_says_what_to_give(tmp_path, option, name, says):
    """`gmmdiff-predict --fit FILE.json` said "Directory 'FILE.json' is a file."."""
    path = tmp_path / name
    path.write_text("{}")
    args = [option, str(path)] + (["--transfer", str(tmp_path)] if option == "--fits-dir" else [])
    r = CliRunner().invoke(predict_cli, args)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert r.output.strip().endswith(f"{path} is a file; " + says.format(path=path, dir=tmp_path)), r.output


def test_predict_says_which_of_N_d_K_took_their_defaults():
    """`gmmdiff-predict -N 20 -d 10` predicted for K = 2 without a word: --help shows
    each default, and the first line names the options left out."""
    from gmmdiff.training.config import TrainConfig
    help_text = " ".join(CliRunner().invoke(predict_cli, ["--help"]).output.split())
    d = TrainConfig()
    for option, value in (("-K, --components INTEGER", d.components), ("-N, --samples INTEGER", d.samples),
                          ("-d, --dim INTEGER", d.dim)):
        entry = help_text[help_text.index(option):]
        entry = entry[:entry.index("]") + 1]
        assert entry.endswith(f"[default: {value}]"), entry
    first = CliRunner().invoke(predict_cli, ["-N", "20", "-d", "10"]).output.splitlines()[0]
    assert first == f"N = 20, d = 10, K = {d.components}, target eps, process vp (-K not given: its default)"
    first = CliRunner().invoke(predict_cli, ["-N", "20", "-d", "10", "-K", "3"]).output.splitlines()[0]
    assert first == "N = 20, d = 10, K = 3, target eps, process vp"
