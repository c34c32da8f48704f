"""Worker processes of the click scripts: ``--jobs`` and ``--devices``.

Each worker runs the same command with the same options (the sweep's units are shared
through their lock files), its BLAS at the threads it is given, and dies with its
parent (``PR_SET_PDEATHSIG`` where the platform has it). SIGTERM to the parent reaches
every worker, which saves its work (:mod:`gmmdiff.training.interrupt`); so does Ctrl-C.
"""
import ctypes
import os
import signal
import subprocess
import sys
import threading

from gmmdiff.engine.threads import CORES_ENV, cpu_count


def parse_devices(spec, backend):
    """'0,1,3' -> ['0', '1', '3'] (distinct GPU ordinals) for the cupy backend; anything
    else raises ValueError naming the value."""
    devs = [d.strip() for d in str(spec).split(",") if d.strip()]
    if not devs or not all(d.isdigit() for d in devs) or len(set(devs)) != len(devs):
        raise ValueError(f"--devices {spec!r} not understood; accepted: distinct GPU numbers "
                         "such as 0,1,2,3")
    if backend != "cupy":
        raise ValueError(f"--devices {spec} runs one worker per GPU and needs --backend cupy "
                         f"(got {backend}); for CPU workers use --jobs")
    return devs


MAX_JOBS = 1024             # --jobs: more is a typo, not a machine


def check_jobs(jobs, backend):
    """--jobs above :data:`MAX_JOBS` is refused (a typo: one process per job was started
    before any cap); --jobs > 1 on cupy would start every worker on the same GPU, each
    sizing its draw chunks from that GPU's free memory as if alone: refused, pointing
    to --devices."""
    if jobs > MAX_JOBS:
        raise ValueError(f"--jobs {jobs} is more worker processes than any machine has cores; "
                         f"accepted: 1 to {MAX_JOBS} (no more workers are started than there "
                         "are units to train and cores to run them)")
    if jobs > 1 and backend == "cupy":
        raise ValueError(f"--jobs {jobs} with --backend cupy would start {jobs} workers on one "
                         f"GPU; use --devices {','.join(str(k) for k in range(jobs))} (one "
                         "worker per listed GPU) instead")


def worker_count(jobs, units, cores=None):
    """How many CPU workers ``--jobs jobs`` starts for ``units`` units to train: at most
    one per unit (a worker without a unit only waits) and one per core (``cores``,
    default :func:`gmmdiff.engine.threads.cpu_count`: more would share cores and
    finish no sooner), at least one. Returns (workers, why): ``why`` names the limits
    when they start fewer than ``jobs``, '' otherwise."""
    cores = cpu_count() if cores is None else cores
    n = max(1, min(jobs, units, cores))
    if n == jobs:
        return n, ""
    return n, (f"{units} unit{'s' if units != 1 else ''} to train, {cores} "
               f"core{'s' if cores != 1 else ''}")


def probe_backend(backend, env=None):
    """Check in a short child process, with the environment ``env`` of a worker, that
    the backend works (:func:`gmmdiff.backend.get_xp`: CuPy's first kernel and matrix
    product), so that a sweep with workers fails before it writes anything, and the
    parent holds no CUDA context on any GPU. Raises ValueError with the child's line."""
    if backend != "cupy":
        return
    code = ("import sys\nfrom gmmdiff.backend import get_xp\ntry:\n    get_xp('cupy')\n"
            "except ValueError as e:\n    print(e)\n    sys.exit(2)\n")
    child = dict(os.environ, **(env or {}))
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # gmmdiff's parent
    child["PYTHONPATH"] = os.pathsep.join(p for p in (child.get("PYTHONPATH"), here) if p)
    r = subprocess.run([sys.executable, "-c", code], env=child, capture_output=True, text=True)
    if r.returncode != 0:
        lines = (r.stdout.strip() or r.stderr.strip() or f"exit code {r.returncode}").splitlines()
        raise ValueError(lines[0] if r.returncode == 2 else lines[-1])


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def without_options(argv, names):
    """``argv`` without the options ``names`` and their values: "--jobs 2",
    "--jobs=2", and for a short name "-j 2" and "-j2" alike."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True
            continue
        if any(a.startswith(n + "=") or (len(n) == 2 and a.startswith(n) and len(a) > 2)
               for n in names):
            continue
        out.append(a)
    return out


def _death_signal_setter():
    """A function for the child, between fork and exec, that makes it receive SIGKILL
    when the parent dies (Linux prctl PR_SET_PDEATHSIG; resolved here, in the parent, so
    the child calls no dlopen), and exits at once if the parent is already gone."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    parent = os.getpid()

    def set_death_signal():  # pragma: no cover - runs in the child
        # SIGTERM stays pending until the worker holds it (interrupt.hold): none is lost,
        # and none ends a worker that is still starting
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        prctl(1, signal.SIGKILL)                                         # PR_SET_PDEATHSIG
        if os.getppid() != parent:                                       # died before prctl
            os._exit(1)
    return set_death_signal


