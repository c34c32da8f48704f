"""Files on disk: plain JSON, NPY and NPZ, every file written atomically; no pickle.

Writes go to a temporary file in the same directory, are flushed and fsynced, then
renamed over the target (atomic on POSIX): a killed process leaves either the old file
or the new one, never a partial file under the final name. A temporary file is named
``.tmp-<pid>@<host>@...`` after its writer, so the next process to open the directory
can tell a killed writer's leftover (its process is gone, or the file is more than an
hour old) from a file another live process is writing right now. Files are created with
the permissions the user's umask gives any new file (``0666 & ~umask``), so a sweep
directory shared with colleagues is readable by them.

Readers check what they read (sizes, dtypes, finite values, no object arrays) and raise
:class:`StorageError`, one line naming the file and what to do.
"""
import errno
import io
import json
import math
import os
import socket
import stat
import tempfile
import time
import zipfile
import zlib

import numpy as np


class StorageError(ValueError):
    """A run directory or results file that cannot be used (message names the path)."""


TMP_PREFIX = ".tmp-"


STALE_AFTER_S = 3600        # a temporary file older than this has no live writer


def _umask():
    """The process's umask (read from /proc where possible: os.umask can only be read by
    setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _temporary_prefix():
    return f"{TMP_PREFIX}{os.getpid()}@{socket.gethostname()}@"    # '@' ends a host name


def is_stale_temporary(path):
    """Whether temporary file ``path`` (``.tmp-<pid>@<host>@...``) is a leftover: its
    writer was on this host and is gone, or it is older than :data:`STALE_AFTER_S`
    (writes take seconds). Files of the older unnamed form count as leftovers too."""
    name = os.path.basename(path)
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return False
    if age > STALE_AFTER_S:
        return True
    pid, _, rest = name[len(TMP_PREFIX):].partition("@")
    host, sep, _ = rest.partition("@")
    if not pid.isdigit() or not host or not sep:
        return True
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # pragma: no cover - alive, another user's
        return False
    return False


def remove_temporaries(directory):
    """Delete the leftover temporary files in ``directory`` (:func:`is_stale_temporary`).
    Returns the names removed."""
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(TMP_PREFIX) and is_stale_temporary(path):
            try:
                os.unlink(path)
                removed.append(name)
            except FileNotFoundError:  # pragma: no cover - raced with its writer's rename
                pass
    return removed


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temporary file + fsync + rename), with the
    permissions the umask gives a new file."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(), suffix=os.path.basename(path),
                                   dir=directory)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


def _write_error(path, exc):
    """The StorageError of a failed write of ``path``: the file, the system's reason and
    what to do (whatever was under its name is unchanged: the write went to a temporary
    file, removed)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    advice = ("free space on its file system (or choose another directory), then re-run the "
              "same command" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else
              "check the path and its permissions, then re-run the same command")
    return StorageError(f"cannot write {path}: {reason} (nothing was written under that "
                        f"name); {advice}")


def check_output_file(path, what="output file"):
    """Raise StorageError unless a file can be written at ``path`` (atomically, by
    :func:`atomic_write_bytes`): its directory exists and is writable, and nothing but
    a regular file or a symbolic link (which the rename replaces) is there under its
    name. Reads, writes nothing; for checking every output before the work that
    produces them."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        raise StorageError(f"cannot write {what} {path}: {directory} is not a writable directory")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot write {what} {path}: {exc.strerror}") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise StorageError(f"cannot write {what} {path}: it is {kind}; remove or rename it")


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_json(path, obj):
    """Atomically write ``obj`` as indented JSON (numpy values converted; NaN -> null)."""
    atomic_write_bytes(path, (json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n").encode())


def check_regular_file(path, what="file"):
    """Raise StorageError unless ``path`` is a regular file (or absent: the reader
    reports that): a FIFO would block the reader forever, a device read without end."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)"
                if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "not a regular file")
        raise StorageError(f"{what} {path} is {kind}; give a regular file")


MAX_JSON_BYTES = 256 << 20          # larger than any file gmmdiff writes


