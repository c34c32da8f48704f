"""Figures from run directories (host side only; matplotlib with the Agg backend).

Figure 2 of the paper, from one run directory:

- ``fig2_memorization.png`` -- memorization ratio (95% Wilson band) and learned
  variance against M/N;
- ``fig2_losses.png`` -- final train and test loss against M/N beside the generalizing,
  memorizing and partially memorizing baselines;
- ``fig2_per_time.png`` -- per-time training loss of each trained model beside the
  baselines.

PNG files are written atomically next to the results.
"""
import io
import os

import numpy as np

from .storage import atomic_write_bytes, load_run


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def figure2(run_dir):
    """Write the three figure-2 PNGs into ``run_dir``; returns their paths."""
    plt = _plt()
    _, rows = load_run(run_dir, check_arrays=True)
    x = np.array([r["M_over_N"] for r in rows])
    ratio = np.array([r["memorization"]["ratio"] for r in rows])
    lo = np.array([r["memorization"]["interval"][0] for r in rows])
    hi = np.array([r["memorization"]["interval"][1] for r in rows])
    var = np.array([r["learned_variance"] for r in rows])
    paths = []

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.fill_between(x, lo, hi, alpha=0.25, label="95% Wilson interval")
    a1.plot(x, ratio, "o-", label="memorization ratio")
    a1.axhline(0.5, color="gray", lw=0.8, ls=":")
    a1.set(xlabel="M / N", ylabel="memorized fraction of samples", ylim=(-0.03, 1.03))
    a1.legend(loc="upper left", fontsize=8)
    a2.semilogy(x, np.maximum(var, 1e-300), "o-", color="C3")
    a2.set(xlabel="M / N", ylabel="learned variance")
    fig.suptitle("memorization against model size")
    paths.append(os.path.join(run_dir, "fig2_memorization.png"))
    _save(fig, paths[-1])
    plt.close(fig)

    def mean_loss(r, key):
        return float(np.mean(r["per_time_losses"][key]))

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, [r["final_train_loss"] for r in rows], "o-", label="trained, train")
    ax.plot(x, [r["final_test_loss"] for r in rows], "s-", label="trained, test")
    ax.plot(x, [mean_loss(r, "pmem_train") for r in rows], "--", label="partially memorizing, train")
    for key, style, label in (("generalizing_train", "-", "generalizing, train"),
                              ("generalizing_test", ":", "generalizing, test"),
                              ("memorizing_train", "-.", "memorizing, train")):
        ax.axhline(mean_loss(rows[0], key), color="gray", ls=style, lw=1, label=label)
    ax.set(xlabel="M / N", ylabel="loss (grid average)", yscale="log")
    ax.legend(fontsize=7)
    paths.append(os.path.join(run_dir, "fig2_losses.png"))
    _save(fig, paths[-1])
    plt.close(fig)

    paths.append(os.path.join(run_dir, "fig2_per_time.png"))
    _per_time_panel(plt, rows, paths[-1])
    return paths


def _per_time_panel(plt, rows, path):
    """Per-time training loss of each trained model as a fraction of the generalizing
    model's at the same t (linear scale: the memorizing model's ~1e-30 at small t is 0
    here instead of flattening every other curve on a log axis); colour = M/N."""
    t = np.array(rows[0]["times"])
    pl = rows[0]["per_time_losses"]
    gen = np.array(pl["generalizing_train"])
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in rows:
        ax.plot(t, np.array(r["per_time_losses"]["model_train"]) / gen, lw=1.2,
                color=cmap(r["M_over_N"]))
    ax.axhline(1.0, color="k", ls="--", lw=1, label="generalizing (theta*)")
    ax.plot(t, np.array(pl["memorizing_train"]) / gen, "k:", lw=1.5, label="memorizing (theta_mem)")
    top = max(1.2, float(np.nanmax([np.array(r["per_time_losses"]["model_train"]) / gen
                                    for r in rows])) * 1.05)
    ax.set(xlabel="t", ylabel="training loss at t / generalizing loss at t", ylim=(-0.03, top),
           title="per-time training loss of the trained models")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=ax, label="M / N")
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)
    plt.close(fig)


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
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(t, np.array(pl["generalizing_train"]) - mem, "k-", lw=2, label="generalizing (MC)")
    ax.plot(t, picks[0]["approximations_excess_over_memorizing"]["generalizing"], "k--",
            label="generalizing (approx.)")
    for i, r in enumerate(picks):
        c = f"C{i}"
        ax.plot(t, np.array(r["per_time_losses"]["pmem_train"]) - mem, "-", color=c, lw=2,
                label=f"pmem M={r['M']} (MC)")
        ap = r["approximations_excess_over_memorizing"]
        for method, style in (("simple", ":"), ("nearest", "--"), ("expected", "-.")):
            ax.plot(t, ap[method], style, color=c, lw=1, label=f"{method}" if i == 0 else None)
    ax.set(xlabel="t", ylabel="training loss minus memorizing loss", yscale="log")
    ax.legend(fontsize=6, ncol=2)
    path = path or os.path.join(run_dir, "fig1_losses_vs_approximations.png")
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


