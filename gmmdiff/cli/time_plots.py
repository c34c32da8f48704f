"""Figures of training time: the phase diagram along training and the time law.

- ``fig_time_phase.<fmt>`` (a run directory, or a sweep: the mean over its
  configurations; ``fig_time_phase_<init>`` per start of a sweep of several): left, the memorization ratio over (M/N, training step), the step
  axis in log; right, M_pt/N at each evaluation step from the whole-curve estimator
  (:func:`gmmdiff.analysis.transition.fit_curve`) with its 95% interval, where the
  fit exists.
- ``fig_time_law.<fmt>`` (a sweep of fixed size ratios): tau_mem and tau_gen against N
  on log-log axes, per ratio M/N, with the intervals over seeds and the fitted power
  laws (:mod:`gmmdiff.analysis.timelaw`), beside the published slopes.
- ``fig_init_gap.<fmt>`` (a sweep of several initializations with series): M_pt/N of
  each start against the training step (mean over configurations with its 95%
  interval, by the whole-curve fit and by the two-point rule) and their paired gap
  (:func:`gmmdiff.analysis.inits.transition_along_training`).
"""
import numpy as np

from gmmdiff.cli.plotting import describe, figure_path, pyplot, save_figure
from gmmdiff.analysis.transition import fit_curve


def pt_along(steps, sizes, counts, n, N):
    """M_pt/N at every evaluation step (whole-curve fit over the sizes).

    steps : (E,);  sizes : (J,) increasing;  counts, n : (E, J);  N : samples.
    Returns (value (E,), lo (E,), hi (E,)) with nan where the fit has no crossing."""
    out = np.full((3, len(steps)), np.nan)
    for e in range(len(steps)):
        fit = fit_curve(np.asarray(sizes, dtype=np.float64), counts[e], n[e], N)
        if fit["status"] == "ok":
            out[:, e] = [fit["value"], *fit["interval"]]
    return out[0], out[1], out[2]


