"""Reliability, fourth pass (issue 37, items 5-7): every input checked before the first
write, one checked reader per file shared by every command, options that refuse what
they cannot honour. Each case is one the issue found accepted, half-written or a
traceback; each now ends in one line naming the file or the option, exit code 2, and
nothing written -- or, where it is valid, in the same result as its valid twin."""
import json
import os
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff.io.files import StorageError
from gmmdiff.io.rundir import RunDir

from test_cli import SMALL, load_script
from test_reliability import one_line_error, snapshot

train_cli = load_script("gmmdiff-train")
sweep_cli = load_script("gmmdiff-sweep")
plot_cli = load_script("gmmdiff-plot")
predict_cli = load_script("gmmdiff-predict")
TS = ["-N", "8,10", "-d", "3", "-K", "2", "--seeds", "0,1", "--inits", "pmem,prior",
      "--size-ratios", "0.5,1", "--refine", "0", "--steps", "40", "--noise-draws", "2",
      "--eval-samples", "6", "--eval-noise-draws", "2", "--quiet"]
WITH_4 = [a if a != "2,8" else "2,4,8" for a in SMALL]
TINY = ["-d", "3", "-N", "8", "-M", "2", "--steps", "20", "--noise-draws", "2",
        "--eval-samples", "6", "--quiet"]
# a preset's grid and length overridden: where the preset were accepted, seconds, not an hour
TINY_GRID = ["-N", "8", "-d", "3", "-K", "2", "--seeds", "0", "--steps", "20", "--noise-draws",
             "2", "--eval-samples", "6", "--eval-noise-draws", "2", "--quiet"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A finished small run, a finished tiny sweep of two starts at fixed ratios M/N
    (summarized), and a directory holding only a summary (6 configurations of the
    shipped CPU sweep) with a fit file of its time grid; never modified."""
    from gmmdiff.analysis.fit_files import SHIPPED
    top = tmp_path_factory.mktemp("fourth")
    assert CliRunner().invoke(train_cli, SMALL + ["--out", str(top / "run")]).exit_code == 0
    assert CliRunner().invoke(sweep_cli, TS + ["--out", str(top / "ts")]).exit_code == 0
    assert CliRunner().invoke(sweep_cli, ["--summary", str(top / "ts")]).exit_code == 0
    (top / "F").mkdir()
    with open(os.path.join(SHIPPED, "summary.json")) as fh:
        summary = json.load(fh)
    summary["configs"] = [c for c in summary["configs"] if c["N"] == 20 and c["d"] == 10]
    (top / "F" / "summary.json").write_text(json.dumps(summary))
    fit = {"weights": [1 / 26] * 26, "times": summary["times"], "source": "simple",
           "trivial_prediction": 0.8, "configs": [c["name"] for c in summary["configs"]]}
    (top / "F" / "fit_simple.json").write_text(json.dumps(fit))
    return top


@pytest.fixture
def work(made, tmp_path):
    shutil.copytree(made, tmp_path / "w")
    return tmp_path / "w"


def edit(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def refused(result, top, before, match):
    one_line_error(result, match)
    assert snapshot(top) == before


# ------------------------------------------------ item 5: nothing written before every check

def test_adding_a_size_to_a_run_with_a_damaged_finished_size_writes_nothing(work):
    """Before: M = 4 trained and written, then the damaged model_M00002.json refused."""
    run = work / "run"
    edit(run / "model_M00002.json", lambda m: m.__setitem__("memorization", "high"))
    before = snapshot(run)
    refused(CliRunner().invoke(train_cli, WITH_4 + ["--out", str(run)]), run, before,
            "model_M00002.json")


def _checkpoint_with_nan_series(run):
    """A checkpoint whose first evaluation's ratio is NaN (benchmarks/file_probe.py's)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "file_probe", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                   "benchmarks", "file_probe.py"))
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert run.name == "run"
    probe._nan_series_checkpoint(str(run.parent))


