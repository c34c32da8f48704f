"""The memorization-time law's estimators on simulated series with known answers."""
import numpy as np
import pytest
from scipy.special import expit, logit

from gmmdiff.analysis.timelaw import (exponent_verdict, isotonic, log_mean_interval,
                                         minimum_step, onset_step, power_law, time_law)

STEPS = np.unique(np.round(np.geomspace(100, 100_000, 30))).astype(int)


def test_isotonic_is_the_weighted_least_squares_monotone_fit():
    y = np.array([0.1, 0.3, 0.2, 0.2, 0.6, 0.5, 0.9])
    w = np.array([1, 1, 2, 1, 1, 3, 1.0])
    f = isotonic(y, w)
    assert np.all(np.diff(f) >= 0)
    np.testing.assert_allclose(f, [0.1, 0.225, 0.225, 0.225, 0.525, 0.525, 0.9])
    assert np.sum(w * f) == pytest.approx(np.sum(w * y))       # block means keep the total
    np.testing.assert_array_equal(isotonic([0.1, 0.2], [1, 1]), [0.1, 0.2])


def _curve(tau, threshold, slope=2.5):
    """A memorization ratio that crosses ``threshold`` at step ``tau`` (logistic in log
    step, rising towards 1)."""
    return expit(slope * (np.log(STEPS) - np.log(tau)) + logit(threshold))


def test_onset_is_exact_on_a_noiseless_curve_and_censoring_is_reported():
    tau = 3_000.0
    got, status = onset_step(STEPS, _curve(tau, 0.25), 500, 0.25)
    assert status == "ok" and got == pytest.approx(tau, rel=0.02)    # interpolation only
    assert onset_step(STEPS, np.full(STEPS.size, 0.1), 500, 0.25) == (None, "not reached")
    assert onset_step(STEPS, np.full(STEPS.size, 0.9), 500, 0.25) == (100.0, "at start")
    # step 0 (the initialization) is left out of the log scale, with its weight
    got0, _ = onset_step(np.r_[0, STEPS], np.r_[1.0, _curve(tau, 0.25)], np.full(STEPS.size + 1, 500), 0.25)
    assert got0 == pytest.approx(got)


def test_onset_interval_over_seeds_covers_the_known_onset_in_90_percent_of_simulations():
    """200 simulated experiments of 4 seeds: each seed's onset scatters around tau0 = 2,000
    (log-normal, sd 0.2), its ratio curve is observed at 30 log-spaced steps through 500
    generated samples (binomial noise); the interval over seeds must cover tau0 in at
    least 90% of them (nominal 95%)."""
    rng = np.random.default_rng(0)
    tau0, covered = 2_000.0, 0
    for _ in range(200):
        taus = []
        for tau_i in tau0 * np.exp(0.2 * rng.standard_normal(4)):
            counts = rng.binomial(500, _curve(tau_i, 0.25))
            t, status = onset_step(STEPS, counts / 500, 500, 0.25)
            assert status == "ok"
            taus.append(t)
        _, (lo, hi) = log_mean_interval(taus)
        covered += lo <= tau0 <= hi
    assert covered >= 180, covered


def test_minimum_step_finds_the_vertex_in_log_step():
    x = np.log(STEPS)
    loss = 5 + 0.3 * (x - np.log(4_000)) ** 2
    got, status = minimum_step(STEPS, loss)
    assert status == "ok" and got == pytest.approx(4_000, rel=1e-6)
    assert minimum_step(STEPS, -x)[1] == "at end"
    assert minimum_step(STEPS, x)[1] == "at start"


def test_power_law_recovers_a_known_exponent():
    """tau = c N^gamma e^(0.3 z) over N in {10, 20, 40, 80} x 4 seeds: the 95% interval
    covers gamma in at least 90% of 200 simulations, for gamma = 1 and gamma = 0."""
    rng = np.random.default_rng(1)
    N = np.repeat([10, 20, 40, 80], 4)
    for gamma in (1.0, 0.0):
        covered = 0
        for _ in range(200):
            tau = 50.0 * N ** gamma * np.exp(0.3 * rng.standard_normal(N.size))
            fit = power_law(N, tau)
            covered += fit["interval"][0] <= gamma <= fit["interval"][1]
        assert covered >= 180, (gamma, covered)
    exact = power_law([10, 20, 40], [30.0, 60.0, 120.0])
    assert exact["exponent"] == pytest.approx(1.0) and exact["prefactor"] == pytest.approx(3.0)
    assert power_law([10, 10, 10], [1.0, 2.0, 3.0])["exponent"] is None


