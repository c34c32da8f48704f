"""Has a model finished training? The convergence check of a time series.

A run evaluates each model along training (``along_training`` in its metrics: the
memorization ratio with its 95% Wilson interval and the learned variance at the steps of
``eval_steps``). From the series, each model size gets a status:

``"moving"``
    between the last two evaluation points -- the step at 90% of training, which every
    run evaluates, and the last step -- the model still changes by more than the
    measurement resolves: the Wilson intervals of the two ratios do not overlap, or the
    variance changes by more than :data:`VARIANCE_RTOL` of itself while it is at least
    :data:`VARIANCE_FLOOR` times the data variance s* (a variance below that is "zero"
    on the data's scale), a memorized model's shrinking variance aside (ratio >= 0.99 at
    both points: its variance goes towards 0 for as long as it trains);
``"at init"``
    the last evaluation equals the first (step 0, the initialization) by the same
    tolerances, and the means sit where they sat (the same counts near a true mean and
    near a training point): training never left the starting point. A pmem start at
    M = N that stays memorized is "at init" too -- truthfully: it ends where it began;
``"converged"``
    neither;
``"unknown"``
    fewer than two evaluation points (``--eval-steps none``).

The ratio's intervals come from ``eval_samples`` generated samples drawn from the same
starting points at every step (common random numbers), so their overlap is a
conservative test of change.

Why the last 10% of training, measured on the built-in configuration (``gmmdiff-train``,
50,000 steps): its sizes below the transition leave the memorizing start only after
about 8,000 steps and are still moving at 27,000 (half-way on a log scale), but between
45,000 and 50,000 none changes (ratios within 0.02, variances within 1%), and a run of
200,000 steps ends at the same table (ratios within 0.04, each inside the other's
interval): they have converged. A run of 20,000 steps is caught: its variances still
grow by 24-35% in the last 2,000 steps (0.0085 at M = 2, where the converged model's is
0.83).
"""
import numpy as np

VARIANCE_RTOL = 0.05        # relative change of the variance that counts as moving
VARIANCE_FLOOR = 1e-3       # variances below this times s* count as 0 (memorizing)
STATUSES = ("converged", "moving", "at init", "unknown")


def _ratio_changed(s, a, b):
    """Whether the ratio's Wilson intervals at points a and b are disjoint."""
    return s["ratio_hi"][a] < s["ratio_lo"][b] or s["ratio_hi"][b] < s["ratio_lo"][a]


def _variance_changed(s, a, b, data_var):
    """Whether the variance changed between points a < b by more than the tolerances,
    a memorizing model's shrinking variance aside (ratio >= 0.99 at both points: its
    variance goes towards 0 for as long as it trains, and no measured ratio moves)."""
    va, vb = float(s["variance"][a]), float(s["variance"][b])
    big = max(va, vb)
    if vb < va and min(s["ratio"][a], s["ratio"][b]) >= 0.99:
        return False
    return big >= VARIANCE_FLOOR * data_var and abs(va - vb) > VARIANCE_RTOL * big


def status(series, data_var):
    """(status, reason) of one model's series along training.

    series : dict with "steps" (E,) and per-step lists "ratio", "ratio_lo", "ratio_hi",
        "variance" and, where the family records them, "near_true_mean" and
        "near_sample"; data_var : the data variance s*.
    reason : one line of what was compared ("" when converged)."""
    steps = list(series.get("steps", []))
    if len(steps) < 2:
        return "unknown", "fewer than two evaluation points"
    a, b = len(steps) - 2, len(steps) - 1
    moved = []
    if _ratio_changed(series, a, b):
        moved.append(f"ratio {series['ratio'][a]:.2f} -> {series['ratio'][b]:.2f}")
    if _variance_changed(series, a, b, data_var):
        moved.append(f"variance {series['variance'][a]:.3g} -> {series['variance'][b]:.3g}")
    if moved:
        return "moving", f"between steps {steps[a]} and {steps[b]}: " + ", ".join(moved)
    if steps[0] == 0:
        same_means = all(series[k][0] == series[k][b] for k in ("near_true_mean", "near_sample")
                         if k in series)
        if (not _ratio_changed(series, 0, b) and not _variance_changed(series, 0, b, data_var)
                and same_means):
            return "at init", (f"step {steps[b]} as at step 0: ratio {series['ratio'][b]:.2f}, "
                               f"variance {series['variance'][b]:.3g}")
    return "converged", ""


def run_verdict(statuses, sizes):
    """One line on a run's (or a configuration's) convergence from its sizes' statuses,
    or "" when there is nothing to say: which sizes are still moving, or that no size
    left its initialization."""
    moving = [M for M, s in zip(sizes, statuses) if s == "moving"]
    if moving:
        return (f"not converged: M = {', '.join(map(str, moving))} still moving at the last "
                "evaluation points; train longer (--steps)")
    if statuses and all(s == "at init" for s in statuses):
        return ("training never left the initialization: every size ends as it started; "
                "train longer (--steps) or start elsewhere (--init prior)")
    return ""


def configuration_status(statuses):
    """The status a sweep configuration takes from its sizes' convergence, or None when
    its transition can be read: "not converged" when a size is still moving, "at init"
    when no size left its initialization."""
    if any(s == "moving" for s in statuses):
        return "not converged"
    if statuses and all(s == "at init" for s in statuses):
        return "at init"
    return None


def series_arrays(rows, name):
    """(steps (E,), values (E, J)) of metric ``name`` along training over the sizes of
    ``rows`` (per-size metric dicts in increasing M, all with the same steps)."""
    series = [r["along_training"] for r in rows]
    steps = np.asarray(series[0]["steps"], dtype=np.int64)
    for s in series[1:]:
        if list(s["steps"]) != list(steps):
            raise ValueError("the sizes' series along training have different steps")
    return steps, np.array([s[name] for s in series], dtype=np.float64).T
