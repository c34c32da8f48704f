"""Raw kernels of the stand-in, run on the host: ``RawKernel``, ``ElementwiseKernel``,
``fuse``.

The CUDA source is compiled as C++ by the host compiler (``$CXX``, else g++ or c++)
after a prelude that defines CUDA's built-in indices (``threadIdx``, ``blockIdx``,
``blockDim``, ``gridDim``) as globals and CUDA's qualifiers away; a generated launcher
runs every thread of the grid in turn. That is exact for kernels whose threads do not
cooperate (no shared memory, no ``__syncthreads``, no data races; atomics run in
thread order); sources using shared memory or barriers are refused with an error.
Builds are cached as ``<hash>.so`` under ``$CUPY_STANDIN_CACHE`` (default
``<tmp>/cupy-standin-<uid>``), keyed by the source and compiler flags.

Arguments are passed the way CuPy passes them (cupy/cuda/function.pyx ``_pointer``):
a device array as the address of its first element (whatever its strides: CuPy does
not check contiguity either, so the stand-in warns when a non-contiguous array is
passed), None as a null pointer, a numpy size-1 array by value, a numpy scalar by its
bytes and a Python scalar as int64 / float64 / bool / complex128 (_scalar.pyx
``CScalar``). CuPy does not know the parameter types: the kernel reads
``sizeof(parameter)`` bytes of what it was given. The stand-in reproduces that
(a Python float given to a ``float`` parameter reads the low half of a double) and
warns (:class:`StandinWarning`, counted as a "warning" event) wherever the argument's
size or kind differs from the parameter's.
"""
import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import warnings

import numpy as np

from . import _standin
from .cuda.compiler import CompileException


class StandinWarning(UserWarning):
    """A kernel call that works on a GPU only by luck (or not at all)."""


def _warn(msg):
    _standin.record("warning", msg.split(":")[0])
    warnings.warn(msg, StandinWarning, stacklevel=4)


PRELUDE = r"""
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <algorithm>
using std::exp; using std::exp2; using std::expm1; using std::log; using std::log1p;
using std::log2; using std::log10; using std::sqrt; using std::cbrt; using std::pow;
using std::sin; using std::cos; using std::tan; using std::asin; using std::acos;
using std::atan; using std::atan2; using std::sinh; using std::cosh; using std::tanh;
using std::fabs; using std::abs; using std::fmax; using std::fmin; using std::fmod;
using std::floor; using std::ceil; using std::round; using std::trunc; using std::rint;
using std::hypot; using std::erf; using std::erfc; using std::lgamma; using std::tgamma;
using std::copysign; using std::isnan; using std::isinf; using std::isfinite;
using std::min; using std::max;
struct __standin_dim3 { unsigned int x, y, z; };
static __standin_dim3 threadIdx, blockIdx, blockDim, gridDim;
static const int warpSize = 32;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
// glibc declares __expf, __logf, __sinf, __cosf, __powf itself
static inline float __fdividef(float x, float y) { return x / y; }
template <typename T> static inline T __ldg(const T* p) { return *p; }
template <typename T, typename U> static inline T atomicAdd(T* p, U v) { T o = *p; *p = o + v; return o; }
template <typename T, typename U> static inline T atomicMax(T* p, U v) { T o = *p; *p = o > (T)v ? o : (T)v; return o; }
template <typename T, typename U> static inline T atomicMin(T* p, U v) { T o = *p; *p = o < (T)v ? o : (T)v; return o; }
"""

_REFUSED = ("__syncthreads", "__shared__", "__syncwarp", "__shfl", "cooperative_groups")

