"""What each JSON file of a run or sweep directory holds, checked by its one reader
before any value is used.

A damaged file (a number replaced by a string, a list by an object, a missing key) is
refused with one line naming the file and the value, instead of a traceback wherever
the value is first used. A schema is a type name ("int", "num": a finite number,
"num?": a number, null or "inf"/"-inf" as :func:`gmmdiff.io.files.jsonable` writes
them, "prob": a number in [0, 1], "str", "bool", "any"), optionally with the bound the
command line applies ("int>=1", "num>0", "num?>=0": null and "inf" pass), a dict of
keys (a key ending in "?" is optional; keys a schema does not name are allowed: newer
writers), a list ``[schema]`` of any length, a tuple ``(n, schema)`` of length n or
``("+", schema)``, a list of at least one.
"""
import functools
import json
import re

import numpy as np

from gmmdiff.io.files import StorageError, read_json


MAX_RATIO = 1000


def _ok_number(v):
    return type(v) in (int, float) and bool(np.isfinite(v))


_TYPES = {
    "int": (lambda v: type(v) is int, "an integer"),
    "num": (_ok_number, "a finite number"),
    "num?": (lambda v: v is None or v in ("inf", "-inf") or type(v) in (int, float),
             "a number or null"),
    "prob": (lambda v: _ok_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    # M/N of a transition, measured or predicted (trained sizes reach 100 N at most)
    "ratio": (lambda v: _ok_number(v) and 0 <= v <= MAX_RATIO, f"a ratio M/N in [0, {MAX_RATIO}]"),
    "ratio?": (lambda v: v is None or _ok_number(v) and 0 <= v <= MAX_RATIO,
               f"a ratio M/N in [0, {MAX_RATIO}] or null"),
    # a loss or a variance: at most 1e100, far above any a run reaches (s* <= 1e8) and
    # far below what squares, ratios and log axes of it overflow; null or "inf" where not
    # finite
    "scale?": (lambda v: v is None or v == "inf" or _ok_number(v) and 0 <= v <= 1e100,
               'a number in [0, 1e100], null or "inf"'),
    "scale": (lambda v: _ok_number(v) and 0 <= v <= 1e100, "a number in [0, 1e100]"),
    # an end of its interval (a Wald interval may reach below 0)
    "bound?": (lambda v: v is None or _ok_number(v) and abs(v) <= MAX_RATIO,
               f"a number in [-{MAX_RATIO}, {MAX_RATIO}] or null"),
    "str": (lambda v: type(v) is str, "a string"),
    "bool": (lambda v: type(v) is bool, "true or false"),
    "any": (lambda v: True, "anything"),
}


_BOUNDED = re.compile(r"(int|num\??)(>=|>)(-?[0-9.]+(?:e-?[0-9]+)?)$")


@functools.lru_cache(maxsize=None)
def _leaf(schema):
    """(check, description) of a type name, a bounded one ("int>=1") included."""
    if schema in _TYPES:
        return _TYPES[schema]
    m = _BOUNDED.match(schema)
    if m is None:
        raise KeyError(f"unknown schema type {schema!r}")
    base, op, text = m.groups()
    ok, what = _TYPES[base]
    bound = float(text)

    def within(v):
        if not ok(v) or v == "-inf":
            return False
        if v is None or v == "inf":                      # "num?" only
            return True
        return v >= bound if op == ">=" else v > bound
    return within, f"{what} {op} {bound:g}"


def short_repr(v):
    text = json.dumps(v) if not isinstance(v, (dict, list)) or not v else (
        "an object" if isinstance(v, dict) else "a list")
    return text if len(text) <= 40 else text[:37] + "..."


def schema_error(obj, schema, where=""):
    """The first place where ``obj`` does not match ``schema`` as 'key.sub[3] is "abc",
    expected a finite number', or None when it matches."""
    name = where or "the file"
    if isinstance(schema, str):
        ok, what = _leaf(schema)
        return None if ok(obj) else f"{name} is {short_repr(obj)}, expected {what}"
    if isinstance(schema, tuple):
        n, item = schema
        if n == "+" and not (isinstance(obj, list) and obj):
            return f"{name} is {short_repr(obj)}, expected a list of at least one"
        if n != "+" and (not isinstance(obj, list) or len(obj) != n):
            return f"{name} is {short_repr(obj)}, expected a list of {n}"
        schema = [item]
    if isinstance(schema, list):
        if not isinstance(obj, list):
            return f"{name} is {short_repr(obj)}, expected a list"
        for k, v in enumerate(obj):
            err = schema_error(v, schema[0], f"{where}[{k}]")
            if err:
                return err
        return None
    if not isinstance(obj, dict):
        return f"{name} is {short_repr(obj)}, expected a JSON object"
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


LOSSES = ["scale?"]          # a mean squared error per grid time (null: not finite)
# (no interval below the minimum of held-out settings: gmmdiff.analysis.verdict)
VERDICT = {"verdict": "str", "interval": (2, "num?"), "mean_difference": "num",
           "settings?": "int>=1", "why?": "str"}


SCHEMAS = {
    "config": {"identity": {"backend": "str", "results_format": "int>=1"}, "meta?": {}},
    "index": {"complete": ["int>=1"], "diverged?": ["int>=1"]},
    "metrics": {"M": "int>=1", "M_over_N": "num>0", "times": ("+", "prob"),
                "memorization": {"ratio": "prob", "interval": (2, "prob"), "count?": "int>=0",
                                 "n?": "int>=1"},
                "learned_variance": "scale?", "final_train_loss": "scale?",
                "final_test_loss": "scale?",
                "per_time_losses": {"generalizing_train": LOSSES, "generalizing_test": LOSSES,
                                    "memorizing_train": LOSSES, "memorizing_test": LOSSES,
                                    "pmem_train": LOSSES, "pmem_test": LOSSES,
                                    "model_train?": LOSSES, "model_test?": LOSSES},
                "approximations_excess_over_memorizing?": {
                    "generalizing": ["num?"], "simple": ["num?"], "nearest": ["num?"],
                    "expected": ["num?"]},
                "training_loss?": {"steps": ["int>=0"], "loss": LOSSES},
                "along_training?": {"steps": ("+", "int>=0"), "epochs?": ["num>=0"], "ratio": ["prob"],
                                    "ratio_lo": ["prob"], "ratio_hi": ["prob"],
                                    "count": ["num>=0"], "n": ["num>=1"], "variance": ["scale"],
                                    "train_loss": LOSSES, "test_loss": LOSSES, "status": "str",
                                    "status_reason": "str"}},
    # a model size whose training diverged: no results, the step and the reason (its
    # logged training losses may run past any bound: null or "inf" where not finite)
    "diverged": {"M": "int>=1", "M_over_N": "num>0", "times": ("+", "prob"), "status": "str",
                 "diverged_at": "int>=0", "reason": "str",
                 "training_loss?": {"steps": ["int>=0"], "loss": ["num?>=0"]}},
    "transition": {"M_pt": CROSSING, "start": CROSSING, "end": CROSSING, "status": "str",
                   "M": ("+", "num>=1"), "ratio": ["prob"]},
    "fit": {"weights": ("+", "num>=0"), "times": ("+", "prob"), "source": "str",
            "configs?": ["str"], "settings?": [("+", "any")], "measured?": ["ratio"],
            "measured_interval?": [(2, "bound?")], "predicted?": ["ratio"],
            "cv_predicted?": ["ratio"], "trivial_cv_predicted?": ["ratio"], "folds?": [["int>=0"]], "n_folds?": "int>=1",
            "split_seed?": "int>=0", "mse_train?": "num>=0", "mse_test?": "num>=0",
            "trivial_prediction?": "ratio", "trivial_mse_train?": "num>=0",
            "trivial_mse_test?": "num>=0", "beats_trivial_on_test?": "bool",
            "range?": {"N": (2, "int>=1"), "d": (2, "int>=1"), "K": (2, "int>=1")},
            "verdict?": VERDICT, "noise_floor?": {"value": "num?>=0", "interval": (2, "num?")},
            "trivial_at_noise_floor?": "bool", "data_var?": "num>0", "target?": "str",
            "process?": "str", "family?": "str", "held_out_by?": "str", "excluded?": ["any"],
            "provenance?": {},
            "snr_power?": {"weights": ("+", "num>=0"), "cv_predicted": ["ratio"], "mse_test": "num>=0",
                           "mse_train?": "num>=0", "exponent": "num", "verdict": VERDICT}},
}


# one configuration of a sweep's summary.json (gmmdiff.experiments.sweep.summary): its
# setting, status and, for one with a curve, the curve, its measured transition, its Monte
# Carlo loss curves and its series along training (steps x sizes)
SCHEMAS["summary_config"] = {
    "name": "str", "N": "int>=2", "d": "int>=1", "K": "int>=1", "seed": "int>=0",
    "data_var?": "num>0", "init?": "str", "status": "str", "complete?": "bool",
    "sizes?": ("+", "num>=1"), "ratios?": ["prob"], "counts?": ["int>=0"],
    "n_generated?": ["int>=1"], "mc?": {"M": ("+", "num>=1"), "gen": ["num"], "pmem": [["num"]]},
    "M_pt_over_N?": "ratio?", "interval?": (2, "bound?"), "se?": "num?>=0", "start_over_N?": "ratio?",
    "end_over_N?": "ratio?", "fit?": {},
    "two_point?": {"M_pt_over_N": "ratio?", "interval": (2, "bound?"), "status": "str"},
    "convergence?": ["str"],
    "along?": {"steps": ("+", "int>=0"), "counts": [["int>=0"]], "n": [["int>=1"]],
               "variance": [["scale"]], "train_loss": [LOSSES], "test_loss": [LOSSES]}}


SCHEMAS["summary"] = {"identity": {}, "times": "any", "configs": [SCHEMAS["summary_config"]],
                      "provenance?": {}}


# what figure 3 draws from a fit: its scores too (written by gmmdiff 0.3 and later:
# cross-validated in folds of settings, both weighting families)
SCORES = ("configs", "settings", "measured", "predicted", "cv_predicted", "trivial_cv_predicted",
          "folds", "mse_train", "mse_test", "trivial_prediction", "trivial_mse_test",
          "beats_trivial_on_test", "verdict", "snr_power")
SCHEMAS["fit_scores"] = {k.rstrip("?"): v for k, v in SCHEMAS["fit"].items()
                         if k.rstrip("?") in SCORES or not k.endswith("?")}


def fit_scores_problem(fit):
    """What is wrong with the scores of a fit (a dict matching ``SCHEMAS["fit"]``), or
    None: where it holds its cross-validation ("trivial_cv_predicted", what a
    prediction's held-out error is computed from) or is read for figure 3, every
    score of :data:`SCORES` is there, one entry per configuration (each setting N, d,
    K, s* [, init]), and the folds a partition of the configurations."""
    if "trivial_cv_predicted" not in fit:
        return None
    err = schema_error(fit, SCHEMAS["fit_scores"])
    if err:
        return err
    n = len(fit["measured"])
    folded = sorted(i for f in fit["folds"] for i in f)
    if (any(len(fit[k]) != n for k in ("configs", "settings", "predicted", "cv_predicted",
                                        "trivial_cv_predicted"))
            or len(fit["snr_power"]["cv_predicted"]) != n or folded != list(range(n))
            or len(fit.get("measured_interval", [None] * n)) != n):
        return "its measured, predicted, held-out and fold entries do not match"
    bad = next((k for k, st in enumerate(fit["settings"]) if not _setting(st)), None)
    if bad is not None:
        return f"settings[{bad}] is not a setting [N, d, K, s*(, init)]"
    bad = next((k for k, name in enumerate(fit["configs"]) if not re.search(r"-s\d+$", name)), None)
    if bad is not None:
        return f"configs[{bad}] {short_repr(fit['configs'][bad])} is not a configuration's name (its seed)"
    return None


def _setting(st):
    return (len(st) in (4, 5) and not schema_error(st[:3], ["int>=1"]) and st[0] >= 2
            and not schema_error(st[3], "num>0") and (len(st) == 4 or type(st[4]) is str))


def read_fit_scores(path):
    """A fit file with its scores (``fit_<source>.json`` of ``gmmdiff-predict --fit``),
    checked: every score of figure 3, the lists of measured, predicted and held-out
    predicted M_pt/N of equal length, the folds a partition of their indices
    (:func:`fit_scores_problem`). StorageError naming the file otherwise."""
    advice = "re-run `gmmdiff-predict --fit` to rewrite it"
    fit = read_checked(path, SCHEMAS["fit_scores"], advice=advice)
    err = fit_scores_problem(fit)
    if err:
        raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {advice}")
    return fit


def read_transition(path, sizes=None):
    """A configuration's ``transition.json`` (:func:`gmmdiff.analysis.transition.detect` of its
    curve, with the sizes "M" and ratios "ratio"), checked: one ratio per size, and the
    sizes those of ``sizes`` (the run directory's completed sizes) when given."""
    advice = "delete it and re-run the sweep to rewrite it"
    tr = read_checked(path, SCHEMAS["transition"], advice=advice)
    err = ("M and ratio differ in length" if len(tr["M"]) != len(tr["ratio"]) else
           f"its sizes M {short_repr(tr['M'])} are not the completed sizes {short_repr(sizes)} of "
           "index.json" if sizes is not None and tr["M"] != [float(m) for m in sizes] else None)
    if err:
        raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {advice}")
    return tr


def series_problem(series, where="along_training"):
    """What is wrong with a model's series along training (``along_training`` of its
    metrics, or a checkpoint's evaluations so far), or None: every list one value per
    step, the steps increasing, the counts within [0, n], each ratio count / n inside
    its interval [ratio_lo, ratio_hi]. Types and signs are the schema's."""
    E = len(series.get("steps", []))
    bad = [f"{where}.{k} has not {E} steps" for k, v in series.items()
           if isinstance(v, list) and len(v) != E]
    if bad:
        return bad[0]
    if any(b <= a for a, b in zip(series["steps"], series["steps"][1:])):
        return f"{where}.steps are not increasing"
    for e in range(E):
        k, n = series.get("count", [0] * E)[e], series.get("n", [1] * E)[e]
        if k > n:
            return f"{where}.count[{e}] is {k:g}, more than the {n:g} generated samples (n)"
        if "ratio" in series and "count" in series and abs(series["ratio"][e] - k / n) > 1e-9:
            return f"{where}.ratio[{e}] is {series['ratio'][e]:g}, not count / n = {k / n:g}"
        if {"ratio", "ratio_lo", "ratio_hi"} <= set(series) and not (
                series["ratio_lo"][e] <= series["ratio"][e] + 1e-12
                and series["ratio"][e] <= series["ratio_hi"][e] + 1e-12):
            return f"{where}.ratio[{e}] lies outside its interval [ratio_lo, ratio_hi]"
    return None


def metrics_problem(m, M=None):
    """What is wrong with a model size's metrics dict ``m`` (as JSON holds it), or None:
    the schema, one value per grid time, a consistent memorization count and series
    along training (:func:`series_problem`), and its "M" equal to ``M`` when given.
    Shared by the reader and the writer (nothing is written that the reader refuses).
    A diverged size's record (status "diverged") is checked against its own schema."""
    if isinstance(m, dict) and m.get("status") == "diverged":
        err = schema_error(m, SCHEMAS["diverged"])
        logged = {} if err else m.get("training_loss", {"steps": [], "loss": []})
        if not err and len(logged["steps"]) != len(logged["loss"]):
            err = "training_loss.steps and training_loss.loss differ in length"
        if not err and M is not None and m["M"] != M:
            err = f"its M is {m['M']}, not {M}"
        return err
    err = schema_error(m, SCHEMAS["metrics"])
    if err:
        return err
    n = len(m["times"])
    lists = dict(m["per_time_losses"], **{f"approximations {k}": v for k, v in m.get(
        "approximations_excess_over_memorizing", {}).items()})
    bad = [f"per_time_losses.{k} has not {n} times" for k, v in lists.items()
           if isinstance(v, list) and len(v) != n]
    if bad:
        return bad[0]
    mem = m["memorization"]
    lo, hi = mem["interval"]
    if "count" in mem and "n" in mem and (mem["count"] > mem["n"]
                                          or abs(mem["ratio"] - mem["count"] / mem["n"]) > 1e-9):
        return (f"memorization.count {mem['count']} of n {mem['n']} does not give its ratio "
                f"{mem['ratio']:g}")
    if not lo - 1e-12 <= mem["ratio"] <= hi + 1e-12:
        return f"memorization.ratio {mem['ratio']:g} lies outside its interval [{lo:g}, {hi:g}]"
    logged = m.get("training_loss", {"steps": [], "loss": []})
    if len(logged["steps"]) != len(logged["loss"]):
        return "training_loss.steps and training_loss.loss differ in length"
    if any(b <= a for a, b in zip(logged["steps"], logged["steps"][1:])):
        return "training_loss.steps are not increasing"
    if "along_training" in m:
        err = series_problem(m["along_training"])
        if err:
            return err
    if M is not None and m["M"] != M:
        return f"its M is {m['M']}, not {M}"
    return None


METRICS_ADVICE = ("remove the run directory's damaged size from index.json or the directory "
                  "itself to retrain it")


def read_metrics(path, M=None):
    """One model size's metrics (``model_M00020.json``), checked by
    :func:`metrics_problem` (and its "M" equal to ``M`` when given)."""
    m = read_json(path)
    err = metrics_problem(m, M)
    if err:
        raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {METRICS_ADVICE}")
    return m


_PER_VAR = {"mean": "ratio", "range": (2, "ratio")}
SCHEMAS["transfer"] = {
    "data_vars": ("+", "num>0"), "configs": ["str"], "measured": {},
    "measured_difference": {"value": "num", "interval": (2, "num"), "between": (2, "num>0")},
    "sources": {}, "fits_from?": {}, "provenance?": {}}
SCHEMAS["transfer_source"] = {
    "trivial_prediction": "ratio", "trivial_mse": "num>=0",
    **{f"{w}{'?' if w == 'snr_power' else ''}": {
        "predicted": ["ratio"], "per_data_var": {}, "mse": "num>=0", "difference": "num",
        "verdict": {"verdict": "str"}} for w in ("naive", "simplex", "snr_power")}}


def read_transfer(path):
    """The data-variance experiment's ``transfer.json`` (``gmmdiff-predict --transfer``;
    what the s* figure draws), checked: per s* of ``data_vars`` its measured mean and
    interval, and per source and weighting a prediction per configuration and the
    mean and range per s*. StorageError naming the file and the first bad value."""
    advice = "re-run `gmmdiff-predict --transfer` to rewrite it"
    res = read_checked(path, SCHEMAS["transfer"], advice=advice)
    keys = [f"{v:g}" for v in res["data_vars"]]
    n = len(res["configs"])
    err = next(filter(None, (schema_error(res["measured"].get(k), {"mean": "ratio", "interval": (
        2, "bound?"), "n": "int>=1"}, f"measured.{k}") for k in keys)), None)
    for src, r in res["sources"].items():
        err = err or schema_error(r, SCHEMAS["transfer_source"], f"sources.{src}")
        for w in ("naive", "simplex", "snr_power"):
            if err or w not in r:
                continue
            err = next(filter(None, (schema_error(r[w]["per_data_var"].get(k), _PER_VAR,
                                                  f"sources.{src}.{w}.per_data_var.{k}")
                                     for k in keys)), None)
            if not err and len(r[w]["predicted"]) != n:
                err = f"sources.{src}.{w}.predicted has not one value per configuration ({n})"
    if err:
        raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {advice}")
    return res
