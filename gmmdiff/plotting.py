"""Figures from run directories (host side only; matplotlib with the Agg backend).

Figure 2 of the paper, from one run directory:

- ``fig2_memorization.<fmt>`` -- memorization ratio (95% Wilson band) and learned
  variance against M/N;
- ``fig2_losses.<fmt>`` -- final train and test loss against M/N beside the
  generalizing and memorizing baselines, and the partially memorizing baseline in a
  panel of its own (its values, decades above, would flatten the others);
- ``fig2_per_time.<fmt>`` -- per-time training loss of each trained model as a
  fraction of the generalizing model's (log scale where the values span decades).

Every figure names its configuration (d, K, N, steps, noise draws, target, seed) in
its title and every line in its legend. Files are written atomically next to the
results, as PNG, PDF or SVG (:data:`FORMATS`; the format follows the file name's
suffix) at the resolution set by :func:`figure_options` (default :data:`DPI`).
"""
import contextlib
import io
import os

import numpy as np

from .storage import atomic_write_bytes, load_run

FORMATS = ("png", "pdf", "svg")
DPI = 150
_OPTIONS = {"dpi": DPI, "format": "png"}


@contextlib.contextmanager
def figure_options(*, fmt="png", dpi=DPI):
    """Within the block, figures are written as ``fmt`` (png, pdf or svg) at ``dpi``
    (raster resolution; PDF and SVG stay vector)."""
    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r} not supported; accepted: {', '.join(FORMATS)}")
    if not (isinstance(dpi, (int, float)) and 20 <= dpi <= 1200):
        raise ValueError(f"dpi {dpi!r} must be between 20 and 1200")
    before = dict(_OPTIONS)
    _OPTIONS.update(dpi=dpi, format=fmt)
    try:
        yield
    finally:
        _OPTIONS.clear()
        _OPTIONS.update(before)


