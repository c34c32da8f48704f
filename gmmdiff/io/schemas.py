"""What each JSON file of a run or sweep directory holds, checked by its one reader
before any value is used.

A damaged file (a number replaced by a string, a list by an object, a missing key) is
refused with one line naming the file and the value, instead of a traceback wherever
the value is first used. A schema is a type name ("int", "num": a finite number,
"num?": a number, null or "inf"/"-inf" as :func:`gmmdiff.io.files.jsonable` writes
them, "str", "bool", "any"), a dict of keys (a key ending in "?" is optional; keys a
schema does not name are allowed: newer writers), a list ``[schema]`` of any length or
a tuple ``(n, schema)`` of length n.
"""
import json

import numpy as np

from gmmdiff.io.files import StorageError, read_json


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


def short_repr(v):
    text = json.dumps(v) if not isinstance(v, (dict, list)) else ("an object" if isinstance(v, dict)
                                                                 else "a list")
    return text if len(text) <= 40 else text[:37] + "..."


def schema_error(obj, schema, where=""):
    """The first place where ``obj`` does not match ``schema`` as 'key.sub[3] is "abc",
    expected a finite number', or None when it matches."""
    name = where or "the file"
    if isinstance(schema, str):
        ok, what = _TYPES[schema]
        return None if ok(obj) else f"{name} is {short_repr(obj)}, expected {what}"
    if isinstance(schema, tuple):
        n, item = schema
        if not isinstance(obj, list) or len(obj) != n:
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


SCHEMAS = {
    "config": {"identity": {}, "meta?": {}},
    "index": {"complete": ["int"], "diverged?": ["int"]},
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
                "training_loss?": {"steps": ["int"], "loss": ["num?"]},
                "along_training?": {"steps": ["int"], "epochs?": ["num"], "ratio": ["num"], "ratio_lo": ["num"],
                                    "ratio_hi": ["num"], "count": ["num"], "n": ["num"],
                                    "variance": ["num"], "train_loss": ["num?"],
                                    "test_loss": ["num?"], "status": "str",
                                    "status_reason": "str"}},
    # a model size whose training diverged: no results, the step and the reason
    "diverged": {"M": "int", "M_over_N": "num", "times": ["num"], "status": "str",
                 "diverged_at": "int", "reason": "str",
                 "training_loss?": {"steps": ["int"], "loss": ["num"]}},
    "transition": {"M_pt": CROSSING, "start": CROSSING, "end": CROSSING, "status": "str",
                   "M": ["num"], "ratio": ["num"]},
    "fit": {"weights": ["num"], "times": ["num"], "source": "str", "configs?": ["str"],
            "measured?": ["num"], "predicted?": ["num"], "cv_predicted?": ["num"],
            "folds?": [["int"]], "mse_train?": "num?", "mse_test?": "num?",
            "trivial_prediction?": "num?", "trivial_mse_train?": "num?", "trivial_mse_test?": "num?",
            "beats_trivial_on_test?": "bool", "range?": {}, "measured_interval?": [(2, "num?")],
            "verdict?": {"verdict": "str", "interval": (2, "num?"), "mean_difference": "num"},
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
    """A configuration's ``transition.json`` (:func:`gmmdiff.analysis.transition.detect` of its
    curve, with the sizes "M" and ratios "ratio"), checked."""
    tr = read_checked(path, SCHEMAS["transition"],
                      advice="delete it and re-run the sweep to rewrite it")
    if len(tr["M"]) != len(tr["ratio"]):
        raise StorageError(f"{path} is not a valid gmmdiff file: M and ratio differ in length; "
                           "delete it and re-run the sweep to rewrite it")
    return tr


def read_metrics(path, M=None):
    """One model size's metrics (``model_M00020.json``), checked (and its "M" equal to
    ``M`` when given); a diverged size's record (status "diverged") is checked against
    its own schema."""
    advice = ("remove the run directory's damaged size from index.json or the directory "
              "itself to retrain it")
    m = read_json(path)
    diverged = isinstance(m, dict) and m.get("status") == "diverged"
    err = schema_error(m, SCHEMAS["diverged" if diverged else "metrics"])
    if err:
        raise StorageError(f"{path} is not a valid gmmdiff file: {err}; {advice}")
    if diverged:
        if M is not None and m["M"] != M:
            raise StorageError(f"{path} is not a valid gmmdiff file: its M is {m['M']}, not {M}; "
                               f"{advice}")
        return m
    n = len(m["times"])
    bad = [f"per_time_losses.{k} has not {n} times" for k, v in m["per_time_losses"].items()
           if isinstance(v, list) and len(v) != n]
    series = m.get("along_training", {})
    E = len(series.get("steps", []))
    bad += [f"along_training.{k} has not {E} steps" for k, v in series.items()
            if isinstance(v, list) and len(v) != E]
    if series and (any(b <= a for a, b in zip(series["steps"], series["steps"][1:]))
                   or any(s < 0 for s in series["steps"])):
        bad.append("along_training.steps are not increasing steps >= 0")
    if (M is not None and m["M"] != M) or bad:
        what = f"its M is {m['M']}, not {M}" if not bad else bad[0]
        raise StorageError(f"{path} is not a valid gmmdiff file: {what}; remove the run "
                           "directory's damaged size from index.json or the directory itself")
    return m
