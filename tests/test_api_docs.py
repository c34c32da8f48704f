"""Every public name of gmmdiff (``gmmdiff.__all__``) has a numpydoc docstring that
documents each parameter with a type, and each array with its shape.

The API reference (docs/api.rst) is generated from these docstrings: a researcher who
imports gmmdiff learns a function's signature and shapes there, without reading its
source. The sections are read here by a small parser of the numpydoc layout (a header
underlined with dashes; ``name : type`` entries at the section's indentation), so the
test needs nothing beyond the test extra.
"""
import dataclasses
import inspect
import re

import pytest

import gmmdiff

PUBLIC = [n for n in gmmdiff.__all__ if n != "__version__"]

# a shape: "(B, d)", "(T,)", "(n_sizes, 2)", "(M, d)"; or a 0-d array
SHAPE = re.compile(r"\(\s*[A-Za-z0-9_]+\s*(?:,\s*[A-Za-z0-9_]*\s*)*\)|\b0-d\b|any shape")
# parameter names that are arrays wherever they appear: their type must say so, with a shape
ARRAY_NAMES = {"x_t", "x0", "eps", "x0hat", "means", "X", "times", "grid", "x_T", "samples",
               "ratio", "lower", "upper", "weights", "subset"}


def sections(doc):
    """{section title: [(names, type)]} of a numpydoc docstring (entries at the
    section's own indentation; descriptions below them, indented, are skipped)."""
    lines = doc.splitlines()
    out, current = {}, None
    for k, ln in enumerate(lines):
        if k + 1 < len(lines) and ln.strip() and re.fullmatch(r"-{3,}", lines[k + 1].strip()) \
                and len(lines[k + 1].strip()) == len(ln.strip()):
            current = ln.strip()
            out[current] = []
            continue
        if current is None or re.fullmatch(r"-{3,}", ln.strip()) or not ln.strip():
            continue
        if ln.startswith(" "):
            continue                                     # a description
        if " : " in ln:
            names, typ = ln.split(" : ", 1)
        elif current in ("Returns", "Raises", "Yields"):
            names, typ = "", ln
        else:
            names, typ = ln, ""
        out[current].append(([n.strip() for n in names.split(",") if n.strip()], typ.strip()))
    return out


def documented(doc, *titles):
    """name -> type over the entries of the sections ``titles``."""
    entries = {}
    for title in titles:
        for names, typ in sections(doc).get(title, []):
            for n in names:
                entries[n] = typ
    return entries


def callables():
    """(label, object, parameters to document, section titles) of every public
    function and class, and of the public methods of the results classes."""
    out = []
    for name in PUBLIC:
        obj = getattr(gmmdiff, name)
        if inspect.isclass(obj):
            if dataclasses.is_dataclass(obj):
                params = [f.name for f in dataclasses.fields(obj)]
            else:
                params = []          # built by load_run/load_sweep: their attributes are documented
            out.append((name, obj, params, ("Attributes", "Parameters")))
            for mname, member in vars(obj).items():
                if mname.startswith("_") or not inspect.isfunction(member):
                    continue
                mparams = [p for p in inspect.signature(member).parameters if p != "self"]
                if mparams:
                    out.append((f"{name}.{mname}", member, mparams, ("Parameters",)))
        else:
            params = [p.name for p in inspect.signature(obj).parameters.values()
                      if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            out.append((name, obj, params, ("Parameters",)))
    return out


CALLABLES = callables()


@pytest.mark.parametrize("label, obj, params, titles", CALLABLES, ids=[c[0] for c in CALLABLES])
def test_public_docstring_documents_every_parameter_with_a_type(label, obj, params, titles):
    doc = inspect.getdoc(obj)
    assert doc and len(doc.splitlines()[0]) > 10, f"{label}: no summary line"
    entries = documented(doc, *titles)
    missing = [p for p in params if p not in entries]
    assert not missing, f"{label}: parameters not documented: {missing}"
    untyped = [n for n, typ in entries.items() if not typ]
    assert not untyped, f"{label}: entries without a type: {untyped}"
    for n, typ in entries.items():
        if n in ARRAY_NAMES and n in params and not inspect.isclass(obj):
            assert "array" in typ, f"{label}: {n} is an array; its type says {typ!r}"
        if "array" in typ and "dict" not in typ:
            assert SHAPE.search(typ), f"{label}: the array {n} has no shape in {typ!r}"


@pytest.mark.parametrize("name", [n for n in PUBLIC if inspect.isfunction(getattr(gmmdiff, n))])
def test_public_function_says_what_it_returns(name):
    obj = getattr(gmmdiff, name)
    secs = sections(inspect.getdoc(obj))
    assert "Returns" in secs and secs["Returns"], f"{name}: no Returns section"
    for names, typ in secs["Returns"]:
        if "array" in typ and "dict" not in typ and "list" not in typ:
            assert SHAPE.search(typ), f"{name}: returned array without a shape: {typ!r}"


def test_the_parser_reads_numpydoc_sections():
    doc = inspect.getdoc(gmmdiff.gmm_denoise)
    got = documented(doc, "Parameters")
    assert got["x_t"] == "(B, d) array" and got["means"] == "(M, d) array"
    assert sections(doc)["Returns"] == [([], "(B, d) array")]
    assert documented(inspect.getdoc(gmmdiff.time_grid), "Parameters")["t_max"] == "float"
