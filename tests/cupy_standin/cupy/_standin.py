"""Event counters of the CuPy stand-in: kernel launches, device->host syncs and
host->device copies, each recorded at its call site.

The call site of an event is the first stack frame outside this stand-in package
and outside numpy (numpy frames appear when ``numpy.sum(cupy_array)`` dispatches to
CuPy), written ``path:line`` with the path relative to the repository root where the
file lies inside it (``gmmdiff/model/losses.py:57``, ``tests/test_x.py:12``).

Bytes, counted as events of n bytes: ``alloc`` is device memory handed out (each new
array, and the temporaries CuPy's own routines allocate inside, such as the contiguous
operand copies of ``matmul`` and the transposed operands of ``einsum``), ``copy`` the
bytes written by operations that only move data (casts, layout copies, concatenation,
gathers and scatters, those hidden copies included). ``c.bytes("alloc")`` totals them.

Usage::

    from cupy import _standin
    with _standin.counting() as c:
        step()
    c.launches, c.syncs, c.h2d          # totals
    c.by_site("launch").most_common(5)  # Counter {"gmmdiff/model/losses.py:57": 3, ...}
    c.by_op("launch")                   # Counter {"multiply": 12, "matmul": 4, ...}
    print(c.report())

``reset()`` clears the process-wide totals (:data:`TOTAL`); :func:`counting` blocks
nest, and every event goes to each open block and to :data:`TOTAL`.

A machine with the driver but not the CUDA toolkit libraries: ``CUPY_STANDIN_MISSING_LIBS``
(comma-separated, read at each use) names libraries that fail to load, as CuPy 14 (with
cuda-pathfinder) fails on first use, not at import: ``nvrtc`` makes every compiled
kernel (ufuncs, reductions, ``arange``, ``ElementwiseKernel``, ``RawKernel``) raise
cuda-pathfinder's ``DynamicLibNotFoundError`` (a RuntimeError), ``cublas`` makes
``matmul``/``dot``/contracting ``einsum`` raise ``ImportError`` with the same text
(cupy_backends/cuda/libs/__init__.py turns the pathfinder error into ImportError).
The messages are those cuda-pathfinder 1.9 prints on a machine without the wheels.
"""
import collections
import contextlib
import os
import sys
import threading

import numpy as _np

CATEGORIES = ("launch", "sync", "h2d", "warning", "alloc", "copy")

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/cupy_standin
_NUMPY_DIR = os.path.dirname(os.path.abspath(_np.__file__))
_ROOT = os.path.dirname(os.path.dirname(_PKG_DIR))                        # the repository
_SKIP = (_PKG_DIR + os.sep, _NUMPY_DIR + os.sep)


class Counts:
    """Events by (category, call site, operation); see the module docstring."""

    def __init__(self):
        self.events = collections.Counter()              # (category, site, op) -> n

    def add(self, category, site, op, n=1):
        self.events[(category, site, op)] += n

    def total(self, category):
        return sum(n for (c, _, _), n in self.events.items() if c == category)

    @property
    def launches(self):
        return self.total("launch")

    @property
    def syncs(self):
        return self.total("sync")

    @property
    def h2d(self):
        return self.total("h2d")

    def bytes(self, category):
        """Total bytes of an "alloc" or "copy" category (its events count bytes)."""
        return self.total(category)

    @property
    def warnings(self):
        return self.total("warning")

    def by_site(self, category="launch"):
        out = collections.Counter()
        for (c, site, _), n in self.events.items():
            if c == category:
                out[site] += n
        return out

    def by_op(self, category="launch"):
        out = collections.Counter()
        for (c, _, op), n in self.events.items():
            if c == category:
                out[op] += n
        return out

    def by_site_op(self, category="launch"):
        out = collections.Counter()
        for (c, site, op), n in self.events.items():
            if c == category:
                out[(site, op)] += n
        return out

    def report(self, top=10):
        """A few lines: totals, then the busiest call sites of each category."""
        lines = [f"launches {self.launches}, syncs {self.syncs}, h2d copies {self.h2d}"
                 + (f", warnings {self.warnings}" if self.warnings else "")]
        if self.total("alloc") or self.total("copy"):
            lines.append(f"bytes allocated {self.total('alloc')}, copied {self.total('copy')}")
        for cat in CATEGORIES:
            sites = self.by_site_op(cat).most_common(top)
            if sites:
                lines.append(f"  {cat}:")
                lines += [f"    {n:6d}  {site}  {op}" for (site, op), n in sites]
        return "\n".join(lines)

    def __repr__(self):
        return (f"<Counts launches={self.launches} syncs={self.syncs} h2d={self.h2d} "
                f"warnings={self.warnings}>")


TOTAL = Counts()
_open = []                 # the Counts of open counting() blocks
_lock = threading.Lock()   # events may come from a prefetching thread
_suspended = threading.local()


def call_site():
    """``path:line`` of the first frame outside the stand-in and numpy."""
    f = sys._getframe(2)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_SKIP) and not fn.startswith("<__array_function__"):
            if fn.startswith(_ROOT + os.sep):
                fn = fn[len(_ROOT) + 1:]
            return f"{fn}:{f.f_lineno}"
        f = f.f_back
    return "?"


def record(category, op, n=1):
    """Count ``n`` events of ``category`` for operation ``op`` at the caller's site."""
    if n <= 0 or getattr(_suspended, "depth", 0):
        return
    site = call_site()
    with _lock:
        TOTAL.add(category, site, op, n)
        for c in _open:
            c.add(category, site, op, n)


@contextlib.contextmanager
def counting():
    """Count the events of the block; yields a :class:`Counts`."""
    c = Counts()
    with _lock:
        _open.append(c)
    try:
        yield c
    finally:
        with _lock:
            _open.remove(c)


@contextlib.contextmanager
def suspended():
    """No events inside (used by cupy.fuse, which counts one launch for the whole
    fused function)."""
    _suspended.depth = getattr(_suspended, "depth", 0) + 1
    try:
        yield
    finally:
        _suspended.depth -= 1


class DynamicLibNotFoundError(RuntimeError):
    """cuda.pathfinder's error for a CUDA library it cannot find."""


_SONAMES = {"nvrtc": ("libnvrtc.so.13", "libnvrtc.so.12"),
            "cublas": ("libcublasLt.so.13", "libcublasLt.so.12")}   # cublas loads cublasLt first


def need(lib):
    """Raise as CuPy does when library ``lib`` ("nvrtc" or "cublas") is named in
    ``CUPY_STANDIN_MISSING_LIBS``; see the module docstring."""
    missing = os.environ.get("CUPY_STANDIN_MISSING_LIBS", "")
    if lib not in [m.strip() for m in missing.split(",")]:
        return
    names = " or ".join(_SONAMES[lib])
    msg = f'Failure finding "{names}": No such file: {names}, No such file: {names}\n'
    if lib == "cublas":
        raise ImportError(msg)
    raise DynamicLibNotFoundError(msg)


def reset():
    """Clear the process-wide totals."""
    with _lock:
        TOTAL.events.clear()
