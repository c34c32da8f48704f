"""Kill-at-random: 10 SIGKILLs of a tiny gmmdiff-train run and 10 of a tiny sweep at
seeded random moments, each followed by a restart (benchmarks/kill_harness.py)."""
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
    r = harness(kind, 10, seed=3, workdir=str(tmp_path))
    assert r["kills"] >= 5, r                      # the kills did land (not all after the end)
    assert r["refused_restarts"] == 0 and r["final_exit_code"] == 0, r
    assert r["rerun_exit_code"] == 0, r
    assert r["leftovers"] == [] and r["unexpected_files"] == [], r
    assert r["differing_files"] == [] and r["files_compared"] >= 8, r
