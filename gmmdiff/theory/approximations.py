"""Closed-form loss approximations and the predicted memorization transition (SPEC 6-7).

Excess losses are measured against the memorizing model theta_mem, per grid time, in
the training target's scale (the x0-scale forms times w_t = :func:`loss_scale`):

- generalizing: ``L_{N,t}(theta*) - L_{N,t}(theta_mem) ~= w_t d s* / (1 + SNR_t s*)``
- partially memorizing, three forms of ``L_{N,t}(theta_pmem,M) - L_{N,t}(theta_mem)``::

    "simple"    w_t d s* (1 - M/N)                      (the released reference code)
    "nearest"   w_t (1/N) sum_{i not in S} min_{j in S} |x_i - x_j|^2   (needs the data)
    "expected"  the expectation of "nearest" under the data model (needs K)

Where each holds is stated in :data:`VALIDITY`; :func:`compare_with_monte_carlo`
measures each form's error against Monte Carlo on a concrete data set.

This module holds the forms themselves and the prediction built from them
(:func:`excess_curve`, :func:`predict_transition`); the concepts with machinery of their
own live in their rooms and are re-exported here: whole "nearest" curves over M in
:mod:`gmmdiff.theory.nearest` (one pass over the nested subsets of
:func:`gmmdiff.model.data.memorization_order`, O(N^2 d) in matrix products), whole "expected"
curves in :mod:`gmmdiff.theory.expected` (the binomial mixing in closed form, a
quadrature cost independent of M), and the sign change of Delta(M) in
:mod:`gmmdiff.theory.crossover` (:func:`crossover_search` finds the transition exactly to one
model size while evaluating Delta(M) only on a few dozen sizes).
"""
import numpy as np

from gmmdiff.backend import to_host
from gmmdiff.model.process import TRAIN_TARGETS, check_process, check_target, loss_scale, snr
from gmmdiff.theory.crossover import crossover_search
from gmmdiff.theory.expected import expected_excess_curve, expected_nearest_excess
from gmmdiff.theory.nearest import check_sizes, nearest_excess, nearest_excess_curve

METHODS = ("simple", "nearest", "expected")

VALIDITY = {
    "generalizing": (
        "Theorem 3.1 form; accurate (about 1% against Monte Carlo at d = 50, K = 12, N = 200) "
        "for t up to about 0.88 when the clusters are well separated and N >> K; fails as "
        "t -> 1, where both losses are large and the eps-scale weight w_t tends to 0."),
    "simple": (
        "d s* (1 - M/N): treats every non-memorized point as costing its full variance; "
        "too small whenever the nearest memorized point lies farther than one variance "
        "(typically 30-50% low for M/N in [0.5, 0.8]); a rough guide only."),
    "nearest": (
        "low-noise regime (sigma_t^2 well below the squared nearest-neighbour gaps, in "
        "practice t <~ 0.5 at d = 50): the memorizing model's posterior then picks the "
        "nearest memorized point; needs the actual data and subset."),
    "expected": (
        "the expectation of 'nearest' under the data model, with the memorized count per "
        "cluster Binomial(M, 1/K) and other clusters ignored (well-separated means); same "
        "low-noise regime as 'nearest'; needs K, not the data."),
}


def _check_common(d, var_star, target, process):
    if isinstance(d, bool) or int(d) != d or d < 1:
        raise ValueError(f"dim d = {d!r} must be an integer >= 1")
    if not (np.isfinite(var_star) and var_star > 0):
        raise ValueError(f"variance var_star = {var_star!r} must be finite and > 0")
    check_target(target, TRAIN_TARGETS)
    check_process(process)


def generalizing_excess_loss(t, d, var_star, *, target="eps", process="vp"):
    """``w_t d s* / (1 + SNR_t s*)``: generalizing minus memorizing training loss.

    The Theorem 3.1 form of the paper; w_t converts the x0 scale to the ``target``'s.

    Parameters
    ----------
    t : float or (T,) array
        Times in (0, 1).
    d : int
        Data dimension.
    var_star : float
        The data variance s* > 0.
    target : {"eps", "x0", "v"}
        The scale of the losses.
    process : {"vp", "fm"}
        Variance-preserving or flow matching.

    Returns
    -------
    float or (T,) array
        Shaped like ``t``, on its backend.
    """
    _check_common(d, var_star, target, process)
    return loss_scale(t, process, target) * d * var_star / (1.0 + snr(t, process) * var_star)