def _phase_axes(plt, x, steps, ratio, pt, title):
    """The two panels: the ratio's heatmap over (M/N, step) and M_pt/N over the step."""
    keep = np.asarray(steps) > 0
    s = np.asarray(steps, dtype=np.float64)[keep]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    # cell edges: midpoints in M/N and in log-step
    xe = np.r_[x[0] - (x[1] - x[0]) / 2 if x.size > 1 else x[0] - 0.05,
               (x[1:] + x[:-1]) / 2, x[-1] + (x[-1] - x[-2]) / 2 if x.size > 1 else x[0] + 0.05]
    ls = np.log(s)
    se = np.exp(np.r_[ls[0] - (ls[1] - ls[0]) / 2 if s.size > 1 else ls[0] - 0.5,
                      (ls[1:] + ls[:-1]) / 2, ls[-1] + (ls[-1] - ls[-2]) / 2 if s.size > 1 else ls[0] + 0.5])
    mesh = ax0.pcolormesh(xe, se, ratio[keep], vmin=0, vmax=1, cmap="viridis", shading="flat")
    ax0.set_yscale("log")
    ax0.set_xlabel("M / N")
    ax0.set_ylabel("training step")
    ax0.set_title("memorization ratio along training")
    fig.colorbar(mesh, ax=ax0, label="memorization ratio")
    value, lo, hi = (a[keep] for a in pt)
    ok = np.isfinite(value)
    if ok.any():
        ax1.fill_between(s[ok], lo[ok], hi[ok], alpha=0.25, color="C1", label="95% interval")
        ax1.plot(s[ok], value[ok], "o-", color="C1", label="M_pt / N (whole-curve fit)")
    ax1.set_xscale("log")
    ax1.set_xlabel("training step")
    ax1.set_ylabel("M_pt / N")
    ax1.set_title("the transition along training")
    ax1.set_xlim(s[0] / 1.2, s[-1] * 1.2)
    if not ok.any():
        ax1.text(0.5, 0.5, "no 1/2 crossing at any step", transform=ax1.transAxes,
                 ha="center", va="center")
    else:
        ax1.legend(loc="best", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def figure_time_phase(run_dir, metrics, identity):
    """``fig_time_phase`` of a run directory from its per-size metric dicts (increasing
    M, each with ``along_training``). Returns the path, or None without series."""
    if not metrics or not all("along_training" in m for m in metrics):
        return None
    plt = pyplot()
    steps = np.asarray(metrics[0]["along_training"]["steps"])
    N = identity["samples"]
    sizes = np.array([m["M"] for m in metrics], dtype=np.float64)
    counts = np.array([m["along_training"]["count"] for m in metrics]).T      # (E, J)
    n = np.array([m["along_training"]["n"] for m in metrics]).T
    pt = pt_along(steps, sizes, counts, n, N)
    fig = _phase_axes(plt, sizes / N, steps, counts / n, pt, describe(identity))
    path = figure_path(run_dir, "fig_time_phase")
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure_time_phase_sweep(sweep_dir, summary, subtitle="", stem="fig_time_phase"):
    """``fig_time_phase`` of a sweep: the ratio over (M/N, step) averaged over the
    configurations at the sizes M/N they share, and M_pt/N along training of every
    configuration (thin) and of that mean curve (bold, the whole-curve fit of the
    pooled counts). Returns the path, or None when no configuration has series."""
    entries = [c for c in summary["configs"] if "along" in c]
    if not entries:
        return None
    steps = entries[0]["along"]["steps"]
    entries = [c for c in entries if c["along"]["steps"] == steps]
    plt = pyplot()
    shared = sorted(set.intersection(*(set(round(m / c["N"], 6) for m in c["sizes"]) for c in entries)))
    if len(shared) < 2:
        return None
    x = np.asarray(shared)
    E = len(steps)
    k = np.zeros((E, x.size))
    n = np.zeros((E, x.size))
    for c in entries:
        cols = [next(j for j, m in enumerate(c["sizes"]) if round(m / c["N"], 6) == r) for r in shared]
        k += np.asarray(c["along"]["counts"], dtype=np.float64)[:, cols]
        n += np.asarray(c["along"]["n"], dtype=np.float64)[:, cols]
    pooled = pt_along(steps, x, k, n, 1.0)
    fig = _phase_axes(plt, x, steps, k / n, pooled,
                      f"{len(entries)} configurations, pooled at their shared sizes M/N; {subtitle}")
    ax1 = fig.axes[1]
    s = np.asarray(steps, dtype=np.float64)
    keep = s > 0
    for c in entries:
        v, _, _ = pt_along(steps, np.asarray(c["sizes"]), np.asarray(c["along"]["counts"]),
                           np.asarray(c["along"]["n"]), c["N"])
        ax1.plot(s[keep], v[keep], "-", color="0.6", lw=0.6, zorder=0)
    ax1.plot([], [], "-", color="0.6", lw=0.6, label="each configuration")
    ax1.legend(loc="best", fontsize=8)
    path = figure_path(sweep_dir, stem)
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure_time_law(sweep_dir, law, subtitle=""):
    """``fig_time_law``: tau_mem (left) and tau_gen (right) against N, log-log, per size
    ratio, with the intervals over seeds, the fitted power laws and the published
    slopes (1 for tau_mem, 0 for tau_gen) through the data's middle."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, fit_key, published, name in ((axes[0], "tau_mem", "gamma", 1.0, "memorization onset"),
                                              (axes[1], "tau_gen", "beta", 0.0, "generalization")):
        for i, r in enumerate(law["ratios"]):
            pts = [(e["N"], e[key]) for e in r["per_N"] if e[key]["value"] is not None]
            if not pts:
                continue
            N = np.array([p[0] for p in pts], dtype=np.float64)
            v = np.array([p[1]["value"] for p in pts])
            lo = np.array([p[1]["interval"][0] if p[1]["interval"][0] is not None else p[1]["value"] for p in pts])
            hi = np.array([p[1]["interval"][1] if p[1]["interval"][1] is not None else p[1]["value"] for p in pts])
            color = f"C{i}"
            ax.errorbar(N, v, yerr=[v - lo, hi - v], fmt="o", color=color, capsize=3,
                        label=f"M/N = {r['M_over_N']:g}")
            fit = r[fit_key]
            if fit["exponent"] is not None:
                grid = np.geomspace(N.min(), N.max(), 20)
                lo_e, hi_e = (("-inf" if v is None and i == 0 else "inf" if v is None else f"{v:.2f}")
                              for i, v in enumerate(fit["interval"]))
                ax.plot(grid, fit["prefactor"] * grid ** fit["exponent"], "-", color=color, lw=1,
                        label=f"fit: exponent {fit['exponent']:.2f} [{lo_e}, {hi_e}]"
                              + (f", {fit['n_censored']} censored" if fit.get("n_censored") else ""))
                mid = np.exp(np.mean(np.log(N)))
                ref = fit["prefactor"] * mid ** fit["exponent"]
                ax.plot(grid, ref * (grid / mid) ** published, ":", color=color, lw=1,
                        label=f"published slope {published:g}" if i == 0 else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training samples N")
        ax.set_ylabel("training step")
        ax.set_title(f"{name} ({key})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=7)
        else:                                   # (no series reached its onset)
            ax.text(0.5, 0.5, f"no {key} measured", transform=ax.transAxes, ha="center",
                    va="center")
    fig.suptitle(f"memorization onset: ratio reaches {law['threshold']:g}; generalization: "
                 f"smallest test loss; {subtitle}", fontsize=9)
    fig.tight_layout()
    path = figure_path(sweep_dir, "fig_time_law")
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure_init_gap(sweep_dir, along, subtitle=""):
    """``fig_init_gap``: left, M_pt/N of each initialization against the training step
    (log), the mean over configurations with its 95% interval (whole-curve fit, solid)
    and the two-point rule's mean (dashed); right, the paired gap (other start minus the
    first) by both estimators. ``along``: :func:`gmmdiff.analysis.inits.
    transition_along_training`'s dict."""
    plt = pyplot()
    steps = np.asarray(along["steps"], dtype=np.float64)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))

    def band(ax, mean, interval, color, label, style="-"):
        m = np.array([np.nan if v is None else v for v in mean])
        lo = np.array([np.nan if iv[0] is None else iv[0] for iv in interval])
        hi = np.array([np.nan if iv[1] is None else iv[1] for iv in interval])
        ok = np.isfinite(m) & (steps > 0)
        if style == "-":
            both = ok & np.isfinite(lo)
            ax.fill_between(steps[both], lo[both], hi[both], color=color, alpha=0.2)
        ax.plot(steps[ok], m[ok], style, marker="o" if style == "-" else None, ms=3, color=color,
                label=label)

    for i, (init, e) in enumerate(along["per_init"].items()):
        band(ax0, e["fit_mean"], e["fit_interval"], f"C{i}", f"{init}: whole-curve fit")
        band(ax0, e["two_point_mean"], e["two_point_interval"], f"C{i}", f"{init}: two-point rule", "--")
    for i, p in enumerate(along["pairs"]):
        band(ax1, p["fit"]["mean"], p["fit"]["interval"], f"C{i + 2}",
             f"{p['other']} - {p['reference']}: whole-curve fit")
        band(ax1, p["two_point"]["mean"], p["two_point"]["interval"], f"C{i + 2}",
             f"{p['other']} - {p['reference']}: two-point rule", "--")
    ax1.axhline(0.0, color="k", lw=0.8, ls=":", label="the theory: no dependence on the start")
    from matplotlib.ticker import NullFormatter
    positive = steps[steps > 0]
    for ax, title, ylabel in ((ax0, "the transition along training", "M_pt / N"),
                              (ax1, "the gap between the starts (paired)", "difference of M_pt / N")):
        if positive.size:       # (limits from the steps: a sweep with no transition measured
            ax.set_xscale("log")    # at any step draws no line for the log axis to scale by)
            ax.set_xlim(positive.min() / 1.3, positive.max() * 1.3)
            ax.xaxis.set_minor_formatter(NullFormatter())    # decades only: no crowded labels
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="best", fontsize=7)
    fig.suptitle(f"means over configurations with 95% intervals; {subtitle}", fontsize=9)
    fig.tight_layout()
    path = figure_path(sweep_dir, "fig_init_gap")
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure_time_protocols(path, summaries, law_rows=None):
    """``fig_time_protocols``: tau_mem against N per training protocol (log-log; the
    geometric mean over seeds with its interval and the censored power-law fit), in
    optimizer steps (left) and in epochs (right), beside the slopes the mechanism
    predicts. ``summaries``: dict protocol name -> sweep summary (the ``time-*``
    presets); ``law_rows``: :func:`gmmdiff.analysis.protocols.protocol_laws`'s rows
    (computed when not given). Writes ``path`` and returns it."""
    from gmmdiff.analysis.protocols import protocol_laws
    from gmmdiff.analysis.timelaw import time_law
    plt = pyplot()
    rows = law_rows if law_rows is not None else protocol_laws(summaries)["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for i, (name, summary) in enumerate(summaries.items()):
        law = time_law(summary)
        batch = law["batch_size"]
        row = next(r for r in rows if r["protocol"] == name)
        for ax, unit in ((axes[0], "steps"), (axes[1], "epochs")):
            for r in law["ratios"]:
                pts = [(e["N"], e["tau_mem"]) for e in r["per_N"] if e["tau_mem"]["value"] is not None]
                N = np.array([p[0] for p in pts], dtype=np.float64)
                scale = (batch or N) / N if unit == "epochs" else np.ones_like(N)
                v = np.array([p[1]["value"] for p in pts]) * scale
                lo = np.array([p[1]["interval"][0] or p[1]["value"] for p in pts]) * scale
                hi = np.array([p[1]["interval"][1] or p[1]["value"] for p in pts]) * scale
                fit = row["gamma"] if unit == "steps" else row["gamma_epochs"]
                label = (f"{name}: {fit['exponent']:+.2f}" if fit["exponent"] is not None else name)
                shift = 1.0 + 0.04 * (i - (len(summaries) - 1) / 2)   # protocols side by side
                ax.errorbar(N * shift, v, yerr=[v - lo, hi - v], fmt="osD^v"[i % 5], color=f"C{i}",
                            capsize=3, ms=5, label=label)
                if fit["exponent"] is not None:
                    grid = np.geomspace(N.min(), N.max(), 20)
                    ax.plot(grid, fit["prefactor"] * grid ** fit["exponent"], "-", color=f"C{i}", lw=1)
    for ax, unit in ((axes[0], "optimizer steps"), (axes[1], "epochs")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training samples N")
        ax.set_ylabel(f"memorization onset tau_mem ({unit})")
        ax.legend(loc="best", fontsize=7, title="protocol: fitted gamma", title_fontsize=7)
    axes[0].set_title("in steps (mechanism: Adam 0, Adam + minibatch 1/2, descent 1)", fontsize=9)
    axes[1].set_title("in epochs (B / N of a step with minibatches)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
