"""What a sweep measured: the transition of every configuration, ``summary.json``,
``summary.csv`` and the fits of the time weights.

``summary.json`` (:func:`transition_summary`) is the compact record fits are made from:
per configuration, its curve, its measured transition (the whole-curve fit and the
two-point rule) and its Monte Carlo loss curves. ``summary.csv`` (:func:`summarize`) is
the table of ``gmmdiff-sweep --summary``.
"""
import csv
import dataclasses
import io
import os

import numpy as np

from gmmdiff.analysis.convergence import configuration_status, series_arrays
from gmmdiff.analysis.predict import (
    SOURCES,
    approximation_curves,
    config_of,
    curves_from_results,
    predicted_ratio,
    training_set,
)
from gmmdiff.experiments.sweep.spec import (
    check_sweep_identity,
    read_sweep,
    read_sweep_file,
    run_name,
)
from gmmdiff.experiments.sweep.units import check_run_identity
from gmmdiff.analysis.transition import MIN_SIZES, detect, fit_curve
from gmmdiff.io.files import StorageError, atomic_write_bytes, check_output_file, write_json
from gmmdiff.io.rundir import completed_sizes, read_run
from gmmdiff.io.schemas import SCHEMAS, read_checked, read_transition, schema_error, short_repr
from gmmdiff.model.data import check_positive_int

SUMMARY_COLUMNS = (["N", "d", "K", "data_var", "init", "seed", "status", "M_pt_over_N", "M_pt_lo",
                    "M_pt_hi", "M_pt_two_point", "start_over_N", "end_over_N", "n_sizes",
                    "converged"] + [f"pred_{s}" for s in SOURCES])


def summarize(sweep_dir, *, weights=None, summary=None):
    """One row per configuration of the sweep (missing ones included, marked): the
    table of ``gmmdiff-sweep --summary``.

    Writes ``summary.csv`` atomically; its columns are described in :doc:`/files`.

    Parameters
    ----------
    sweep_dir : str
        The sweep directory.
    weights : (T,) array, optional
        Time weights of the ``pred_*`` columns; default uniform (the training
        weighting: the naive, untrained prediction). A prediction without a sign
        change is left empty.
    summary : dict, optional
        The sweep's ``summary.json`` content, if already made.

    Returns
    -------
    rows : list of dict
        One per configuration, keyed by the CSV's columns.
    text : str
        The CSV text.
    """
    if summary is None:
        summary = transition_summary(sweep_dir)
    base = summary["identity"]["base"]
    rows = []
    for c in summary["configs"]:
        row = {k: c.get(k, base.get("data_var")) for k in ("N", "d", "K", "data_var", "seed", "status")}
        row["data_var"] = f"{row['data_var']:g}"
        row["init"] = c.get("init", base.get("init", "pmem"))
        if "convergence" in c:
            row["converged"] = f"{c['convergence'].count('converged')}/{len(c['convergence'])}"
        if "mc" in c:
            row.update(M_pt_over_N=c["M_pt_over_N"], M_pt_lo=c["interval"][0],
                       M_pt_hi=c["interval"][1], M_pt_two_point=c["two_point"]["M_pt_over_N"],
                       start_over_N=c["start_over_N"],
                       end_over_N=c["end_over_N"], n_sizes=len(c["sizes"]))
            cfg = config_of(base, c)
            X = training_set(cfg)
            for source in SOURCES:
                if source == "mc":
                    M, gen, pmem = (np.asarray(c["mc"][k], dtype=np.float64) for k in ("M", "gen", "pmem"))
                else:
                    M, gen, pmem = approximation_curves(summary["times"], cfg, source, X=X)
                if M.size == 0:         # every trained size above N (a time sweep at M/N = 2)
                    row[f"pred_{source}"] = None
                    continue
                w = weights if weights is not None else np.full(gen.size, 1.0 / gen.size)
                r, ok = predicted_ratio(M, gen, pmem, w, c["N"], clamp=False)
                row[f"pred_{source}"] = r if ok else None
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in SUMMARY_COLUMNS})
    text = buf.getvalue()
    atomic_write_bytes(os.path.join(sweep_dir, "summary.csv"), text.encode())
    return rows, text


