#!/usr/bin/env bash
# Every GPU check of gmmdiff in one command, for a machine with CuPy and a CUDA GPU:
# the cupy-parametrized tests (backend equality, device draws, training on cupy equal to
# numpy with the same draws, the fused kernels against the array program, NVRTC builds),
# the training-step benchmark at the paper's shapes (float64 and float32, plain and
# fused) and at the default shape, launches per step and per chunk (counted by the CuPy
# stand-in), and the peak GPU memory of the whole run (nvidia-smi sampled every 0.2 s).
# Logs and numbers go to $OUT (default: ./gpu-check); a summary is printed at the end.
#
#     PYTHONPATH=. bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-.}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.txt" 2>&1
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" >> "$OUT/device.txt" 2>&1
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/gpu_memory_mib.txt" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT
GMMDIFF_CUPY_STANDIN=0 python3 -m pytest -q -p no:cacheprovider tests -k "cupy or kernels or nvrtc" \
    2>&1 | tee "$OUT/tests.log" | tail -5
python3 benchmarks/bench_train_step.py --backend cupy --paper --steps 20 --repeats 3 --no-loop --fused \
    2>&1 | tee "$OUT/bench_paper.log"
python3 benchmarks/bench_train_step.py --backend cupy --paper --steps 20 --repeats 3 --no-loop --fused \
    --seeds 4 --dtype float64 2>&1 | tee "$OUT/bench_paper_4seeds.log"
python3 benchmarks/bench_train_step.py --backend cupy --steps 200 --repeats 3 --fused \
    2>&1 | tee "$OUT/bench_small.log"
python3 benchmarks/bench_train_step.py --launches --seeds 4 2>&1 | tee "$OUT/launches.log"
kill $SAMPLER 2>/dev/null
echo "peak GPU memory used (MiB): $(sort -n "$OUT/gpu_memory_mib.txt" | tail -1)" | tee "$OUT/summary.txt"
grep -E "passed|failed" "$OUT/tests.log" | tail -1 | tee -a "$OUT/summary.txt"
