"""cupy.cuda.runtime of the stand-in: one simulated device (or CUPY_STANDIN_DEVICES
of them), filtered by CUDA_VISIBLE_DEVICES as the CUDA runtime does."""
import os


class CUDARuntimeError(RuntimeError):
    def __init__(self, status, message=None):
        self.status = status
        super().__init__(message or f"CUDA runtime error {status}")


cudaErrorInvalidDevice = 101
cudaErrorNoDevice = 100
_current = 0


def _physical():
    return int(os.environ.get("CUPY_STANDIN_DEVICES", "1"))


def getDeviceCount():
    """Simulated devices (default 1), filtered like CUDA: CUDA_VISIBLE_DEVICES lists
    ordinals; the list stops at the first entry that is not a valid ordinal."""
    n = _physical()
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is None:
        return n
    seen = []
    for tok in vis.split(","):
        tok = tok.strip()
        if not tok.isdigit() or int(tok) >= n or int(tok) in seen:
            break
        seen.append(int(tok))
    return len(seen)


def _check(device):
    if not 0 <= int(device) < getDeviceCount():
        raise CUDARuntimeError(cudaErrorInvalidDevice, "cudaErrorInvalidDevice: invalid device ordinal")


def getDevice():
    _check(_current)
    return _current


def setDevice(device):
    global _current
    _check(device)
    _current = int(device)


def deviceSynchronize():
    from .._standin import record
    record("sync", "deviceSynchronize")


def runtimeGetVersion():
    return 12080


def driverGetVersion():
    return 12080


def memGetInfo():
    total = 143771533312
    from .. import get_default_memory_pool
    return total - get_default_memory_pool().total_bytes(), total


def getDeviceProperties(device):
    """A dict like CuPy's (``name`` is bytes), describing an H200-like device."""
    _check(device)
    return {"name": b"CuPy stand-in (CPU)", "totalGlobalMem": 143771533312,
            "sharedMemPerBlock": 49152, "regsPerBlock": 65536, "warpSize": 32,
            "maxThreadsPerBlock": 1024, "maxThreadsDim": (1024, 1024, 64),
            "maxGridSize": (2147483647, 65535, 65535), "clockRate": 1980000,
            "totalConstMem": 65536, "major": 9, "minor": 0, "multiProcessorCount": 132,
            "l2CacheSize": 52428800, "memoryClockRate": 3201000, "memoryBusWidth": 6144,
            "pciBusID": 0, "pciDeviceID": 0, "computeMode": 0, "integrated": 0,
            "uuid": b"\0" * 16}
