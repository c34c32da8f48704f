"""Evaluation along training: the steps, the series in results and checkpoints, training
untouched by it, resume to the same series, and the convergence check."""
import hashlib
import json

import numpy as np
import pytest
from scipy.stats import binomtest

import gmmdiff
from gmmdiff.analysis import convergence
from gmmdiff.experiments.runs import run
from gmmdiff.io.files import read_npz
from gmmdiff.model.metrics import wilson_interval
from gmmdiff.training.config import TrainConfig, eval_step_list
from gmmdiff.training.loop import train
from gmmdiff.training.state import TrainState, initial_state

SMALL = TrainConfig(dim=3, components=2, samples=8, steps=400, noise_draws=3, lr_peak=1e-2,
                    eval_samples=60, eval_noise_draws=2, eval_steps="log:5")


def test_eval_steps_are_parsed_into_sorted_steps_ending_at_the_last():
    assert eval_step_list("log:3", 1000) == [0, 1, 32, 900, 1000]
    assert eval_step_list("log:12", 50000)[:3] == [0, 50, 94]
    assert eval_step_list("log:12", 50000)[-3:] == [26683, 45000, 50000]
    assert eval_step_list("10, 0,10", 100) == [0, 10, 90, 100]      # 90% and the last added
    assert eval_step_list("none", 100) == []
    for bad in ("log:0", "log:1001", "log:", "1,x", "101", "-1", "", "lin:4", "9" * 5000):
        with pytest.raises(ValueError, match="eval steps .*not understood; accepted"):
            eval_step_list(bad, 100)
    with pytest.raises(ValueError, match="eval steps"):
        TrainConfig(eval_steps="log:x").validate()


def test_wilson_interval_is_scipys_in_closed_form():
    for n in (1, 2, 7, 50, 500):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            ci = binomtest(k, n).proportion_ci(method="wilson")
            np.testing.assert_allclose(wilson_interval(k, n), (ci.low, ci.high), rtol=0, atol=1e-14)
    assert np.isnan(wilson_interval(0, 0)).all()


