"""Run directories: a configuration and the results of its model sizes.

A run directory holds

- ``config.json``  -- every setting that determines the results, the package version,
  backend, dtype and seed (a run directory belongs to one configuration);
- ``model_M00020.json`` / ``model_M00020.npz`` -- metrics and learned parameters of one
  model size (the NPZ is written first, the JSON second, the index last);
- ``index.json``   -- the model sizes whose results are complete (``complete``), and
  among them those whose training diverged (``diverged``: their ``model_M*.json`` is a
  short record, :data:`gmmdiff.io.schemas.SCHEMAS` ``"diverged"``, with no NPZ);
- ``checkpoint.npz`` -- the training state of the sizes in progress (removed once
  their results are written).

A run directory is held by one process at a time: :class:`RunDir` takes the
directory's lock (:mod:`gmmdiff.io.locks`) before it writes anything, and cleans what a
killed holder left behind (temporary files, a half-written first ``config.json``).
"""
import os

import numpy as np

from gmmdiff.io import locks
from gmmdiff.io.files import (
    TMP_PREFIX,
    StorageError,
    check_identity,
    jsonable,
    read_npz,
    remove_temporaries,
    write_json,
    write_npz,
)
from gmmdiff.io.schemas import (
    METRICS_ADVICE,
    SCHEMAS,
    metrics_problem,
    read_checked,
    read_metrics,
    short_repr,
)
from gmmdiff.version import __version__


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
        """Write one model size's parameters (NPZ) and metrics (JSON), read both back,
        then the index. ``arrays`` None: a diverged size's record (``metrics["status"]
        == "diverged"``), JSON only, listed in the index's ``diverged`` too. Metrics or
        arrays that their readers would refuse (:func:`gmmdiff.io.schemas.metrics_problem`,
        :func:`read_model_arrays`) raise StorageError before anything is written, so the
        index never lists a size the next command refuses (and a batch's checkpoint,
        removed only after every result is written and read back, stays)."""
        stem = self.model_stem(M)
        err = metrics_problem(jsonable(metrics), int(M)) or (None if arrays is None else arrays_problem(
            {k: np.asarray(v) for k, v in arrays.items()}))
        if err:
            raise StorageError(f"the results of model size M = {M} in {self.path} are not "
                               f"valid ({err}); nothing was written for it, the checkpoint is "
                               "kept")
        if arrays is not None:
            write_npz(self.file(stem + ".npz"), arrays)
        write_json(self.file(stem + ".json"), metrics)
        read_metrics(self.file(stem + ".json"), int(M))         # read back before the index
        if arrays is not None:
            read_model_arrays(self.file(stem + ".npz"))
        done = sorted(set(self.completed()) | {int(M)})
        diverged = set(diverged_sizes(self.path)) | ({int(M)} if arrays is None else set())
        index = {"complete": done}
        if diverged:
            index["diverged"] = sorted(diverged)
        write_json(self.file("index.json"), index)

    def read_result(self, M):
        """(metrics dict, arrays dict) of a completed model size; (record, None) for a
        diverged one."""
        stem = self.model_stem(M)
        metrics = read_metrics(self.file(stem + ".json"), int(M))
        if metrics.get("status") == "diverged":
            return metrics, None
        return metrics, read_model_arrays(self.file(stem + ".npz"))


def completed_sizes(run_dir):
    """Sorted model sizes listed as complete in ``run_dir/index.json`` ([] without one)."""
    p = os.path.join(run_dir, "index.json")
    if not os.path.exists(p):
        return []
    complete = read_checked(p, SCHEMAS["index"])["complete"]
    if any(m < 1 for m in complete) or len(set(complete)) != len(complete):
        raise StorageError(f"{p} is not a valid gmmdiff file: complete holds "
                           f"{short_repr(complete)}, expected distinct model sizes >= 1; remove it "
                           "or choose another directory")
    return sorted(complete)


def diverged_sizes(run_dir):
    """Sorted model sizes of ``run_dir`` whose training diverged (complete, with a
    "diverged" record instead of results; [] without any)."""
    p = os.path.join(run_dir, "index.json")
    if not os.path.exists(p):
        return []
    index = read_checked(p, SCHEMAS["index"])
    diverged = index.get("diverged", [])
    if not set(diverged) <= set(index["complete"]) or len(set(diverged)) != len(diverged):
        raise StorageError(f"{p} is not a valid gmmdiff file: diverged holds "
                           f"{short_repr(diverged)}, expected distinct sizes listed as complete; "
                           "remove it or choose another directory")
    return sorted(diverged)


