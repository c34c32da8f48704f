"""The array-module switch: ``xp`` is :mod:`numpy` or :mod:`cupy`.

This is the only module that imports CuPy. Public functions elsewhere infer the
namespace from their array arguments with :func:`array_namespace`; private helpers
take ``xp`` explicitly. Host conversion happens only at the CLI, storage and plotting
boundaries through :func:`to_host`.
"""
import json
import os
import re
import urllib.parse

import numpy as np

BACKENDS = ("numpy", "cupy")
DTYPES = ("float64", "float32")


def install_command(extra):
    """The pip command that adds the extra ``extra`` (``"cuda12"``, ...) to this
    installation of gmmdiff.

    gmmdiff is installed from a checkout, not from a package index, so
    ``pip install 'gmmdiff[cuda12]'`` would look for it on PyPI and fail. The command
    names the checkout pip recorded at install time (its ``direct_url.json``), with
    ``-e`` for an editable install, and otherwise ``'.[extra]'`` (run from the
    checkout)."""
    where, editable = installed_from()
    if where is None:
        return f"pip install '.[{extra}]' (in the gmmdiff checkout)"
    return f"pip install {'-e ' if editable else ''}'{where}[{extra}]'"


def installed_from():
    """(the checkout gmmdiff was installed from, whether editably), as pip recorded it
    (``direct_url.json``); (None, False) where it recorded none (a checkout on
    sys.path, a wheel)."""
    try:
        from importlib import metadata
        info = json.loads(metadata.distribution("gmmdiff").read_text("direct_url.json") or "{}")
        url = info.get("url", "")
        if url.startswith("file://"):
            path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
            if os.path.isfile(os.path.join(path, "setup.py")):
                return path, bool(info.get("dir_info", {}).get("editable"))
    except Exception:        # no metadata (a checkout on sys.path): the generic form
        pass
    return None, False


def _cupy_help():
    return ("CuPy with a working CUDA GPU is required for backend 'cupy'; install it with "
            f"`{install_command('cuda12')}` or the same with [cuda13] (matching your CUDA "
            "driver), or use backend 'numpy', which works everywhere")
# The CUDA libraries CuPy loads on first use (not at import), named as they appear in
# CuPy's and cuda-pathfinder's errors: what each one is, and who brings it.
_CUDA_LIBRARIES = (
    ("cublasLt", "cuBLASLt (CUDA's matrix-product library)"),
    ("cublas", "cuBLAS (CUDA's matrix-product library)"),
    ("nvrtc", "NVRTC (CUDA's runtime compiler, which builds every CuPy kernel)"),
    ("nvJitLink", "nvJitLink (CUDA's JIT linker)"),
    ("cudart", "the CUDA runtime"),
    ("curand", "cuRAND"),
    ("cusolver", "cuSOLVER"),
    ("cusparse", "cuSPARSE"),
    ("cufft", "cuFFT"),
)
_LIBRARY_PATTERN = re.compile(r"lib(" + "|".join(n for n, _ in _CUDA_LIBRARIES)
                              + r")[\w.]*|\b(" + "|".join(n for n, _ in _CUDA_LIBRARIES) + r")\b")

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


def cuda_major():
    """The CUDA major version CuPy was built for (12 or 13; None without CuPy)."""
    if _cupy is None:
        return None
    try:  # pragma: no cover - depends on the machine
        return int(_cupy.cuda.runtime.runtimeGetVersion()) // 1000
    except Exception:
        return None


def _missing_library_message(exc):
    """One line naming the CUDA library ``exc`` (CuPy's or cuda-pathfinder's error on
    first use) could not load and the extra that brings it; None when ``exc`` names no
    CUDA library."""
    text = f"{type(exc).__name__}: {exc}"
    m = _LIBRARY_PATTERN.search(text)
    if m is None:
        return None
    key = m.group(1) or m.group(2)
    what = dict(_CUDA_LIBRARIES)[key]
    major = cuda_major() or 12
    lib = f"lib{key}.so.{major}"
    return (f"backend 'cupy': CuPy sees a GPU but cannot load {lib} ({what}; a "
            f"driver-only machine lacks the CUDA toolkit); install the CUDA libraries with "
            f"`{install_command(f'cuda{major}')}` (cupy-cuda{major}x[ctk]: the toolkit "
            f"wheels), or use backend 'numpy'")


_PROBED = {}        # device ordinal -> None (passed) or the one-line error


def probe_cupy(xp=None):
    """Run one tiny elementwise kernel and one tiny matrix product on the current GPU
    and check their values: CuPy's CUDA libraries (NVRTC for every kernel, cuBLAS for
    matmul) load on first use, not at import, so this is what proves the backend
    works before a run writes anything. Checked once per device and process.

    Raises ValueError with one line: the library that is missing and the extra that
    brings it, or what else went wrong.
    """
    cp = _cupy if xp is None else xp
    try:
        dev = int(cp.cuda.runtime.getDevice())
    except Exception as exc:  # the runtime library itself may be the missing one
        msg = _missing_library_message(exc)
        raise ValueError(msg or f"{_cupy_help()} ({type(exc).__name__}: {exc})") from None
    if dev not in _PROBED:
        _PROBED[dev] = _probe_once(cp)
    if _PROBED[dev] is not None:
        raise ValueError(_PROBED[dev])


def _probe_once(cp):
    try:
        double = cp.ElementwiseKernel("float64 x", "float64 y", "y = 2.0 * x + 1.0",
                                      "gmmdiff_backend_probe")
        a = double(cp.arange(4, dtype=cp.float64)).reshape(2, 2)       # [[1, 3], [5, 7]]
        got = cp.matmul(a, a).get()                                      # cuBLAS dgemm
    except Exception as exc:
        msg = _missing_library_message(exc)
        return msg or (f"backend 'cupy': a first kernel or matrix product on the GPU failed "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                       f"{_cupy_help()}")
    want = np.array([[16.0, 24.0], [40.0, 64.0]])
    if not np.array_equal(got, want):
        return (f"backend 'cupy': the GPU computed {got.tolist()} for a 2 x 2 product whose "
                f"value is {want.tolist()}; check the CUDA installation, or use backend 'numpy'")
    return None


def get_xp(name="numpy"):
    """Return the array module for a backend name.

    Parameters
    ----------
    name : {"numpy", "cupy"}

    Raises
    ------
    ValueError
        For an unknown name, or for "cupy" where CuPy or a GPU is missing, or where
        the GPU cannot run a first kernel and matrix product (:func:`probe_cupy`: a
        missing CUDA library is named with the extra that brings it).
    """
    if name == "numpy":
        return np
    if name == "cupy":
        if _cupy is None:
            raise ValueError(f"{_cupy_help()} ({_CUPY_IMPORT_ERROR})")
        try:
            count = _cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # pragma: no cover - depends on the machine
            raise ValueError(_missing_library_message(exc)
                             or f"{_cupy_help()} ({type(exc).__name__}: {exc})") from None
        if count < 1:
            raise ValueError(f"{_cupy_help()} (no CUDA device found)")
        probe_cupy()
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
