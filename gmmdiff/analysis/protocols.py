"""The memorization-time law per training protocol: which ingredient of training sets it.

The mechanism of SPEC 12 predicts gamma (tau_mem ~ N^gamma, in optimizer steps) from the
optimizer and whether the batch is full (:func:`mechanism_gamma`); :func:`protocol_laws`
measures gamma and beta for several sweeps that differ only in how they train (the
``time-*`` presets of ``gmmdiff-sweep``: full-batch Adam, full-batch gradient descent,
minibatch Adam and minibatch momentum) with :func:`gmmdiff.analysis.timelaw.time_law`,
and states for each whether its interval holds the published gamma = 1 and the
mechanism's value. Takes sweep summaries (plain dicts), never a directory.
"""
from gmmdiff.analysis.timelaw import LEVEL, THRESHOLD, exponent_verdict, time_law


def mechanism_gamma(optimizer, minibatch):
    """gamma (in optimizer steps) of the mechanism of SPEC 12 for a training protocol.

    A training point pulls the component on it with weight 1/N in the mean loss.
    Gradient descent (and momentum, whose trace only rescales the step) moves it by
    lr / N a step: gamma = 1; with minibatches of fixed B the point is in a fraction
    B / N of the steps with weight 1 / B, the same 1/N on average: gamma = 1 too. Adam
    divides by the root of the running mean square: full batch the pull is the same
    every step and cancels (gamma = 0); with minibatches the first moment averages B/N
    visits of 1/B (1/N) while the second averages their squares (1 / (N B)), so
    m / sqrt(v) ~ sqrt(B / N) (gamma = 1/2), where the point's own pull dominates its
    component's gradient. In epochs (steps B / N) subtract 1 for fixed-B minibatches."""
    if optimizer == "adam":
        return 0.5 if minibatch else 0.0
    if optimizer in ("sgd", "momentum"):
        return 1.0
    raise ValueError(f"unknown optimizer {optimizer!r}; accepted: adam, sgd, momentum")


def protocol_laws(summaries, threshold=THRESHOLD, level=LEVEL):
    """The time law of several sweeps that differ in how they train (one per protocol:
    the ``time-*`` presets), for one table: per summary and size ratio, the protocol
    (optimizer, batch size, learning rate, momentum), gamma and beta in steps and in
    epochs (:func:`time_law`) and the verdicts against the published gamma = 1 and the
    mechanism's value (:func:`mechanism_gamma`). ``summaries``: dict name -> summary."""
    rows = []
    for name, summary in summaries.items():
        base = summary["identity"]["base"]
        opt = base.get("optimizer", "adam")
        batch = base.get("batch_size")
        law = time_law(summary, threshold, level)
        predicted = mechanism_gamma(opt, batch is not None)
        for r in law["ratios"]:
            g, ge = r["gamma"], r["epochs"]["gamma"]
            rows.append({"protocol": name, "optimizer": opt, "batch_size": batch,
                         "lr": base.get("lr_peak", 1e-3),
                         "momentum": base.get("momentum") if opt == "momentum" else None,
                         "N": sorted({e["N"] for e in r["per_N"]}), "M_over_N": r["M_over_N"],
                         "seeds": max(e["tau_mem"]["seeds"] for e in r["per_N"]),
                         "gamma": g, "gamma_epochs": ge, "beta": r["beta"],
                         "mechanism": predicted,
                         "versus_published": exponent_verdict(g, 1.0),
                         "versus_mechanism": exponent_verdict(g, predicted)})
    return {"threshold": threshold, "level": level, "rows": rows}


