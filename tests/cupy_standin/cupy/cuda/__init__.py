"""cupy.cuda of the stand-in: devices, streams and events that do nothing but count
their synchronizations (work is done when it is issued)."""
import time

from .. import _standin
from . import compiler, runtime  # noqa: F401
from .runtime import CUDARuntimeError  # noqa: F401


def is_available():
    return runtime.getDeviceCount() > 0


def get_device_id():
    return runtime.getDevice()


class Device:
    def __init__(self, device=None):
        self.id = runtime.getDevice() if device is None else int(device)
        self._prev = []

    def __int__(self):
        return self.id

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def use(self):
        runtime.setDevice(self.id)

    def __enter__(self):
        self._prev.append(runtime._current)
        runtime.setDevice(self.id)
        return self

    def __exit__(self, *exc):
        runtime._current = self._prev.pop()

    def synchronize(self):
        runtime._check(self.id)
        _standin.record("sync", "Device.synchronize")

    @property
    def compute_capability(self):
        p = runtime.getDeviceProperties(self.id)
        return f"{p['major']}{p['minor']}"

    @property
    def mem_info(self):
        return runtime.memGetInfo()

    @property
    def attributes(self):
        p = runtime.getDeviceProperties(self.id)
        return {"MultiProcessorCount": p["multiProcessorCount"], "WarpSize": 32,
                "MaxThreadsPerBlock": p["maxThreadsPerBlock"]}


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        _standin.record("sync", "Event.synchronize")

    @property
    def done(self):
        return True


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events."""
    return (end_event.time - start_event.time) * 1e3


class Stream:
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0 if null else id(self)
        self._prev = []

    def __enter__(self):
        global _current_stream
        self._prev.append(_current_stream)
        _current_stream = self
        return self

    def __exit__(self, *exc):
        global _current_stream
        _current_stream = self._prev.pop()

    def use(self):
        global _current_stream
        _current_stream = self
        return self

    def synchronize(self):
        _standin.record("sync", "Stream.synchronize")

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event):
        pass

    @property
    def done(self):
        return True


Stream.null = Stream(null=True)
_current_stream = Stream.null


def get_current_stream(device_id=None):
    return _current_stream
