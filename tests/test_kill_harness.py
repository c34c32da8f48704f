"""Kill-at-random: 6 SIGKILLs of a tiny gmmdiff-train run and 6 of a tiny sweep at
seeded random moments, each followed by a restart, and kills of the sweep aimed at the
end of each phase and between a configuration's last result and its transition.json
(benchmarks/kill_harness.py)."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("kill_harness",
                                                  os.path.join(ROOT, "benchmarks", "kill_harness.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.harness


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["train", "sweep"])
def test_random_kills_lock_nothing_leave_nothing_change_nothing(harness, kind, tmp_path):
    r = harness(kind, 6, seed=3, workdir=str(tmp_path))
    assert r["kills"] >= 3, r                      # the kills did land (not all after the end)
    assert r["refused_restarts"] == 0 and r["final_exit_code"] == 0, r
    assert r["rerun_exit_code"] == 0, r
    assert r["leftovers"] == [] and r["unexpected_files"] == [], r
    assert r["differing_files"] == [] and r["files_compared"] >= 8, r


@pytest.mark.slow
def test_random_kills_of_a_cupy_run(harness, tmp_path):
    """The same on the cupy backend (the CuPy stand-in where no GPU is): device draws
    and checkpoints resume bit for bit."""
    from gmmdiff.backend import cupy_available
    if not cupy_available():
        pytest.skip("neither CuPy with a GPU nor the CuPy stand-in is active")
    r = harness("train", 3, seed=5, workdir=str(tmp_path), extra=("--backend", "cupy"))
    assert r["kills"] >= 1 and r["refused_restarts"] == 0 and r["final_exit_code"] == 0, r
    assert r["leftovers"] == [] and r["differing_files"] == [], r


@pytest.mark.slow
def test_aimed_kills_of_a_sweep_resume_to_the_uninterrupted_files(harness, tmp_path):
    """A kill at the end of the first unit's coarse phase, after its refinement plan, at
    the end of its refinement, after its first configuration's baselines.json (its last
    result written, its transition.json not) and after that configuration's
    transition.json (the unit's other configuration still to finish): the resumed
    sweep's every file equals the uninterrupted one's (the plan of sizes recorded before
    each phase is followed, nothing recomputed) and no lock file is left. (The harness
    run by hand, --aimed 4, also kills at the later visits of each point.)"""
    r = harness("sweep", 0, seed=0, workdir=str(tmp_path), aimed=1)
    aimed = r["aimed"]
    assert all(v["kills"] == 1 for v in aimed["points"].values()), aimed
    assert aimed["total"] == {"kills": 5, "differing": 0, "leftovers": 0, "unexpected": 0,
                              "failed": 0}, aimed
    assert "final_exit_code" not in r, r        # (no random kills: nothing else ran)
