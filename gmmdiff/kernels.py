"""Fused CUDA kernels for the (components x rows) blocks of the GMM loss (cupy only).

The plain array program walks each (J, M, B) block many times: max, subtract, floor,
exp, mask, sum, divide for the softmax; subtract, multiply and a product-sum for the
weighted gradient terms. On a GPU these passes are limited by memory traffic, not by
arithmetic, so two kernels do them column by column, one thread per (model, row):

``softmax_columns``
    S (J, M, B) float64 logits -> shifted, floored logits in place, and the weights
    W (J, M, B) = exp(S) / sum_m exp(S); components m >= sizes[j] get W = 0 and S = 0.
    Three reads and two writes of the block instead of about twelve.
``weigh_columns``
    G (J, M, B) = mu R^T -> G = W (G - rmbar) in place and GS (J, B) = sum_m G S.
    Three reads and one write instead of five reads and two writes.
``counter_normals``
    the training noise of :func:`gmmdiff.rng.normals` (counter hash and Box-Muller) in
    one pass instead of about twenty.

The matrix products around them stay with cuBLAS. Threads of a warp take consecutive
rows b, so every access S[j, m, b] is coalesced; sums over m run in the same order as
numpy's reduction over that axis.

Each kernel is declared once as (name, parameters, body) and rendered to CUDA source
for ``cupy.RawKernel``; :func:`emulation_source` renders the same body as C++ with a
sequential launcher, so tests compile it with a host compiler and check the kernels'
arithmetic against the numpy reference on machines without a GPU. A kernel uses no
shared memory and no synchronization, which makes the sequential launch exact.
"""
from dataclasses import dataclass

import numpy as np

from .softmax import LOGIT_FLOOR

BLOCK = 256


@dataclass(frozen=True)
class Kernel:
    """One kernel: ``params`` is a tuple of (C type, name); "T" stands for the working
    floating type (double or float)."""
    name: str
    params: tuple
    body: str

    def arguments(self):
        return ", ".join(f"{t} {n}" for t, n in self.params)

    def source(self, ctype):
        """CUDA source for working type ``ctype`` ("double" or "float")."""
        return (f'typedef {ctype} T;\nextern "C" __global__ void {self.name}('
                f"{self.arguments()})\n{{\n{self.body}}}\n")


# one thread per column (j, b); `col` runs over J * B
_COLUMN = """    const long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= J * B) return;
    const long long j = col / B;
    const long long base = j * M * B + (col - j * B);
    const int Mj = sizes[j];
"""

SOFTMAX_COLUMNS = Kernel(
    "gmm_softmax_columns",
    (("const long long", "J"), ("const long long", "M"), ("const long long", "B"),
     ("const int*", "sizes"), ("const double", "floor_"), ("double*", "S"), ("T*", "W")),
    _COLUMN + """    double mx = -1.0e308;
    for (int m = 0; m < Mj; ++m) mx = fmax(mx, S[base + m * B]);
    double sum = 0.0;
    for (int m = 0; m < Mj; ++m) {
        const double z = fmax(S[base + m * B] - mx, floor_);
        S[base + m * B] = z;
        sum += exp(z);
    }
    for (int m = 0; m < Mj; ++m) W[base + m * B] = (T)(exp(S[base + m * B]) / sum);
    for (int m = Mj; m < M; ++m) {
        W[base + m * B] = (T)0;
        S[base + m * B] = 0.0;
    }
""")

WEIGH_COLUMNS = Kernel(
    "gmm_weigh_columns",
    (("const long long", "J"), ("const long long", "M"), ("const long long", "B"),
     ("const int*", "sizes"), ("const T*", "W"), ("const double*", "S"),
     ("const T*", "rmbar"), ("T*", "G"), ("double*", "GS")),
    _COLUMN + """    const T r = rmbar[col];
    double acc = 0.0;
    for (int m = 0; m < Mj; ++m) {
        const T g = W[base + m * B] * (G[base + m * B] - r);
        G[base + m * B] = g;
        acc += (double)g * S[base + m * B];
    }
    for (int m = Mj; m < M; ++m) G[base + m * B] = (T)0;
    GS[col] = acc;
""")

