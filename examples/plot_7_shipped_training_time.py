r"""
The shipped results: where training starts, and the memorization-time law
=========================================================================

Two experiments on the series along training, redrawn from their summaries in
``gmmdiff/assets`` (nothing trains here):

- ``init_sweep``: ``gmmdiff-sweep --preset init``. The theory compares losses of
  idealized models, so it predicts one transition whatever the starting point. The
  same 10 configurations (N = 20, d = 10, K in {2, 3}, 5 seeds) trained from the
  paper's start on training points ("pmem") and from draws of the data mixture
  ("prior"), paired by seed;
- ``time_sweep``: ``gmmdiff-sweep --preset time``. Bonnaire, Urfin, Biroli and Mézard
  (NeurIPS 2025) report for neural networks that memorization starts at a time
  :math:`\tau_{\mathrm{mem}} \propto N^{\gamma}` with :math:`\gamma = 1`, and that
  the time to generalize :math:`\tau_{\mathrm{gen}} \propto N^{\beta}` is flat
  (:math:`\beta = 0`). Here: the prior start at fixed :math:`M/N = 1` and 2, N from 10
  to 80, 4 seeds, a constant learning rate.

The numbers come from the functions ``gmmdiff-sweep --summary`` prints them with
(``gmmdiff.analysis.inits.compare_inits``, ``gmmdiff.analysis.timelaw.time_law``).
"""

# %%
# The transition from two starts
# ------------------------------
#
# Each configuration's :math:`M_{\mathrm{pt}}/N` with its interval, from both starts; a line
# joins the two of one configuration. At the paper's 50,000 steps the prior start's
# transition lies a whole N higher.
import json
import os

import matplotlib.pyplot as plt
import numpy as np

from gmmdiff.analysis.fit_files import ASSETS
from gmmdiff.analysis.inits import compare_inits
from gmmdiff.analysis.timelaw import time_law


def shipped_summary(name):
    with open(os.path.join(ASSETS, name, "summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


inits = shipped_summary("init_sweep")
by_start = {}
for c in inits["configs"]:
    by_start.setdefault(c["init"], {})[c["name"].replace("-iprior", "")] = c
names = sorted(by_start["pmem"])
fig, ax = plt.subplots(figsize=(6.4, 4), layout="constrained")
for k, start in enumerate(("pmem", "prior")):
    rows = [by_start[start][n] for n in names]
    value = np.array([r["M_pt_over_N"] for r in rows])
    lo, hi = np.array([r["interval"] for r in rows]).T
    ax.errorbar(np.arange(len(names)) + 0.1 * (2 * k - 1), value, yerr=[value - lo, hi - value],
                fmt="o", capsize=3, color=f"C{k}", label=f"start: {start}")
for n_i, n in enumerate(names):
    ax.plot([n_i - 0.1, n_i + 0.1], [by_start["pmem"][n]["M_pt_over_N"],
                                     by_start["prior"][n]["M_pt_over_N"]], color="gray", lw=0.6)
ax.axhline(1.0, color="gray", ls=":", lw=0.8)
ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
ax.set(ylabel="M_pt / N (95% interval)", title="the same configurations from two starts")
ax.legend()

result = compare_inits(inits)
for start, m in result["per_init"].items():
    print(f"{start:6s} M_pt/N = {m['mean']:.3f} [{m['interval'][0]:.3f}, {m['interval'][1]:.3f}] "
          f"(sd over configurations {m['sd']:.3f})")
pair = result["pairs"][0]
print(f"{pair['other']} - {pair['reference']} = {pair['mean']:+.3f} "
      f"[{pair['interval'][0]:+.3f}, {pair['interval'][1]:+.3f}] over "
      f"{len(pair['differences'])} pairs")

# %%
# The memorization-time law
# -------------------------
#
# For every (N, seed), :math:`\tau_{\mathrm{mem}}` is the step at which the
# memorization ratio (made non-decreasing) first reaches 0.1, and
# :math:`\tau_{\mathrm{gen}}` the step of the smallest held-out loss. The lines are the
# least-squares power laws over every (N, seed); the dotted line is the slope of the
# published :math:`\gamma = 1`, for comparison.
law = time_law(shipped_summary("time_sweep"))
fig, axes = plt.subplots(1, 2, figsize=(10, 3.9), sharey=True, layout="constrained")
for ax, key, symbol in zip(axes, ("tau_mem", "tau_gen"), ("gamma", "beta")):
    for k, ratio in enumerate(law["ratios"]):
        Ns, taus = [], []
        for entry in ratio["per_N"]:
            for s in entry["seeds"]:
                if s[f"{key}_status"] == "ok":
                    Ns.append(entry["N"])
                    taus.append(s[key])
        ax.loglog(Ns, taus, "o", color=f"C{k}", alpha=0.6, ms=4)
        fit = ratio[symbol]
        grid = np.array([min(Ns), max(Ns)], dtype=float)
        ax.loglog(grid, fit["prefactor"] * grid ** fit["exponent"], color=f"C{k}",
                  label=f"M/N = {ratio['M_over_N']:g}: {symbol} = {fit['exponent']:.2f} "
                        f"[{fit['interval'][0]:.2f}, {fit['interval'][1]:.2f}]")
    ax.set_xticks([10, 20, 40, 80], ["10", "20", "40", "80"])
    ax.set_xticks([], minor=True)
    ax.set(xlabel="training-set size N", title=key.replace("_", " "))
tau0 = np.median([s["tau_mem"] for e in law["ratios"][0]["per_N"][:1] for s in e["seeds"]])
axes[0].loglog([10, 80], [tau0, tau0 * 8], "k:", lw=1, label="slope 1 (published)")
for ax in axes:
    ax.legend(fontsize=8)
axes[0].set_ylabel("training step")
for ratio in law["ratios"]:
    print(f"M/N = {ratio['M_over_N']:g}: gamma {ratio['gamma']['exponent']:+.2f} "
          f"[{ratio['gamma']['interval'][0]:+.2f}, {ratio['gamma']['interval'][1]:+.2f}], "
          f"beta {ratio['beta']['exponent']:+.2f} "
          f"[{ratio['beta']['interval'][0]:+.2f}, {ratio['beta']['interval'][1]:+.2f}]")