def read_json(path):
    """Read a JSON file; a missing, truncated or corrupt file raises StorageError (so do
    a non-regular file and the non-standard constants NaN and Infinity, which gmmdiff
    never writes)."""
    check_regular_file(path, "JSON file")
    try:
        if os.path.getsize(path) > MAX_JSON_BYTES:
            raise StorageError(f"{path} is larger than any JSON file gmmdiff writes "
                               f"({MAX_JSON_BYTES >> 20} MiB); it is not a gmmdiff file")
        with open(path, encoding="utf-8") as fh:
            return json.load(fh, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except FileNotFoundError:
        raise StorageError(f"missing file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StorageError(f"corrupt or truncated JSON file {path}: {exc}") from None
    except _Duplicate as exc:
        raise StorageError(f"corrupt JSON file {path}: duplicate key {exc.args[0]!r} in one "
                           "object, which gmmdiff never writes; restore or remove the file") from None
    except RecursionError:
        raise StorageError(f"corrupt JSON file {path}: nested too deeply") from None
    except _Constant as exc:
        raise StorageError(f"corrupt JSON file {path}: it holds {exc.args[0]}, which gmmdiff "
                           "never writes") from None
    except ValueError as exc:       # an integer beyond Python's limit on digits
        raise StorageError(f"corrupt JSON file {path}: it holds a number too long to read "
                           f"({str(exc).split(';')[0].splitlines()[0]}), which gmmdiff never "
                           "writes; restore or remove the file") from None


def not_json_hint(path):
    """'; PATH looks like a CSV table (...)' or '; this file is not JSON': what a file
    that failed to parse as JSON seems to be, for an error message."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(200).decode("utf-8", "replace").splitlines()[:1]
    except OSError:
        return ""
    if head and "," in head[0] and not head[0].lstrip().startswith(("{", "[")):
        return (f"; {os.path.basename(path)} looks like a CSV table (such as the summary.csv of "
                "`gmmdiff-sweep --summary`), which holds measurements, not fitted weights")
    return "; this file is not JSON"


class _Constant(ValueError):
    pass


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs):
    """A JSON object as a dict, refusing a key given twice (json.load would keep the
    last silently, so that two readers of one file could disagree on what it says)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        raise _Duplicate(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


def _no_constant(name):
    raise _Constant(name)


def write_npz(path, arrays):
    """Atomically write a dict of host arrays as an uncompressed NPZ."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def _read_npy(fh, available, name, max_bytes):
    """One array from the open NPY stream ``fh``: the header is parsed and checked first
    (no object dtype, i.e. no pickle; the declared size within the ``available`` bytes
    of the file and ``max_bytes``), then exactly the declared bytes are read."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported NPY format version {version}")
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise ValueError(f"{name}: not an NPY array ({str(exc).splitlines()[0][:80]})") from None
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects (dtype {dtype}), which gmmdiff never "
                         "writes and never loads (that would unpickle them)")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > available or nbytes > max_bytes:
        raise ValueError(f"{name}: its header declares shape {shape} of {dtype} "
                         f"({nbytes:.4g} bytes), more than the file holds ({available} bytes)"
                         if nbytes > available else
                         f"{name}: its header declares shape {shape} ({nbytes:.4g} bytes), "
                         "more than the memory available")
    buf = bytearray(nbytes)
    if fh.readinto(memoryview(buf)) != nbytes:
        raise ValueError(f"{name}: truncated (fewer bytes than its header declares)")
    arr = np.frombuffer(buf, dtype=dtype) if nbytes else np.zeros(0, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


def _host_limit():
    from gmmdiff.backend import available_bytes
    avail = available_bytes(np)
    return avail if avail is not None else float("inf")


def read_npy(path, what="NPY file"):
    """Read one ``.npy`` array safely (header checked before any allocation, no pickle);
    a missing, truncated, corrupt or non-regular file raises StorageError naming it."""
    check_regular_file(path, what)
    try:
        with open(path, "rb") as fh:
            return _read_npy(fh, os.fstat(fh.fileno()).st_size, os.path.basename(path),
                             _host_limit())
    except FileNotFoundError:
        raise StorageError(f"missing file: {path}") from None
    except (ValueError, OSError) as exc:
        raise StorageError(f"corrupt or truncated {what} {path}: {exc}") from None


def read_npz(path, what="NPZ file"):
    """Read an NPZ into a dict of numpy arrays: every member's header is checked
    before its array is allocated (no object dtype, i.e. no pickle; a declared shape
    no larger than the member's stored bytes or the memory available). A missing,
    truncated, corrupt or non-regular file raises StorageError naming it."""
    check_regular_file(path, what)
    try:
        size = os.path.getsize(path)
        limit = _host_limit()
        out = {}
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename
                if not name.endswith(".npy"):
                    raise ValueError(f"member {name!r} is not an array")
                if info.compress_type == zipfile.ZIP_STORED and info.file_size > size:
                    raise ValueError(f"member {name!r} declares {info.file_size} bytes, more "
                                     f"than the file's {size}")
                with z.open(info) as fh:
                    out[name[:-4]] = _read_npy(fh, info.file_size, name, limit)
        return out
    except FileNotFoundError:
        raise StorageError(f"missing file: {path}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
            NotImplementedError, zlib.error) as exc:
        raise StorageError(f"corrupt or truncated {what} {path}: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                           ) from None


def read_record(path, required=(), advice="remove it or choose another directory"):
    """A JSON file that must hold an object with the keys ``required``; anything else
    (a list, a missing key) raises StorageError naming the file (and ``advice``)."""
    obj = read_json(path)
    missing = [k for k in required if not isinstance(obj, dict) or k not in obj]
    if not isinstance(obj, dict) or missing:
        what = "a JSON object" + (f" with {', '.join(repr(k) for k in required)}" if required else "")
        raise StorageError(f"{path} is not a gmmdiff file (expected {what}); {advice}")
    return obj


def check_identity(path, identity, refusal, advice):
    """Raise StorageError unless the identity stored in JSON file ``path`` equals
    ``identity``; the message is ``refusal`` plus the differing keys and ``advice``."""
    found = read_record(path, ("identity",))["identity"]
    identity = jsonable(identity)
    if not isinstance(found, dict):
        raise StorageError(f"{path} is not a gmmdiff file (its identity is not an object); "
                           "remove it or choose another directory")
    if found != identity:
        diff = identity_differences(found, identity)
        raise StorageError(f"{refusal} ({os.path.basename(path)} differs in: "
                           f"{', '.join(diff) or 'format'}); {advice}")


_MISSING = object()


def identity_differences(found, wanted, prefix=""):
    """The settings in which two identities differ, nested dicts followed down (a
    sweep's shared settings are its identity's ``base``), each as
    ``'base.steps (here 5000, in the directory 3000)'``, sorted by name."""
    out = []
    for k in sorted(set(found) | set(wanted)):
        a, b = found.get(k, _MISSING), wanted.get(k, _MISSING)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += identity_differences(a, b, f"{prefix}{k}.")
            continue
        show = (lambda v: "absent" if v is _MISSING else json.dumps(v))  # noqa: E731
        out.append(f"{prefix}{k} (here {show(b)}, in the directory {show(a)})")
    return out