def evaluated_sizes(run_dir):
    """Sorted complete model sizes of ``run_dir`` with results (not diverged)."""
    diverged = set(diverged_sizes(run_dir))
    return [M for M in completed_sizes(run_dir) if M not in diverged]
def arrays_problem(arrays):
    """What is wrong with a model size's arrays (a dict of numpy arrays), or None: they
    hold "generated" samples, and every array is finite floating point."""
    if "generated" not in arrays:
        return "it has no 'generated' samples"
    bad = next((k for k, a in arrays.items() if a.dtype.kind != "f" or not np.all(np.isfinite(a))),
               None)
    return None if bad is None else f"{bad} is not an array of finite numbers"


def read_model_arrays(path):
    """One model size's arrays (``model_M00020.npz``: its parameters and "generated"
    samples), checked by :func:`arrays_problem`; StorageError naming the file."""
    arrays = read_npz(path)
    err = arrays_problem(arrays)
    if err:
        raise StorageError(f"{path} is not a valid gmmdiff file: {err}; remove the run "
                           "directory's damaged size from index.json or the directory itself")
    return arrays


def read_run(run_dir, *, check_arrays=False):
    """(config dict, list of per-size metric dicts in increasing M) of a run directory:
    the sizes with results (a diverged size's record is :func:`read_diverged`'s).

    ``check_arrays``: also read every model's NPZ, so that a truncated or corrupt one is
    reported (StorageError naming it) instead of going unnoticed."""
    cfg_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise StorageError(f"{run_dir} is not a gmmdiff run directory (no config.json)")
    cfg = read_checked(cfg_path, SCHEMAS["config"])
    rows = read_sizes(run_dir, evaluated_sizes(run_dir), cfg["identity"].get("samples"),
                      check_arrays=check_arrays)
    if not rows:
        diverged = diverged_sizes(run_dir)
        raise StorageError(f"{run_dir} holds no completed model sizes yet" if not diverged else
                           f"{run_dir} holds no model size with results: every completed "
                           f"size diverged ({', '.join(map(str, diverged))})")
    return cfg, rows


def read_diverged(run_dir):
    """The records of ``run_dir``'s diverged sizes (:func:`diverged_sizes`), in
    increasing M: dicts with ``M``, ``diverged_at`` (the step) and ``reason``."""
    return [read_metrics(os.path.join(run_dir, RunDir.model_stem(M) + ".json"), M)
            for M in diverged_sizes(run_dir)]
def read_sizes(run_dir, sizes, N=None, *, check_arrays=False):
    """The metrics of model sizes ``sizes`` of a run directory, each read by
    :func:`gmmdiff.io.schemas.read_metrics`, and checked together: the same time grid,
    M / N of the run's ``N`` (when given), and series along training at the same steps
    in every size or in none (what the figures and summaries put side by side).
    ``check_arrays``: each NPZ too. StorageError naming the first file that differs."""
    rows = []
    for M in sizes:
        stem = os.path.join(run_dir, RunDir.model_stem(M))
        if not os.path.lexists(stem + ".json"):         # (the index is what is wrong)
            raise StorageError(f"{os.path.join(run_dir, 'index.json')} lists model size {M}, whose "
                               f"{os.path.basename(stem)}.json is missing; {METRICS_ADVICE}")
        m = read_metrics(stem + ".json", M)
        first = rows[0] if rows else m
        steps = [(r.get("along_training") or {}).get("steps") for r in (first, m)]
        what = None
        if m["times"] != first["times"]:
            what = f"its time grid differs from model size {first['M']}'s"
        elif isinstance(N, int) and N > 0 and abs(m["M_over_N"] * N - M) > 1e-6 * M:
            what = f"M_over_N is {m['M_over_N']:g}, not M / N = {M / N:g}"
        elif steps[0] != steps[1]:
            what = (f"its evaluations along training are at other steps than model size "
                    f"{first['M']}'s")
        if what:
            raise StorageError(f"{stem}.json is not a valid gmmdiff file: {what}; {METRICS_ADVICE}")
        rows.append(m)
        if check_arrays:
            read_model_arrays(stem + ".npz")
    return rows
