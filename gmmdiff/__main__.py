"""``python -m gmmdiff``: what is installed and where to start -- the version, the four
commands and where the documentation is.

gmmdiff's work is done by its four commands (``gmmdiff-train``, ``gmmdiff-sweep``,
``gmmdiff-predict``, ``gmmdiff-plot``, each with ``--help``) and by the package in
Python; ``python -m gmmdiff`` only points to them (``--version``: the version alone).
Anything else it is given is refused in one line, exit status 2.
"""
import os
import shutil
import sys
import sysconfig

from gmmdiff.version import __version__

COMMANDS = (
    ("gmmdiff-train", "train every model size of one configuration (without options: the "
                      "built-in job)"),
    ("gmmdiff-sweep", "train a grid of configurations and measure each one's transition "
                      "(--preset; --summary DIR tabulates a sweep)"),
    ("gmmdiff-predict", "the theory's predicted transition for any N, d, K, without "
                        "training; --fit DIR fits it on a sweep"),
    ("gmmdiff-plot", "the figures of a run or a sweep"),
)


def docs_location():
    """Where the documentation of this installation is: the ``docs/`` of the checkout
    gmmdiff runs from or was installed from, with the command that builds it, or a
    sentence saying it lives in the source checkout."""
    from gmmdiff.backend import installed_from
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [here, installed_from()[0]]
    for root in candidates:
        if root and os.path.isfile(os.path.join(root, "docs", "index.rst")):
            docs = os.path.join(root, "docs")
            return (f"{docs} (a Sphinx site: pip install -e '{root}[docs]' && sphinx-build "
                    f"-b html {docs} {os.path.join(root, 'build', 'docs')}); start with "
                    f"{os.path.join(root, 'README.rst')}")
    return "docs/ of the gmmdiff source checkout (README.rst there is the front page)"


def overview():
    """The text ``python -m gmmdiff`` prints: the version, the commands (and where they
    are when they are not on PATH), Python's entry points and the documentation."""
    width = max(len(name) for name, _ in COMMANDS)
    lines = [f"gmmdiff {__version__}: when do Gaussian-mixture diffusion denoisers memorize "
             "their training data?", "", "Commands (each with --help):"]
    lines += [f"  {name:<{width}}  {what}" for name, what in COMMANDS]
    missing = [name for name, _ in COMMANDS if shutil.which(name) is None]
    if missing:
        scripts = sysconfig.get_path("scripts")
        lines += ["", f"({', '.join(missing)} not on PATH: they are installed in {scripts}; "
                      "activate the environment gmmdiff was installed into, or add that "
                      "directory to PATH)"]
    lines += ["", "In Python: import gmmdiff; gmmdiff.load_run(RUN_DIR), "
                  "gmmdiff.load_sweep(SWEEP_DIR), gmmdiff.predict_transition(N, d, K, ...)",
              f"Documentation: {docs_location()}"]
    return "\n".join(lines)


def main(argv=None):
    """Print :func:`overview` (no arguments), the version (``--version``) or the
    overview with a usage line (``-h``/``--help``); anything else is refused. Returns
    the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(overview())
        return 0
    if argv == ["--version"]:
        print(f"gmmdiff {__version__}")
        return 0
    if argv[0] in ("-h", "--help") and len(argv) == 1:
        print("usage: python -m gmmdiff [--version]\n\n" + overview())
        return 0
    print(f"Error: python -m gmmdiff takes no arguments but --version (got {' '.join(argv)!r}); "
          f"the commands are {', '.join(name for name, _ in COMMANDS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
