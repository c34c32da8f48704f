"""Whole curves over the model size (issue 14): the fast paths against the per-M
functions they replace.

Tolerances:
- "nearest": 1e-10 relative. The per-M reference sums direct differences; the curve
  uses |x|^2 + |y|^2 - 2 x.y of centred data, which loses about
  eps |x - mean|^2 / |x_i - x_j|^2 relative accuracy: <= 1e-12 for the data below
  (the tightest, s* = 1e-3 at d = 50, gives ~2e-13). Exact duplicates make true zeros,
  which the Gram form meets only to a few eps |x - mean|^2 (the absolute tolerance).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from gmmdiff.data import make_dataset, memorization_order, memorized_subset
from gmmdiff.theory import _nearest_excess_curve_per_m, nearest_excess, nearest_excess_curve


def test_memorized_subsets_are_nested_prefixes_of_one_order():
    order = memorization_order(40, 7)
    assert np.array_equal(np.sort(order), np.arange(40))
    previous = np.array([], dtype=np.int64)
    for M in range(1, 41):
        subset = memorized_subset(40, M, 7)
        assert np.array_equal(subset, np.sort(order[:M]))
        assert np.all(np.isin(previous, subset))
        previous = subset


DATA = {
    "normal": lambda: np.random.default_rng(0).standard_normal((120, 7)),
    "mixture": lambda: make_dataset(20, 4, 300, seed=1).X,
    "tight clusters": lambda: make_dataset(50, 12, 200, var=1e-3, seed=2).X,
    "far from the origin": lambda: make_dataset(5, 1, 150, seed=3).X + 100.0,
    "duplicates": lambda: np.repeat(np.random.default_rng(4).standard_normal((40, 3)), 2, axis=0),
}


@pytest.mark.parametrize("name", DATA)
@pytest.mark.parametrize("block_rows", [None, 7])
def test_nearest_curve_equals_per_subset_function(name, block_rows):
    X = DATA[name]()
    N = X.shape[0]
    order = memorization_order(N, 5)
    kw = {} if block_rows is None else {"block_bytes": 8 * N * block_rows}
    curve = nearest_excess_curve(X, order, **kw)
    want = _nearest_excess_curve_per_m(X, order, np.arange(1, N + 1))
    assert curve.shape == (N,) and curve.dtype == np.float64
    # where the true value is 0 (every point's duplicate memorized), the rounding of one
    # Gram-form distance, a few eps |x - mean|^2, is all that is left
    atol = 8 * np.finfo(np.float64).eps * np.max(np.sum((X - X.mean(axis=0)) ** 2, axis=1))
    np.testing.assert_allclose(curve, want, rtol=1e-10, atol=atol)
    assert curve[-1] == 0.0 == want[-1]
    assert np.all(np.diff(curve) <= 0), "nested subsets: the curve cannot increase"


@given(N=st.integers(1, 30), d=st.integers(1, 5), seed=st.integers(0, 2 ** 16),
       block_rows=st.integers(1, 40))
def test_nearest_curve_any_shape_and_block(N, d, seed, block_rows):
    X = np.random.default_rng(seed).standard_normal((N, d))
    order = np.random.default_rng(seed + 1).permutation(N)
    curve = nearest_excess_curve(X, order, block_bytes=8 * N * block_rows)
    want = _nearest_excess_curve_per_m(X, order, np.arange(1, N + 1))
    np.testing.assert_allclose(curve, want, rtol=1e-10, atol=0)


def test_nearest_curve_at_given_sizes():
    X = make_dataset(10, 3, 90, seed=0).X
    order = memorization_order(90, 0)
    full = nearest_excess_curve(X, order)
    sizes = np.array([50, 3, 90, 1, 17])
    np.testing.assert_array_equal(nearest_excess_curve(X, order, sizes), full[sizes - 1])
    # the memorized subset of the training code is the same subset
    assert full[29] == pytest.approx(nearest_excess(X, memorized_subset(90, 30, 0)), rel=1e-10)


@pytest.mark.parametrize("call, match", [
    (lambda: nearest_excess_curve(np.zeros((4, 2)), [0, 1, 2, 2]), "permutation of 0..3"),
    (lambda: nearest_excess_curve(np.zeros(4), [0, 1, 2, 3]), r"\(N, d\)"),
    (lambda: nearest_excess_curve(np.zeros((4, 2)), [0, 1, 2, 3], [0, 2]), r"integers in \[1, N = 4\]"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
