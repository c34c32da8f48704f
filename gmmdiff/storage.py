"""Results on disk: plain JSON and NPZ, every file written atomically; no pickle.

A run directory holds

- ``config.json``  -- every setting that determines the results, the package version,
  backend, dtype and seed (a run directory belongs to one configuration);
- ``model_M00020.json`` / ``model_M00020.npz`` -- metrics and learned parameters of one
  model size (the NPZ is written first, the JSON second, the index last);
- ``index.json``   -- the model sizes whose results are complete;
- ``checkpoint.npz`` -- the training state of the sizes in progress (removed once
  their results are written).

Writes go to a temporary file in the same directory, are flushed and fsynced, then
renamed over the target (atomic on POSIX): a killed run leaves either the old file or
the new one, never a partial file under the final name. A temporary file is named
``.tmp-<pid>@<host>@...`` after its writer, so the next process to open the directory
can tell a killed writer's leftover (its process is gone, or the file is more than an
hour old) from a file another live process is writing right now. Files are created with
the permissions the user's umask gives any new file (``0666 & ~umask``), so a sweep
directory shared with colleagues is readable by them.

A run directory is held by one process at a time: :class:`RunDir` takes the
directory's lock (:mod:`gmmdiff.locks`) before it writes anything, and cleans what a
killed holder left behind (temporary files, a half-written first ``config.json``).
"""
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

