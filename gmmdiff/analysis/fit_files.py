"""Fit files and the results that ship with gmmdiff: reading a ``fit_<source>.json``
(:func:`read_fit`), the CPU sweep's fits (:func:`shipped_fits`) and the data-variance
experiment (:func:`shipped_transfer`) in ``gmmdiff/assets`` (:data:`ASSETS`), and the
held-out error of a fit file's weighting on its own configurations
(:func:`held_out_scores`, what each row of ``gmmdiff-predict`` shows).
"""
import os

import numpy as np

from gmmdiff.analysis.fits import _fit_family
from gmmdiff.analysis.predict import SOURCES, _Stack, approximation_curves, training_set


def read_fit(path, times, required=()):
    """A fit file (``fit_<source>.json`` of ``gmmdiff-predict --fit``), checked.

    Parameters
    ----------
    path : str
        The fit file.
    times : (T,) array
        The time grid the fit must have been made on.
    required : tuple of str
        Keys the caller uses beyond the weights (``"trivial_prediction"`` for
        ``--transfer``), each required to be there and valid.

    Returns
    -------
    dict
        ``weights`` and ``times`` (T,) as lists, ``source`` and the scores
        (:doc:`/files`), each of the type and sign the fit writes; ValueError names the
        file and what is wrong with it.
    """
    from gmmdiff.io.files import StorageError, not_json_hint, read_json
    from gmmdiff.io.schemas import SCHEMAS, fit_scores_problem, schema_error
    advice = "give a fit file written by `gmmdiff-predict --fit SWEEP_DIR` (SWEEP_DIR/fit_<source>.json)"
    try:
        fit = read_json(path)
    except StorageError as exc:
        if "corrupt or truncated JSON file" not in str(exc):   # not JSON at all
            raise
        raise StorageError(f"{path} is not a fit file: expected the JSON file fit_<source>.json "
                           "that `gmmdiff-predict --fit SWEEP_DIR` writes into SWEEP_DIR (e.g. "
                           f"fit_mc.json){not_json_hint(path)}") from None
    schema = dict(SCHEMAS["fit"], **{k: SCHEMAS["fit"][k + "?"] for k in required})
    err = schema_error(fit, schema) or fit_scores_problem(fit)
    if err:
        raise StorageError(f"{path} is not a valid fit file: {err}; {advice}")
    w = np.asarray(fit["weights"], dtype=np.float64)
    t = np.asarray(fit["times"], dtype=np.float64)
    if fit["source"] not in SOURCES:
        raise ValueError(f"{path}: unknown source {fit['source']!r}; accepted: {', '.join(SOURCES)}")
    if t.shape != np.shape(times) or not np.allclose(t, times):
        raise ValueError(f"{path} was fitted on another time grid ({t.size} times)")
    if w.shape != t.shape or w.sum() <= 0:
        raise ValueError(f"{path}: the weights must be {t.size} finite numbers >= 0, not all 0")
    if "snr_power" in fit and len(fit["snr_power"]["weights"]) != t.size:
        raise ValueError(f"{path}: snr_power.weights must be {t.size} numbers, one per time")
    return fit


ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")


SHIPPED = os.path.join(ASSETS, "cpu_sweep")


SHIPPED_TRANSFER = os.path.join(ASSETS, "svar_sweep", "transfer.json")


def shipped_fits():
    """The fits that ship with gmmdiff, made on the CPU sweep (``gmmdiff-sweep --preset
    cpu``; its summary is ``gmmdiff/assets/cpu_sweep/summary.json``).

    Returns
    -------
    dict
        source (``"mc"``, ``"simple"``, ``"nearest"``, ``"expected"``) -> fit dict
        (as :func:`read_fit` returns it); empty when none ships.
    """
    from gmmdiff.io.files import read_json
    out = {}
    for source in SOURCES:
        path = os.path.join(SHIPPED, f"fit_{source}.json")
        if os.path.exists(path):
            out[source] = read_json(path)
    return out


def shipped_transfer():
    """The data-variance experiment that ships with gmmdiff (``gmmdiff-sweep --preset
    svar`` then ``gmmdiff-predict --transfer``): how the shipped s* = 1 fits predict the
    transitions measured at s* = 0.5, 1 and 2 (:func:`gmmdiff.analysis.transfer.
    transfer`'s dict), or None when it does not ship."""
    from gmmdiff.io.schemas import read_transfer
    return read_transfer(SHIPPED_TRANSFER) if os.path.exists(SHIPPED_TRANSFER) else None


def _fit_configs(fit):
    """The settings of each configuration of a fit file as plain dicts (its N, d, K and
    s*, the seed in its name, the fit's target and process; the keys of
    :func:`gmmdiff.analysis.predict.config_of`)."""
    import re

    out = []
    for name, setting in zip(fit["configs"], fit["settings"]):
        N, d, K, s = setting[:4]          # (N, d, K, s*[, init]: fits before the init axis)
        m = re.search(r"-s(\d+)$", str(name))
        if m is None:
            raise ValueError(f"configuration name {name!r} of the fit carries no seed")
        out.append(dict(dim=int(d), components=int(K), samples=int(N), seed=int(m.group(1)),
                        data_var=float(s), target=fit.get("target", "eps"),
                        process=fit.get("process", "vp"),
                        init=setting[4] if len(setting) > 4 else "pmem"))
    return out


