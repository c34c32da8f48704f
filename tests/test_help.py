"""Every script: --version, and --help with a line for every option and the defaults
that apply under --model templates and --preset cpu."""
import subprocess
import sys
import os

import click
import pytest
from click.testing import CliRunner

import gmmdiff
from gmmdiff.cli.options import TEMPLATE_DEFAULTS
from gmmdiff.experiments.sweep.presets import PRESETS

from test_cli import ROOT, load_script

SCRIPTS = ("gmmdiff-train", "gmmdiff-sweep", "gmmdiff-predict", "gmmdiff-plot")


@pytest.mark.parametrize("name", SCRIPTS)
def test_version_and_a_help_line_for_every_option(name):
    main = load_script(name)
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"{name} (gmmdiff) {gmmdiff.__version__}\n"
    missing = [p.name for p in main.params if isinstance(p, click.Option) and not p.help]
    assert missing == [], f"{name}: options without help: {missing}"
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0


def test_version_from_the_installed_script_path():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "gmmdiff-train"), "--version"],
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip().endswith(gmmdiff.__version__)


def option_help(main, name):
    return next(p for p in main.params if p.name == name).help


def test_train_help_gives_the_template_defaults_and_the_resume_rule():
    main = load_script("gmmdiff-train")
    for name, value in TEMPLATE_DEFAULTS.items():
        assert f"(--model templates: {value})" in option_help(main, name), name
    text = CliRunner().invoke(main, ["--help"]).output
    assert "Resume: re-running the same command" in text and "is refused" in text


def test_sweep_help_gives_every_preset_and_the_override_rule():
    """Every value a preset sets is in its option's help, training settings (steps,
    target, learning rates, evaluation) as much as the grid (the time preset's 30,000
    steps were not); the --preset help says what the quick preset is."""
    main = load_script("gmmdiff-sweep")
    assert "quick (16 small configurations" in " ".join(option_help(main, "preset").split())
    for preset in PRESETS:
        if preset == "paper":           # its values are the defaults shown
            continue
        for name, value in PRESETS[preset].items():
            text = option_help(main, name)
            assert (f"--preset {preset}: {value}" in text or f"; {preset}: {value}" in text), \
                (preset, name, text)
    text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    assert "Options given explicitly override the preset's" in text
    assert "Resume: re-running the same command" in text


@pytest.mark.parametrize("args, named", [
    (["--steps", "5", "--steps", "6"], "--steps"),
    (["-N", "5", "--samples", "7"], "-N / --samples"),
    (["--steps=5", "--steps", "3"], "--steps"),
    (["-N5", "-N", "6"], "-N"),
    (["--lr", "-1", "--lr", "2"], "--lr"),
])
def test_an_option_given_twice_is_refused_by_predict(args, named, tmp_path):
    args = [a.replace("--steps", "--seed").replace("--lr", "--data-var") for a in args]
    named = named.replace("--steps", "--seed").replace("--lr", "--data-var")
    result = CliRunner().invoke(load_script("gmmdiff-predict"), args)
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: option {named} given more than once; give it once (a second value would "
        "silently replace the first)"]


def test_a_value_that_looks_like_an_option_is_not_counted():
    from gmmdiff.cli.options import repeated_option
    main = load_script("gmmdiff-train")
    assert repeated_option(main, ["--out", "--steps", "--steps", "4"]) is None
    assert repeated_option(main, ["--model-sizes", "2,4", "-M", "3"]) == "--model-sizes / -M"