def _name(directory, stem):
    """``directory/stem.<current format>``."""
    return os.path.join(directory, f"{stem}.{_OPTIONS['format']}")


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or _OPTIONS["format"]
    if fmt not in FORMATS:
        raise ValueError(f"figure file {path}: format {fmt!r} not supported; accepted: "
                         f"{', '.join(FORMATS)}")
    import matplotlib
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):   # SVG text stays text (editable)
        fig.savefig(buf, format=fmt, dpi=_OPTIONS["dpi"], bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def describe(identity):
    """One line naming a run's configuration, for titles: 'd = 10, K = 2, N = 20, seed 0;
    50,000 steps, 10 noise draws, eps target' (templates: size and colors instead of d)."""
    g = identity.get
    if g("model", "gmm") == "templates":
        data = (f"templates K = {g('components')}, {g('image_size')}x{g('image_size')} px, "
                f"{g('colors')} colors")
    else:
        data = f"d = {g('dim')}, K = {g('components')}"
    return (f"{data}, N = {g('samples')}, seed {g('seed')}; {g('steps'):,} steps, "
            f"{g('noise_draws')} noise draws, {g('target')} target")


def figure2(run_dir):
    """Write the three figure-2 files into ``run_dir``; returns their paths."""
    plt = _plt()
    cfg, rows = load_run(run_dir, check_arrays=True)
    title = describe(cfg["identity"])
    x = np.array([r["M_over_N"] for r in rows])
    ratio = np.array([r["memorization"]["ratio"] for r in rows])
    lo = np.array([r["memorization"]["interval"][0] for r in rows])
    hi = np.array([r["memorization"]["interval"][1] for r in rows])
    var = np.array([r["learned_variance"] for r in rows])
    paths = []

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.fill_between(x, lo, hi, alpha=0.25, label="95% Wilson interval")
    a1.plot(x, ratio, "o-", label="memorization ratio")
    a1.axhline(0.5, color="gray", lw=0.8, ls=":", label="1/2 (the transition)")
    a1.set(xlabel="M / N", ylabel="memorized fraction of generated samples", ylim=(-0.03, 1.03))
    a1.legend(loc="upper left", fontsize=8)
    a2.semilogy(x, np.maximum(var, 1e-300), "o-", color="C3", label="learned variance")
    a2.axhline(cfg["identity"].get("data_var", 1.0), color="gray", ls="--", lw=1,
               label="data variance s*")
    a2.set(xlabel="M / N", ylabel="learned variance (log)")
    a2.legend(loc="lower left", fontsize=8)
    fig.suptitle(f"memorization against model size\n{title}", fontsize=10)
    fig.tight_layout()
    paths.append(_name(run_dir, "fig2_memorization"))
    _save(fig, paths[-1])
    plt.close(fig)

    def mean_loss(r, key):
        return float(np.mean(r["per_time_losses"][key]))

    # the trained models beside theta* and theta_mem; the partially memorizing baseline
    # (variance 0 on M points: decades above at small t) in its own panel
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    train = np.array([r["final_train_loss"] for r in rows])
    test = np.array([r["final_test_loss"] for r in rows])
    a1.plot(x, train, "o-", color="C0", label="trained, train")
    a1.plot(x, test, "s-", color="C1", label="trained, test")
    gen_tr, gen_te = mean_loss(rows[0], "generalizing_train"), mean_loss(rows[0], "generalizing_test")
    mem_tr = mean_loss(rows[0], "memorizing_train")
    a1.axhline(gen_tr, color="k", ls="-", lw=1, label=f"generalizing theta*, train ({gen_tr:.3g})")
    a1.axhline(gen_te, color="k", ls=":", lw=1, label=f"generalizing theta*, test ({gen_te:.3g})")
    shown = np.concatenate([train, test, [gen_tr, gen_te]])
    if mem_tr > 0:
        a1.axhline(mem_tr, color="gray", ls="-.", lw=1, label=f"memorizing theta_mem, train ({mem_tr:.3g})")
        shown = np.append(shown, mem_tr)
    _log_if_decades(a1, shown)
    a1.set(xlabel="M / N", ylabel="loss (average over the time grid)",
           title="trained models and the two extreme baselines")
    a1.legend(fontsize=8)
    pm_tr = np.array([mean_loss(r, "pmem_train") for r in rows])
    pm_te = np.array([mean_loss(r, "pmem_test") for r in rows])
    a2.plot(x, pm_tr, "^--", color="C2", label="partially memorizing theta_pmem,M, train")
    a2.plot(x, pm_te, "v:", color="C2", label="partially memorizing theta_pmem,M, test")
    a2.plot(x, train, "o-", color="C0", label="trained, train (as left)")
    _log_if_decades(a2, np.concatenate([pm_tr, pm_te, train]))
    a2.set(xlabel="M / N", ylabel="loss (average over the time grid)",
           title="the partially memorizing baseline")
    a2.legend(fontsize=8)
    fig.suptitle(f"final losses against model size\n{title}", fontsize=10)
    fig.tight_layout()
    paths.append(_name(run_dir, "fig2_losses"))
    _save(fig, paths[-1])
    plt.close(fig)

    paths.append(_name(run_dir, "fig2_per_time"))
    _per_time_panel(plt, rows, paths[-1], title)
    return paths


def _log_if_decades(ax, values, decades=1.5):
    """Log y axis when the positive ``values`` span more than ``decades`` decades."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() / v.min() > 10 ** decades:
        ax.set_yscale("log")


def _per_time_panel(plt, rows, path, title):
    """Per-time training loss of each trained model, one line per M: on the left as a
    fraction of the generalizing model's at the same t (linear, cut at 2 where the
    values go further: small differences near 1 stay visible), on the right absolute
    on a log axis (values spanning decades stay visible; the memorizing model's ~0 at
    small t is drawn at the axis floor, said in its legend entry)."""
    t = np.array(rows[0]["times"])
    pl = rows[0]["per_time_losses"]
    gen = np.array(pl["generalizing_train"])
    mem = np.array(pl["memorizing_train"])
    absolute = np.array([r["per_time_losses"]["model_train"] for r in rows], dtype=np.float64)
    rel = absolute / gen
    cmap = plt.get_cmap("viridis")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.6))
    n = len(rows)
    for k, (r, c_rel, c_abs) in enumerate(zip(rows, rel, absolute)):
        color = cmap(k / max(n - 1, 1))
        a1.plot(t, c_rel, lw=1.3, color=color, label=f"trained M = {r['M']} ({r['M_over_N']:.2f} N)")
        a2.plot(t, c_abs, lw=1.3, color=color)
    a1.axhline(1.0, color="k", ls="--", lw=1, label="generalizing theta*")
    a1.plot(t, mem / gen, "k:", lw=1.5, label="memorizing theta_mem")
    top = float(np.nanmax(rel))
    cut = top > 2.0
    a1.set_ylim(-0.03, 2.0 if cut else max(1.2, top * 1.05))
    a1.set(xlabel="t", ylabel="training loss at t / generalizing loss at t"
           + (" (cut at 2)" if cut else ""), title="relative to theta*")
    a2.plot(t, gen, "k--", lw=1)
    positive = np.concatenate([absolute[absolute > 0], gen[gen > 0]])
    floor = positive.min() / 10
    clipped = bool(np.any(mem < floor))
    a2.plot(t, np.maximum(mem, floor), "k:", lw=1.5)
    a2.set_yscale("log")
    a2.set_ylim(floor / 1.5, positive.max() * 1.5)
    a2.set(xlabel="t", ylabel="training loss at t (log)", title="absolute"
           + (f" (theta_mem below {floor:.1g} drawn at it)" if clipped else ""))
    fig.suptitle(f"per-time training loss of the trained models\n{title}", fontsize=10)
    fig.legend(*a1.get_legend_handles_labels(), fontsize=7.5, loc="center left",
               bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


APPROX_STYLES = (("simple", ":"), ("nearest", "--"), ("expected", "-."))


def _figure1_axes(plt, t, mc_gen, approx_gen, pmem, ylabel, title):
    """The figure-1 panel: ``pmem``: list of (M, MC curve, {method: curve})."""
    fig, ax = plt.subplots(figsize=(8.2, 4.8))
    ax.plot(t, mc_gen, "k-", lw=2, label="generalizing theta* (MC)")
    ax.plot(t, approx_gen, "k--", lw=1, label="generalizing theta* (approx.)")
    for i, (M, mc, approx) in enumerate(pmem):
        c = f"C{i}"
        ax.plot(t, mc, "-", color=c, lw=2, label=f"pmem M = {M} (MC)")
        for method, style in APPROX_STYLES:
            ax.plot(t, approx[method], style, color=c, lw=1.2, label=f"pmem M = {M}, {method}")
    ax.set(xlabel="t", ylabel=ylabel, yscale="log")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig, ax


def figure1(run_dir, path=None, n_sizes=3):
    """Per-time excess training losses (over theta_mem) of theta* and theta_pmem,M from
    Monte Carlo, against the approximations, for one configuration (run directory)."""
    plt = _plt()
    cfg, rows = load_run(run_dir)
    below_n = [r for r in rows if r["M"] < cfg["identity"]["samples"]] or rows   # pmem(N) = mem
    picks = [below_n[int(i)] for i in
             np.unique(np.linspace(0, len(below_n) - 1, min(n_sizes, len(below_n))).round())]
    t = np.array(picks[0]["times"])
    pl = picks[0]["per_time_losses"]
    mem = np.array(pl["memorizing_train"])
    pmem = [(r["M"], np.array(r["per_time_losses"]["pmem_train"]) - mem,
             r["approximations_excess_over_memorizing"]) for r in picks]
    fig, _ = _figure1_axes(plt, t, np.array(pl["generalizing_train"]) - mem,
                           picks[0]["approximations_excess_over_memorizing"]["generalizing"], pmem,
                           f"training loss minus memorizing loss ({cfg['identity'].get('target')} "
                           "scale)",
                           f"{os.path.basename(os.path.abspath(run_dir))}: excess training losses "
                           f"against the approximations\n{describe(cfg['identity'])}")
    path = path or _name(run_dir, "fig1_losses_vs_approximations")
    _save(fig, path)
    plt.close(fig)
    return path


def figure3(fit, path):
    """Predicted against measured M_pt/N for one fit (:func:`gmmdiff.predict.fit_summary`):
    each configuration's held-out prediction (from the fit without its fold of
    settings) for the 26-weight simplex and the SNR^a weighting against its measured
    whole-curve M_pt/N (95% interval as a bar), the diagonal, the trivial predictor, and
    in the title each weighting's paired verdict and the noise floor."""
    plt = _plt()
    meas = np.array(fit["measured"])
    iv = np.array([[np.nan if v is None else v for v in pair]
                   for pair in fit.get("measured_interval", [[None, None]] * meas.size)], dtype=float)
    err = np.abs(iv - meas[:, None]).T
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    power = fit["snr_power"]
    for r, label, marker, color in ((fit, "simplex (26 weights)", "o", "C0"),
                                    (power, f"SNR^a, a = {power['exponent']:.2f}", "s", "C1")):
        pred = np.array(r["cv_predicted"])
        ax.errorbar(meas, pred, xerr=err, fmt=marker, color=color, ms=4, lw=0.6, capsize=1.5,
                    label=f"{label}: held-out MSE {r['mse_test']:.2g}, {r['verdict']['verdict']}")
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
                 + (f"{floor:.2g}" if floor is not None else "unknown"))
    ax.legend(fontsize=6, loc="upper left")
    _save(fig, path)
    plt.close(fig)
    return path


