"""Sphinx configuration of gmmdiff's documentation site.

Built in CI with warnings as errors (``.ci/run``)::

    sphinx-build -W --keep-going -b html docs build/docs

The four commands of ``bin/`` are documented by sphinx-click from the click objects
themselves; the scripts have no ``.py`` suffix, so they are loaded here into one
module, ``gmmdiff_scripts``, that the ``.. click::`` directives name.
"""
import importlib.machinery
import importlib.util
import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import gmmdiff  # noqa: E402


def _load_scripts():
    module = types.ModuleType("gmmdiff_scripts")
    module.__doc__ = "The click commands of bin/, loaded for sphinx-click."
    for name in ("gmmdiff-train", "gmmdiff-sweep", "gmmdiff-predict", "gmmdiff-plot"):
        path = os.path.join(ROOT, "bin", name)
        loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), path)
        spec = importlib.util.spec_from_loader(loader.name, loader)
        script = importlib.util.module_from_spec(spec)
        loader.exec_module(script)
        setattr(module, name.split("-", 1)[1], script.main)
    sys.modules["gmmdiff_scripts"] = module


_load_scripts()

project = "gmmdiff"
author = "The gmmdiff developers"
copyright = "2026, The gmmdiff developers"
release = version = gmmdiff.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_click",
]

exclude_patterns = ["_build"]
root_doc = "index"
default_role = "literal"        # `x` in a docstring is code, as in the click help texts
smartquotes = False             # "--model" stays two hyphens, quotes stay straight
html_theme = "alabaster"
html_static_path = []
html_theme_options = {"description": "memorization vs generalization in diffusion denoisers",
                      "fixed_sidebar": False}

# autodoc: signatures as written, members in source order
autodoc_member_order = "bysource"
autodoc_typehints = "none"

# numpydoc renders the docstrings' Parameters / Returns / Attributes sections; the
# class member tables it adds would duplicate the members autodoc lists
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Cross-references must resolve: every :func:, :class:, :mod: of the documented
# docstrings points at a page of this site.
nitpicky = True
nitpick_ignore = []
nitpick_ignore_regex = []


def _quiet_on_layout(app, env, node, contnode):
    """The module index (layout.rst) shows each module's docstring, which names the
    module's private helpers; those have no page of their own, so a reference to one
    renders as code there instead of failing the build. Every other page stays
    nitpicky."""
    if node.get("refdoc") == "layout" and node.get("refdomain") == "py":
        return contnode
    return None


def setup(app):
    app.connect("missing-reference", _quiet_on_layout)