def analyses(summary):
    """What else a sweep's design measures, from its summary: ``{"inits": ...}``
    (:func:`gmmdiff.analysis.inits.compare_inits`) for a sweep of several
    initializations, ``{"time_law": ...}`` (:func:`gmmdiff.analysis.timelaw.time_law`)
    for a sweep of fixed size ratios (no refinement) over several N with series along
    training. Each
    value is
    ``(result dict, text)``."""
    from gmmdiff.analysis.inits import compare_inits, format_inits
    from gmmdiff.analysis.timelaw import format_time_law, time_law
    ident, out = summary["identity"], {}
    if len(ident.get("inits", [])) > 1:
        result = compare_inits(summary)
        out["inits"] = (result, format_inits(result))
    if ("size_ratios" in ident and ident["refine"] == 0 and len(ident["samples"]) > 1
            and any("along" in c for c in summary["configs"])):
        result = time_law(summary)
        out["time_law"] = (result, format_time_law(result))
    return out


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def transition_summary(sweep_dir, *, partial=False):
    """The compact record of a sweep that fits are made from (``summary.json``): the
    sweep's identity and provenance, the grid of times and, per configuration, its
    measured transition (M_pt/N with interval, start, end, status) and its Monte Carlo
    curves (generalizing and partially memorizing training losses at the trained sizes,
    the "mc" source of :mod:`gmmdiff.analysis.predict`). Incomplete configurations are listed
    with their status. A fit needs nothing else (:func:`gmmdiff.analysis.fits.fit_summary`).

    With ``partial``, an incomplete configuration (a sweep stopped before its
    refinement finished) is measured from the sizes it has finished, at least
    :data:`gmmdiff.analysis.transition.MIN_SIZES` of them, and marked ``"complete": False``
    (its status prefixed "partial: ")."""
    import platform
    import time as _time

    from gmmdiff.version import __version__
    spec = read_sweep(sweep_dir)
    ident = read_sweep_file(os.path.join(sweep_dir, "sweep.json"))[0]
    configs, times, trained_with = [], None, set()
    for cfg in spec.configurations():
        rd = os.path.join(sweep_dir, run_name(cfg))
        entry = {"name": run_name(cfg), "N": cfg.samples, "d": cfg.dim, "K": cfg.components,
                 "data_var": cfg.data_var, "init": cfg.init, "seed": cfg.seed}
        tpath = os.path.join(rd, "transition.json")
        complete = os.path.exists(tpath)
        if not complete and not (partial and os.path.isdir(rd)
                                 and len(completed_sizes(rd)) >= MIN_SIZES):
            configs.append(dict(entry, status="incomplete" if os.path.isdir(rd) else "missing"))
            continue
        check_run_identity(rd, cfg, ident["backend"])   # the configuration's, as resuming checks
        if complete:        # (its transition.json valid, of the sizes its index lists)
            read_transition(tpath, completed_sizes(rd))
        meta, rows = read_run(rd)
        trained_with.add(meta.get("meta", {}).get("gmmdiff_version", "?"))
        times = rows[0]["times"]
        M, gen, pmem = curves_from_results(rows, "mc", config=dataclasses.asdict(cfg))
        entry.update(sizes=[float(r["M"]) for r in rows],
                     ratios=[r["memorization"]["ratio"] for r in rows],
                     counts=[r["memorization"]["count"] for r in rows],
                     n_generated=[r["memorization"]["n"] for r in rows],
                     mc={"M": M.tolist(), "gen": gen.tolist(), "pmem": pmem.tolist()})
        measure_entry(entry, rows)
        if all("along_training" in r for r in rows):
            entry["along"] = along_record(rows)
            entry["convergence"] = [r["along_training"]["status"] for r in rows]
            override = configuration_status(entry["convergence"])
            if override is not None and entry["status"] != "ok":
                entry["status"] = override
        if not complete:
            entry["complete"] = False
            _mark_partial(entry)
        configs.append(entry)
    return {"identity": ident, "times": times,
            "configs": configs,
            "provenance": {"gmmdiff_version": __version__, "trained_with": sorted(trained_with),
                           "date": _time.strftime("%Y-%m-%d"),
                           "sweep_dir": os.path.basename(os.path.abspath(sweep_dir)),
                           "transition_estimator": ESTIMATOR,
                           "python": platform.python_version(), "numpy": np.__version__,
                           "machine": platform.machine()}}


