"""Does the transition depend on where training starts? The initialization experiment.

The theory predicts the transition by comparing the training losses of two idealized
models, the generalizing and the partially memorizing one; nothing in it refers to the
path training takes, so it predicts the same M_pt/N whether the models start memorized
(the paper's pmem start: means on training points, variance 1e-6) or from the data
distribution (prior: means drawn from the mixture, variance s*), which must *find* the
training points. :func:`compare_inits` measures the difference from a sweep that
varies ``--inits`` (``gmmdiff-sweep --preset init``): configurations paired by setting
and seed (the same data), the whole-curve M_pt/N of each (:func:`gmmdiff.analysis.
transition.fit_curve`), the mean paired difference over pairs with its t interval, the
noise floor (the between-seed scatter of each init's M_pt/N) and a verdict.
"""
import numpy as np

LEVEL = 0.95


def compare_inits(summary, level=LEVEL):
    """Paired differences of M_pt/N between the initializations of a sweep summary.

    Returns a dict with, per init, the measured M_pt/N of every configuration and their
    mean with a t interval over configurations; per pair of inits (the first listed as
    the reference), ``differences`` (other - reference, one per (setting, seed) measured
    under both), their mean and t ``interval``, the count of pairs a status kept out
    (a fit that failed: "outside sizes", "no rise", "not converged", ...) and the
    ``verdict``: "moves the transition" when the interval excludes 0, "no difference
    detected" otherwise (with the interval's half-width: what the data could detect)."""
    inits = []
    by = {}
    for c in summary["configs"]:
        init = c.get("init", "pmem")
        if init not in inits:
            inits.append(init)
        key = (c["N"], c["d"], c["K"], float(c.get("data_var", 1.0)), c["seed"])
        by.setdefault(init, {})[key] = c
    out = {"inits": inits, "level": level, "per_init": {}, "pairs": []}
    for init in inits:
        vals = [c["M_pt_over_N"] for c in by[init].values() if c.get("status") == "ok"]
        statuses = sorted({c.get("status", "?") for c in by[init].values()})
        out["per_init"][init] = dict(_mean_t(vals, level), n=len(vals), configs=len(by[init]),
                                     statuses=statuses)
    ref = inits[0]
    for other in inits[1:]:
        diffs, left_out = [], []
        for key, c in sorted(by[other].items()):
            r = by[ref].get(key)
            if r is None:
                continue
            if c.get("status") == "ok" and r.get("status") == "ok":
                diffs.append(c["M_pt_over_N"] - r["M_pt_over_N"])
            else:
                left_out.append({"key": list(key), ref: r.get("status"), other: c.get("status")})
        m = _mean_t(diffs, level)
        if m["mean"] is None or m["interval"][0] is None:
            verdict = "too few pairs measured under both starts"
        elif m["interval"][0] > 0 or m["interval"][1] < 0:
            verdict = f"{other} moves the transition: {_line(m)}"
        else:
            half = (m["interval"][1] - m["interval"][0]) / 2
            verdict = (f"no difference detected: {_line(m)} (a shift larger than about "
                       f"{half:.3f} would have been seen)")
        out["pairs"].append(dict(m, reference=ref, other=other, differences=diffs,
                                 pairs=len(diffs), left_out=left_out, verdict=verdict))
    return out


def _mean_t(values, level):
    from scipy import stats
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "interval": [None, None], "sd": None}
    if v.size < 2:
        return {"mean": float(v.mean()), "interval": [None, None], "sd": None}
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1)) * v.std(ddof=1) / np.sqrt(v.size)
    return {"mean": float(v.mean()), "interval": [float(v.mean() - half), float(v.mean() + half)],
            "sd": float(v.std(ddof=1))}


def _line(m):
    lo, hi = m["interval"]
    return f"{m['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def format_inits(result):
    """The comparison of :func:`compare_inits` as text."""
    level = f"{result['level']:.0%} interval"
    lines = [f"{'init':<9} {'M_pt/N mean':>12} {level:>18} {'sd (seeds)':>11} {'measured':>9}  "
             "statuses"]
    for init, m in result["per_init"].items():
        iv = ("" if m["interval"][0] is None else
              f"[{m['interval'][0]:.3f}, {m['interval'][1]:.3f}]")
        mean = "-" if m["mean"] is None else f"{m['mean']:.3f}"
        sd = "-" if m["sd"] is None else f"{m['sd']:.3f}"
        lines.append(f"{init:<9} {mean:>12} {iv:>18} {sd:>11} {m['n']:>4}/{m['configs']:<4}  "
                     + ", ".join(m["statuses"]))
    for p in result["pairs"]:
        lines.append(f"{p['other']} - {p['reference']}, paired by setting and seed "
                     f"({p['pairs']} pairs, {len(p['left_out'])} left out): {p['verdict']}")
    return "\n".join(line.rstrip() for line in lines)


