"""Exclusive locks: one live process per run directory or per unit of a sweep.

A lock is a file (``.lock`` in a run directory, ``.lock-<unit>`` in a sweep directory)
on which its holder keeps an exclusive ``flock(2)``. The kernel drops that lock when the
holding process exits, however it exits (``kill -9`` included), so a lock is held
exactly as long as its process lives: there is no stale lock to break by hand. The file
itself names the holder (pid, host, start time) for the message shown to a second
process; the holder deletes it on release, and a file left by a killed holder is simply
taken over by the next process (or removed by :func:`remove_stale_locks`).

flock works across processes of one machine and, on Linux NFS clients, across machines
(it is mapped to a POSIX byte-range lock there).
"""
import errno
import fcntl
import json
import os
import socket
import time


class LockHeld(ValueError):
    """Another live process holds the lock (the message names it)."""


class Lock:
    """An exclusive lock on ``path``; :meth:`acquire` never blocks."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.fd = None

    def acquire(self):
        """Take the lock: True, or False when another live process holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return False
                raise
            try:                          # still the file at self.path? (a holder that
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino  # released deletes it)
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
            self.fd = fd
            return True

    def release(self):
        """Delete the lock file and drop the lock (idempotent)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:  # pragma: no cover - removed by hand
            pass
        os.close(self.fd)
        self.fd = None

    def holder(self):
        """'pid 123 on host h since 2026-11-28 12:00:00', as far as the file tells."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                info = json.load(fh)
            return f"pid {info['pid']} on host {info['host']} since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def try_lock(path):
    """The :class:`Lock` on ``path`` if it could be taken, else None."""
    lock = Lock(path)
    return lock if lock.acquire() else None


def lock_or_refuse(path, what):
    """The :class:`Lock` on ``path``, or :class:`LockHeld` naming its holder: "``what``
    is in use by pid ... on host ... since ..."."""
    lock = Lock(path)
    if not lock.acquire():
        raise LockHeld(f"{what} is in use by {lock.holder()}; wait for it to finish "
                       "(a killed holder releases its lock at once)")
    return lock


def remove_stale_locks(directory, prefix=".lock"):
    """Delete lock files in ``directory`` that no live process holds (left by a killed
    holder). Returns the names removed."""
    removed = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(prefix):
            lock = try_lock(os.path.join(directory, name))
            if lock is not None:
                lock.release()
                removed.append(name)
    return removed
