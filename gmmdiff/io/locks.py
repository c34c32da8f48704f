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
A lock file is never opened through a symbolic link (``O_NOFOLLOW``, also when it is
created, so a dangling link cannot make gmmdiff create a file elsewhere) and must be a
regular file with no other hard link: anything else at a lock's path is refused with
one line (:class:`LockError`), so a user who can write into a shared sweep directory
cannot turn another user's run into a writer of their files. Lock files get the
permissions the umask gives any new file (``0666 & ~umask``, as results do): a
colleague's process sharing the directory needs to read them to take them (umask 022
or 002); a file another user left behind is taken over read-only. flock works across
processes of one machine and, on Linux NFS clients, across machines (it is mapped to a
POSIX byte-range lock there).
"""
import errno
import fcntl
import json
import os
import socket
import stat
import time


class LockHeld(ValueError):
    """Another live process holds the lock (the message names it)."""


class LockError(ValueError):
    """The path of a lock holds something that must not be opened as one (a symbolic
    link, a hard link, a FIFO or device, another user's unreadable file)."""


_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _refuse(path, what):
    raise LockError(f"lock file {path} {what}; gmmdiff refuses to use it as a lock: remove it "
                    "(and check who put it there)")


def _unwritable(path, exc):
    """The error of a lock file that cannot be created or written: the file, the
    system's reason and what to do."""
    advice = ("free space on its file system, then re-run the same command"
              if exc.errno in (errno.ENOSPC, errno.EDQUOT) else
              "check the directory and its permissions, then re-run the same command")
    return ValueError(f"cannot write lock file {path}: {exc.strerror or exc}; {advice}")


def check_lock_path(path):
    """Raise LockError unless ``path`` is absent or a regular file with one link (what
    :func:`open_lock_file` accepts), without opening it: a caller refuses a bad lock
    path before it prints or writes anything."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        _refuse(path, "is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        _refuse(path, "is not a regular file")
    if st.st_nlink != 1:
        _refuse(path, f"has {st.st_nlink} hard links")


def open_lock_file(path, flags, mode=0o666):
    """``os.open`` of a lock file that never follows a symbolic link (nor creates a file
    through a dangling one) and accepts only a regular file with one link; LockError
    otherwise, naming the path."""
    try:
        fd = os.open(path, flags | _FLAGS, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            _refuse(path, "is a symbolic link")
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        _refuse(path, "is not a regular file" if not stat.S_ISREG(st.st_mode)
                else f"has {st.st_nlink} hard links")
    return fd


_HELD = {}                  # path -> [fd, count]: the locks this process holds


class Lock:
    """An exclusive lock on ``path``; :meth:`acquire` never blocks."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.held = False

    def _open(self):
        try:                                       # mode 0666 & ~umask, as any new file
            return open_lock_file(self.path, os.O_RDWR | os.O_CREAT), True
        except PermissionError:                    # another user's file: lock it read-only
            try:
                return open_lock_file(self.path, os.O_RDONLY), False
            except PermissionError:
                _refuse(self.path, "belongs to another user who did not let others read it")
        except OSError as exc:                     # a full disk, a read-only file system
            raise _unwritable(self.path, exc) from None

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
                same = os.lstat(self.path).st_ino == os.fstat(fd).st_ino  # released deletes it)
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            if writable:
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                             "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
                except OSError as exc:            # (closing the file drops the lock)
                    os.close(fd)
                    raise _unwritable(self.path, exc) from None
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
        try:                              # still our file (not one put in its place)?
            if os.lstat(self.path).st_ino == os.fstat(entry[0]).st_ino:
                os.unlink(self.path)
        except OSError:  # pragma: no cover - removed by hand, or a directory we cannot write
            pass
        os.close(entry[0])

    def holder(self):
        """'pid 123 on host h since 2026-11-28 12:00:00', as far as the file tells."""
        try:
            fd = open_lock_file(self.path, os.O_RDONLY)
            with os.fdopen(fd, "rb") as fh:
                info = json.loads(fh.read(4096).decode("utf-8"))
            return f"pid {info['pid']} on host {info['host']} since {info['since']}"
        except LockError:
            raise
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
