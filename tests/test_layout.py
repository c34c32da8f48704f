"""The package's layout: subpackages by concern whose imports point one way (down), no
import circles, modules of readable size, model families that plug in, and one name in
one place."""
import ast
import dataclasses
import os

import numpy as np
import pytest

import gmmdiff
from gmmdiff.families import registry as families

PKG = os.path.dirname(gmmdiff.__file__)

# THE RULE: the layers of gmmdiff, bottom first. A module may import from its own layer
# and the layers before it, never from one after it; no module imports the package root
# (gmmdiff/__init__.py: the public API's lazy exports, the top of everything).
LAYERS = ("base", "io", "engine", "model", "theory", "families", "training", "analysis",
          "experiments", "cli")
MAX_LINES = 450


def modules():
    """Dotted names below gmmdiff ('model.losses', 'backend', 'io', ...) -> file path."""
    out = {}
    for root, _, files in os.walk(PKG):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, name), PKG)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = \
                    os.path.join(root, name)
    return out


def import_graph(mods=None):
    """module -> set of gmmdiff modules it imports anywhere (module level or inside
    functions), from the source; the package root is '' (the empty name)."""
    mods = mods or modules()
    graph = {}
    for mod, path in mods.items():
        if mod == "__init__":
            continue
        deps = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{mod}: relative import (gmmdiff imports absolutely)"
                if node.module == "gmmdiff" or (node.module or "").startswith("gmmdiff."):
                    base = node.module[len("gmmdiff."):] if node.module != "gmmdiff" else ""
                    for a in node.names:
                        sub = f"{base}.{a.name}" if base else a.name
                        deps.add(sub if sub in mods else base)
            elif isinstance(node, ast.Import):
                deps.update(a.name[len("gmmdiff."):] if a.name != "gmmdiff" else ""
                            for a in node.names if a.name.split(".")[0] == "gmmdiff")
        graph[mod] = deps - {mod}
    return graph


def layer(mod):
    top = mod.split(".")[0]
    return top if top in LAYERS else "base"


def upward_imports(graph):
    """[(module, imported module)] breaking THE RULE."""
    bad = []
    for mod, deps in graph.items():
        for dep in deps:
            if dep == "" or LAYERS.index(layer(dep)) > LAYERS.index(layer(mod)):
                bad.append((mod, dep))
    return sorted(bad)


def test_imports_point_down_the_layers():
    graph = import_graph()
    assert {"training.loop", "experiments.runs", "families.gmm", "engine.kernels",
            "model.denoisers", "experiments.sweep.running", "cli.options"} <= set(graph)
    assert upward_imports(graph) == []
    # every top-level folder is a layer, every top-level module a base module
    for name in os.listdir(PKG):
        if os.path.isfile(os.path.join(PKG, name, "__init__.py")):
            assert name in LAYERS, f"gmmdiff/{name}/ is not in LAYERS: place it in THE RULE"
    # an upward import written on purpose is caught, and so is an import of the root
    graph["model.losses"].add("training.config")
    graph["io.files"].add("")
    assert upward_imports(graph) == [("io.files", ""), ("model.losses", "training.config")]


def test_no_import_circles():
    graph = import_graph()
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import circle: " + " -> ".join(path + [m])
        state[m] = "open"
        for dep in sorted(graph.get(m, ())):
            visit(dep, path + [m])
        state[m] = "done"

    for m in graph:
        visit(m, [])
    # a circle written on purpose would be caught
    graph["softmax"].add("model.denoisers")              # denoisers imports softmax
    state.clear()
    with pytest.raises(AssertionError, match="import circle"):
        for m in graph:
            visit(m, [])


def test_every_module_is_under_the_size_limit_and_every_subpackage_says_what_it_holds():
    for mod, path in modules().items():
        n = sum(1 for _ in open(path))
        assert n <= MAX_LINES, f"gmmdiff/{os.path.relpath(path, PKG)} has {n} lines (> {MAX_LINES}): split it by concept"
        doc = ast.get_docstring(ast.parse(open(path).read()))
        assert doc, f"{mod} has no module docstring"
        if path.endswith("__init__.py") and mod != "__init__":
            assert "May import" in doc, f"gmmdiff/{mod.replace('.', '/')}/__init__.py names no import rule"


def test_one_name_one_place():
    """No module but the package root redirects names (module __getattr__), and the
    package root's exports each name a module that defines the name itself."""
    for mod, path in modules().items():
        tree = ast.parse(open(path).read())
        redirects = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]
        assert mod == "__init__" or not redirects, f"{mod} redirects names with __getattr__"
    for name, module in gmmdiff._EXPORTS.items():
        tree = ast.parse(open(modules()[module]).read())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name)}
        assert name in defined, f"gmmdiff.{name} is not defined in gmmdiff.{module}"


def test_loop_and_run_protocol_import_no_model_family():
    graph = import_graph()
    for mod in ("training.loop", "experiments.runs", "training.state", "training.draws",
                "engine.buckets", "training.config", "families.registry"):
        assert not graph[mod] & {"families.gmm", "families.templates", "model.denoisers",
                                 "model.losses"}, (mod, graph[mod])


def test_every_registered_family_provides_the_contract():
    for name in families.MODELS:
        fam = families.get(name)
        for field in ("dataset", "init", "loss", "evaluate", "baselines"):
            assert callable(getattr(fam, field)), (name, field)
    with pytest.raises(ValueError, match="unknown model 'lowrank'"):
        families.get("lowrank")


def test_a_family_registered_under_a_new_name_trains_through_the_run_protocol(tmp_path, monkeypatch):
    """The loop and the run protocol find a family only through the registry: the GMM
    family registered a second time under another name gives the same run."""
    from gmmdiff.training.config import TrainConfig
    from gmmdiff.experiments.runs import run
    from gmmdiff.io.files import read_npz
    monkeypatch.setitem(families.REGISTRY, "gmm_again", "gmmdiff.families.gmm")
    cfg = TrainConfig(dim=3, components=2, samples=8, steps=30, noise_draws=2, lr_peak=1e-2,
                      eval_samples=6, eval_noise_draws=2)
    run(cfg, [3, 8], str(tmp_path / "a"), np)
    run(dataclasses.replace(cfg, model="gmm_again"), [3, 8], str(tmp_path / "b"), np)
    for M in (3, 8):
        a = read_npz(str(tmp_path / "a" / f"model_M{M:05d}.npz"))
        b = read_npz(str(tmp_path / "b" / f"model_M{M:05d}.npz"))
        np.testing.assert_array_equal(a["means"], b["means"])


def test_the_analysis_floor_runs_on_numbers_alone():
    """The estimators import nothing that trains, runs or stores experiments, nor the
    command line: a user can run them on numbers from another code (STYLE 15)."""
    graph = import_graph()
    analysis = [m for m in graph if layer(m) == "analysis"]
    assert {"analysis.transition", "analysis.verdict", "analysis.timelaw", "analysis.inits",
            "analysis.convergence", "analysis.predict", "analysis.fit_files"} <= set(analysis)
    allowed = {"base", "io", "model", "theory", "analysis"}
    bad = sorted((m, dep) for m in analysis for dep in graph[m] if layer(dep) not in allowed)
    assert bad == []
    # an import of the training settings, written on purpose, is caught
    graph["analysis.predict"].add("training.config")
    assert [(m, d) for m in analysis for d in graph[m] if layer(d) not in allowed] == \
        [("analysis.predict", "training.config")]