def partial_memorizing_excess_loss(t, d, var_star, M, N, *, target="eps", process="vp",
                                   method="simple", X=None, subset=None, K=None):
    """Partially memorizing minus memorizing training loss, in the target's scale.

    Parameters
    ----------
    t : float or (T,) array
        Times in (0, 1).
    d : int
        Data dimension.
    var_star : float
        The data variance s* > 0.
    M : int
        Model size of theta_pmem,M, 1 <= M <= N.
    N : int
        Training-set size.
    target : {"eps", "x0", "v"}
        The scale of the losses.
    process : {"vp", "fm"}
        Variance-preserving or flow matching.
    method : {"simple", "nearest", "expected"}
        ``"simple"``: ``d s* (1 - M/N)``; ``"nearest"``: the mean squared distance of
        each non-memorized point to the nearest memorized one (needs ``X`` and
        ``subset``); ``"expected"``: its expectation under the data model (needs
        ``K``).
    X : (N, d) array, optional
        The training set, for ``"nearest"``.
    subset : (M,) int array, optional
        Indices of the memorized points, for ``"nearest"``.
    K : int, optional
        Number of mixture components, for ``"expected"``.

    Returns
    -------
    float or (T,) array
        Shaped like ``t``, on the backend of ``t`` (numpy for Python scalars).
    """
    _check_common(d, var_star, target, process)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ValueError(f"samples N = {N!r} must be an integer >= 1")
    if isinstance(M, bool) or int(M) != M or not 1 <= M <= N:
        raise ValueError(f"model size M = {M!r} must be an integer in [1, N = {N}]")
    w = loss_scale(t, process, target)
    if method == "simple":
        return w * d * var_star * (1.0 - M / N)
    if method == "nearest":
        if X is None or subset is None:
            raise ValueError("method 'nearest' needs the training set X (N, d) and the "
                             "memorized subset indices (M,)")
        return w * nearest_excess(X, subset)
    if K is None:
        raise ValueError("method 'expected' needs the number of components K (keyword K=)")
    return w * expected_nearest_excess(d, var_star, M, N, K)

def simple_transition_ratio(times, d, var_star, weights=None, *, target="eps", process="vp"):
    """M*/N = 1 - [sum lam w d s*/(1 + SNR s*)] / [sum lam w d s*]: the crossover of the
    generalizing and "simple" approximations (independent of N). Python float.

    times : (T,);  weights : (T,) nonnegative (default uniform).
    """
    times = np.asarray(to_host(times), dtype=np.float64)           # host-side constants
    weights = (np.full(times.size, 1.0 / times.size) if weights is None
               else np.asarray(to_host(weights), dtype=np.float64))
    gen = generalizing_excess_loss(times, d, var_star, target=target, process=process)
    full = loss_scale(times, process, target) * d * var_star
    return float(1.0 - (weights @ gen) / (weights @ full))


def excess_curve(method, sizes, N, d, var_star, *, K=None, X=None, seed=0):
    """(J,) x0-scale excess of theta_pmem,M over theta_mem at ``sizes`` (J,) in [1, N].

    method "simple": d s* (1 - M/N); "nearest": :func:`nearest_excess_curve` of ``X``
    (N, d) along :func:`gmmdiff.model.data.memorization_order` ``(N, seed)``; "expected":
    :func:`expected_excess_curve` with ``K`` components.
    """
    from gmmdiff.model.data import memorization_order
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ValueError(f"samples N = {N!r} must be an integer >= 1")
    sizes = check_sizes(sizes, int(N))
    if method == "simple":
        return d * var_star * (1.0 - sizes / N)
    if method == "nearest":
        if X is None:
            raise ValueError("method 'nearest' needs the training set X (N, d)")
        if np.shape(X)[0] != N:
            raise ValueError(f"X has {np.shape(X)[0]} rows; N = {N}")
        return nearest_excess_curve(X, memorization_order(N, seed), sizes)
    if K is None:
        raise ValueError("method 'expected' needs the number of components K (keyword K=)")
    return expected_excess_curve(d, var_star, sizes, N, K)


