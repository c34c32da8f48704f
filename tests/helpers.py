"""Test helpers: host conversion and namespace/shape/dtype-aware comparisons."""
import numpy as np

from gmmdiff.backend import array_namespace, to_host


def assert_close(actual, expected, *, rtol, atol=0.0, xp=None, dtype=None):
    """Check namespace, shape and dtype before values (array-api-extra style)."""
    if xp is not None:
        assert array_namespace(actual) is xp, "result left the input's backend"
    a = to_host(actual)
    e = to_host(expected)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    if dtype is not None:
        assert a.dtype == np.dtype(dtype), f"dtype {a.dtype} != {dtype}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