def test_a_checkpoint_whose_series_holds_nan_is_refused_before_training(work):
    """Before: trained to the end, deleted the checkpoint, then refused its own
    model_M00004.json -- a directory the same command refused forever."""
    run = work / "run"
    _checkpoint_with_nan_series(run)
    before = snapshot(run)
    refused(CliRunner().invoke(train_cli, WITH_4 + ["--out", str(run)]), run, before,
            "checkpoint.npz")


def test_results_their_reader_would_refuse_are_not_written_and_the_checkpoint_stays(work,
                                                                                    monkeypatch):
    """A result is checked as its reader checks it before it is written, and read back
    before the index lists it; the checkpoint goes only after every result is: here an
    evaluation gone wrong (a status that is not a string) leaves the directory as it
    was but for the checkpoint, from which the same command resumes."""
    from gmmdiff.experiments import runs
    run = work / "run"
    before = snapshot(run)
    monkeypatch.setattr(runs.convergence, "status", lambda series, data_var: (7, ""))
    line = one_line_error(CliRunner().invoke(train_cli, WITH_4 + ["--out", str(run)]),
                          "along_training.status is 7")
    assert "nothing was written for it, the checkpoint is kept" in line
    after = snapshot(run)
    assert set(after) - set(before) == {"checkpoint.npz"}
    assert {k: after[k] for k in before} == before
    monkeypatch.undo()
    result = CliRunner().invoke(train_cli, WITH_4 + ["--out", str(run)])
    assert result.exit_code == 0, result.output
    assert not (run / "checkpoint.npz").exists() and (run / "model_M00004.json").exists()


def test_write_result_writes_nothing_its_reader_would_refuse(tmp_path):
    rd = RunDir(str(tmp_path / "r"), {"backend": "numpy", "results_format": 6})
    try:
        arrays = {"means": np.zeros((2, 3)), "std": np.float64(1.0), "generated": np.zeros((4, 3))}
        before = snapshot(tmp_path / "r")
        with pytest.raises(StorageError, match="not valid .*M_over_N"):
            rd.write_result(2, {"M": 2, "M_over_N": -1.0}, arrays)
        with pytest.raises(StorageError, match="generated is not an array of finite numbers"):
            rd.write_result(2, _valid_metrics(), dict(arrays, generated=np.full((4, 3), np.nan)))
        assert snapshot(tmp_path / "r") == before
        rd.write_result(2, _valid_metrics(), arrays)
        assert rd.completed() == [2] and rd.read_result(2)[0]["M"] == 2
    finally:
        rd.close()


def _valid_metrics():
    t = [0.9, 0.5, 0.1]
    losses = {k: [1.0] * 3 for k in ("generalizing_train", "generalizing_test", "memorizing_train",
                                     "memorizing_test", "pmem_train", "pmem_test")}
    return {"M": 2, "M_over_N": 0.25, "times": t,
            "memorization": {"ratio": 0.5, "interval": [0.2, 0.8], "count": 2, "n": 4},
            "learned_variance": 1.0, "final_train_loss": 1.0, "final_test_loss": 1.0,
            "per_time_losses": losses}


@pytest.mark.parametrize("damage, match", [
    (lambda t: edit(t / "transfer.json", lambda o: o.__setitem__("sources", "x")), "transfer.json"),
    (lambda t: edit(t / "transfer.json", lambda o: o["measured"].__setitem__("1", {"mean": "a"})),
     "transfer.json"),
    (lambda t: edit(t / "N8-d3-K2-s0" / "model_M00008.json", lambda o: o["along_training"].__setitem__(
        "steps", [s + 1 for s in o["along_training"]["steps"]])), "model_M00008.json"),
    (lambda t: edit(t / "N8-d3-K2-s0" / "model_M00008.json", lambda o: o["along_training"]["count"]
                    .__setitem__(-1, o["along_training"]["n"][-1] + 5)), "model_M00008.json"),
])
def test_plot_checks_every_input_before_its_first_figure(work, damage, match):
    """Before: figures 1, 3 and 7 written, then a traceback (transfer.json) or a line
    naming no file (the series along training)."""
    ts = work / "ts"
    transfer = CliRunner().invoke(predict_cli, ["--transfer", str(work / "F"), "--source", "simple",
                                                "--fits-dir", str(work / "F")])
    assert transfer.exit_code == 0, transfer.output
    shutil.move(str(work / "F" / "transfer.json"), str(ts / "transfer.json"))
    damage(ts)
    before = snapshot(ts)
    refused(CliRunner().invoke(plot_cli, [str(ts)]), ts, before, match)