def figure3_svar(result, path, *, weighting="simplex"):
    """The data-variance experiment (:func:`gmmdiff.transfer.transfer`): per source, the
    mean predicted M*/N at each s* (bars: the range over configurations) against the
    mean measured M_pt/N (bars: its 95% t interval), colour = s*, weights fitted at
    s* = 1 on the CPU sweep; the diagonal and each source's trivial predictor (no change
    with s*)."""
    plt = _plt()
    srcs = list(result["sources"])
    fig, axes = plt.subplots(1, len(srcs), figsize=(3.2 * len(srcs), 3.6), squeeze=False)
    colors = {v: plt.cm.viridis(i / max(1, len(result["data_vars"]) - 1))
              for i, v in enumerate(result["data_vars"])}
    allv = []
    for ax, src in zip(axes[0], srcs):
        r = result["sources"][src][weighting]
        for v in result["data_vars"]:
            m, p = result["measured"][f"{v:g}"], r["per_data_var"][f"{v:g}"]
            xerr = [[m["mean"] - m["interval"][0]], [m["interval"][1] - m["mean"]]]
            yerr = [[p["mean"] - p["range"][0]], [p["range"][1] - p["mean"]]]
            ax.errorbar([m["mean"]], [p["mean"]], xerr=xerr, yerr=yerr, fmt="o", color=colors[v],
                        capsize=2, label=f"s* = {v:g}")
            allv += [m["interval"][0], m["interval"][1], p["range"][0], p["range"][1]]
        ax.axhline(result["sources"][src]["trivial_prediction"], color="k", ls="--", lw=0.8,
                   label="trivial (s* = 1 mean)")
        ax.set_title(f"{src}: {r['verdict']['verdict']}", fontsize=8)
        ax.set_xlabel("measured M_pt / N")
    lo, hi = min(allv) - 0.02, max(allv) + 0.02
    for ax in axes[0]:
        ax.plot([lo, hi], [lo, hi], color="gray", lw=0.8)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
    axes[0][0].set_ylabel(f"predicted M* / N ({weighting} weights fitted at s* = 1)")
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def figure7(curves, path, subtitle=""):
    """Memorization ratio against M/N for the settings of a sweep run with several seeds:
    one panel per (d, N), one colour per K, the mean over seeds and its min-max band.
    ``curves``: dict (N, d, K) -> list of (M/N array, ratio array) per seed;
    ``subtitle``: the sweep's shared settings."""
    plt = _plt()
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
    _save(fig, path)
    plt.close(fig)
    return path