def predict_transition(N, d, K, var_star=1.0, *, times, weights=None, method="expected",
                       target="eps", process="vp", X=None, seed=0):
    """Predicted transition M* (and M*/N) from the approximations, no training.

    Finds the first sign change of ``Delta(M) = sum_t lam_t [gen_t - pmem_t(M)]`` over
    M = 1..N, with the generalizing approximation and the partially memorizing
    ``method``: "nearest" on the nested subsets of one seeded order of ``X`` (one pass
    for all M), "expected" evaluated only at the few dozen sizes the search needs.

    Parameters
    ----------
    N : int
        Training-set size.
    d : int
        Data dimension.
    K : int
        Number of mixture components (used by ``"expected"``).
    var_star : float
        The data variance s* > 0.
    times : (T,) array
        The time grid (e.g. :func:`time_grid`).
    weights : (T,) array, optional
        Nonnegative time weights lam_t; default uniform (the training weighting, "naive").
    method : {"expected", "nearest", "simple"}
        The partially memorizing approximation.
    target : {"eps", "x0", "v"}
        The training target, whose loss scale weights the times.
    process : {"vp", "fm"}
        Variance-preserving or flow matching.
    X : (N, d) array, optional
        The training set, for ``"nearest"``.
    seed : int
        Seed of the memorization order, for ``"nearest"``.

    Returns
    -------
    M_star : float
        The predicted transition (interpolated; nan where Delta never changes sign).
    ratio : float
        ``M_star / N``.

    Examples
    --------
    >>> import gmmdiff
    >>> M_star, ratio = gmmdiff.predict_transition(200, 50, 12, times=gmmdiff.time_grid(),
    ...                                            method="simple")
    >>> round(ratio, 3)
    1.0
    """
    times = np.asarray(to_host(times), dtype=np.float64)           # a host-side constant
    gen = generalizing_excess_loss(times, d, var_star, target=target, process=process)
    if method == "simple":
        ratio = simple_transition_ratio(times, d, var_star, weights, target=target, process=process)
        return ratio * N, ratio
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    w = loss_scale(times, process, target)
    if method == "nearest":
        if X is None:
            raise ValueError("method 'nearest' needs the training set X")
        curve = excess_curve("nearest", np.arange(1, N + 1), N, d, var_star, X=X, seed=seed)

        def pmem_at(sizes):
            return curve[sizes - 1, None] * w[None, :]
    else:
        def pmem_at(sizes):
            return excess_curve(method, sizes, N, d, var_star, K=K)[:, None] * w[None, :]
    M_star, _, _ = crossover_search(N, gen, pmem_at, weights)
    return M_star, M_star / N


def compare_with_monte_carlo(dataset, M, times, *, n_noise=20, seed=0, subset_seed=0,
                             target="eps", process="vp"):
    """Monte Carlo excess losses on the training set beside each approximation.

    Parameters
    ----------
    dataset : Dataset
        The data set (:func:`make_dataset`).
    M : int
        Model size of theta_pmem,M.
    times : (T,) array
        Times in (0, 1).
    n_noise : int
        Noise draws per sample and time.
    seed : int
        Seed of the noise (common to the three models).
    subset_seed : int
        Seed of the memorized subset of theta_pmem,M.
    target : {"eps", "x0", "v"}
        The scale of the losses.
    process : {"vp", "fm"}
        Variance-preserving or flow matching.

    Returns
    -------
    dict of (T,) float64 numpy arrays
        ``mc_gen``, ``mc_pmem`` (Monte Carlo excess over theta_mem, common noise for
        all three models), ``gen``, ``simple``, ``nearest``, ``expected`` (the
        approximations), and ``rel_err_<name>`` = approx / MC - 1.
    """
    from gmmdiff.model.denoisers import generalizing, memorizing, partially_memorizing
    from gmmdiff.model.losses import per_time_losses
    times = np.asarray(to_host(times), dtype=np.float64)           # a host-side constant
    X = dataset.X
    N, d = X.shape
    K = dataset.mixture.n_components
    s = dataset.mixture.var
    kw = dict(n_noise=n_noise, seed=seed, process=process, target=target)
    gen_p, mem_p = generalizing(dataset.mixture), memorizing(X)
    pmem_p, subset = partially_memorizing(X, M, subset_seed)
    L_mem = to_host(per_time_losses(mem_p.means, mem_p.var, X, times, **kw))
    out = {
        "mc_gen": to_host(per_time_losses(gen_p.means, gen_p.var, X, times, **kw)) - L_mem,
        "mc_pmem": to_host(per_time_losses(pmem_p.means, pmem_p.var, X, times, **kw)) - L_mem,
        "gen": generalizing_excess_loss(times, d, s, target=target, process=process),
    }
    for method in METHODS:
        out[method] = partial_memorizing_excess_loss(times, d, s, M, N, target=target,
                                                     process=process, method=method, X=X,
                                                     subset=subset, K=K)
    out["rel_err_gen"] = out["gen"] / out["mc_gen"] - 1.0
    for method in METHODS:
        out[f"rel_err_{method}"] = out[method] / out["mc_pmem"] - 1.0
    return out
