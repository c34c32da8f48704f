r"""
The shipped results: the CPU sweep and the data-variance experiment
===================================================================

gmmdiff ships the summaries of the experiments behind its README in
``gmmdiff/assets``: per configuration the trained sizes, their memorization ratios,
the measured transition with its interval, and the fits made on them. Nothing here
trains; everything is redrawn from those files.

- ``cpu_sweep``: ``gmmdiff-sweep --preset cpu``, the paper's experiment at laptop
  sizes: N in {20, 30, 40}, d in {10, 15, 20}, K in {2, 3, 4}, 2 seeds (54
  configurations, the paper's protocol: eps target, 50,000 steps);
- ``svar_sweep``: ``gmmdiff-sweep --preset svar``, the one prediction the simple theory
  makes: :math:`M^*/N` moves with the data variance :math:`s^*` and not with N, d or K
  (:math:`s^* \in \{0.5, 1, 2\}`, 30 configurations).
"""

# %%
# Every transition of the CPU sweep
# ---------------------------------
#
# Each measured curve with its whole-curve fit
# (``gmmdiff.analysis.transition.fitted_ratio``): 54 configurations, one picture.
# The transitions gather near :math:`M/N \approx 0.8`, the paper's edge.
import json
import os

import matplotlib.pyplot as plt
import numpy as np

import gmmdiff
from gmmdiff.analysis.fit_files import ASSETS
from gmmdiff.analysis.transition import fitted_ratio

with open(os.path.join(ASSETS, "cpu_sweep", "summary.json"), encoding="utf-8") as fh:
    cpu = json.load(fh)["configs"]                        # one dict per configuration
print(f"{len(cpu)} configurations; keys of each: {', '.join(sorted(cpu[0]))}")

x = np.linspace(0.3, 1.0, 200)
fig, ax = plt.subplots(figsize=(6.4, 4), layout="constrained")
for c in cpu:
    color = f"C{[20, 30, 40].index(c['N'])}"
    ax.plot(x, fitted_ratio(x, c["fit"]), color=color, lw=0.6, alpha=0.6)
    ax.plot(np.asarray(c["sizes"]) / c["N"], c["ratios"], ".", color=color, ms=2)
for k, N in enumerate((20, 30, 40)):
    ax.plot([], [], color=f"C{k}", label=f"N = {N}")
ax.axhline(0.5, color="gray", lw=0.8, ls=":")
ax.set(xlabel="M / N", ylabel="memorization ratio",
       title="CPU sweep: 54 measured curves (dots) and their fits")
ax.legend()

# %%
# No trend with N, d or K
# -----------------------
#
# :math:`M_{\mathrm{pt}}/N` of every configuration with its 95% interval, grouped by each grid
# variable in turn. The settings differ no more than two seeds of one setting do: the
# variance between seeds (the *noise floor* of one measurement) and the spread between
# settings are the same size.
mpt = np.array([c["M_pt_over_N"] for c in cpu])
lo, hi = np.array([c["interval"] for c in cpu]).T
fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6), sharey=True, layout="constrained")
rng = np.random.default_rng(0)
for ax, key, label in zip(axes, ("N", "d", "K"), ("N", "d", "K")):
    values = np.array([c[key] for c in cpu], dtype=float)
    levels = np.unique(values)
    pos = np.searchsorted(levels, values) + rng.uniform(-0.2, 0.2, values.size)  # jitter
    ax.errorbar(pos, mpt, yerr=[mpt - lo, hi - mpt], fmt="o", ms=3, lw=0.6, alpha=0.7)
    ax.plot(range(levels.size), [mpt[values == v].mean() for v in levels], "k_", ms=30, mew=2)
    ax.set(xticks=range(levels.size), xticklabels=[f"{v:g}" for v in levels], xlabel=label)
axes[0].set_ylabel("measured M_pt / N (95% interval)")
fig.suptitle(f"CPU sweep: mean M_pt / N = {mpt.mean():.3f} (bars: the means per level)")

fits = gmmdiff.shipped_fits()
floor = fits["expected"]["noise_floor"]
print(f"mean M_pt/N {mpt.mean():.3f}; noise floor (variance between seeds) "
      f"{floor['value']:.5f} [{floor['interval'][0]:.5f}, {floor['interval'][1]:.5f}]")
print(f"trivial predictor M*/N = {fits['expected']['trivial_prediction']:.3f}: held-out MSE "
      f"{fits['expected']['trivial_mse_test']:.5f}")
for source, fit in fits.items():
    print(f"  {source:8s} fitted time weights: held-out MSE {fit['mse_test']:.5f}")

# %%
# The data-variance experiment
# ----------------------------
#
# Measured :math:`M_{\mathrm{pt}}/N` per configuration at each :math:`s^*` (dots), their mean
# with its 95% t interval, and the means predicted with each source's time weights
# fitted at :math:`s^* = 1` on the CPU sweep (``gmmdiff-predict --transfer``). The
# measured transition rises with :math:`s^*` in the predicted direction, but by about a
# quarter of what every source predicts.
with open(os.path.join(ASSETS, "svar_sweep", "summary.json"), encoding="utf-8") as fh:
    svar = json.load(fh)["configs"]
with open(os.path.join(ASSETS, "svar_sweep", "transfer.json"), encoding="utf-8") as fh:
    transfer = json.load(fh)
variances = transfer["data_vars"]
fig, ax = plt.subplots(figsize=(6.4, 4), layout="constrained")
for v in variances:
    pts = [c["M_pt_over_N"] for c in svar if c["data_var"] == v and c["M_pt_over_N"] is not None]
    ax.plot(np.full(len(pts), v) * rng.uniform(0.96, 1.04, len(pts)), pts, ".", color="gray")
measured = [transfer["measured"][f"{v:g}"] for v in variances]
ax.errorbar(variances, [m["mean"] for m in measured],
            yerr=np.abs(np.array([m["interval"] for m in measured]).T - [m["mean"] for m in measured]),
            fmt="ko-", capsize=4, lw=2, label="measured (mean, 95% interval)")
for k, source in enumerate(("simple", "expected", "nearest", "mc")):
    pred = transfer["sources"][source]["simplex"]["per_data_var"]
    ax.plot(variances, [pred[f"{v:g}"]["mean"] for v in variances], "s--", color=f"C{k}",
            label=f"predicted ({source})")
ax.set_xscale("log")
ax.set_xticks(variances, [f"{v:g}" for v in variances])
ax.set_xticks([], minor=True)
ax.set(xlabel="data variance s*", ylabel="M_pt / N",
       title="N 20, d 10, K 2-3, 5 seeds: measured against predicted")
ax.legend(fontsize=8)
diff = transfer["measured_difference"]
print(f"M_pt/N rises by {diff['value']:.3f} [{diff['interval'][0]:.3f}, {diff['interval'][1]:.3f}] "
      f"from s* = {diff['between'][0]:g} to {diff['between'][1]:g}")
