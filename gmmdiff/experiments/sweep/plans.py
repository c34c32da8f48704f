"""The model sizes a sweep trains per configuration (SPEC 9): the coarse grid and the
refinement around the transition, recorded in each configuration's ``plan.json``.

1. the coarse grid M = N/points, 2N/points, ..., N (:func:`coarse_sizes`);
2. the refinement: sizes strictly between the coarse start (last size below 0.1) and
   end (first size at or above 0.9), chosen from the coarse curve alone
   (:func:`refine_sizes`): a function of the coarse results, so a recorded refinement
   that is not that function's value is refused (:func:`check_refine`).
"""
import os

import numpy as np

from gmmdiff.io.files import StorageError
from gmmdiff.io.schemas import read_checked


def coarse_sizes(N, points):
    """The first sizes of a configuration of N samples: for an integer ``points``,
    M = N/points, 2N/points, ..., N; for a tuple of ratios r (a sweep's
    ``size_ratios``), M = r N; rounded, distinct and >= 1."""
    if isinstance(points, (tuple, list)):
        return sorted({max(1, int(round(N * r))) for r in points})
    return sorted({max(1, int(round(N * k / points))) for k in range(1, points + 1)})


def refine_sizes(M, ratio, N, points):
    """Up to ``points`` new sizes around the transition of a coarse curve (SPEC 9).

    M : (J,) increasing coarse sizes;  ratio : (J,) their memorization ratios.
    Whenever the coarse grid brackets an upward crossing of 1/2 (``r[j-1] < 1/2 <=
    r[j]``, the first one, as :func:`gmmdiff.analysis.transition.crossing` takes it), the new
    sizes lie strictly between the coarse start and end: the last size below 0.1
    before the crossing and the first size at or above 0.9 after it; where the coarse
    grid has no start or no end (nothing below 0.1, or nothing at or above 0.9),
    between the sizes that bracket the crossing, ``M[j-1]`` and ``M[j]``. The sizes are integers of that open range that are not
    coarse sizes, spread evenly over them: ``points`` of them, or all when the range
    holds fewer. Without a bracketed crossing (or with ``points`` 0) nothing is added.
    """
    M = [int(m) for m in M]
    r = np.asarray(ratio, dtype=np.float64)                                  # (J,)
    up = np.nonzero((r[:-1] < 0.5) & (r[1:] >= 0.5))[0]
    if points == 0 or up.size == 0:
        return []
    j = int(up[0]) + 1                                   # r[j - 1] < 1/2 <= r[j]
    below = [i for i in range(j) if r[i] < 0.1]
    above = [i for i in range(j, len(M)) if r[i] >= 0.9]
    lo, hi = (M[below[-1]], M[above[0]]) if below and above else (M[j - 1], M[j])
    coarse = set(M)
    free = [m for m in range(lo + 1, hi) if m not in coarse]
    if len(free) <= points:
        return free
    step = (len(free) + 1) / (points + 1)                # > 1: distinct picks
    return [free[int(round((k + 1) * step)) - 1] for k in range(points)]


PLAN_FILE = "plan.json"


def read_plan(run_dir, cfg, coarse):
    """The plan of sizes recorded in ``run_dir/plan.json`` (None without one): a dict
    with "coarse" (the coarse sizes, which must be the sweep's) and, once the coarse
    phase is done, "refine" (the refinement sizes). A damaged or foreign plan raises
    StorageError naming the file."""
    path = os.path.join(run_dir, PLAN_FILE)
    if not os.path.exists(path):
        return None
    plan = read_checked(path, {"coarse": ("+", "int>=1"), "refine?": ["int>=1"]},
                        advice="remove the configuration's directory to retrain it")
    expected = coarse_sizes(cfg.samples, coarse)
    if plan["coarse"] != expected:
        raise StorageError(f"{path} records coarse sizes {plan['coarse']!r}, the sweep's are "
                           f"{expected}; remove the configuration's directory to retrain it")
    refine = plan.get("refine", [])
    if (set(plan) - {"coarse", "refine"} or not isinstance(refine, list)
            or not all(type(m) is int and 1 <= m <= 2 * cfg.samples for m in refine)
            or len(set(refine)) != len(refine) or set(refine) & set(expected)):
        raise StorageError(f"{path} is not a gmmdiff plan (expected \"coarse\" and "
                           "\"refine\": distinct model sizes); remove the configuration's "
                           "directory to retrain it")
    return plan


def check_refine(run_dir, plan, M, ratio, N, points):
    """The refinement sizes of the coarse results ``M`` (J,), ``ratio`` (J,) of a
    configuration with N samples (:func:`refine_sizes` with ``points``), checked against
    the ``plan`` recorded in ``run_dir/plan.json``: a recorded "refine" that differs (a
    hand-edited plan, which would change the measured transition) raises StorageError
    naming the file. Returns the sizes."""
    derived = refine_sizes(M, ratio, N, points)
    if "refine" in plan and plan["refine"] != derived:
        raise StorageError(f"{os.path.join(run_dir, PLAN_FILE)} records the refinement sizes "
                           f"{plan['refine']}, but the configuration's coarse results give "
                           f"{derived} (refine_sizes of the coarse curve); remove the "
                           "configuration's directory to retrain it")
    return derived
