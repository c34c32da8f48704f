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
  (N, seed) with an onset, with the t interval of gamma;
- :func:`censored_power_law`: the same law fitted by maximum likelihood over every
  (N, seed), the runs whose onset was never reached counted as right-censored at their
  last step (and onsets before the first evaluation as left-censored), with a
  profile-likelihood interval: dropping the censored runs, as :func:`power_law` must,
  biases gamma down when the censored runs are the slow ones (large N);
- :func:`time_law`: all of it for a sweep summary, per ratio M/N, with a verdict per
  published exponent; times in optimizer steps and in epochs.

A step is an optimizer step; with minibatches of B samples an epoch is N / B steps
(full batch: one step is one epoch). With a constant learning rate after the warm-up
(the presets' ``--lr-final`` equal to ``--lr``) a step means the same thing at every N.
"""
import numpy as np

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
    from scipy import stats
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
    from scipy import stats
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


def _censored_nll(theta, x, y, kind):
    """Negative log-likelihood of log tau ~ Normal(a + g x, sd^2) and its gradient,
    theta = (a, g, log sd); ``kind`` per point: 0 observed at y, 1 right-censored
    (beyond y), -1 left-censored (before y)."""
    from scipy import stats
    a, g, log_sd = theta
    sd = np.exp(log_sd)
    z = (y - a - g * x) / sd
    obs, right = kind == 0, kind > 0
    logpdf = -0.5 * z * z - 0.5 * np.log(2 * np.pi)
    logsf, logcdf = stats.norm.logsf(z), stats.norm.logcdf(z)
    nll = np.where(obs, -logpdf + log_sd, np.where(right, -logsf, -logcdf))
    # d nll / dz: z (observed), the hazard pdf / sf (right), -pdf / cdf (left)
    dz = np.where(obs, z, np.where(right, np.exp(logpdf - logsf), -np.exp(logpdf - logcdf)))
    grad = np.array([np.sum(-dz / sd), np.sum(-dz * x / sd), np.sum(-dz * z) + np.sum(obs)])
    return float(np.sum(nll)), grad


def censored_power_law(N, tau, status, level=LEVEL):
    """Maximum-likelihood fit of log tau = log c + exponent log N + sd z (z standard
    normal) over points (N_i, tau_i) whose ``status_i`` says what tau_i is: "ok" (the
    time itself), "not reached" or "at end" (right-censored: the time lies beyond
    tau_i, the last evaluation step), "at start" (left-censored: before tau_i, the
    first evaluation step > 0).

    The interval is the profile likelihood's: the exponents whose profiled
    log-likelihood lies within c / 2 of the maximum, c = n log(1 + t^2 / (n - 2)) with t
    the t quantile of n - 2 degrees of freedom, which makes it exactly
    :func:`~gmmdiff.analysis.timelaw.power_law`'s t interval when nothing is censored (the
    simulations of ``tests/test_timelaw.py`` check its coverage with a third of the points
    censored). Returns :func:`~gmmdiff.analysis.timelaw.power_law`'s dict (``residual_sd``
    the fitted sd) with ``n_censored`` and ``method``; exponent None for fewer than 3
    points, fewer than 2 uncensored ones, or one N."""
    from scipy import stats
    from scipy.optimize import brentq, minimize
    x = np.log(np.asarray(N, dtype=np.float64))
    y = np.log(np.asarray(tau, dtype=np.float64))
    kind = np.array([0 if s == "ok" else -1 if s == "at start" else 1 for s in status])
    n, n_cens = x.size, int(np.sum(kind != 0))
    empty = {"exponent": None, "interval": [None, None], "se": None, "prefactor": None,
             "df": max(0, n - 2), "residual_sd": None, "n_censored": n_cens,
             "method": "censored likelihood"}
    if n < 3 or np.sum(kind == 0) < 2 or np.ptp(x) == 0:
        return empty
    if n_cens == 0:
        return dict(power_law(N, tau, level), n_censored=0, method="least squares")
    start = power_law(np.exp(x), np.exp(y), level)       # censored points at their limit
    theta0 = np.array([np.log(start["prefactor"]), start["exponent"],
                       np.log(max(start["residual_sd"] or 0.1, 0.05))])
    best = minimize(_censored_nll, theta0, args=(x, y, kind), jac=True, method="BFGS",
                    options={"gtol": 1e-9})
    a_hat, g_hat, lsd_hat = best.x

    def profile(g):
        def inner(t):
            f, grad = _censored_nll((t[0], g, t[1]), x, y, kind)
            return f, grad[[0, 2]]
        r = minimize(inner, [a_hat + (g_hat - g) * x.mean(), lsd_hat], jac=True, method="BFGS",
                     options={"gtol": 1e-9})
        return r.fun

    df = n - 2
    t = stats.t.ppf(0.5 + level / 2, df)
    crit = 0.5 * n * np.log1p(t * t / df)
    f = lambda g: profile(g) - best.fun - crit                          # noqa: E731
    step = max(4 * (start["se"] or 0.1), 0.05)
    ends = []
    for sign in (-1, 1):
        far = g_hat + sign * step
        while f(far) < 0 and abs(far - g_hat) < 100:
            far = g_hat + 2 * (far - g_hat)
        ends.append(brentq(f, *sorted((g_hat, far)), xtol=1e-6) if f(far) >= 0 else None)
    lo, hi = ends
    se = (hi - lo) / (2 * t) if lo is not None and hi is not None else None
    return {"exponent": float(g_hat), "interval": [lo, hi], "se": se,
            "prefactor": float(np.exp(a_hat)), "df": df, "residual_sd": float(np.exp(lsd_hat)),
            "n_censored": n_cens, "method": "censored likelihood"}


def exponent_verdict(fit, published, other=None):
    """One line on a fitted exponent against a published value: whether the 95%
    interval contains it, and, given ``other`` (the alternative a reader would ask
    about, e.g. 0 for gamma), whether it excludes that too."""
    if fit["exponent"] is None:
        return "no fit (too few onsets)"
    lo, hi = fit["interval"]
    head = (f"{fit['exponent']:.2f} [{'-inf' if lo is None else f'{lo:.2f}'}, "
            f"{'inf' if hi is None else f'{hi:.2f}'}]")
    lo = -np.inf if lo is None else lo
    hi = np.inf if hi is None else hi
    if lo <= published <= hi:
        out = f"{head}: consistent with the published {published:g}"
    else:
        out = f"{head}: excludes the published {published:g}"
    if other is not None:
        out += (f"; excludes {other:g}" if not lo <= other <= hi else
                f"; cannot exclude {other:g} either")
    return out


def _fits(pts, level):
    """The censored fit (the law's estimate) and, beside it, the fit of the uncensored
    points alone, of points ``[(N, tau, status)]``."""
    N = [p[0] for p in pts]
    tau = [p[1] for p in pts]
    status = [p[2] for p in pts]
    ok = [i for i, st in enumerate(status) if st == "ok"]
    return (censored_power_law(N, tau, status, level),
            power_law([N[i] for i in ok], [tau[i] for i in ok], level))


def time_law(summary, threshold=THRESHOLD, level=LEVEL):
    """The memorization-time law of a sweep summary whose configurations carry their
    series along training (``summary.json`` of ``gmmdiff-sweep --preset time`` and the
    other time presets).

    Per ratio M/N (the sweep's size ratios) and N: tau_mem and tau_gen of every seed
    (:func:`onset_step`, :func:`minimum_step`), their geometric mean over the seeds
    with an onset and its interval; per ratio, tau_mem ~ N^gamma and tau_gen ~ N^beta
    fitted over every (N, seed) by :func:`censored_power_law` (a run whose onset is not
    reached counts as censored at its last step, one whose test loss still falls at the
    end likewise), with the verdicts against gamma = 1 and beta = 0; beside each, the
    least-squares fit of the uncensored runs alone (``gamma_uncensored``,
    ``beta_uncensored``: what leaving the censored runs out gives). Times are optimizer
    steps; ``epochs`` holds the same fits with times in epochs (steps B / N, B the
    sweep's batch size; full batch: the same numbers)."""
    base = summary.get("identity", {}).get("base", {})
    batch = base.get("batch_size")
    rows = {}
    for c in summary["configs"]:
        if "along" not in c:
            continue
        a = c["along"]
        counts = np.asarray(a["counts"], dtype=np.float64)                  # (E, J)
        n = np.asarray(a["n"], dtype=np.float64)
        loss = np.asarray(a["test_loss"], dtype=np.float64)
        steps = np.asarray(a["steps"], dtype=np.float64)
        first, last = float(steps[steps > 0][0]), float(steps[-1])
        for j, M in enumerate(c["sizes"]):
            key = (round(M / c["N"], 6), c["N"])
            tm, sm = onset_step(a["steps"], counts[:, j] / n[:, j], n[:, j], threshold)
            tg, sg = minimum_step(a["steps"], loss[:, j])
            rows.setdefault(key, []).append({"seed": c["seed"], "M": int(M), "tau_mem": tm,
                                             "tau_mem_status": sm, "tau_gen": tg,
                                             "tau_gen_status": sg,
                                             "limit": last if sm == "not reached" else first})
    out = {"threshold": threshold, "level": level, "batch_size": batch, "ratios": []}
    for ratio in sorted({k[0] for k in rows}):
        per_N, pts = [], {"mem": [], "gen": []}
        for N in sorted(k[1] for k in rows if k[0] == ratio):
            seeds = sorted(rows[(ratio, N)], key=lambda r: r["seed"])
            entry = {"N": N, "seeds": seeds}
            for what, key in (("mem", "tau_mem"), ("gen", "tau_gen")):
                ok = [r[key] for r in seeds if r[f"{key}_status"] == "ok"]
                center, iv = log_mean_interval(ok, level) if ok else (None, [None, None])
                entry[key] = {"value": center, "interval": iv, "seeds_ok": len(ok),
                              "seeds": len(seeds)}
                for r in seeds:
                    t = r[key] if r[key] is not None else r["limit"]
                    pts[what].append((N, t, r[f"{key}_status"]))
            per_N.append(entry)
        entry = {"M_over_N": ratio, "per_N": per_N, "epochs": {}}
        for what, name, published, other in (("mem", "gamma", 1.0, 0.0), ("gen", "beta", 0.0, 1.0)):
            for unit, scale in (("steps", lambda N: 1.0), ("epochs", lambda N: (batch or N) / N)):
                fit, plain = _fits([(N, t * scale(N), st) for N, t, st in pts[what]], level)
                target = entry if unit == "steps" else entry["epochs"]
                target[name] = dict(fit, verdict=exponent_verdict(fit, published, other))
                target[f"{name}_uncensored"] = dict(plain, verdict=exponent_verdict(plain, published, other))
        out["ratios"].append(entry)
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
        cens = r["gamma"].get("n_censored", 0)
        lines.append(f"  gamma (tau_mem ~ N^gamma): {r['gamma']['verdict']}"
                     + (f" ({cens} censored runs in the likelihood; without them: "
                        f"{r['gamma_uncensored']['verdict'].split(':')[0]})" if cens else ""))
        lines.append(f"  beta  (tau_gen ~ N^beta):  {r['beta']['verdict']}")
        if law.get("batch_size"):
            lines.append(f"  in epochs (B = {law['batch_size']}): gamma "
                         f"{r['epochs']['gamma']['verdict'].split(':')[0]}, beta "
                         f"{r['epochs']['beta']['verdict'].split(':')[0]}")
    return "\n".join(line.rstrip() for line in lines)

