"""Memory a run needs, estimated before anything is allocated or written.

A run that cannot fit should be refused at once with one line naming the options that
make it big, not crash after hours of training (or, worse, after training, while
evaluating). :func:`run_bytes` estimates the peak of each stage from the shapes alone
-- the data, the training step's (models x components x rows) blocks, the noise
chunks, the evaluation -- with the number of live arrays of each shape counted
generously; :func:`check_run_fits` compares the largest with the memory available
(:func:`gmmdiff.backend.available_bytes`: MemAvailable on the host; on a GPU the free
device memory and what CuPy's pool holds unused, less what the draw chunks may take).
"""
import numpy as np

from gmmdiff.backend import available_bytes
from gmmdiff.engine.buckets import BUCKET_OVERHEAD, plan_buckets
from gmmdiff.training.draws import DEVICE_CHUNK_FRACTION, draw_chunk_steps

GiB = 2.0 ** 30


def _row_size(cfg):
    """Numbers per data row: d for the GMM, C x pixels for templates."""
    if cfg.model == "templates":
        return cfg.colors * cfg.image_size ** 2
    return cfg.dim


def run_bytes(cfg, sizes, n_configs=1, backend="numpy"):
    """Estimated peak bytes of each stage of training and evaluating models of ``sizes``
    (J models in all, over ``n_configs`` configurations) of ``cfg``: a dict
    stage -> (bytes, the options that drive it)."""
    f = 8.0                                                    # float64 working precision
    P = float(_row_size(cfg))
    N, n, Mmax, J = float(cfg.samples), float(cfg.noise_draws), float(max(sizes)), float(len(sizes))
    B = N * n
    C = float(cfg.colors) if cfg.model == "templates" else 1.0
    S = draw_chunk_steps(cfg.samples, cfg.noise_draws, int(P))
    data = ((N + cfg.test_samples) * P * (1 + n) + 3.0 * cfg.components * P) * f * n_configs
    # the loss runs bucket by bucket (gmmdiff.engine.buckets): the largest bucket's blocks
    plan = plan_buckets(list(sizes), int(B), BUCKET_OVERHEAD[backend])
    Jb, Mb = max(((len(b), max(sizes[i] for i in b)) for b in plan), key=lambda jm: jm[0] * jm[1])
    stages = {
        "data": (data, "--samples, --dim, --components, --noise-draws"),
        # per bucket: (Jb, Mb, B[, C]) logits, weights, gradient blocks and temporaries,
        # (Jb, P, B) noisy points, errors, gradients; for all J models: noise, rows,
        # parameters with gradients, Adam moments and averages, the noise chunks
        "training": (data + Jb * Mb * B * C * f * 5 + Jb * P * B * f * 10 + J * P * B * f * 3
                     + J * Mmax * P * f * 6 + 3 * J * S * B * P * f,
                     "--samples, --noise-draws, --model-sizes, --dim"),
    }
    rows = min(200_000.0, N * cfg.eval_noise_draws)            # losses.monte_carlo_per_time
    E = float(cfg.eval_samples)
    L = float(cfg.grid_size)
    stages["evaluation"] = (
        data + rows * P * f * 8 + max(Mmax, N) * rows * C * f * 6  # per-time Monte Carlo
                                                               # losses (theta_mem: N means)
        + E * P * f * 8 + Mmax * E * C * f * 6                 # sampling
        + E * N * P * f * 2 + E * E * f * 3 + Mmax * N * P * f * 2  # nearest points, W2
        + L * (N + E + 64) * f * 4,                            # per-time curves, grid
        "--eval-samples, --eval-noise-draws, --samples, --dim, --grid-size")
    return stages


def _check(need, options, what, xp, available):
    avail = available_bytes(xp) if available is None else available
    if avail is None:  # pragma: no cover - unknown platform
        return
    if xp is not np:        # the draw chunks take up to 2 x DEVICE_CHUNK_FRACTION of it
        avail *= 1.0 - 2.0 * DEVICE_CHUNK_FRACTION
    if need > avail:
        where = "device" if xp is not np else "host"
        raise ValueError(f"{what} needs about {need / GiB:.3g} GiB ({options}), more than the "
                         f"{avail / GiB:.3g} GiB of {where} memory available; choose smaller sizes")


def check_run_fits(cfg, sizes, xp=np, n_configs=1, available=None):
    """Raise ValueError (one line, naming the options) when the estimated peak of
    training or evaluating ``sizes`` exceeds the memory available."""
    stages = run_bytes(cfg, sizes, n_configs, "numpy" if xp is np else "cupy")
    stage, (need, options) = max(stages.items(), key=lambda kv: kv[1][0])
    _check(need, options, f"this run's {stage}", xp, available)


def data_bytes(cfg):
    """Bytes of the data set of ``cfg`` (its training and held-out rows, the mixture's
    means): what reading a run directory's arrays against its configuration builds."""
    P = float(_row_size(cfg))
    return ((cfg.samples + cfg.test_samples) * P + 3.0 * cfg.components * P) * 8.0


def predict_bytes(cfg):
    """Estimated peak bytes of predicting the transition of ``cfg`` from the theory
    (gmmdiff-predict): the data set, and the "nearest" curve's working copy of the data
    and blocks of squared distances (:data:`gmmdiff.theory.nearest.BLOCK_BYTES` each)."""
    from gmmdiff.theory.nearest import BLOCK_BYTES
    N, d = float(cfg.samples), float(cfg.dim)
    data = (N + cfg.test_samples) * d * 8.0 * 2 + 3.0 * cfg.components * d * 8
    return data + 2 * N * d * 8 + 3 * BLOCK_BYTES + 32 * N * 8 + (64 << 20)


def figure1_bytes(N, d, K, n_noise, n_sizes, times=26):
    """Estimated peak bytes of figure 1 from the theory (gmmdiff-plot --figure1): the
    data set and the theory's curves (:func:`predict_bytes`), the Monte Carlo chunks of
    ``min(200,000, N n_noise)`` rows (:func:`gmmdiff.model.losses.monte_carlo_per_time`) and
    the (rows, N) blocks of the memorizing denoiser on them, and the comparison's
    per-time arrays for each of the ``n_sizes`` sizes."""
    from gmmdiff.training.config import TrainConfig
    cfg = TrainConfig(dim=d, components=K, samples=N)
    rows = min(200_000.0, float(N) * n_noise)
    return (predict_bytes(cfg) + rows * d * 8.0 * 8 + rows * N * 8.0 * 3
            + max(rows, float(N)) * 8.0 * 6 + n_sizes * times * 8.0 * 16)


def check_figure1_fits(N, d, K, n_noise, n_sizes, available=None):
    """Raise ValueError (one line, naming the options) when figure 1 from the theory
    would not fit in the host's memory."""
    _check(figure1_bytes(N, d, K, n_noise, n_sizes), "--samples, --dim, --noise-draws",
           "this figure", np, available)


def check_predict_fits(cfg, available=None):
    """Raise ValueError (one line, naming the options) when predicting ``cfg`` from the
    theory would not fit in the host's memory."""
    _check(predict_bytes(cfg), "--samples, --dim, --components", "this prediction", np, available)
