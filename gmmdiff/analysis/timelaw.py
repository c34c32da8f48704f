"""The memorization-time law: when, along training, does a model start to memorize, and
how does that time grow with the training-set size N?

Bonnaire, Urfin, Biroli and Mezard (NeurIPS 2025) report for neural diffusion models
that the training time at which memorization starts grows linearly with N
(tau_mem ~ N^gamma, gamma = 1) while the time to generalize does not depend on N
(tau_gen ~ N^beta, beta = 0). This module measures both in the laboratory, from the
series along training of a sweep at fixed ratios M/N (``gmmdiff-sweep --preset time``):

- :func:`onset_step`: tau_mem of one series, the step at which the memorization ratio,
  made non-decreasing (:func:`isotonic`, weighted by the generated samples), first
  reaches the threshold; interpolated linearly in log-step between the two evaluation
  steps around it;
- :func:`minimum_step`: tau_gen of one series, the step of the smallest test loss,
  refined by a parabola in log-step through it and its neighbours;
- :func:`log_mean_interval`: the geometric mean over seeds with a t interval on the log
  scale (the interval over seeds);
- :func:`power_law`: the least-squares fit of log tau = log c + gamma log N over every
  (N, seed), with the t interval of gamma;
- :func:`time_law`: all of it for a sweep summary, per ratio M/N, with a verdict per
  published exponent.

Steps are optimizer steps of full-batch training (one step is one epoch); with a
constant learning rate after the warm-up (the preset's ``--lr-final`` equal to ``--lr``)
a step means the same thing at every N.
"""
import numpy as np
from scipy import stats

THRESHOLD = 0.1             # tau_mem: the memorization ratio's threshold
LEVEL = 0.95


def isotonic(y, w):
    """The non-decreasing least-squares fit of ``y`` (E,) with weights ``w`` (E,) > 0
    (pool adjacent violators). Returns (E,) float64."""
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64) * np.ones_like(y)
    blocks = []                                          # [value, weight, length]
    for v, wt in zip(y, w):
        blocks.append([v, wt, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(n, v) for v, _, n in blocks])


def onset_step(steps, ratio, n, threshold=THRESHOLD):
    """tau_mem of one series: (step, status).

    steps : (E,) evaluation steps (step 0 is left out: the log scale starts after it);
    ratio : (E,) memorization ratios;  n : (E,) or scalar generated samples (weights).
    status "ok" with the interpolated step; "not reached" (None) when the monotone fit
    stays below the threshold; "at start" (the first step > 0) when it is above it
    from the first evaluation on."""
    steps = np.asarray(steps, dtype=np.float64)
    keep = steps > 0
    s, r = steps[keep], np.asarray(ratio, dtype=np.float64)[keep]
    w = (np.asarray(n, dtype=np.float64) * np.ones_like(steps))[keep]
    f = isotonic(r, w)
    above = np.flatnonzero(f >= threshold)
    if above.size == 0:
        return None, "not reached"
    e = int(above[0])
    if e == 0:
        return float(s[0]), "at start"
    x0, x1 = np.log(s[e - 1]), np.log(s[e])
    frac = (threshold - f[e - 1]) / (f[e] - f[e - 1])
    return float(np.exp(x0 + frac * (x1 - x0))), "ok"


def minimum_step(steps, values):
    """tau_gen of one series: (step, status), the step of the smallest ``values`` (E,)
    (test losses), refined by the vertex of the parabola in log-step through it and
    its two neighbours; "at end" when the smallest is the last step (still falling),
    "at start" at the first step > 0."""
    steps = np.asarray(steps, dtype=np.float64)
    keep = steps > 0
    x, y = np.log(steps[keep]), np.asarray(values, dtype=np.float64)[keep]
    e = int(np.argmin(y))
    if e == len(y) - 1:
        return float(np.exp(x[e])), "at end"
    if e == 0:
        return float(np.exp(x[0])), "at start"
    a, b, _ = np.polyfit(x[e - 1:e + 2], y[e - 1:e + 2], 2)
    vertex = -b / (2 * a) if a > 0 else x[e]
    return float(np.exp(np.clip(vertex, x[e - 1], x[e + 1]))), "ok"


def log_mean_interval(values, level=LEVEL):
    """(geometric mean, [lo, hi]) of positive ``values`` (S,): the mean of the logs with
    its t interval (S - 1 degrees of freedom), back on the original scale; the interval
    is [None, None] for fewer than two values."""
    v = np.log(np.asarray(values, dtype=np.float64))
    center = float(np.exp(v.mean()))
    if v.size < 2:
        return center, [None, None]
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return center, [float(np.exp(v.mean() - half)), float(np.exp(v.mean() + half))]


def power_law(N, tau, level=LEVEL):
    """Least-squares fit of log tau = log c + exponent log N over points (N_i, tau_i).

    Returns a dict with ``exponent``, its t ``interval`` (n - 2 degrees of freedom),
    ``se``, ``prefactor`` c, ``df`` and ``residual_sd`` (of log tau); exponent None for
    fewer than 3 points or a single N."""
    x = np.log(np.asarray(N, dtype=np.float64))
    y = np.log(np.asarray(tau, dtype=np.float64))
    if x.size < 3 or np.ptp(x) == 0:
        return {"exponent": None, "interval": [None, None], "se": None, "prefactor": None,
                "df": max(0, x.size - 2), "residual_sd": None}
    A = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    df = x.size - 2
    s2 = float(resid @ resid) / df
    se = float(np.sqrt(s2 / np.sum((x - x.mean()) ** 2)))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return {"exponent": float(coef[1]), "interval": [float(coef[1] - half), float(coef[1] + half)],
            "se": se, "prefactor": float(np.exp(coef[0])), "df": df,
            "residual_sd": float(np.sqrt(s2))}