def _source_curves(fit, source, summary=None):
    """[(M, gen, pmem, N)] of ``source`` for every configuration of ``fit``: the
    approximations from the configurations themselves, "mc" from the sweep's ``summary``
    (None without one)."""
    if source == "mc":
        if summary is None:
            return None
        by_name = {c["name"]: c for c in summary["configs"]}
        if not all(n in by_name and "mc" in by_name[n] for n in fit["configs"]):
            return None
        return [tuple(np.asarray(by_name[n]["mc"][k], dtype=np.float64) for k in ("M", "gen", "pmem"))
                + (by_name[n]["N"],) for n in fit["configs"]]
    times = np.asarray(fit["times"], dtype=np.float64)
    curves = []
    for cfg in _fit_configs(fit):
        X = training_set(cfg) if source == "nearest" else None
        curves.append(tuple(approximation_curves(times, cfg, source, X=X)) + (cfg["samples"],))
    return curves


def held_out_scores(fit, source, weighting, *, summary=None, recompute=False):
    """Held-out error of one row of ``gmmdiff-predict``: M*/N predicted by ``source``
    with the naive (uniform) weighting or with ``fit``'s weighting, on the fit's
    measured configurations, beside the trivial predictor's cross-validated error and
    the paired verdict (:func:`gmmdiff.analysis.verdict.paired_verdict`, over settings).

    - the fit's own source and weighting: the fit's cross-validated scores;
    - the naive weighting: nothing is fitted, so every configuration is held out;
    - the fit's weighting with another source: cross-validated here with the fit's
      folds (weights refitted with the fit's source without each fold, predictions with
      ``source``; seconds). Not for an "mc" fit: refitting on the sweep's Monte Carlo
      curves takes minutes (measured: about 3 minutes a row on the shipped sweep).

    ``summary``: the sweep's summary, for the naive row of an "mc" source;
    ``recompute``: cross-validate the fit's own row here too (it then equals the fit's
    stored score, which the tests check). Returns a
    dict with ``mse``, ``trivial_mse``, ``verdict``, ``n`` and ``how`` (and ``why``
    where there is no verdict: too few settings), or None where the error is not
    computed."""
    from gmmdiff.analysis.verdict import NO_VERDICT, no_verdict_reason, paired_verdict, stated_verdict
    if weighting not in ("naive", "fitted"):
        raise ValueError(f"unknown weighting {weighting!r}; accepted: naive, fitted")
    measured = np.asarray(fit["measured"], dtype=np.float64)
    n = int(measured.size)
    if weighting == "fitted" and source == fit["source"] and not recompute:
        verdict = stated_verdict(fit["verdict"])
        return {"mse": float(fit["mse_test"]), "trivial_mse": float(fit["trivial_mse_test"]),
                "verdict": verdict, "n": n, "how": "the fit's cross-validation",
                **({"why": no_verdict_reason(fit["verdict"]["settings"])}
                   if verdict == NO_VERDICT else {})}
    if weighting == "fitted" and fit["source"] == "mc":
        return None         # refitting on the Monte Carlo curves takes minutes: not here
    curves = _source_curves(fit, source, summary)
    if curves is None:
        return None
    stack = _Stack(curves)
    if weighting == "naive":
        T = len(fit["times"])
        pred = stack.ratios(np.full(T, 1.0 / T))
        how = "naive weighting: nothing fitted, every configuration held out"
    else:
        fit_curves = _source_curves(fit, fit["source"], summary)
        if fit_curves is None:
            return None
        snr_t = None
        if fit.get("family", "simplex") == "snr_power":
            from gmmdiff.model.process import snr
            snr_t = snr(np.asarray(fit["times"], dtype=np.float64), fit.get("process", "vp"))
        pred = np.empty_like(measured)
        for test in fit["folds"]:
            test = np.asarray(test, dtype=int)
            train = np.setdiff1d(np.arange(n), test)
            w, _ = _fit_family(fit.get("family", "simplex"), [fit_curves[i] for i in train],
                               measured[train], snr_t, int(fit.get("split_seed", 0)))
            pred[test] = stack.ratios(w)[test]
        how = f"cross-validated here: weights fitted with {fit['source']}, predictions with {source}"
        if fit.get("family", "simplex") == "snr_power":      # a fit of the SNR^a family
            how += " (SNR^a family)"
    sq = (pred - measured) ** 2
    sq_trivial = (np.asarray(fit["trivial_cv_predicted"], dtype=np.float64) - measured) ** 2
    groups = [tuple(g) for g in fit["settings"]]
    verdict = paired_verdict(sq, sq_trivial, groups, seed=int(fit.get("split_seed", 0)))
    return {"mse": float(np.mean(sq)), "trivial_mse": float(np.mean(sq_trivial)),
            "verdict": verdict["verdict"], "n": n, "how": how,
            **({"why": verdict["why"]} if "why" in verdict else {})}
