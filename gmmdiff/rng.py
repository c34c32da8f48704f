"""Counter-based random draws, the same on numpy and cupy.

Training draws its times and noise here, on the array backend itself: on a GPU no
random numbers cross the bus, and a model's draws are the same on numpy and cupy, so
the two backends differ only by floating-point rounding (uniforms and integers are
bit-identical; normals may differ in the last bits where the device's log1p, cos and
sin round differently from the host's).

The generator is SplitMix64 (Steele, Lea and Flood 2014) evaluated at counters:
u_i = mix(key + (i + 1) * gamma), the same sequence SplitMix64 produces from state
``key``; it passes BigCrush and needs no state beyond the 64-bit key, which comes from
:class:`numpy.random.SeedSequence` of (seed, stream key...). Normals use Box-Muller on
pairs of 53-bit uniforms. Everything is elementwise uint64 / float64 array code, written
once for both backends.
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


def uniforms(key, n, xp=np):
    """n float64 uniforms on [0, 1) (53 random bits each): (n,) on backend xp."""
    i = xp.arange(1, n + 1, dtype=xp.uint64)
    with np.errstate(over="ignore"):
        z = xp.uint64(key) + i * xp.uint64(_GAMMA)                      # wraps mod 2^64
        return (_mix(z, xp) >> xp.uint64(11)).astype(xp.float64) * (2.0 ** -53)


def normals(key, shape, xp=np, fused=False):
    """Standard normal float64 draws of ``shape`` (Box-Muller on pairs of uniforms).

    ``fused`` (cupy only): the same numbers from one kernel
    (:func:`gmmdiff.kernels.counter_normals`) instead of the array program."""
    shape = tuple(int(s) for s in np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape
    n = int(np.prod(shape))
    if fused:
        from .kernels import counter_normals
        return counter_normals(key, n).reshape(shape)
    m = (n + 1) // 2
    u = uniforms(key, 2 * m, xp)
    r = xp.sqrt(-2.0 * xp.log1p(-u[:m]))                                # 1 - u in (0, 1]
    theta = (2.0 * np.pi) * u[m:]
    return xp.concatenate([r * xp.cos(theta), r * xp.sin(theta)])[:n].reshape(shape)


def integers(key, high, shape, xp=np):
    """Integers uniform on {0, ..., high - 1} of ``shape`` (bias below 2^-40 for
    high < 2^13)."""
    shape = tuple(shape)
    u = uniforms(key, int(np.prod(shape)), xp)
    return xp.minimum((u * high).astype(xp.int64), high - 1).reshape(shape)