from . import __version__, locks


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
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(), suffix=os.path.basename(path),
                               dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


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
            return json.load(fh, parse_constant=_no_constant)
    except FileNotFoundError:
        raise StorageError(f"missing file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StorageError(f"corrupt or truncated JSON file {path}: {exc}") from None
    except RecursionError:
        raise StorageError(f"corrupt JSON file {path}: nested too deeply") from None
    except _Constant as exc:
        raise StorageError(f"corrupt JSON file {path}: it holds {exc.args[0]}, which gmmdiff "
                           "never writes") from None


class _Constant(ValueError):
    pass


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
    from .backend import available_bytes
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
        diff = sorted(k for k in set(found) | set(identity) if found.get(k) != identity.get(k))
        raise StorageError(f"{refusal} (differs in: {', '.join(diff) or 'format'}); {advice}")


def leftovers_only(directory):
    """Whether ``directory`` holds nothing but what a killed gmmdiff process can leave
    behind before its first file: temporary files and lock files."""
    return all(n.startswith((TMP_PREFIX, ".lock")) for n in os.listdir(directory))


class RunDir:
    """One run directory: a configuration and the results of its model sizes, held by
    this process until :meth:`close` (or the end of a ``with`` block).

    Parameters
    ----------
    path : directory (created if missing)
    identity : dict of the settings that determine every result; a directory created
        with a different identity is refused
    meta : extra facts recorded in config.json (version, ...) but not compared

    Opening checks everything it can before writing anything (:meth:`check`), then takes
    the directory's lock (a second process on the same run is refused with one line
    naming the holder), removes what a killed holder left (temporary files, including a
    half-written first config.json), and writes config.json if there is none.
    """

    def __init__(self, path, identity, meta=None):
        self.path = os.path.abspath(path)
        self.identity = jsonable(identity)
        self.check(path, self.identity)
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create run directory {path}: {exc.strerror}") from None
        self.lock = locks.lock_or_refuse(os.path.join(self.path, ".lock"), f"run directory {path}")
        try:
            # leftovers of killed writers; not files other live processes are writing
            # right now (plots, a sweep's per-configuration files)
            remove_temporaries(self.path)
            self.check(path, self.identity)                     # again, under the lock
            cfg_path = self.file("config.json")
            if not os.path.exists(cfg_path):
                write_json(cfg_path, {"identity": self.identity,
                                      "meta": dict(meta or {}, gmmdiff_version=__version__)})
        except BaseException:
            self.close()
            raise

    @staticmethod
    def check(path, identity):
        """Raise StorageError unless ``path`` can become or is a run directory of
        ``identity``; writes nothing."""
        full = os.path.abspath(path)
        if os.path.exists(full) and not os.path.isdir(full):
            raise StorageError(f"--out {path} exists and is not a directory")
        if not os.path.isdir(full):
            parent = os.path.dirname(full)
            while not os.path.exists(parent):
                parent = os.path.dirname(parent)
            if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
                raise StorageError(f"cannot create run directory {path}: {parent} is not a "
                                   "writable directory")
            return
        if not os.access(full, os.W_OK | os.X_OK):
            raise StorageError(f"run directory {path} is not writable")
        cfg_path = os.path.join(full, "config.json")
        if os.path.lexists(cfg_path):
            read_checked(cfg_path, SCHEMAS["config"])
            check_identity(cfg_path, identity, f"{path} holds a run with a different configuration",
                           "choose another --out or remove it")
        elif not leftovers_only(full):
            raise StorageError(f"{path} is not empty and is not a gmmdiff run directory; "
                               "choose an empty or new --out")

    def close(self):
        """Release the directory's lock (idempotent)."""
        self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def file(self, name):
        return os.path.join(self.path, name)

    @staticmethod
    def model_stem(M):
        return f"model_M{int(M):05d}"

    def completed(self):
        """Sorted model sizes listed as complete in index.json."""
        return completed_sizes(self.path)

    def write_result(self, M, metrics, arrays):
        """Write one model size's parameters (NPZ), metrics (JSON), then the index."""
        stem = self.model_stem(M)
        write_npz(self.file(stem + ".npz"), arrays)
        write_json(self.file(stem + ".json"), metrics)
        done = sorted(set(self.completed()) | {int(M)})
        write_json(self.file("index.json"), {"complete": done})

    def read_result(self, M):
        """(metrics dict, arrays dict) of a completed model size."""
        stem = self.model_stem(M)
        return read_metrics(self.file(stem + ".json"), int(M)), read_model_arrays(self.file(stem + ".npz"))


def completed_sizes(run_dir):
    """Sorted model sizes listed as complete in ``run_dir/index.json`` ([] without one)."""
    p = os.path.join(run_dir, "index.json")
    if not os.path.exists(p):
        return []
    complete = read_checked(p, SCHEMAS["index"])["complete"]
    if any(m < 1 for m in complete) or len(set(complete)) != len(complete):
        raise StorageError(f"{p} is not a valid gmmdiff file: complete holds "
                           f"{_short(complete)}, expected distinct model sizes >= 1; remove it "
                           "or choose another directory")
    return sorted(complete)


def read_model_arrays(path):
    """One model size's arrays (``model_M00020.npz``: its parameters and "generated"
    samples), checked to be finite floating-point arrays; StorageError naming the file."""
    arrays = read_npz(path)
    bad = ("generated" if "generated" not in arrays else
           next((k for k, a in arrays.items() if a.dtype.kind != "f" or not np.all(np.isfinite(a))),
                None))
    if bad:
        raise StorageError(f"{path} is not a valid gmmdiff file: "
                           + ("it has no 'generated' samples" if bad == "generated" and
                              "generated" not in arrays else
                              f"{bad} is not an array of finite numbers")
                           + "; remove the run directory's damaged size from index.json or the "
                             "directory itself")
    return arrays


def load_run(run_dir, *, check_arrays=False):
    """(config dict, list of per-size metric dicts in increasing M) of a run directory.

    ``check_arrays``: also read every model's NPZ, so that a truncated or corrupt one is
    reported (StorageError naming it) instead of going unnoticed."""
    cfg_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise StorageError(f"{run_dir} is not a gmmdiff run directory (no config.json)")
    cfg = read_checked(cfg_path, SCHEMAS["config"])
    rows = []
    for M in completed_sizes(run_dir):
        stem = os.path.join(run_dir, RunDir.model_stem(M))
        rows.append(read_metrics(stem + ".json", M))
        if check_arrays:
            read_model_arrays(stem + ".npz")
    if not rows:
        raise StorageError(f"{run_dir} holds no completed model sizes yet")
    return cfg, rows


# ------------------------------------------------------------------ file schemas
#
# What each JSON file of a run or sweep directory holds, checked by its one reader before
# any value is used: a damaged file (a number replaced by a string, a list by an object,
# a missing key) is refused with one line naming the file and the value, instead of a
# traceback wherever the value is first used. A schema is a type name ("int", "num":
# a finite number, "num?": a number, null or "inf"/"-inf" as :func:`jsonable` writes
# non-finite values, "str", "bool", "any"), a list ``[schema]`` (a list of any length),
# a tuple ``(n, schema)`` (a list of exactly n), or a dict of required keys (a key
# ending in "?" is optional); keys a schema does not name are allowed (newer writers).

def _ok_number(v):
    return type(v) in (int, float) and bool(np.isfinite(v))


_TYPES = {
    "int": (lambda v: type(v) is int, "an integer"),
    "num": (_ok_number, "a finite number"),
    "num?": (lambda v: v is None or v in ("inf", "-inf") or type(v) in (int, float),
             "a number or null"),
    "str": (lambda v: type(v) is str, "a string"),
    "bool": (lambda v: type(v) is bool, "true or false"),
    "any": (lambda v: True, "anything"),
}


def _short(v):
    text = json.dumps(v) if not isinstance(v, (dict, list)) else ("an object" if isinstance(v, dict)
                                                                 else "a list")
    return text if len(text) <= 40 else text[:37] + "..."


def schema_error(obj, schema, where=""):
    """The first place where ``obj`` does not match ``schema`` as 'key.sub[3] is "abc",
    expected a finite number', or None when it matches."""
    name = where or "the file"
    if isinstance(schema, str):
        ok, what = _TYPES[schema]
        return None if ok(obj) else f"{name} is {_short(obj)}, expected {what}"
    if isinstance(schema, tuple):
        n, item = schema
        if not isinstance(obj, list) or len(obj) != n:
            return f"{name} is {_short(obj)}, expected a list of {n}"
        schema = [item]
    if isinstance(schema, list):
        if not isinstance(obj, list):
            return f"{name} is {_short(obj)}, expected a list"
        for k, v in enumerate(obj):
            err = schema_error(v, schema[0], f"{where}[{k}]")
            if err:
                return err
        return None
    if not isinstance(obj, dict):
        return f"{name} is {_short(obj)}, expected a JSON object"
    for key, sub in schema.items():
        optional = key.endswith("?")
        key = key.rstrip("?")
        if key not in obj:
            if optional:
                continue
            return f"{where + '.' if where else ''}{key} is missing"
        err = schema_error(obj[key], sub, f"{where + '.' if where else ''}{key}")
        if err:
            return err
    return None


def read_checked(path, schema, advice="remove it or choose another directory"):
    """The JSON file ``path`` checked against ``schema``; StorageError naming the file,
    the first wrong value and ``advice`` otherwise."""
    obj = read_json(path)
    err = schema_error(obj, schema)
    if err:
        raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {advice}")
    return obj


CROSSING = {"value": "num?", "interval": (2, "num?"), "status": "str"}
SCHEMAS = {
    "config": {"identity": {}, "meta?": {}},
    "index": {"complete": ["int"]},
    "metrics": {"M": "int", "M_over_N": "num", "times": ["num"],
                "memorization": {"ratio": "num", "interval": (2, "num"), "count?": "int",
                                 "n?": "int"},
                "learned_variance": "num?", "final_train_loss": "num?", "final_test_loss": "num?",
                "per_time_losses": {"generalizing_train": ["num?"], "generalizing_test": ["num?"],
                                    "memorizing_train": ["num?"], "memorizing_test": ["num?"],
                                    "pmem_train": ["num?"], "pmem_test": ["num?"],
                                    "model_train?": ["num?"], "model_test?": ["num?"]},
                "approximations_excess_over_memorizing?": {
                    "generalizing": ["num?"], "simple": ["num?"], "nearest": ["num?"],
                    "expected": ["num?"]},
                "training_loss?": {"steps": ["int"], "loss": ["num?"]}},
    "transition": {"M_pt": CROSSING, "start": CROSSING, "end": CROSSING, "status": "str",
                   "M": ["num"], "ratio": ["num"]},
    "fit": {"weights": ["num"], "times": ["num"], "source": "str", "configs?": ["str"],
            "measured?": ["num"], "predicted?": ["num"], "cv_predicted?": ["num"],
            "folds?": [["int"]], "mse_train?": "num?", "mse_test?": "num?",
            "trivial_prediction?": "num?", "trivial_mse_train?": "num?", "trivial_mse_test?": "num?",
            "beats_trivial_on_test?": "bool", "range?": {}, "measured_interval?": [(2, "num?")],
            "verdict?": {"verdict": "str", "interval": (2, "num"), "mean_difference": "num"},
            "snr_power?": {"weights": ["num"], "cv_predicted": ["num"], "mse_test": "num",
                           "exponent": "num"}},
}
# what figure 3 draws from a fit: its scores too (written by gmmdiff 0.3 and later:
# cross-validated in folds of settings, both weighting families)
SCHEMAS["fit_scores"] = dict(
    {k.rstrip("?"): v for k, v in SCHEMAS["fit"].items()
     if k.rstrip("?") in ("measured", "predicted", "cv_predicted", "folds", "trivial_prediction",
                          "beats_trivial_on_test", "verdict", "snr_power")},
    **{k: v for k, v in SCHEMAS["fit"].items() if k not in (
        "measured?", "predicted?", "cv_predicted?", "folds?", "trivial_prediction?",
        "beats_trivial_on_test?", "verdict?", "snr_power?")},
    mse_train="num", mse_test="num", trivial_mse_test="num")
SCHEMAS["fit_scores"]["trivial_prediction"] = "num"


def read_fit_scores(path):
    """A fit file with its scores (``fit_<source>.json`` of ``gmmdiff-predict --fit``),
    checked: the lists of measured, predicted and held-out predicted M_pt/N of equal
    length, the folds a partition of their indices. StorageError naming the file
    otherwise."""
    advice = "re-run `gmmdiff-predict --fit` to rewrite it"
    fit = read_checked(path, SCHEMAS["fit_scores"], advice=advice)
    n = len(fit["measured"])
    folded = sorted(i for f in fit["folds"] for i in f)
    if (len(fit["predicted"]) != n or len(fit["cv_predicted"]) != n or folded != list(range(n))
            or len(fit["snr_power"]["cv_predicted"]) != n
            or len(fit.get("measured_interval", [None] * n)) != n):
        raise StorageError(f"{path} is not a valid gmmdiff file: its measured, predicted, "
                           f"held-out and fold entries do not match; {advice}")
    return fit


def read_transition(path):
    """A configuration's ``transition.json`` (:func:`gmmdiff.transition.detect` of its
    curve, with the sizes "M" and ratios "ratio"), checked."""
    tr = read_checked(path, SCHEMAS["transition"],
                      advice="delete it and re-run the sweep to rewrite it")
    if len(tr["M"]) != len(tr["ratio"]):
        raise StorageError(f"{path} is not a valid gmmdiff file: M and ratio differ in length; "
                           "delete it and re-run the sweep to rewrite it")
    return tr


def read_metrics(path, M=None):
    """One model size's metrics (``model_M00020.json``), checked (and its "M" equal to
    ``M`` when given)."""
    m = read_checked(path, SCHEMAS["metrics"],
                     advice="remove the run directory's damaged size from index.json or the "
                            "directory itself to retrain it")
    n = len(m["times"])
    bad = [k for k, v in m["per_time_losses"].items() if isinstance(v, list) and len(v) != n]
    if (M is not None and m["M"] != M) or bad:
        what = f"its M is {m['M']}, not {M}" if not bad else f"per_time_losses.{bad[0]} has not {n} times"
        raise StorageError(f"{path} is not a valid gmmdiff file: {what}; remove the run "
                           "directory's damaged size from index.json or the directory itself")
    return m
