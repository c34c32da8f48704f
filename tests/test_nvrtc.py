"""Every CUDA kernel of gmmdiff.engine.kernels compiles with NVRTC for the GPUs gmmdiff targets
(sm_80: A100; sm_90: H100/H200), in both working precisions, on machines without a GPU.

NVRTC needs no device when the architecture is given. The compiler comes from CuPy's
CUDA 12 wheel and NVIDIA's NVRTC wheel (``pip install -e '.[test,nvrtc]'``, which CI
does); it runs in a subprocess, away from the test suite's CuPy stand-in. Without those
wheels the test skips and says so; a kernel that does not compile fails it.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHS = ("sm_80", "sm_90")

SCRIPT = r"""
import json, sys
try:
    from cupy_backends.cuda.libs import nvrtc
    nvrtc.getVersion()
except Exception as exc:                                  # wheels missing or unusable
    print(json.dumps({"skip": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
from gmmdiff.engine import kernels

def compile_(src, name, arch):
    prog = nvrtc.createProgram(src, name + ".cu", (), ())
    try:
        nvrtc.compileProgram(prog, ("--gpu-architecture=" + arch, "--std=c++17"))
        return len(nvrtc.getCUBIN(prog)), None
    except nvrtc.NVRTCError:
        return 0, nvrtc.getProgramLog(prog)
    finally:
        nvrtc.destroyProgram(prog)

report = {"nvrtc": ".".join(map(str, nvrtc.getVersion())), "results": []}
for k in kernels.KERNELS:
    for ctype in ("double", "float"):
        for arch in sys.argv[1:]:
            size, log = compile_(k.source(ctype), k.name, arch)
            report["results"].append({"kernel": k.name, "type": ctype, "arch": arch,
                                      "cubin_bytes": size, "log": log})
# a broken kernel must fail to compile (the check is not vacuous)
report["broken"] = compile_('extern "C" __global__ void k(double* x) { x[0] = undeclared; }',
                            "broken", sys.argv[1])
print(json.dumps(report))
"""


def test_every_kernel_compiles_with_nvrtc_for_a100_and_h100():
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p and "cupy_standin" not in p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + paths))
    done = subprocess.run([sys.executable, "-c", SCRIPT, *ARCHS], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip("NVRTC not available (pip install -e '.[test,nvrtc]' installs it): "
                    + report["skip"])
    from gmmdiff.engine import kernels
    assert len(report["results"]) == len(kernels.KERNELS) * 2 * len(ARCHS)
    failed = [r for r in report["results"] if r["cubin_bytes"] == 0]
    assert not failed, "\n".join(f"{r['kernel']} ({r['type']}, {r['arch']}):\n{r['log']}"
                                 for r in failed)
    assert report["broken"][0] == 0 and "undeclared" in report["broken"][1]
