"""The package's version (one place: setup.py and every file gmmdiff writes read it here)."""
__version__ = "0.7.0"