def test_a_figure_that_fails_to_draw_leaves_no_figure_written(work, monkeypatch):
    from gmmdiff.cli import sweep_plots

    def broken(*args, **kwargs):
        raise ValueError("figure 7 could not be drawn")
    monkeypatch.setattr(sweep_plots, "figure7", broken)
    ts = work / "ts"
    before = snapshot(ts)
    refused(CliRunner().invoke(plot_cli, [str(ts), "--dpi", "20"]), ts, before, "figure 7")


# ------------------------------------------------ item 6: one reader per file

@pytest.mark.parametrize("change, match", [
    (lambda s: s.__setitem__("configs", "x"), 'configs is "x", expected a list'),
    (lambda s: s.__setitem__("identity", [1]), "identity is a list, expected a JSON object"),
    (lambda s: s.__setitem__("times", []), "times is [], expected the time grid"),
    (lambda s: s["configs"][0].__setitem__("name", "N99-d10-K2-s0"), "not a configuration of the sweep"),
    (lambda s: s["configs"][1].__setitem__("counts", [600] * len(s["configs"][1]["sizes"])),
     "counts do not give its ratios"),
    (lambda s: s["identity"].__setitem__("samples", [10**20]), "above the limit of 2^53"),
])
def test_summary_json_has_one_reader_for_fit_and_transfer(work, change, match):
    """Before: AttributeError, TypeError, KeyError, or a minute of fitting and a NumPy
    message naming no file."""
    f = work / "F"
    edit(f / "summary.json", change)
    before = snapshot(f)
    for args in (["--fit", str(f), "--source", "simple"],
                 ["--transfer", str(f), "--source", "simple", "--fits-dir", str(f)]):
        refused(CliRunner().invoke(predict_cli, args), f, before, match)
        assert "summary.json" in one_line_error(CliRunner().invoke(predict_cli, args))


def test_plot_of_a_summary_only_directory_says_what_it_draws(made):
    line = one_line_error(CliRunner().invoke(plot_cli, [str(made / "F")]), "holds a summary.json")
    assert "config.json" not in line


def test_every_shipped_summary_passes_its_reader():
    from gmmdiff.analysis.fit_files import ASSETS
    from gmmdiff.experiments.sweep.summary import read_summary
    for name in ("cpu_sweep", "svar_sweep", "init_sweep", "time_sweep"):
        assert read_summary(os.path.join(ASSETS, name, "summary.json"))["configs"]


def test_a_plan_whose_sizes_are_floats_is_refused(work):
    """Before: a TypeError (accepted cleanly before the along-training turn)."""
    ts = work / "ts"
    rd = ts / "N8-d3-K2-s0"
    (rd / "transition.json").unlink()
    edit(rd / "plan.json", lambda p: p.__setitem__("coarse", [float(m) for m in p["coarse"]]))
    before = snapshot(ts)
    refused(CliRunner().invoke(sweep_cli, TS + ["--out", str(ts)]), ts, before,
            "plan.json is not a valid gmmdiff file: coarse[0] is 4.0, expected an integer >= 1")


def test_sweep_json_sizes_have_the_command_lines_bounds(work):
    """Before: sweep.json with samples [10^20] was summarized; the command line refused it."""
    ts = work / "ts"
    edit(ts / "sweep.json", lambda s: s["identity"].__setitem__("samples", [10**20]))
    before = snapshot(ts)
    refused(CliRunner().invoke(sweep_cli, ["--summary", str(ts)]), ts, before, "sweep.json")
    one_line_error(CliRunner().invoke(sweep_cli, ["-N", str(10**20), "--out", str(work / "x")]),
                   "above the limit of 2^53")