# C parameter types -> ctypes (size and kind checked against each argument)
_CTYPES = {
    "bool": ctypes.c_bool, "char": ctypes.c_char, "signed char": ctypes.c_byte,
    "unsigned char": ctypes.c_ubyte, "short": ctypes.c_short, "unsigned short": ctypes.c_ushort,
    "int": ctypes.c_int, "signed int": ctypes.c_int, "unsigned int": ctypes.c_uint,
    "unsigned": ctypes.c_uint, "long": ctypes.c_long, "unsigned long": ctypes.c_ulong,
    "long long": ctypes.c_longlong, "long long int": ctypes.c_longlong,
    "unsigned long long": ctypes.c_ulonglong, "unsigned long long int": ctypes.c_ulonglong,
    "float": ctypes.c_float, "double": ctypes.c_double, "size_t": ctypes.c_size_t,
    "ptrdiff_t": ctypes.c_ssize_t, "int8_t": ctypes.c_int8, "int16_t": ctypes.c_int16,
    "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "uint8_t": ctypes.c_uint8,
    "uint16_t": ctypes.c_uint16, "uint32_t": ctypes.c_uint32, "uint64_t": ctypes.c_uint64,
}
_FLOATS = {"float", "double"}
# numpy dtypes -> C type names for ElementwiseKernel (cupy/_core/_scalar.pyx _typenames)
_C_OF_DTYPE = {np.dtype(k): v for k, v in (
    ("bool", "bool"), ("int8", "signed char"), ("uint8", "unsigned char"),
    ("int16", "short"), ("uint16", "unsigned short"), ("int32", "int"),
    ("uint32", "unsigned int"), ("int64", "long long"), ("uint64", "unsigned long long"),
    ("float32", "float"), ("float64", "double"))}


def compiler():
    """The host C++ compiler ($CXX if set, else g++ or c++), or None."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"])
    return shutil.which("g++") or shutil.which("c++")


_FLAGS = ("-std=c++17", "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-w")
# Device arithmetic (RawKernel only): NVRTC contracts a * b + c into one fused
# multiply-add by default (--fmad=true) and CuPy adds -ftz=true (float32 subnormal inputs
# and results flushed to zero; cupy/cuda/compiler.py _compile_with_cache_cuda). The
# host emulation: contraction by the host compiler on an FMA unit, and x86's FTZ and DAZ
# bits set while the kernel runs. Not the same contractions as NVVM chooses, nor
# exactly its flushing (x86 FTZ/DAZ flush float64 subnormals too, CUDA's -ftz does not):
# the same kinds of difference from the exact evaluation, for tolerance tests.
_DEVICE_FLAGS = ("-std=c++17", "-O2", "-ffp-contract=fast", "-mfma", "-shared", "-fPIC", "-w",
                 "-DCUPY_STANDIN_DEVICE_MATH=1")
_libs = {}
_device_math = [os.environ.get("CUPY_STANDIN_DEVICE_MATH", "") == "1"]


def device_math_available():
    """True where the host has fused multiply-add (x86-64 with FMA3): the device
    arithmetic mode can run."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            return any(line.startswith("flags") and " fma " in f" {line.split(':', 1)[-1]} "
                       for line in fh)
    except OSError:  # pragma: no cover - not Linux
        return False


class device_math:
    """Context manager (and CUPY_STANDIN_DEVICE_MATH=1 for a whole process): raw kernels
    launched inside run with the device's kinds of arithmetic, see ``_DEVICE_FLAGS``."""

    def __init__(self, on=True):
        self.on = on

    def __enter__(self):
        if self.on and not device_math_available():
            raise RuntimeError("cupy stand-in: device arithmetic needs a host with FMA (x86-64 FMA3)")
        self._prev = _device_math[0]
        _device_math[0] = self.on
        return self

    def __exit__(self, *exc):
        _device_math[0] = self._prev


