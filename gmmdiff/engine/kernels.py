"""Hand-written CUDA kernels (cupy only): the GMM loss's (components x rows) passes, the
training noise and the optimizer step.

The plain array program walks each (J, M, B) block many times: max, subtract, floor,
exp, mask, sum, divide for the softmax; subtract, multiply and a product-sum for the
weighted gradient terms. On a GPU these passes are limited by memory traffic, not by
arithmetic, so two kernels do them column by column, one thread per (model, row):

``softmax_columns``
    S (J, M, B) float64 logits -> shifted, floored logits in place, and the weights
    W (J, M, B) = exp(S) / sum_m exp(S); components m >= sizes[j] get W = 0 and S = 0.
    Three reads and two writes of the block instead of about twelve.
``weigh_columns``
    G (J, M, B) = mu R^T -> G = W (G - r.mubar) in place and GS (J, B) = sum_m G S.
    Three reads and one write instead of five reads and two writes.
``step_rows`` and ``step_normals``
    the training times (as each row's grid index) and noise of a chunk of steps for
    every stream of a batch (:func:`gmmdiff.rng.step_keys`: counter hash and
    Box-Muller), one launch each per chunk, whatever the number of streams: the array
    program needs about twenty launches per stream.
``adam``
    the optimizer step of :func:`gmmdiff.training.optim.step` (clip by the per-model gradient
    norm, Adam, averaged update) in one launch per parameter array, after CuPy's
    reductions for the norms: about seven launches instead of about fifty.

The matrix products around them stay with cuBLAS. Threads of a warp take consecutive
rows b, so every access S[j, m, b] is coalesced; sums over m run in the same order as
numpy's reduction over that axis.

Each kernel is declared once as (name, parameters, body) and rendered to CUDA source
for ``RawKernel`` of the array module given (:func:`Kernel.source`); a kernel uses no
shared memory and no synchronization. On machines without a GPU the tests run these
very sources through the CuPy stand-in of ``tests/cupy_standin`` (compiled as C++,
thread after thread) against the numpy array program, and compile them with NVRTC for
the GPU architectures gmmdiff targets (``tests/test_nvrtc.py``).
"""
from dataclasses import dataclass

import numpy as np

from gmmdiff.backend import array_namespace
from gmmdiff.softmax import logit_floor

BLOCK = 256


# SplitMix64's output function and a 53-bit uniform, as in gmmdiff.rng
_HASH = """__device__ inline unsigned long long gmm_mix(unsigned long long z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
__device__ inline double gmm_uniform(unsigned long long key, long long i)
{
    return (double)(gmm_mix(key + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL) >> 11)
           * 1.1102230246251565e-16;
}
"""


@dataclass(frozen=True)
class Kernel:
    """One kernel: ``params`` is a tuple of (C type, name); "T" stands for the working
    floating type (double or float), and ``GMM_NARROW`` is 1 where it is float (for
    float32's own forms under ``#if GMM_NARROW``: the double rendering compiles the rest
    alone); ``helpers`` is device code placed before it."""
    name: str
    params: tuple
    body: str
    helpers: str = ""

    def arguments(self):
        return ", ".join(f"{t} {n}" for t, n in self.params)

    def source(self, ctype):
        """CUDA source for working type ``ctype`` ("double" or "float")."""
        return (f"typedef {ctype} T;\n#define GMM_NARROW {int(ctype == 'float')}\n"
                f"{self.helpers}extern \"C\" __global__ void {self.name}("
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
     ("T*", "G"), ("double*", "GS")),
    _COLUMN + """    double r = 0.0;
    for (int m = 0; m < Mj; ++m) r += (double)W[base + m * B] * (double)G[base + m * B];
    double acc = 0.0;
    for (int m = 0; m < Mj; ++m) {
        const T g = (T)((double)W[base + m * B] * ((double)G[base + m * B] - r));
        G[base + m * B] = g;
        acc += (double)g * S[base + m * B];
    }
    for (int m = Mj; m < M; ++m) G[base + m * B] = (T)0;
    GS[col] = acc;
""")

