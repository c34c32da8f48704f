"""Shared fixtures: the array backends available here, hypothesis settings.

Without a GPU the cupy backend runs on the strict CuPy stand-in of
``tests/cupy_standin`` (see its ``cupy/__init__.py``): it goes first on ``sys.path``
before anything imports gmmdiff, and first on ``PYTHONPATH`` for the scripts tests run
in subprocesses. A real CuPy that sees a GPU wins (probed in a subprocess, so no real
cupy module stays loaded here); ``GMMDIFF_CUPY_STANDIN=1`` forces the stand-in,
``GMMDIFF_CUPY_STANDIN=0`` leaves cupy to whatever is installed.
"""
import os
import subprocess
import sys
from importlib.machinery import PathFinder

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cupy_standin")


def _without_standin(paths):
    return [p for p in paths if not p or os.path.abspath(p) != STANDIN]


def _real_cupy_with_gpu():
    """True when a CuPy other than the stand-in imports and sees a CUDA device."""
    if PathFinder.find_spec("cupy", _without_standin(sys.path)) is None:
        return False                                     # no CuPy installed: no probe
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in _without_standin(os.environ.get("PYTHONPATH", "").split(os.pathsep)) if p))
    probe = "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)"
    try:
        return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                              timeout=300).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _use_standin():
    flag = os.environ.get("GMMDIFF_CUPY_STANDIN", "").strip()
    if flag not in ("", "0", "1"):
        raise RuntimeError(f"GMMDIFF_CUPY_STANDIN = {flag!r}; accepted: 0 (off), 1 (on), unset (auto)")
    return flag == "1" if flag else not _real_cupy_with_gpu()


CUPY_STANDIN = _use_standin()
_pythonpath = [p for p in _without_standin(os.environ.get("PYTHONPATH", "").split(os.pathsep)) if p]
sys.path[:] = _without_standin(sys.path) if not CUPY_STANDIN else [STANDIN] + _without_standin(sys.path)
if CUPY_STANDIN or "PYTHONPATH" in os.environ:
    os.environ["PYTHONPATH"] = os.pathsep.join(([STANDIN] if CUPY_STANDIN else []) + _pythonpath)
if "cupy" in sys.modules and CUPY_STANDIN != hasattr(sys.modules["cupy"], "_standin"):
    raise RuntimeError("cupy was imported before tests/conftest.py chose the backend")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from gmmdiff.backend import cupy_available, get_xp

settings.register_profile("gmmdiff", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
# HYPOTHESIS_PROFILE=stress: ten times the examples, to look for rare failures
settings.register_profile("stress", deadline=None, max_examples=400,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gmmdiff"))

BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS)
def xp(request):
    """numpy, and cupy where CuPy sees a GPU (skipped cleanly otherwise)."""
    if request.param == "cupy" and not cupy_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    return get_xp(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_report_header(config):
    if CUPY_STANDIN:
        return "cupy: the strict CuPy stand-in of tests/cupy_standin (no GPU)"
    return f"cupy: {'available' if cupy_available() else 'not available'} (stand-in off)"


def pytest_configure(config):
    if CUPY_STANDIN:        # a kernel call that works on a GPU only by luck fails the test
        config.addinivalue_line("filterwarnings", "error::cupy._kernels.StandinWarning")
    config.addinivalue_line("markers", "gpu: needs CuPy and a CUDA GPU")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "slurm: submits jobs to a live Slurm cluster (.ci/start-slurm "
                                       "starts one); skipped where none answers")
