"""What a first real GPU run depends on, checked without one: the backend probe (a
driver-only machine without the CUDA toolkit libraries fails in one line, before
anything is written), one worker per GPU, and the bytes the cupy training step moves.

The library failures are made on the CuPy stand-in (``CUPY_STANDIN_MISSING_LIBS``), which
raises the errors cuda-pathfinder and CuPy 14 raise on first use of a missing library.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from gmmdiff import backend
from gmmdiff.cli import workers
from gmmdiff.backend import cupy_available, get_xp
from helpers import load_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dim", "3", "--components", "2", "--samples", "8", "--steps", "4", "--noise-draws", "2",
        "--eval-samples", "4", "--quiet"]


@pytest.fixture(scope="module")
def standin():
    if not cupy_available():
        pytest.skip("neither CuPy with a GPU nor the CuPy stand-in is active")
    cp = get_xp("cupy")
    if not getattr(cp, "STANDIN", False):
        pytest.skip("library failures are simulated on the CuPy stand-in")
    return cp


def script(name, *args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "bin", name), *args],
                          env=dict(os.environ, **(env or {})), capture_output=True, text=True,
                          timeout=300)


# ------------------------------------------------------------------ backend probe

@pytest.mark.parametrize("missing, lib", [("nvrtc", "libnvrtc.so.12"), ("cublas", "libcublasLt.so.12")])
def test_train_without_a_cuda_library_fails_in_one_line_before_writing(standin, tmp_path, missing, lib):
    """The stand-in sees a GPU (as CuPy does on a driver-only machine) but the library
    fails on first use: exit 2, one line naming the library and the extra, no run
    directory."""
    out = tmp_path / "run"
    r = script("gmmdiff-train", *TINY, "--model-sizes", "2,8", "--backend", "cupy", "--out", str(out),
               env={"CUPY_STANDIN_MISSING_LIBS": missing})
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lib in lines[0] and "[cuda12]'" in lines[0] and "'gmmdiff[cuda" not in lines[0], lines[0]
    assert not out.exists()


def test_sweep_with_devices_probes_each_device_before_writing(standin, tmp_path):
    out = tmp_path / "sweep"
    r = script("gmmdiff-sweep", "--preset", "cpu", "-N", "8", "-d", "3", "-K", "2", "--coarse", "2",
               "--refine", "0", "--steps", "4", "--backend", "cupy", "--devices", "0,1", "--out", str(out),
               env={"CUPY_STANDIN_MISSING_LIBS": "nvrtc", "CUPY_STANDIN_DEVICES": "2"})
    assert r.returncode == 2 and "libnvrtc.so.12" in r.stderr, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("text, lib", [
    # cuda-pathfinder 1.9 (CuPy 14) on a machine without the wheels, verbatim
    ('Failure finding "libcublasLt.so.13 or libcublasLt.so.12": No such file: libcublasLt.so.13 or '
     'libcublasLt.so.12, No such file: libcublasLt.so.13 or libcublasLt.so.12\n', "libcublasLt"),
    # CuPy 13's SoftLink
    ("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object file: "
     "No such file or directory", "libnvrtc"),
    ("libcublas.so.12: cannot open shared object file: No such file or directory", "libcublas."),
])
def test_missing_library_named_with_its_extra(text, lib):
    msg = backend._missing_library_message(ImportError(text))
    assert msg is not None and lib in msg and "[cuda12]'" in msg and "\n" not in msg
    assert backend._missing_library_message(RuntimeError("CUDA_ERROR_OUT_OF_MEMORY")) is None


def test_probe_checks_values_and_is_run_once_per_device(standin, monkeypatch):
    """A GPU that computes a wrong product is refused too; the probe's verdict is kept
    per device, so get_xp does not launch kernels on every call."""
    monkeypatch.setattr(backend, "_PROBED", {})
    with standin._standin.counting() as c:
        get_xp("cupy")
        get_xp("cupy")
    assert c.launches >= 2 and c.syncs == 1, c.report()         # one probe: kernel, product, get
    monkeypatch.setattr(backend, "_PROBED", {})
    real = standin.matmul
    monkeypatch.setattr(standin, "matmul", lambda a, b: real(a, b) + 1.0)
    with pytest.raises(ValueError, match="2 x 2 product"):
        get_xp("cupy")
    monkeypatch.setattr(backend, "_PROBED", {})


# ------------------------------------------------------------- one worker per GPU

def test_jobs_with_cupy_refused_pointing_to_devices(tmp_path):
    """Checked before the backend: the refusal holds on any machine."""
    sweep = cli_script("gmmdiff-sweep")
    result = CliRunner().invoke(sweep, ["--preset", "cpu", "-N", "8", "-d", "3", "-K", "2",
                                        "--backend", "cupy", "--jobs", "3", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert "--devices 0,1,2" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
    with pytest.raises(ValueError, match="one GPU"):
        workers.check_jobs(2, "cupy")
    workers.check_jobs(2, "numpy")
    workers.check_jobs(1, "cupy")


def cli_script(name):
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), os.path.join(ROOT, "bin", name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.main


# ------------------------------------------------------------ bytes per step

@pytest.fixture(scope="module")
def bench():
    return load_benchmark()


# (alloc, copy) budgets in units of the step's arithmetic minimum (see the test)
BYTE_BUDGETS = {(False, "float64"): (4.0, 0.25), (False, "float32"): (5.5, 0.75),
                (True, "float64"): (2.5, 0.25), (True, "float32"): (3.0, 0.5)}


@pytest.mark.parametrize("fused, dtype", sorted(BYTE_BUDGETS))
def test_bytes_per_step_near_the_arithmetic_minimum_and_linear_in_models(standin, bench, fused,
                                                                         dtype):
    """Bytes allocated and copied per training step, counted by the stand-in with the
    temporaries CuPy's einsum and matmul make inside (cupy/linalg/_einsum.py,
    cupy/_core/_routines_linalg.pyx), against the step's arithmetic minimum: the blocks
    its formulas must write once, per model (J, M, B) logits in float64 and weights and
    weighted gradients G in the working dtype, (J, d, B) noisy points, errors and
    posterior means.

    Copies (bytes moved without arithmetic) stay under a quarter of that in float64; in
    float32 the weights (computed in float64) and the float64 noise are cast every
    step, about another quarter at these shapes, and per-row coefficients more. Before
    this check the plain path copied 1.75x (float64) and 3.2x (float32) the minimum:
    CuPy's einsum transposed both operands of every column dot, its matmul copied the
    transposed gradient operands. Allocations: the plain array program's temporaries
    (softmax, products) stay within 4x (float64; measured 3.4-3.6x), the fused path's
    within 2.5x (measured 2.0x). Both grow no faster than the number of models J: 20
    models (10 seeds x 2 sizes) against 2.

    And nothing of the size of the rows (J B) is copied by einsum's or matmul's own
    layout changes: no batched 1 x 1 products, no transposed operand copies."""
    from gmmdiff.training.config import TrainConfig
    cfg = TrainConfig(dim=5, components=2, samples=40, noise_draws=10, dtype=dtype)
    sizes, B, d = [8, 16], 400, 5
    it = np.dtype(dtype).itemsize
    alloc_budget, copy_budget = BYTE_BUDGETS[(fused, dtype)]
    measured = {}
    for seeds in (1, 10):
        J = seeds * len(sizes)
        _, per, sites = bench.launch_counts(standin, cfg, sizes, fused, seeds, site_category="copy")
        minimum = seeds * sum(B * (M * (8 + 2 * it) + 3 * d * it) for M in sizes)
        alloc, copy = per["alloc"][0], per["copy"][0]
        assert alloc <= alloc_budget * minimum, (seeds, alloc / minimum)
        assert copy <= copy_budget * minimum, (seeds, copy / minimum, sites)
        hidden = sum(v for (site, op), v in sites.items() if op.startswith(("einsum", "matmul")))
        assert hidden < J * B * 8, sorted(((v, k) for k, v in sites.items()), reverse=True)[:5]
        measured[seeds] = alloc, copy
    assert measured[10][0] <= 10 * measured[1][0] and measured[10][1] <= 10 * measured[1][1], measured


@pytest.mark.parametrize("fused", [False, True])
def test_the_step_makes_no_batched_1x1_products(standin, bench, fused):
    """CuPy runs an einsum of the form ``...d,...d->...`` as a batched matrix product
    with m = n = 1 (cupy/linalg/_einsum.py), one cuBLAS call of J tiny products; the
    stand-in names such calls "einsum batched 1x1 matmul". The training step makes
    none (before issue 32 the plain path made 2 per step: the row dot products of
    gmmdiff.model.denoisers._rowdot, the loss's weighted sum and |mu|^2)."""
    from gmmdiff.training.config import TrainConfig
    cfg = TrainConfig(dim=5, components=2, samples=40, noise_draws=10)
    _, _, sites = bench.launch_counts(standin, cfg, [8, 16], fused, 2)
    assert not {k: v for k, v in sites.items() if k[1] == "einsum batched 1x1 matmul"}, sites


# ------------------------------------------------------------------- benchmark

def test_benchmark_times_steady_steps_across_two_chunk_boundaries(standin, bench, monkeypatch):
    """With draw chunks of 4 steps: the first chunk is warm-up, the run goes on past two
    more chunk starts (steps 8 and 12), and the steps timed are those inside warm chunks
    (4, 5, 6, 8, 9, 10, 12); the steps that carry the next chunk's draws (7 and 11) are
    reported apart, the last step (which syncs) not at all; peak pool memory is read."""
    from gmmdiff.training import draws
    from gmmdiff.training.config import TrainConfig
    monkeypatch.setattr(draws, "device_chunk_steps", lambda *a, **k: 4)
    cfg = TrainConfig(dim=3, components=2, samples=8, noise_draws=2)
    r = bench.time_steps(cfg, [4, 8], standin, steps=6, repeats=1)
    assert r["S"] == 4 and r["timed"] == 7 and r["peak"] > 0, r
    assert r["device"] > 0 and r["host"] > 0 and r["draw"] > 0
    rec = bench._MarkedDraws.last
    assert rec["start"] == 0 and len(rec["host"]) == 14 + 1          # 3 S + 2 steps, one mark each + end
    dev, host, draw = bench.step_times(rec, standin, warmup=4)
    assert dev.size == 7 and draw.size == 2


def test_gpu_check_script_parses_and_its_values_check_runs(standin, tmp_path):
    """benchmarks/gpu_check.sh is valid bash, and its values check (plain, fused and
    numpy with the same hash draws) runs on the stand-in at a small shape, every path
    within its screening threshold: what the GPU run will call still exists."""
    assert subprocess.run(["bash", "-n", os.path.join(ROOT, "benchmarks", "gpu_check.sh")]).returncode == 0
    out = tmp_path / "values.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_values.py"), "--small",
                        "--steps", "2", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    from gmmdiff.io.files import read_json
    rows = read_json(str(out))["rows"]
    assert [(x["path"], x["dtype"]) for x in rows] == [("plain", "float64"), ("fused", "float64"),
                                                       ("plain", "float32"), ("fused", "float32")]
    assert all(x["ok"] for x in rows) and rows[0]["max_rel_diff"]["loss"] < 1e-12, rows


def test_library_runs_probe_the_device_before_writing(standin, tmp_path, monkeypatch):
    """gmmdiff.experiments.runs.run called with the cupy module itself (not through get_xp) probes
    too: a missing NVRTC fails in one line before the run directory exists."""
    from gmmdiff.training.config import TrainConfig
    from gmmdiff.experiments.runs import run
    monkeypatch.setattr(backend, "_PROBED", {})
    monkeypatch.setenv("CUPY_STANDIN_MISSING_LIBS", "nvrtc")
    cfg = TrainConfig(dim=3, components=2, samples=8, noise_draws=2, steps=4, eval_samples=4)
    with pytest.raises(ValueError, match="libnvrtc.so.12"):
        run(cfg, [2, 8], str(tmp_path / "run"), standin)
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(backend, "_PROBED", {})