def test_verdicts_say_what_the_interval_contains():
    fit = {"exponent": 0.9, "interval": [0.7, 1.1]}
    assert exponent_verdict(fit, 1.0, 0.0) == ("0.90 [0.70, 1.10]: consistent with the "
                                               "published 1; excludes 0")
    fit = {"exponent": 0.1, "interval": [-0.2, 0.4]}
    assert exponent_verdict(fit, 1.0, 0.0).endswith("excludes the published 1; cannot exclude 0 either")


def test_time_law_reads_a_summary_and_fits_each_ratio():
    """A summary of simulated series, onsets proportional to N: gamma near 1, and the
    test-loss minimum at a fixed step: beta near 0."""
    rng = np.random.default_rng(2)
    configs = []
    for N in (10, 20, 40, 80):
        for seed in range(4):
            tau = 40.0 * N * np.exp(0.1 * rng.standard_normal())
            counts = rng.binomial(500, _curve(tau, 0.25))
            loss = 3 + 0.2 * (np.log(STEPS) - np.log(1_500)) ** 2
            configs.append({"N": N, "seed": seed, "sizes": [float(N)],
                            "along": {"steps": STEPS.tolist(), "counts": counts[:, None].tolist(),
                                      "n": [[500]] * STEPS.size,
                                      "test_loss": loss[:, None].tolist()}})
    law = time_law({"configs": configs}, threshold=0.25)
    (r,) = law["ratios"]
    assert r["M_over_N"] == 1.0 and [e["N"] for e in r["per_N"]] == [10, 20, 40, 80]
    assert r["gamma"]["interval"][0] < 1.0 < r["gamma"]["interval"][1]
    assert abs(r["beta"]["exponent"]) < 0.05


def test_the_shipped_time_law_follows_from_the_shipped_summary():
    """assets/time_sweep (gmmdiff-sweep --preset time, then --summary): time_law.json is
    time_law() of summary.json, and the sweep is the preset's: 4 N over a factor 8, 4
    seeds each, the prior start, a constant learning rate after the warm-up."""
    import json
    import os

    from gmmdiff.analysis.fit_files import ASSETS
    here = os.path.join(ASSETS, "time_sweep")
    summary = json.load(open(os.path.join(here, "summary.json")))
    shipped = json.load(open(os.path.join(here, "time_law.json")))
    ident = summary["identity"]
    assert ident["samples"] == [10, 20, 40, 80] and len(ident["seeds"]) >= 4
    assert ident["inits"] == ["prior"] and ident["size_ratios"] == [1.0, 2.0]
    assert ident["base"]["lr_final"] == ident["base"]["lr_peak"]
    again = json.loads(json.dumps(time_law(summary)))

    def close(a, b, path="law"):
        if isinstance(a, dict):
            assert sorted(a) == sorted(b), path
            for k in a:
                close(a[k], b[k], f"{path}.{k}")
        elif isinstance(a, list):
            assert len(a) == len(b), path
            for i, (x, y) in enumerate(zip(a, b)):
                close(x, y, f"{path}[{i}]")
        elif isinstance(a, float):       # the censored fits: an optimizer's tolerance
            rel = 1e-6 if ".gamma" in path or ".beta" in path else 1e-9
            assert a == pytest.approx(b, rel=rel, abs=1e-9), path
        else:
            assert a == b, path
    close(again, shipped)


def _censored_experiment(rng, gamma, limit, sd=0.6):
    """tau = 50 N^gamma e^(sd z) over N in {10, ..., 160} x 4 seeds; every tau beyond
    ``limit`` is reported as "not reached" at ``limit`` (the run ended first)."""
    N = np.repeat([10, 20, 40, 80, 160], 4)
    tau = 50.0 * N ** gamma * np.exp(sd * rng.standard_normal(N.size))
    status = np.where(tau > limit, "not reached", "ok")
    return N, np.minimum(tau, limit), status


