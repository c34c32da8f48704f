"""The CPU thread budget: training runs a crew of one helper thread per extra core,
every thread calling the BLAS at one thread (held so only while training), and the
number of cores never changes a result."""
import threading

import numpy as np
import pytest

from gmmdiff.engine import threads
from gmmdiff.training.config import TrainConfig
from gmmdiff.training.state import initial_state
from gmmdiff.training.loop import train

CTL = threads.blas_controller()
needs_blas = pytest.mark.skipif(CTL is None, reason="no controllable BLAS found in this numpy")


def test_cores_follow_the_worker_share(monkeypatch):
    monkeypatch.setenv(threads.CORES_ENV, "3")
    assert threads.cpu_count() == 3
    with threads.training_crew() as crew:
        assert crew.helpers == 2
    monkeypatch.setenv(threads.CORES_ENV, "1")
    with threads.training_crew() as crew:
        assert crew.helpers == 0
    monkeypatch.setenv(threads.CORES_ENV, "junk")                   # ignored, not an error
    assert threads.cpu_count() >= 1


@needs_blas
def test_blas_threads_caps_and_restores():
    before = CTL.get()
    CTL.set(2)
    try:
        with threads.blas_threads(1) as n:
            assert n == 1 and CTL.get() == 1
        assert CTL.get() == 2
        CTL.set(1)                                    # a lower count already in force is kept
        with threads.blas_threads(4) as n:
            assert n == 1 and CTL.get() == 1
        with pytest.raises(RuntimeError):
            with threads.blas_threads(1):
                raise RuntimeError("training failed")
        assert CTL.get() == 1                         # restored on error too
    finally:
        CTL.set(before)


def _train(cfg, sizes, callback=None):
    ds = cfg.dataset()
    return train(ds, initial_state(ds, sizes, cfg, np), cfg, np, callback=callback, log_every=5)


@needs_blas
def test_training_holds_the_budget_only_while_it_runs(monkeypatch):
    monkeypatch.setenv(threads.CORES_ENV, "2")
    before = CTL.get()
    CTL.set(2)
    seen = []
    try:
        cfg = TrainConfig(dim=6, components=2, samples=16, steps=10, noise_draws=4)
        _train(cfg, [4, 16], callback=lambda step, losses: seen.append(
            (CTL.get(), sorted(t.name for t in threading.enumerate() if "crew" in t.name))))
        assert seen and set(b for b, _ in seen) == {1}          # every thread: 1 BLAS thread
        assert all(names == ["gmmdiff-crew-1"] for _, names in seen)   # 2 cores: 1 helper
        assert CTL.get() == 2
        assert not [t for t in threading.enumerate() if "crew" in t.name]   # joined
    finally:
        CTL.set(before)


@needs_blas
def test_results_do_not_depend_on_the_cores(monkeypatch):
    """1 core (everything on the training thread), 2 (one helper shares the row-block
    tasks and draws ahead) and 4 (three helpers) at a shape with several buckets of
    several tasks each (d = 40, M up to 60, 1,200 rows): bit for bit the same, since
    tasks are fixed by the shapes and their sums added in task order."""
    cfg = TrainConfig(dim=40, components=3, samples=60, steps=6, noise_draws=20)
    out = {}
    for cores in ("1", "2", "4"):
        monkeypatch.setenv(threads.CORES_ENV, cores)
        out[cores] = _train(cfg, [6, 20, 60])
    for cores in ("2", "4"):
        np.testing.assert_array_equal(out[cores].means, out["1"].means)
        np.testing.assert_array_equal(out[cores].std, out["1"].std)
        assert out[cores].losses == out["1"].losses


def test_crew_runs_every_task_once_and_raises_the_first_error():
    for helpers in (0, 1, 3):
        with threads.Crew(helpers) as crew:
            calls = []
            crew.run([lambda slot, i=i: calls.append((i, slot)) for i in range(50)])
            assert sorted(i for i, _ in calls) == list(range(50))
            assert {slot for _, slot in calls} <= set(range(helpers + 1))

            def bad(slot, i):
                if i == 7:
                    raise ZeroDivisionError("task 7")
                calls.append(i)
            calls.clear()
            with pytest.raises(ZeroDivisionError, match="task 7"):
                crew.run([lambda slot, i=i: bad(slot, i) for i in range(20)])
            assert len(set(calls)) == len(calls) and 7 not in calls   # none twice
            crew.run([lambda slot: calls.append("after")] * 3)           # still usable
            assert calls.count("after") == 3


def test_crew_jobs_run_once_in_the_background_or_when_waited_for():
    for helpers in (0, 1, 2):
        with threads.Crew(helpers) as crew:
            ran = []
            jobs = [crew.submit(lambda i=i: ran.append(i) or i * i) for i in range(30)]
            crew.run([lambda slot: None] * 5)               # tasks go first, jobs fill gaps
            assert crew.wait_all(jobs) == [i * i for i in range(30)]
            assert sorted(ran) == list(range(30))
            boom = crew.submit(lambda: 1 / 0)
            with pytest.raises(ZeroDivisionError):
                crew.wait(boom)
            late = crew.submit(lambda: ran.append("late"))
            crew.cancel(late)                                # dropped or finished, never twice
            assert ran.count("late") <= 1
    assert not [t for t in threading.enumerate() if "crew" in t.name]


@needs_blas
def test_the_budget_controls_numpys_blas_not_scipys():
    """scipy's wheels load an OpenBLAS of their own; the budget must hold numpy's."""
    import os
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS too)
    libs = threads._loaded_libraries()
    path = threads._find_controller().path
    assert path in libs
    numpy_dir = os.path.dirname(np.__file__)
    if any("numpy" in os.path.dirname(p) for p in libs):          # numpy's wheel bundles one
        assert "numpy" in os.path.dirname(path) and not path.startswith(
            os.path.dirname(scipy.linalg.__file__)), (path, numpy_dir)