# ------------------------------------------------------------ the gap along training


def transition_along_training(summary, level=LEVEL):
    """M_pt/N at every evaluation step of a sweep whose configurations carry their
    series along training, per initialization, and the paired gap between them.

    At each step the whole-curve fit (:func:`gmmdiff.analysis.transition.fit_curve`) of
    the configuration's counts over its sizes, and the two-point rule
    (:func:`gmmdiff.analysis.transition.crossing`) beside it. Returns a dict with
    ``steps`` (E,) (the steps every configuration evaluated), per init under
    ``per_init``: ``configs`` (names), ``fit`` and ``two_point`` (C, E) lists of
    M_pt/N (None where no crossing was measured), and their ``mean`` (E,) with t
    ``interval`` over configurations (None where fewer than two); per pair of inits
    under ``pairs``: the paired difference (other - first init) per step, ``mean`` and
    ``interval`` (E,), for both estimators."""
    from gmmdiff.analysis.transition import crossing, fit_curve
    configs = [c for c in summary["configs"] if "along" in c]
    if not configs:
        raise ValueError("no configuration of the summary carries its series along training")
    steps = sorted(set.intersection(*(set(c["along"]["steps"]) for c in configs)))
    out = {"steps": steps, "level": level, "per_init": {}, "pairs": []}
    keyed = {}
    for c in configs:
        init = c.get("init", "pmem")
        a = c["along"]
        M = np.asarray(c["sizes"], dtype=np.float64)
        fit, two = [], []
        for s in steps:
            e = a["steps"].index(s)
            k, n = np.asarray(a["counts"][e], dtype=np.float64), np.asarray(a["n"][e], dtype=np.float64)
            f = fit_curve(M, k, n, c["N"])
            fit.append(f["value"] if f["status"] == "ok" else None)
            v, _ = crossing(M, k / n, 0.5)
            two.append(None if v is None else v / c["N"])
        entry = out["per_init"].setdefault(init, {"configs": [], "fit": [], "two_point": []})
        entry["configs"].append(c["name"])
        entry["fit"].append(fit)
        entry["two_point"].append(two)
        keyed.setdefault(init, {})[(c["N"], c["d"], c["K"], float(c.get("data_var", 1.0)),
                                    c["seed"])] = (fit, two)
    for entry in out["per_init"].values():
        for est in ("fit", "two_point"):
            cols = [_mean_t([v[e] for v in entry[est] if v[e] is not None], level)
                    for e in range(len(steps))]
            entry[f"{est}_mean"] = [m["mean"] for m in cols]
            entry[f"{est}_interval"] = [m["interval"] for m in cols]
    inits = list(out["per_init"])
    for other in inits[1:]:
        pair = {"reference": inits[0], "other": other}
        common = sorted(set(keyed[other]) & set(keyed[inits[0]]))
        for i, est in enumerate(("fit", "two_point")):
            cols = []
            for e in range(len(steps)):
                d = [keyed[other][k][i][e] - keyed[inits[0]][k][i][e] for k in common
                     if keyed[other][k][i][e] is not None and keyed[inits[0]][k][i][e] is not None]
                cols.append(dict(_mean_t(d, level), n=len(d)))
            pair[est] = {"mean": [m["mean"] for m in cols], "interval": [m["interval"] for m in cols],
                         "pairs": [m["n"] for m in cols]}
        out["pairs"].append(pair)
    return out