def test_series_with_counts_above_n_are_refused_by_summary_and_plot_alike(work):
    """Before: accepted by --summary, refused by plot after three figures."""
    ts = work / "ts"
    f = ts / "N8-d3-K2-iprior-s1" / "model_M00004.json"
    edit(f, lambda m: m["along_training"]["count"].__setitem__(3, 99.0))
    before = snapshot(ts)
    for args, cli in ((["--summary", str(ts)], sweep_cli), ([str(ts)], plot_cli),
                      (["--fit", str(ts)], predict_cli)):
        refused(CliRunner().invoke(cli, args), ts, before, "model_M00004.json is not a valid gmmdiff "
                                                          "file: along_training.count[3] is 99")


def test_a_sweep_configuration_of_another_configuration_is_refused_by_every_reader(work):
    """Resuming refused a run directory whose config.json records other settings;
    --summary, predict --fit and plot read its results as the sweep's."""
    ts = work / "ts"
    edit(ts / "N8-d3-K2-s1" / "config.json", lambda c: c["identity"].__setitem__("steps", 41))
    before = snapshot(ts)
    for args, cli in ((TS + ["--out", str(ts)], sweep_cli), (["--summary", str(ts)], sweep_cli),
                      ([str(ts)], plot_cli), (["--fit", str(ts)], predict_cli)):
        refused(CliRunner().invoke(cli, args), ts, before, "config.json differs in: steps")


def test_a_transition_of_other_sizes_than_the_index_is_refused_by_every_reader(work):
    ts = work / "ts"
    edit(ts / "N8-d3-K2-s0" / "index.json", lambda i: i.__setitem__("complete", [8]))
    before = snapshot(ts)
    for args, cli in ((TS + ["--out", str(ts)], sweep_cli), (["--summary", str(ts)], sweep_cli),
                      ([str(ts)], plot_cli)):
        refused(CliRunner().invoke(cli, args), ts, before, "transition.json")


@pytest.mark.parametrize("change, match", [
    (lambda f: f.__setitem__("times", []), "times is [], expected a list of at least one"),
    (lambda f: f.pop("trivial_prediction"), "trivial_prediction is missing"),
    (lambda f: f.__setitem__("weights", [-1.0] + f["weights"][1:]), "weights[0] is -1.0"),
])
def test_fit_files_have_one_reader_for_transfer_and_prediction(work, change, match):
    """Before: --transfer read the fits with no check (an empty time grid was written
    into transfer.json)."""
    f = work / "F"
    edit(f / "fit_simple.json", change)
    before = snapshot(f)
    refused(CliRunner().invoke(predict_cli, ["--transfer", str(f), "--source", "simple",
                                             "--fits-dir", str(f)]), f, before, match)
    if "trivial" not in match:
        refused(CliRunner().invoke(predict_cli, ["-N", "20", "-d", "10", "-K", "2", "--fit-file",
                                                 str(f / "fit_simple.json")]), f, before, match)


# ------------------------------------------------ item 7: options that cannot be honoured

@pytest.mark.parametrize("cli, args, match", [
    (train_cli, TINY + ["--eval-steps", "0,,5"], "'0,,5' has an empty item"),
    (train_cli, TINY + ["--eval-steps", "0,5,"], "has an empty item"),
    (train_cli, ["-d", "3", "-N", "8", "-M", "2,,4", "--quiet"], "model sizes (--model-sizes) '2,,4' has "
                                                                 "an empty item"),
    (sweep_cli, TS[:-1] + ["--inits", "pmem,,prior"], "inits (--inits) 'pmem,,prior' has an empty item"),
    (sweep_cli, ["-N", "8,,16", "-d", "3", "-K", "2", "--preset", "cpu"], "samples '8,,16' has an empty"),
    (train_cli, TINY + ["--eval-steps", "none", "--track-noise-draws", "3"],
     "--track-noise-draws has no effect with --eval-steps none"),
    (sweep_cli, ["--preset", "time", "--eval-steps", "none"] + TINY_GRID,
     "--eval-steps none with --preset time"),
    (sweep_cli, ["--preset", "time", "--refine", "2"] + TINY_GRID, "--refine 2 with --preset time"),
    (sweep_cli, ["--preset", "init", "--inits", "pmem"] + TINY_GRID, "--inits pmem with --preset init"),
    (sweep_cli, ["--preset", "time", "--preset", "cpu"] + TINY_GRID,
     "option --preset given more than once"),
    (sweep_cli, ["--preset=time", "--preset", "time"] + TINY_GRID, "option --preset given more than once"),
    (train_cli, TINY + ["--data-var", "1e300"], "data_var = 1e+300 must be finite, >= 0 and at most 1e+08"),
    (train_cli, TINY + ["--init-var", "1e300"], "init_var = 1e+300"),
    (train_cli, TINY + ["--init", "gaussian", "--init-scale", "1e300"], "gaussian_scale = 1e+300"),
])
def test_options_that_cannot_be_honoured_are_refused_before_anything_is_written(tmp_path, cli, args,
                                                                                 match):
    out = tmp_path / "out"
    one_line_error(CliRunner().invoke(cli, args + ["--out", str(out)]), match)
    assert not out.exists()


