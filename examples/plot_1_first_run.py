r"""
A first run: memorization against model size
============================================

One data set -- :math:`N = 16` samples of a two-cluster Gaussian mixture in
:math:`d = 8` dimensions -- and Gaussian-mixture denoisers of every even size
:math:`M = 2, 4, \dots, 16`, all trained together in one array program. Small models
generalize: their means sit near the two true cluster means and their variance near
the data's :math:`s^* = 1`. The model with one component per training sample
memorizes: its means stay on the training points and its variance goes to 0.

The same run from the command line::

    gmmdiff-train -d 8 -K 2 -N 16 -M 2,4,6,8,10,12,14,16 --steps 8000 --target x0 \
        --lr 5e-3 --eval-samples 200 --out runs/first
    gmmdiff-plot runs/first
"""

# %%
# Train
# -----
#
# Every setting of ``gmmdiff-train`` is a field of :class:`gmmdiff.TrainConfig`; these
# are the quick preset's (x0 target, peak learning rate 5e-3, 8,000 steps), which
# converge in seconds. :func:`gmmdiff.run` trains every size not yet in the run
# directory and returns one metrics dict per size; here the directory is temporary.
import shutil
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import gmmdiff

workdir = tempfile.mkdtemp(prefix="gmmdiff-gallery-")
cfg = gmmdiff.TrainConfig(dim=8, components=2, samples=16, steps=8000, target="x0",
                          lr_peak=5e-3, eval_samples=200)
gmmdiff.run(cfg, list(range(2, 17, 2)), f"{workdir}/first", np)   # np: the CPU backend

# %%
# Read the results
# ----------------
#
# :func:`gmmdiff.load_run` gives the metrics as arrays over the sizes. The
# *memorization ratio* is the fraction of 200 generated samples that sit on a training
# point (nearer to it than a third of the distance to the second nearest), with its
# 95% Wilson interval; the *status* says whether the model had stopped changing over
# the last 10% of training.
run = gmmdiff.load_run(f"{workdir}/first")
print(run)
print("   M   M/N  ratio  95% interval   variance  status")
for M, x, r, (lo, hi), v, s in zip(run.M, run.M_over_N, run.ratio, run.interval,
                                   run.learned_variance, run.status):
    print(f"{M:4d}  {x:.3f}  {r:.3f}  [{lo:.2f}, {hi:.2f}]  {v:9.3g}  {s}")

# %%
# The paper's figure 2
# --------------------
#
# The memorization ratio rises from 0 to 1 as :math:`M/N` grows, crossing 1/2 near
# :math:`M/N \approx 0.8`, while the learned variance falls from near :math:`s^*`
# towards 0. (``gmmdiff-plot`` draws this figure, and four more, from a run directory.)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
err = np.abs(run.interval - run.ratio[:, None]).T          # (2, sizes): Wilson bars
ax1.errorbar(run.M_over_N, run.ratio, yerr=err, fmt="o-", capsize=3)
ax1.axhline(0.5, color="gray", lw=0.8, ls=":")
ax1.set(xlabel="M / N", ylabel="memorization ratio", ylim=(-0.03, 1.03))
ax2.semilogy(run.M_over_N, run.learned_variance, "s-", color="C1")
ax2.axhline(cfg.data_var, color="gray", lw=0.8, ls="--", label="data variance s*")
ax2.set(xlabel="M / N", ylabel="learned variance")
ax2.legend()
fig.suptitle(f"d = {cfg.dim}, K = {cfg.components}, N = {cfg.samples}: "
             f"{cfg.steps:,} steps, {cfg.target} target")

# %%
# Where the means went
# --------------------
#
# The learned parameters of each size are read from disk when asked for
# (:meth:`gmmdiff.RunResults.arrays`). The training set is regenerated from the seed
# (:func:`gmmdiff.make_dataset` draws the same data that training drew). Projected on
# the plane of the data's two leading principal directions, the means of a small model
# sit between the clusters' training points, near the true means; those of the model
# with :math:`M = N` sit on the training points themselves.
ds = gmmdiff.make_dataset(d=cfg.dim, K=cfg.components, N=cfg.samples, seed=cfg.seed)
center = ds.X.mean(0)
_, _, vt = np.linalg.svd(ds.X - center, full_matrices=False)
plane = vt[:2].T                                          # (d, 2): the projection


def project(points):
    return (points - center) @ plane                      # (n, 2)


fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True, layout="constrained")
for ax, M in zip(axes, (2, 16)):
    means = run.arrays(M)["means"]                        # (M, d)
    ax.scatter(*project(ds.X).T, c=ds.labels, cmap="coolwarm", s=30, label="training points")
    ax.scatter(*project(ds.mixture.means).T, marker="*", s=250, color="k", label="true means")
    ax.scatter(*project(means).T, marker="x", s=70, color="C2", label=f"learned means (M = {M})")
    ax.set_title(f"M = {M}: memorization ratio {run[M]['memorization']['ratio']:.2f}, "
                 f"variance {run[M]['learned_variance']:.2g}", fontsize=9)
    ax.set_xlabel("first principal direction")
axes[0].set_ylabel("second principal direction")
axes[0].legend(fontsize=8, loc="best")

# %%
# The temporary directory goes; a run kept on disk resumes instead (re-running the same
# command trains only the sizes it lacks).
shutil.rmtree(workdir)
