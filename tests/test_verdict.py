"""The honest held-out test (gmmdiff.analysis.verdict and the grouped cross-validation of
gmmdiff.analysis.fits.fit_and_score): noise floor, folds of whole settings, paired verdict."""
import numpy as np
import pytest

from gmmdiff.analysis.verdict import grouped_folds, noise_floor, paired_verdict


def replicated(rng, n_settings=30, seeds=2, between=0.0, noise=0.03):
    """Measurements of settings whose true means spread by ``between`` (sd), each seed
    adding N(0, noise^2). Returns (truth per measurement, measured, groups)."""
    means = 0.8 + between * rng.standard_normal(n_settings)
    groups = np.repeat(np.arange(n_settings), seeds)
    truth = means[groups]
    return truth, truth + noise * rng.standard_normal(truth.size), [int(g) for g in groups]


def test_noise_floor_recovers_the_replicate_variance_with_an_interval():
    rng = np.random.default_rng(0)
    inside = 0
    for _ in range(100):
        _, y, g = replicated(rng, between=0.05, noise=0.03)
        floor = noise_floor(y, g)
        assert floor["df"] == 30 and floor["settings"] == 30
        inside += floor["interval"][0] <= 0.03 ** 2 <= floor["interval"][1]
    assert inside >= 88                                    # a 95% interval, 100 trials
    assert noise_floor([0.1, 0.2], [0, 1])["value"] is None


def test_grouped_folds_never_split_a_setting():
    rng = np.random.default_rng(1)
    groups = list(rng.integers(0, 13, size=40))
    for n_folds in (2, 5, 13, None):
        folds = grouped_folds(groups, n_folds, seed=3)
        assert len(folds) == (n_folds or 5)
        assert sorted(np.concatenate(folds).tolist()) == list(range(40))
        for f in folds:
            inside = {groups[i] for i in f}
            outside = {groups[i] for i in range(40) if i not in set(f.tolist())}
            assert not inside & outside
    with pytest.raises(ValueError, match="2 settings"):
        grouped_folds([1, 1, 1], 2)
    with pytest.raises(ValueError, match="more than the 13 settings"):   # one is left empty
        grouped_folds(groups, 14)
    assert len(grouped_folds([0, 1, 2, 0, 1, 2], None)) == 3              # fewer than 5


def test_verdict_indistinguishable_when_the_truth_is_a_constant():
    """Constant truth plus noise: a fit whose predictions cannot vary between settings
    ties with the trivial predictor ("indistinguishable"), and a predictor with no
    information beyond the constant (the held-out mean plus a little jitter of its
    own, per setting) is never declared to beat it beyond the test's false alarms."""
    from gmmdiff.analysis.fits import fit_and_score
    rng = np.random.default_rng(2)
    verdicts = []
    for trial in range(40):
        _, y, g = replicated(rng, between=0.0, noise=0.03)
        g_arr = np.array(g)
        trivial = np.array([y[g_arr != k].mean() for k in g_arr])         # held out by setting
        jitter = 0.003 * rng.standard_normal(30)[g_arr]
        verdicts.append(paired_verdict((trivial + jitter - y) ** 2, (trivial - y) ** 2, g,
                                       seed=trial)["verdict"])
    assert verdicts.count("beats trivial") <= 3, verdicts
    assert verdicts.count("indistinguishable from trivial") >= 28, verdicts
    _, y, g = replicated(rng, n_settings=12, between=0.0, noise=0.03)
    M = np.arange(1, 101, dtype=float)
    # the same curves for every setting (as "simple" gives): the weights move the one
    # predicted crossing between 0.5 and 0.9, never differently between settings
    flat = [(M, np.array([0.4, 2.0]), np.array([4.0, 4.0])[None] * (1 - M / 100)[:, None], 100)] * y.size
    res = fit_and_score(flat, y, g, n_folds=4)
    assert res["verdict"]["verdict"] == "indistinguishable from trivial" and not res["beats_trivial_on_test"]


def test_verdict_beats_when_the_predictor_knows_the_setting_means():
    rng = np.random.default_rng(3)
    truth, y, g = replicated(rng, between=0.05, noise=0.01)
    trivial = np.full_like(y, y.mean())
    assert paired_verdict((truth - y) ** 2, (trivial - y) ** 2, g)["verdict"] == "beats trivial"
    # and the reverse comparison is "worse"
    assert paired_verdict((trivial - y) ** 2, (truth - y) ** 2, g)["verdict"] == "worse than trivial"


def test_held_out_predictions_do_not_see_their_own_fold():
    """Corrupting the measurements of one fold's settings leaves that fold's held-out
    predictions (of the fit and of the trivial predictor) unchanged."""
    from gmmdiff.analysis.fits import fit_and_score
    from test_sweep import synthetic
    true = np.array([0.4, 0.05, 0.25, 0.3])
    curves, measured = synthetic(20, true, seed=1)
    groups = [k // 2 for k in range(20)]                  # 10 settings of 2 "seeds"
    base = fit_and_score(curves, measured, groups, n_folds=5, seed=3)
    fold = np.array(base["folds"][0])
    assert all(groups[i] not in {groups[j] for j in range(20) if j not in fold} for i in fold)
    spoiled = measured.copy()
    spoiled[fold] = 0.01
    again = fit_and_score(curves, spoiled, groups, n_folds=5, seed=3)
    np.testing.assert_allclose(np.array(again["cv_predicted"])[fold], np.array(base["cv_predicted"])[fold],
                               rtol=1e-9)
    np.testing.assert_allclose(np.array(again["trivial_cv_predicted"])[fold],
                               np.array(base["trivial_cv_predicted"])[fold], rtol=1e-12)
    assert base["verdict"]["verdict"] == "beats trivial" and base["beats_trivial_on_test"]
    assert base["mse_test"] < base["trivial_mse_test"]


def test_the_snr_power_family_recovers_its_exponent():
    from gmmdiff.analysis.fits import fit_and_score
    from gmmdiff.analysis.predict import _Stack
    from test_sweep import synthetic
    snr = np.array([0.01, 0.3, 3.0, 100.0])
    true = snr ** 0.4 / np.sum(snr ** 0.4)
    curves, _ = synthetic(20, true, seed=5)
    measured = _Stack(curves).ratios(true)
    res = fit_and_score(curves, measured, family="snr_power", snr=snr)
    assert res["exponent"] == pytest.approx(0.4, abs=0.02)
    assert res["mse_train"] < 1e-6