# The training times of a chunk of steps, as each row's grid index: thread (u, s, i)
# draws sample i's time at step first + s of stream u (gmmdiff.rng.integers_of with the
# step's key) and writes it to the sample's `reps` rows (row = i reps + r), steps first
# in memory (S, U, N reps): one step of every stream is one contiguous block.
STEP_ROWS = Kernel(
    "gmm_step_rows",
    (("const unsigned long long*", "base"), ("const long long", "first"),
     ("const long long", "S"), ("const long long", "U"), ("const long long", "N"),
     ("const long long", "reps"), ("const long long", "L"), ("long long*", "rows")),
    """    const long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= U * S * N) return;
    const long long us = id / N, i = id - us * N;
    const long long u = us / S, s = us - u * S;
    const unsigned long long key =
        gmm_mix(base[u] + (unsigned long long)(first + s + 1) * 0x9E3779B97F4A7C15ULL);
    long long t = (long long)(gmm_uniform(key, i) * (double)L);
    if (t > L - 1) t = L - 1;
    long long* out = rows + ((s * U + u) * N + i) * reps;
    for (long long r = 0; r < reps; ++r) out[r] = t;
""", _HASH)

# The training noise of a chunk of steps: thread (u, s, i) hashes counters i and m + i
# of the step's key (m = ceil(n / 2) pairs) into two uniforms and writes both
# Box-Muller outputs, out[s, u, i] and out[s, u, m + i] (gmmdiff.rng.normals_of), steps
# first in memory as in gmm_step_rows.
STEP_NORMALS = Kernel(
    "gmm_step_normals",
    (("const unsigned long long*", "base"), ("const long long", "first"),
     ("const long long", "S"), ("const long long", "U"), ("const long long", "n"),
     ("T*", "out")),
    """    const long long m = (n + 1) / 2;
    const long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= U * S * m) return;
    const long long us = id / m, i = id - us * m;
    const long long u = us / S, s = us - u * S;
    const unsigned long long key =
        gmm_mix(base[u] + (unsigned long long)(first + s + 1) * 0x9E3779B97F4A7C15ULL);
    const double r = sqrt(-2.0 * log1p(-gmm_uniform(key, i)));
    const double theta = 6.283185307179586 * gmm_uniform(key, m + i);
    T* o = out + (s * U + u) * n;
    o[i] = (T)(r * cos(theta));
    if (m + i < n) o[m + i] = (T)(r * sin(theta));
""", _HASH)

# One optimizer step for one parameter array (J, per) (gmmdiff.training.optim.step): clip by the
# model's global norm (sq_norms (J,) over all its parameter arrays), Adam with bias
# correction, exponential average of the updates, parameter update; new arrays out.
ADAM = Kernel(
    "gmm_adam",
    (("const long long", "total"), ("const long long", "per"), ("const double*", "sq_norms"),
     ("const T*", "g"), ("const T*", "p"), ("const T*", "mu"), ("const T*", "nu"),
     ("const T*", "ema"), ("const double", "lr"), ("const double", "b1"),
     ("const double", "b2"), ("const double", "eps"), ("const double", "clip"),
     ("const double", "decay"), ("const double", "c1"), ("const double", "c2"),
     ("const double", "ce"), ("T*", "p_out"), ("T*", "mu_out"), ("T*", "nu_out"),
     ("T*", "ema_out")),
    """    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    const double norm = sqrt(sq_norms[e / per]);
    const T scale = (T)(norm < clip ? 1.0 : clip / fmax(norm, 1e-300));
    const T gs = g[e] * scale;
    const T m = (T)b1 * mu[e] + (T)(1.0 - b1) * gs;
    const T v = (T)b2 * nu[e] + (T)(1.0 - b2) * (gs * gs);
    const T upd = (T)(-lr) * (m / (T)c1) / (sqrt(v / (T)c2) + (T)eps);
    const T a = (T)decay * ema[e] + (T)(1.0 - decay) * upd;
    mu_out[e] = m;
    nu_out[e] = v;
    ema_out[e] = a;
    p_out[e] = p[e] + a / (T)ce;
""")