def _build(source, label, flags=_FLAGS):
    """Compile ``source`` to a cached shared library; returns the ctypes CDLL."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("cupy stand-in: RawKernel / ElementwiseKernel need a host C++ compiler "
                           "(g++ or c++, or $CXX) to run CUDA kernels on the CPU; none found")
    key = hashlib.sha256("\0".join((cxx,) + tuple(flags) + (source,)).encode()).hexdigest()[:32]
    if key in _libs:
        return _libs[key]
    cache = os.environ.get("CUPY_STANDIN_CACHE") or os.path.join(
        tempfile.gettempdir(), f"cupy-standin-{os.getuid()}")
    os.makedirs(cache, exist_ok=True)
    so = os.path.join(cache, key + ".so")
    if not os.path.exists(so):
        src = os.path.join(cache, key + ".cpp")
        with open(src, "w") as f:
            f.write(source)
        tmp = f"{so}.{os.getpid()}.tmp"
        res = subprocess.run([cxx, *flags, "-o", tmp, src], capture_output=True, text=True)
        if res.returncode != 0:
            raise CompileException(f"{label}: host build of the kernel failed:\n{res.stderr}",
                                   source, label, tuple(flags))
        os.replace(tmp, so)
    _libs[key] = ctypes.CDLL(so)
    return _libs[key]


def _split_params(text):
    depth, cur, out = 0, "", []
    for ch in text:
        if ch in "(<[":
            depth += 1
        elif ch in ")>]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out if p.strip() and p.strip() != "void"]


class _Param:
    """One kernel parameter: its declaration, name, pointer-ness and (for scalars) the
    resolved C type."""

    def __init__(self, decl, typedefs):
        self.decl = decl
        m = re.match(r"^(.*?)([A-Za-z_]\w*)\s*(\[\s*\])?$", decl, re.S)
        if not m:
            raise ValueError(f"cupy stand-in: cannot parse kernel parameter {decl!r}")
        tpart, self.name, brackets = m.group(1), m.group(2), m.group(3)
        self.pointer = "*" in tpart or bool(brackets)
        words = [w for w in re.findall(r"[A-Za-z_]\w*", tpart)
                 if w not in ("const", "volatile", "__restrict__", "restrict", "struct")]
        ctype = " ".join(words)
        seen = set()
        while ctype in typedefs and ctype not in seen:
            seen.add(ctype)
            ctype = typedefs[ctype]
        self.ctype = ctype
        if not self.pointer and ctype not in _CTYPES:
            raise ValueError(f"cupy stand-in: kernel parameter {decl!r} of type {ctype!r} is not "
                             "supported (scalars of the C arithmetic types and pointers are)")


def _typedefs(source):
    out = {}
    for m in re.finditer(r"typedef\s+([^;{}]+?)\s+([A-Za-z_]\w*)\s*;", source):
        out[m.group(2)] = " ".join(w for w in m.group(1).split() if w not in ("const", "volatile"))
    for m in re.finditer(r"using\s+([A-Za-z_]\w*)\s*=\s*([^;{}]+?)\s*;", source):
        out[m.group(1)] = " ".join(m.group(2).split())
    return out


def _scalar_bytes(x):
    """The bytes CuPy passes for a non-array argument, and a short description."""
    if isinstance(x, np.ndarray):
        if x.size != 1:
            raise TypeError(
                f"You are trying to pass a numpy.ndarray of shape {x.shape} as a kernel "
                "parameter. Only numpy.ndarrays of size one can be passed by value. If you "
                "meant to pass a pointer to __global__ memory, you need to pass a "
                "cupy.ndarray instead.")
        return x.tobytes(), x.dtype
    if isinstance(x, np.generic):
        return x.tobytes(), x.dtype
    if type(x) is bool:
        return np.bool_(x).tobytes(), np.dtype(bool)
    if type(x) is int:
        v = np.uint64(x) if x >= 1 << 63 else np.int64(x)
        return v.tobytes(), v.dtype
    if type(x) is float:
        return np.float64(x).tobytes(), np.dtype(np.float64)
    if type(x) is complex:
        return np.complex128(x).tobytes(), np.dtype(np.complex128)
    raise TypeError(f"Unsupported type {type(x)}")


def _kind_matches(dtype, ctype):
    if ctype in _FLOATS:
        return dtype.kind == "f"
    if ctype == "bool":
        return dtype.kind == "b"
    return dtype.kind in "iub"


def _pointer_of(x, param, kname):
    from . import ndarray
    if x is None:
        return ctypes.c_void_p(0)
    if isinstance(x, np.ndarray):
        _scalar_bytes(x)                        # CuPy's TypeError for a host array
    if isinstance(x, ndarray):
        a = x._a
        ct = _CTYPES.get(param.ctype)
        if ct is not None and (ctypes.sizeof(ct) != a.dtype.itemsize
                               or not _kind_matches(a.dtype, param.ctype)):
            _warn(f"array type mismatch: kernel {kname}, parameter {param.decl!r} points to "
                  f"{param.ctype} ({ctypes.sizeof(ct)} bytes) but the array is {a.dtype} "
                  f"({a.dtype.itemsize} bytes); CuPy passes the address and the kernel reads "
                  "the bytes as its own type")
        if a.size and not a.flags.c_contiguous:
            _warn(f"non-contiguous array passed as a raw pointer: kernel {kname}, parameter "
                  f"{param.decl!r}, shape {a.shape}, strides {a.strides} (CuPy passes the "
                  "address of the first element; the kernel indexes it as if contiguous)")
        return ctypes.c_void_p(a.ctypes.data if a.size else 0)
    raise TypeError(f"kernel {kname}: parameter {param.decl!r} is a pointer but the argument is "
                    f"{type(x).__name__}; on a GPU the kernel would dereference the bytes of a "
                    "scalar as an address (cudaErrorIllegalAddress)")


def _value_of(x, param, kname):
    from . import ndarray
    ct = _CTYPES[param.ctype]
    size = ctypes.sizeof(ct)
    if isinstance(x, ndarray):
        raw, dt = np.uint64(x._a.ctypes.data).tobytes(), np.dtype(np.uint64)
        _warn(f"device array passed to scalar parameter {param.decl!r} of kernel {kname}")
    elif x is None:
        raw, dt = bytes(8), np.dtype(np.uint64)
    else:
        raw, dt = _scalar_bytes(x)
    if len(raw) != size or not _kind_matches(dt, param.ctype):
        _warn(f"argument type mismatch: kernel {kname}, parameter {param.decl!r} "
              f"({size} bytes) given {dt} ({len(raw)} bytes); the kernel reads the first "
              f"{size} bytes")
    return ct.from_buffer_copy(raw[:size].ljust(size, b"\0"))


def _grid3(g, what):
    if isinstance(g, int):
        raise TypeError(f"'{what}' must be a tuple of up to 3 ints (got int); CuPy indexes it")
    g = tuple(int(v) for v in g)
    if not 1 <= len(g) <= 3:
        raise ValueError(f"{what} must have 1 to 3 dimensions")
    return g + (1,) * (3 - len(g))


class RawKernel:
    """``cupy.RawKernel(code, name)``: the CUDA kernel ``name`` (declared
    ``extern "C" __global__``) of ``code``, run on the host."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        self.code = code
        self.name = name
        self.options = options
        self.backend = backend
        self.enable_cooperative_groups = enable_cooperative_groups
        self._lib = None

    def _compile(self):
        mode = _device_math[0]
        libs = self.__dict__.setdefault("_libs_by_mode", {})
        if mode in libs:
            self._lib = libs[mode]
            return
        self._lib = None
        for word in _REFUSED:
            if word in self.code:
                raise NotImplementedError(
                    f"cupy stand-in: kernel {self.name} uses {word}; the host emulation runs "
                    "threads one after another and cannot run threads that cooperate")
        m = re.search(r'(extern\s+"C"\s+)?__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s*)?'
                      + re.escape(self.name) + r"\s*\(", self.code)
        if m is None or not (m.group(1) or re.search(r'extern\s+"C"\s*\{', self.code)):
            from .cuda.runtime import CUDARuntimeError
            raise CUDARuntimeError(500, f"CUDA_ERROR_NOT_FOUND: named symbol not found "
                                   f"({self.name!r} is not an extern \"C\" __global__ function "
                                   "of the source)")
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(self.code[i], 0)
            i += 1
        typedefs = _typedefs(self.code)
        self._params = [_Param(p, typedefs) for p in _split_params(self.code[m.end():i - 1])]
        decls = ", ".join(p.decl for p in self._params)
        names = ", ".join(p.name for p in self._params)
        launcher = (
            "\n#ifdef CUPY_STANDIN_DEVICE_MATH\n#include <xmmintrin.h>\n#endif\n"
            f'extern "C" void cupy_standin_launch(unsigned gx, unsigned gy, unsigned gz, '
            f"unsigned bx, unsigned by, unsigned bz{', ' if decls else ''}{decls})\n{{\n"
            "#ifdef CUPY_STANDIN_DEVICE_MATH\n"
            "    const unsigned csr = _mm_getcsr(); _mm_setcsr(csr | 0x8040);  // FTZ | DAZ\n"
            "#endif\n"
            "    gridDim = {gx, gy, gz}; blockDim = {bx, by, bz};\n"
            "    for (blockIdx.z = 0; blockIdx.z < gz; ++blockIdx.z)\n"
            "    for (blockIdx.y = 0; blockIdx.y < gy; ++blockIdx.y)\n"
            "    for (blockIdx.x = 0; blockIdx.x < gx; ++blockIdx.x)\n"
            "    for (threadIdx.z = 0; threadIdx.z < bz; ++threadIdx.z)\n"
            "    for (threadIdx.y = 0; threadIdx.y < by; ++threadIdx.y)\n"
            "    for (threadIdx.x = 0; threadIdx.x < bx; ++threadIdx.x)\n"
            f"        {self.name}({names});\n"
            "#ifdef CUPY_STANDIN_DEVICE_MATH\n    _mm_setcsr(csr);\n#endif\n}\n")
        self._lib = libs[mode] = _build(PRELUDE + "\n#line 1 \"kernel.cu\"\n" + self.code + launcher,
                                        f"RawKernel {self.name}", _DEVICE_FLAGS if mode else _FLAGS)

    @property
    def attributes(self):
        return {"max_threads_per_block": 1024, "num_regs": 32}

    @property
    def max_threads_per_block(self):
        return 1024

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        _standin.need("nvrtc")
        self._compile()
        g, b = _grid3(grid, "grid"), _grid3(block, "block")
        if 0 in g or 0 in b:
            from .cuda.runtime import CUDARuntimeError
            raise CUDARuntimeError(1, "CUDA_ERROR_INVALID_VALUE: invalid argument (empty grid or block)")
        if b[0] * b[1] * b[2] > 1024:
            from .cuda.runtime import CUDARuntimeError
            raise CUDARuntimeError(1, "CUDA_ERROR_INVALID_VALUE: more than 1024 threads per block")
        args = tuple(args)
        if len(args) != len(self._params):
            raise TypeError(f"kernel {self.name} takes {len(self._params)} arguments, got "
                            f"{len(args)} (CuPy does not check; the GPU would read garbage)")
        values = [(_pointer_of if p.pointer else _value_of)(x, p, self.name)
                  for x, p in zip(args, self._params)]
        _standin.record("launch", f"RawKernel {self.name}")
        self._lib.cupy_standin_launch(*(ctypes.c_uint(v) for v in g + b), *values)


