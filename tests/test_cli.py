"""The click scripts through CliRunner: table, files, refusals, exit codes."""
import importlib.machinery
import importlib.util
import json
import os

import pytest
from click.testing import CliRunner

from gmmdiff.io.files import read_npz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name):
    path = os.path.join(ROOT, "bin", name)
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.main


train_cli = load_script("gmmdiff-train")
plot_cli = load_script("gmmdiff-plot")
SMALL = ["--dim", "3", "--components", "2", "--samples", "8", "--model-sizes", "2,8",
         "--steps", "60", "--noise-draws", "2", "--eval-samples", "10", "--quiet"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = CliRunner().invoke(train_cli, SMALL + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_prints_table_and_writes_files(small_run):
    out, output = small_run
    lines = output.splitlines()
    assert lines[0].split()[:3] == ["M", "M/N", "mem."]
    assert [ln.split()[0] for ln in lines[2:4]] == ["2", "8"]
    assert f"results in {out}" in output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["identity"]["dim"] == 3 and cfg["identity"]["backend"] == "numpy"
    assert cfg["meta"]["gmmdiff_version"]
    assert json.loads((out / "index.json").read_text()) == {"complete": [2, 8]}
    arrays = read_npz(str(out / "model_M00008.npz"))
    assert arrays["means"].shape == (8, 3) and arrays["generated"].shape == (10, 3)
    metrics = json.loads((out / "model_M00002.json").read_text())
    assert 0 <= metrics["memorization"]["ratio"] <= 1
    assert len(metrics["per_time_losses"]["model_train"]) == 26
    assert not (out / "checkpoint.npz").exists()


def test_rerun_skips_finished_sizes_and_adds_new_ones(small_run, tmp_path):
    out, _ = small_run
    before = (out / "model_M00002.json").stat().st_mtime_ns
    result = CliRunner().invoke(train_cli, SMALL[:-1] + ["--out", str(out), "--quiet"])
    assert result.exit_code == 0 and (out / "model_M00002.json").stat().st_mtime_ns == before
    more = [a if a != "2,8" else "2,4,8" for a in SMALL]
    result = CliRunner().invoke(train_cli, more + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "index.json").read_text()) == {"complete": [2, 4, 8]}
    assert (out / "model_M00002.json").stat().st_mtime_ns == before


def test_foreign_configuration_is_refused_and_nothing_changes(small_run):
    out, _ = small_run
    snapshot = {p.name: p.read_bytes() for p in out.iterdir()}
    result = CliRunner().invoke(train_cli, SMALL + ["--steps", "61", "--out", str(out)])
    assert result.exit_code == 2
    assert "different configuration" in result.output and "steps" in result.output
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == snapshot


@pytest.mark.parametrize("args, match", [
    (["--dim", "0"], "--dim"),
    (["--samples", "1"], "--samples"),
    (["--steps", "0"], "--steps"),
    (["--noise-draws", "0"], "--noise-draws"),
    (["--model-sizes", "0,4"], "model sizes '0,4'"),
    (["--model-sizes", "20"], "M = 20 is above 2N = 16"),
    (["--t-min", "0.5", "--t-max", "0.4"], "t_min = 0.5"),
    (["--backend", "tpu"], "'tpu' is not one of"),
    (["--lr", "-1"], "lr_peak = -1.0"),
    (["--data-var", "0"], "data_var = 0.0"),
    (["--init-noise-var", "-1"], "init_noise_var = -1.0"),
    (["--init", "gaussian", "--init-scale", "-2"], "gaussian_scale = -2.0"),
    (["--fused-kernels"], "need the cupy backend; got backend 'numpy'"),
    (["--optimizer", "lbfgs"], "'lbfgs' is not one of 'adam', 'sgd', 'momentum'"),
    (["--momentum", "0.5"], "--momentum has no effect with --optimizer adam"),
    (["--optimizer", "momentum", "--momentum", "1"], "momentum = 1.0 must lie in [0, 1)"),
    (["--nesterov", "--optimizer", "sgd"], "--nesterov has no effect with --optimizer sgd"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "9"], "batch size (--batch-size) 9 is above the number of training samples N = 8"),
    (["--optimizer", "sgd", "--init-var", "0"], "cannot leave init_var = 0"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, match, tmp_path):
    result = CliRunner().invoke(train_cli, SMALL + args + ["--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert match in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_unavailable_cupy_is_explained(tmp_path, monkeypatch):
    from gmmdiff import backend
    if backend.cupy_available():          # a GPU or the test suite's CuPy stand-in: hide it
        monkeypatch.setattr(backend, "_cupy", None)
        monkeypatch.setattr(backend, "_CUPY_IMPORT_ERROR", "ModuleNotFoundError: No module named 'cupy'")
    result = CliRunner().invoke(train_cli, SMALL + ["--backend", "cupy", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    # gmmdiff is installed from a checkout: the hint names it, not a package index's name
    assert "[cuda12]'" in result.output and "'numpy'" in result.output
    assert "'gmmdiff[cuda12]'" not in result.output


def test_unwritable_or_non_run_out_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    result = CliRunner().invoke(train_cli, SMALL + ["--out", str(f / "sub")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = CliRunner().invoke(train_cli, SMALL + ["--out", str(other)])
    assert result.exit_code == 2 and "not a gmmdiff run directory" in result.output
    assert (other / "notes.txt").read_text() == "mine"


def test_corrupt_results_are_reported(small_run, tmp_path):
    out, _ = small_run
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in out.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    data = (broken / "model_M00008.json").read_bytes()
    (broken / "model_M00008.json").write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(plot_cli, [str(broken)])
    assert result.exit_code == 2 and "corrupt or truncated JSON" in result.output
    result = CliRunner().invoke(train_cli, SMALL + ["--out", str(broken)])
    assert result.exit_code == 2 and "model_M00008.json" in result.output
    npz = (broken / "model_M00002.npz").read_bytes()
    (broken / "model_M00002.npz").write_bytes(npz[:100])
    from gmmdiff.io.files import StorageError
    with pytest.raises(StorageError, match="corrupt or truncated NPZ"):
        read_npz(str(broken / "model_M00002.npz"))


def test_plot_writes_figure_2(small_run):
    out, _ = small_run
    result = CliRunner().invoke(plot_cli, [str(out)])
    assert result.exit_code == 0, result.output
    for name in ("fig2_memorization.png", "fig2_losses.png", "fig2_per_time.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_stale_temporary_files_are_cleaned_on_resume(small_run):
    out, _ = small_run
    stale = out / ".tmp-abc123checkpoint.npz"
    stale.write_bytes(b"partial")
    result = CliRunner().invoke(train_cli, SMALL + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not stale.exists()


def test_figure1_from_theory_without_training(tmp_path):
    out = tmp_path / "fig1.png"
    result = CliRunner().invoke(plot_cli, ["--figure1", "-d", "20", "-K", "3", "-N", "40",
                                           "-M", "20,32", "--noise-draws", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "M = 20: worst relative error" in result.output and "M = 32" in result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(plot_cli, ["--figure1", "-N", "40", "-M", "40"])
    assert bad.exit_code == 2 and "below N = 40" in bad.output
    assert CliRunner().invoke(plot_cli, []).exit_code == 2


def test_gradient_descent_with_minibatches_runs_resumes_and_sweeps(tmp_path):
    """The issue's 'done when': gmmdiff-train --optimizer sgd --batch-size 5 runs, a
    re-run adds a size without retraining the others, and gmmdiff-sweep takes the same
    options (B checked against every N of the grid)."""
    args = ["-d", "3", "-K", "2", "-N", "8", "--steps", "200", "--noise-draws", "2",
            "--eval-samples", "20", "--eval-noise-draws", "2", "--optimizer", "sgd", "--lr", "1e-3",
            "--batch-size", "5", "--init", "prior", "--quiet"]
    out = tmp_path / "run"
    first = CliRunner().invoke(train_cli, args + ["-M", "2,8", "--out", str(out)])
    assert first.exit_code == 0, first.output
    before = (out / "model_M00002.npz").read_bytes()
    again = CliRunner().invoke(train_cli, args + ["-M", "2,4,8", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "model_M00002.npz").read_bytes() == before and (out / "model_M00004.npz").exists()
    ident = json.loads((out / "config.json").read_text())["identity"]
    assert (ident["optimizer"], ident["batch_size"]) == ("sgd", 5)
    sweep_cli = load_script("gmmdiff-sweep")
    sweep = ["-N", "8,10", "-d", "3", "-K", "2", "--seeds", "0", "--coarse", "4", "--refine", "0",
             "--steps", "100", "--noise-draws", "2", "--eval-samples", "20", "--eval-noise-draws", "2",
             "--optimizer", "momentum", "--lr", "1e-4", "--batch-size", "5", "--init", "prior",
             "--quiet"]
    r = CliRunner().invoke(sweep_cli, sweep + ["--out", str(tmp_path / "sw")])
    assert r.exit_code == 0, r.output
    base = json.loads((tmp_path / "sw" / "sweep.json").read_text())["identity"]["base"]
    assert (base["optimizer"], base["batch_size"], base["momentum"]) == ("momentum", 5, 0.9)
    bad = CliRunner().invoke(sweep_cli, sweep[:1] + ["4,8"] + sweep[2:] + ["--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "above the number of training samples N = 4" in bad.output
    assert not (tmp_path / "bad").exists()