def format_protocol_laws(result):
    """:func:`protocol_laws` as a table: per protocol, gamma in steps and in epochs,
    beta, and whether the intervals contain the published 1 and the mechanism's
    value."""
    def iv(fit):
        if fit["exponent"] is None:
            return "-"
        lo, hi = fit["interval"]
        return (f"{fit['exponent']:+.2f} [{'-inf' if lo is None else f'{lo:+.2f}'}, "
                f"{'inf' if hi is None else f'{hi:+.2f}'}]")

    def has(fit, v):
        if fit["exponent"] is None:
            return "-"
        lo, hi = fit["interval"]
        return "in" if (lo is None or lo <= v) and (hi is None or v <= hi) else "out"

    lines = [f"onset tau_mem: the ratio reaches {result['threshold']:g}; {result['level']:.0%} "
             "intervals over (N, seed), runs that never reach it censored at their last step",
             f"{'protocol':<18} {'M/N':>4} {'B':>4} {'lr':>7}  {'gamma (steps)':<22} {'cens':>4} "
             f"{'gamma (epochs)':<22} {'beta (steps)':<22} {'1?':>3} {'mech.':>5} {'?':>3}"]
    for r in result["rows"]:
        lines.append(f"{r['protocol']:<18} {r['M_over_N']:>4g} {r['batch_size'] or 'N':>4} {r['lr']:>7.0e}  "
                     f"{iv(r['gamma']):<22} {r['gamma'].get('n_censored', 0):>4} "
                     f"{iv(r['gamma_epochs']):<22} {iv(r['beta']):<22} "
                     f"{has(r['gamma'], 1.0):>3} {r['mechanism']:>5g} {has(r['gamma'], r['mechanism']):>3}")
    lines.append("1?: the published gamma = 1 inside the interval; mech.: the mechanism's gamma "
                 "(gmmdiff.analysis.protocols.mechanism_gamma), ?: inside the interval")
    return "\n".join(line.rstrip() for line in lines)


def compare_protocols(summaries, reference, level=LEVEL, data_var=1.0):
    """The size law under several protocols: M_pt/N (the whole-curve fit) of sweeps
    that train the same configurations differently, paired by setting and seed with the
    ``reference`` sweep (:func:`gmmdiff.analysis.inits.compare_inits`'s statistics:
    per sweep the mean over configurations with its t interval; per other sweep the
    paired differences, their mean and t interval and a verdict). ``summaries``: dict
    name -> summary; only configurations at ``data_var`` (s*) with status "ok" enter,
    and each sweep lists its convergence (sizes converged / trained)."""
    from gmmdiff.analysis.inits import _line, _mean_t

    def keyed(summary):
        base = summary["identity"]["base"]
        out = {}
        for c in summary["configs"]:
            if float(c.get("data_var", base.get("data_var", 1.0))) != float(data_var):
                continue
            out[(c["N"], c["d"], c["K"], c["seed"])] = c
        return out

    by = {name: keyed(s) for name, s in summaries.items()}
    out = {"reference": reference, "level": level, "per_sweep": {}, "pairs": []}
    for name, configs in by.items():
        ok = [c["M_pt_over_N"] for c in configs.values() if c.get("status") == "ok"]
        conv = [st for c in configs.values() for st in c.get("convergence", [])]
        out["per_sweep"][name] = dict(_mean_t(ok, level), n=len(ok), configs=len(configs),
                                      converged=sum(st == "converged" for st in conv),
                                      sizes=len(conv))
    for name in by:
        if name == reference:
            continue
        diffs = []
        for key, c in sorted(by[name].items()):
            r = by[reference].get(key)
            if r is not None and c.get("status") == "ok" and r.get("status") == "ok":
                diffs.append(c["M_pt_over_N"] - r["M_pt_over_N"])
        m = _mean_t(diffs, level)
        if m["interval"][0] is None:
            verdict = "too few pairs measured under both"
        elif m["interval"][0] > 0 or m["interval"][1] < 0:
            verdict = f"moves the transition: {_line(m)}"
        else:
            half = (m["interval"][1] - m["interval"][0]) / 2
            verdict = (f"no difference detected: {_line(m)} (a shift larger than about "
                       f"{half:.3f} would have been seen)")
        out["pairs"].append(dict(m, other=name, pairs=len(diffs), differences=diffs,
                                 verdict=verdict))
    return out


def format_compare_protocols(result):
    """:func:`compare_protocols` as text."""
    lines = [f"{'sweep':<16} {'M_pt/N':>7} {format(result['level'], '.0%') + ' interval':>20} "
             f"{'sd':>6} {'measured':>9} {'converged sizes':>16}"]
    for name, m in result["per_sweep"].items():
        iv = "" if m["interval"][0] is None else f"[{m['interval'][0]:.3f}, {m['interval'][1]:.3f}]"
        lines.append(f"{name:<16} {'-' if m['mean'] is None else format(m['mean'], '.3f'):>7} "
                     f"{iv:>20} {'-' if m['sd'] is None else format(m['sd'], '.3f'):>6} "
                     f"{m['n']:>4}/{m['configs']:<4} {m['converged']:>8}/{m['sizes']:<7}")
    for p in result["pairs"]:
        lines.append(f"{p['other']} - {result['reference']}, paired by setting and seed "
                     f"({p['pairs']} pairs): {p['verdict']}")
    return "\n".join(line.rstrip() for line in lines)