STOP_WAIT_S = 60            # Ctrl-C: how long the workers may take to save their work


def run_workers(command, envs, relay=None):
    """Run ``command`` once per dict in ``envs`` (extra environment of each worker), all
    at once, and wait for every one. Worker k gets GMMDIFF_WORKER=k; when workers
    share the CPU (no device list), BLAS/OpenMP threads and the cores of each worker's
    training thread budget (:mod:`gmmdiff.engine.threads`) are capped at cores // workers
    unless the caller set them. The workers print to the parent's stdout and stderr, or,
    given ``relay``, each line they print is passed to ``relay(line, err)`` (``err``:
    it came from stderr) as it comes -- so that a parent drawing a progress bar prints
    them above it. Returns the exit codes.

    SIGTERM to this process is passed on to every worker still running (and then to
    the handler it had, which records it where the script holds it); each worker
    starts with SIGTERM blocked until it holds it, so a signal during its start-up
    waits instead of killing it. Ctrl-C (KeyboardInterrupt here) sends SIGTERM to the
    workers, waits up to :data:`STOP_WAIT_S` seconds for them to save their work, kills
    those still running, and raises on."""
    procs, readers = [], []
    preexec = _death_signal_setter()
    threads = str(max(1, (os.cpu_count() or 1) // len(envs)))
    pipe = {} if relay is None else dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         errors="replace", bufsize=1)

    def stop_workers(signum=signal.SIGTERM):
        for p in procs:
            if p.returncode is None:
                try:
                    p.send_signal(signum)
                except OSError:      # (already gone)
                    pass

    before = signal.getsignal(signal.SIGTERM)

    def pass_on(signum, frame):
        stop_workers(signum)
        if callable(before):
            before(signum, frame)

    signal.signal(signal.SIGTERM, pass_on)
    try:
        for k, extra in enumerate(envs):
            env = dict(os.environ, GMMDIFF_WORKER=str(k), **extra)
            if "CUDA_VISIBLE_DEVICES" not in extra:
                for var in THREAD_VARIABLES + (CORES_ENV,):     # CORES_ENV: the training budget
                    env.setdefault(var, threads)
            if relay is not None:
                env["PYTHONUNBUFFERED"] = "1"                   # each line as it is printed
            procs.append(subprocess.Popen(command, env=env, preexec_fn=preexec, **pipe))
            if relay is not None:
                for stream, err in ((procs[-1].stdout, False), (procs[-1].stderr, True)):
                    readers.append(threading.Thread(target=_relay_lines,
                                                    args=(stream, err, relay), daemon=True))
                    readers[-1].start()
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        stop_workers()
        for p in procs:
            try:
                p.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    except BaseException:
        for p in procs:
            p.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, before)
    for t in readers:
        t.join()
    return codes


def _relay_lines(stream, err, relay):
    """Pass each line of ``stream`` (a worker's pipe) to ``relay`` until it closes."""
    with stream:
        for line in stream:
            relay(line.rstrip("\n"), err)
