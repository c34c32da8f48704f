"""README's snippets run as written, and its example commands are accepted by the scripts."""
import contextlib
import io
import os
import re
import shlex

import click
import pytest

from test_cli import ROOT, load_script

README = open(os.path.join(ROOT, "README.rst"), encoding="utf-8").read()


def section(title):
    start = README.index(f"\n{title}\n{'-' * len(title)}\n")
    nxt = re.search(r"\n[^\n]+\n-{3,}\n", README[start + len(title) + 2 * len(title) + 3:])
    return README[start: start + len(title) + 2 * len(title) + 3 + (nxt.start() if nxt else len(README))]


def python_blocks(text):
    """The bodies of the ``.. code-block:: python`` blocks of ``text``, dedented."""
    blocks = []
    for m in re.finditer(r"\.\. code-block:: python\n\n((?:(?:    .*)?\n)+)", text):
        lines = m.group(1).splitlines()
        blocks.append("\n".join(ln[4:] for ln in lines).strip() + "\n")
    return blocks


def test_using_the_library_snippets_run_in_order(tmp_path, monkeypatch):
    blocks = python_blocks(section("Using the library"))
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace, out = {}, io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, "README.rst", "exec"), namespace)
    printed = out.getvalue()
    assert re.search(r"x0 error: theta\* \d+\.\d, theta_mem \d+\.\d", printed), printed
    assert re.search(r"M\*/N: naive weighting [01]\.\d\d, fitted weighting 0\.\d\d", printed)
    assert "RunResults(" in printed and "N12-d4-K2-s0 " in printed
    run = namespace["run"]
    assert list(run.M) == [3, 6, 9, 12] and namespace["means"].shape == (12, 4)
    assert namespace["per_t"].shape == (4, 26)
    # what the comment says: the smallest model generalizes, M = N memorizes
    assert run.ratio[0] <= 0.2 and run.ratio[-1] == 1.0
    assert len(namespace["sweep"].rows) == 2


def example_commands():
    """Every ``gmmdiff-*`` command line of README (continuations joined, comments and
    a leading ``$`` dropped)."""
    lines = README.replace("\\\n", " ").splitlines()
    out = []
    for ln in lines:
        s = ln.strip()
        if s.startswith("$ "):
            s = s[2:]
        for part in re.split(r"&&", s):
            part = part.strip()
            if re.match(r"gmmdiff-(train|sweep|predict|plot)\b", part):
                out.append(part.split(" #")[0].strip())
    return out


@pytest.mark.parametrize("line", example_commands())
def test_readme_commands_are_accepted(line, tmp_path, monkeypatch):
    """Each example's options exist and its values pass the scripts' checks (parsed by
    click, not run: several are hour-long or GPU jobs). The files and directories the
    example reads are made empty first, as the commands before it would."""
    words = shlex.split(line.replace("${SLURM_ARRAY_TASK_ID}", "0"))
    monkeypatch.chdir(tmp_path)
    for w in words[1:]:
        if "/" in w and not w.startswith("-"):
            if re.search(r"\.(json|gz|npy|npz)$", w):
                os.makedirs(os.path.dirname(w), exist_ok=True)
                open(w, "w").close()
            elif not w.startswith("/"):
                os.makedirs(w, exist_ok=True)
    main = load_script(words[0])
    with main.make_context(words[0], words[1:]) as ctx:
        assert isinstance(ctx, click.Context)


def test_readme_shows_commands_of_every_script():
    names = {ln.split()[0] for ln in example_commands()}
    assert names == {"gmmdiff-train", "gmmdiff-sweep", "gmmdiff-predict", "gmmdiff-plot"}