# Standard normals of gmmdiff.rng.normals in one pass: thread i hashes counters i + 1
# and m + i + 1 of the SplitMix64 stream (m = ceil(n / 2) pairs) into two 53-bit
# uniforms and writes both Box-Muller outputs, out[i] and out[m + i]. The array program
# needs about twenty passes over the draws for the same numbers.
NORMALS = Kernel(
    "gmm_counter_normals",
    (("const unsigned long long", "key"), ("const long long", "n"), ("double*", "out")),
    """    const long long m = (n + 1) / 2;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    unsigned long long z[2] = {key + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL,
                               key + (unsigned long long)(m + i + 1) * 0x9E3779B97F4A7C15ULL};
    double u[2];
    for (int k = 0; k < 2; ++k) {
        unsigned long long x = z[k];
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
        x = x ^ (x >> 31);
        u[k] = (double)(x >> 11) * 1.1102230246251565e-16;
    }
    const double r = sqrt(-2.0 * log1p(-u[0]));
    const double theta = 6.283185307179586 * u[1];
    out[i] = r * cos(theta);
    if (m + i < n) out[m + i] = r * sin(theta);
""")

KERNELS = (SOFTMAX_COLUMNS, WEIGH_COLUMNS, NORMALS)

_CTYPES = {np.dtype(np.float64): "double", np.dtype(np.float32): "float"}
_compiled = {}


def _ctype(dtype):
    try:
        return _CTYPES[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"fused kernels take float64 or float32; got {dtype}") from None


def _raw(kernel, dtype):  # pragma: no cover - GPU only
    import cupy
    key = (kernel.name, _ctype(dtype))
    if key not in _compiled:
        _compiled[key] = cupy.RawKernel(kernel.source(key[1]), kernel.name)
    return _compiled[key]


def _launch(kernel, dtype, columns, args):  # pragma: no cover - GPU only
    grid = (int(columns) + BLOCK - 1) // BLOCK
    if grid:
        _raw(kernel, dtype)((grid,), (BLOCK,), args)


def component_counts(mask, shape, xp):
    """Component counts (J,) int32 of models shaped ``shape`` (J, M, ...): from a prefix
    mask (J, M) (padding is always last), or M for every model without one."""
    if mask is None:
        return xp.full(shape[0], shape[1], dtype=xp.int32)
    return xp.sum(mask, axis=-1, dtype=xp.int32)


def softmax_columns(S, W, sizes):  # pragma: no cover - GPU only
    """In place on cupy arrays: S (J, M, B) float64 -> floored shifted logits,
    W (J, M, B) -> weights; sizes (J,) int32."""
    J, M, B = S.shape
    _launch(SOFTMAX_COLUMNS, W.dtype, J * B,
            (np.int64(J), np.int64(M), np.int64(B), sizes, np.float64(LOGIT_FLOOR), S, W))


def weigh_columns(G, W, S, rmbar, sizes, GS):  # pragma: no cover - GPU only
    """In place on cupy arrays: G (J, M, B) -> W (G - rmbar), GS (J, B) float64 ->
    sum_m G S; W (J, M, B), S (J, M, B) float64, rmbar (J, B), sizes (J,) int32."""
    J, M, B = G.shape
    _launch(WEIGH_COLUMNS, G.dtype, J * B,
            (np.int64(J), np.int64(M), np.int64(B), sizes, W, S, rmbar, G, GS))


def counter_normals(key, n):  # pragma: no cover - GPU only
    """(n,) float64 cupy array: :func:`gmmdiff.rng.normals` of ``key`` in one kernel."""
    import cupy
    out = cupy.empty(int(n), dtype=cupy.float64)
    _launch(NORMALS, np.float64, (int(n) + 1) // 2, (np.uint64(key), np.int64(n), out))
    return out


def emulation_source(kernels=KERNELS, ctype="double"):
    """C++ source running ``kernels`` on the host with working type ``ctype``: CUDA's
    built-in indices become globals and ``launch_<name>(grid, block, args...)`` runs
    every thread of the grid in turn."""
    lines = ["#include <cmath>", "using std::exp; using std::fmax; using std::log1p;",
             "using std::sqrt; using std::cos; using std::sin;",
             "struct dim3_ { unsigned x, y, z; };",
             "static dim3_ blockIdx, threadIdx, blockDim;", f"typedef {ctype} T;"]
    for k in kernels:
        lines += [f"static void {k.name}({k.arguments()})", "{", k.body + "}"]
        names = ", ".join(n for _, n in k.params)
        lines += [f'extern "C" void launch_{k.name}(unsigned grid, unsigned block, '
                  f"{k.arguments()})",
                  "{", "    blockDim.x = block;",
                  "    for (blockIdx.x = 0; blockIdx.x < grid; ++blockIdx.x)",
                  "        for (threadIdx.x = 0; threadIdx.x < block; ++threadIdx.x)",
                  f"            {k.name}({names});", "}"]
    return "\n".join(lines) + "\n"
