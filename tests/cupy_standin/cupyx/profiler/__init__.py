"""cupyx.profiler of the CuPy stand-in: ``benchmark`` measuring host time (the
stand-in does the work when it is issued, so device time equals host time here),
``time_range`` as a no-op."""
import contextlib
import math
import time

import numpy as np


class _PerfCaseResult:
    """Like CuPy's: ``cpu_times`` (n_repeat,), ``gpu_times`` (n_devices, n_repeat), in
    seconds (cupyx/profiler/_time.py)."""

    def __init__(self, name, cpu_times, n_devices=1):
        self.name = name
        self._cpu = np.asarray(cpu_times, dtype=np.float64)
        self._gpu = np.tile(self._cpu, (n_devices, 1))

    @property
    def cpu_times(self):
        return self._cpu

    @property
    def gpu_times(self):
        return self._gpu

    def to_str(self, show_gpu=False):
        def stats(t):
            return (f"{t.mean() * 1e6:>10.3f} us +/- {t.std() * 1e6:>7.3f} "
                    f"(min: {t.min() * 1e6:>10.3f} / max: {t.max() * 1e6:>10.3f}) us")
        s = f"{self.name:<20s}:    CPU: {stats(self._cpu)}"
        if show_gpu:
            s += f"    GPU-0: {stats(self._gpu[0])}"
        return s

    def __str__(self):
        return self.to_str(show_gpu=True)

    __repr__ = __str__


def benchmark(func, args=(), kwargs={}, n_repeat=10000, *, name=None, n_warmup=10,
              max_duration=math.inf, devices=None):
    from cupy import _standin
    for _ in range(n_warmup):
        func(*args, **kwargs)
    times, start = [], time.perf_counter()
    for _ in range(n_repeat):
        t0 = time.perf_counter()
        func(*args, **kwargs)
        times.append(time.perf_counter() - t0)
        _standin.record("sync", "benchmark")          # CuPy waits on an event per repeat
        if time.perf_counter() - start > max_duration:
            break
    return _PerfCaseResult(name or getattr(func, "__name__", "func"), times,
                           len(devices) if devices else 1)


@contextlib.contextmanager
def time_range(message=None, color_id=None, argb_color=None, sync=False):
    yield


@contextlib.contextmanager
def profile():
    yield
