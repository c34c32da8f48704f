"""The package's layout: no import circles, model families that plug in, and the
public names that moved out of gmmdiff.train still importing from there."""
import ast
import dataclasses
import os

import numpy as np
import pytest

import gmmdiff
from gmmdiff import families

PKG = os.path.dirname(gmmdiff.__file__)


def import_graph():
    """module -> set of gmmdiff modules it imports anywhere (module level or inside
    functions), from the source."""
    graph = {}
    for name in sorted(os.listdir(PKG)):
        if not name.endswith(".py"):
            continue
        mod = name[:-3]
        deps = set()
        for node in ast.walk(ast.parse(open(os.path.join(PKG, name)).read())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    deps.add(node.module.split(".")[0])
                elif node.level == 1:                                   # from . import x
                    deps.update(a.name for a in node.names)
                elif node.module and node.module.startswith("gmmdiff."):
                    deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names
                            if a.name.startswith("gmmdiff."))
        graph[mod] = deps - {mod}
    return graph


def test_no_import_circles():
    graph = import_graph()
    assert {"train", "runs", "gmm", "templates", "kernels", "denoisers"} <= set(graph)
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
    graph["softmax"].add("denoisers")                   # denoisers imports softmax
    state.clear()
    with pytest.raises(AssertionError, match="import circle"):
        for m in graph:
            visit(m, [])


def test_loop_and_run_protocol_import_no_model_family():
    graph = import_graph()
    for mod in ("train", "runs", "state", "draws", "buckets", "config", "families"):
        assert not graph[mod] & {"gmm", "templates", "denoisers", "losses"}, (mod, graph[mod])


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
    from gmmdiff.config import TrainConfig
    from gmmdiff.runs import run
    from gmmdiff.storage import read_npz
    monkeypatch.setitem(families.REGISTRY, "gmm_again", "gmmdiff.gmm")
    cfg = TrainConfig(dim=3, components=2, samples=8, steps=30, noise_draws=2, lr_peak=1e-2,
                      eval_samples=6, eval_noise_draws=2)
    run(cfg, [3, 8], str(tmp_path / "a"), np)
    run(dataclasses.replace(cfg, model="gmm_again"), [3, 8], str(tmp_path / "b"), np)
    for M in (3, 8):
        a = read_npz(str(tmp_path / "a" / f"model_M{M:05d}.npz"))
        b = read_npz(str(tmp_path / "b" / f"model_M{M:05d}.npz"))
        np.testing.assert_array_equal(a["means"], b["means"])


def test_names_that_moved_still_import_from_gmmdiff_train():
    from gmmdiff import buckets, config, draws, gmm, runs, state, streams
    import gmmdiff.train as tr
    moved = {"TrainConfig": config, "parse_model_sizes": config, "check_sizes": config,
             "initial_state": state, "TrainState": state, "init_params": state,
             "noise_stream": draws, "draw_chunk": draws, "draw_chunk_steps": draws,
             "plan_buckets": buckets, "bucketed": buckets, "eval_seed": streams,
             "run": runs, "run_batch": runs, "identity": runs,
             "evaluate_gmm": gmm, "baseline_losses": gmm, "init_means": gmm}
    for name, home in moved.items():
        assert getattr(tr, name) is getattr(home, name), name
    from gmmdiff.train import run, run_batch, train  # noqa: F401  (the documented surface)
    with pytest.raises(AttributeError):
        tr.no_such_name
