"""Exclusive locks: one live process per run directory or per unit of a sweep.

A lock is a file (``.lock`` in a run directory, ``.lock-<unit>`` in a sweep directory)
on which its holder keeps an exclusive ``flock(2)``. The kernel drops that lock when the
holding process exits, however it exits (``kill -9`` included), so a lock is held
exactly as long as its process lives: there is no stale lock to break by hand. The file
itself names the holder (pid, host, start time) for the message shown to a second
process; the holder deletes it on release, and a file left by a killed holder is simply
taken over by the next process that claims it.

Within one process a lock is reentrant: taking a lock the process already holds
succeeds and counts, and the last release drops it (a sweep holds its configurations'
run directories for a whole unit while the run protocol opens them phase by phase).
Lock files are readable and writable by everyone (mode 0666), so that colleagues'
processes sharing a sweep directory can take them; a file another user left behind is
taken over read-only. flock works across processes of one machine and, on Linux NFS
clients, across machines (it is mapped to a POSIX byte-range lock there).
"""
import errno
import fcntl
import json
import os
import socket
import time


class LockHeld(ValueError):
    """Another live process holds the lock (the message names it)."""


_HELD = {}                  # path -> [fd, count]: the locks this process holds


class Lock:
    """An exclusive lock on ``path``; :meth:`acquire` never blocks."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.held = False

    def _open(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:                    # another user's file: lock it read-only
            return os.open(self.path, os.O_RDONLY), False
        try:
            os.fchmod(fd, 0o666)
        except OSError:                            # another user's file, opened read-write
            pass
        return fd, True

    def acquire(self):
        """Take the lock: True, or False when another live process holds it."""
        if self.path in _HELD:
            _HELD[self.path][1] += 1
            self.held = True
            return True
        while True:
            fd, writable = self._open()
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
            if writable:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
            _HELD[self.path] = [fd, 1]
            self.held = True
            return True

    def release(self):
        """Drop this hold of the lock; the last one deletes the file (idempotent)."""
        if not self.held:
            return
        self.held = False
        entry = _HELD[self.path]
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[self.path]
        try:
            os.unlink(self.path)
        except OSError:  # pragma: no cover - removed by hand, or a directory we cannot write
            pass
        os.close(entry[0])

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
