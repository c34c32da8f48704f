r"""
The shipped results: which ingredient of training sets the time law
===================================================================

The memorization-time law :math:`\tau_{\mathrm{mem}} \propto N^{\gamma}` was published
with :math:`\gamma = 1` for networks trained on minibatches (Adam, or SGD with
momentum); full-batch Adam in this laboratory gives :math:`\gamma` near 0. Four sweeps
train the same laboratory four ways (``gmmdiff-sweep --preset time-adam``,
``time-sgd``, ``time-adam-b10``, ``time-momentum-b10``: N from 10 to 160, M/N = 2, the
prior start, 4 seeds), and a mechanism predicts their exponents: a training point pulls
its component with weight 1/N, which Adam's normalization cancels (:math:`\gamma = 0`),
gradient descent and momentum do not (:math:`\gamma = 1`), and minibatch Adam cancels
in part (:math:`\gamma = 1/2`). Then the initialization gap along 80,000 steps
(``--preset init-long``). Everything is redrawn from ``gmmdiff/assets``; nothing trains.
"""

# %%
# The onsets against N, per protocol
# ----------------------------------
#
# ``gmmdiff.analysis.protocols.protocol_laws`` fits every protocol's law (the runs that
# never reach the onset threshold censored at their last step) and says where the
# mechanism's exponent lies. Each point is the geometric mean over 4 seeds with its
# interval; the lines are the fitted laws.
import json
import os

import matplotlib.pyplot as plt
import numpy as np

from gmmdiff.analysis.fit_files import ASSETS
from gmmdiff.analysis.inits import paired_gaps, transition_along_training
from gmmdiff.analysis.protocols import format_protocol_laws, protocol_laws
from gmmdiff.analysis.timelaw import time_law

names = ("time-adam", "time-sgd", "time-adam-b10", "time-momentum-b10")
sweeps = {n: json.load(open(os.path.join(ASSETS, "time_protocols", n, "summary.json")))
          for n in names}
laws = protocol_laws(sweeps)
print(format_protocol_laws(laws))

fig, ax = plt.subplots(figsize=(7, 4.5))
for i, (name, row) in enumerate(zip(names, laws["rows"])):
    per_N = time_law(sweeps[name])["ratios"][0]["per_N"]
    N = np.array([e["N"] for e in per_N], dtype=float) * (1 + 0.04 * (i - 1.5))
    tau = np.array([e["tau_mem"]["value"] for e in per_N])
    lo = np.array([e["tau_mem"]["interval"][0] for e in per_N])
    hi = np.array([e["tau_mem"]["interval"][1] for e in per_N])
    g = row["gamma"]
    ax.errorbar(N, tau, yerr=[tau - lo, hi - tau], fmt="osD^"[i], capsize=3,
                label=f"{name}: gamma {g['exponent']:+.2f} (mechanism {row['mechanism']:g})")
    grid = np.geomspace(10, 160, 20)
    ax.plot(grid, g["prefactor"] * grid ** g["exponent"], color=f"C{i}", lw=1)
ax.set(xscale="log", yscale="log", xlabel="training samples N",
       ylabel="memorization onset (optimizer steps)")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# From N = 20 on
# --------------
#
# At N = 10 the descent protocols' memorization ratios level off near the onset
# threshold, so their "onsets" there measure a plateau's height, not a time. Without
# N = 10, gradient descent and minibatch momentum are consistent with the published
# :math:`\gamma = 1`:
above10 = {n: dict(s, configs=[c for c in s["configs"] if c["N"] >= 20]) for n, s in sweeps.items()}
for row in protocol_laws(above10)["rows"]:
    print(f"{row['protocol']:<18} gamma {row['gamma']['verdict']}")

# %%
# The initialization gap along 80,000 steps
# -----------------------------------------
#
# The transition of each start at every evaluation step (the whole-curve fit) and the
# paired gap between them: it shrinks, then levels off.
long = json.load(open(os.path.join(ASSETS, "init_long", "summary.json")))
along = transition_along_training(long)
steps = np.array(along["steps"], dtype=float)
gaps = paired_gaps(along)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
for init, e in along["per_init"].items():
    m = np.array([np.nan if v is None else v for v in e["fit_mean"]])
    ax0.plot(steps[1:], m[1:], "o-", ms=3, label=init)
ax0.set(xscale="log", xlabel="training step", ylabel="M_pt / N", title="each start")
ax0.legend()
every = np.all(np.isfinite(gaps), axis=0)          # the steps where every pair has a gap
ax1.plot(steps, gaps.T, color="C2", alpha=0.3, lw=1)
ax1.plot(steps[every], gaps[:, every].mean(axis=0), "o-", color="C2", ms=3, label="mean of 6 pairs")
ax1.axhline(0, color="k", ls=":", lw=1)
ax1.set(xscale="log", xlabel="training step", ylabel="prior - pmem", title="the paired gap")
ax1.legend()
fig.tight_layout()
plt.show()
