"""Test helpers: host conversion and namespace/shape/dtype-aware comparisons."""
import importlib.util
import os

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


def load_benchmark(name="bench_train_step"):
    """The module ``benchmarks/<name>.py``, imported from its path (benchmarks/ is no package)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "benchmarks", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