def _sweep_settings(spec):
    b = spec.base
    return (f"{b.steps:,} steps, {b.noise_draws} noise draws, {b.target} target, "
            f"seeds {','.join(map(str, spec.seeds))}")


def sweep_figures(sweep_dir):
    """Figures 1 (first complete configuration), 3 (each fit file) and 7 (settings with
    several seeds) of a sweep directory; returns the paths written."""
    from .storage import read_fit_scores, read_json
    from .sweep import check_sweep_files, read_sweep, run_name
    check_sweep_files(sweep_dir)                    # every input checked, then drawn
    spec = read_sweep(sweep_dir)
    paths, by_setting = [], {}
    for cfg in spec.configurations():
        rd = os.path.join(sweep_dir, run_name(cfg))
        if not os.path.exists(os.path.join(rd, "transition.json")):
            continue
        if not paths:
            paths.append(figure1(rd, _name(sweep_dir, "fig1_losses_vs_approximations")))
        rows = load_run(rd, check_arrays=True)[1]
        key = (cfg.samples, cfg.dim, cfg.components)
        by_setting.setdefault(cfg.data_var, {}).setdefault(key, []).append((np.array([r["M_over_N"] for r in rows]),
                                               np.array([r["memorization"]["ratio"] for r in rows])))
    for name in sorted(os.listdir(sweep_dir)):
        if name.startswith("fit_") and name.endswith(".json"):
            paths.append(figure3(read_fit_scores(os.path.join(sweep_dir, name)),
                                 _name(sweep_dir, name[:-5].replace("fit_", "fig3_"))))
    if os.path.exists(os.path.join(sweep_dir, "transfer.json")):
        paths.append(figure3_svar(read_json(os.path.join(sweep_dir, "transfer.json")),
                                  _name(sweep_dir, "fig3_data_variance")))
    for v, settings in sorted(by_setting.items()):     # one figure 7 per data variance
        multi = {k: c for k, c in settings.items() if len(c) > 1}
        if multi:
            tag = "" if v == 1.0 else f"_v{v:g}"
            paths.append(figure7(multi, _name(sweep_dir, f"fig7_seeds{tag}"), _sweep_settings(spec)))
    return paths


