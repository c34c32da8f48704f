"""Figures: formats, resolution, and the configuration named in each title."""
import struct

import numpy as np
import pytest
from click.testing import CliRunner

import gmmdiff
from gmmdiff.cli.plotting import figure2, figure_options

from test_cli import load_script

plot_cli = load_script("gmmdiff-plot")
TITLE = "d = 3, K = 2, N = 8, seed 0; 60 steps, 2 noise draws, eps target"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig") / "run"
    cfg = gmmdiff.TrainConfig(dim=3, components=2, samples=8, steps=60, noise_draws=2,
                              eval_samples=10)
    gmmdiff.run(cfg, [2, 4, 8], str(out), np)
    return out


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_svg_figures_name_their_configuration_and_every_line(run_dir):
    result = CliRunner().invoke(plot_cli, [str(run_dir), "--format", "svg"])
    assert result.exit_code == 0, result.output
    names = ("fig2_memorization", "fig2_losses", "fig2_per_time", "fig1_losses_vs_approximations")
    for name in names:
        text = (run_dir / f"{name}.svg").read_text()
        assert text.lstrip().startswith("<?xml") and TITLE in text, name
    per_time = (run_dir / "fig2_per_time.svg").read_text()
    for M, frac in ((2, "0.25"), (4, "0.50"), (8, "1.00")):
        assert f"trained M = {M} ({frac} N)" in per_time
    fig1 = (run_dir / "fig1_losses_vs_approximations.svg").read_text()
    for method in ("simple", "nearest", "expected"):
        assert f"pmem M = 2, {method}" in fig1 and f"pmem M = 4, {method}" in fig1
    losses = (run_dir / "fig2_losses.svg").read_text()
    assert "the partially memorizing baseline" in losses


def test_pdf_and_the_dpi_of_png(run_dir):
    assert CliRunner().invoke(plot_cli, [str(run_dir), "--format", "pdf"]).exit_code == 0
    assert (run_dir / "fig2_losses.pdf").read_bytes()[:5] == b"%PDF-"
    sizes = {}
    for dpi in (60, 120):                   # (figure 2 alone: the CLI passes --dpi the same way)
        with figure_options(fmt="png", dpi=dpi):
            figure2(str(run_dir))
        sizes[dpi] = png_size(run_dir / "fig2_memorization.png")
    ratio = sizes[120][0] / sizes[60][0]
    assert 1.9 < ratio < 2.1, sizes                  # bbox 'tight' rounds by a pixel or so


def test_bad_formats_and_resolutions_are_refused(run_dir, tmp_path):
    bad = CliRunner().invoke(plot_cli, [str(run_dir), "--format", "jpg"])
    assert bad.exit_code == 2 and "'jpg' is not one of 'png', 'pdf', 'svg'" in bad.output
    bad = CliRunner().invoke(plot_cli, [str(run_dir), "--dpi", "5"])
    assert bad.exit_code == 2 and "5 is not in the range 20<=x<=1200" in bad.output
    bad = CliRunner().invoke(plot_cli, ["--figure1", "--out", str(tmp_path / "f.svg"),
                                        "--format", "pdf"])
    assert bad.exit_code == 2 and "disagree" in bad.output
    with pytest.raises(ValueError, match="format 'gif' not supported"):
        with figure_options(fmt="gif"):
            pass
