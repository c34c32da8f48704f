"""A fuzz test per file type (issue 37, item 8): for every file gmmdiff writes
(``benchmarks/file_probe.py``'s FILES: config, index, model JSON and NPZ, checkpoint,
plan, transition, sweep.json, summary.json, fit files, transfer.json, time_law.json,
inits.json), hypothesis changes one field at a time -- its type, its sign, NaN or
infinity, a huge value, emptied, removed -- and every command that reads the file runs
on the damaged copy, in-process. Each command either refuses it (exit code 2, one line
naming the file, the directory byte for byte as it was) or, where the changed value is
one the file's reader accepts, ends as on the undamaged directory, without a traceback
or a warning; no command refuses what another reads as valid. Files no command reads
(time_law.json, inits.json, a sweep's own summary.json) are rewritten by --summary.

The fixtures are made once per module (benchmarks/file_probe.py's ``build``: a run of
two sizes with a checkpoint of a third, a sweep of 4 tiny configurations, a directory
holding only a summary with a fit and a transfer), and copied for each example. By
default each of the 14 file types gets 4 derandomized examples, 56 damaged copies in
all (about a minute of CPU); ``GMMDIFF_FUZZ_EXAMPLES=N`` gives each type N random
examples and prints how they ended.
"""
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import load_benchmark

probe = load_benchmark("file_probe")
CLI = probe.scripts()

_N = int(os.environ.get("GMMDIFF_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_N or 4, deadline=None, derandomize=not _N, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
OUTCOMES = {}                       # (file type, verdict) -> count, for the report


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """(the pristine fixture directories, never modified; the commands' exit codes on
    them, each found once when first needed)."""
    top = tmp_path_factory.mktemp("fuzz")
    pristine = top / "pristine"
    pristine.mkdir()
    probe.build(str(pristine), CLI)
    return str(pristine), probe.CleanExitCodes(str(pristine), str(top / "clean"), CLI)


@pytest.mark.parametrize("file_type", list(probe.FILES))
@FUZZ
@given(data=st.data())
def test_a_damaged_field_is_refused_in_one_line_by_every_reader_or_read_as_valid_by_all(
        fixtures, tmp_path_factory, file_type, data):
    pristine, clean_codes = fixtures
    top = tmp_path_factory.getbasetemp() / f"fuzz-{file_type.replace(' ', '-')}"

    def choose(options, label):
        return data.draw(st.sampled_from(options), label=label)
    rel = choose(probe.FILES[file_type][0], "file")
    what, outcomes, verdict = probe.file_case(str(top), pristine, CLI, rel, choose, clean_codes)
    key = (file_type, "refused" if {"refused", "different"} & set(outcomes.values()) else
           next(iter(outcomes.values())))
    OUTCOMES[key] = OUTCOMES.get(key, 0) + 1
    assert verdict == "ok", (rel, what, outcomes)


class _Result:
    """What the judge reads of a CliRunner result."""

    def __init__(self, exit_code, output, exception=None):
        self.exit_code, self.output = exit_code, output
        self.exception = exception if exception is not None else SystemExit(exit_code)


def test_the_judge_fails_every_way_of_breaking_the_promise():
    judge, names = probe.outcome, ["index.json", "/x/run"]
    line = "Error: /x/run/index.json is not a valid gmmdiff file: ...\n"
    assert judge(_Result(2, line), [], {}, {}, names, 0) == "refused"
    assert judge(_Result(2, line), [], {"a": b"1"}, {"a": b"2"}, names, 0) == "wrote then refused"
    assert judge(_Result(1, "", KeyError("configs")), [], {}, {}, names, 0) == "traceback"
    assert judge(_Result(2, "Error: list index out of range\n"), [], {}, {}, names, 0) == \
        "refused naming no file"
    assert judge(_Result(2, line + line), [], {}, {}, names, 0) == "not one line"
    assert judge(_Result(0, "table\n"), ["overflow"], {}, {"fig": b""}, names, 0) == \
        "accepted with warnings"
    assert judge(_Result(0, "table\n"), [], {}, {"fig": b""}, names, 0) == "accepted"
    assert judge(_Result(0, "table\n"), [], {}, {}, names, -1) == "accepted silently"
    different = "Error: /x/run holds a run with a different configuration (index.json differs in: x)\n"
    assert judge(_Result(2, different), [], {}, {}, names, 0) == "different"


def test_an_index_without_its_sizes_is_refused_by_train_and_plot(fixtures, tmp_path_factory):
    pristine, clean_codes = fixtures
    top = str(tmp_path_factory.getbasetemp() / "fuzz-judge")
    picks = {"file": "run/index.json", "field": ("complete",), "kind": "missing"}
    what, outcomes, verdict = probe.file_case(top, pristine, CLI, "run/index.json",
                                              lambda options, label: picks[label], clean_codes)
    assert what == "missing at complete" and verdict == "ok"
    assert outcomes == {"train": "refused", "plot run": "refused"}


@pytest.fixture(scope="module", autouse=True)
def report_outcomes():
    """With GMMDIFF_FUZZ_EXAMPLES set, print per file type how the damaged copies ended."""
    yield
    if _N:
        for (kind, verdict), n in sorted(OUTCOMES.items()):
            print(f"fuzz {kind}: {n} {verdict}")