def _rgb(x, shape):
    """(C, P) image -> (H, W, 3) in [0, 1] for display (C = 1 gray, C >= 3 first 3)."""
    C = x.shape[0]
    img = x.reshape(C, *shape)
    img = np.repeat(img, 3, axis=0) if C == 1 else img[:3] if C >= 3 else np.concatenate([img, img[:1]])
    img = np.moveaxis(img, 0, -1)
    lo, hi = img.min(), img.max()
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def figure5(run_dir, path=None, n_show=8):
    """Template examples, colored training samples, and samples generated by the
    smallest and the largest trained model of a ``--model templates`` run."""
    from .storage import read_model_arrays
    from .config import TrainConfig
    plt = _plt()
    cfg_json, rows = load_run(run_dir)
    ident = {k: v for k, v in cfg_json["identity"].items() if k not in ("backend", "results_format")}
    if ident.get("template_file") is not None:           # identity holds the content hash
        ident["template_file"] = cfg_json.get("meta", {}).get("template_file")
    cfg = TrainConfig(**ident)
    ds = cfg.dataset()
    shape = ds.mixture.shape
    small, large = rows[0]["M"], rows[-1]["M"]
    gens = {M: read_model_arrays(os.path.join(run_dir, f"model_M{M:05d}.npz"))["generated"] for M in (small, large)}
    panels = [("templates", [t.reshape(1, -1) for t in ds.mixture.templates[:n_show]]),
              ("training samples", list(ds.X[:n_show])),
              (f"generated, M = {small}", list(gens[small][:n_show])),
              (f"generated, M = {large}", list(gens[large][:n_show]))]
    fig, axes = plt.subplots(len(panels), n_show, figsize=(1.2 * n_show, 1.35 * len(panels)))
    for r, (title, images) in enumerate(panels):
        for c in range(n_show):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(_rgb(np.asarray(images[c]), shape), interpolation="nearest")
        axes[r, 0].set_title(title, fontsize=8, loc="left")
    fig.suptitle(describe(cfg_json["identity"]), fontsize=9)
    path = path or _name(run_dir, "fig5_templates")
    _save(fig, path)
    plt.close(fig)
    return path


def figure1_theory(dataset, model_sizes, times, path, *, n_noise=20, seed=0, target="x0",
                   process="vp"):
    """Figure 1 without training: Monte Carlo excess training losses (over theta_mem) of
    theta* and theta_pmem,M for each M in ``model_sizes`` against the approximations, per
    grid time, on ``dataset`` (:func:`gmmdiff.theory.compare_with_monte_carlo`).
    Returns ``(path, {M: comparison dict})``."""
    from .theory import compare_with_monte_carlo
    plt = _plt()
    t = np.asarray(times, dtype=np.float64)
    results = {M: compare_with_monte_carlo(dataset, M, t, n_noise=n_noise, seed=seed,
                                           target=target, process=process)
               for M in model_sizes}
    first = results[model_sizes[0]]
    N, d = dataset.X.shape
    pmem = [(M, r["mc_pmem"], {m: r[m] for m, _ in APPROX_STYLES}) for M, r in results.items()]
    fig, _ = _figure1_axes(plt, t, first["mc_gen"], first["gen"], pmem,
                           f"training loss minus memorizing loss ({target} scale)",
                           f"excess training losses against the approximations (no training)\n"
                           f"d = {d}, K = {dataset.mixture.n_components}, N = {N}, seed {seed}; "
                           f"Monte Carlo with {n_noise} noise draws per sample, {process}")
    _save(fig, path)
    plt.close(fig)
    return path, results
