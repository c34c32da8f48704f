"""Whole curves over the model size and the crossover search (issue 14): the fast paths
against the per-M functions they replace.

Tolerances:
- "nearest": 1e-10 relative. The per-M reference sums direct differences; the curve
  uses |x|^2 + |y|^2 - 2 x.y of centred data, which loses about
  eps |x - mean|^2 / |x_i - x_j|^2 relative accuracy: <= 1e-12 for the data below
  (the tightest, s* = 1e-3 at d = 50, gives ~2e-13). Exact duplicates make true zeros,
  which the Gram form meets only to a few eps |x - mean|^2 (the absolute tolerance).
- "expected": 1e-10 relative where the per-M reference is accurate (d >= 8). Both use
  the same Gauss-Legendre nodes in lam, so they differ by their u-quadratures alone:
  the reference's fixed 3000-point grid is within ~1e-11 of itself with 30000 points on
  these cases, the new log-spaced grid within ~1e-14 of itself with 4x the points. At
  d <= 2 and large M the reference is wrong (its grid step exceeds the minimum), so
  there the new curve is checked against simulation instead.
- the crossover search: exactly equal (==) to the full integer grid, since each size's
  Delta is computed by the same row-wise arithmetic whatever sizes come with it.
"""
import dataclasses
import importlib.machinery
import importlib.util
import os

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

from gmmdiff.model.data import make_dataset, memorization_order, memorized_subset
from gmmdiff.analysis.predict import approximation_curves, predicted_ratio, predicted_ratios
from gmmdiff.model.process import loss_scale, time_grid
from gmmdiff.theory.approximations import excess_curve, generalizing_excess_loss, predict_transition
from gmmdiff.theory.crossover import crossover, crossover_search, size_grid
from gmmdiff.theory.expected import _expected_nearest_excess_per_m, expected_excess_curve
from gmmdiff.theory.nearest import _nearest_excess_curve_per_m, nearest_excess, nearest_excess_curve
from gmmdiff.training.config import TrainConfig

GRID = time_grid()


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
    # the Gram form's relative error is about eps |x - mean|^2 / (nearest squared
    # distance); tiny shapes draw close pairs (d = 1, N = 14: 9e-10), so the bound is
    # derived from the data, and 1e-10 is what it gives on ordinary data
    Y = X - X.mean(axis=0)
    D = np.sum((X[:, None] - X[None]) ** 2, axis=-1)[~np.eye(N, dtype=bool)]
    bound = 16 * np.finfo(np.float64).eps * np.max(np.sum(Y * Y, axis=1)) / D.min() if N > 1 else 0
    np.testing.assert_allclose(curve, want, rtol=max(1e-10, bound), atol=0)


def test_nearest_curve_at_given_sizes():
    X = make_dataset(10, 3, 90, seed=0).X
    order = memorization_order(90, 0)
    full = nearest_excess_curve(X, order)
    sizes = np.array([50, 3, 90, 1, 17])
    np.testing.assert_array_equal(nearest_excess_curve(X, order, sizes), full[sizes - 1])
    # the memorized subset of the training code is the same subset
    assert full[29] == pytest.approx(nearest_excess(X, memorized_subset(90, 30, 0)), rel=1e-10)


EXPECTED_CASES = [(8, 2, 60), (30, 3, 60), (50, 12, 200), (50, 1, 200), (10, 5, 300)]


@pytest.mark.parametrize("d, K, N", EXPECTED_CASES)
def test_expected_curve_equals_per_m_function(d, K, N):
    sizes = np.unique(np.round(np.geomspace(1, N, 12)).astype(int))
    got = expected_excess_curve(d, 1.0, sizes, N, K)
    want = np.array([_expected_nearest_excess_per_m(d, 1.0, M, N, K) for M in sizes])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)
    assert got[-1] == 0.0


@pytest.mark.parametrize("d, K", [(1, 1), (2, 3), (8, 2), (200, 20)])
def test_expected_quadrature_is_converged(d, K):
    """Doubling and quadrupling the u-grid changes nothing beyond rounding, also for
    large M and small d (where the minimum of M points sits deep in the lower tail)."""
    N = 5000
    sizes = np.array([1, 10, 100, 1000, 4999])
    base = expected_excess_curve(d, 1.0, sizes, N, K)
    for n_grid in (1000, 2000):
        np.testing.assert_allclose(expected_excess_curve(d, 1.0, sizes, N, K, n_grid=n_grid),
                                   base, rtol=1e-12, atol=0)


