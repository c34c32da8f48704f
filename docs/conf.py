"""Sphinx configuration of gmmdiff's documentation site.

Built in CI with warnings as errors (``.ci/run``)::

    sphinx-build -W --keep-going -b html docs build/docs

The four commands of ``bin/`` are documented by sphinx-click from the click objects
themselves; the scripts have no ``.py`` suffix, so they are loaded here into one
module, ``gmmdiff_scripts``, that the ``.. click::`` directives name.

The gallery (``docs/auto_examples``, generated and not committed) is built by
sphinx-gallery from the scripts in ``examples/``, each executed at every build: its
figures and printed output are what the scripts produce today. An example that trains
does so in a temporary directory, in seconds (``examples/GALLERY_HEADER.rst``).
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
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build"]
GALLERY_DIR = "auto_examples"   # generated from ../examples by sphinx-gallery (.gitignore)
root_doc = "index"
default_role = "literal"        # `x` in a docstring is code, as in the click help texts
smartquotes = False             # "--model" stays two hyphens, quotes stay straight
html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_css_files = ["gmmdiff.css"]
html_title = f"gmmdiff {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# the left sidebar lists a section's pages: pages without subpages get the full width
html_sidebars = {page: [] for page in ("index", "getting_started", "files", "science", "performance",
                                       "reliability", "cli", "api", "changelog")}

# sphinx-gallery: every examples/plot_*.py runs at every build, in file-name order
# (the numbers give the reading order); a failing example fails the build
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": GALLERY_DIR,
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "write_computation_times": False,
    "show_memory": False,
    "min_reported_time": 0,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "capture_repr": (),         # printed output only, not the value of a cell's last line
}

# autodoc: signatures as written, members in source order
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_preserve_defaults = True    # xp=np, not xp=<module 'numpy' from '/.../numpy/__init__.py'>

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
