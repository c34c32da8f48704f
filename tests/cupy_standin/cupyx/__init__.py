"""cupyx of the CuPy stand-in: only ``cupyx.profiler``."""
from . import profiler  # noqa: F401