# The per-row work of the GMM loss before the logits (gmmdiff.model.losses, fused path), one
# thread per column (j, b): the noisy point x_t = alpha x0 + sigma eps, the augmented
# columns U = [x_t alpha / v ; -alpha^2 / (2 v)] of the logit product and the per-row
# coefficients C of the rest of the loss (v = alpha^2 s + sigma^2):
#   C[0] a = alpha s / v   C[1] b = sigma^2 / v   C[2] c1 = b alpha / v   C[3] c1 alpha
#   C[4] alpha sigma^2 / v^2   C[5] b alpha^2 / v   C[6] (2 / B) wt   C[7] wt
ROW_SETUP = Kernel(
    "gmm_row_setup",
    (("const long long", "J"), ("const long long", "d"), ("const long long", "B"),
     ("const T*", "x0"), ("const int", "x0_shared"), ("const T*", "eps"),
     ("const double*", "alpha"), ("const double*", "sigma"), ("const double*", "wt"),
     ("const double*", "var"), ("T*", "x_t"), ("double*", "U"), ("double*", "C")),
    """    const long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= J * B) return;
    const long long j = col / B, b = col - j * B;
    const double al = alpha[col], sg = sigma[col], s = var[j];
    const double v = al * al * s + sg * sg;
    const double av = al / v;
    const long long x0base = x0_shared ? b : j * d * B + b;
    for (long long k = 0; k < d; ++k) {
        const T x = (T)al * x0[x0base + k * B] + (T)sg * eps[j * d * B + k * B + b];
        x_t[j * d * B + k * B + b] = x;
        U[j * (d + 1) * B + k * B + b] = (double)x * av;
    }
    U[j * (d + 1) * B + d * B + b] = -0.5 * al * av;
    const double bb = sg * sg / v;
    const double c1 = bb * al / v;
    double* c = C + j * 8 * B + b;
    c[0] = al * s / v;
    c[B] = bb;
    c[2 * B] = c1;
    c[3 * B] = c1 * al;
    c[4 * B] = al * sg * sg / (v * v);
    c[5 * B] = bb * al * al / v;
    c[6 * B] = (2.0 / (double)B) * wt[col];
    c[7 * B] = wt[col];
""")

# The per-row work of the GMM loss after the posterior mean mubar (fused path), one
# thread per column (j, b): err = a x_t + b mubar - x0, the row's loss wt |err|^2, the
# loss gradient R = (2 / B) wt err, R b, the columns P = [c1 x_t ; c1 alpha] of the
# mean gradient, r.mubar and the row's first term of the std gradient. R b and P are
# written rows first, Rbt (J, B, d) and Pt (J, B, d + 1): they are the right operands
# of the gradient products over the rows, which CuPy's matmul would otherwise copy.
# float32 (gmmdiff.model.losses' forms, in double here): err = D + ce eps with
# D = b (mubar - x0), the difference first, ce = a sigma, and the std gradient's
# r.(x_t - alpha mubar) as sigma r.eps - (alpha / b) r.D (never x_t - alpha mubar).
ROW_FINISH = Kernel(
    "gmm_row_finish",
    (("const long long", "J"), ("const long long", "d"), ("const long long", "B"),
     ("const T*", "x0"), ("const int", "x0_shared"), ("const T*", "eps"), ("const T*", "x_t"),
     ("const T*", "mubar"), ("const double*", "alpha"), ("const double*", "sigma"),
     ("const double*", "C"), ("double*", "loss_rows"), ("T*", "R"), ("T*", "Rbt"), ("T*", "Pt"),
     ("T*", "rmbar"), ("double*", "ds_rows")),
    """    const long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= J * B) return;
    const long long j = col / B, b = col - j * B;
    const double* c = C + j * 8 * B + b;
    const T a = (T)c[0], bb = (T)c[B], c1 = (T)c[2 * B], w2 = (T)c[6 * B];
    const long long x0base = x0_shared ? b : j * d * B + b;
    double sq = 0.0, rm = 0.0, rx = 0.0;
#if GMM_NARROW
    const double sg = sigma[col], ce = c[0] * sg;
    double re = 0.0, rd = 0.0;
#endif
    for (long long k = 0; k < d; ++k) {
        const long long i = j * d * B + k * B + b;
        const T x = x_t[i], m = mubar[i];
#if GMM_NARROW
        const double ep = (double)eps[i];
        const double D = c[B] * ((double)m - (double)x0[x0base + k * B]);   // b (mubar - x0)
        const double e = D + ce * ep, r64 = e * c[6 * B];                     // err, R
        const T r = (T)r64;
        re += r64 * ep;
        rd += r64 * D;
#else
        const T e = a * x + bb * m - x0[x0base + k * B];
        const T r = e * w2;
#endif
        sq += (double)e * (double)e;
        rm += (double)r * (double)m;
        rx += (double)r * (double)x;
        R[i] = r;
        Rbt[col * d + k] = r * bb;
        Pt[col * (d + 1) + k] = x * c1;
    }
    Pt[col * (d + 1) + d] = (T)c[3 * B];
    loss_rows[col] = c[7 * B] * sq;
    rmbar[col] = (T)rm;
#if GMM_NARROW
    ds_rows[col] = c[4 * B] * (sg * re - alpha[col] / c[B] * rd);
#else
    ds_rows[col] = c[4 * B] * (rx - alpha[col] * (double)(T)rm);
#endif
""")

