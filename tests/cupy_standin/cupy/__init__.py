"""A strict CuPy stand-in for machines without a GPU: a test double, not a CuPy.

Put ``tests/cupy_standin`` first on ``sys.path`` and ``import cupy`` loads this
package (``tests/conftest.py`` does so unless a real CuPy with a GPU is importable, or
``GMMDIFF_CUPY_STANDIN=0``). Device arrays are :class:`ndarray` objects holding a
numpy array that stands for device memory; every operation computes with numpy, so
results equal numpy's up to the order of floating-point reductions. The point is the
rules CuPy enforces and the work a GPU would do, not speed.

Rules enforced, each as CuPy does it (paths in github.com/cupy/cupy at commit
6b6d9563c4f7410cd1866a11b2f71a60dd45a68c, CuPy 15.0.0a1), and no stricter:

- implicit conversion to numpy raises CuPy's TypeError ("Implicit conversion to a
  NumPy array is not allowed. Please use `.get()` to construct a NumPy array
  explicitly."): ``numpy.asarray(x)``, ``numpy.array(x)``, ``x.__array__()``
  (cupy/_core/core.pyx ``__array__``). Iterating yields device views, as CuPy's
  ``__iter__`` does; it is the host conversion of those elements that syncs.
- numpy ndarray operands of ufuncs, arithmetic and elementwise kernels raise
  ``TypeError: Unsupported type <class 'numpy.ndarray'>``, 0-d arrays included;
  Python scalars and numpy scalars are accepted, Python scalars weakly typed (NumPy 2
  rules) (cupy/_core/_kernel.pyx ``_preprocess_arg``, cupy/_core/_scalar.pyx
  ``CScalar``, ``numpy_dtype_from_pyscalar``). Comparison operators and
  numpy-dispatched comparison ufuncs turn a 0-d numpy array into a scalar first
  (core.pyx ``__richcmp__`` and ``__array_ufunc__``). Lists are not operands either.
- numpy ndarrays (and lists) ARE accepted where CuPy copies them to the device
  itself, each counted as a host->device copy: fancy indices and values of advanced
  assignments (cupy/_core/_routines_indexing.pyx ``_prepare_slice_list``,
  ``_scatter_op_single``), ``einsum`` operands (cupy/linalg/_einsum.py
  ``cupy.asarray(op)``), ``tile`` (cupy/_manipulation/tiling.py ``cupy.array``),
  ``cupy.array``/``asarray`` (core.pyx ``_array_default``). Functions CuPy writes
  as ``a.method(...)`` (``sum``, ``max``, ``swapaxes``, ``repeat``, ...) act on a numpy
  argument as numpy would, as CuPy's do; Cython-typed ones (``ascontiguousarray``,
  ``broadcast_to``, ``matmul``, ``expand_dims``/``stack``) raise TypeError;
  ``concatenate`` raises "Unsupported type" (cupy/_core/_routines_manipulation.pyx).
  A basic-index assignment of a non-scalar numpy array raises ValueError
  "non-scalar numpy.ndarray cannot be used for fill" (core.pyx ``fill``).
- numpy functions and ufuncs called on device arrays dispatch to the cupy function
  of the same name (``__array_function__`` / ``__array_ufunc__`` of core.pyx); where
  CuPy has no such function numpy raises TypeError. Where CuPy has it but this
  stand-in does not (cupy/_names.py lists CuPy's names), NotImplementedError says
  the stand-in needs it.
- reductions return 0-d device arrays; integer indexing returns 0-d views.
- ``float()``, ``int()``, ``complex()``, ``bool()``, ``.item()``, ``.get()``,
  ``.tolist()``, ``repr``/``str``/``format``, ``cupy.asnumpy`` and boolean-mask
  indexing (which reads the mask count back, _routines_indexing.pyx
  ``_prepare_mask_indexing_single``) work and count one device->host sync each.
- arrays have no read-only flag (``broadcast_to`` views are writable, as in CuPy);
  ``empty`` memory is filled with NaN (floats) or 0x5A bytes so that reading memory
  nobody wrote shows up.

Counting model (:mod:`cupy._standin`: ``counting()``, ``reset()``, per call site).
One *launch* per CuPy operation that launches device work, counted as CuPy's source
does it:

- each ufunc / arithmetic operator / in-place operator, ``where``, ``fill``: 1;
- each reduction (``sum``, ``max``, ``min``, ``mean``, ``all``, ``any``, ``argmax``...): 1
  (CUB or a reduction kernel); ``var``/``std``: 2; ``median``: 3 (copy, partition,
  mean; approximate);
- copies: ``astype``/``copy``/``ascontiguousarray``/``reshape``/``ravel`` when they
  copy, ``tile``, ``repeat`` (scalar repeats), basic-index assignment: 1 each
  (a device-to-device memcpy counts as a launch too);
- creation that fills memory: ``zeros``/``zeros_like`` (memset), ``ones``, ``full``,
  ``arange``: 1; ``empty``/``empty_like``/``ndarray(...)``: 0;
- fancy indexing with one integer array (take) or an advanced assignment (scatter):
  1; with several index arrays: 2; a boolean mask: 2 launches (scan, copy) + 1 sync;
- ``concatenate``: one copy kernel per input, or 1 for more than 8 small inputs of one
  dtype (``_concatenate``); ``stack`` likewise;
- ``matmul`` (cupy/_core/_routines_linalg.pyx ``matmul``/``dot``/``tensordot_core``):
  1 cuBLAS call, plus 1 per operand that must be cast or made contiguous first, plus 3
  ``_mat_ptrs`` kernels when a batch axis broadcasts (gemmBatched), plus 1 output copy
  where ``out`` cannot take the result directly;
- ``einsum`` (cupy/linalg/_einsum.py): the launches of CuPy's own plan for two
  operands: 1 per operand summed over a label alone, 1 per operand cast, then either
  1 multiply (no contracted label) or the copies ``_flatten_transpose`` needs plus the
  matmul above, plus 1 if the final transpose/reshape copies; a plan whose matmul is
  batched with m = n = 1 (one dot product per batch entry, such as
  ``"...d,...d->..."``) is recorded under the operation name
  ``"einsum batched 1x1 matmul"``, others under ``"einsum"``;
- ``RawKernel`` / ``ElementwiseKernel`` / ``fuse`` call: 1.

Bytes (categories ``alloc`` and ``copy``, events of n bytes): every new device array
is an allocation of its size rounded up to 512 bytes (the pool's unit), views none;
copies are the bytes written by casts (``astype``), layout copies
(``ascontiguousarray``, ``copy``, copying ``reshape``/``ravel``), ``concatenate``,
``tile``, ``repeat``, gathers (``take``, fancy indexing) and scatters. CuPy's routines
allocate and copy inside too, and those count as CuPy's source does them:
``matmul`` makes each operand C-contiguous in the result dtype (a copy unless it
already is) and, where ``out`` cannot take the result, computes into a new array and
copies it over; ``einsum`` casts its operands, copies each into the
(batch, free, contracted) layout ``_flatten_transpose`` asks for when a reshape of the
transposed view cannot make it, then calls ``matmul``, and copies the result when the
final transpose is not a view. ``a * b`` allocates its result and copies nothing.

A *sync* is a device->host copy or an explicit synchronize; an *h2d* copy is host
data written into device memory (``asarray(numpy_array)``, host fancy indices, ...;
a 0-d host value also counts its fill kernel as a launch). Views, ``broadcast_to``,
transposes and shape changes that need no copy count nothing.

Raw kernels (:class:`RawKernel`, :class:`ElementwiseKernel`, see ``_kernels.py``)
compile the CUDA source as C++ with the host compiler and run every thread of the grid
in turn (exact for kernels without shared memory, synchronization or inter-thread
races; those are refused).
"""
import builtins as _b
import functools as _functools
import operator as _operator
import weakref as _weakref

