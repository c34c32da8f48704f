"""What a new user hit on a first try (issue 30): each message says what to do next,
in the terms of this installation."""
import json
import os

import pytest
from click.testing import CliRunner

from gmmdiff import backend
from test_cli import ROOT, SMALL, load_script, train_cli


def test_cupy_hint_names_the_checkout_not_a_package_index(monkeypatch, tmp_path):
    """gmmdiff is installed from a checkout: `pip install 'gmmdiff[cuda12]'` would ask
    PyPI for a package it does not have. The hint names the checkout pip recorded
    (editable or not), or '.' with where to run it."""
    class Dist:
        def __init__(self, text):
            self.text = text

        def read_text(self, name):
            return self.text if name == "direct_url.json" else None

    from importlib import metadata
    url = {"url": "file://" + ROOT, "dir_info": {"editable": True}}
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(json.dumps(url)))
    assert backend.install_command("cuda12") == f"pip install -e '{ROOT}[cuda12]'"
    url = {"url": "file://" + ROOT, "dir_info": {}}
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(json.dumps(url)))
    assert backend.install_command("cuda13") == f"pip install '{ROOT}[cuda13]'"
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(None))
    assert backend.install_command("cuda12") == "pip install '.[cuda12]' (in the gmmdiff checkout)"


def test_unavailable_cupy_hint_is_one_line_with_this_installation(monkeypatch, tmp_path):
    if backend.cupy_available():
        monkeypatch.setattr(backend, "_cupy", None)
        monkeypatch.setattr(backend, "_CUPY_IMPORT_ERROR", "ModuleNotFoundError: No module named 'cupy'")
    result = CliRunner().invoke(train_cli, SMALL + ["--backend", "cupy", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert backend.install_command("cuda12") in result.output