def test_expected_curve_at_small_d_agrees_with_simulation():
    """d = 1, K = 1: the expectation is exact (no other clusters), and the minimum of M
    points lies within one step of the per-M reference's fixed grid (it is 2.5x and 11x
    too large at M = 100 and 300); the log-spaced grid resolves it."""
    d, K, N, sizes = 1, 1, 400, np.array([100, 300])
    vals = np.array([nearest_excess_curve(make_dataset(d, K, N, seed=s).X,
                                          memorization_order(N, s), sizes) for s in range(600)])
    sim, se = vals.mean(axis=0), vals.std(axis=0) / np.sqrt(len(vals))
    approx = expected_excess_curve(d, 1.0, sizes, N, K)
    assert np.all(np.abs(approx - sim) < 4 * se), (approx, sim, se)


def test_expected_curve_is_decreasing_and_independent_of_batching():
    N = 500
    sizes = np.arange(1, N + 1)
    curve = expected_excess_curve(40, 1.0, sizes, N, 8)
    assert np.all(np.diff(curve) < 0)
    picked = np.array([400, 7, 123])
    assert np.array_equal(expected_excess_curve(40, 1.0, picked, N, 8), curve[picked - 1])


@given(steps=st.lists(st.floats(0.0, 10.0), min_size=2, max_size=400),
       start=st.floats(-1e3, 1e3), n_coarse=st.integers(3, 70))
def test_search_equals_full_grid_for_any_monotone_delta(steps, start, n_coarse):
    delta = start + np.cumsum(steps)                                     # (N,) nondecreasing
    N = delta.size
    gen = np.zeros(1)

    def pmem_at(sizes):
        return -delta[sizes - 1, None]

    want, _ = crossover(np.arange(1, N + 1), gen, pmem_at(np.arange(1, N + 1)), np.ones(1))
    got, sizes, values = crossover_search(N, gen, pmem_at, np.ones(1), n_coarse=n_coarse)
    assert got == want or (np.isnan(got) and np.isnan(want))
    assert np.array_equal(values, delta[sizes - 1])


def test_search_evaluates_few_sizes():
    N = 20000
    calls = []

    def pmem_at(sizes):
        calls.append(sizes.size)
        return (np.arange(1, N + 1)[sizes - 1, None] - 12345.5) * -1.0

    M_star, sizes, _ = crossover_search(N, np.zeros(1), pmem_at, np.ones(1))
    assert M_star == pytest.approx(12345.5)
    assert sizes.size <= 3 * 64 and len(calls) <= 4


@pytest.mark.parametrize("method", ["expected", "nearest"])
def test_predict_transition_equals_full_grid(method):
    N, d, K = 120, 20, 3
    X = make_dataset(d, K, N, seed=2).X
    w = np.random.default_rng(3).dirichlet(np.ones(GRID.size))
    M_star, ratio = predict_transition(N, d, K, times=GRID, weights=w, method=method,
                                       target="x0", X=X, seed=2)
    sizes = np.arange(1, N + 1)
    x0 = excess_curve(method, sizes, N, d, 1.0, K=K, X=X, seed=2)
    gen = generalizing_excess_loss(GRID, d, 1.0, target="x0")
    want, _ = crossover(sizes, gen, x0[:, None] * loss_scale(GRID, "vp", "x0")[None, :], w)
    assert M_star == want and ratio == want / N


def test_size_grid():
    assert np.array_equal(size_grid(7), np.arange(1, 8))
    assert np.array_equal(size_grid(2000), np.arange(1, 2001))
    g = size_grid(20000)
    assert g[0] == 1 and g[-1] == 20000 and np.all(np.diff(g) > 0) and g.size <= 2000
    assert np.diff(g).max() <= 4 * 20000 / (3 * 2000) + 1
    assert np.array_equal(g[:20], np.arange(1, 21))   # the geometric part is dense at small M


def _config(N, d, K, target="x0"):
    return dataclasses.asdict(TrainConfig(dim=d, components=K, samples=N, seed=0, target=target))


def _old_ratio(config, source, X, weights):
    """The predict path before issue 14: the per-M functions on every M = 1..N."""
    N, d, K = config["samples"], config["dim"], config["components"]
    w = loss_scale(GRID, config["process"], config["target"])
    gen = generalizing_excess_loss(GRID, d, 1.0, target=config["target"], process=config["process"])
    Ms = np.arange(1, N + 1)
    if source == "simple":
        x0 = d * (1.0 - Ms / N)
    elif source == "expected":
        x0 = np.array([_expected_nearest_excess_per_m(d, 1.0, M, N, K) for M in Ms])
    else:
        x0 = np.array([nearest_excess(X, memorized_subset(N, M, config["seed"])) for M in Ms])
    return predicted_ratio(Ms.astype(float), gen, x0[:, None] * w[None, :], weights, N, clamp=False)