# (the words of results format 5, as the shipped summaries hold them)
ESTIMATOR = ("M_pt_over_N: gmmdiff.transition.fit_curve (complementary log-log, quasi-likelihood "
             "with the sizes' scatter on the link scale, t interval); two_point: the interpolated "
             "1/2 crossing")


def along_record(rows):
    """The series along training of a configuration's sizes, compact (steps x sizes),
    for summaries: "steps" (E,), and (E, J) lists "counts" and "n" (memorized of
    generated samples), "variance", "train_loss" and "test_loss"."""
    steps, _ = series_arrays(rows, "ratio")
    out = {"steps": steps.tolist()}
    for key in ("count", "n", "variance", "train_loss", "test_loss"):
        values = series_arrays(rows, key)[1]
        out["counts" if key == "count" else key] = (
            values.astype(int).tolist() if key in ("count", "n") else values.tolist())
    return out


def measure_entry(entry, rows=None):
    """Fill in a summary entry's measured transition from its curve (``sizes``,
    ``counts`` and ``n_generated``, or for summaries written before the counts,
    ``ratios`` times the identity's ``eval_samples``, given as ``n_generated``):

    - ``M_pt_over_N``, ``interval``, ``se``, ``status``: the whole-curve fit
      (:func:`gmmdiff.analysis.transition.fit_curve`); M_pt_over_N is None unless its status is "ok";
    - ``fit``: the fit's slope, tau, dispersion, degrees of freedom, link shape;
    - ``two_point``: the paper's rule (:func:`gmmdiff.analysis.transition.detect`: the
      interpolated 1/2 crossing, its interval from the Wilson bound curves, status),
      and ``start_over_N`` / ``end_over_N`` from it (the 0.1 and 0.9 crossings).

    Returns the entry (changed in place)."""
    N = entry["N"]
    M = np.asarray(entry["sizes"], dtype=np.float64)
    n = np.asarray(entry["n_generated"], dtype=np.float64) * np.ones(M.size)
    counts = (np.asarray(entry["counts"], dtype=np.float64) if "counts" in entry
              else np.round(np.asarray(entry["ratios"]) * n))
    if rows is not None:
        lo = [r["memorization"]["interval"][0] for r in rows]
        hi = [r["memorization"]["interval"][1] for r in rows]
    else:
        from gmmdiff.model.metrics import wilson_interval
        lo, hi = zip(*(wilson_interval(int(k), int(m)) for k, m in zip(counts, n)))
    two = detect(M, counts / n, lo, hi)
    scale = (lambda v: None if v is None else v / N)  # noqa: E731
    fit = fit_curve(M, counts, n, N)
    ok = fit["status"] == "ok"
    entry.update(status=fit["status"], M_pt_over_N=fit["value"] if ok else None,
                 interval=fit["interval"] if ok else [None, None], se=fit["se"] if ok else None,
                 fit={k: fit[k] for k in ("value", "slope", "tau", "dispersion", "df", "link_shape")},
                 two_point={"M_pt_over_N": scale(two["M_pt"]["value"]),
                            "interval": [scale(v) for v in two["M_pt"]["interval"]],
                            "status": two["status"]},
                 start_over_N=scale(two["start"]["value"]), end_over_N=scale(two["end"]["value"]))
    return entry


def _mark_partial(entry):
    """A measured entry of an incomplete configuration: status "partial: <status>"; its
    M_pt kept only when the fit is "ok"."""
    entry["status"] = "partial: " + entry["status"]
    if entry["status"] != "partial: ok":
        entry.update(M_pt_over_N=None, interval=[None, None], se=None)


