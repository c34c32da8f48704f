"""Fitting the time weights of the predicted transition on measured transitions (SPEC 7),
and scoring them on held-out settings.

:func:`fit_weights` fits lam on the probability simplex by minimizing the mean squared
error of the predicted M*/N over a training split of configurations;
:func:`fit_power` fits the one-parameter family lam_t ~ SNR_t^a. :func:`fit_and_score`
cross-validates either in folds of whole settings (all seeds of a setting on one side)
against the trivial predictor "the mean of the training split";
:func:`fit_summary` does it for a sweep's ``summary.json``. The fit files on disk and the shipped fits are :mod:`gmmdiff.analysis.fit_files`'s.
"""

import numpy as np

from gmmdiff.analysis.predict import SOURCES, _Stack, approximation_curves, config_of, training_set


def _time_scales(curves):
    """Per-time scales making the curves comparable across times (fitting only)."""
    mags = np.array([np.abs(gen) + np.abs(pmem).mean(axis=0) for _, gen, pmem, _ in curves])
    scale = mags.mean(axis=0)
    return np.where(scale > 0, scale, 1.0)


def fit_weights(curves, measured, *, n_restarts=4, seed=0):
    """Time weights on the simplex minimizing the mean squared error of M*/N.

    Parameters
    ----------
    curves : list of (M (J,), gen (T,), pmem (J, T), N) per configuration
    measured : (C,) measured M_pt / N of the same configurations
    Returns
    -------
    weights : (T,) nonnegative, summing to 1, for the curves as given.

    The optimization runs in per-time normalized units (the eps-scale weight spans six
    orders of magnitude over the grid) with SLSQP on the simplex from the uniform start
    and ``n_restarts`` seeded random starts; the best is kept.
    """
    from scipy.optimize import minimize
    measured = np.asarray(measured, dtype=np.float64)
    if len(curves) != measured.size or measured.size == 0:
        raise ValueError("need one measured ratio per configuration, at least one")
    scale = _time_scales(curves)
    stack = _Stack([(M, gen / scale, pmem / scale[None, :], N) for M, gen, pmem, N in curves])
    T = scale.size

    def loss(lam):
        lam = np.maximum(lam, 0.0)
        if lam.sum() <= 0:
            return 1.0
        return float(np.mean((stack.ratios(lam) - measured) ** 2))

    def losses(_, points):
        """SLSQP's finite-difference points (``workers(fun, iterable)``), all in one
        array expression: each value bit for bit ``loss`` of its point."""
        lam = np.maximum(np.array(list(points)), 0.0)                    # (P, T)
        sq = np.mean((stack.ratios_many(lam) - measured) ** 2, axis=1)   # (P,)
        return [1.0 if s <= 0 else float(v) for s, v in zip(lam.sum(axis=1), sq)]

    options = {"maxiter": 200, "ftol": 1e-12, "eps": 1e-4}
    if _slsqp_takes_workers():
        options["workers"] = losses
    rng = np.random.default_rng(seed)
    starts = [np.full(T, 1.0 / T)] + [rng.dirichlet(np.full(T, 0.5)) for _ in range(n_restarts)]
    best = None
    for x0 in starts:
        res = minimize(loss, x0, method="SLSQP", bounds=[(0.0, 1.0)] * T,
                       constraints=[{"type": "eq", "fun": lambda l: np.sum(l) - 1.0}],
                       options=options)
        cand = np.maximum(res.x, 0.0)
        cand /= cand.sum()
        value = loss(cand)
        if best is None or value < best[0]:
            best = (value, cand)
    lam = best[1] / scale
    return lam / lam.sum()


def _slsqp_takes_workers():
    """Whether SciPy's SLSQP evaluates its finite differences through a ``workers``
    map (SciPy >= 1.16); before, one point at a time (the same values, slower)."""
    import inspect

    from scipy.optimize._slsqp_py import _minimize_slsqp
    return "workers" in inspect.signature(_minimize_slsqp).parameters


def fit_power(curves, measured, snr, *, bounds=(-2.0, 2.0)):
    """The one-parameter weighting lam_t proportional to SNR_t^a minimizing the mean
    squared error of M*/N (a = 0 is the training weighting; a > 0 weights small t).

    curves, measured : as for :func:`fit_weights`;  snr : (T,) SNR of the grid times.
    Returns (a, weights (T,) summing to 1). A grid of 81 exponents over ``bounds``, then
    a bounded scalar search around the best grid point."""
    from scipy.optimize import minimize_scalar
    measured = np.asarray(measured, dtype=np.float64)
    stack = _Stack(curves)
    log_snr = np.log(np.asarray(snr, dtype=np.float64))

    def weights(a):
        z = a * log_snr
        w = np.exp(z - z.max())
        return w / w.sum()

    def loss(a):
        return float(np.mean((stack.ratios(weights(a)) - measured) ** 2))

    grid = np.linspace(bounds[0], bounds[1], 81)
    j = int(np.argmin([loss(a) for a in grid]))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    a = float(res.x) if res.fun <= loss(grid[j]) else float(grid[j])
    return a, weights(a)


