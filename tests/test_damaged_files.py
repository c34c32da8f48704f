"""Every file gmmdiff reads is checked by its one reader: a damaged file (wrong types,
huge declared shapes, NaN, truncation, flipped bytes, a FIFO) gives one line naming the
file, exit code 2, and nothing on disk changes. The cases of issue 20 one by one, then a
hypothesis fuzz test that damages the files of a small run and a small sweep at random."""
import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gmmdiff.training.config import TrainConfig
from gmmdiff.training.state import initial_state
from gmmdiff.io.schemas import SCHEMAS, schema_error
from gmmdiff.experiments.sweep.spec import SWEEP_SCHEMA
from gmmdiff.families.template_io import write_idx

from test_cli import SMALL, load_script
from test_reliability import TINY_SWEEP, one_line_error, snapshot

train_cli = load_script("gmmdiff-train")
sweep_cli = load_script("gmmdiff-sweep")
plot_cli = load_script("gmmdiff-plot")
predict_cli = load_script("gmmdiff-predict")
SWEEP = TINY_SWEEP + ["--seeds", "0,1"]
TEMPLATES = ["--model", "templates", "--components", "2", "--samples", "8", "--model-sizes", "2,8",
             "--steps", "20", "--noise-draws", "2", "--eval-samples", "10", "--image-size", "4",
             "--quiet"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A finished small run directory and a finished small sweep (two configurations),
    never modified: tests work on copies."""
    top = tmp_path_factory.mktemp("pristine")
    run = top / "run"
    result = CliRunner().invoke(train_cli, SMALL + ["--out", str(run)])
    assert result.exit_code == 0, result.output
    sweep = top / "sweep"
    result = CliRunner().invoke(sweep_cli, SWEEP + ["--out", str(sweep)])
    assert result.exit_code == 0, result.output
    return run, sweep


@pytest.fixture
def copies(pristine, tmp_path):
    run, sweep = (tmp_path / "run", tmp_path / "sweep")
    shutil.copytree(pristine[0], run)
    shutil.copytree(pristine[1], sweep)
    return run, sweep


def huge_npy(shape=(10**7, 10**7), dtype="<f8"):
    """The bytes of an NPY file whose header declares ``shape`` and holds 8 bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + b"\0" * 8


def replace_member(npz, name, data):
    """Rewrite NPZ ``npz`` with member ``name``.npy replaced by ``data`` (a valid zip)."""
    with zipfile.ZipFile(npz) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members[name + ".npy"] = data
    with zipfile.ZipFile(npz, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)


def set_json(path, keys, value):
    obj = json.loads(path.read_text())
    node = obj
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    path.write_text(json.dumps(obj))


def rerun_train(run):
    return CliRunner().invoke(train_cli, SMALL + ["--out", str(run)])


def refused_unchanged(result, top, before, match=None):
    one_line_error(result, match)
    assert snapshot(top) == before


# ------------------------------------------------------------------ the cases

@pytest.mark.parametrize("value", ["high", [], {"ratio": "high", "interval": [0, 1]}])
def test_a_result_json_with_wrong_types_is_one_line_everywhere(copies, value):
    run, sweep = copies
    for top, rd, cmd in ((run, run, lambda: rerun_train(run)),
                         (run, run, lambda: CliRunner().invoke(plot_cli, [str(run)])),
                         (sweep, sweep / "N8-d3-K2-s0",
                          lambda: CliRunner().invoke(sweep_cli, ["--summary", str(sweep)]))):
        f = sorted(rd.glob("model_M*.json"))[0]
        good = f.read_text()
        set_json(f, ["memorization"], value)
        before = snapshot(top)
        refused_unchanged(cmd(), top, before, f.name)
        f.write_text(good)


@pytest.mark.parametrize("key", ["generalizing_train", "pmem_train"])
def test_wrong_typed_per_time_losses_are_one_line_in_summary_fit_and_plot(copies, key):
    run, sweep = copies
    f = sweep / "N8-d3-K2-s0" / "model_M00008.json"
    set_json(f, ["per_time_losses", key], "abc")
    before = snapshot(sweep)
    for args, cli in ((["--summary", str(sweep)], sweep_cli), (["--fit", str(sweep)], predict_cli),
                      ([str(sweep)], plot_cli)):
        refused_unchanged(CliRunner().invoke(cli, args), sweep, before, "per_time_losses")
    f = run / "model_M00002.json"
    set_json(f, ["per_time_losses", key], [1.0, "x"])
    before = snapshot(run)
    refused_unchanged(CliRunner().invoke(plot_cli, [str(run)]), run, before, "model_M00002.json")


def test_npz_members_declaring_huge_shapes_are_refused_before_allocation(copies, tmp_path):
    run, _ = copies
    replace_member(run / "model_M00008.npz", "generated", huge_npy())
    before = snapshot(run)
    refused_unchanged(CliRunner().invoke(plot_cli, [str(run)]), run, before, "declares shape")
    refused_unchanged(rerun_train(run), run, before, "model_M00008.npz")
    tpl = tmp_path / "huge.npy"
    tpl.write_bytes(huge_npy((10**6, 10**6, 10**6)))
    out = tmp_path / "tpl-run"
    result = CliRunner().invoke(train_cli, TEMPLATES + ["--template-file", str(tpl), "--out", str(out)])
    one_line_error(result, "declares shape")
    assert not out.exists()


def pending_checkpoint(run, **damage):
    """A checkpoint of the pending size 4 of ``run`` (SMALL with sizes 2,4,8), damaged."""
    cfg = TrainConfig(dim=3, components=2, samples=8, steps=60, noise_draws=2, eval_samples=10)
    st_ = initial_state(cfg.dataset(), [4], cfg, np, labels=["run:M=4"])
    for k, v in damage.items():
        setattr(st_, k, v)
    st_.save(str(run / "checkpoint.npz"))


def with_size_4(run):
    return CliRunner().invoke(train_cli, [a if a != "2,8" else "2,4,8" for a in SMALL]
                              + ["--out", str(run)])


def test_damaged_checkpoints_are_one_line_and_change_nothing(copies):
    run, _ = copies
    cases = [
        (dict(step=61), "beyond the run's 60 steps"),
        (dict(params=None), "holds NaN"),
        (dict(sizes=[5]), "does not match its sizes"),
    ]
    for damage, match in cases:
        if damage.get("params", 1) is None:
            pending_checkpoint(run)
            z = dict(np.load(run / "checkpoint.npz"))
            z["param_means"][0, 0, 0] = np.nan
            np.savez(run / "checkpoint.npz", **z)
        else:
            pending_checkpoint(run, **damage)
        before = snapshot(run)
        refused_unchanged(with_size_4(run), run, before, match)
        assert "checkpoint.npz" in with_size_4(run).output
    pending_checkpoint(run)
    replace_member(run / "checkpoint.npz", "param_means", huge_npy((10**5, 10**5, 10**5)))
    before = snapshot(run)
    refused_unchanged(with_size_4(run), run, before, "declares shape")
    # a checkpoint of another dimension names the file (no bare shape error)
    cfg = TrainConfig(dim=5, components=2, samples=8, steps=60)
    initial_state(cfg.dataset(), [4], cfg, np, labels=["run:M=4"]).save(str(run / "checkpoint.npz"))
    before = snapshot(run)
    refused_unchanged(with_size_4(run), run, before, "checkpoint.npz")


def test_bad_template_files_are_one_line_without_inviting_unsafe_loading(tmp_path):
    text = tmp_path / "notes.npy"
    text.write_text("just some text\n" * 10)
    gz = tmp_path / "t.idx.gz"
    write_idx(str(tmp_path / "t.idx"), np.zeros((8, 4, 4), dtype=np.uint8))
    import gzip
    gz.write_bytes(gzip.compress((tmp_path / "t.idx").read_bytes())[:-12] + b"\xff" * 12)
    fifo = tmp_path / "pipe.idx"
    os.mkfifo(fifo)
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for path, match in ((text, "notes.npy"), (gz, "corrupt gzip"), (fifo, "FIFO"),
                        (pickled, "never loads")):
        out = tmp_path / f"run-{path.name}"
        result = CliRunner().invoke(train_cli, TEMPLATES + ["--template-file", str(path),
                                                            "--out", str(out)])
        line = one_line_error(result, match)
        assert "allow_pickle" not in line and not out.exists()


def test_damaged_sweep_files_are_one_line(copies):
    _, sweep = copies
    good = (sweep / "sweep.json").read_text()
    for keys, value, match in ((["identity", "base", "steps"], float("inf"), "Infinity"),
                               (["identity", "samples"], "abc", "identity.samples"),
                               (["identity", "base", "steps"], 40.5, "identity.base.steps"),
                               (["identity", "base", "steps"], -1, "steps"),
                               (["identity", "base", "magic"], 1, "not a training setting")):
        set_json(sweep / "sweep.json", keys, value)
        before = snapshot(sweep)
        for args, cli in ((["--summary", str(sweep)], sweep_cli), (SWEEP + ["--out", str(sweep)], sweep_cli),
                          ([str(sweep)], plot_cli), (["--fit", str(sweep)], predict_cli)):
            refused_unchanged(CliRunner().invoke(cli, args), sweep, before, match)
        (sweep / "sweep.json").write_text(good)
    tr = sweep / "N8-d3-K2-s0" / "transition.json"
    for keys, value in ((["M_pt"], "abc"), (["M_pt", "value"], "abc"), (["M"], [1, "x"])):
        good_tr = tr.read_text()
        set_json(tr, keys, value)
        before = snapshot(sweep)
        for args, cli in ((["--summary", str(sweep)], sweep_cli), (SWEEP + ["--out", str(sweep)], sweep_cli),
                          ([str(sweep)], plot_cli), (["--fit", str(sweep)], predict_cli)):
            refused_unchanged(CliRunner().invoke(cli, args), sweep, before, "transition.json")
        tr.write_text(good_tr)


def test_an_index_with_bad_sizes_is_refused_not_extended(copies):
    run, _ = copies
    for bad in ([-3], [2, 2], ["8"], [2.0]):
        (run / "index.json").write_text(json.dumps({"complete": bad}))
        before = snapshot(run)
        refused_unchanged(rerun_train(run), run, before, "index.json")


def test_fit_files_with_strings_or_lists_are_one_line_in_plot(copies):
    _, sweep = copies
    for bad in ('{"weights": ["a"], "times": [1.0], "source": "mc"}', "[]",
                '{"weights": [1.0], "times": [1.0], "source": "mc", "measured": "abc"}'):
        (sweep / "fit_mc.json").write_text(bad)
        before = snapshot(sweep)
        refused_unchanged(CliRunner().invoke(plot_cli, [str(sweep)]), sweep, before, "fit_mc.json")


# ------------------------------------------------------------------------- fuzzing

def schema_paths(obj, schema, prefix=()):
    """Paths (key tuples) of the values of ``obj`` that ``schema`` checks."""
    if isinstance(schema, str):
        return [prefix] if schema != "any" else []
    if isinstance(schema, tuple):
        schema = [schema[1]]
    if isinstance(schema, list):
        out = [prefix]
        for k, v in enumerate(obj if isinstance(obj, list) else []):
            out += schema_paths(v, schema[0], prefix + (k,))
        return out
    out = [prefix] if prefix else []
    for key, sub in schema.items():
        key = key.rstrip("?")
        if isinstance(obj, dict) and key in obj:
            out += schema_paths(obj[key], sub, prefix + (key,))
    return out


SCHEMA_OF = {"index.json": SCHEMAS["index"], "transition.json": SCHEMAS["transition"],
             "config.json": SCHEMAS["config"], "sweep.json": SWEEP_SCHEMA}
WRONG = st.sampled_from(["abc", [], {}, None, True, -1.5e308, [[1]], {"a": [1]}])


_LAST = {}


def damage(path, data):
    """Damage the file ``path`` in one of the ways of issue 20, each one a reader must
    detect: truncation (a JSON file before its last character, an NPZ anywhere), a
    flipped byte inside an NPZ member (its CRC), a value of the wrong type where the
    file's schema checks one, or an NPZ member whose header declares a huge shape."""
    raw = path.read_bytes()
    kind = data.draw(st.sampled_from(["truncate", "flip", "type", "huge"]), label="damage")
    if path.suffix == ".json" and kind in ("flip", "huge"):
        kind = "type"
    if path.suffix == ".npz" and kind == "type":
        kind = "huge"
    _LAST.update(kind=kind, still_valid=False)
    if kind == "truncate":
        end = len(raw.rstrip()) - 1 if path.suffix == ".json" else len(raw) - 1
        path.write_bytes(raw[:data.draw(st.integers(0, end), label="cut")])
    elif kind == "flip":
        with zipfile.ZipFile(path) as z:
            info = data.draw(st.sampled_from(z.infolist()), label="member")
        h = info.header_offset                  # the local header's name and extra lengths
        start = h + 30 + int.from_bytes(raw[h + 26:h + 28], "little") + int.from_bytes(
            raw[h + 28:h + 30], "little")
        pos = data.draw(st.integers(start, start + info.compress_size - 1), label="byte")
        bit = data.draw(st.integers(0, 7), label="bit")
        path.write_bytes(raw[:pos] + bytes([raw[pos] ^ (1 << bit)]) + raw[pos + 1:])
    elif kind == "huge":
        with zipfile.ZipFile(path) as z:
            name = data.draw(st.sampled_from(sorted(z.namelist())), label="member")
        dims = data.draw(st.lists(st.integers(10**3, 10**7), min_size=2, max_size=4), label="shape")
        replace_member(path, name[:-4], huge_npy(tuple(dims)))
    else:
        obj = json.loads(raw)
        schema = SCHEMAS["metrics"] if path.name.startswith("model_M") else SCHEMA_OF[path.name]
        paths = schema_paths(obj, schema) or [()]
        where = data.draw(st.sampled_from(paths), label="path")
        value = data.draw(WRONG, label="value")
        if where == ():
            obj = value if not isinstance(value, dict) else []
        else:
            node = obj
            for k in where[:-1]:
                node = node[k]
            node[where[-1]] = value
        path.write_text(json.dumps(obj))
        _LAST["still_valid"] = schema_error(obj, schema) is None
    return kind


OUTCOMES = {}                      # (test, damage, refused) -> count, for the report


def check_one_damage(top, reference, target_files, command, data, writes=()):
    shutil.rmtree(top, ignore_errors=True)
    shutil.copytree(reference, top)
    pristine = snapshot(top)
    name = data.draw(st.sampled_from(target_files), label="file")
    damage(top / name, data)
    kind = _LAST["kind"]
    before = snapshot(top)
    result = command()
    key = (top.name, kind, result.exit_code != 0)
    OUTCOMES[key] = OUTCOMES.get(key, 0) + 1
    if result.exit_code == 0:
        # only a value that the file's schema accepts where it was put (null where a
        # number may be null, another number, an object where any object goes, an
        # index listing fewer sizes: a kill's state) may pass: the file is still valid;
        # besides the command's own output file (``writes``) the directory is as it
        # was, or the command redid what the file no longer listed, bit for bit
        assert kind == "type" and _LAST["still_valid"], result.output
        after = {k: v for k, v in snapshot(top).items() if not k.startswith(tuple(writes))}
        assert after == before or after == pristine
        return
    one_line_error(result)
    assert snapshot(top) == before


# 30 fixed examples each in CI; GMMDIFF_FUZZ_EXAMPLES=N for a longer random run
_N = int(os.environ.get("GMMDIFF_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_N or 30, deadline=None, derandomize=not _N, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(data=st.data())
def test_fuzz_damaged_run_directory(pristine, tmp_path_factory, data):
    run = pristine[0]
    top = tmp_path_factory.getbasetemp() / "fuzz-run"
    names = sorted(p.name for p in run.iterdir() if p.suffix in (".json", ".npz"))
    check_one_damage(top, run, names, lambda: CliRunner().invoke(train_cli, SMALL + ["--out", str(top)]),
                     data)


@FUZZ
@given(data=st.data())
def test_fuzz_damaged_sweep(pristine, tmp_path_factory, data):
    sweep = pristine[1]
    top = tmp_path_factory.getbasetemp() / "fuzz-sweep"
    names = ["sweep.json"] + sorted(str(p.relative_to(sweep)) for p in sweep.glob("N*/*.json")
                                    if p.name != "baselines.json" and p.name != "plan.json")
    check_one_damage(top, sweep, names,
                     lambda: CliRunner().invoke(sweep_cli, ["--summary", str(top)]), data,
                     writes=("summary.csv", "summary.json"))   # --summary writes both


@FUZZ
@given(data=st.data())
def test_fuzz_damaged_sweep_results_and_arrays_in_plot(pristine, tmp_path_factory, data):
    """The same for what a sweep's figures read: every configuration's results and
    arrays (NPZ: truncated, a flipped byte, a huge declared shape); gmmdiff-plot checks
    them all before its first figure."""
    sweep = pristine[1]
    top = tmp_path_factory.getbasetemp() / "fuzz-plot"
    names = sorted(str(p.relative_to(sweep)) for p in sweep.glob("N*/model_M*"))
    check_one_damage(top, sweep, names, lambda: CliRunner().invoke(plot_cli, [str(top)]), data,
                     writes=("fig",))


@pytest.fixture(scope="module", autouse=True)
def report_outcomes():
    """With GMMDIFF_FUZZ_EXAMPLES set, print how many damaged files were refused and how
    many were still valid (per directory and kind of damage) at the end."""
    yield
    if _N:
        for (top, kind, refused), n in sorted(OUTCOMES.items()):
            print(f"fuzz {top}: {kind}: {n} {'refused (one line, exit 2, unchanged)' if refused else 'still valid, accepted'}")


def test_a_damaged_file_of_an_unfinished_sweep_configuration_is_one_line_before_any_work(
        pristine, copies):
    """What resuming a configuration reads -- its completed sizes' metrics and arrays,
    its unit's checkpoint -- is checked before the sweep prints or trains anything."""
    _, sweep = copies
    rd = sweep / "N8-d3-K2-s0"
    (rd / "transition.json").unlink()
    good = (rd / "model_M00004.json").read_text()
    set_json(rd / "model_M00004.json", ["memorization"], "high")
    before = snapshot(sweep)
    refused_unchanged(CliRunner().invoke(sweep_cli, SWEEP + ["--out", str(sweep)]), sweep, before,
                      "model_M00004.json")
    (rd / "model_M00004.json").write_text(good)
    replace_member(rd / "model_M00004.npz", "generated", huge_npy())
    before = snapshot(sweep)
    refused_unchanged(CliRunner().invoke(sweep_cli, SWEEP + ["--out", str(sweep)]), sweep, before,
                      "declares shape")
    shutil.copy(pristine[1] / rd.name / "model_M00004.npz", rd / "model_M00004.npz")
    (sweep / "checkpoint-N8-d3-shard0of1-refine.npz").write_bytes(b"PK\x03\x04 not a zip")
    before = snapshot(sweep)
    refused_unchanged(CliRunner().invoke(sweep_cli, SWEEP + ["--out", str(sweep)]), sweep, before,
                      "checkpoint-N8-d3-shard0of1-refine.npz")