def _digest(state):
    h = hashlib.sha256()
    for k in sorted(state.params):
        h.update(np.ascontiguousarray(state.params[k]).tobytes())
    h.update(np.asarray(state.losses).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_evaluation_along_training_leaves_training_bit_identical(dtype):
    cfg = TrainConfig(**{**SMALL.__dict__, "dtype": dtype, "eval_steps": "log:8"})
    ds = cfg.dataset(np)
    fam = cfg.family()
    sizes = [2, 5, 8]
    plain = train(ds, initial_state(ds, sizes, cfg, np), cfg, np, log_every=7)
    calls = []

    def on_eval(step, params):
        calls.append(step)
        rows = [fam.track(ds, M, {"means": params["means"][j, :M], "std": params["std"][j]},
                          cfg, np) for j, M in enumerate(sizes)]
        return {k: [r[k] for r in rows] for k in rows[0]}
    tracked = train(ds, initial_state(ds, sizes, cfg, np), cfg, np, log_every=7, on_eval=on_eval)
    assert _digest(plain) == _digest(tracked)
    assert calls == eval_step_list(cfg.eval_steps, cfg.steps) == tracked.eval_steps
    assert plain.eval_steps == [] and set(tracked.evals) >= {"ratio", "variance", "train_loss"}
    # the series' last variance is the trained model's
    np.testing.assert_allclose(tracked.series(1)["variance"][-1],
                               float(tracked.params["std"][1]) ** 2, rtol=1e-6)


def test_a_run_stores_its_series_and_load_run_gives_steps_by_sizes(tmp_path):
    run(SMALL, [2, 8], str(tmp_path / "r"), np)
    res = gmmdiff.load_run(str(tmp_path / "r"))
    steps = eval_step_list(SMALL.eval_steps, SMALL.steps)
    assert list(res.eval_steps) == steps
    ratio = res.series("ratio")
    assert ratio.shape == (len(steps), 2)
    # the last point: the final evaluation's samples (same starting points, float64)
    np.testing.assert_array_equal(ratio[-1], res.ratio)
    np.testing.assert_allclose(res.series("variance")[-1], res.learned_variance, rtol=1e-12)
    assert (res.series("ratio_lo") <= ratio).all() and (ratio <= res.series("ratio_hi")).all()
    assert set(res.status) <= set(convergence.STATUSES)
    with pytest.raises(KeyError, match="not along training"):
        res.series("nope")
    # a run without evaluations along training says so
    run(TrainConfig(**{**SMALL.__dict__, "eval_steps": "none"}), [2], str(tmp_path / "n"), np)
    bare = gmmdiff.load_run(str(tmp_path / "n"))
    assert bare.eval_steps.size == 0 and bare.status == ["unknown"]
    with pytest.raises(KeyError, match="no evaluations along training"):
        bare.series("ratio")


class _Killed(Exception):
    pass


def test_a_run_killed_between_two_evaluation_points_resumes_to_the_same_series(tmp_path):
    cfg = TrainConfig(**{**SMALL.__dict__, "steps": 600, "eval_steps": "0,50,200,450"})
    assert eval_step_list(cfg.eval_steps, cfg.steps) == [0, 50, 200, 450, 540, 600]
    run(cfg, [2, 8], str(tmp_path / "ref"), np)

    def kill(step, losses):
        if step >= 350:                                  # after the checkpoint at 300
            raise _Killed
    out = tmp_path / "killed"
    with pytest.raises(_Killed):
        run(cfg, [2, 8], str(out), np, checkpoint_every=100, log_every=50, callback=kill)
    saved = TrainState.load(str(out / "checkpoint.npz"), np)
    assert saved.step == 300 and saved.eval_steps == [0, 50, 200]    # between 200 and 450
    run(cfg, [2, 8], str(out), np, checkpoint_every=100)
    for M in (2, 8):
        ref = json.loads((tmp_path / "ref" / f"model_M{M:05d}.json").read_text())
        got = json.loads((out / f"model_M{M:05d}.json").read_text())
        assert got["along_training"] == ref["along_training"]
        assert got["along_training"]["steps"] == [0, 50, 200, 450, 540, 600]
        a, b = (read_npz(str(d / f"model_M{M:05d}.npz")) for d in (tmp_path / "ref", out))
        np.testing.assert_array_equal(a["means"], b["means"])


def _series(ratios, variances, steps=None, n=500, near=(0, 0)):
    k = [int(round(r * n)) for r in ratios]
    iv = [wilson_interval(c, n) for c in k]
    return {"steps": steps or list(range(0, 100 * len(ratios), 100)), "ratio": [c / n for c in k],
            "ratio_lo": [i[0] for i in iv], "ratio_hi": [i[1] for i in iv],
            "variance": list(variances), "near_true_mean": [near[0]] * len(ratios),
            "near_sample": [near[1]] * len(ratios)}


def test_convergence_status_rules():
    status = convergence.status
    assert status(_series([1, 0.5, 0.2], [1e-6, 0.3, 0.3]), 1.0)[0] == "moving"      # ratio
    assert status(_series([1, 0.2, 0.2], [1e-6, 0.3, 0.5]), 1.0)[0] == "moving"      # variance
    assert status(_series([1, 0.2, 0.21], [1e-6, 0.3, 0.31]), 1.0)[0] == "converged"
    # variances far below s* are all "zero": a memorizing model that keeps shrinking
    assert status(_series([1, 1, 1], [1e-6, 1e-4, 1e-9]), 1.0)[0] == "at init"
    assert status(_series([0.5, 0.5, 0.5], [1e-6, 1e-4, 1e-9]), 1e-2)[0] == "moving"  # not for s* = 1e-2
    # ... nor a memorized model's variance shrinking towards 0
    assert status(_series([0.3, 1, 1], [0.3, 0.006, 0.004]), 1.0)[0] == "converged"
    assert status(_series([0.3, 1, 1], [0.3, 0.004, 0.006]), 1.0)[0] == "moving"
    # a small variance that grows is a model leaving memorization (a run of 20,000 steps)
    assert status(_series([0, 0, 0], [1e-6, 0.0069, 0.0085]), 1.0)[0] == "moving"
    # the means moved between near samples and near true means: not at init
    moved = _series([1, 1, 1], [1e-6, 1e-6, 1e-6])
    moved["near_sample"] = [4, 2, 2]
    assert status(moved, 1.0)[0] == "converged"
    assert status(_series([0.5], [0.3]), 1.0)[0] == "unknown"
    s, why = status(_series([1, 0.5, 0.2], [1e-6, 0.3, 0.3], steps=[0, 10, 90]), 1.0)
    assert why == "between steps 10 and 90: ratio 0.50 -> 0.20"
    assert convergence.run_verdict(["at init", "at init"], [2, 4]).startswith("training never left")
    assert convergence.run_verdict(["converged", "moving"], [2, 4]).startswith("not converged: M = 4 ")
    assert convergence.run_verdict(["converged", "at init"], [2, 4]) == ""
    assert convergence.configuration_status(["converged", "moving"]) == "not converged"
    assert convergence.configuration_status(["at init", "at init"]) == "at init"
    assert convergence.configuration_status(["converged", "at init"]) is None


def test_the_check_flags_300_pmem_steps_and_passes_a_converged_run(tmp_path):
    """300 steps from the paper's start (pmem: means on training points, variance 1e-6)
    leave every size where it started; 3,000 steps from the prior at lr 3e-3 converge at
    every size (measured)."""
    short = TrainConfig(dim=3, components=2, samples=8, steps=300, noise_draws=4,
                        eval_samples=200, eval_noise_draws=2)
    rows = run(short, [2, 4, 8], str(tmp_path / "short"), np)
    assert [r["along_training"]["status"] for r in rows] == ["at init"] * 3
    ok = TrainConfig(**{**short.__dict__, "steps": 3000, "init": "prior", "lr_peak": 3e-3})
    rows = run(ok, [1, 4, 8], str(tmp_path / "ok"), np)
    assert [r["along_training"]["status"] for r in rows] == ["converged"] * 3
