"""Stopping a run on a signal with nothing lost: Slurm's preemption and time limits.

Slurm ends a job that is preempted or reaches its time limit with SIGTERM (at the time
of ``sbatch --signal=TERM@<seconds>``, before the limit), then SIGKILL a grace period
later. Inside :func:`stop_on` such a signal only records itself; the training loop
(:func:`gmmdiff.training.loop.train`) looks at the record after every optimizer step and,
where one is pending, saves its checkpoint and raises :class:`Interrupted`; the run
protocol looks between the model sizes it evaluates and a sweep between its units
(:func:`check`). The process can then exit with a status its batch script requeues
(:data:`gmmdiff.cli.slurm.REQUEUE_EXIT`), and the requeued process resumes from the
checkpoint. Results do not change: a checkpoint holds everything needed to continue bit
for bit from any step (:mod:`gmmdiff.training.state`; the training noise is stateless,
:mod:`gmmdiff.training.draws`).

Outside :func:`stop_on` nothing is recorded and the signals keep their handlers (SIGTERM
ends the process at once, as before) -- unless a script called :func:`hold`: the
command-line scripts hold SIGTERM from their first lines to their exit, so that a signal
at any moment -- during start-up, a second one while the first is handled, one during
the exit -- is recorded, never the end of the process. Before that, for ~0.1 s, Python
itself starts (0.04-0.36 s on a loaded 2-core machine) and SIGTERM ends it, having
written nothing (the batch script requeues that task too,
:data:`gmmdiff.cli.slurm.TERM_STATUS`); a parent that starts gmmdiff,
:func:`gmmdiff.cli.workers.run_workers`, blocks SIGTERM in its children until they hold
it, so that none is lost there.
"""
import atexit
import contextlib
import signal

_received = []              # signal numbers received inside stop_on or held, first first
_held = set()               # signals held (hold) for the rest of the process


class Interrupted(Exception):
    """The run stopped on a signal, after saving what it had (its checkpoint, or its
    finished results). ``signum``: the signal; ``where``: what was stopped (a phrase)."""

    def __init__(self, signum, where):
        self.signum, self.where = signum, where
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}")


def pending():
    """The first signal received inside :func:`stop_on`, or None: cheap enough to ask
    after every optimizer step (no system call, no host-device synchronization)."""
    return _received[0] if _received else None


def check(where):
    """Raise :class:`Interrupted` (``where``: what stops, for its message) if a signal
    is pending."""
    if _received:
        raise Interrupted(_received[0], where)


@contextlib.contextmanager
def stop_on(*signums):
    """Inside the block, the signals ``signums`` (default: SIGTERM) are recorded
    (:func:`pending`) instead of acting; their previous handlers come back after it and
    the record is cleared. Main thread only (Python delivers signals there)."""
    signums = signums or (signal.SIGTERM,)
    previous = {s: signal.signal(s, _record) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if not _held & set(signums):    # (a held signal stays recorded: the script exits on it)
            _received.clear()


def hold(*signums):
    """For the rest of the process, record the signals ``signums`` (default: SIGTERM)
    as :func:`stop_on` does, and ignore them once the interpreter exits (``atexit``:
    Python resets its handlers to the default while it shuts down, where a late signal
    would end the process with -SIGTERM instead of its exit status). Call it first in a
    script, before its heavy imports. The signals are then unblocked: a parent that
    blocked them in this process (:func:`gmmdiff.cli.workers.run_workers`) delivers
    what arrived before now. Main thread only."""
    signums = signums or (signal.SIGTERM,)
    if not _held:
        atexit.register(_ignore_held)
    for s in signums:
        signal.signal(s, _record)
        _held.add(s)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signums)


def release():
    """Give the held signals (:func:`hold`) their default action back, for a command
    that turns out to train nothing (``gmmdiff-sweep --summary``, ``--sbatch``): SIGTERM
    ends it at once, as it ends any program. One received while held ends it now."""
    for s in _held:
        signal.signal(s, signal.SIG_DFL)
    _held.clear()
    if _received:
        signal.raise_signal(_received[0])


def _ignore_held():
    for s in _held:
        signal.signal(s, signal.SIG_IGN)


def _record(signum, frame):
    _received.append(signum)
