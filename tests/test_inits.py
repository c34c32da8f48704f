"""The initialization experiment's comparison on simulated summaries, the gap along
training, and the transition estimators on non-monotone curves."""
import json
import os

import numpy as np
import pytest

from gmmdiff.analysis.inits import compare_inits, format_inits


def _summary(shift, rng, n_seeds=5, fail=()):
    configs = []
    for K in (2, 3):
        for seed in range(n_seeds):
            base = 0.8 + 0.03 * rng.standard_normal()
            for init, value in (("pmem", base), ("prior", base + shift + 0.01 * rng.standard_normal())):
                status = "outside sizes" if (init, K, seed) in fail else "ok"
                configs.append({"N": 20, "d": 10, "K": K, "data_var": 1.0, "seed": seed, "init": init,
                                "status": status, "M_pt_over_N": value if status == "ok" else None})
    return {"configs": configs}


def test_a_known_shift_is_found_and_no_shift_is_not():
    rng = np.random.default_rng(0)
    moved = compare_inits(_summary(0.2, rng))
    (pair,) = moved["pairs"]
    assert pair["reference"] == "pmem" and pair["other"] == "prior" and pair["pairs"] == 10
    assert pair["interval"][0] < 0.2 < pair["interval"][1]
    assert pair["verdict"].startswith("prior moves the transition: +0.2")
    same = compare_inits(_summary(0.0, rng))["pairs"][0]
    assert same["verdict"].startswith("no difference detected") and same["interval"][0] < 0 < same["interval"][1]
    # pairing removes the between-seed scatter (0.03) that the per-init means carry
    assert same["sd"] < 0.02 < moved["per_init"]["pmem"]["sd"]


def test_pairs_whose_fit_failed_are_left_out_and_counted():
    rng = np.random.default_rng(1)
    out = compare_inits(_summary(0.1, rng, fail={("prior", 2, 0), ("prior", 3, 4)}))
    pair = out["pairs"][0]
    assert pair["pairs"] == 8 and len(pair["left_out"]) == 2
    assert pair["left_out"][0]["prior"] == "outside sizes"
    assert out["per_init"]["prior"]["n"] == 8 and out["per_init"]["prior"]["statuses"] == ["ok", "outside sizes"]
    text = format_inits(out)
    assert "8 pairs, 2 left out" in text and "prior - pmem" in text
    none = compare_inits({"configs": [c for c in _summary(0.1, rng)["configs"] if c["init"] == "pmem"]
                          + [{"N": 20, "d": 10, "K": 2, "seed": 0, "init": "prior", "status": "no rise"}]})
    assert none["pairs"][0]["verdict"] == "too few pairs measured under both starts"


def test_the_shipped_init_comparison_follows_from_the_shipped_summary():
    """assets/init_sweep (gmmdiff-sweep --preset init, then --summary): inits.json is
    compare_inits() of summary.json; the sweep pairs pmem and prior starts over 2
    settings x 5 seeds with sizes up to 2N."""
    import json
    import os

    from gmmdiff.analysis.fit_files import ASSETS
    here = os.path.join(ASSETS, "init_sweep")
    summary = json.load(open(os.path.join(here, "summary.json")))
    ident = summary["identity"]
    assert ident["inits"] == ["pmem", "prior"] and len(ident["seeds"]) >= 4
    assert max(ident["size_ratios"]) == 2.0
    again = json.loads(json.dumps(compare_inits(summary)))
    shipped = json.load(open(os.path.join(here, "inits.json")))
    assert again["pairs"][0]["verdict"] == shipped["pairs"][0]["verdict"]
    np.testing.assert_allclose(again["pairs"][0]["differences"], shipped["pairs"][0]["differences"],
                               rtol=1e-9)
    np.testing.assert_allclose(again["pairs"][0]["interval"], shipped["pairs"][0]["interval"], rtol=1e-9)