import numpy as _np

from . import _standin
from ._names import CUPY_NAMES as _CUPY_NAMES
from ._standin import record as _record

__version__ = "15.0.0a1+standin"
STANDIN = True

# dtypes and constants: CuPy re-exports numpy's
from numpy import (bool_, byte, complex64, complex128, dtype, e, finfo, float16,  # noqa: E402,F401
                   float32, float64, iinfo, inf, int8, int16, int32, int64, intc, intp,
                   isscalar, nan, newaxis, pi, promote_types, ubyte, uint8, uint16, uint32,
                   uint64, uintc, uintp)

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")
_PY_SCALARS = (int, float, bool, complex)
_UNSUPPORTED_KINDS = "OUSVMm"


def _typed(x, arg="a"):
    """Cython's check of an argument declared ``_ndarray_base``."""
    if not isinstance(x, ndarray):
        raise TypeError(f"Argument '{arg}' has incorrect type (expected "
                        f"cupy._core.core._ndarray_base, got {type(x).__name__})")
    return x._a


def _operand(x):
    """A kernel operand as CuPy's _preprocess_arg takes it: device array, Python or
    numpy scalar; anything else (numpy ndarray, list) is TypeError."""
    if isinstance(x, ndarray):
        return x._a
    if type(x) in _PY_SCALARS or isinstance(x, _np.generic):
        return x
    raise TypeError(f"Unsupported type {type(x)}")


def _check_dtype(dt):
    dt = _np.dtype(dt)
    if dt.kind in _UNSUPPORTED_KINDS:
        raise ValueError(f"Unsupported dtype {dt}")
    return dt


# ------------------------------------------------------------------ memory pool