def figure7(curves, path):
    """Memorization ratio against M/N for the settings of a sweep run with several seeds:
    one panel per (d, N), one colour per K, the mean over seeds and its min-max band.
    ``curves``: dict (N, d, K) -> list of (M/N array, ratio array) per seed."""
    plt = _plt()
    Ns = sorted({k[0] for k in curves})
    ds = sorted({k[1] for k in curves})
    Ks = sorted({k[2] for k in curves})
    fig, axes = plt.subplots(len(ds), len(Ns), figsize=(3.2 * len(Ns), 2.6 * len(ds)),
                             sharex=True, sharey=True, squeeze=False)
    n_seeds = max(len(v) for v in curves.values())
    for (N, d, K), seeds in sorted(curves.items()):
        ax = axes[ds.index(d), Ns.index(N)]
        grid = np.unique(np.concatenate([x for x, _ in seeds]))
        ys = np.array([np.interp(grid, x, y) for x, y in seeds])
        c = f"C{Ks.index(K)}"
        ax.fill_between(grid, ys.min(0), ys.max(0), color=c, alpha=0.25, lw=0)
        ax.plot(grid, ys.mean(0), color=c, lw=1.3, label=f"K = {K}")
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
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"memorization ratio against M / N\nmean over {n_seeds} seeds (line), min-max "
                 "over seeds (band)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


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
            paths.append(figure1(rd, os.path.join(sweep_dir, "fig1_losses_vs_approximations.png")))
        rows = load_run(rd, check_arrays=True)[1]
        key = (cfg.samples, cfg.dim, cfg.components)
        by_setting.setdefault(cfg.data_var, {}).setdefault(key, []).append((np.array([r["M_over_N"] for r in rows]),
                                               np.array([r["memorization"]["ratio"] for r in rows])))
    for name in sorted(os.listdir(sweep_dir)):
        if name.startswith("fit_") and name.endswith(".json"):
            paths.append(figure3(read_fit_scores(os.path.join(sweep_dir, name)),
                                 os.path.join(sweep_dir, name[:-5].replace("fit_", "fig3_") + ".png")))
    if os.path.exists(os.path.join(sweep_dir, "transfer.json")):
        paths.append(figure3_svar(read_json(os.path.join(sweep_dir, "transfer.json")),
                                  os.path.join(sweep_dir, "fig3_data_variance.png")))
    for v, settings in sorted(by_setting.items()):     # one figure 7 per data variance
        multi = {k: c for k, c in settings.items() if len(c) > 1}
        if multi:
            tag = "" if v == 1.0 else f"_v{v:g}"
            paths.append(figure7(multi, os.path.join(sweep_dir, f"fig7_seeds{tag}.png")))
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
    path = path or os.path.join(run_dir, "fig5_templates.png")
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
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    first = results[model_sizes[0]]
    ax.plot(t, first["mc_gen"], "k-", lw=2, label="generalizing (MC)")
    ax.plot(t, first["gen"], "k--", label="generalizing (approx.)")
    for i, (M, r) in enumerate(results.items()):
        c = f"C{i}"
        ax.plot(t, r["mc_pmem"], "-", color=c, lw=2, label=f"pmem M={M} (MC)")
        for method, style in (("simple", ":"), ("nearest", "--"), ("expected", "-.")):
            ax.plot(t, r[method], style, color=c, lw=1, label=method if i == 0 else None)
    N, d = dataset.X.shape
    ax.set(xlabel="t", ylabel=f"training loss minus memorizing loss ({target} scale)",
           yscale="log", title=f"d = {d}, K = {dataset.mixture.n_components}, N = {N}")
    ax.legend(fontsize=6, ncol=2)
    _save(fig, path)
    plt.close(fig)
    return path, results
