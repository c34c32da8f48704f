#!/usr/bin/env bash
# What a first run on a real GPU must check, in one command, in under 10 minutes
# (each step has a time limit, cut to what is left of a 570 s budget), writing every
# log and number to $OUT (default ./gpu-check) and a summary line per step to
# $OUT/summary.txt:
#
#   device     nvidia-smi, CuPy and CUDA versions; the backend probe (a first kernel and
#              a first matrix product; names a missing CUDA library)
#   values     a few training steps at the paper's shape (d, K, N) = (50, 12, 200), 100
#              draws, 20 sizes: cupy plain and fused against numpy float64, float64 and
#              float32, the same hash draws; max relative differences of losses,
#              gradients, parameters (benchmarks/gpu_values.py -> values.json)
#   tests      the kernel, device-arithmetic (FMA, -ftz tolerances), cupy-path and GPU
#              readiness tests on the device (GMMDIFF_CUPY_STANDIN=0: real CuPy)
#   blocking   the kernel tests and a small training run (plain, fused, and momentum
#              with minibatches) again with CUDA_LAUNCH_BLOCKING=1 (an error is
#              reported at the launch that made it); the tests step runs gradient
#              descent, momentum and minibatches against numpy on the device too
#   memcheck, racecheck
#              compute-sanitizer over the kernel tests, where the tool exists
#   kill       gmmdiff-train on cupy killed with SIGKILL at random moments and resumed:
#              every result bit for bit equal to an uninterrupted run
#   bench      the training-step benchmark at the paper's first shape: plain and fused,
#              float64 and float32, ms/step (device and host), model-steps/s, peak pool
#              memory across draw-chunk boundaries (-> bench.json), and the peak GPU
#              memory of the whole script (nvidia-smi sampled every 0.2 s)
#
# CUPY_TF32 is unset: float32 products run in float32, not TF32.
#
#     PYTHONPATH=. OUT=gpu-check bash benchmarks/gpu_check.sh
#     GPU_CHECK_STANDIN=1 bash benchmarks/gpu_check.sh   # dry run on the CuPy stand-in, small shapes
set -u
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
unset CUPY_TF32
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "${GPU_CHECK_STANDIN:-0}" = 1 ]; then     # everything on the stand-in, small shapes
    export PYTHONPATH="$ROOT/tests/cupy_standin:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    export GMMDIFF_CUPY_STANDIN=1
    VALUES_ARGS="--small"; BENCH_ARGS="--steps 4 --repeats 1"
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    export GMMDIFF_CUPY_STANDIN=0
    VALUES_ARGS=""; BENCH_ARGS="--paper --first-shape --steps 20 --repeats 2"
fi
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-570}

step() {   # step NAME LIMIT_SECONDS COMMAND...: run with a time limit, log, summarize
    local name=$1 limit=$2 left rc t0
    shift 2
    left=$(( START + BUDGET - $(date +%s) ))
    if [ "$left" -lt 5 ]; then
        echo "$name: skipped (the 10-minute budget is spent)" | tee -a "$OUT/summary.txt"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    t0=$(date +%s)
    timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    local verdict=ok
    [ "$rc" -ne 0 ] && verdict="FAILED (exit $rc$( [ "$rc" -eq 124 ] && echo ', time limit'))"
    echo "$name: $verdict, $(( $(date +%s) - t0 )) s; $(grep -v '^\s*$' "$OUT/$name.log" | tail -1)" \
        | tee -a "$OUT/summary.txt"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  "$PY" -c "import cupy, numpy, sys; print('python', sys.version.split()[0], 'cupy', cupy.__version__, 'numpy', numpy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())"
  command -v compute-sanitizer || echo "compute-sanitizer: not found"; } > "$OUT/device.txt" 2>&1
SAMPLER=
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/gpu_memory_mib.txt" 2>/dev/null &
    SAMPLER=$!
fi
trap '[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null' EXIT

step probe 60 "$PY" -c "from gmmdiff.backend import get_xp; get_xp('cupy'); print('probe passed: a kernel and a matmul ran')"
step values 150 "$PY" "$ROOT/benchmarks/gpu_values.py" $VALUES_ARGS --json "$OUT/values.json"
step tests 150 "$PY" -m pytest -q -p no:cacheprovider "$ROOT/tests/test_kernels.py" \
    "$ROOT/tests/test_device_arithmetic.py" "$ROOT/tests/test_gpu_readiness.py" "$ROOT/tests/test_cupy_standin.py"
step blocking 90 env CUDA_LAUNCH_BLOCKING=1 bash -c '"$0" -m pytest -q -p no:cacheprovider "$1/tests/test_kernels.py" &&
    for f in "" --fused-kernels "--optimizer momentum --lr 1e-3 --init prior --batch-size 7"; do
        "$0" "$1/bin/gmmdiff-train" --backend cupy -d 5 -K 2 -N 20 -M 5,20 --steps 300 \
        --noise-draws 4 --eval-samples 20 --quiet $f --out "$2/blocking-run${f// /}" || exit 1; done' "$PY" "$ROOT" "$OUT"
if command -v compute-sanitizer > /dev/null; then
    for tool in memcheck racecheck; do
        step "$tool" 75 compute-sanitizer --tool "$tool" --error-exitcode 9 "$PY" -m pytest -q -x \
            -p no:cacheprovider "$ROOT/tests/test_kernels.py"
    done
else
    echo "memcheck, racecheck: skipped (compute-sanitizer not found)" | tee -a "$OUT/summary.txt"
fi
step kill 90 "$PY" "$ROOT/benchmarks/kill_harness.py" --kills 4 --what train --backend cupy
step bench 200 "$PY" "$ROOT/benchmarks/bench_train_step.py" --backend cupy $BENCH_ARGS --no-loop --fused \
    --json "$OUT/bench.json"
[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
if [ -s "$OUT/gpu_memory_mib.txt" ]; then
    echo "peak GPU memory used (MiB, whole script): $(sort -n "$OUT/gpu_memory_mib.txt" | tail -1)" | tee -a "$OUT/summary.txt"
fi
echo "total: $(( $(date +%s) - START )) s; logs and numbers in $OUT" | tee -a "$OUT/summary.txt"
cat "$OUT/values.log" "$OUT/bench.log" 2>/dev/null | grep -v '^#' || true
! grep -q FAILED "$OUT/summary.txt"