@pytest.mark.parametrize("source", ["simple", "expected", "nearest"])
def test_search_equals_full_grid_and_the_per_m_path(source):
    N, d, K = 150, 30, 3
    config = _config(N, d, K)
    X = make_dataset(d, K, N, seed=0).X
    rng = np.random.default_rng(1)
    weightings = [np.full(GRID.size, 1.0 / GRID.size)] + [rng.dirichlet(np.full(GRID.size, 0.3))
                                                          for _ in range(4)]
    M, gen, pmem = approximation_curves(GRID, config, source, X=X)
    assert np.array_equal(M, np.arange(1, N + 1))
    fast = predicted_ratios(GRID, config, source, weightings, X=X)
    for w, (ratio, crossed) in zip(weightings, fast):
        full = predicted_ratio(M, gen, pmem, w, N, clamp=False)
        assert (ratio, crossed) == full or (np.isnan(ratio) and np.isnan(full[0]))
        old, old_crossed = _old_ratio(config, source, X, w)
        assert crossed == old_crossed
        if crossed:
            assert ratio == pytest.approx(old, rel=1e-9)


def test_curves_beyond_the_integer_grid_keep_the_crossover():
    """N > 2000: the documented grid interpolates over ~13 sizes; the crossover moves by
    much less than one model size against the exact search."""
    N, d, K = 2500, 30, 5
    config = _config(N, d, K)
    M, gen, pmem = approximation_curves(GRID, config, "expected", sizes=size_grid(N, max_sizes=200))
    w = np.full(GRID.size, 1.0 / GRID.size)
    coarse, _ = predicted_ratio(M, gen, pmem, w, N, clamp=False)
    (exact, _), = predicted_ratios(GRID, config, "expected", [w])
    assert abs(coarse - exact) * N < 1.0


def _predict_script():
    path = os.path.join(os.path.dirname(__file__), os.pardir, "bin", "gmmdiff-predict")
    loader = importlib.machinery.SourceFileLoader("gmmdiff_predict", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module.main


def test_cli_prints_the_per_m_results():
    N, d, K = 120, 20, 3
    result = CliRunner().invoke(_predict_script(),
                                ["-N", str(N), "-d", str(d), "-K", str(K), "--target", "x0"])
    assert result.exit_code == 0, result.output
    config = _config(N, d, K)
    X = make_dataset(d, K, N, seed=0).X
    for source in ("simple", "expected", "nearest"):
        ratio, crossed = _old_ratio(config, source, X, np.full(GRID.size, 1.0 / GRID.size))
        naive = [ln for ln in result.output.splitlines() if ln.startswith(source) and "naive" in ln]
        assert crossed and len(naive) == 1 and f"{ratio * N:>8.1f} {ratio:>6.3f}" in naive[0], naive


@pytest.mark.parametrize("call, match", [
    (lambda: nearest_excess_curve(np.zeros((4, 2)), [0, 1, 2, 2]), "permutation of 0..3"),
    (lambda: nearest_excess_curve(np.zeros(4), [0, 1, 2, 3]), r"\(N, d\)"),
    (lambda: nearest_excess_curve(np.zeros((4, 2)), [0, 1, 2, 3], [0, 2]), r"integers in \[1, N = 4\]"),
    (lambda: expected_excess_curve(10, 1.0, [5], 4, 2), r"\[1, N = 4\]"),
    (lambda: expected_excess_curve(10, 1.0, [2.5], 4, 2), "integers"),
    (lambda: expected_excess_curve(10, 1.0, [2], 4, 0), "K = 0"),
    (lambda: crossover_search(10, np.zeros(1), lambda s: s[:, None], n_coarse=2), "n_coarse = 2"),
    (lambda: size_grid(0), "N = 0"),
    (lambda: excess_curve("nearest", [1], 4, 2, 1.0), "needs the training set"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("d, var_star, N, K", [(1, 1.0, 8, 1), (3, 0.5, 12, 2), (10, 1.0, 20, 3),
                                               (50, 2.0, 200, 12), (300, 1.0, 24, 8)])
def test_the_quadrature_without_scipy_stats_is_scipy_stats_bit_for_bit(monkeypatch, d, var_star, N, K):
    """The expected approximation's tables call scipy.special's functions (importing
    scipy.stats cost every training process a second): the same tables, to the bit, as
    scipy.stats's chi2 and ncx2 methods give."""
    from scipy import stats

    from gmmdiff.theory import expected
    light = expected._expected_quadrature.__wrapped__(d, var_star, N, K, 32, 200)
    monkeypatch.setattr(expected, "_distributions", lambda: (
        stats.chi2.ppf, stats.ncx2.cdf, stats.ncx2.sf, stats.ncx2.ppf, stats.ncx2.isf))
    reference = expected._expected_quadrature.__wrapped__(d, var_star, N, K, 32, 200)
    assert light.keys() == reference.keys()
    for key in light:
        assert np.array_equal(light[key], reference[key]), key