FAMILIES = ("simplex", "snr_power")


def _fit_family(family, curves, measured, snr, seed):
    if family == "simplex":
        return fit_weights(curves, measured, seed=seed), None
    a, w = fit_power(curves, measured, snr)
    return w, a


def held_out_groups(groups):
    """The groups cross-validation holds out: the settings ``groups`` (C,), or, where
    all share one setting, each configuration its own. Returns (groups, held_out_by)."""
    if len(set(groups)) < 2:        # one setting: its seeds are all there is to hold out
        return list(range(len(groups))), "configuration (one setting only)"
    return list(groups), "setting"


def fit_and_score(curves, measured, groups=None, *, n_folds=None, seed=0, family="simplex",
                  snr=None, progress=None):
    """Fit a weighting family and score it by cross-validation grouped by setting.

    Parameters
    ----------
    curves : list of (M (J,), gen (T,), pmem (J, T), N);  measured : (C,) M_pt / N
    groups : (C,) the setting of each configuration (configurations of one setting --
        seeds -- are held out together); default, and where all share one setting:
        each configuration its own (``held_out_by`` says which)
    n_folds : folds of settings (:func:`gmmdiff.analysis.verdict.grouped_folds`, seeded;
        None: 5, or one per setting where there are fewer; more than the settings is
        refused)
    family : "simplex" (26 weights, :func:`fit_weights`) or "snr_power" (lam_t
        proportional to SNR_t^a, :func:`fit_power`; needs ``snr`` (T,))

    Returns a dict: ``weights`` (T,) and ``predicted`` (C,) of the fit on every
    configuration, ``mse_train`` its in-sample error; ``cv_predicted`` (C,), each from
    the fit without its fold, and ``mse_test`` their error; the trivial predictor (the
    mean measured ratio: ``trivial_prediction`` on all, ``trivial_cv_predicted`` from the
    other folds, ``trivial_mse_train`` / ``trivial_mse_test``); ``folds``; the paired
    verdict on the held-out errors (:func:`gmmdiff.analysis.verdict.paired_verdict`) and
    ``beats_trivial_on_test`` (its verdict is "beats trivial"); ``exponent`` a for
    "snr_power". ``progress``, if given, is called as ``progress(done, total)`` before
    the first fit (done 0) and after each (one on every configuration, one per fold:
    ``total`` = 1 + folds).
    """
    from gmmdiff.analysis.verdict import grouped_folds, paired_verdict
    if family not in FAMILIES:
        raise ValueError(f"unknown weighting family {family!r}; accepted: {', '.join(FAMILIES)}")
    if family == "snr_power" and snr is None:
        raise ValueError("family 'snr_power' needs the SNR of the grid times (snr=)")
    measured = np.asarray(measured, dtype=np.float64)
    groups, held_out_by = held_out_groups(list(range(measured.size)) if groups is None
                                          else list(groups))
    folds = grouped_folds(groups, n_folds, seed=seed)
    stack = _Stack(curves)
    fits_done = [0]

    def tick():
        fits_done[0] += 1
        if progress is not None:
            progress(fits_done[0], 1 + len(folds))

    if progress is not None:
        progress(0, 1 + len(folds))
    lam, a = _fit_family(family, curves, measured, snr, seed)
    tick()
    pred = stack.ratios(lam)
    cv, cv_trivial = np.empty_like(measured), np.empty_like(measured)
    for test in folds:
        train = np.setdiff1d(np.arange(measured.size), test)
        w, _ = _fit_family(family, [curves[i] for i in train], measured[train], snr, seed)
        tick()
        cv[test] = stack.ratios(w)[test]
        cv_trivial[test] = measured[train].mean()
    trivial = float(measured.mean())
    sq, sq_trivial = (cv - measured) ** 2, (cv_trivial - measured) ** 2
    verdict = paired_verdict(sq, sq_trivial, groups, seed=seed)
    return {
        "family": family, "exponent": a,
        "weights": lam.tolist(), "predicted": pred.tolist(), "measured": measured.tolist(),
        "cv_predicted": cv.tolist(), "folds": [f.tolist() for f in folds],
        "mse_train": float(np.mean((pred - measured) ** 2)), "mse_test": float(np.mean(sq)),
        "trivial_prediction": trivial, "trivial_cv_predicted": cv_trivial.tolist(),
        "trivial_mse_train": float(np.mean((trivial - measured) ** 2)),
        "trivial_mse_test": float(np.mean(sq_trivial)),
        "verdict": verdict, "beats_trivial_on_test": verdict["verdict"] == "beats trivial",
        "held_out_by": held_out_by,
    }


def setting_of(entry):
    """The setting of a summary entry: (N, d, K, s*, init), every seed of it alike."""
    return (entry["N"], entry["d"], entry["K"], float(entry.get("data_var", 1.0)),
            entry.get("init", "pmem"))