def power_decay(steps, values, level=LEVEL, n_boot=400, seed=0, weights=None):
    """Fit ``values ~ g_inf + A steps^(-alpha)`` (A, alpha > 0) by least squares: where
    a quantity falling along training is heading (the stated model of an
    extrapolation). ``values``: (E,) a mean curve, or (C, E) per configuration (the
    interval then resamples configurations: a bootstrap over them, ``n_boot`` draws).

    Returns a dict with ``g_inf``, ``A``, ``alpha``, their percentile ``intervals``
    (None without configurations to resample) and ``residual_sd``."""
    from scipy.optimize import curve_fit
    t = np.asarray(steps, dtype=np.float64)
    V = np.atleast_2d(np.asarray(values, dtype=np.float64))
    keep = (t > 0) & np.all(np.isfinite(V), axis=0)       # steps every configuration measured
    t, V = t[keep], V[:, keep]

    def model(x, g, logA, alpha):
        return g + np.exp(logA) * x ** (-alpha)

    def fit(y):
        g0 = float(np.min(y))
        p0 = [g0 - 0.1 * abs(g0), np.log(max(np.max(y) - g0, 1e-3)) + 2.0, 0.5]
        p, _ = curve_fit(model, t, y, p0=p0, bounds=([-np.inf, -50, 1e-3], [np.inf, 50, 5]),
                         maxfev=20_000)
        return p, float(np.std(y - model(t, *p)))

    (g, logA, alpha), sd = fit(V.mean(axis=0))
    out = {"g_inf": float(g), "A": float(np.exp(logA)), "alpha": float(alpha), "residual_sd": sd,
           "intervals": None}
    if V.shape[0] >= 3:
        rng = np.random.default_rng(seed)
        boot = []
        for _ in range(n_boot):
            pick = rng.integers(0, V.shape[0], V.shape[0])
            try:
                boot.append(fit(V[pick].mean(axis=0))[0])
            except (RuntimeError, ValueError):
                continue
        b = np.array(boot)
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        out["intervals"] = {"g_inf": np.percentile(b[:, 0], q).tolist(),
                            "alpha": np.percentile(b[:, 2], q).tolist()}
    return out


def log_trend(steps, values, level=LEVEL, n_boot=2000, seed=0):
    """Fit ``values ~ a + b log(step)`` (the other stated model of an extrapolation: a
    gap that shrinks by the same amount every e-fold of training) and the step at which
    it would reach 0, ``exp(-a / b)`` for b < 0. ``values``: (C, E) per configuration
    (or (E,)), the interval a bootstrap over configurations (percentiles; a closing step
    is infinite in a draw whose slope is not negative).

    Returns a dict with ``a``, ``b`` (per e-fold of steps), ``closing_step`` and the
    ``intervals`` of ``b`` and ``closing_step`` (None with fewer than 3 configurations)."""
    t = np.asarray(steps, dtype=np.float64)
    V = np.atleast_2d(np.asarray(values, dtype=np.float64))
    keep = (t > 0) & np.all(np.isfinite(V), axis=0)
    x, V = np.log(t[keep]), V[:, keep]

    def fit(rows):
        b, a = np.polyfit(x, rows.mean(axis=0), 1)
        return a, b, (float(np.exp(-a / b)) if b < 0 else np.inf)

    a, b, close = fit(V)
    out = {"a": float(a), "b": float(b), "closing_step": close, "intervals": None}
    if V.shape[0] >= 3:
        rng = np.random.default_rng(seed)
        draws = np.array([fit(V[rng.integers(0, V.shape[0], V.shape[0])])[1:] for _ in range(n_boot)])
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        close = np.sort(draws[:, 1])                   # nearest rank: infinite draws allowed
        out["intervals"] = {"b": np.percentile(draws[:, 0], q).tolist(),
                            "closing_step": [float(close[int(round(p / 100 * (close.size - 1)))])
                                             for p in q]}
    return out


def paired_gaps(along, estimator="fit"):
    """(C, E) the gap (other start minus the first) of every pair of
    :func:`transition_along_training`'s first pair of inits at each step (nan where
    either has no crossing), matching configurations by name."""
    ref, other = list(along["per_init"])[:2]
    a, b = along["per_init"][ref], along["per_init"][other]
    tag = "-i" + other
    rows = []
    for i, name in enumerate(b["configs"]):
        base = name.replace(tag, "" if ref == "pmem" else "-i" + ref)
        if base not in a["configs"]:
            continue
        j = a["configs"].index(base)
        rows.append([np.nan if u is None or v is None else u - v
                     for u, v in zip(b[estimator][i], a[estimator][j])])
    return np.array(rows, dtype=np.float64)