def test_the_censored_fit_recovers_the_exponent_that_dropping_censored_runs_biases():
    """About a third of the runs censored (the slow ones, at large N): over 100
    simulated experiments the censored likelihood's 95% interval covers gamma = 1 in at
    least 88 of them and its estimate is unbiased to 0.06, while the least-squares fit
    of the uncensored runs alone is biased low by more than 0.2 and covers gamma in
    fewer than 85."""
    from gmmdiff.analysis.timelaw import censored_power_law
    rng = np.random.default_rng(5)
    cover = cover_dropped = 0
    est, dropped, censored = [], [], []
    for _ in range(100):
        N, tau, status = _censored_experiment(rng, 1.0, 3000.0)
        censored.append(np.mean(status != "ok"))
        fit = censored_power_law(N, tau, status)
        assert fit["method"] == "censored likelihood"
        lo, hi = fit["interval"]
        cover += lo <= 1.0 <= hi
        est.append(fit["exponent"])
        ok = status == "ok"
        plain = power_law(N[ok], tau[ok])
        cover_dropped += plain["interval"][0] <= 1.0 <= plain["interval"][1]
        dropped.append(plain["exponent"])
    assert 0.3 < np.mean(censored) < 0.45
    assert cover >= 88, cover
    assert abs(np.mean(est) - 1.0) < 0.06, np.mean(est)
    assert np.mean(dropped) < 0.8 and cover_dropped < 85, (np.mean(dropped), cover_dropped)


def test_the_censored_fit_is_least_squares_without_censoring_and_bounds_left_censoring():
    from gmmdiff.analysis.timelaw import censored_power_law
    rng = np.random.default_rng(2)
    N, tau, status = _censored_experiment(rng, 0.5, np.inf, sd=0.3)
    fit, plain = censored_power_law(N, tau, status), power_law(N, tau)
    assert fit["exponent"] == plain["exponent"] and fit["interval"] == plain["interval"]
    # onsets before the first evaluation ("at start") are left-censored there: raising
    # the smallest-N runs' times to that step would bias gamma down, censoring does not
    first = 50.0 * 10 ** 0.5 * 1.3
    st = np.where(tau < first, "at start", "ok")
    t2 = np.maximum(tau, first)
    cens = censored_power_law(N, t2, st)
    assert cens["n_censored"] == int(np.sum(st != "ok")) > 0
    assert abs(cens["exponent"] - plain["exponent"]) < abs(power_law(N, t2)["exponent"] - plain["exponent"])
    assert censored_power_law([10, 20, 40], [1.0, 2.0, 3.0], ["not reached"] * 3)["exponent"] is None


def test_the_mechanism_and_the_protocol_table():
    """The mechanism's gamma per protocol, and protocol_laws on simulated sweeps whose
    onsets grow as N^0 (full-batch Adam) and N^1 (gradient descent): each row's
    verdicts follow its interval."""
    from gmmdiff.analysis.protocols import format_protocol_laws, mechanism_gamma, protocol_laws
    assert [mechanism_gamma("adam", False), mechanism_gamma("adam", True),
            mechanism_gamma("sgd", False), mechanism_gamma("momentum", True)] == [0.0, 0.5, 1.0, 1.0]
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        mechanism_gamma("lbfgs", False)
    rng = np.random.default_rng(4)

    def sweep(gamma, base):
        configs = []
        for N in (10, 20, 40, 80):
            for seed in range(4):
                tau = 300.0 * (N / 10) ** gamma * np.exp(0.1 * rng.standard_normal())
                counts = rng.binomial(500, _curve(tau, 0.1))
                configs.append({"N": N, "seed": seed, "sizes": [2.0 * N],
                                "along": {"steps": STEPS.tolist(), "counts": counts[:, None].tolist(),
                                          "n": [[500]] * STEPS.size,
                                          "test_loss": (3 + 0.2 * (np.log(STEPS) - 7) ** 2)[:, None].tolist()}})
        return {"identity": {"base": base}, "configs": configs}

    result = protocol_laws({"adam": sweep(0.0, {"lr_peak": 1e-3}),
                            "sgd": sweep(1.0, {"optimizer": "sgd", "lr_peak": 1e-2}),
                            "adam-b10": sweep(0.5, {"lr_peak": 1e-3, "batch_size": 10})})
    rows = {r["protocol"]: r for r in result["rows"]}
    assert rows["adam"]["mechanism"] == 0.0 and "consistent with the published 0" in rows["adam"]["versus_mechanism"]
    assert "excludes the published 1" in rows["adam"]["versus_published"]
    assert "consistent with the published 1" in rows["sgd"]["versus_published"]
    g = rows["adam-b10"]["gamma"]
    assert g["interval"][0] < 0.5 < g["interval"][1]
    # in epochs (steps B / N with B = 10) a minibatch protocol's exponent is one less
    assert rows["adam-b10"]["gamma_epochs"]["exponent"] == pytest.approx(g["exponent"] - 1, abs=1e-6)
    assert rows["sgd"]["gamma_epochs"]["exponent"] == pytest.approx(rows["sgd"]["gamma"]["exponent"])
    text = format_protocol_laws(result)
    assert text.count("\n") == 5 and "adam-b10" in text