KERNELS = (SOFTMAX_COLUMNS, WEIGH_COLUMNS, ROW_SETUP, ROW_FINISH, STEP_ROWS, STEP_NORMALS, ADAM)

_CTYPES = {np.dtype(np.float64): "double", np.dtype(np.float32): "float"}
_compiled = {}


def _ctype(dtype):
    try:
        return _CTYPES[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"fused kernels take float64 or float32; got {dtype}") from None


def _raw(xp, kernel, dtype):
    key = (id(xp), kernel.name, _ctype(dtype))
    if key not in _compiled:
        _compiled[key] = xp.RawKernel(kernel.source(key[2]), kernel.name)
    return _compiled[key]


def _launch(xp, kernel, dtype, threads, args):
    grid = (int(threads) + BLOCK - 1) // BLOCK
    if grid:
        _raw(xp, kernel, dtype)((grid,), (BLOCK,), args)


def component_counts(mask, shape, xp):
    """Component counts (J,) int32 of models shaped ``shape`` (J, M, ...): from a prefix
    mask (J, M) (padding is always last), or M for every model without one."""
    if mask is None:
        return xp.full(shape[0], shape[1], dtype=xp.int32)
    return xp.sum(mask, axis=-1, dtype=xp.int32)


def softmax_columns(S, W, sizes):
    """In place on device arrays: S (J, M, B) float64 -> floored shifted logits,
    W (J, M, B) -> weights; sizes (J,) int32."""
    xp = array_namespace(S)
    J, M, B = S.shape
    _launch(xp, SOFTMAX_COLUMNS, W.dtype, J * B,
            (np.int64(J), np.int64(M), np.int64(B), sizes, np.float64(logit_floor(W.dtype)), S, W))


def weigh_columns(G, W, S, sizes, GS):
    """In place on device arrays: G (J, M, B) = mu R -> W (G - r.mubar), GS (J, B)
    float64 -> sum_m G S; W (J, M, B), S (J, M, B) float64, sizes (J,) int32. r.mubar =
    sum_m W G is formed from the same G (in float64), so the difference G - r.mubar
    stays exact where one component takes all the weight."""
    xp = array_namespace(G)
    J, M, B = G.shape
    _launch(xp, WEIGH_COLUMNS, G.dtype, J * B,
            (np.int64(J), np.int64(M), np.int64(B), sizes, W, S, G, GS))


def row_setup(x0, eps, alpha, sigma, wt, var):
    """:data:`ROW_SETUP` on device arrays: x0 (J, d, B) or (d, B), eps (J, d, B) of dtype
    T; alpha, sigma, wt (J, B) and var (J,) float64. Returns ``(x_t (J, d, B) T,
    U (J, d + 1, B) float64, C (J, 8, B) float64)``."""
    xp = array_namespace(eps)
    J, d, B = eps.shape
    x_t = xp.empty(eps.shape, dtype=eps.dtype)
    U = xp.empty((J, d + 1, B), dtype=xp.float64)
    C = xp.empty((J, 8, B), dtype=xp.float64)
    _launch(xp, ROW_SETUP, eps.dtype, J * B,
            (np.int64(J), np.int64(d), np.int64(B), x0, np.int32(x0.ndim == 2), eps, alpha, sigma,
             wt, var, x_t, U, C))
    return x_t, U, C


