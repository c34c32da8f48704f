"""The example gallery (examples/, built into docs/auto_examples by sphinx-gallery).

The docs build (``.ci/run``: ``sphinx-build -W``) executes every example; a failing
one fails it. Here, in seconds: the examples' form (a titled docstring, prose cells,
files only in a temporary directory that they remove), the gallery's wiring in the docs,
and the three examples that train nothing, run as a user runs them.
"""
import ast
import glob
import os
import re
import runpy
import sys

import pytest

from test_cli import ROOT
from test_docs import GENERATED

EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "plot_*.py")))
TRAINING = ("gmmdiff.run", "gmmdiff.run_sweep", "gmmdiff.run_batch")


def _source(path):
    return open(path, encoding="utf-8").read()


def _calls(tree):
    """Dotted names of every call in ``tree`` ('gmmdiff.run', 'tempfile.mkdtemp', ...)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts, f = [], node.func
            while isinstance(f, ast.Attribute):
                parts.append(f.attr)
                f = f.value
            if isinstance(f, ast.Name):
                out.add(".".join([f.id] + parts[::-1]))
    return out


def test_the_gallery_covers_what_the_issue_asked_for():
    names = [os.path.basename(p) for p in EXAMPLES]
    assert len(names) >= 6, names
    topics = " ".join(ast.get_docstring(ast.parse(_source(p))).splitlines()[0] for p in EXAMPLES)
    for topic in ("first run", "sweep", "without training", "along training", "Loading runs",
                  "shipped"):
        assert topic.lower() in topics.lower(), (topic, topics)


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_each_example_is_a_titled_script_with_prose_that_trains_in_a_temporary_directory(path):
    text = _source(path)
    tree = ast.parse(text)
    doc = ast.get_docstring(tree)
    assert doc, f"{path}: sphinx-gallery needs a docstring with the example's title"
    title, underline = doc.splitlines()[:2]
    assert set(underline) == {"="} and len(underline) == len(title), (title, underline)
    assert text.count("\n# %%") >= 2, "prose cells (# %%) between the steps"
    calls = _calls(tree)
    if calls & set(TRAINING):
        # files go to a directory made by tempfile and removed at the end, never into
        # the checkout (sphinx-gallery runs each example with examples/ as the cwd)
        assert "tempfile.mkdtemp" in calls and "shutil.rmtree" in calls, path
        last = text.rstrip().splitlines()[-1]
        assert last.startswith("shutil.rmtree("), f"{path}: the temporary directory goes last"
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not re.match(r"(runs|\./|\.\./)", node.value), \
                f"{path}: a path relative to the working directory, {node.value!r}"


@pytest.mark.parametrize("path", [p for p in EXAMPLES if not _calls(ast.parse(_source(p))) & set(TRAINING)],
                         ids=os.path.basename)
def test_examples_that_train_nothing_run_and_draw(path, tmp_path, monkeypatch):
    """Run as `python examples/plot_X.py` would, in an empty directory: figures drawn,
    nothing written there."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.close("all")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [path])
    runpy.run_path(path, run_name="__main__")
    assert len(plt.get_fignums()) >= 2
    plt.close("all")
    assert os.listdir(tmp_path) == []


def test_the_docs_build_the_gallery():
    """conf.py runs sphinx-gallery on examples/ into the directory tests/test_docs.py
    leaves out of its pages, the index links it, git ignores the generated pages, and
    the docs extra installs what the build needs."""
    conf = _source(os.path.join(ROOT, "docs", "conf.py"))
    assert '"sphinx_gallery.gen_gallery"' in conf
    assert re.search(r'"examples_dirs": "\.\./examples"', conf)
    gallery_dir = re.search(r'^GALLERY_DIR = "(\w+)"', conf, re.M).group(1)
    assert gallery_dir in GENERATED
    assert f"   {gallery_dir}/index" in _source(os.path.join(ROOT, "docs", "index.rst"))
    assert f"/docs/{gallery_dir}/" in _source(os.path.join(ROOT, ".gitignore")).splitlines()
    assert os.path.exists(os.path.join(ROOT, "examples", "GALLERY_HEADER.rst"))
    setup = _source(os.path.join(ROOT, "setup.py"))
    docs_extra = re.search(r'"docs": \[([^\]]*)\]', setup).group(1)
    for package in ("sphinx-gallery", "pydata-sphinx-theme", "sphinx>="):
        assert package in docs_extra, package


def test_every_readme_figure_says_which_command_draws_it():
    """Each figure of README is a file gmmdiff-plot writes, and its caption shows the
    command that draws it and the file's name (README cannot show the gallery's
    figures: they exist only in a built site)."""
    readme = _source(os.path.join(ROOT, "README.rst"))
    assert not re.search(r"^\.\. image::", readme, re.M), "a figure without a caption"
    figures = re.findall(r"^\.\. figure:: (\S+)\n((?:   .*\n|\n)+)", readme, re.M)
    assert figures
    drawn = ("fig1_losses_vs_approximations", "fig2_memorization", "fig2_losses", "fig2_per_time",
             "fig_time_phase", "fig7_seeds")
    for image, body in figures:
        assert os.path.exists(os.path.join(ROOT, image)), image
        caption = " ".join(ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith(":"))
        name = next((f for f in drawn if os.path.basename(image).endswith(f + ".png")), None)
        assert name is not None, f"{image} is not named after a figure gmmdiff-plot draws"
        assert f"{name}.png" in caption and re.search(r"``gmmdiff-[a-z]+ .*gmmdiff-plot \S+``", caption), caption
