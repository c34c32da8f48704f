"""The model sizes of a run: :func:`parse_model_sizes` reads them (``--model-sizes``),
:func:`check_sizes` checks them against the initialization, and
:func:`check_batchable` says which configurations may train together in one array
program (their sizes packed side by side).
"""
import dataclasses

import numpy as np

from gmmdiff.model.data import check_positive_int
from gmmdiff.training.config import split_items

MAX_SIZES = 10_000          # model sizes per run


def parse_model_sizes(spec, N):
    """Model sizes from ``"20,40,200"`` (explicit) or ``"0.1:1.0:0.1"`` (fractions of N,
    start:stop:step inclusive, rounded to the nearest integer).

    Sizes above N are accepted here; :func:`gmmdiff.run` takes them up to 2N with the
    pmem init (all N training points, then repeats) and any size with the prior or
    gaussian init.

    Parameters
    ----------
    spec : str
        The sizes, as ``gmmdiff-train --model-sizes`` takes them.
    N : int
        The training-set size the fractions refer to.

    Returns
    -------
    list of int
        Sorted, distinct sizes >= 1.

    Examples
    --------
    >>> import gmmdiff
    >>> gmmdiff.parse_model_sizes("0.1:1.0:0.1", 20)
    [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    """
    spec = str(spec).strip()
    try:
        if ":" in spec:
            parts = [float(p) for p in spec.split(":")]
            if (len(parts) != 3 or not all(np.isfinite(parts)) or parts[2] <= 0
                    or parts[0] <= 0 or parts[1] < parts[0]):
                raise ValueError
            count = np.floor((parts[1] - parts[0]) / parts[2] + 1e-9) + 1
            if count > MAX_SIZES:
                raise ValueError(f"model sizes {spec!r} give {count:.3g} sizes; at most "
                                 f"{MAX_SIZES} per run")
            sizes = [int(round(N * (parts[0] + k * parts[2]))) for k in range(int(count))]
        else:
            sizes = [int(p) for p in split_items(spec, "model sizes (--model-sizes)")]
    except ValueError as exc:
        if "at most" in str(exc) or "empty" in str(exc):
            raise
        raise ValueError(f"model sizes {spec!r} not understood; accepted: a list such as "
                         "'20,40,200' or fractions of N as 'start:stop:step' such as "
                         "'0.1:1.0:0.1'") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"model sizes {spec!r} must all be integers >= 1")
    sizes = sorted(set(sizes))
    if len(sizes) > MAX_SIZES:
        raise ValueError(f"model sizes {spec!r} give {len(sizes)} sizes; at most {MAX_SIZES} per run")
    return sizes


def check_sizes(sizes, N, init):
    """Raise ValueError for a size the init cannot provide (prior/gaussian: any M)."""
    for M in sizes:
        check_positive_int("model size", M)
    if init == "pmem":
        # pmem repeats training points beyond N (SPEC 8), which only makes sense up to 2N
        big = [M for M in sizes if M > 2 * N]
        if big:
            raise ValueError(f"model size M = {big[0]} is above 2N = {2 * N}: init 'pmem' "
                             "takes training points (all N, then repeats); use init 'prior' "
                             "or 'gaussian' for larger models")


BATCH_FREE = ("seed", "components")


def check_batchable(cfgs):
    """Configurations can train in one array program when they differ only in seed and
    K (N, d and every optimization setting shared). Raises ValueError otherwise."""
    first = dataclasses.asdict(cfgs[0])
    for c in cfgs[1:]:
        diff = [k for k, v in dataclasses.asdict(c).items() if k not in BATCH_FREE and v != first[k]]
        if diff:
            raise ValueError(f"configurations differ in {', '.join(diff)}; one batch may differ "
                             f"only in {', '.join(BATCH_FREE)}")