def test_protocols_are_compared_paired_by_setting_and_seed():
    """compare_protocols on summaries whose M_pt/N differ by a known shift (+0.1 for
    every configuration of one, 0 for another): the paired verdicts say so; the
    configurations of another s* and failed fits stay out."""
    from gmmdiff.analysis.protocols import compare_protocols, format_compare_protocols
    rng = np.random.default_rng(3)

    def summary(shift, fail=()):
        configs = []
        for K in (2, 3):
            for seed in range(4):
                base = 0.8 + 0.03 * np.sin(7 * seed + K)            # the setting's own value
                configs.append({"N": 20, "d": 10, "K": K, "seed": seed, "data_var": 1.0,
                                "status": "not converged" if (K, seed) in fail else "ok",
                                "M_pt_over_N": base + shift + 0.002 * rng.standard_normal(),
                                "convergence": ["converged"] * 5})
                configs.append({"N": 20, "d": 10, "K": K, "seed": seed, "data_var": 2.0,
                                "status": "ok", "M_pt_over_N": 5.0, "convergence": []})
        return {"identity": {"base": {}}, "configs": configs}

    r = compare_protocols({"adam": summary(0.0), "sgd": summary(0.1, fail={(2, 0)}),
                           "same": summary(0.0)}, "adam")
    assert r["per_sweep"]["sgd"]["n"] == 7 and r["per_sweep"]["adam"]["converged"] == 40
    sgd, same = r["pairs"]
    assert sgd["pairs"] == 7 and sgd["mean"] == pytest.approx(0.1, abs=0.005)
    assert sgd["verdict"].startswith("moves the transition")
    assert same["verdict"].startswith("no difference detected")
    assert "sgd - adam, paired by setting and seed (7 pairs)" in format_compare_protocols(r)


@pytest.mark.parametrize("name, optimizer, batch", [("time-adam", None, None), ("time-sgd", "sgd", None),
                                                    ("time-adam-b10", None, 10),
                                                    ("time-momentum-b10", "momentum", 10)])
def test_the_shipped_protocol_laws_follow_from_their_summaries(name, optimizer, batch):
    """assets/time_protocols/<preset>: the sweep is its preset's (N over a factor 16, 4
    seeds, the prior start, M/N = 2, a constant learning rate, the protocol's optimizer
    and batch) and time_law.json is time_law() of its summary (what --summary wrote)."""
    import json
    import os

    from gmmdiff.analysis.fit_files import ASSETS
    from gmmdiff.experiments.sweep.presets import PRESETS
    here = os.path.join(ASSETS, "time_protocols", name)
    summary = json.load(open(os.path.join(here, "summary.json")))
    shipped = json.load(open(os.path.join(here, "time_law.json")))
    ident = summary["identity"]
    assert ident["samples"] == [10, 20, 40, 80, 160] and ident["seeds"] == [0, 1, 2, 3]
    assert ident["inits"] == ["prior"] and ident["size_ratios"] == [2.0]
    base = ident["base"]
    assert base["lr_final"] == base["lr_peak"] == PRESETS[name]["lr_peak"]
    assert base.get("optimizer") == optimizer and base.get("batch_size") == batch
    again = json.loads(json.dumps(time_law(summary)))
    for r, s in zip(again["ratios"], shipped["ratios"]):
        for key in ("gamma", "beta"):
            assert r[key]["exponent"] == pytest.approx(s[key]["exponent"], rel=1e-6)
            assert r[key]["interval"] == pytest.approx(s[key]["interval"], rel=1e-5)
        assert [e["tau_mem"] for e in r["per_N"]] == [e["tau_mem"] for e in s["per_N"]]