def exponent_verdict(fit, published, other=None):
    """One line on a fitted exponent against a published value: whether the 95%
    interval contains it, and, given ``other`` (the alternative a reader would ask
    about, e.g. 0 for gamma), whether it excludes that too."""
    if fit["exponent"] is None:
        return "no fit (too few onsets)"
    lo, hi = fit["interval"]
    head = f"{fit['exponent']:.2f} [{lo:.2f}, {hi:.2f}]"
    if lo <= published <= hi:
        out = f"{head}: consistent with the published {published:g}"
    else:
        out = f"{head}: excludes the published {published:g}"
    if other is not None:
        out += (f"; excludes {other:g}" if not lo <= other <= hi else
                f"; cannot exclude {other:g} either")
    return out


def time_law(summary, threshold=THRESHOLD, level=LEVEL):
    """The memorization-time law of a sweep summary whose configurations carry their
    series along training (``summary.json`` of ``gmmdiff-sweep --preset time``).

    Per ratio M/N (the sweep's size ratios) and N: tau_mem and tau_gen of every seed
    (:func:`onset_step`, :func:`minimum_step`), their geometric mean with the interval
    over seeds; per ratio, the fits tau_mem ~ N^gamma and tau_gen ~ N^beta over every
    (N, seed) with an onset, and the verdicts against gamma = 1 and beta = 0. A series
    whose onset is not reached (or whose test loss is still falling at the end) is
    counted, reported, and left out of the fits."""
    rows = {}
    for c in summary["configs"]:
        if "along" not in c:
            continue
        a = c["along"]
        counts = np.asarray(a["counts"], dtype=np.float64)                  # (E, J)
        n = np.asarray(a["n"], dtype=np.float64)
        loss = np.asarray(a["test_loss"], dtype=np.float64)
        for j, M in enumerate(c["sizes"]):
            key = (round(M / c["N"], 6), c["N"])
            tm, sm = onset_step(a["steps"], counts[:, j] / n[:, j], n[:, j], threshold)
            tg, sg = minimum_step(a["steps"], loss[:, j])
            rows.setdefault(key, []).append({"seed": c["seed"], "M": int(M), "tau_mem": tm,
                                             "tau_mem_status": sm, "tau_gen": tg,
                                             "tau_gen_status": sg})
    out = {"threshold": threshold, "level": level, "ratios": []}
    for ratio in sorted({k[0] for k in rows}):
        per_N, pts = [], {"mem": ([], []), "gen": ([], [])}
        for N in sorted(k[1] for k in rows if k[0] == ratio):
            seeds = sorted(rows[(ratio, N)], key=lambda r: r["seed"])
            entry = {"N": N, "seeds": seeds}
            for what, key in (("mem", "tau_mem"), ("gen", "tau_gen")):
                ok = [r[key] for r in seeds if r[f"{key}_status"] == "ok"]
                center, iv = log_mean_interval(ok, level) if ok else (None, [None, None])
                entry[key] = {"value": center, "interval": iv, "seeds_ok": len(ok),
                              "seeds": len(seeds)}
                pts[what][0].extend([N] * len(ok))
                pts[what][1].extend(ok)
            per_N.append(entry)
        gamma = power_law(*pts["mem"], level)
        beta = power_law(*pts["gen"], level)
        out["ratios"].append({"M_over_N": ratio, "per_N": per_N,
                              "gamma": dict(gamma, verdict=exponent_verdict(gamma, 1.0, 0.0)),
                              "beta": dict(beta, verdict=exponent_verdict(beta, 0.0, 1.0))})
    return out


def format_time_law(law):
    """The table of :func:`time_law` as text: per ratio and N, tau_mem and tau_gen with
    their intervals over seeds, then the fitted exponents and verdicts."""
    def fmt(t):
        if t["value"] is None:
            return f"{'-':>26}"
        lo, hi = t["interval"]
        iv = f"[{lo:,.0f}, {hi:,.0f}]" if lo is not None else ""
        return f"{t['value']:>9,.0f} {iv:<16}"[:26].ljust(26)

    lines = [f"memorization onset tau_mem: the step where the ratio reaches {law['threshold']:g}; "
             "generalization tau_gen: the step of the smallest test loss; geometric means "
             f"over seeds with {law['level']:.0%} intervals"]
    for r in law["ratios"]:
        lines.append(f"M/N = {r['M_over_N']:g}")
        lines.append(f"{'N':>6}  {'tau_mem':<26} {'seeds':>5}  {'tau_gen':<26} {'seeds':>5}")
        for e in r["per_N"]:
            lines.append(f"{e['N']:>6}  {fmt(e['tau_mem'])} "
                         f"{e['tau_mem']['seeds_ok']:>2}/{e['tau_mem']['seeds']:<2}  "
                         f"{fmt(e['tau_gen'])} {e['tau_gen']['seeds_ok']:>2}/{e['tau_gen']['seeds']:<2}")
        lines.append(f"  gamma (tau_mem ~ N^gamma): {r['gamma']['verdict']}")
        lines.append(f"  beta  (tau_gen ~ N^beta):  {r['beta']['verdict']}")
    return "\n".join(line.rstrip() for line in lines)
