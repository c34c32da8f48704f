"""Installation script for gmmdiff."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(HERE, "gmmdiff", "version.py"), encoding="utf-8") as fh:
        return re.search(r'^__version__ = "([^"]+)"', fh.read(), re.M).group(1)


BIN = os.path.join(HERE, "bin")
SCRIPTS = [os.path.join("bin", name) for name in sorted(os.listdir(BIN))
           if name.startswith("gmmdiff-")] if os.path.isdir(BIN) else []

setup(
    name="gmmdiff",
    version=read_version(),
    description=("Memorization and generalization of Gaussian-mixture diffusion "
                 "denoisers: a NumPy/CuPy laboratory"),
    long_description=open(os.path.join(HERE, "README.rst"), encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    packages=find_packages(exclude=("tests", "benchmarks")),
    # the shipped results: each experiment's summary, its analyses and figures
    package_data={"gmmdiff": ["assets/*.npy", "assets/*/*.json", "assets/*/*.png",
                              "assets/*/*/*.json"]},
    python_requires=">=3.10",
    install_requires=["numpy>=1.22", "scipy>=1.8", "click>=8.0", "matplotlib>=3.5"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.50"],
        # the documentation site (docs/): Sphinx, numpydoc for the docstrings, sphinx-click
        # for the four commands, sphinx-gallery for the executed examples of examples/,
        # the PyData theme; CI builds it with warnings as errors
        "docs": ["sphinx>=7", "numpydoc>=1.6", "sphinx-click>=5", "sphinx-gallery>=0.17",
                 "pydata-sphinx-theme>=0.15"],
        # NVRTC for tests/test_nvrtc.py (compiles the CUDA kernels without a GPU)
        "nvrtc": ["cupy-cuda12x", "nvidia-cuda-nvrtc-cu12"],
        # CuPy with the CUDA toolkit libraries as wheels ([ctk]: cuda-toolkit[cublas,
        # cudart, nvrtc, ...]), so a machine with only the NVIDIA driver (cloud VMs,
        # slim containers) runs; CuPy 14 is the first with the [ctk] extra. Where a CUDA
        # toolkit is installed system-wide, the "-system" extras bring CuPy alone.
        "cuda12": ["cupy-cuda12x[ctk]>=14"],
        "cuda13": ["cupy-cuda13x[ctk]>=14"],
        "cuda12-system": ["cupy-cuda12x"],
        "cuda13-system": ["cupy-cuda13x"],
    },
    scripts=SCRIPTS,
    license="MIT",
    license_files=["LICENSE"],
    author="The gmmdiff developers",
    # the package has no public repository yet: the URLs are the paper's
    url="https://arxiv.org/abs/2508.17689",
    project_urls={"Paper (arXiv 2508.17689)": "https://arxiv.org/abs/2508.17689"},
    classifiers=["License :: OSI Approved :: MIT License", "Programming Language :: Python :: 3",
                 "Intended Audience :: Science/Research",
                 "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
