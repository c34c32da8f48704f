r"""
The transition of a small sweep, and its whole-curve fit
========================================================

A *sweep* trains every configuration of a grid and measures each one's memorization
transition :math:`M_{\mathrm{pt}}`, the model size where the memorization ratio crosses 1/2.
Per configuration it trains a coarse grid of sizes :math:`M = N/5, 2N/5, \dots, N`,
then refinement sizes between the coarse curve's start (last ratio below 0.1) and end
(first ratio at or above 0.9).

Each size is a separately trained model, so the curve scatters more than its binomial
intervals say. The estimate of :math:`M_{\mathrm{pt}}/N` therefore comes from every trained
size at once: the counts :math:`k_j` of memorized samples out of :math:`n_j` follow

.. math::

    \mathbb{E}\, k_j = n_j\, F\big(b\,(x_j - x_{1/2}) + c\big), \qquad
    F(\eta) = 1 - e^{-e^{\eta}}, \quad c = \log\log 2,

with :math:`x_j = M_j/N`, fitted by quasi-likelihood with the scatter of sizes as
overdispersion; :math:`x_{1/2}` is :math:`M_{\mathrm{pt}}/N`, with a 95% interval
(``gmmdiff.analysis.transition.fit_curve``, and :doc:`/science` for why this
shape). The paper's rule -- linear interpolation between the two sizes around 1/2 --
is kept beside it.

Two seeds of one setting, from the command line::

    gmmdiff-sweep -N 16 -d 8 -K 2 --seeds 0,1 --steps 8000 --target x0 --lr 5e-3 \
        --noise-draws 10 --eval-samples 200 --coarse 5 --refine 4 --out runs/small-sweep
    gmmdiff-sweep --summary runs/small-sweep

``gmmdiff-sweep --preset quick`` runs eight such settings (N 16, 24 x d 8, 12 x K 2, 3)
with two seeds each, in about a minute and a half on 2 idle cores.
"""

# %%
# Run the sweep
# -------------
#
# :class:`gmmdiff.SweepSpec` holds the grids and the settings shared by every
# configuration; :func:`gmmdiff.run_sweep` trains the configurations sharing N and d
# together, first the coarse sizes of both seeds, then their refinement sizes.
import shutil
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import gmmdiff
from gmmdiff.analysis.transition import fitted_ratio

workdir = tempfile.mkdtemp(prefix="gmmdiff-gallery-")
base = gmmdiff.TrainConfig(steps=8000, target="x0", lr_peak=5e-3, eval_samples=200)
spec = gmmdiff.SweepSpec(samples=(16,), dims=(8,), components=(2,), seeds=(0, 1),
                         base=base, coarse=5, refine=4)
gmmdiff.run_sweep(spec, f"{workdir}/sweep", np, echo=print)

# %%
# The measured transitions
# ------------------------
#
# :func:`gmmdiff.load_sweep` gives one row per configuration, as ``gmmdiff-sweep
# --summary`` prints it: the whole-curve estimate with its interval, and the two-point
# rule's.
sweep = gmmdiff.load_sweep(f"{workdir}/sweep")
for row in sweep.rows:
    lo, hi = row["interval"]
    print(f"{row['name']}: M_pt/N = {row['M_pt_over_N']:.3f} [{lo:.3f}, {hi:.3f}] "
          f"(two-point rule {row['two_point']['M_pt_over_N']:.3f}), "
          f"{len(row['sizes'])} sizes trained")

# %%
# The curves and their fits
# -------------------------
#
# Each panel shows one configuration's measured ratios (bars: 95% Wilson intervals of
# the 200 generated samples), the fitted curve
# (``gmmdiff.analysis.transition.fitted_ratio``), and :math:`M_{\mathrm{pt}}/N` with its
# interval as the shaded band.
fig, axes = plt.subplots(1, len(sweep.rows), figsize=(9, 3.8), sharey=True, layout="constrained")
x = np.linspace(0.15, 1.0, 200)
for ax, row in zip(axes, sweep.rows):
    run = sweep.run(row["name"])                           # its RunResults
    err = np.abs(run.interval - run.ratio[:, None]).T
    ax.errorbar(run.M_over_N, run.ratio, yerr=err, fmt="o", capsize=3, label="measured")
    ax.plot(x, fitted_ratio(x, row["fit"]), color="C1", label="whole-curve fit")
    ax.axvspan(*row["interval"], color="C1", alpha=0.2, label="M_pt/N, 95% interval")
    ax.axvline(row["two_point"]["M_pt_over_N"], color="k", ls=":", lw=1,
               label="two-point rule")
    ax.axhline(0.5, color="gray", lw=0.6)
    ax.set(title=row["name"], xlabel="M / N")
axes[0].set_ylabel("memorization ratio")
axes[0].legend(fontsize=8, loc="upper left")

# %%
shutil.rmtree(workdir)
