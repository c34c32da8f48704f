"""The array-module switch: ``xp`` is :mod:`numpy` or :mod:`cupy`.

This is the only module that imports CuPy. Public functions elsewhere infer the
namespace from their array arguments with :func:`array_namespace`; private helpers
take ``xp`` explicitly. Host conversion happens only at the CLI, storage and plotting
boundaries through :func:`to_host`.
"""
import numpy as np

BACKENDS = ("numpy", "cupy")
DTYPES = ("float64", "float32")

_CUPY_HELP = ("CuPy with a working CUDA GPU is required for backend 'cupy'; install it "
              "with `pip install gmmdiff[cuda12]` or `pip install gmmdiff[cuda13]` "
              "(matching your CUDA driver), or use backend 'numpy', which works everywhere")

try:  # pragma: no cover - depends on the machine
    import cupy as _cupy
except Exception as exc:  # ImportError, or a broken CUDA install raising at import
    _cupy = None
    _CUPY_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
else:  # pragma: no cover
    _CUPY_IMPORT_ERROR = None


def cupy_available():
    """True when CuPy imports and sees at least one CUDA device."""
    if _cupy is None:
        return False
    try:  # pragma: no cover - needs a GPU
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_xp(name="numpy"):
    """Return the array module for a backend name.

    Parameters
    ----------
    name : {"numpy", "cupy"}

    Raises
    ------
    ValueError
        For an unknown name, or for "cupy" where CuPy or a GPU is missing (the
        message says how to install CuPy and that "numpy" works everywhere).
    """
    if name == "numpy":
        return np
    if name == "cupy":
        if not cupy_available():
            detail = f" ({_CUPY_IMPORT_ERROR})" if _CUPY_IMPORT_ERROR else " (no CUDA device found)"
            raise ValueError(_CUPY_HELP + detail)
        return _cupy
    raise ValueError(f"unknown backend {name!r}; accepted: {', '.join(BACKENDS)}")


def backend_name(xp):
    """The name ("numpy" or "cupy") of an array module."""
    return "numpy" if xp is np else "cupy"


def array_namespace(*arrays):
    """The array module of the given arrays (numpy for Python scalars and None).

    Mixing numpy and cupy arrays raises ValueError: host/device moves must be explicit.
    """
    found = None
    for a in arrays:
        if _cupy is not None and isinstance(a, _cupy.ndarray):  # pragma: no cover
            mod = _cupy
        elif isinstance(a, (np.ndarray, np.generic)):
            mod = np
        else:  # Python scalars, lists, None: no opinion
            continue
        if found is None:
            found = mod
        elif found is not mod:
            raise ValueError("arrays live on different backends (numpy and cupy); "
                             "move them explicitly with gmmdiff.backend.to_host / asarray")
    return found if found is not None else np


def get_dtype(name):
    """Return the numpy dtype for "float64" (the reference) or "float32"."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; accepted: {', '.join(DTYPES)}")
    return np.dtype(name)


def to_host(a):
    """Return a numpy copy/view of ``a`` (numpy, cupy, or scalar)."""
    if _cupy is not None and isinstance(a, _cupy.ndarray):  # pragma: no cover
        return _cupy.asnumpy(a)
    return np.asarray(a)


def asarray(a, xp, dtype=None):
    """Move ``a`` to backend ``xp`` (explicit host->device copy for cupy)."""
    return xp.asarray(a, dtype=dtype)


def available_bytes(xp=np):
    """Memory this process can still use: the device's free memory on cupy, the host's
    MemAvailable otherwise (None when unknown)."""
    if xp is not np:        # free device memory, and what CuPy's pool holds unused
        free, _ = xp.cuda.runtime.memGetInfo()
        return int(free) + int(xp.get_default_memory_pool().free_bytes())
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover
        import os
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return None