def test_on_non_monotone_curves_the_whole_curve_fit_finds_the_crossing_the_first_crossing_misses():
    """Curves like the prior start's (shallow, each size scattered on the link scale so
    that they cross 1/2 more than once; benchmarks/bench_nonmonotone.py): over 120
    simulated curves the whole-curve fit is unbiased to 0.05 and its interval covers
    the true crossing in at least 85%, while the two-point rule's first crossing lies
    more than 0.1 below it on average."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
    from bench_nonmonotone import study
    r = study(np.random.default_rng(1), 1.75, 1.9, 0.55, 120)
    assert r["multiple"] > 0.15                  # the curves are non-monotone
    assert abs(r["fit_bias"]) < 0.05 and r["fit_coverage"] >= 0.85, r
    assert r["two_point_bias"] < -0.1, r
    clean = study(np.random.default_rng(2), 1.75, 1.9, 0.0, 40)   # without scatter both agree
    assert abs(clean["two_point_bias"]) < 0.02 and abs(clean["fit_bias"]) < 0.02


def test_the_gap_along_training_follows_from_the_shipped_summary():
    """assets/init_sweep: M_pt/N of every configuration at every evaluation step; at
    the last step the whole-curve means and the paired gap are compare_inits's."""
    from gmmdiff.analysis.fit_files import ASSETS
    from gmmdiff.analysis.inits import compare_inits, transition_along_training
    summary = json.load(open(os.path.join(ASSETS, "init_sweep", "summary.json")))
    along = transition_along_training(summary)
    final = compare_inits(summary)
    assert along["steps"][-1] == 50_000
    for init in ("pmem", "prior"):
        assert along["per_init"][init]["fit_mean"][-1] == pytest.approx(final["per_init"][init]["mean"], rel=1e-6)
    gap = along["pairs"][0]["fit"]
    assert gap["mean"][-1] == pytest.approx(final["pairs"][0]["mean"], rel=1e-6)
    # the prior's transition falls along training; pmem's has no crossing before training moves
    prior = [v for v in along["per_init"]["prior"]["fit_mean"] if v is not None]
    assert prior[0] > prior[-1] and along["per_init"]["pmem"]["fit_mean"][0] is None


def test_the_two_extrapolation_models_recover_what_they_state():
    """power_decay recovers the floor of gaps that level off (and its interval covers
    it), log_trend the closing step of gaps that shrink linearly in log-step; each
    model fits its own kind of curve better than the other does."""
    from gmmdiff.analysis.inits import log_trend, power_decay
    rng = np.random.default_rng(0)
    steps = np.geomspace(2e4, 8e4, 8)
    level = 0.8 + 50.0 * steps ** -0.6 + 0.01 * rng.standard_normal((6, steps.size))
    fit = power_decay(steps, level, n_boot=200)
    assert fit["g_inf"] == pytest.approx(0.8, abs=0.1)
    assert fit["intervals"]["g_inf"][0] <= 0.8 <= fit["intervals"]["g_inf"][1] + 0.02
    line = 3.0 - 0.2 * np.log(steps) + 0.005 * rng.standard_normal((6, steps.size))
    trend = log_trend(steps, line, n_boot=200)
    assert trend["b"] == pytest.approx(-0.2, abs=0.01)
    assert trend["closing_step"] == pytest.approx(np.exp(15.0), rel=0.2)
    lo, hi = trend["intervals"]["closing_step"]
    assert lo < np.exp(15.0) < hi
    assert log_trend(steps, -line)["closing_step"] == np.inf         # a growing gap never closes


def test_paired_gaps_pair_configurations_by_name():
    from gmmdiff.analysis.inits import paired_gaps
    along = {"per_init": {"pmem": {"configs": ["N20-d10-K2-s0", "N20-d10-K2-s1"],
                                   "fit": [[0.7, 0.8], [None, 0.75]]},
                          "prior": {"configs": ["N20-d10-K2-iprior-s1", "N20-d10-K2-iprior-s0"],
                                    "fit": [[1.9, 1.7], [1.8, 1.6]]}}}
    g = paired_gaps(along)
    np.testing.assert_allclose(g, [[np.nan, 1.7 - 0.75], [1.8 - 0.7, 1.6 - 0.8]])
