"""The fitted time weights that ship with gmmdiff (gmmdiff/assets/cpu_sweep): they
re-derive from the shipped summary alone, and gmmdiff-predict answers with them."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff.predict import SHIPPED, SOURCES, fit_summary, shipped_fits
from gmmdiff.storage import read_json

from test_cli import load_script

predict_cli = load_script("gmmdiff-predict")
SUMMARY = os.path.join(SHIPPED, "summary.json")


@pytest.fixture(scope="module")
def shipped():
    fits = shipped_fits()
    assert set(fits) == set(SOURCES), "a fit of every source ships"
    return read_json(SUMMARY), fits


def test_the_shipped_summary_records_its_provenance(shipped):
    summary, fits = shipped
    ident = summary["identity"]
    assert ident["base"]["steps"] == 50_000 and ident["base"]["init"] == "pmem"
    assert ident["base"]["grid_size"] == 26 and ident["base"]["noise_draws"] == 10
    assert len(ident["samples"]) >= 3 and len(ident["dims"]) >= 3 and len(ident["components"]) >= 3
    assert len(ident["seeds"]) >= 2
    assert len(summary["configs"]) == (len(ident["samples"]) * len(ident["dims"])
                                       * len(ident["components"]) * len(ident["seeds"]))
    for key in ("gmmdiff_version", "date", "trained_with"):
        assert summary["provenance"][key]
    for fit in fits.values():
        assert fit["provenance"] == summary["provenance"]


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_each_shipped_fit_re_derives_from_the_shipped_summary(shipped, source):
    """Fit again from summary.json alone (no training, no run directory): the same
    split, the same weights and the same errors, within the optimizer's tolerance."""
    summary, fits = shipped
    ship = fits[source]
    again = fit_summary(summary, source, test_fraction=ship["test_fraction"], seed=ship["split_seed"])
    assert again["configs"] == ship["configs"] and again["test"] == ship["test"]
    np.testing.assert_allclose(again["weights"], ship["weights"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(again["predicted"], ship["predicted"], rtol=1e-9, atol=1e-12)
    for key in ("mse_train", "mse_test", "trivial_mse_train", "trivial_mse_test", "trivial_prediction"):
        assert again[key] == pytest.approx(ship[key], rel=1e-9), key
    assert again["beats_trivial_on_test"] == ship["beats_trivial_on_test"]


def test_predict_answers_with_the_shipped_fits_inside_the_range(shipped):
    _, fits = shipped
    result = CliRunner().invoke(predict_cli, ["-N", "20", "-d", "10", "-K", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "shipped fits: the CPU sweep" in out and "inside the fitted range" in out
    assert "EXTRAPOLATION" not in out
    for src in ("simple", "expected", "nearest"):
        fitted = [ln for ln in out.splitlines() if ln.startswith(src) and "fitted" in ln]
        assert len(fitted) == 1, out
        assert f"{fits[src]['mse_test']:.4g}" in fitted[0] and f"{fits[src]['trivial_mse_test']:.4g}" in fitted[0]
        assert ("beats trivial" in fitted[0]) == fits[src]["beats_trivial_on_test"]
    assert f"M*/N = {fits['expected']['trivial_prediction']:.3f}" in out


def test_predict_says_plainly_when_it_extrapolates(shipped):
    _, fits = shipped
    lo_N, hi_N = fits["expected"]["range"]["N"]
    result = CliRunner().invoke(predict_cli, ["-N", str(hi_N + 60), "-d", "50", "-K", "12"])
    assert result.exit_code == 0, result.output
    line = [ln for ln in result.output.splitlines() if ln.startswith("EXTRAPOLATION")]
    assert line and f"N = {hi_N + 60} outside {lo_N}-{hi_N}" in line[0] and "K = 12 outside" in line[0]


def test_a_fit_file_overrides_the_shipped_fits(shipped, tmp_path):
    _, fits = shipped
    own = dict(fits["nearest"], weights=(np.eye(26)[0]).tolist())       # all weight on t_max
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(own))
    result = CliRunner().invoke(predict_cli, ["-N", "20", "-d", "10", "-K", "2", "--fit-file", str(path)])
    assert result.exit_code == 0, result.output
    assert f"fit: {path}" in result.output and "shipped fits" not in result.output
