"""gmmdiff-predict: a held-out error on every row it can be computed for, --json, a
repeated --fit-file refused."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff.training.config import TrainConfig
from gmmdiff.analysis.fit_files import SHIPPED, _fit_configs, held_out_scores, shipped_fits
from gmmdiff.analysis.predict import approximation_curves, predicted_ratio

from test_cli import load_script

predict_cli = load_script("gmmdiff-predict")
SIMPLE_FIT = os.path.join(SHIPPED, "fit_simple.json")
MC_FIT = os.path.join(SHIPPED, "fit_mc.json")


def test_the_cross_validation_redone_here_equals_the_fits_own_score():
    fit = shipped_fits()["simple"]
    again = held_out_scores(fit, "simple", "fitted", recompute=True)
    assert again["mse"] == pytest.approx(fit["mse_test"], rel=1e-9)
    assert again["verdict"] == fit["verdict"]["verdict"]
    assert held_out_scores(fit, "simple", "fitted")["how"] == "the fit's cross-validation"


def test_the_naive_rows_error_is_over_every_configuration():
    fit = shipped_fits()["nearest"]
    got = held_out_scores(fit, "nearest", "naive")
    times = np.asarray(fit["times"])
    sq = []
    for cfg, measured in zip(_fit_configs(fit), fit["measured"]):
        X = TrainConfig(**cfg).dataset().X              # the run's own data, not training_set
        M, gen, pmem = approximation_curves(times, cfg, "nearest", X=X)
        r, _ = predicted_ratio(M, gen, pmem, np.full(times.size, 1 / times.size), cfg["samples"])
        sq.append((r - measured) ** 2)
    assert got["n"] == len(fit["configs"]) == 54
    assert got["mse"] == pytest.approx(np.mean(sq), rel=1e-12)
    assert got["mse"] > fit["mse_test"]               # the fitted weighting does better
    assert held_out_scores(shipped_fits()["mc"], "simple", "fitted") is None


def test_every_row_carries_its_score_and_json_agrees():
    args = ["-N", "20", "-d", "10", "-K", "2"]
    text = CliRunner().invoke(predict_cli, args)
    assert text.exit_code == 0, text.output
    rows = [ln for ln in text.output.splitlines()
            if ln.split()[:1] in (["simple"], ["expected"], ["nearest"])]
    assert len(rows) == 6 and all("trivial" in ln for ln in rows), text.output
    result = CliRunner().invoke(predict_cli, args + ["--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    preds = report["predictions"]
    assert [(p["source"], p["weighting"]) for p in preds] == [
        (s, w) for s in ("simple", "expected", "nearest") for w in ("naive", "fitted")]
    for p, line in zip(preds, rows):
        assert f"{p['ratio']:.3f}" in line and f"{p['held_out']['mse']:.4g}" in line
        assert p["held_out"]["verdict"] in line
    fits = shipped_fits()
    assert preds[3]["held_out"]["mse"] == fits["expected"]["mse_test"]
    assert report["configuration"]["N"] == 20 and report["extrapolation"] == []


def test_a_fit_file_of_another_source_scores_what_it_can():
    text = CliRunner().invoke(predict_cli, ["-N", "20", "-d", "10", "-K", "2", "--fit-file", MC_FIT])
    assert text.exit_code == 0, text.output
    fitted = [ln for ln in text.output.splitlines() if "fitted (mc)" in ln]
    naive = [ln for ln in text.output.splitlines() if "naive (training" in ln]
    assert len(fitted) == 3 and all(ln.rstrip().endswith("n/a") for ln in fitted)
    assert len(naive) == 3 and all("trivial" in ln for ln in naive)
    assert "(n/a: the held-out error of Monte Carlo-fitted weights" in text.output


def test_a_second_fit_file_and_json_with_fit_are_refused(tmp_path):
    result = CliRunner().invoke(predict_cli, ["--fit-file", SIMPLE_FIT, "--fit-file", MC_FIT])
    assert result.exit_code == 2
    assert result.output.startswith("Error: option --fit-file given more than once")
    result = CliRunner().invoke(predict_cli, ["--fit", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "--json has no effect with --fit" in result.output


def test_at_another_data_variance_the_rows_show_the_s_star_experiments_verdicts():
    """The shipped weights are fitted at s* = 1; at --data-var 2 the s* = 1 cross-validated
    errors do not apply: each row shows what the s* experiment measured for it (the
    fitted simple weights: an error 4 times the trivial predictor's there, on 6 settings,
    too few for a verdict; indistinguishable at s* = 1, on 27)."""
    from gmmdiff.analysis.fit_files import shipped_transfer
    transfer = shipped_transfer()
    here = CliRunner().invoke(predict_cli, [])
    there = CliRunner().invoke(predict_cli, ["--data-var", "2"])
    assert here.exit_code == 0 and there.exit_code == 0, there.output
    row = lambda out: next(ln for ln in out.splitlines() if ln.startswith("simple    fitted"))  # noqa: E731
    assert row(here.output).endswith("indistinguishable from trivial")
    simplex = transfer["sources"]["simple"]["simplex"]
    assert simplex["verdict"]["verdict"] == "no verdict: too few settings"
    assert simplex["verdict"]["settings"] == 6 and simplex["mse"] > 4 * transfer["sources"]["simple"]["trivial_mse"]
    assert row(there.output).endswith("no verdict: too few settings")
    assert f"{simplex['mse']:.4g}" in row(there.output)
    assert f"{shipped_fits()['simple']['mse_test']:.4g}" not in there.output
    assert "the errors and verdicts below are the s* experiment's" in there.output
