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
ends the process at once, as before).
"""
import contextlib
import signal

_received = []              # signal numbers received inside stop_on, first first


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
        _received.clear()


def _record(signum, frame):
    _received.append(signum)
