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
suffix) at the resolution set by :func:`figure_options` (default :data:`DPI`); within
:func:`all_or_none` (``gmmdiff-plot``) only once every figure is drawn, so a command
that fails writes none.
"""
import contextlib
import io
import os

import numpy as np

from gmmdiff.io.files import atomic_write_bytes, check_output_file
from gmmdiff.io.rundir import read_run

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


_PENDING = []              # [(path, bytes)] of the figures drawn within all_or_none
_COLLECTING = []           # a flag per open all_or_none block


@contextlib.contextmanager
def all_or_none():
    """Within the block, figures are drawn but not written; when the block ends without
    an error, every figure's path is checked (:func:`gmmdiff.io.files.check_output_file`)
    and then each is written atomically. A block that raises writes no figure."""
    outer = bool(_COLLECTING)
    _COLLECTING.append(True)
    try:
        yield
        if not outer:
            for path, _ in _PENDING:
                check_output_file(path, "figure")
            for path, data in _PENDING:
                atomic_write_bytes(path, data)
    finally:
        _COLLECTING.pop()
        if not outer:
            _PENDING.clear()


def figure_path(directory, stem):
    """``directory/stem.<current format>``."""
    return os.path.join(directory, f"{stem}.{_OPTIONS['format']}")


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or _OPTIONS["format"]
    if fmt not in FORMATS:
        raise ValueError(f"figure file {path}: format {fmt!r} not supported; accepted: "
                         f"{', '.join(FORMATS)}")
    import matplotlib
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):   # SVG text stays text (editable)
        fig.savefig(buf, format=fmt, dpi=_OPTIONS["dpi"], bbox_inches="tight")
    if _COLLECTING:
        _PENDING.append((path, buf.getvalue()))
    else:
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
    plt = pyplot()
    cfg, rows = read_run(run_dir, check_arrays=True)
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
    paths.append(figure_path(run_dir, "fig2_memorization"))
    save_figure(fig, paths[-1])
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
    paths.append(figure_path(run_dir, "fig2_losses"))
    save_figure(fig, paths[-1])
    plt.close(fig)

    paths.append(figure_path(run_dir, "fig2_per_time"))
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
    save_figure(fig, path)
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
    plt = pyplot()
    cfg, rows = read_run(run_dir)
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
    path = path or figure_path(run_dir, "fig1_losses_vs_approximations")
    save_figure(fig, path)
    plt.close(fig)
    return path


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
    from gmmdiff.io.rundir import read_model_arrays
    from gmmdiff.training.config import TrainConfig
    plt = pyplot()
    cfg_json, rows = read_run(run_dir)
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
    path = path or figure_path(run_dir, "fig5_templates")
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure1_theory(dataset, model_sizes, times, path, *, n_noise=20, seed=0, target="x0",
                   process="vp"):
    """Figure 1 without training: Monte Carlo excess training losses (over theta_mem) of
    theta* and theta_pmem,M for each M in ``model_sizes`` against the approximations, per
    grid time, on ``dataset`` (:func:`gmmdiff.theory.approximations.compare_with_monte_carlo`).
    Returns ``(path, {M: comparison dict})``."""
    from gmmdiff.theory.approximations import compare_with_monte_carlo
    plt = pyplot()
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
    save_figure(fig, path)
    plt.close(fig)
    return path, results
