"""Phase-transition detection on a measured memorization curve (SPEC 9).

M_pt is where the memorization ratio crosses 1/2; start and end are its crossings of
0.1 and 0.9. The documented rule, for sizes M_1 < ... < M_J and ratios r_j:

- the crossing of a level is the linear interpolation between the first pair
  (j-1, j) with r_{j-1} < level <= r_j (the first upward crossing);
- a curve that never reaches the level, or already sits at or above it at the smallest
  size, has no crossing (``None``, status "never crosses" / "above at smallest M"):
  nothing is extrapolated;
- a curve that falls back below the level after the first crossing and rises again is
  reported with its first crossing and status "multiple crossings";
- the uncertainty of a crossing is the interval between the crossings of the upper
  and the lower 95% (Wilson) bound curves of the ratio (the upper bound crosses
  first); an end that does not exist is ``None``.
"""
import numpy as np

from .backend import to_host

LEVELS = {"M_pt": 0.5, "start": 0.1, "end": 0.9}


def crossing(M, ratio, level):
    """(M at the first upward crossing of ``level`` or None, status string).

    M : (J,) increasing sizes; ratio : (J,) values in [0, 1]; host or device arrays or
    lists (a summary for the host: device curves are copied to the host once).
    """
    M = to_host(M).astype(np.float64)
    r = to_host(ratio).astype(np.float64)
    if M.ndim != 1 or M.shape != r.shape or M.size == 0:
        raise ValueError(f"M and ratio must be (J,) arrays of equal length; got {M.shape} and {r.shape}")
    if np.any(np.diff(M) <= 0):
        raise ValueError("model sizes M must be strictly increasing")
    if r[0] >= level:
        return None, "above at smallest M"
    up = np.nonzero((r[:-1] < level) & (r[1:] >= level))[0]
    if up.size == 0:
        return None, "never crosses"
    j = up[0] + 1
    f = (level - r[j - 1]) / (r[j] - r[j - 1])
    value = float(M[j - 1] + f * (M[j] - M[j - 1]))
    return value, ("multiple crossings" if up.size > 1 else "ok")


def detect(M, ratio, lower=None, upper=None):
    """Transition summary of one memorization curve.

    M : (J,) sizes;  ratio : (J,);  lower, upper : (J,) bounds of the ratio's interval
    (optional). Returns a dict: for each of ``M_pt``, ``start``, ``end`` the crossing
    (or None), its interval ``[lo, hi]`` from the bound curves (entries may be None),
    and an overall ``status`` (the status of the 1/2 crossing).
    """
    out = {}
    for name, level in LEVELS.items():
        value, status = crossing(M, ratio, level)
        interval = [None, None]
        if upper is not None and lower is not None:
            interval = [crossing(M, upper, level)[0], crossing(M, lower, level)[0]]
        out[name] = {"value": value, "interval": interval, "status": status}
    out["status"] = out["M_pt"]["status"]
    return out
