"""The isotropic homoscedastic Gaussian-mixture data model (SPEC section 2).

``pi* = (1/K) sum_k N(mu*_k, s* I_d)``, with ``mu*_k = sqrt(d) g_k / |g_k|``, ``g_k ~ N(0, I_d)``.

All randomness is drawn on the host with :class:`numpy.random.Generator` streams
derived from one integer seed (:mod:`gmmdiff.streams`), then moved to
the requested backend; the same seed therefore gives bit-identical data on numpy and
cupy.
"""
from dataclasses import dataclass

import numpy as np

from gmmdiff.backend import array_namespace, to_host
from gmmdiff.streams import STREAM_MEANS, STREAM_SUBSET, STREAM_TEST, STREAM_TRAIN, rng_for


def check_positive_int(name, value, minimum=1):
    """Raise ValueError unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} = {value!r} must be an integer >= {minimum}")
    return int(value)


@dataclass(frozen=True)
class GaussianMixture:
    """Uniform-weight isotropic mixture ``pi* = (1/K) sum_k N(mu*_k, s* I_d)``.

    Attributes
    ----------
    means : (K, d) array
        The component means ``mu*_k``, on the sphere of radius ``sqrt(d)``.
    var : float
        The per-coordinate variance s* >= 0 of every component.
    """
    means: object
    var: float

    @property
    def dim(self):
        return self.means.shape[1]

    @property
    def n_components(self):
        return self.means.shape[0]

    def sample(self, n, rng, *, xp=None):
        """Draw ``n`` samples of the mixture.

        Parameters
        ----------
        n : int
            Number of samples.
        rng : numpy.random.Generator
            The draws are made with it on the host.
        xp : module, optional
            The array module of the result (default: the backend of ``means``).

        Returns
        -------
        X : (n, d) array
            The samples.
        labels : (n,) int array
            The component of each sample.
        """
        xp = array_namespace(self.means) if xp is None else xp
        means = to_host(self.means)
        labels = rng.integers(0, means.shape[0], size=n)
        X = means[labels] + np.sqrt(self.var) * rng.standard_normal((n, means.shape[1]))
        dtype = self.means.dtype
        return xp.asarray(X, dtype=dtype), xp.asarray(labels)


def sphere_means(d, K, rng):
    """K means uniform on the sphere of radius sqrt(d). Shape (K, d), float64 numpy."""
    g = rng.standard_normal((K, d))
    return np.sqrt(d) * g / np.linalg.norm(g, axis=1, keepdims=True)


def make_mixture(d, K, var=1.0, seed=0, *, xp=np, dtype=np.float64):
    """The data model pi* for dimension ``d`` and ``K`` components, seeded.

    Parameters
    ----------
    d : int
        Data dimension, >= 1.
    K : int
        Number of components, >= 1.
    var : float
        The component variance s* >= 0.
    seed : int
        Seed of the means (the same stream as :func:`make_dataset`'s).
    xp : module
        The array module of the result, ``numpy`` or ``cupy``.
    dtype : numpy dtype
        float64 (the reference) or float32.

    Returns
    -------
    GaussianMixture
        With ``means`` (K, d) on backend ``xp``.
    """
    d = check_positive_int("dim", d)
    K = check_positive_int("components", K)
    if not (np.isfinite(var) and var >= 0):
        raise ValueError(f"variance var = {var!r} must be finite and >= 0")
    means = sphere_means(d, K, rng_for(seed, STREAM_MEANS))
    return GaussianMixture(xp.asarray(means, dtype=dtype), float(var))


@dataclass(frozen=True)
class Dataset:
    """A training set and a held-out set drawn from one mixture.

    Attributes
    ----------
    mixture : GaussianMixture
        The data model the samples were drawn from.
    X : (N, d) array
        Training samples.
    labels : (N,) int array
        The component of each training sample.
    X_test : (n_test, d) array
        Held-out samples.
    labels_test : (n_test,) int array
        The component of each held-out sample.
    seed : int
        The seed everything was drawn with.
    """
    mixture: GaussianMixture
    X: object
    labels: object
    X_test: object
    labels_test: object
    seed: int


def make_dataset(d, K, N, *, var=1.0, seed=0, n_test=100, xp=np, dtype=np.float64):
    """Seeded mixture, N training samples and ``n_test`` held-out samples.

    The same seed gives bit-identical data on every backend (draws are made on the
    host).

    Parameters
    ----------
    d : int
        Data dimension, >= 1.
    K : int
        Number of mixture components, >= 1 (K may exceed N: some components then have
        no training sample).
    N : int
        Number of training samples, >= 1.
    var : float
        The component variance s* >= 0.
    seed : int
        Seed of the means, the training set and the held-out set.
    n_test : int
        Number of held-out samples.
    xp : module
        The array module of the result, ``numpy`` or ``cupy``.
    dtype : numpy dtype
        float64 (the reference) or float32.

    Returns
    -------
    Dataset
        ``X`` (N, d), ``labels`` (N,), ``X_test`` (n_test, d) and ``labels_test``
        (n_test,) on backend ``xp``.

    Examples
    --------
    >>> import gmmdiff
    >>> ds = gmmdiff.make_dataset(d=50, K=12, N=200, seed=0)
    >>> ds.X.shape, ds.X_test.shape, ds.mixture.means.shape
    ((200, 50), (100, 50), (12, 50))
    """
    N = check_positive_int("samples", N)
    n_test = check_positive_int("test samples", n_test)
    mix = make_mixture(d, K, var, seed, xp=xp, dtype=dtype)
    X, y = mix.sample(N, rng_for(seed, STREAM_TRAIN), xp=xp)
    Xt, yt = mix.sample(n_test, rng_for(seed, STREAM_TEST), xp=xp)
    return Dataset(mix, X, y, Xt, yt, int(seed))


def memorization_order(N, seed):
    """(N,) the seeded order in which training points join the memorized subset of
    theta_pmem,M: the subset of size M is the first M entries (so subsets are nested)."""
    N = check_positive_int("samples", N)
    return rng_for(seed, STREAM_SUBSET).permutation(N)


def memorized_subset(N, M, seed):
    """Indices (M,) of M distinct training points, sorted: the first M of
    :func:`memorization_order`, so the subsets of growing M are nested."""
    N = check_positive_int("samples", N)
    M = check_positive_int("model size", M)
    if M > N:
        raise ValueError(f"model size M = {M} exceeds the number of training samples N = {N}")
    return np.sort(memorization_order(N, seed)[:M])
