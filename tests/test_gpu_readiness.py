"""What a first real GPU run depends on, checked without one: the backend probe (a
driver-only machine without the CUDA toolkit libraries fails in one line, before
anything is written), one worker per GPU, and the bytes the cupy training step moves.

The library failures are made on the CuPy stand-in (``CUPY_STANDIN_MISSING_LIBS``), which
raises the errors cuda-pathfinder and CuPy 14 raise on first use of a missing library.
"""
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from gmmdiff import backend, cli
from gmmdiff.backend import cupy_available, get_xp

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
    assert lib in lines[0] and "pip install 'gmmdiff[cuda12]'" in lines[0], lines[0]
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
    assert msg is not None and lib in msg and "gmmdiff[cuda" in msg and "\n" not in msg
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
        cli.check_jobs(2, "cupy")
    cli.check_jobs(2, "numpy")
    cli.check_jobs(1, "cupy")


def cli_script(name):
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), os.path.join(ROOT, "bin", name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.main
