"""Figures of a sweep: predicted against measured transitions (figure 3 and its
data-variance version) and the seed sensitivity of figure 7; :func:`sweep_figures`
draws every figure a sweep directory supports.
"""
import os

import numpy as np

from gmmdiff.analysis.verdict import NO_VERDICT, stated_verdict
from gmmdiff.cli.plotting import figure1, figure_path, pyplot, save_figure
from gmmdiff.io.rundir import read_run


def figure3(fit, path, subtitle=""):
    """Predicted against measured M_pt/N for one fit (:func:`gmmdiff.analysis.fits.fit_summary`):
    each configuration's held-out prediction (from the fit without its fold of
    settings) for the 26-weight simplex and the SNR^a weighting against its measured
    whole-curve M_pt/N (95% interval as a bar), the diagonal, the trivial predictor, and
    in the title the source, the noise floor and ``subtitle`` (the sweep's settings).

    The legend sits below the axes, where it covers no point; the SNR^a points are
    open squares over the simplex's filled circles, so where both fits predict the
    same (the "simple" source: both are the constant) both stay visible."""
    plt = pyplot()
    meas = np.array(fit["measured"])
    iv = np.array([[np.nan if v is None else v for v in pair]
                   for pair in fit.get("measured_interval", [[None, None]] * meas.size)], dtype=float)
    err = np.abs(iv - meas[:, None]).T
    fig, ax = plt.subplots(figsize=(5.6, 6.4))
    power = fit["snr_power"]
    for r, label, marker, color, style in (
            (fit, "simplex (26 weights)", "o", "C0", dict(ms=4)),
            (power, f"SNR^a, a = {power['exponent']:.2f}", "s", "C1",
             dict(ms=7, mfc="none", mew=1.0, zorder=3))):
        pred = np.array(r["cv_predicted"])
        ax.errorbar(meas, pred, xerr=err, fmt=marker, color=color, lw=0.6, capsize=1.5,
                    label=f"{label}: held-out MSE {r['mse_test']:.2g}, {stated_verdict(r['verdict'])}",
                    **style)
    values = np.concatenate([meas, fit["cv_predicted"], power["cv_predicted"], iv[np.isfinite(iv)],
                             [fit["trivial_prediction"]]])
    lo, hi = max(0.0, values.min() - 0.03), min(1.05, values.max() + 0.03)
    ax.plot([lo, hi], [lo, hi], color="gray", lw=1, label="predicted = measured")
    ax.axhline(fit["trivial_prediction"], color="k", ls="--", lw=1,
               label=f"trivial {fit['trivial_prediction']:.3f} (held-out MSE {fit['trivial_mse_test']:.2g})")
    floor = fit.get("noise_floor", {}).get("value")
    ax.set(xlabel="measured M_pt / N (whole-curve fit, 95% interval)",
           ylabel="predicted M* / N (held out by setting)", xlim=(lo, hi), ylim=(lo, hi), aspect="equal",
           title=f"source {fit['source']}, s* = {fit.get('data_var', 1.0):g}: noise floor "
                 + (f"{floor:.2g}" if floor is not None else "unknown")
                 + (f"\n{subtitle}" if subtitle else ""))
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, frameon=False)
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure3_svar(result, path, *, weighting="simplex", subtitle=""):
    """The data-variance experiment (:func:`gmmdiff.analysis.transfer.transfer`): per source, the
    mean predicted M*/N at each s* (bars: the range over configurations) against the
    mean measured M_pt/N (bars: its 95% t interval), colour = s*, weights fitted at
    s* = 1 on the CPU sweep; the diagonal and each source's trivial predictor (no change
    with s*). The title says what is plotted, with ``subtitle`` (the sweep's
    settings)."""
    plt = pyplot()
    srcs = list(result["sources"])
    fig, axes = plt.subplots(1, len(srcs), figsize=(3.2 * len(srcs), 3.6), squeeze=False)
    colors = {v: plt.cm.viridis(i / max(1, len(result["data_vars"]) - 1))
              for i, v in enumerate(result["data_vars"])}
    allv = []
    for ax, src in zip(axes[0], srcs):
        r = result["sources"][src][weighting]
        for v in result["data_vars"]:
            m, p = result["measured"][f"{v:g}"], r["per_data_var"][f"{v:g}"]
            lo, hi = (m["mean"] if b is None else b for b in m["interval"])  # (one configuration)
            # (a mean of equal values can sit a rounding error outside their range)
            xerr = np.maximum([[m["mean"] - lo], [hi - m["mean"]]], 0.0)
            yerr = np.maximum([[p["mean"] - p["range"][0]], [p["range"][1] - p["mean"]]], 0.0)
            ax.errorbar([m["mean"]], [p["mean"]], xerr=xerr, yerr=yerr, fmt="o", color=colors[v],
                        capsize=2, label=f"s* = {v:g}")
            allv += [lo, hi, p["range"][0], p["range"][1]]
        ax.axhline(result["sources"][src]["trivial_prediction"], color="k", ls="--", lw=0.8,
                   label="trivial (s* = 1 mean)")
        verdict = stated_verdict(r["verdict"])
        if verdict == NO_VERDICT:           # the errors say what there is to say
            verdict = (f"MSE {r['mse']:.2g}, trivial {result['sources'][src]['trivial_mse']:.2g}\n"
                       f"({r['verdict']['settings']} settings: no verdict)")
        ax.set_title(f"{src}: {verdict}", fontsize=8)
        ax.set_xlabel("measured M_pt / N")
    lo, hi = min(allv) - 0.02, max(allv) + 0.02
    for ax in axes[0]:
        ax.plot([lo, hi], [lo, hi], color="gray", lw=0.8)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
    axes[0][0].set_ylabel("predicted M* / N")
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.suptitle("the data-variance experiment: M_pt / N predicted with the " + weighting
                 + " weights fitted at s* = 1, against measured, per s*"
                 + (f"\n{subtitle}" if subtitle else ""), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure7(curves, path, subtitle=""):
    """Memorization ratio against M/N for the settings of a sweep run with several seeds:
    one panel per (d, N), one colour per K, the mean over seeds and its min-max band.
    ``curves``: dict (N, d, K) -> list of (M/N array, ratio array) per seed;
    ``subtitle``: the sweep's shared settings."""
    plt = pyplot()
    Ns = sorted({k[0] for k in curves})
    ds = sorted({k[1] for k in curves})
    Ks = sorted({k[2] for k in curves})
    fig, axes = plt.subplots(len(ds), len(Ns), figsize=(max(6.4, 3.4 * len(Ns)),
                                                        max(4.2, 2.8 * len(ds)) + 0.6),
                             sharex=True, sharey=True, squeeze=False)
    n_seeds = max(len(v) for v in curves.values())
    for (N, d, K), seeds in sorted(curves.items()):
        ax = axes[ds.index(d), Ns.index(N)]
        grid = np.unique(np.concatenate([x for x, _ in seeds]))
        ys = np.array([np.interp(grid, x, y) for x, y in seeds])
        c = f"C{Ks.index(K)}"
        ax.fill_between(grid, ys.min(0), ys.max(0), color=c, alpha=0.25, lw=0,
                        label=f"K = {K}, min-max over {len(seeds)} seeds")
        ax.plot(grid, ys.mean(0), color=c, lw=1.3, label=f"K = {K}, mean over seeds")
    for i, d in enumerate(ds):
        for j, N in enumerate(Ns):
            ax = axes[i, j]
            ax.axhline(0.5, color="gray", lw=0.8, ls=":")
            ax.set_title(f"N = {N}, d = {d}", fontsize=9)
            ax.set_ylim(-0.03, 1.03)
            if i == len(ds) - 1:
                ax.set_xlabel("M / N")
            if j == 0:
                ax.set_ylabel("memorization ratio")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper center", ncol=min(4, len(labels)),
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(f"memorization ratio against M / N, {n_seeds} seeds per setting"
                 + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def _sweep_settings(spec):
    b = spec.base
    return (f"{b.steps:,} steps, {b.noise_draws} noise draws, {b.target} target, "
            f"seeds {','.join(map(str, spec.seeds))}")


def sweep_settings(spec):
    """The grid and the shared settings of a sweep in one line, for figure titles:
    'N 20,30,40 x d 10,15,20 x K 2,3,4; 50,000 steps, 10 noise draws, eps target, seeds
    0,1' (s* and inits where the sweep varies them)."""
    grid = (f"N {','.join(map(str, spec.samples))} x d {','.join(map(str, spec.dims))} x K "
            f"{','.join(map(str, spec.components))}"
            + (f" x s* {','.join(f'{v:g}' for v in spec.data_vars)}" if spec.data_vars else "")
            + (f" x init {','.join(spec.inits)}" if spec.inits else ""))
    return f"{grid}; {_sweep_settings(spec)}"


def sweep_figures(sweep_dir):
    """Figures 1 (first complete configuration), 3 (each fit file and the data-variance
    experiment), 7 (settings with several seeds) and those of training time of a sweep
    directory; returns the paths written. Every file they draw from is read and checked
    (and the summary and time law computed) before the first figure is drawn."""
    from gmmdiff.experiments.sweep.spec import read_sweep, run_name
    from gmmdiff.experiments.sweep.summary import transition_summary
    from gmmdiff.experiments.sweep.units import check_sweep_files
    from gmmdiff.io.schemas import read_fit_scores, read_transfer
    check_sweep_files(sweep_dir)                    # every input checked, then drawn
    spec = read_sweep(sweep_dir)
    summary = transition_summary(sweep_dir)
    fits = {name: read_fit_scores(os.path.join(sweep_dir, name))
            for name in sorted(os.listdir(sweep_dir)) if name.startswith("fit_") and name.endswith(".json")}
    transfer_path = os.path.join(sweep_dir, "transfer.json")
    transfer = read_transfer(transfer_path) if os.path.exists(transfer_path) else None
    law, gap = _time_law(spec, summary), _init_gap(spec, summary)
    paths, by_setting = [], {}
    for cfg in spec.configurations():
        rd = os.path.join(sweep_dir, run_name(cfg))
        if not os.path.exists(os.path.join(rd, "transition.json")):
            continue
        if not paths:
            paths.append(figure1(rd, figure_path(sweep_dir, "fig1_losses_vs_approximations")))
        rows = read_run(rd, check_arrays=True)[1]
        key = (cfg.samples, cfg.dim, cfg.components)
        by_setting.setdefault((cfg.data_var, cfg.init), {}).setdefault(key, []).append(
            (np.array([r["M_over_N"] for r in rows]), np.array([r["memorization"]["ratio"] for r in rows])))
    for name, fit in fits.items():
        paths.append(figure3(fit, figure_path(sweep_dir, name[:-5].replace("fit_", "fig3_")),
                             sweep_settings(spec)))
    if transfer is not None:
        paths.append(figure3_svar(transfer, figure_path(sweep_dir, "fig3_data_variance"),
                                  subtitle=sweep_settings(spec)))
    for (v, init), settings in sorted(by_setting.items()):  # one figure 7 per s* and init
        multi = {k: c for k, c in settings.items() if len(c) > 1}
        if multi:
            tag = ("" if v == 1.0 else f"_v{v:g}") + ("" if init == "pmem" else f"_{init}")
            paths.append(figure7(multi, figure_path(sweep_dir, f"fig7_seeds{tag}"),
                                 _sweep_settings(spec) + ("" if init == "pmem" else f", init {init}")))
    paths += time_figures(sweep_dir, spec, summary, law, gap)
    return paths


def _time_law(spec, summary):
    """The time law of a sweep of fixed size ratios with series along training (None for
    another design: :func:`gmmdiff.experiments.sweep.summary.analyses`' rule)."""
    from gmmdiff.analysis.timelaw import time_law
    if (spec.size_ratios is not None and spec.refine == 0 and len(spec.samples) > 1
            and any("along" in c for c in summary["configs"])):
        return time_law(summary)
    return None


def _init_gap(spec, summary):
    """The initialization gap along training of a sweep of several starts with series
    along training (:func:`gmmdiff.analysis.inits.transition_along_training`), or None."""
    from gmmdiff.analysis.inits import transition_along_training
    if len(spec.initializations()) > 1 and any("along" in c for c in summary["configs"]):
        return transition_along_training(summary)
    return None


def time_figures(sweep_dir, spec, summary=None, law=None, gap=None):
    """The figures of training time of a sweep: ``fig_time_phase`` where its
    configurations carry series along training, ``fig_time_law`` for a sweep of fixed
    size ratios over several N, ``fig_init_gap`` for a sweep of several starts
    (:mod:`gmmdiff.cli.time_plots`); returns the paths written. ``summary``, ``law``
    and ``gap``: the sweep's summary, time law and initialization gap, if already made."""
    from gmmdiff.cli.time_plots import figure_time_law, figure_time_phase_sweep
    from gmmdiff.experiments.sweep.summary import transition_summary
    if summary is None:
        summary = transition_summary(sweep_dir)
        law, gap = _time_law(spec, summary), _init_gap(spec, summary)
    paths = []
    for init in spec.initializations():          # one phase diagram per start
        part = dict(summary, configs=[c for c in summary["configs"] if c.get("init", "pmem") == init])
        tag = "" if len(spec.initializations()) == 1 else f"_{init}"
        paths.append(figure_time_phase_sweep(sweep_dir, part, _sweep_settings(spec) + f", init {init}",
                                             stem=f"fig_time_phase{tag}"))
    if law is not None:
        paths.append(figure_time_law(sweep_dir, law, _sweep_settings(spec)))
    if gap is not None:
        from gmmdiff.cli.time_plots import figure_init_gap
        paths.append(figure_init_gap(sweep_dir, gap, _sweep_settings(spec)))
    return [p for p in paths if p is not None]
