"""Counter-based random draws, the same on numpy and cupy.

Training draws its times and noise here ("hash" noise source, the cupy default), on the
array backend itself: on a GPU no random numbers cross the bus, and a model's draws are
the same on numpy and cupy, so the two backends differ only by floating-point rounding
(uniforms and integers are bit-identical; normals may differ in the last bits where the
device's log1p, cos and sin round differently from the host's).

The generator is SplitMix64 (Steele, Lea and Flood 2014) evaluated at counters:
u_i = mix(key + (i + 1) * gamma), the same sequence SplitMix64 produces from state
``key``; it passes BigCrush and needs no state beyond the 64-bit key, which comes from
:class:`numpy.random.SeedSequence` of (seed, stream key...). Normals use Box-Muller on
pairs of 53-bit uniforms: of n normals from one key, entry i < m = ceil(n / 2) is
r_i cos(theta_i) and entry m + i is r_i sin(theta_i), with r_i from uniform i and
theta_i from uniform m + i.

Training keys each optimizer step: step k of a stream with base key K draws from the
key :func:`step_keys` (K, k) = mix(K + (k + 1) gamma), the k-th output of SplitMix64
from state K. A step's draws therefore depend on the stream and the step only, not on
how many steps are drawn at once. Everything is elementwise uint64 / float64 array
code, written once for both backends; :mod:`gmmdiff.engine.kernels` has the same arithmetic
as CUDA kernels (one launch per chunk of steps for all streams).
"""
import numpy as np

_GAMMA = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def stream_key(seed, *key):
    """A 64-bit key (Python int) for the stream ``key`` of integer ``seed``."""
    return int(np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))
               .generate_state(1, np.uint64)[0])


def _mix(z, xp):
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(_M1)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(_M2)
    return z ^ (z >> xp.uint64(31))


def step_keys(base_keys, first, steps, xp=np):
    """Keys (U, S) of steps first .. first + S - 1 of U streams with base keys ``(U,)``
    uint64: mix(K + (k + 1) gamma)."""
    k = xp.arange(first + 1, first + steps + 1, dtype=xp.uint64)
    with np.errstate(over="ignore"):
        return _mix(base_keys[:, None] + k[None, :] * xp.uint64(_GAMMA), xp)


def _uniforms_of(keys, n, xp):
    """n uniforms per key: keys (...) uint64 -> (..., n) float64 on [0, 1)."""
    i = xp.arange(1, n + 1, dtype=xp.uint64)
    with np.errstate(over="ignore"):
        z = keys[..., None] + i * xp.uint64(_GAMMA)                      # wraps mod 2^64
        return (_mix(z, xp) >> xp.uint64(11)).astype(xp.float64) * (2.0 ** -53)


def normals_of(keys, n, xp=np):
    """n standard normals per key: keys (...) uint64 -> (..., n) float64."""
    m = (n + 1) // 2
    u = _uniforms_of(keys, 2 * m, xp)
    r = xp.sqrt(-2.0 * xp.log1p(-u[..., :m]))                           # 1 - u in (0, 1]
    theta = (2.0 * np.pi) * u[..., m:]
    return xp.concatenate([r * xp.cos(theta), r * xp.sin(theta)], axis=-1)[..., :n]


def integers_of(keys, high, n, xp=np):
    """n integers uniform on {0, ..., high - 1} per key: (...) -> (..., n) int64 (bias
    below 2^-40 for high < 2^13)."""
    u = _uniforms_of(keys, n, xp)
    return xp.minimum((u * high).astype(xp.int64), high - 1)


def _key(key, xp):
    return xp.asarray(np.uint64(key))


def uniforms(key, n, xp=np):
    """n float64 uniforms on [0, 1) (53 random bits each) from one key: (n,) on xp."""
    return _uniforms_of(_key(key, xp), int(n), xp)


def normals(key, shape, xp=np):
    """Standard normal float64 draws of ``shape`` from one key (Box-Muller)."""
    shape = tuple(int(s) for s in np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape
    return normals_of(_key(key, xp), int(np.prod(shape)), xp).reshape(shape)


def integers(key, high, shape, xp=np):
    """Integers uniform on {0, ..., high - 1} of ``shape`` from one key."""
    shape = tuple(shape)
    return integers_of(_key(key, xp), high, int(np.prod(shape)), xp).reshape(shape)