def summary_curves(summary, source, *, data_var=None):
    """The curves of ``source`` for the configurations of a summary with a measured
    transition (``M_pt_over_N`` not None), optionally of one data variance only.
    Returns (entries used, curves [(M, gen, pmem, N)], excluded [{config, status}])."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; accepted: {', '.join(SOURCES)}")
    base = summary["identity"]["base"]
    times = np.asarray(summary["times"], dtype=np.float64)
    used, curves, excluded = [], [], []
    for c in summary["configs"]:
        if data_var is not None and float(c.get("data_var", base.get("data_var", 1.0))) != float(data_var):
            continue
        if c.get("M_pt_over_N") is None:
            excluded.append({"config": c["name"], "status": c["status"]})
            continue
        cfg = config_of(base, c)
        if source == "mc":
            M, gen, pmem = (np.asarray(c["mc"][k], dtype=np.float64) for k in ("M", "gen", "pmem"))
        else:
            X = training_set(cfg) if source == "nearest" else None
            M, gen, pmem = approximation_curves(times, cfg, source, X=X)
        used.append(c)
        curves.append((M, gen, pmem, c["N"]))
    return used, curves, excluded


def fit_summary(summary, source, *, n_folds=None, seed=0, data_var=None, progress=None):
    """Fit the time weights of ``source`` on a sweep's summary
    (:func:`gmmdiff.experiments.sweep.summary.transition_summary`), needing no run directory: "mc" uses the
    Monte Carlo curves the summary holds, the approximations are computed from each
    configuration (and its seeded training set, for "nearest").

    Uses every configuration (of data variance ``data_var``, required when the sweep
    varies s*) whose fitted transition has status "ok"; the others are listed under
    ``excluded``. Both weighting families are fitted and cross-validated with folds of
    whole settings (:func:`fit_and_score`): the 26-weight simplex (the top-level keys)
    and the SNR power (under ``snr_power``). Adds the noise floor of the measurements
    (:func:`gmmdiff.analysis.verdict.noise_floor` over seeds of a setting), whether the trivial
    predictor's held-out error already lies within it, the source, the time grid, the
    configurations used, their range of N, d and K, the folds' seed, the target,
    process and data variance, and the summary's provenance. ``progress``: called as
    ``progress(done, total)`` before the first fit and after each, of both families.
    """
    from gmmdiff.analysis.verdict import fold_count, noise_floor
    from gmmdiff.model.process import snr as snr_of
    base = summary["identity"]["base"]
    variances = sorted({float(c.get("data_var", base.get("data_var", 1.0))) for c in summary["configs"]})
    if data_var is None:
        if len(variances) > 1:
            raise ValueError(f"the sweep varies the data variance ({', '.join(f'{v:g}' for v in variances)}); "
                             "fit on one of them (--data-var)")
        data_var = variances[0]
    elif float(data_var) not in variances:
        raise ValueError(f"data variance {data_var!r} is not in the sweep; accepted: "
                         f"{', '.join(f'{v:g}' for v in variances)}")
    times = np.asarray(summary["times"], dtype=np.float64)
    # the folds checked against what they hold out before any curve is computed
    held, by = held_out_groups([setting_of(c) for c in summary["configs"]
                                if c.get("M_pt_over_N") is not None
                                and float(c.get("data_var", base.get("data_var", 1.0)))
                                == float(data_var)])
    if len(held) >= 2:
        fold_count(n_folds, len(set(held)), "settings" if by == "setting" else "configurations")
    used, curves, excluded = summary_curves(summary, source, data_var=data_var)
    if len(curves) < 2:
        raise ValueError(f"{len(curves)} configuration(s) with a measured transition; a fit "
                         "needs at least 2")
    measured = [c["M_pt_over_N"] for c in used]
    groups = [setting_of(c) for c in used]
    snr = snr_of(times, base["process"])
    def family_progress(first):                 # (done, total) over both families
        return None if progress is None else (
            lambda k, n: (k or not first) and progress(first * n + k, 2 * n))
    result = fit_and_score(curves, measured, groups, n_folds=n_folds, seed=seed, family="simplex",
                           progress=family_progress(0))
    power = fit_and_score(curves, measured, groups, n_folds=n_folds, seed=seed, family="snr_power",
                          snr=snr, progress=family_progress(1))
    floor = noise_floor(measured, groups)
    at_floor = (floor["value"] is not None
                and result["trivial_mse_test"] <= floor["interval"][1])
    result.update(source=source, times=times.tolist(), configs=[c["name"] for c in used],
                  settings=[list(g) for g in groups],
                  measured_interval=[c.get("interval", [None, None]) for c in used],
                  excluded=excluded, snr_power=power, noise_floor=floor,
                  trivial_at_noise_floor=bool(at_floor),
                  split_seed=seed, n_folds=len(result["folds"]), target=base["target"],
                  process=base["process"], data_var=float(data_var),
                  range={k: [min(c[k] for c in used), max(c[k] for c in used)] for k in ("N", "d", "K")},
                  provenance=summary.get("provenance", {}))
    return result
