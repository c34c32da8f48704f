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

from .storage import StorageError, atomic_write_bytes, read_json


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def load_run(run_dir):
    """(config dict, list of per-size metric dicts in increasing M) of a run directory."""
    cfg_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise StorageError(f"{run_dir} is not a gmmdiff run directory (no config.json)")
    cfg = read_json(cfg_path)
    index = read_json(os.path.join(run_dir, "index.json")) if os.path.exists(
        os.path.join(run_dir, "index.json")) else {"complete": []}
    rows = [read_json(os.path.join(run_dir, f"model_M{int(M):05d}.json"))
            for M in sorted(index.get("complete", []))]
    if not rows:
        raise StorageError(f"{run_dir} holds no completed model sizes yet")
    return cfg, rows


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def figure2(run_dir):
    """Write the three figure-2 PNGs into ``run_dir``; returns their paths."""
    plt = _plt()
    _, rows = load_run(run_dir)
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

    fig, ax = plt.subplots(figsize=(6, 4))
    t = np.array(rows[0]["times"])
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(rows):
        ax.plot(t, r["per_time_losses"]["model_train"], color=cmap(i / max(len(rows) - 1, 1)),
                lw=1, label=f"M/N = {r['M_over_N']:.2f}" if i in (0, len(rows) - 1) else None)
    ax.plot(t, rows[0]["per_time_losses"]["generalizing_train"], "k--", label="generalizing")
    ax.plot(t, rows[0]["per_time_losses"]["memorizing_train"], "k:", label="memorizing")
    ax.set(xlabel="t", ylabel="training loss at t", yscale="log")
    ax.legend(fontsize=7)
    paths.append(os.path.join(run_dir, "fig2_per_time.png"))
    _save(fig, paths[-1])
    plt.close(fig)
    return paths