def reanalyse_summary(summary):
    """A summary (``summary.json``) with every complete configuration's transition
    measured again by :func:`measure_entry` from the curve it holds (no run directory):
    how summaries written before the whole-curve fit are brought up to date."""
    import copy
    out = copy.deepcopy(summary)
    n_default = out["identity"]["base"]["eval_samples"]
    for entry in out["configs"]:
        if "sizes" in entry:
            entry.setdefault("n_generated", [n_default] * len(entry["sizes"]))
            measure_entry(entry)
            if entry.get("complete") is False:
                _mark_partial(entry)
    out.setdefault("provenance", {})["transition_estimator"] = ESTIMATOR
    return out


SUMMARY_ADVICE = "it was not written by gmmdiff-sweep --summary or gmmdiff-predict --fit, or is damaged"


def read_summary(path):
    """A sweep's ``summary.json``, checked as every command that reads it needs it (the
    fits of ``gmmdiff-predict --fit`` and ``--transfer`` on a directory holding only a
    summary): its identity as ``sweep.json``'s
    (:func:`gmmdiff.experiments.sweep.spec.check_sweep_identity`), each configuration
    one of that sweep's, once, under its name, and for one with a curve: sizes
    increasing, one ratio, count (at most its generated samples) and Monte Carlo loss
    per size and grid time, series along training of steps x sizes with counts at most
    n. Returns the dict; StorageError naming the file and the first bad value."""
    obj = read_checked(path, SCHEMAS["summary"], advice=SUMMARY_ADVICE)
    spec = check_sweep_identity(obj["identity"], path, SUMMARY_ADVICE)
    err = _summary_problem(obj, spec)
    if err:
        raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {SUMMARY_ADVICE}")
    return obj


def _summary_problem(obj, spec):
    """What :func:`read_summary` refuses in a summary that matches its schema, or None."""
    cfgs = {run_name(c): c for c in spec.configurations()}
    seen = set()
    curved = [c for c in obj["configs"] if "sizes" in c]
    times = obj["times"]
    if (times is None and curved) or (times is not None and schema_error(times, ("+", "prob"))):
        return f"times is {short_repr(times)}, expected the time grid (a list of numbers in [0, 1])"
    T = len(times or [])
    for k, c in enumerate(obj["configs"]):
        where = f"configs[{k}]"
        cfg = cfgs.get(c["name"])
        if cfg is None or c["name"] in seen:
            return (f"{where}.name {c['name']!r} is "
                    + ("given twice" if cfg else "not a configuration of the sweep"))
        seen.add(c["name"])
        own = (c["N"], c["d"], c["K"], c["seed"], c.get("data_var", cfg.data_var),
               c.get("init", cfg.init))
        if own != (cfg.samples, cfg.dim, cfg.components, cfg.seed, cfg.data_var, cfg.init):
            return f"{where} does not hold the setting its name {c['name']} says"
        if "sizes" not in c:
            continue
        J = len(c["sizes"])
        if any(b <= a for a, b in zip(c["sizes"], c["sizes"][1:])):
            return f"{where}.sizes are not increasing"
        for key in ("ratios", "n_generated", "counts"):      # (counts: since format 3)
            if (key in c or key != "counts") and len(c.get(key) or []) != J:
                return f"{where}.{key} is missing or has not one entry per size ({J})"
        if "mc" not in c:
            return f"{where}.mc is missing"
        mc, below = c["mc"], [m for m in c["sizes"] if m <= c["N"]]     # theta_pmem,M: M <= N
        if (mc["M"] != below or len(mc["pmem"]) != len(below) or len(mc["gen"]) != T
                or any(len(r) != T for r in mc["pmem"])):
            return (f"{where}.mc does not hold the curves of its sizes up to N over the {T} "
                    "grid times")
        if "counts" in c and any(m > n or abs(r - m / n) > 1e-9 for m, n, r
                                 in zip(c["counts"], c["n_generated"], c["ratios"])):
            return f"{where}.counts do not give its ratios out of n_generated"
        a = c.get("along")
        if a is not None:
            E = len(a["steps"])
            if any(b <= s for s, b in zip(a["steps"], a["steps"][1:])):
                return f"{where}.along.steps are not increasing"
            for key in ("counts", "n", "variance", "train_loss", "test_loss"):
                if len(a[key]) != E or any(len(row) != J for row in a[key]):
                    return f"{where}.along.{key} is not steps x sizes ({E} x {J})"
            if any(m > n for rk, rn in zip(a["counts"], a["n"]) for m, n in zip(rk, rn)):
                return f"{where}.along.counts exceed their generated samples (n)"
    return None


