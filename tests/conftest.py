"""Shared fixtures: the array backends available here, hypothesis settings."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

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


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CuPy and a CUDA GPU")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
