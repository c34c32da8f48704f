"""The fitted time weights that ship with gmmdiff (gmmdiff/assets/cpu_sweep): they
re-derive from the shipped summary alone, and gmmdiff-predict answers with them."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff.analysis.fits import fit_summary

from gmmdiff.analysis.fit_files import SHIPPED, shipped_fits
from gmmdiff.analysis.predict import SOURCES
from gmmdiff.io.files import read_json

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


def assert_same_to_rounding(got, want, path="summary"):
    """``got == want`` for JSON-like values, floats to 1e-9 relative."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), path
        for k in want:
            assert_same_to_rounding(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_to_rounding(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, (int, float)), path
        assert abs(got - want) <= 1e-9 * abs(want), f"{path}: {got!r} != {want!r}"
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def test_the_shipped_summary_is_measured_by_the_whole_curve_fit(shipped):
    """summary.json holds the whole-curve M_pt (and the two-point rule beside it) as
    re-measured from the curves it holds: measuring again changes nothing but the last
    bits of floats (the fit's arithmetic rounds differently on CPUs with and without
    AVX-512: 0.7959657520170154 against ...071, a dispersion 6e-12 apart, on an AVX2
    EPYC; the fit's optimizer amplifies such roundings), so floats agree to 1e-9
    relative and everything else exactly."""
    from gmmdiff.experiments.sweep.summary import reanalyse_summary
    summary, _ = shipped
    assert_same_to_rounding(reanalyse_summary(summary), summary)
    for c in summary["configs"]:
        assert c["status"] == "ok" and c["interval"][0] < c["M_pt_over_N"] < c["interval"][1]
        assert c["two_point"]["M_pt_over_N"] is not None


@pytest.mark.slow
@pytest.mark.parametrize("source", ["simple", "expected", "nearest"])
def test_each_shipped_fit_re_derives_from_the_shipped_summary(shipped, source):
    """Fit again from summary.json alone (no training, no run directory): the same
    folds, weights, held-out predictions, errors and verdicts, within the optimizer's
    tolerance. ("mc" takes minutes to refit: the next test checks its predictions.)"""
    summary, fits = shipped
    ship = fits[source]
    again = fit_summary(summary, source, n_folds=ship["n_folds"], seed=ship["split_seed"])
    assert again["configs"] == ship["configs"] and again["folds"] == ship["folds"]
    np.testing.assert_allclose(again["weights"], ship["weights"], rtol=1e-6, atol=1e-9)
    for fam_again, fam_ship in ((again, ship), (again["snr_power"], ship["snr_power"])):
        np.testing.assert_allclose(fam_again["predicted"], fam_ship["predicted"], atol=1e-6)
        np.testing.assert_allclose(fam_again["cv_predicted"], fam_ship["cv_predicted"], atol=1e-6)
        for key in ("mse_train", "mse_test", "trivial_mse_train", "trivial_mse_test", "trivial_prediction"):
            assert fam_again[key] == pytest.approx(fam_ship[key], rel=1e-5, abs=1e-12), key
        assert fam_again["verdict"]["verdict"] == fam_ship["verdict"]["verdict"]
    assert again["noise_floor"]["value"] == pytest.approx(ship["noise_floor"]["value"])
    assert again["noise_floor"]["interval"] == pytest.approx(ship["noise_floor"]["interval"])


def test_the_shipped_mc_fit_predicts_what_it_records(shipped):
    """The shipped "mc" weights applied to the summary's Monte Carlo curves give the
    recorded predictions and in-sample errors, and its folds keep every setting whole."""
    from gmmdiff.analysis.fits import setting_of, summary_curves
    from gmmdiff.analysis.predict import _Stack
    summary, fits = shipped
    ship = fits["mc"]
    used, curves, _ = summary_curves(summary, "mc")
    assert [c["name"] for c in used] == ship["configs"]
    stack = _Stack(curves)
    for fam in (ship, ship["snr_power"]):
        pred = stack.ratios(np.asarray(fam["weights"]))
        np.testing.assert_allclose(pred, fam["predicted"], rtol=1e-12)
        assert np.mean((pred - np.array(fam["measured"])) ** 2) == pytest.approx(fam["mse_train"])
    settings = [setting_of(c) for c in used]
    for fold in ship["folds"]:
        inside = {settings[i] for i in fold}
        assert not inside & {settings[i] for i in range(len(used)) if i not in fold}


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


def test_predict_at_any_data_variance_with_the_shipped_weights(shipped):
    """--data-var applies the weights fitted at s* = 1 to the theory's curves at s*: the
    "simple" prediction is the closed form of those weights at that s*, and it moves."""
    from gmmdiff.model.process import time_grid
    from gmmdiff.theory.approximations import simple_transition_ratio
    _, fits = shipped
    w = np.asarray(fits["simple"]["weights"])
    got = {}
    for v in ("0.5", "2"):
        result = CliRunner().invoke(predict_cli, ["-N", "20", "-d", "10", "-K", "2", "--data-var", v])
        assert result.exit_code == 0, result.output
        assert "fitted at data variance s* = 1" in result.output
        line = [ln for ln in result.output.splitlines() if ln.startswith("simple") and "fitted" in ln][0]
        got[v] = float(line.split()[4])                                 # M*/N column
        want = simple_transition_ratio(time_grid(), 10, float(v), w)
        assert got[v] == pytest.approx(want, abs=1e-3)                  # printed to 3 decimals
    assert got["2"] > got["0.5"] + 0.05


SVAR = os.path.join(os.path.dirname(SHIPPED), "svar_sweep")


@pytest.mark.slow
def test_the_shipped_data_variance_experiment_re_derives(shipped):
    """assets/svar_sweep/transfer.json (the README's s* table) follows from the shipped
    svar summary and the shipped CPU-sweep fits alone; the summary records which commit
    trained it and holds every s* of the preset."""
    from gmmdiff.experiments.sweep.presets import PRESETS
    from gmmdiff.experiments.sweep.summary import reanalyse_summary
    from gmmdiff.analysis.transfer import transfer
    _, fits = shipped
    summary = read_json(os.path.join(SVAR, "summary.json"))
    ship = read_json(os.path.join(SVAR, "transfer.json"))
    assert summary["provenance"]["trained_at_commit"] and summary["identity"]["data_vars"] == [0.5, 1.0, 2.0]
    assert PRESETS["svar"]["data_vars"] == "0.5,1,2"
    assert_same_to_rounding(reanalyse_summary(summary)["configs"], summary["configs"])
    again = transfer(summary, fits, sources=tuple(ship["sources"]))
    assert again["configs"] == ship["configs"] and again["data_vars"] == ship["data_vars"]
    for v, m in ship["measured"].items():
        assert again["measured"][v]["mean"] == pytest.approx(m["mean"], rel=1e-9)
        assert again["measured"][v]["interval"] == pytest.approx(m["interval"], rel=1e-9)
    for src, r in ship["sources"].items():
        for name in ("naive", "simplex", "snr_power"):
            np.testing.assert_allclose(again["sources"][src][name]["predicted"], r[name]["predicted"],
                                       rtol=1e-9)
            assert again["sources"][src][name]["verdict"]["verdict"] == r[name]["verdict"]["verdict"]