def sweep_summary(sweep_dir):
    """The summary of a sweep directory: :func:`transition_summary` of its run
    directories, or, for a directory holding only a
    ``summary.json`` (a shipped sweep), that summary re-measured by
    :func:`reanalyse_summary`. Writes nothing (:func:`fit_sweep` writes it after a fit
    succeeded)."""
    if os.path.isfile(os.path.join(sweep_dir, "sweep.json")):
        return transition_summary(sweep_dir)
    if os.path.isfile(os.path.join(sweep_dir, "summary.json")):
        return reanalyse_summary(read_summary(os.path.join(sweep_dir, "summary.json")))
    raise StorageError(f"{sweep_dir} is not a gmmdiff sweep directory (no sweep.json or "
                       "summary.json)")


def fit_path(sweep_dir, source, data_var=None):
    """``fit_<source>.json``, or ``fit_<source>_v<s*>.json`` for one s* of a sweep."""
    tag = "" if data_var is None else f"_v{float(data_var):g}"
    return os.path.join(sweep_dir, f"fit_{source}{tag}.json")


def fit_sweep(sweep_dir, source="mc", *, n_folds=None, seed=0, data_var=None, summary=None,
              progress=None):
    """Fit and cross-validate the time weights on the sweep's configurations: folds of
    whole settings, the noise floor and the paired verdict (what ``gmmdiff-predict
    --fit`` runs per source).

    Writes ``summary.json`` and the fit (``fit_<source>.json``, or
    ``fit_<source>_v<s*>.json`` for one s* of a sweep that varies it) atomically, both
    only once the fit succeeded (and both paths checked before it starts).

    Parameters
    ----------
    sweep_dir : str
        A sweep directory, or a directory holding only a ``summary.json`` (such as
        ``gmmdiff/assets/cpu_sweep``), which is re-measured.
    source : {"mc", "simple", "nearest", "expected"}
        The baseline losses the theory uses: Monte Carlo or an approximation.
    n_folds : int, optional
        Cross-validation folds of whole settings, >= 2 and at most the settings; None
        for 5, or one per setting where there are fewer.
    seed : int
        Seed of the folds and of the bootstrap.
    data_var : float, optional
        Fit the configurations of this s* only (a sweep that varies s*).
    summary : dict, optional
        The sweep's summary, if already made.
    progress : callable, optional
        Called as ``progress(done, total)`` after each fit (both weighting families, on
        every configuration and per fold).

    Returns
    -------
    dict
        The fit: weights, scores, verdicts (the keys of ``fit_<source>.json``, see
        :doc:`/files`).
    """
    from gmmdiff.analysis.fits import fit_summary
    from gmmdiff.analysis.predict import SOURCES
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; accepted: {', '.join(SOURCES)}")
    if n_folds is not None:
        check_positive_int("folds (--folds)", n_folds, minimum=2)
    outputs = (os.path.join(sweep_dir, "summary.json"), fit_path(sweep_dir, source, data_var))
    for path in outputs:
        check_output_file(path)
    if summary is None:
        summary = sweep_summary(sweep_dir)
    result = fit_summary(summary, source, n_folds=n_folds, seed=seed, data_var=data_var,
                         progress=progress)
    write_json(outputs[0], summary)         # after a fit succeeded:
    write_json(outputs[1], result)          # a refusal writes none
    return result
