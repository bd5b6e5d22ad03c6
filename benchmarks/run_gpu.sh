#!/usr/bin/env bash
# The GPU suite in one go, for a lent CUDA machine that already has jax[cuda], optax, chex and torch:
#
#     OUT=bench_out/gpu bash benchmarks/run_gpu.sh
#
# 1. float32 tiny and medium (dispatch bound; the tiny target is >= 5x PyTorch eager), with the
#    first-call probe;
# 2. bfloat16 large (the target is >= 50% of the measured bf16 GEMM rate), torch.compile included;
# 3. float32 (TF32) large;
# 4. a few test files on the GPU (JAX_PLATFORMS=cuda), time-boxed.
# "large" runs LARGE_SCALE x its samples (6 batches would time launch latency, not the GPU).
# Each run's bench.json and bench.md land in $OUT as <run>.json/.md; all output also in $OUT/log.txt.
# DEVICE=cpu LARGE_SCALE=0.1 SCALE=0.05 checks the plumbing on a machine without a GPU.
set -uo pipefail
OUT=${OUT:-bench_out/gpu}
DEVICE=${DEVICE:-gpu}
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-1}
LARGE_SCALE=${LARGE_SCALE:-16}
RUN_TIMEOUT=${RUN_TIMEOUT:-200}
mkdir -p "$OUT"
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
log="$OUT/log.txt"

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1 || true
    python3 -c "import jax, optax, chex, torch; print('jax', jax.__version__, jax.devices(), 'optax', optax.__version__, 'chex', chex.__version__, 'torch', torch.__version__)"
} 2>&1 | tee -a "$log"

suite() {  # suite NAME ARGS...: one bench_peers.py run, its outputs copied to $OUT/NAME.{json,md}
    local name=$1
    shift
    local dir="/tmp/ffnn_jax_bench_$name"
    echo "== $name: $*" | tee -a "$log"
    timeout "$RUN_TIMEOUT" python3 benchmarks/bench_peers.py --device "$DEVICE" --rounds "$ROUNDS" --out "$dir" "$@" 2>&1 \
        | tee -a "$log"
    cp "$dir/bench.json" "$OUT/$name.json" 2>/dev/null
    cp "$dir/bench.md" "$OUT/$name.md" 2>/dev/null
}

suite f32 --configs tiny,medium --impls ffnn_jax,torch,flax --samples-scale "$SCALE"
suite bf16-large --configs large --dtype bfloat16 --impls ffnn_jax,torch,flax,torch_compile \
    --samples-scale "$LARGE_SCALE" --no-first-call
suite f32-large --configs large --impls ffnn_jax,torch,flax --samples-scale "$LARGE_SCALE" --no-first-call

if [ "$DEVICE" = gpu ]; then
    echo "== tests on the GPU" | tee -a "$log"
    JAX_PLATFORMS=cuda timeout 90 python3 -m pytest -p no:cacheprovider -n 4 -x \
        tests/test_backprop.py tests/test_optim.py tests/test_train.py 2>&1 | tail -n 25 | tee -a "$log"
fi
for name in f32 bf16-large f32-large; do
    [ -f "$OUT/$name.md" ] && { echo "== $name"; cat "$OUT/$name.md"; }
done
