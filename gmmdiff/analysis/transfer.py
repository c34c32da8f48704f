"""The data-variance experiment (the "svar" sweep): time weights fitted at one data
variance (s* = 1, the CPU sweep), the theory's predictions at every s* of another
sweep, against its measured transitions.

With the "simple" approximations M*/N = 1 - sum_t lam_t w_t / (1 + SNR_t s*) /
sum_t lam_t w_t moves with s* and with nothing else, so a sweep over s* tests the one
thing the simple theory predicts; the other sources predict per configuration.
:func:`transfer` computes, per source and weighting, each configuration's predicted
M*/N and, per s*, the mean measured and predicted values with intervals, and the
paired verdict of the predictions against the trivial predictor (the fit's own mean
measured ratio at s* = 1, which predicts no change with s*).
"""
import numpy as np

from gmmdiff.analysis.fits import setting_of, summary_curves
from gmmdiff.analysis.predict import SOURCES, _Stack
from gmmdiff.analysis.verdict import paired_verdict


def _mean_interval(values, level=0.95):
    from scipy import stats
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float(v.mean()) if v.size else None, [None, None]
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), [float(v.mean() - half), float(v.mean() + half)]


def transfer(summary, fits, *, sources=SOURCES, seed=0):
    """Predicted against measured M_pt/N per data variance.

    Parameters
    ----------
    summary : the summary of a sweep over s* (:func:`gmmdiff.experiments.sweep.summary.transition_summary`)
    fits : source -> fit dict (:func:`gmmdiff.analysis.fits.fit_summary`, e.g. the shipped
        CPU-sweep fits at s* = 1), with its ``weights`` (simplex), ``snr_power`` and
        ``trivial_prediction``

    Returns a dict: ``data_vars``; ``measured`` per s* (mean M_pt/N over the
    configurations with its t interval, their number, the settings); per source and
    weighting (``naive``: uniform; ``simplex``; ``snr_power``) the per-configuration
    predictions, per s* their mean and range, and the paired verdict over settings of
    the predictions' squared errors against the trivial predictor's; the trivial
    prediction; and ``measured_difference`` / predicted ``difference`` between the
    largest and the smallest s*.
    """
    from scipy import stats
    configs = [c for c in summary["configs"] if c.get("M_pt_over_N") is not None]
    if not configs:
        raise ValueError("no configuration of the sweep has a measured transition (M_pt_over_N "
                         "with status ok): there is nothing to predict against")
    base = summary["identity"]["base"]
    var_of = lambda c: float(c.get("data_var", base.get("data_var", 1.0)))  # noqa: E731
    data_vars = sorted({var_of(c) for c in configs})
    out = {"data_vars": data_vars, "measured": {}, "sources": {},
           "configs": [c["name"] for c in configs]}
    measured = np.array([c["M_pt_over_N"] for c in configs])
    v_of = np.array([var_of(c) for c in configs])
    groups = [setting_of(c) for c in configs]
    two_point = np.array([np.nan if c.get("two_point", {}).get("M_pt_over_N") is None
                          else c["two_point"]["M_pt_over_N"] for c in configs])
    for v in data_vars:
        sel = v_of == v
        mean, iv = _mean_interval(measured[sel])
        tp = two_point[sel & np.isfinite(two_point)]
        tp_mean, tp_iv = _mean_interval(tp)
        out["measured"][f"{v:g}"] = {
            "mean": mean, "interval": iv, "n": int(sel.sum()),
            "complete": int(sum(1 for c, s in zip(configs, sel) if s and c.get("complete", True))),
            "se_mean_of_fits": float(np.sqrt(np.sum(np.square(
                [c["se"] for c, s in zip(configs, sel) if s]))) / sel.sum()),
            "two_point": {"mean": tp_mean, "interval": tp_iv, "n": int(tp.size)}}
    lo_v, hi_v = data_vars[0], data_vars[-1]

    def diff_interval(pred_or_meas):
        a, b = pred_or_meas[v_of == hi_v], pred_or_meas[v_of == lo_v]
        d = a.mean() - b.mean()
        se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size) if min(a.size, b.size) > 1 else 0.0
        dof = max(min(a.size, b.size) - 1, 1)
        half = stats.t.ppf(0.975, dof) * se
        return {"value": float(d), "interval": [float(d - half), float(d + half)]}

    out["measured_difference"] = dict(diff_interval(measured), between=[lo_v, hi_v])
    for src in sources:
        if src not in fits:
            continue
        fit = fits[src]
        sub = {"configs": summary["configs"], "identity": summary["identity"], "times": summary["times"]}
        used, curves, _ = summary_curves(sub, src)
        if [c["name"] for c in used] != out["configs"]:
            raise ValueError(f"source {src}: the curves do not cover the measured configurations")
        stack = _Stack(curves)
        trivial = float(fit["trivial_prediction"])
        sq_trivial = (trivial - measured) ** 2
        T = len(summary["times"])
        weightings = {"naive": np.full(T, 1.0 / T), "simplex": np.asarray(fit["weights"])}
        if "snr_power" in fit:
            weightings["snr_power"] = np.asarray(fit["snr_power"]["weights"])
        res = {"trivial_prediction": trivial}
        for name, w in weightings.items():
            pred = stack.ratios(w)
            per_var = {}
            for v in data_vars:
                p = pred[v_of == v]
                per_var[f"{v:g}"] = {"mean": float(p.mean()), "range": [float(p.min()), float(p.max())]}
            res[name] = {"predicted": pred.tolist(), "per_data_var": per_var,
                         "mse": float(np.mean((pred - measured) ** 2)),
                         "difference": diff_interval(pred)["value"],
                         "verdict": paired_verdict((pred - measured) ** 2, sq_trivial, groups, seed=seed)}
            if name == "snr_power":
                res[name]["exponent"] = fit["snr_power"]["exponent"]
        res["trivial_mse"] = float(np.mean(sq_trivial))
        out["sources"][src] = res
    return out
