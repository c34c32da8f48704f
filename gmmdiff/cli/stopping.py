"""What a stopped command kept: the line gmmdiff-train and gmmdiff-sweep print when
SIGTERM or Ctrl-C stops them.

SIGTERM -- Slurm's preemption and time-limit signal, held by the scripts from their
first line (:func:`gmmdiff.training.interrupt.hold`) -- makes training save its
checkpoint at the step in progress; the command then exits with status 75
(:data:`gmmdiff.cli.slurm.REQUEUE_EXIT`), which a batch script requeues. Ctrl-C stops at
once and keeps what was on disk: the last periodic checkpoint (``--checkpoint-every``)
and the finished model sizes or configurations. Either way the line printed says what
the directory holds now, read back from it (:func:`run_kept`, :func:`sweep_kept`), not
what the command meant to keep.
"""
import os

from gmmdiff.experiments.sweep.units import is_complete
from gmmdiff.io.files import StorageError, read_npz
from gmmdiff.io.rundir import completed_sizes

KEPT = "gmmdiff.kept"       # click's ctx.meta key: a function returning the kept phrase


def checkpoint_step(path):
    """The step the checkpoint file ``path`` holds; None where there is no such file,
    -1 where it cannot be read."""
    if not os.path.exists(path):
        return None
    try:
        return int(read_npz(path, "checkpoint")["step"])
    except (StorageError, KeyError, TypeError, ValueError, OSError):
        return -1


def _at(step, steps):
    return "that cannot be read" if step < 0 else f"at step {step:,} of {steps:,}"


def run_kept(out, steps):
    """'kept in OUT: the checkpoint at step 1,300 of 50,000 and the finished sizes
    M = 2, 4', or 'nothing kept in OUT (...)': what the run directory ``out`` of a
    training of ``steps`` steps holds now, read from it."""
    parts = []
    step = checkpoint_step(os.path.join(out, "checkpoint.npz"))
    if step is not None:
        parts.append(f"the checkpoint {_at(step, steps)}")
    try:
        sizes = completed_sizes(out) if os.path.isdir(out) else []
    except (StorageError, OSError):
        sizes = []
    if sizes:
        parts.append(f"the finished size{'s' if len(sizes) > 1 else ''} M = "
                     f"{', '.join(map(str, sizes))}")
    if not parts:
        return f"nothing kept in {out} (no size finished, no checkpoint written yet)"
    return f"kept in {out}: {' and '.join(parts)}"


def sweep_kept(out, configurations, steps):
    """'kept in OUT: 3 of 54 configurations finished, the checkpoint of unit
    N20-d10-shard0of1 (coarse) at step 3,000 of 5,000', or 'nothing kept in OUT': what
    the sweep directory ``out`` holds now for ``configurations`` trained ``steps`` steps,
    read from it."""
    if not os.path.isdir(out):
        return f"nothing kept in {out} (not created yet)"
    done = sum(is_complete(out, c) for c in configurations)
    parts = [f"{done} of {len(configurations)} configurations finished"]
    for name in sorted(os.listdir(out)):
        if name.startswith("checkpoint-") and name.endswith(".npz"):
            unit, _, phase = name[len("checkpoint-"):-len(".npz")].rpartition("-")
            step = checkpoint_step(os.path.join(out, name))
            parts.append(f"the checkpoint of unit {unit} ({phase}) {_at(step, steps)}")
    return f"kept in {out}: {', '.join(parts)}"
