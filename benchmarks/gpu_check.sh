#!/usr/bin/env bash
# Every GPU check of gmmdiff in one command, for a machine with CuPy and a CUDA GPU:
# the cupy-parametrized tests (backend equality, device draws, training on cupy equal to
# numpy with the same draws, the fused kernels against the array program) and the
# training-step benchmark at the paper's shapes, float64 and float32, plain and fused.
# Logs go to $OUT (default: ./gpu-check).
#
#     PYTHONPATH=. bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-.}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.txt" 2>&1
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" >> "$OUT/device.txt" 2>&1
python3 -m pytest -q -p no:cacheprovider tests -k cupy 2>&1 | tee "$OUT/tests.log" | tail -5
python3 benchmarks/bench_train_step.py --backend cupy --paper --steps 20 --repeats 3 --no-loop --fused \
    2>&1 | tee "$OUT/bench_paper.log"
python3 benchmarks/bench_train_step.py --backend cupy --steps 200 --repeats 3 --fused \
    2>&1 | tee "$OUT/bench_small.log"