class MemoryPool:
    """``used_bytes``: device memory held by live arrays (rounded up to 512 bytes per
    allocation as CuPy's pool does); ``total_bytes``: the most ever held at once since
    the last ``free_all_blocks`` (a pool keeps freed blocks cached)."""

    def __init__(self):
        self._used = 0
        self._total = 0
        self._live = {}
        self._limit = 0

    def _alloc(self, root):
        k = id(root)
        if k in self._live:
            return
        nb = -(-root.nbytes // 512) * 512
        if nb:
            _record("alloc", "alloc", nb)
        self._live[k] = nb
        self._used += nb
        self._total = _b.max(self._total, self._used)
        _weakref.finalize(root, self._free, k)

    def _free(self, k):
        self._used -= self._live.pop(k, 0)

    def used_bytes(self):
        return self._used

    def total_bytes(self):
        return self._total

    def free_bytes(self):
        return self._total - self._used

    def free_all_blocks(self, stream=None):
        self._total = self._used

    def n_free_blocks(self):
        return 0

    def set_limit(self, size=None, fraction=None):
        self._limit = int(size or 0)

    def get_limit(self):
        return self._limit


class PinnedMemoryPool:
    def free_all_blocks(self):
        pass

    def n_free_blocks(self):
        return 0


_POOL = MemoryPool()
_PINNED_POOL = PinnedMemoryPool()


def get_default_memory_pool():
    return _POOL


def get_default_pinned_memory_pool():
    return _PINNED_POOL


def _root(a):
    while isinstance(a.base, _np.ndarray):
        a = a.base
    return a


def _wrap(a):
    """A device array over numpy array ``a`` (numpy scalars become 0-d arrays)."""
    if not isinstance(a, _np.ndarray):
        a = _np.asarray(a)
    r = object.__new__(ndarray)
    r._a = a
    _POOL._alloc(_root(a))
    return r


def _poison(a):
    if a.dtype.kind in "fc":
        a.fill(_np.nan)
    elif a.dtype.kind == "b":
        a.fill(True)
    elif a.size:
        a.view(_np.uint8).reshape(-1).fill(0x5A) if a.flags.c_contiguous else a.fill(0x5A5A)
    return a


def _copy_bytes(op, nbytes):
    """``nbytes`` written by a data-movement operation (category "copy")."""
    _record("copy", op, int(nbytes))


def _hidden(op, shape, dtype):
    """A temporary CuPy allocates and fills by copying inside one of its routines."""
    nb = int(_np.prod(shape, dtype=_np.int64)) * _np.dtype(dtype).itemsize
    _record("alloc", op, -(-nb // 512) * 512)
    _record("copy", op, nb)


def _copied(new, old):
    """True when numpy gave a copy rather than a view of ``old``."""
    return new.size > 0 and not _np.may_share_memory(new, old)


class _MemoryPointer:
    def __init__(self, a):
        self.ptr = a.ctypes.data if a.size else 0
        self.device_id = 0

    @property
    def device(self):
        from .cuda import Device
        return Device(0)


class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.base is None

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[key]

    def __repr__(self):
        return (f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n"
                f"  OWNDATA : {self.owndata}")


# -------------------------------------------------------------------------- ufuncs

class ufunc:
    """An elementwise CuPy operation: one launch per call."""

    def __init__(self, name, func, nin, nout=1, numpy_ufunc=True):
        self.name = self.__name__ = name
        self._f = func
        self.nin, self.nout, self.nargs = nin, nout, nin + nout
        self._np_ufunc = numpy_ufunc

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, out=None, dtype=None, casting="same_kind", **kwargs):
        if kwargs:
            raise TypeError("Wrong arguments %s" % kwargs)
        if len(args) not in (self.nin, self.nargs):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        ins = [_operand(a) for a in args[:self.nin]]
        _standin.need("nvrtc")
        outs = tuple(args[self.nin:])
        if out is not None:
            if outs:
                raise ValueError("Cannot specify 'out' as both a positional and keyword argument")
            outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            if not isinstance(o, ndarray):
                raise TypeError("Output arguments must be cupy.ndarray")
        with _np.errstate(all="ignore"):            # CuPy never warns on inf/nan
            if self._np_ufunc:
                kw = {"dtype": dtype, "casting": casting}
                if outs:
                    kw["out"] = tuple(o._a for o in outs)
                r = self._f(*ins, **kw)
            else:
                r = self._f(*ins)
                if outs:
                    outs[0]._a[...] = r
        _record("launch", self.name)
        if outs:
            return outs[0] if self.nout == 1 else outs
        return tuple(_wrap(x) for x in r) if self.nout > 1 else _wrap(r)

    def reduce(self, a, axis=0, dtype=None, out=None, keepdims=False):
        if not isinstance(a, ndarray):
            raise TypeError("Argument 'a' has incorrect type")
        r = self._f.reduce(a._a, axis=axis, dtype=dtype, keepdims=keepdims)
        _record("launch", self.name + ".reduce")
        return _out(r, out)


_UFUNC_NAMES = (
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "power",
    "remainder", "mod", "fmod", "negative", "positive", "absolute", "fabs", "sign",
    "reciprocal", "sqrt", "cbrt", "square", "exp", "exp2", "expm1", "log", "log2",
    "log10", "log1p", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2",
    "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "hypot", "deg2rad",
    "rad2deg", "floor", "ceil", "trunc", "rint", "isfinite", "isinf", "isnan", "signbit",
    "copysign", "nextafter", "maximum", "minimum", "fmax", "fmin", "equal", "not_equal",
    "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
    "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "invert",
    "left_shift", "right_shift", "logaddexp", "logaddexp2", "conjugate", "conj")
for _n in _UFUNC_NAMES:
    _f = getattr(_np, _n)
    globals()[_n] = ufunc(_n, _f, _f.nin, _f.nout)
abs = absolute            # noqa: A001,F821 - cupy.abs is cupy.absolute
bitwise_not = invert      # noqa: F821
del _n, _f

_COMPARISONS = ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")


def _where3(c, x, y):
    return _np.where(c, x, y)


_where_ufunc = ufunc("where", _where3, 3, numpy_ufunc=False)


# ------------------------------------------------------------------------ ndarray

def _out(r, out):
    """Reduction result into ``out`` (a device array) or a fresh 0-d/n-d array."""
    if out is None:
        return _wrap(r)
    if not isinstance(out, ndarray):
        raise TypeError("Output arguments must be cupy.ndarray")
    out._a[...] = r
    return out


def _should_use_rop(x, y):
    # core.pyx _should_use_rop: NEP 13 plus __array_priority__
    y_ufunc = getattr(y, "__array_ufunc__", _should_use_rop)
    if y_ufunc is not _should_use_rop:
        return y_ufunc is None
    return getattr(x, "__array_priority__", 0) < getattr(y, "__array_priority__", 0)


def _binary(name, reflected_too=True, inplace=True):
    def op(self, other):
        uf = globals()[name]
        if isinstance(other, ndarray) or type(other) in _PY_SCALARS or isinstance(
                other, (_np.generic, _np.ndarray)):
            return uf(self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        return getattr(_np, name)(self, other)

    def rop(self, other):
        return globals()[name](other, self)

    def iop(self, other):
        return globals()[name](self, other, out=self)

    return op, rop, iop


def _compare(name):
    def op(self, other):
        uf = globals()[name]
        if isinstance(other, ndarray):
            return uf(self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        if isinstance(other, _np.ndarray) and other.ndim == 0:
            other = other.item()
        if name in ("equal", "not_equal") and (
                other is None or (type(other).__eq__ is object.__eq__
                                  and (name == "equal" or type(other).__ne__ is object.__ne__))):
            return (zeros if name == "equal" else ones)(self.shape, dtype=bool_)
        if type(other) in _PY_SCALARS or isinstance(other, (_np.generic, _np.ndarray)):
            return uf(self, other)
        return getattr(_np, name)(self, other)
    return op


class ndarray:
    """A device array (see the module docstring); ``ndarray(shape, dtype)`` allocates
    uninitialized memory (no launch)."""

    __array_priority__ = 100
    __slots__ = ("_a", "__weakref__")

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("cupy stand-in: ndarray(memptr=, strides=) is not supported")
        self._a = _poison(_np.empty(shape, _check_dtype(dtype), order=order))
        _POOL._alloc(self._a)

    # ----- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    data = property(lambda self: _MemoryPointer(self._a))
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(_np.swapaxes(self._a, -1, -2)))

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def base(self):
        return None if self._a.base is None else _wrap(self._a.base)

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    @property
    def real(self):
        return _wrap(self._a.real)

    @property
    def imag(self):
        return _wrap(self._a.imag)

    # ----- host conversion: refused implicitly, counted explicitly
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            if not isinstance(out, _np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained fromcupy.ndarray")
            if out.dtype != self.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from {self.dtype} array")
            if out.shape != self.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, actual shape: {out.shape}")
            if not (out.flags.c_contiguous and self._a.flags.c_contiguous
                    or out.flags.f_contiguous and self._a.flags.f_contiguous):
                _record("launch", "ascontiguousarray")
            _record("sync", "get")
            out[...] = self._a
            return out
        if self.size == 0:
            return _np.ndarray(self.shape, dtype=self.dtype)
        order = order.upper()
        if order == "A":
            order = "F" if self._a.flags.f_contiguous else "C"
        if not (order == "C" and self._a.flags.c_contiguous
                or order == "F" and self._a.flags.f_contiguous):
            _record("launch", "ascontiguousarray")
        _record("sync", "get")
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, _np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError("Shape or dtype mismatch")
        _record("h2d", "set")
        self._a[...] = arr

    def _host(self, why):
        _record("sync", why)
        return self._a

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self._host("item").item()

    def tolist(self):
        return self._host("tolist").tolist()

    def tobytes(self, order="C"):
        return self._host("tobytes").tobytes(order)

    def __float__(self):
        return float(self._host("float"))

    def __int__(self):
        return int(self._host("int"))

    def __complex__(self):
        return complex(self._host("complex"))

    def __bool__(self):
        if self.size == 0:
            return False
        if self.size == 1:
            return bool(self._host("bool"))
        raise ValueError("The truth value of an array with more than one element is "
                         "ambiguous. Use a.any() or a.all()")

    def __repr__(self):
        return repr(self._host("repr"))

    def __str__(self):
        return str(self._host("str"))

    def __format__(self, spec):
        return format(self._host("format"), spec)

    def __reduce__(self):
        return array, (self.get(),)

    # ----- container
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, key):
        idx, kinds = _prepare_index(key)
        r = self._a[idx]
        _count_advanced(kinds, "take")
        if kinds:
            _copy_bytes("take", r.nbytes)
        return _wrap(r)

    def __setitem__(self, key, value):
        idx, kinds = _prepare_index(key)
        if isinstance(value, ndarray):
            v = value._a
        elif kinds:                                 # core.array(value, dtype=a.dtype)
            v = _np.asarray(value, dtype=self.dtype)
            _record("h2d", "setitem")
            if v.ndim == 0:
                _record("launch", "fill")
        else:                                       # y.fill(value)
            v = _np.asarray(value, dtype=self.dtype)
            if v.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        if kinds:
            _count_advanced(kinds, "scatter")
            _copy_bytes("scatter", self._a[idx].nbytes)
        elif not (isinstance(value, ndarray) and v.shape == self._a[idx].shape
                  and v.strides == self._a[idx].strides
                  and v.__array_interface__["data"][0]
                  == self._a[idx].__array_interface__["data"][0]):
            _record("launch", "copy" if isinstance(value, ndarray) else "fill")
            if isinstance(value, ndarray):
                _copy_bytes("copy", self._a[idx].nbytes)
        with _np.errstate(all="ignore"):
            self._a[idx] = v

    # ----- numpy protocol
    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        # core.pyx __array_ufunc__
        inout = inputs
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            inout += out
            kwargs["out"] = out[0]
        if method not in ("__call__", "outer", "at", "reduce", "accumulate", "reduceat"):
            return NotImplemented
        name = uf.__name__
        func = _lookup(name)
        if func is None:
            return NotImplemented
        if method != "__call__":
            func = getattr(func, method, None)
            if func is None:
                return NotImplemented
        for x in inout:
            if (type(x) not in _PY_SCALARS and not isinstance(x, (_np.generic, ndarray, _np.ndarray))
                    and not hasattr(x, "__cuda_array_interface__")):
                return NotImplemented
        if name in _COMPARISONS:                    # workaround for numpy/numpy#12142
            inputs = tuple(x.item() if isinstance(x, _np.ndarray) and x.ndim == 0 else x
                           for x in inputs)
        return func(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        # core.pyx __array_function__: the cupy function of the same module path
        path = func.__module__.split(".")[1:]
        try:
            module = _functools.reduce(getattr, path, _this())
            cupy_func = getattr(module, func.__name__)
        except AttributeError:
            if not path and func.__name__ in _CUPY_NAMES:
                raise NotImplementedError(
                    f"numpy.{func.__name__} on a cupy array: CuPy has cupy.{func.__name__}, "
                    "the stand-in (tests/cupy_standin) does not implement it yet") from None
            return NotImplemented
        if cupy_func is func:
            return NotImplemented
        for t in types:
            if not issubclass(t, (ndarray, _np.ndarray)):
                return NotImplemented
        return cupy_func(*args, **kwargs)

    # ----- conversions and copies
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        dt = _check_dtype(dtype)
        if not copy and dt == self.dtype and (
                order in ("K", "A", None) or (order == "C" and self._a.flags.c_contiguous)
                or (order == "F" and self._a.flags.f_contiguous)):
            return self
        with _np.errstate(all="ignore"):
            r = self._a.astype(dt, order=order or "K", casting=casting or "unsafe", copy=True)
        _record("launch", "astype")
        _copy_bytes("astype", r.nbytes)
        return _wrap(r)

    def copy(self, order="C"):
        _record("launch", "copy")
        _copy_bytes("copy", self._a.nbytes)
        return _wrap(self._a.copy(order=order))

    def view(self, dtype=None):
        return _wrap(self._a.view() if dtype is None else self._a.view(dtype))

    def fill(self, value):
        if isinstance(value, ndarray):
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = value._a
        else:
            value = _np.asarray(value, dtype=self.dtype)
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        if self.size:
            _record("launch", "fill")
        self._a[...] = value

    def reshape(self, *shape, order="C", copy=None):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        r = self._a.reshape(shape, order=order)
        if _copied(r, self._a):
            _record("launch", "reshape copy")
            _copy_bytes("reshape copy", r.nbytes)
        return _wrap(r)

    def ravel(self, order="C"):
        r = self._a.ravel(order=order)
        if _copied(r, self._a):
            _record("launch", "ravel copy")
            _copy_bytes("ravel copy", r.nbytes)
        return _wrap(r)

    def flatten(self, order="C"):
        _record("launch", "copy")
        _copy_bytes("flatten", self._a.nbytes)
        return _wrap(self._a.flatten(order=order))

    def squeeze(self, axis=None):
        return _wrap(self._a.squeeze(axis=axis))

    def swapaxes(self, axis1, axis2):
        return _wrap(self._a.swapaxes(axis1, axis2))

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return _wrap(self._a.transpose(axes) if axes else self._a.transpose())

    def repeat(self, repeats, axis=None):
        # _routines_manipulation.pyx repeat
        reps = None
        if isinstance(repeats, ndarray):
            if repeats.size == 1:
                rep = int(repeats.item())           # "synchronize!" in CuPy's source
            else:
                reps = repeats._a
        elif isinstance(repeats, _np.ndarray):
            raise TypeError("'repeats' does not accept numpy.ndarray; convert with cupy.array() first")
        else:
            try:
                rep = _operator.index(repeats)
            except TypeError:
                reps = array(repeats, dtype=_np.intp)   # host sequence -> device
                if reps.size == 1:
                    rep, reps = int(reps.item()), None
                else:
                    reps = reps._a
        a = self.ravel() if axis is None else self
        ax = 0 if axis is None else axis
        if reps is not None:
            _record("launch", "repeat (per element)", 3)   # cumsum, searchsorted, take
            return _wrap(_np.repeat(a._a, reps, axis=ax))
        if rep < 0:
            raise ValueError(f"'repeats' should not be negative: {rep}")
        r = _np.repeat(a._a, rep, axis=ax)
        if r.size:
            _record("launch", "repeat")
            _copy_bytes("repeat", r.nbytes)
        return _wrap(r)

    def take(self, indices, axis=None, out=None):
        if isinstance(indices, ndarray):
            ind = indices._a
        elif isinstance(indices, (_np.ndarray, list, tuple)):
            _record("h2d", "take")
            ind = _np.asarray(indices)
        else:
            ind = indices
        _record("launch", "take")
        r = _np.take(self._a, ind, axis=axis)
        _copy_bytes("take", r.nbytes)
        return _out(r, out)

    def dot(self, b, out=None):
        return dot(self, b, out)

    def nonzero(self):
        _record("launch", "nonzero", 2)
        _record("sync", "nonzero")
        return tuple(_wrap(x) for x in self._a.nonzero())

    # ----- reductions: 0-d device arrays
    def _reduce(self, name, axis, out, keepdims, n=1, **kw):
        if out is not None and not isinstance(out, ndarray):
            raise TypeError("Output arguments must be cupy.ndarray")
        _standin.need("nvrtc")
        with _np.errstate(all="ignore"):
            r = getattr(self._a, name)(axis=axis, keepdims=keepdims, **kw)
        _record("launch", name, n)
        return _out(r, out)

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce("sum", axis, out, keepdims, dtype=dtype)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce("prod", axis, out, keepdims, dtype=dtype)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce("mean", axis, out, keepdims, dtype=dtype)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return self._reduce("var", axis, out, keepdims, 2, dtype=dtype, ddof=ddof)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return self._reduce("std", axis, out, keepdims, 2, dtype=dtype, ddof=ddof)

    def max(self, axis=None, out=None, keepdims=False):
        return self._reduce("max", axis, out, keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return self._reduce("min", axis, out, keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return self._reduce("all", axis, out, keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return self._reduce("any", axis, out, keepdims)

    def argmax(self, axis=None, out=None, dtype=None, keepdims=False):
        r = self._reduce("argmax", axis, out, keepdims)
        return r if dtype is None else r.astype(dtype, copy=False)

    def argmin(self, axis=None, out=None, dtype=None, keepdims=False):
        r = self._reduce("argmin", axis, out, keepdims)
        return r if dtype is None else r.astype(dtype, copy=False)

    def clip(self, min=None, max=None, out=None):
        return clip(self, min, max, out=out)

    def conj(self):
        return conjugate(self)                       # noqa: F821

    # ----- operators
    __add__, __radd__, __iadd__ = _binary("add")
    __sub__, __rsub__, __isub__ = _binary("subtract")
    __mul__, __rmul__, __imul__ = _binary("multiply")
    __truediv__, __rtruediv__, __itruediv__ = _binary("true_divide")
    __floordiv__, __rfloordiv__, __ifloordiv__ = _binary("floor_divide")
    __mod__, __rmod__, __imod__ = _binary("remainder")
    __pow__, __rpow__, __ipow__ = _binary("power")
    __and__, __rand__, __iand__ = _binary("bitwise_and")
    __or__, __ror__, __ior__ = _binary("bitwise_or")
    __xor__, __rxor__, __ixor__ = _binary("bitwise_xor")
    __lshift__, __rlshift__, __ilshift__ = _binary("left_shift")
    __rshift__, __rrshift__, __irshift__ = _binary("right_shift")
    __lt__ = _compare("less")
    __le__ = _compare("less_equal")
    __gt__ = _compare("greater")
    __ge__ = _compare("greater_equal")
    __eq__ = _compare("equal")
    __ne__ = _compare("not_equal")
    __hash__ = None

    def __neg__(self):
        return negative(self)                        # noqa: F821

    def __pos__(self):
        return positive(self)                        # noqa: F821

    def __abs__(self):
        return absolute(self)                        # noqa: F821

    def __invert__(self):
        return invert(self)                          # noqa: F821

    def __matmul__(self, other):
        if isinstance(other, ndarray):
            return matmul(self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        return _np.matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __imatmul__(self, other):
        return matmul(self, other, out=self)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()


def _this():
    import sys
    return sys.modules[__name__]


def _lookup(name):
    f = globals().get(name)
    if f is None and name in _CUPY_NAMES:
        raise NotImplementedError(f"cupy.{name}: CuPy has it, the stand-in (tests/cupy_standin) "
                                  "does not implement it yet")
    return f


def __getattr__(name):
    if name in _CUPY_NAMES:
        raise AttributeError(f"cupy.{name} exists in CuPy but the stand-in (tests/cupy_standin) "
                             "does not implement it; add it there if gmmdiff needs it")
    raise AttributeError(f"module 'cupy' has no attribute {name!r}")


# ---------------------------------------------------------------------- indexing

def _prepare_index(key):
    """numpy index for a device array and the kinds of its array indices
    (_routines_indexing.pyx _prepare_slice_list: lists, numpy arrays and bool scalars
    are copied to the device; integers, slices, None, Ellipsis stay)."""
    items = list(key) if isinstance(key, tuple) else [key]
    kinds = []
    for i, s in enumerate(items):
        if s is None or s is Ellipsis or isinstance(s, slice):
            continue
        if isinstance(s, ndarray):
            kind = s.dtype.kind
            if kind not in "biu":
                raise IndexError("arrays used as indices must be of integer or boolean type. "
                                 f"(actual: {s.dtype.type})")
            items[i] = s._a
            kinds.append(kind)
            continue
        fix_empty = isinstance(s, (list, tuple))
        if not fix_empty and _np.isscalar(s) and not isinstance(s, (bool, _np.bool_)):
            items[i] = _operator.index(s)
            continue
        if isinstance(s, (list, tuple)) and _b.any(isinstance(e, ndarray) for e in s):
            s = array(s)._a                         # nested device arrays: no h2d
        else:
            a = _np.asarray(s)
            if a.dtype.kind not in "biu":
                if fix_empty and a.size == 0:
                    a = a.astype(_np.int32)
                elif isinstance(s, _np.ndarray):
                    raise IndexError("arrays used as indices must be of integer or boolean type "
                                     f"(actual: {a.dtype.type})")
                else:
                    raise IndexError("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis "
                                     "(`None`) and integer or boolean arrays are valid indices")
            _record("h2d", "index")
            s = a
        items[i] = s
        kinds.append(s.dtype.kind)
    if not _b.any(s is Ellipsis for s in items):
        items.append(Ellipsis)                      # CuPy appends it too: 0-d views
    return tuple(items), kinds


def _count_advanced(kinds, op):
    if not kinds:
        return
    if len(kinds) == 1 and kinds[0] == "b":
        _record("launch", op + " (mask)", 2)        # scan + copy
        _record("sync", op + " (mask count)")
    elif len(kinds) == 1:
        _record("launch", op)
    else:
        nb = kinds.count("b")
        if nb:
            _record("launch", "nonzero", 2 * nb)
            _record("sync", "nonzero", nb)
        _record("launch", op + " (multiple arrays)", 2)


# ---------------------------------------------------------------------- creation

def empty(shape, dtype=float, order="C"):
    return ndarray(shape, dtype, order=order)


def _like_shape(a, shape):
    return a.shape if shape is None else shape


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return ndarray(_like_shape(a, shape), dtype or a.dtype, order="C" if order in "KA" else order)


def zeros(shape, dtype=float, order="C"):
    a = _np.zeros(shape, _check_dtype(dtype), order=order)
    if a.nbytes:
        _record("launch", "memset")
    return _wrap(a)


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    return zeros(_like_shape(a, shape), dtype or a.dtype)


def ones(shape, dtype=float, order="C"):
    a = _np.ones(shape, _check_dtype(dtype), order=order)
    if a.size:
        _record("launch", "fill")
    return _wrap(a)


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    return ones(_like_shape(a, shape), dtype or a.dtype)


def full(shape, fill_value, dtype=None, order="C"):
    if dtype is None:
        dtype = fill_value.dtype if isinstance(fill_value, ndarray) else _np.array(fill_value).dtype
    a = ndarray(shape, dtype, order=order)
    copyto(a, fill_value, casting="unsafe")
    return a


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    return full(_like_shape(a, shape), fill_value, dtype or a.dtype)


def copyto(dst, src, casting="same_kind", where=None):
    # cupy/_manipulation/basic.py copyto
    if type(src) in _PY_SCALARS or _np.isscalar(src):
        value = src
    elif isinstance(src, _np.ndarray):
        if src.size != 1:
            raise ValueError("non-scalar numpy.ndarray cannot be used for copyto")
        value = src.squeeze()[()]
    elif isinstance(src, ndarray):
        if not _np.can_cast(src.dtype, dst.dtype, casting):
            raise TypeError(f"Cannot cast {src.dtype} to {dst.dtype} in {casting} casting mode")
        value = src._a
    else:
        raise TypeError(f"Unsupported type {type(src)}")
    if where is not None:
        w = _typed(where, "where")
        _record("launch", "copyto")
        _np.copyto(dst._a, value, casting="unsafe", where=w)
        return
    if dst.size:
        _record("launch", "copyto")
    _np.copyto(dst._a, value, casting="unsafe")


def arange(start, stop=None, step=1, dtype=None):
    _standin.need("nvrtc")
    a = _np.arange(start, stop, step, dtype=dtype) if stop is not None else _np.arange(
        start, step=step, dtype=dtype)
    if a.size:
        _record("launch", "arange")
    return _wrap(a)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    r = _np.linspace(start, stop, num, endpoint=endpoint, retstep=retstep, dtype=dtype, axis=axis)
    _record("launch", "linspace")
    return (_wrap(r[0]), r[1]) if retstep else _wrap(r)


def _nested_device_sequence(obj):
    """(flat leaves) when ``obj`` is a nested list/tuple of device arrays of one shape
    and dtype (core.pyx _array_info_from_nested_sequence), else None."""
    leaves = []

    def walk(o):
        if isinstance(o, (list, tuple)):
            for e in o:
                if not walk(e):
                    return False
            return True
        if isinstance(o, ndarray):
            leaves.append(o)
            return True
        return False

    if not walk(obj) or not leaves:
        return None
    if len({(x.shape, x.dtype) for x in leaves}) != 1:
        return None
    return leaves


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """core.pyx array: device input copies on the device (when asked or needed), host
    input is one host->device copy."""
    if isinstance(obj, ndarray):
        r = obj.astype(obj.dtype if dtype is None else dtype, order=order or "K",
                       copy=bool(copy))
        if ndmin > r.ndim:
            r = _wrap(r._a.reshape((1,) * (ndmin - r.ndim) + r.shape))
        return r
    if isinstance(obj, (list, tuple)):
        leaves = _nested_device_sequence(obj)
        if leaves is not None:                      # _array_from_nested_cupy_sequence
            flat = concatenate([x.reshape(1) if x.ndim == 0 else x for x in leaves])
            r = flat.reshape(_nested_shape(obj) + leaves[0].shape)
            r = r.astype(dtype or r.dtype, copy=False)
            if blocking:
                _record("sync", "array(blocking)")
            return r
    a = _np.array(obj, dtype=dtype, copy=True, order="C" if order in ("K", "A", None) else order,
                  ndmin=ndmin)                      # __array__ of a device leaf raises
    _check_dtype(a.dtype)
    if a.size:
        _record("h2d", "array")
    if a.ndim == 0:
        _record("launch", "fill")
    if blocking:
        _record("sync", "array(blocking)")
    return _wrap(a)


def _nested_shape(obj):
    shape = []
    while isinstance(obj, (list, tuple)):
        shape.append(len(obj))
        if not obj:
            break
        obj = obj[0]
    return tuple(shape)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return array(a, dtype, copy=False if copy is None else copy, order=order, blocking=blocking)


asanyarray = asarray


def ascontiguousarray(a, dtype=None):
    x = _typed(a)
    dt = x.dtype if dtype is None else _np.dtype(dtype)
    if dt == x.dtype and x.flags.c_contiguous:
        return a if x.ndim else _wrap(x.reshape(1))
    _record("launch", "ascontiguousarray")
    _copy_bytes("ascontiguousarray", x.size * dt.itemsize)
    return _wrap(_np.ascontiguousarray(x, dtype=dt).reshape(x.shape if x.ndim else (1,)))


def copy(a, order="K"):
    return a.copy(order=order)


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    if out is None:
        return _np.asarray(a, order=order)
    out[...] = a
    return out


def get_array_module(*args):
    for a in args:
        if isinstance(a, ndarray):
            return _this()
    return _np


def result_type(*arrays_and_dtypes):
    return _np.result_type(*[a.dtype if isinstance(a, ndarray) else a for a in arrays_and_dtypes])


def can_cast(from_, to, casting="safe"):
    return _np.can_cast(from_.dtype if isinstance(from_, ndarray) else from_, to, casting)


# ------------------------------------------------------------------ manipulation

def reshape(a, newshape, order="C"):
    return a.reshape(newshape, order=order)


def ravel(a, order="C"):
    return a.ravel(order)


def swapaxes(a, axis1, axis2):
    return a.swapaxes(axis1, axis2)


def transpose(a, axes=None):
    return a.transpose(axes)


def moveaxis(a, source, destination):
    return _wrap(_np.moveaxis(_typed(a), source, destination))


def squeeze(a, axis=None):
    return a.squeeze(axis)


def expand_dims(a, axis):
    return _wrap(_np.expand_dims(_typed(a), axis))


def broadcast_to(array, shape):
    # _routines_manipulation.pyx broadcast_to: a writable view with zero strides
    x = _typed(array, "array")
    shape = tuple(shape) if _np.iterable(shape) else (shape,)
    if x.ndim > len(shape):
        raise ValueError("input operand has more dimensions than allowed by the axis remapping")
    strides = [0] * len(shape)
    for i in range(x.ndim):
        j = i + len(shape) - x.ndim
        if shape[j] == x.shape[i]:
            strides[j] = x.strides[i]
        elif x.shape[i] != 1:
            raise ValueError("operands could not be broadcast together with shape "
                             f"{x.shape} and requested shape {shape}")
    return _wrap(_np.lib.stride_tricks.as_strided(x, shape, strides))


def broadcast_arrays(*args):
    shape = _np.broadcast_shapes(*(a.shape for a in args))
    return [broadcast_to(a, shape) for a in args]


def concatenate(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    if axis is None:
        tup = [m.ravel() for m in tup]
        axis = 0
    arrays = [_operand(x) for x in tup]
    if not arrays:
        raise ValueError("Cannot concatenate from empty tuple")
    for a in arrays:
        if not isinstance(a, _np.ndarray):
            raise TypeError("Only cupy arrays can be concatenated")
        if a.ndim == 0:
            raise TypeError("zero-dimensional arrays cannot be concatenated")
    if out is not None:
        _typed(out, "out")
    r = _np.concatenate(arrays, axis=axis, out=None if out is None else out._a, dtype=dtype,
                        casting=casting)
    odt = r.dtype
    total = _b.sum(a.size for a in arrays) * odt.itemsize
    if len(arrays) > 8 and _b.all(a.dtype == odt for a in arrays) and total < 2 * 1024 * 1024 * len(arrays):
        _record("launch", "concatenate (one kernel)")
    else:
        _record("launch", "concatenate (copy per input)", _b.sum(1 for a in arrays if a.size))
    _copy_bytes("concatenate", r.nbytes)
    return out if out is not None else _wrap(r)


def stack(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    return concatenate([expand_dims(x, axis) for x in tup], axis, out, dtype=dtype, casting=casting)


def tile(A, reps):
    # cupy/_manipulation/tiling.py tile
    try:
        tup = tuple(reps)
    except TypeError:
        tup = (reps,)
    d = len(tup)
    if tup.count(1) == d and isinstance(A, ndarray):
        return array(A, copy=True, ndmin=d)
    c = array(A, copy=False, ndmin=d)
    r = _np.tile(c._a, tup)
    if r.size:
        _record("launch", "tile")
        _copy_bytes("tile", r.nbytes)
    return _wrap(r)


def repeat(a, repeats, axis=None):
    return a.repeat(repeats, axis)


def where(condition, x=None, y=None):
    if x is None and y is None:
        return condition.nonzero()
    if x is None or y is None:
        raise ValueError("Must provide both 'x' and 'y' or neither.")
    c = condition.astype("?", copy=False)
    return _where_ufunc(c, x, y)


def clip(a, a_min=None, a_max=None, out=None):
    r = _np.clip(_typed(a), _operand(a_min) if a_min is not None else None,
                 _operand(a_max) if a_max is not None else None)
    _record("launch", "clip")
    return _out(r, out)


# -------------------------------------------------------------------- reductions

def sum(a, axis=None, dtype=None, out=None, keepdims=False):      # noqa: A001
    return a.sum(axis, dtype, out, keepdims)


def prod(a, axis=None, dtype=None, out=None, keepdims=False):
    return a.prod(axis, dtype, out, keepdims)


def mean(a, axis=None, dtype=None, out=None, keepdims=False):
    return a.mean(axis, dtype, out, keepdims)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    return a.var(axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    return a.std(axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims)


def amax(a, axis=None, out=None, keepdims=False):
    return a.max(axis=axis, out=out, keepdims=keepdims)


def amin(a, axis=None, out=None, keepdims=False):
    return a.min(axis=axis, out=out, keepdims=keepdims)


max = amax     # noqa: A001
min = amin     # noqa: A001


def all(a, axis=None, out=None, keepdims=False):                  # noqa: A001
    return a.all(axis=axis, out=out, keepdims=keepdims)


def any(a, axis=None, out=None, keepdims=False):                  # noqa: A001
    return a.any(axis=axis, out=out, keepdims=keepdims)


def argmax(a, axis=None, dtype=None, out=None, keepdims=False):
    return a.argmax(axis=axis, dtype=dtype, out=out, keepdims=keepdims)


def argmin(a, axis=None, dtype=None, out=None, keepdims=False):
    return a.argmin(axis=axis, dtype=dtype, out=out, keepdims=keepdims)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    x = _typed(a)
    _record("launch", "median", 3)
    return _out(_np.median(x, axis=axis, keepdims=keepdims), out)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    # cupy.allclose returns a 0-d device array (isclose + all)
    r = _np.allclose(_operand(a), _operand(b), rtol=rtol, atol=atol, equal_nan=equal_nan)
    _record("launch", "allclose", 2)
    return _wrap(r)


# ------------------------------------------------------------------ linear algebra

def _matmul_launches(a, b, out):
    """Launches of cupy/_core/_routines_linalg.pyx matmul for numpy arrays a, b (the
    device data) and the device ``out`` (or None)."""
    dt = _np.promote_types(a.dtype, b.dtype)
    if _b.max(a.ndim, b.ndim) <= 2:                     # dot -> tensordot_core
        n = 1
        for x in (a, b):
            if x.dtype != dt:
                n += 1
            elif x.ndim == 2 and not (x.flags.c_contiguous or x.flags.f_contiguous):
                n += 1                              # _mat_to_cublas_contiguous copies
            elif x.ndim == 1 and not x.flags.c_contiguous:
                n += 1
        if out is not None and not (out.flags.c_contiguous and out.dtype == dt):
            n += 1
        return n
    ndim = _b.max(a.ndim, b.ndim)
    a2 = a.reshape(1, a.size) if a.ndim == 1 else a
    b2 = b.reshape(b.size, 1) if b.ndim == 1 else b
    n = 0
    for x in (a2, b2):
        v = _np.lib.stride_tricks.as_strided(x, (1,) * (ndim - x.ndim) + x.shape,
                                             (0,) * (ndim - x.ndim) + x.strides)
        if x.dtype != dt or not v.flags.c_contiguous:
            n += 1                                  # ascontiguousarray(a, dtype)
    sa = (1,) * (ndim - a2.ndim) + a2.shape[:-2]
    sb = (1,) * (ndim - b2.ndim) + b2.shape[:-2]
    broadcast = False
    for x, y in zip(sa, sb):
        c = 0 if 0 in (x, y) else _b.max(x, y)
        if (x == 1 and c > 1) or (y == 1 and c > 1):
            broadcast = True
    if a.size == 0 or b.size == 0:
        return n + 1
    if dt.kind not in "efdFD":
        n += 1                                      # integral kernel
    elif broadcast:
        n += 4                                      # 3 x _mat_ptrs + gemmBatched
    else:
        n += 1                                      # gemmStridedBatchedEx
    if out is not None and not (out.dtype == dt and out.flags.c_contiguous
                                and not _np.may_share_memory(out, a)
                                and not _np.may_share_memory(out, b)):
        n += 1
    return n




def _matmul_hidden(a, b, out):
    """The temporaries of cupy/_core/_routines_linalg.pyx ``matmul`` for numpy arrays a,
    b (the device data) and the device ``out`` (or None), counted as allocated and
    copied: operands made C-contiguous in the result dtype (``ascontiguousarray(a,
    dtype)`` for ndim > 2; ``_mat_to_cublas_contiguous`` for 2-D, which also takes
    F-contiguous operands as they are), and the result computed into a new array and
    copied to ``out`` where ``out`` cannot take it."""
    dt = _np.promote_types(a.dtype, b.dtype)
    ndim = _b.max(a.ndim, b.ndim)
    for x in (a, b):
        if ndim <= 2:
            ok = x.dtype == dt and (x.flags.c_contiguous or (x.ndim == 2 and x.flags.f_contiguous))
        else:
            x2 = x.reshape(1, x.size) if x.ndim == 1 else x
            v = _np.lib.stride_tricks.as_strided(x2, (1,) * (ndim - x2.ndim) + x2.shape,
                                                 (0,) * (ndim - x2.ndim) + x2.strides)
            ok = x.dtype == dt and v.flags.c_contiguous
        if not ok and x.size:
            _hidden("matmul operand copy", x.shape, dt)
    if out is not None and not (out.dtype == dt and out.flags.c_contiguous
                                and not _np.may_share_memory(out, a)
                                and not _np.may_share_memory(out, b)):
        _hidden("matmul result copy", out.shape, dt)


def _matmul(a, b, out=None, **kwargs):
    if kwargs:
        raise NotImplementedError(f"cupy stand-in: matmul keywords {sorted(kwargs)}")
    x, y = _typed(a, "a"), _typed(b, "b")
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError("Scalar operands are not allowed, use '*' instead")
    o = None if out is None else _typed(out, "out")
    _standin.need("cublas")
    n = _matmul_launches(x, y, o)
    _matmul_hidden(x, y, o)
    r = _np.matmul(x, y)
    _record("launch", "matmul", n)
    return _out(r, out)


class _GUFunc:
    """cupy.matmul (cupy/linalg/_product.py: _GUFunc over _core.matmul)."""
    __name__ = name = "matmul"
    nin, nout = 2, 1

    def __call__(self, a, b, out=None, **kwargs):
        return _matmul(a, b, out=out, **kwargs)


matmul = _GUFunc()


def dot(a, b, out=None):
    x, y = _typed(a, "a"), _typed(b, "b")
    if x.ndim <= 2 and y.ndim <= 2:
        return _matmul(a, b, out) if x.ndim and y.ndim else multiply(a, b, out=out)  # noqa: F821
    r = _np.dot(x, y)
    _record("launch", "dot", 2)
    return _out(r, out)


def _einsum_parse(subscripts, ndims):
    """CuPy's labels (cupy/linalg/_einsum.py _parse_ellipsis_subscript): letters as
    their code points, ellipsis axes as -k..-1; output None when implicit."""
    s = subscripts.replace(" ", "").replace("...", "@")
    if "->" in s:
        ins, outs = s.split("->")
    else:
        ins, outs = s, None
    ins = ins.split(",")

    def parse(sub, ndim=None, ell=None):
        if "@" in sub:
            left, right = sub.split("@")
            if ndim is not None:
                ell = ndim - len(left) - len(right)
            return [ord(c) for c in left] + list(range(-ell, 0)) + [ord(c) for c in right]
        return [ord(c) for c in sub]

    labels = [parse(sub, nd) for sub, nd in zip(ins, ndims)]
    if outs is None:
        allb = [x for sub in labels for x in sub]
        out = [x for x in sorted(set(allb)) if x < 0 or allb.count(x) == 1]
    else:
        ell = _b.max([-_b.min([0] + sub) for sub in labels] + [0])
        out = parse(outs, ell=ell)
    return labels, out




def _fake(shape, dtype):
    """A C-contiguous array of ``shape`` for layout questions only: its memory is one
    element, never read."""
    dtype = _np.dtype(dtype)
    strides, acc = [], dtype.itemsize
    for d in reversed(shape):
        strides.append(acc)
        acc *= _b.max(int(d), 1)
    return _np.lib.stride_tricks.as_strided(_np.empty(1, dtype), tuple(shape), tuple(reversed(strides)))


def _einsum_launches(subscripts, ops, result_dtype, hidden=None, product=None):
    """Launches of CuPy's einsum (cupy/linalg/_einsum.py, optimize=False, no cuTENSOR)
    for two operands without repeated labels; other cases count 1 per operand. With
    ``hidden``, the temporaries of that plan are counted as allocated and copied
    (:func:`_hidden`; the result itself is counted where it is wrapped), and a list
    given as ``hidden`` gets "final copy" when the result is copied out of the product.
    A list given as ``product`` gets the shapes (a, b) of the plan's matmul, if any."""
    labels, out = _einsum_parse(subscripts, [o.ndim for o in ops])
    if len(ops) != 2 or _b.any(len(set(s)) < len(s) for s in labels):
        return _b.max(1, len(ops))
    ops = list(ops)
    if _b.any(o.size == 0 for o in ops):
        return 1
    for k in range(2):                               # squeeze size-1 axes (views)
        keep = [ax for ax in range(ops[k].ndim) if ops[k].shape[ax] != 1]
        labels[k] = [labels[k][ax] for ax in keep]
        ops[k] = ops[k].reshape([ops[k].shape[ax] for ax in keep]) if len(keep) < ops[k].ndim else ops[k]
    n = 0
    for k in range(2):                               # unary sums
        others = set(out) | set(labels[1 - k])
        axes = tuple(ax for ax, lab in enumerate(labels[k]) if lab not in others)
        if axes:
            n += 1
            if hidden is not None:
                shape = [d for ax, d in enumerate(ops[k].shape) if ax not in axes]
                _record("alloc", "einsum unary sum",
                        -(-int(_np.prod(shape, dtype=_np.int64)) * result_dtype.itemsize // 512) * 512)
            ops[k] = _fake([d for ax, d in enumerate(ops[k].shape) if ax not in axes], result_dtype)
            labels[k] = [lab for ax, lab in enumerate(labels[k]) if ax not in axes]
    for k in range(2):
        if ops[k].dtype != result_dtype:
            n += 1
            if hidden is not None:
                _hidden("einsum cast", ops[k].shape, result_dtype)
            ops[k] = _fake(ops[k].shape, result_dtype)
    (a0, s0), (a1, s1) = (ops[0], labels[0]), (ops[1], labels[1])
    if not s0 or not s1:
        return n + 1
    shared = set(s0) & set(s1)
    batch = shared & set(out)
    contract = shared - batch

    def axes_of(sub, pick):
        return tuple(ax for _, ax in sorted((lab, ax) for ax, lab in enumerate(sub) if pick(lab)))

    if not contract:
        return n + 1                                 # arr0 * arr1
    bs0, cs0, ts0 = (axes_of(s0, lambda lab: lab in batch), axes_of(s0, lambda lab: lab in contract),
                     axes_of(s0, lambda lab: lab not in shared))
    bs1, cs1, ts1 = (axes_of(s1, lambda lab: lab in batch), axes_of(s1, lambda lab: lab in contract),
                     axes_of(s1, lambda lab: lab not in shared))

    def flatten(a, groups):
        t = a.transpose([ax for g in groups for ax in g])
        shape = tuple(int(_np.prod([a.shape[ax] for ax in g])) for g in groups)
        try:
            return t.reshape(shape, copy=False), 0
        except ValueError:
            if hidden is not None:
                _hidden("einsum transposed operand", shape, t.dtype)
            return _fake(shape, t.dtype), 1

    t0, c0 = flatten(a0, (bs0, ts0, cs0))
    t1, c1 = flatten(a1, (bs1, cs1, ts1))
    if product is not None:
        product.append((t0.shape, t1.shape))
    n += c0 + c1 + _matmul_launches(t0, t1, None)
    if hidden is not None:
        _matmul_hidden(t0, t1, None)
    sub_out = [s0[ax] for ax in bs0] + [s0[ax] for ax in ts0] + [s1[ax] for ax in ts1]
    perm = [sub_out.index(lab) for lab in out if lab in sub_out]
    if perm != sorted(perm):                         # final transpose + reshape copies
        n += 1
        if hidden is not None:                       # the product before that copy
            nb = int(_np.prod(t0.shape[:-1], dtype=_np.int64)) * int(t1.shape[-1]) * result_dtype.itemsize
            _record("alloc", "einsum product", -(-nb // 512) * 512)
            hidden.append("final copy")
    return n




def einsum(*operands, **kwargs):
    if not isinstance(operands[0], str):
        raise NotImplementedError("cupy stand-in: einsum takes a subscripts string")
    subscripts, ops = operands[0], list(operands[1:])
    dtype = kwargs.pop("dtype", None)
    optimize = kwargs.pop("optimize", False)
    if kwargs:
        raise TypeError("Did not understand the following kwargs: %s" % list(kwargs.keys()))
    arrs = []
    for op in ops:                                   # cupy.asarray(op): host operands copied
        arrs.append(op._a if isinstance(op, ndarray) else asarray(op)._a)
    result_dtype = _np.result_type(*arrs) if dtype is None else _np.dtype(dtype)
    _standin.need("nvrtc")
    hidden, product = [], []
    n = _einsum_launches(subscripts, arrs, result_dtype, hidden=hidden, product=product)
    r = _np.einsum(subscripts, *arrs, dtype=dtype, optimize=optimize)
    if hidden:
        _copy_bytes("einsum final transpose", r.nbytes)
    one_by_one = _b.any(len(a) == 3 and a[0] > 1 and a[1] == 1 and b[2] == 1 for a, b in product)
    _record("launch", "einsum batched 1x1 matmul" if one_by_one else "einsum", n)
    return _wrap(r)


# ---------------------------------------------------------------- kernels, cuda

from . import cuda  # noqa: E402
from ._kernels import ElementwiseKernel, RawKernel, fuse  # noqa: E402,F401


def is_available():
    return cuda.runtime.getDeviceCount() > 0


def show_config():
    print(f"CuPy stand-in {__version__} (numpy {_np.__version__}): tests/cupy_standin")
