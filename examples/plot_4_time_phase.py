r"""
Memorization along training: the time phase diagram
===================================================

Every run evaluates its models at steps along training (``--eval-steps``, by default
step 0 and 12 log-spaced steps up to the last): the memorization ratio with its
interval, the learned variance, the training and held-out losses. Read over the
steps, they show *when* each size settles, and where the transition sits at each
moment -- the time phase diagram.

With the paper's initialization every model starts on training points, memorizing
(ratio 1 at step 0). The small models leave them and generalize; the large ones stay.
The transition :math:`M_{\mathrm{pt}}/N` therefore comes down from above as training goes on,
and a run is done when it stops moving. From the command line (``gmmdiff-plot``
draws ``fig_time_phase``)::

    gmmdiff-train -d 8 -K 2 -N 16 -M 2,4,6,8,10,12,14,16 --steps 8000 --target x0 \
        --lr 5e-3 --eval-samples 200 --eval-steps log:20 --out runs/phase
    gmmdiff-plot runs/phase
"""

# %%
# Train with 20 evaluations along training
# ----------------------------------------
import shutil
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import gmmdiff
from gmmdiff.analysis.transition import fit_curve

workdir = tempfile.mkdtemp(prefix="gmmdiff-gallery-")
cfg = gmmdiff.TrainConfig(dim=8, components=2, samples=16, steps=8000, target="x0",
                          lr_peak=5e-3, eval_samples=200, eval_steps="log:20")
gmmdiff.run(cfg, list(range(2, 17, 2)), f"{workdir}/phase", np)
run = gmmdiff.load_run(f"{workdir}/phase")
steps = run.eval_steps                                    # (E,) steps, 0 first
ratio = run.series("ratio")                               # (E, sizes)
print(f"evaluated at {steps.size} steps: {', '.join(map(str, steps))}")
print("status per size:", dict(zip(run.sizes, run.status)))

# %%
# The transition at every evaluated step
# --------------------------------------
#
# At each step, the whole-curve fit over the sizes
# (``gmmdiff.analysis.transition.fit_curve``) gives :math:`M_{\mathrm{pt}}/N` with its
# interval, from the memorized counts out of the generated samples.
counts, n = run.series("count"), run.series("n")         # (E, sizes) each
pt = np.full((steps.size, 3), np.nan)                     # value, lo, hi
for e in range(steps.size):
    fit = fit_curve(run.M, counts[e], n[e], cfg.samples)
    if fit["status"] == "ok":
        pt[e] = [fit["value"], *fit["interval"]]
for s, (v, lo, hi) in zip(steps, pt):
    if np.isfinite(v) and s >= steps[-1] // 8:
        print(f"step {s:5d}: M_pt/N = {v:.3f} [{lo:.3f}, {hi:.3f}]")

# %%
# The diagram
# -----------
#
# Left, the ratio over (M/N, step) on a logarithmic step axis (step 0, where every size
# is memorizing, left out); right, :math:`M_{\mathrm{pt}}/N` along training with its 95% interval.
keep = steps > 0
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
mesh = ax0.pcolormesh(run.M_over_N, steps[keep], ratio[keep], shading="nearest",
                      vmin=0, vmax=1, cmap="viridis")
ax0.set(yscale="log", xlabel="M / N", ylabel="training step",
        title="memorization ratio along training")
fig.colorbar(mesh, ax=ax0, label="memorization ratio")
ok = keep & np.isfinite(pt[:, 0])
ax1.fill_between(steps[ok], pt[ok, 1], pt[ok, 2], color="C1", alpha=0.25, label="95% interval")
ax1.plot(steps[ok], pt[ok, 0], "o-", color="C1", label="M_pt / N (whole-curve fit)")
ax1.set(xscale="log", xlabel="training step", ylabel="M_pt / N",
        title="the transition along training")
ax1.legend()

# %%
# The learned variance tells the same story per size: each small model's variance
# climbs from the initial 1e-6 towards the data's, while the model with :math:`M = N`
# stays near 0.
fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
variance = run.series("variance")                         # (E, sizes)
for j, M in enumerate(run.sizes):
    ax.loglog(steps[keep], variance[keep, j], color=plt.cm.viridis(j / (len(run.sizes) - 1)),
              label=f"M = {M}")
ax.set(xlabel="training step", ylabel="learned variance")
ax.legend(fontsize=7, ncol=2)

# %%
shutil.rmtree(workdir)
