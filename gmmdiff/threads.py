"""The CPU thread budget of training: BLAS threads + the draw thread <= cores.

On numpy a training step runs its matrix products in the BLAS (OpenBLAS in numpy's
wheels, which starts one thread per core) while the next chunk of noise is drawn on a
second Python thread (:mod:`gmmdiff.draws`). Left alone that is one thread more than
there are cores: on 2 cores the three threads preempt each other and the step runs
about 1.8x slower than with the BLAS held to one thread. :func:`training_threads`
holds the BLAS to ``cores - draw threads`` (at least 1) for the duration of training
and restores the previous setting afterwards, so code outside training (a user's own
numpy work in the same process) keeps the BLAS as it found it.

The BLAS is reached through its own C entry points with ctypes (no extra dependency):
the library numpy loaded is found in the process's memory map and asked for the
``*_set_num_threads`` / ``*_get_num_threads`` pair of OpenBLAS (plain, 64-bit-integer
and scipy-openblas symbol names), or of MKL or BLIS. Where none is found (another
BLAS, no /proc), the budget does nothing and :func:`blas_controller` returns None:
training is then as fast as the BLAS's own defaults make it, with the same results.
Prefetching changes no result (bit for bit); the BLAS's thread count changes results
by rounding only (OpenBLAS splits its sums differently; the tests bound the effect).
"""
import contextlib
import ctypes
import os
import threading

# (setter, getter) symbol pairs, tried in order in every loaded BLAS-like library
_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"),
    ("bli_thread_set_num_threads", "bli_thread_get_num_threads"),
)
_LIBRARY_HINTS = ("openblas", "mkl_rt", "blis")

_lock = threading.Lock()
_cached = []            # [controller or None] once looked up


class BlasThreads:
    """Get and set the thread count of one loaded BLAS library (ctypes)."""

    def __init__(self, path, setter, getter):
        self.path = path
        self._set, self._get = setter, getter

    def get(self):
        """The BLAS's current thread count (int)."""
        return int(self._get())

    def set(self, n):
        """Set the BLAS's thread count to ``n`` >= 1."""
        self._set(int(n))


def _loaded_libraries():
    """Paths of the shared libraries mapped into this process that look like a BLAS."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {line.split()[-1] for line in fh if "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if any(h in os.path.basename(p).lower() for h in _LIBRARY_HINTS))


def _find_controller():
    import numpy  # numpy's BLAS must be loaded to be found
    # numpy's own copy first (scipy's wheels load a second OpenBLAS of their own)
    home = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    mine = (os.path.join(home, "numpy.libs"), os.path.dirname(os.path.abspath(numpy.__file__)))
    for path in sorted(_loaded_libraries(), key=lambda p: (not p.startswith(mine), p)):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
            if setter is None or getter is None:
                continue
            setter.restype, getter.restype = None, ctypes.c_int
            setter.argtypes, getter.argtypes = [ctypes.c_int], []
            return BlasThreads(path, setter, getter)
    return None


def blas_controller():
    """The :class:`BlasThreads` of the BLAS numpy uses, or None where none is found
    (looked up once per process)."""
    with _lock:
        if not _cached:
            _cached.append(_find_controller())
        return _cached[0]


CORES_ENV = "GMMDIFF_CORES"


def cpu_count():
    """Cores this process may use: ``$GMMDIFF_CORES`` where set (the share of each
    ``gmmdiff-sweep --jobs`` worker), else its CPU affinity where the OS tells it."""
    share = os.environ.get(CORES_ENV, "")
    if share.isdigit() and int(share) >= 1:
        return int(share)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def blas_budget(other_threads, cores=None):
    """BLAS threads that leave ``other_threads`` busy Python threads a core each:
    ``max(1, cores - other_threads)``."""
    cores = cpu_count() if cores is None else int(cores)
    return max(1, cores - int(other_threads))


@contextlib.contextmanager
def blas_threads(n):
    """Hold the BLAS to at most ``n`` threads inside the ``with`` block (a lower count
    already in force, say from OPENBLAS_NUM_THREADS=1, is kept), then restore its
    previous count. Yields the count in force (None: no controllable BLAS found,
    nothing changed)."""
    ctl = blas_controller()
    if ctl is None or n is None:
        yield None
        return
    with _lock:
        before = ctl.get()
        now = max(1, min(before, int(n)))
        ctl.set(now)
    try:
        yield now
    finally:
        with _lock:
            ctl.set(before)


def prefetch_draws():
    """Whether a numpy training loop should draw its next noise chunk on a second
    thread: only where there are at least two cores for it (:func:`cpu_count`)."""
    return cpu_count() >= 2


def training_threads(draw_threads):
    """:func:`blas_threads` with the budget of a numpy training loop that runs
    ``draw_threads`` prefetching threads beside the BLAS (:func:`blas_budget`)."""
    return blas_threads(blas_budget(draw_threads))
