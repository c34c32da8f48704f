r"""
Loading runs and sweeps for your own analysis
=============================================

Everything a run or a sweep writes loads back in Python: :func:`gmmdiff.load_run`
gives a run's metrics as arrays over the model sizes and reads each size's arrays
(learned means and variance, generated samples) from disk only when asked for;
:func:`gmmdiff.load_sweep` gives one row per configuration with its measured
transition. From there, any analysis is NumPy and Matplotlib.

Here: a small sweep (two seeds of one setting), then the memorization ratio
recomputed from the generated samples -- to check the package's rule against your own
code -- and a measure the package does not plot: how far each model's learned means
sit from the nearest training point.
"""

# %%
# A sweep to analyse
# ------------------
#
# Small and fast (3,000 steps at d = 4, N = 12): the sweep of the getting-started page.
# The files land in a temporary directory.
import shutil
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import gmmdiff

workdir = tempfile.mkdtemp(prefix="gmmdiff-gallery-")
base = gmmdiff.TrainConfig(steps=3000, noise_draws=4, target="x0", lr_peak=1e-2,
                           eval_samples=100)
spec = gmmdiff.SweepSpec(samples=(12,), dims=(4,), components=(2,), seeds=(0, 1),
                         base=base, coarse=4, refine=4)
gmmdiff.run_sweep(spec, f"{workdir}/sweep", np, echo=lambda line: None)

sweep = gmmdiff.load_sweep(f"{workdir}/sweep")
print(sweep)
print("M_pt/N per configuration:", np.round(sweep.column("M_pt_over_N"), 3))

# %%
# The memorization ratio, recomputed
# ----------------------------------
#
# A generated sample counts as memorized when the distance to its nearest training
# point is below 1/3 of the distance to the second nearest. The training set is
# regenerated from the configuration's seed (:func:`gmmdiff.make_dataset` draws the
# data training drew), and the generated samples of each size are in its arrays.


def memorized_fraction(samples, X):
    """Fraction of samples (n, d) nearer to a point of X (N, d) than 1/3 of the
    distance to the second nearest."""
    dist = np.linalg.norm(samples[:, None, :] - X[None, :, :], axis=-1)   # (n, N)
    nearest = np.sort(dist, axis=1)[:, :2]                                 # (n, 2)
    return float(np.mean(nearest[:, 0] < nearest[:, 1] / 3))


own = {}
for row in sweep.rows:
    run = sweep.run(row["name"])
    X = gmmdiff.make_dataset(d=row["d"], K=row["K"], N=row["N"], seed=row["seed"]).X
    own[row["name"]] = np.array([memorized_fraction(run.arrays(M)["generated"], X)
                                 for M in run.sizes])
    same = np.allclose(own[row["name"]], run.ratio)
    print(f"{row['name']}: {len(run.sizes)} sizes; recomputed ratios equal the stored "
          f"ones: {same}")

# %%
# Where the learned means sit
# ---------------------------
#
# For every model size, the median distance from a learned mean to its nearest
# training point: a memorizing model's means sit on the training points (distance
# near 0); a generalizing model's sit between them.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
for k, row in enumerate(sweep.rows):
    run = sweep.run(row["name"])
    X = gmmdiff.make_dataset(d=row["d"], K=row["K"], N=row["N"], seed=row["seed"]).X
    median_dist = []
    for M in run.sizes:
        means = run.arrays(M)["means"]                                     # (M, d)
        dist = np.linalg.norm(means[:, None, :] - X[None, :, :], axis=-1)  # (M, N)
        median_dist.append(np.median(dist.min(axis=1)))
    ax1.plot(run.M_over_N, own[row["name"]], "o-", color=f"C{k}", label=row["name"])
    ax1.axvline(row["M_pt_over_N"], color=f"C{k}", ls=":", lw=1)
    ax2.semilogy(run.M_over_N, median_dist, "s-", color=f"C{k}", label=row["name"])
ax1.set(xlabel="M / N", ylabel="memorization ratio (recomputed)",
        title="dotted: each configuration's M_pt / N")
ax2.set(xlabel="M / N", ylabel="median distance, learned mean to nearest training point")
ax1.legend(fontsize=8)

# %%
shutil.rmtree(workdir)