class ElementwiseKernel:
    """``cupy.ElementwiseKernel(in_params, out_params, operation, name)`` run on the
    host: non-raw arguments broadcast, placeholder types (one letter) resolved from the
    array arguments, outputs allocated when not given (cupy/_core/_kernel.pyx)."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True,
                 preamble="", no_return=False, return_tuple=False, loop_prep="",
                 after_loop="", **kwargs):
        self.in_params = self._parse(in_params, True)
        self.out_params = self._parse(out_params, False)
        self.operation, self.name, self.preamble = operation, name, preamble
        self.loop_prep, self.after_loop = loop_prep, after_loop
        self.no_return, self.return_tuple = no_return, return_tuple
        self.nin, self.nout = len(self.in_params), len(self.out_params)
        self.nargs = self.nin + self.nout
        self._libs = {}

    @staticmethod
    def _parse(spec, is_const):
        out = []
        for p in (s for s in spec.split(",") if s.strip()):
            words = p.split()
            if len(words) < 2:
                raise Exception(f"Syntax error: {p}")
            t, name = words[-2:]
            raw = "raw" in words[:-2]
            for w in words[:-2]:
                if w not in ("raw", "_non_const"):
                    raise Exception(f'Unknown keyword "{w}"')
            dtype = None if len(t) == 1 else np.dtype(t)
            out.append({"name": name, "ctype": t, "dtype": dtype, "raw": raw,
                        "const": is_const and "_non_const" not in words})
        return out

    def __call__(self, *args, size=None, block_size=128, stream=None):
        from . import _operand, _wrap, ndarray
        if len(args) not in (self.nin, self.nargs):
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either "
                            f"{self.nin} or {self.nargs} (with outputs), but given {len(args)}.")
        _standin.need("nvrtc")
        ins = [_operand(a) for a in args[:self.nin]]
        outs = list(args[self.nin:])
        for o in outs:
            if not isinstance(o, ndarray):
                raise TypeError("Output arguments must be cupy.ndarray")
        types = {}
        for p, o in zip(self.out_params, outs):
            self._bind(p, o.dtype, types)
        for p, a in zip(self.in_params, ins):
            if isinstance(a, np.ndarray):
                self._bind(p, a.dtype, types)
        dtypes = [p["dtype"] or types[p["ctype"]] for p in self.in_params + self.out_params]
        params = self.in_params + self.out_params
        shapes = [a.shape for a, p in zip(ins, self.in_params)
                  if isinstance(a, np.ndarray) and not p["raw"]]
        shapes += [o.shape for o, p in zip(outs, self.out_params) if not p["raw"]]
        if size is not None:
            shape = (int(size),)
        elif shapes:
            shape = np.broadcast_shapes(*shapes)
        else:
            raise ValueError("Loop size is undecided")
        if not outs:
            from . import empty
            outs = [empty(shape, dt) for dt in dtypes[self.nin:]]
        n = int(np.prod(shape))
        buffers, writeback, cargs = [], [], [ctypes.c_longlong(n)]
        for k, (p, dt) in enumerate(zip(params, dtypes)):
            x = ins[k] if k < self.nin else outs[k - self.nin]._a
            if not isinstance(x, np.ndarray):                     # scalar input
                buf = np.full(n if not p["raw"] else 1, x, dtype=dt)
            elif p["raw"]:
                buf = np.ascontiguousarray(x)
            else:
                buf = np.ascontiguousarray(np.broadcast_to(x, shape)).reshape(-1)
            if k >= self.nin and not np.may_share_memory(buf, x):
                writeback.append((x, buf))
            elif k >= self.nin and not x.flags.c_contiguous:
                writeback.append((x, buf))
            buffers.append(buf)
            cargs.append(ctypes.c_void_p(buf.ctypes.data if buf.size else 0))
            if p["raw"]:
                cargs.append(ctypes.c_longlong(buf.size))
        lib = self._lib(tuple(dtypes), types)
        if n:
            _standin.record("launch", f"ElementwiseKernel {self.name}")
            lib.cupy_standin_elementwise(*cargs)
        for x, buf in writeback:
            x[...] = buf.reshape(x.shape) if buf.size == x.size else buf.reshape(shape)
        if self.no_return:
            return None
        res = outs if isinstance(outs[0], ndarray) else [_wrap(o) for o in outs]
        return res[0] if self.nout == 1 and not self.return_tuple else tuple(res)

    @staticmethod
    def _bind(p, dt, types):
        if p["dtype"] is not None:
            if np.dtype(dt) != p["dtype"]:
                raise TypeError(f"Type is mismatched. {p['name']} {dt} {p['dtype']}")
        elif p["ctype"] in types and np.dtype(types[p["ctype"]]) != np.dtype(dt):
            raise TypeError(f"Type is mismatched. {p['name']} {dt} {types[p['ctype']]} {p['ctype']}")
        else:
            types.setdefault(p["ctype"], np.dtype(dt))

    def _lib(self, dtypes, types):
        key = dtypes
        if key not in self._libs:
            params = self.in_params + self.out_params
            lines = [PRELUDE]
            lines += [f"typedef {_C_OF_DTYPE[np.dtype(t)]} {c};" for c, t in sorted(types.items())]
            lines.append(self.preamble)
            lines.append("struct __standin_ind { long long n; long long size() const { return n; } };")
            lines.append("template <typename T> struct __standin_raw { T* p; long long n; "
                         "T& operator[](long long i) const { return p[i]; } "
                         "long long size() const { return n; } };")
            decl = ["long long __n"]
            for p, dt in zip(params, dtypes):
                c = _C_OF_DTYPE[np.dtype(dt)]
                decl.append(f"{c}* {p['name']}__p")
                if p["raw"]:
                    decl.append(f"long long {p['name']}__n")
            body = ["    __standin_ind _ind{__n};"]
            for p, dt in zip(params, dtypes):
                if p["raw"]:
                    c = _C_OF_DTYPE[np.dtype(dt)]
                    body.append(f"    __standin_raw<{c}> {p['name']}{{{p['name']}__p, {p['name']}__n}};")
            body.append(self.loop_prep)
            body.append("    for (ptrdiff_t i = 0; i < __n; ++i) {")
            for p, dt in zip(params, dtypes):
                if p["raw"]:
                    continue
                c = _C_OF_DTYPE[np.dtype(dt)]
                if p["const"]:
                    body.append(f"        const {c} {p['name']} = {p['name']}__p[i];")
                else:
                    body.append(f"        {c}& {p['name']} = {p['name']}__p[i];")
            body.append("        " + self.operation + ";")
            body.append("    }")
            body.append(self.after_loop)
            lines.append(f'extern "C" void cupy_standin_elementwise({", ".join(decl)})\n{{\n'
                         + "\n".join(body) + "\n}\n")
            self._libs[key] = _build("\n".join(lines), f"ElementwiseKernel {self.name}")
        return self._libs[key]


def fuse(*args, **kwargs):
    """``cupy.fuse``: the function runs op by op as usual, but counts as one launch when
    it gets a device array (CuPy compiles it into one kernel); with host arguments
    only it is the plain Python function, as in CuPy."""
    def decorate(func):
        name = kwargs.get("kernel_name") or getattr(func, "__name__", "fused")

        @functools.wraps(func)
        def call(*a, **kw):
            from . import ndarray
            if not any(isinstance(x, ndarray) for x in a):
                return func(*a, **kw)
            with _standin.suspended():
                r = func(*a, **kw)
            _standin.record("launch", f"fuse {name}")
            return r
        return call

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate
