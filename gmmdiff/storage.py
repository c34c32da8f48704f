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
the new one, never a partial file under the final name.
"""
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from . import __version__


class StorageError(ValueError):
    """A run directory or results file that cannot be used (message names the path)."""


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temporary file + fsync + rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
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


def read_json(path):
    """Read a JSON file; a missing, truncated or corrupt file raises StorageError."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise StorageError(f"missing file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StorageError(f"corrupt or truncated JSON file {path}: {exc}") from None


def write_npz(path, arrays):
    """Atomically write a dict of host arrays as an uncompressed NPZ."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def read_npz(path):
    """Read an NPZ into a dict of numpy arrays (allow_pickle=False); a missing,
    truncated or corrupt file raises StorageError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise StorageError(f"missing file: {path}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise StorageError(f"corrupt or truncated NPZ file {path}: {exc}") from None


def check_identity(path, identity, refusal, advice):
    """Raise StorageError unless the identity stored in JSON file ``path`` equals
    ``identity``; the message is ``refusal`` plus the differing keys and ``advice``."""
    found = read_json(path).get("identity") or {}
    identity = jsonable(identity)
    if found != identity:
        diff = sorted(k for k in set(found) | set(identity) if found.get(k) != identity.get(k))
        raise StorageError(f"{refusal} (differs in: {', '.join(diff) or 'format'}); {advice}")


class RunDir:
    """One run directory: a configuration and the results of its model sizes.

    Parameters
    ----------
    path : directory (created if missing)
    identity : dict of the settings that determine every result; a directory created
        with a different identity is refused
    meta : extra facts recorded in config.json (version, ...) but not compared
    """

    def __init__(self, path, identity, meta=None):
        self.path = os.path.abspath(path)
        self.identity = jsonable(identity)
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StorageError(f"--out {path} exists and is not a directory")
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create run directory {path}: {exc.strerror}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise StorageError(f"run directory {path} is not writable")
        cfg_path = os.path.join(self.path, "config.json")
        if os.path.exists(cfg_path):
            self._remove_stale_temporaries()
            check_identity(cfg_path, self.identity,
                           f"{path} holds a run with a different configuration",
                           "choose another --out or remove it")
        else:
            if os.listdir(self.path):
                raise StorageError(f"{path} is not empty and is not a gmmdiff run directory; "
                                   "choose an empty or new --out")
            write_json(cfg_path, {"identity": self.identity,
                                  "meta": dict(meta or {}, gmmdiff_version=__version__)})

    def _remove_stale_temporaries(self):
        """Delete temporary files a killed writer left behind (never visible under a
        final name). A run directory has one writer at a time: a sweep gives each
        configuration to exactly one shard."""
        for name in os.listdir(self.path):
            if name.startswith(".tmp-"):
                try:
                    os.unlink(os.path.join(self.path, name))
                except OSError:  # pragma: no cover - raced with another cleanup
                    pass

    def file(self, name):
        return os.path.join(self.path, name)

    @staticmethod
    def model_stem(M):
        return f"model_M{int(M):05d}"

    def completed(self):
        """Sorted model sizes listed as complete in index.json."""
        p = self.file("index.json")
        if not os.path.exists(p):
            return []
        return sorted(int(m) for m in read_json(p).get("complete", []))

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
        return read_json(self.file(stem + ".json")), read_npz(self.file(stem + ".npz"))


def load_run(run_dir):
    """(config dict, list of per-size metric dicts in increasing M) of a run directory."""
    cfg_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise StorageError(f"{run_dir} is not a gmmdiff run directory (no config.json)")
    cfg = read_json(cfg_path)
    index_path = os.path.join(run_dir, "index.json")
    complete = read_json(index_path).get("complete", []) if os.path.exists(index_path) else []
    rows = [read_json(os.path.join(run_dir, f"{RunDir.model_stem(M)}.json")) for M in sorted(complete)]
    if not rows:
        raise StorageError(f"{run_dir} holds no completed model sizes yet")
    return cfg, rows
