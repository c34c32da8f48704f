"""LICENSE, CITATION.cff and setup.py's metadata agree with the package."""
import os
import re

import setuptools

import gmmdiff

from test_cli import ROOT


def setup_kwargs(monkeypatch):
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    path = os.path.join(ROOT, "setup.py")
    exec(compile(open(path).read(), path, "exec"), {"__file__": path, "__name__": "__main__"})
    return captured


def test_setup_metadata(monkeypatch):
    kw = setup_kwargs(monkeypatch)
    assert kw["version"] == gmmdiff.__version__ and kw["license"] == "MIT"
    assert kw["author"] and kw["url"].startswith("https://")
    assert all(u.startswith("https://") for u in kw["project_urls"].values())
    assert sorted(os.path.basename(s) for s in kw["scripts"]) == [
        "gmmdiff-plot", "gmmdiff-predict", "gmmdiff-sweep", "gmmdiff-train"]


def test_license_and_citation():
    assert open(os.path.join(ROOT, "LICENSE")).read().startswith("MIT License\n")
    cff = open(os.path.join(ROOT, "CITATION.cff")).read()
    assert re.search(r"^version: (\S+)$", cff, re.M).group(1) == gmmdiff.__version__
    assert re.search(r"^cff-version: 1\.2\.0$", cff, re.M)
    assert "On the Edge of Memorization in Diffusion Models" in cff and "2508.17689" in cff
    for name in ("Buchanan", "Pai", "Ma", "De Bortoli"):
        assert f"family-names: {name}\n" in cff


def test_setup_packages_every_subpackage_and_every_shipped_asset(monkeypatch):
    """What a wheel holds: every folder of gmmdiff with an __init__.py, and every file of
    gmmdiff/assets matched by package_data (the wheel install itself is tried by hand
    and in the release checklist: it takes a minute)."""
    import fnmatch
    kw = setup_kwargs(monkeypatch)
    pkg = os.path.dirname(gmmdiff.__file__)
    on_disk = []
    for root, _, files in os.walk(pkg):
        if "__init__.py" in files:
            rel = os.path.relpath(root, pkg)
            on_disk.append("gmmdiff" + ("" if rel == "." else "." + rel.replace(os.sep, ".")))
    on_disk.sort()
    assert sorted(kw["packages"]) == on_disk
    assert {"gmmdiff.model", "gmmdiff.experiments.sweep", "gmmdiff.io"} <= set(on_disk)
    assets = [os.path.relpath(os.path.join(root, f), pkg)
              for root, _, files in os.walk(os.path.join(pkg, "assets")) for f in files]
    assert assets
    for path in assets:
        assert any(fnmatch.fnmatch(path, g) for g in kw["package_data"]["gmmdiff"]), path