def test_equivalent_eval_steps_are_one_configuration(tmp_path):
    """Before: the raw text went into the identity, and '0,5' was then refused as a
    different configuration from '5, 0'."""
    out = tmp_path / "run"
    first = CliRunner().invoke(train_cli, TINY + ["--eval-steps", "5, 0", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert json.loads((out / "config.json").read_text())["identity"]["eval_steps"] == "0,5"
    again = CliRunner().invoke(train_cli, TINY + ["--eval-steps", "0,5", "--out", str(out)])
    assert again.exit_code == 0 and "nothing trained" in again.output, again.output


def test_the_largest_scales_accepted_train_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = CliRunner().invoke(train_cli, TINY + ["--data-var", "1e8", "--init-var", "1e8",
                                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output


def test_a_curve_whose_fit_has_no_standard_error_gives_no_warning():
    """A curve found by search (the fit's information matrix is not positive definite
    there): numpy's 'invalid value encountered in sqrt' reached the user's terminal."""
    from gmmdiff.analysis.transition import fit_curve
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_curve([8, 12, 28, 30, 42], [11, 20, 20, 20, 20], 20, 25)
    assert fit["se"] is None and fit["interval"] == [None, None]


def test_plot_of_a_valid_inits_and_time_sweep_prints_no_warning(work):
    ts = work / "ts"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)
        result = CliRunner().invoke(plot_cli, [str(ts), "--dpi", "20"])
    assert result.exit_code == 0, result.output
    assert [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)] == []
    assert "fig_time_law.png" in result.output and "fig_init_gap.png" in result.output


def test_the_data_variance_figure_draws_predictions_that_do_not_vary(tmp_path):
    """The fuzz test's undamaged fixtures found it: a transfer whose predictions are
    equal (the simple source at one s*) has a mean a rounding error above its range,
    and matplotlib refused the negative error bar ('yerr' must not contain negative
    values): plot failed on a valid transfer.json."""
    from gmmdiff.cli.sweep_plots import figure3_svar
    mean = 0.1 + 0.2                                     # 0.30000000000000004
    per_var = {"1": {"mean": mean, "range": [0.3, 0.3]}}
    result = {"data_vars": [1.0], "measured": {"1": {"mean": 0.8, "interval": [0.7, 0.9], "n": 6}},
              "sources": {"simple": {"trivial_prediction": 0.8,
                                     "simplex": {"per_data_var": per_var,
                                                 "verdict": {"verdict": "worse than trivial"}}}}}
    path = figure3_svar(result, str(tmp_path / "fig.png"))
    assert open(path, "rb").read(4) == b"\x89PNG"


def test_summary_makes_every_result_and_checks_every_output_before_its_first_write(work):
    """--summary wrote summary.csv, then the analyses and their files; an output that
    cannot be written (here time_law.json a directory) left summary.csv rewritten."""
    ts = work / "ts"
    (ts / "summary.csv").unlink()
    (ts / "time_law.json").unlink()
    (ts / "time_law.json").mkdir()
    before = snapshot(ts)
    refused(CliRunner().invoke(sweep_cli, ["--summary", str(ts)]), ts, before, "time_law.json")
    assert not (ts / "summary.csv").exists()


def _drop_first_evaluation(z):
    for k in [k for k in z if k.startswith("eval_")]:
        z[k] = z[k][1:]


@pytest.mark.parametrize("damage, match", [
    (lambda z: z.update(loss_steps=-z["loss_steps"]), "logged loss steps are not increasing"),
    (lambda z: z.update(losses=-z["losses"] - 1), "losses (flattened)[0] is -"),
    (lambda z: z.update(opt_mu_means=z["opt_mu_means"] * 1e300), "opt_mu_means holds NaN, infinite or "
                                                                 "absurdly large values"),
    (lambda z: z.update(opt_nu_std=-1 - z["opt_nu_std"]), "opt_nu_std (a running mean of squares)"),
    (lambda z: z.pop("eval_near_sample"), "evaluations along training (at"),
    (_drop_first_evaluation, "evaluations along training (at"),
])
def test_a_checkpoint_that_would_end_in_refused_results_is_refused_before_training(work, damage, match):
    """The fuzz test's findings: a checkpoint whose logged losses or steps are negative,
    whose optimizer state overflows, or whose evaluations are not the run's trained to
    the end and then refused the results it wrote (or stopped at a non-finite loss
    naming no file); each is now refused first, by train with or without its size."""
    from helpers import load_benchmark
    run = work / "run"
    load_benchmark("file_probe").checkpoint_of_size_4(str(run))
    with np.load(run / "checkpoint.npz") as z:
        arrays = dict(z)
    damage(arrays)
    np.savez(run / "checkpoint.npz", **arrays)
    before = snapshot(run)
    for args in (WITH_4, SMALL):
        refused(CliRunner().invoke(train_cli, args + ["--out", str(run)]), run, before, match)


def test_an_index_listing_a_size_without_results_names_the_index(work):
    """The probe's finding: an index listing a size of no model file was refused as a
    'missing file' of that size, naming neither the index nor what to do."""
    run = work / "run"
    edit(run / "index.json", lambda i: i.__setitem__("complete", [2, 8, 10**30]))
    before = snapshot(run)
    for args, cli in ((SMALL + ["--out", str(run)], train_cli), ([str(run)], plot_cli)):
        refused(CliRunner().invoke(cli, args), run, before, "index.json lists model size 10000")


def test_a_transfer_of_a_sweep_without_a_measured_transition_is_one_line(work):
    """The probe's undamaged fixtures found it: --transfer of a sweep none of whose
    configurations has a measured transition ended in an IndexError traceback."""
    ts, f = work / "ts", work / "F"
    before = snapshot(ts)
    refused(CliRunner().invoke(predict_cli, ["--transfer", str(ts), "--source", "simple",
                                             "--fits-dir", str(f)]), ts, before,
            "no configuration of the sweep has a measured transition")


def test_values_no_figure_can_draw_and_a_sweep_of_no_backend_are_refused_by_their_readers(work):
    """The probe's findings: a per-time loss of 1e300 (finite, so accepted) crashed
    plot's log axes with a traceback; a sweep.json whose backend is "" was refused as
    its run directories' other configuration, naming their config.json."""
    run, ts = work / "run", work / "ts"
    edit(run / "model_M00002.json", lambda m: m["per_time_losses"]["model_train"].__setitem__(0, 1e300))
    before = snapshot(run)
    for args, cli in ((SMALL + ["--out", str(run)], train_cli), ([str(run)], plot_cli)):
        refused(CliRunner().invoke(cli, args), run, before,
                "per_time_losses.model_train[0] is 1e+300, expected a number in [0, 1e100]")
    edit(ts / "sweep.json", lambda s: s["identity"].__setitem__("backend", ""))
    before = snapshot(ts)
    for args, cli in ((["--summary", str(ts)], sweep_cli), ([str(ts)], plot_cli),
                      (["--fit", str(ts)], predict_cli)):
        refused(CliRunner().invoke(cli, args), ts, before, 'sweep.json is not a valid gmmdiff file: '
                                                          'identity.backend is "", expected one of')
