"""The CPU thread budget of training: one thread per core, each calling the BLAS at
one thread.

On numpy a training step runs its matrix products in the BLAS (OpenBLAS in numpy's
wheels, which starts one thread per core) and draws the next chunk of noise on the
side. Left alone the BLAS's own threads and the drawing thread oversubscribe the cores:
on 2 cores the three threads preempt each other and the step ran about 1.8x slower
than with the BLAS held to one thread. So training runs a :class:`Crew`: the training
thread plus one helper thread per further core (:func:`training_crew`, cores from
:func:`cpu_count`), which share each step's row-block tasks (:mod:`gmmdiff.engine.blocked`)
and draw the next noise chunk in the gaps, while :func:`blas_threads` holds the BLAS
to one thread for the duration of training and restores the previous setting
afterwards, so code outside training (a user's own numpy work in the same process)
keeps the BLAS as it found it.

The BLAS is reached through its own C entry points with ctypes (no extra dependency):
the library numpy loaded is found in the process's memory map and asked for the
``*_set_num_threads`` / ``*_get_num_threads`` pair of OpenBLAS (plain, 64-bit-integer
and scipy-openblas symbol names), or of MKL or BLIS. Where none is found (another
BLAS, no /proc), the budget does nothing and :func:`blas_controller` returns None:
training then oversubscribes as the BLAS's own defaults make it, with the same
results up to the BLAS's rounding. Which thread runs a task or draws a chunk changes no
result (bit for bit, on any number of cores: the tests compare 1, 2 and 4).
"""
import collections
import contextlib
import ctypes
import os
import threading

import numpy as np

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


class Job:
    """A background job of a :class:`Crew` (:meth:`Crew.submit`)."""
    __slots__ = ("fn", "state", "result", "error")

    def __init__(self, fn):
        self.fn, self.state, self.result, self.error = fn, "queued", None, None


class _Batch:
    __slots__ = ("left", "error")

    def __init__(self, n):
        self.left, self.error = n, None


class Crew:
    """The helper threads of a numpy training loop: ``helpers`` threads that draw the
    next chunk of noise (background jobs, :meth:`submit`) and, when no job is waiting,
    run the tasks of a step (:meth:`run`) beside the training thread.

    A helper takes jobs first: a chunk's draws are long stretches of work without the
    GIL (numpy's generator fills its buffer unlocked), where a step's row-block tasks
    are short numpy calls whose Python code takes turns with the other thread's; done
    first, the draws run beside the training thread's tasks with the least contention,
    and the helper then shares the step's tasks until the next chunk is due (on the
    shared 2-core machine, draws first were as fast or faster at the middle and paper
    shapes, and steadier: ``benchmarks/bench_train_step.py --roofline``). The training
    thread takes only tasks, and a job itself when it waits for one no helper has
    started. What a task computes never depends on which thread runs it (each gets the
    slot of its thread, 0 for the training thread and 1..helpers for the helpers, to
    pick buffers of its own). With no helpers everything runs on the calling thread:
    tasks at :meth:`run`, a job when :meth:`wait` asks for it.

    Use it as a context manager (or call :meth:`close`): closing drops the jobs not yet
    started and joins the helpers.
    """

    def __init__(self, helpers):
        self.helpers = max(0, int(helpers))
        self._cv = threading.Condition()
        self._tasks = collections.deque()             # (fn, batch)
        self._jobs = collections.deque()              # Job
        self._closed = False
        self._threads = [threading.Thread(target=self._work, args=(slot,), daemon=True,
                                          name=f"gmmdiff-crew-{slot}")
                         for slot in range(1, self.helpers + 1)]
        for t in self._threads:
            t.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _work(self, slot):
        # floating-point warnings are the training loop's to judge: it stops a model
        # whose loss or parameters are no longer finite (gmmdiff.training.loop.Diverged)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._serve(slot)

    def _serve(self, slot):
        cv = self._cv
        while True:
            with cv:
                while not (self._closed or self._tasks or self._jobs):
                    cv.wait()
                if self._closed:
                    return
                if self._jobs:                  # jobs first: see the class docstring
                    job = self._jobs.popleft()
                    job.state = "running"
                else:
                    fn, batch = self._tasks.popleft()
                    job = None
            if job is None:
                self._run_task(fn, batch, slot)
            else:
                self._run_job(job)

    def _run_task(self, fn, batch, slot):
        """Call ``fn(slot)``, count it done in ``batch`` (keeping its first error)."""
        try:
            fn(slot)
            err = None
        except BaseException as exc:  # noqa: BLE001 - raised by run()
            err = exc
        with self._cv:
            batch.left -= 1
            if err is not None and batch.error is None:
                batch.error = err
            self._cv.notify_all()

    def _run_job(self, job):
        """Run a job this thread has marked running; keep its result or error."""
        try:
            job.result = job.fn()
        except BaseException as exc:  # noqa: BLE001 - raised by wait_all()
            job.error = exc
        with self._cv:
            job.state = "done"
            self._cv.notify_all()

    def run(self, tasks):
        """Call every ``task(slot)`` of ``tasks`` once, on this thread (slot 0) and the
        helpers; return when all have returned. The first exception of a task is
        raised here once no task of the list is running (on this thread alone, the
        tasks after it are skipped)."""
        if not self.helpers or len(tasks) < 2:
            for task in tasks:
                task(0)
            return
        batch = _Batch(len(tasks))
        cv = self._cv
        with cv:
            self._tasks.extend((task, batch) for task in tasks)
            cv.notify_all()
        while True:
            with cv:
                if not self._tasks:
                    break
                fn, b = self._tasks.popleft()
            self._run_task(fn, b, 0)
        with cv:
            while batch.left:
                cv.wait()
        if batch.error is not None:
            raise batch.error

    def submit(self, fn):
        """Queue ``fn()`` as a background job; returns its :class:`Job` for
        :meth:`wait`."""
        job = Job(fn)
        if self.helpers:
            with self._cv:
                self._jobs.append(job)
                self._cv.notify_all()
        return job

    def wait(self, job):
        """The result of ``job``: run here if no helper has started it, else waited for;
        its exception is raised here."""
        return self.wait_all([job])[0]

    def wait_all(self, jobs):
        """The results of ``jobs`` (a list): those no helper has started run here, in
        order, then the rest are waited for; the first exception is raised here, after
        every job has ended."""
        cv = self._cv
        for job in jobs:
            with cv:
                if job.state != "queued":
                    continue
                if self.helpers:
                    self._jobs.remove(job)
                job.state = "running"
            self._run_job(job)
        with cv:
            while any(job.state != "done" for job in jobs):
                cv.wait()
        for job in jobs:
            if job.error is not None:
                raise job.error
        return [job.result for job in jobs]

    def cancel(self, job):
        """Drop ``job`` if no helper has started it, else wait for it to end (its
        exception, if any, is dropped: nothing will read its result)."""
        with self._cv:
            if job.state == "queued":
                if self.helpers:
                    self._jobs.remove(job)
                job.state = "done"
                return
            while job.state != "done":
                self._cv.wait()

    def close(self):
        """Drop the jobs not started, let the helpers finish what they run, join them."""
        with self._cv:
            self._closed = True
            self._jobs.clear()
            self._cv.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []


def training_crew(cores=None):
    """The :class:`Crew` of a numpy training loop: one helper per core beyond the
    training thread's (:func:`cpu_count`); every thread calls the BLAS at one thread
    (:func:`blas_threads`)."""
    cores = cpu_count() if cores is None else int(cores)
    return Crew(cores - 1)