def row_finish(x0, eps, x_t, mubar, alpha, sigma, C):
    """:data:`ROW_FINISH` on device arrays (shapes of :func:`row_setup`; mubar
    (J, d, B) T). Returns ``(loss_rows (J, B) float64, R, Rb (J, d, B) T,
    P (J, d + 1, B) T, rmbar (J, B) T, ds_rows (J, B) float64)``, with Rb and P
    transposed views of rows-first arrays (``xp.swapaxes(P, -1, -2)`` is contiguous)."""
    xp = array_namespace(x_t)
    J, d, B = x_t.shape
    dt = x_t.dtype
    loss_rows, ds_rows = xp.empty((J, B)), xp.empty((J, B))
    R, Rbt = xp.empty((J, d, B), dtype=dt), xp.empty((J, B, d), dtype=dt)
    Pt = xp.empty((J, B, d + 1), dtype=dt)
    rmbar = xp.empty((J, B), dtype=dt)
    _launch(xp, ROW_FINISH, dt, J * B,
            (np.int64(J), np.int64(d), np.int64(B), x0, np.int32(x0.ndim == 2), eps, x_t, mubar,
             alpha, sigma, C, loss_rows, R, Rbt, Pt, rmbar, ds_rows))
    return loss_rows, R, xp.swapaxes(Rbt, -1, -2), xp.swapaxes(Pt, -1, -2), rmbar, ds_rows


def step_rows(base, first, steps, N, reps, L):
    """Rows (U, steps, N reps) int64: the grid index of each row's time at steps
    first.. of the streams with base keys ``base`` (U,) uint64 (device arrays). Steps
    first in memory (a view of a (steps, U, N reps) array): ``rows[:, s]`` is contiguous."""
    xp = array_namespace(base)
    U = base.shape[0]
    rows = xp.empty((steps, U, N * reps), dtype=xp.int64)
    _launch(xp, STEP_ROWS, np.float64, U * steps * N,
            (base, np.int64(first), np.int64(steps), np.int64(U), np.int64(N), np.int64(reps),
             np.int64(L), rows))
    return xp.swapaxes(rows, 0, 1)


def step_normals(base, first, steps, n, dtype=np.float64):
    """Normals (U, steps, n) of steps first.. of the streams with base keys ``base``
    (U,) uint64 (device arrays), equal to :func:`gmmdiff.rng.normals_of` of their step
    keys up to the device's rounding of log1p, cos and sin; computed in float64 and
    stored in ``dtype`` (float64 or float32). Steps first in memory, as
    :func:`step_rows`: each step's noise ``out[:, s]`` is one contiguous block."""
    xp = array_namespace(base)
    U = base.shape[0]
    out = xp.empty((steps, U, n), dtype=dtype)
    _launch(xp, STEP_NORMALS, dtype, U * steps * ((n + 1) // 2),
            (base, np.int64(first), np.int64(steps), np.int64(U), np.int64(n), out))
    return xp.swapaxes(out, 0, 1)


def adam_step(params, grads, state, lr, cfg):
    """:func:`gmmdiff.training.optim.step` on device arrays: the per-model gradient norms by CuPy's
    reductions (in float64), then one :data:`ADAM` launch per parameter array; same
    arguments and results (new arrays; the inputs are not modified)."""
    names = sorted(params)
    xp = array_namespace(params[names[0]])
    J = params[names[0]].shape[0]
    sq = None                              # per-model squared global norm (J,), float64
    for n in names:
        g = grads[n].reshape(J, -1).astype(xp.float64, copy=False)
        s = xp.sum(g * g, axis=1)          # CuPy's reduction: one block per model row
        sq = s if sq is None else sq + s
    count = state["count"] + 1
    new_params, new_state = {}, {"count": count}
    for n in names:
        p, g = params[n], grads[n]
        outs = [xp.empty_like(p) for _ in range(4)]
        _launch(xp, ADAM, p.dtype, p.size,
                (np.int64(p.size), np.int64(p.size // J), sq, g, p, state[f"mu_{n}"],
                 state[f"nu_{n}"], state[f"ema_{n}"], np.float64(lr), np.float64(cfg.b1),
                 np.float64(cfg.b2), np.float64(cfg.eps), np.float64(cfg.clip_norm),
                 np.float64(cfg.ema_decay), np.float64(1.0 - cfg.b1 ** count),
                 np.float64(1.0 - cfg.b2 ** count), np.float64(1.0 - cfg.ema_decay ** count),
                 *outs))
        new_params[n] = outs[0]
        new_state[f"mu_{n}"], new_state[f"nu_{n}"], new_state[f"ema_{n}"] = outs[1:]
    return new_params, new_state
