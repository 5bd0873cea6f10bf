#!/usr/bin/env bash
# The GPU measurements of docs/performance.md in one run (a few minutes on
# an H100): ViViT-B Model 2 bf16 training throughput and MFU at the K400
# config's shape, then the four variants against HuggingFace ViViT and
# TimeSformer, then the memory plan of one training step against
# torch.cuda.max_memory_allocated.
#
#   bash tools/analysis_tools/gpu_benchmark.sh [OUT_DIR]   (default work_dirs/gpu_benchmark)
#
# PYTHON overrides the interpreter; PEAK_TFLOPS the bf16 datasheet peak used
# for MFU (known automatically for A100, H100 and H200).
set -euo pipefail
OUT=${1:-work_dirs/gpu_benchmark}
PY=${PYTHON:-python}
PEAK=()
if [ -n "${PEAK_TFLOPS:-}" ]; then PEAK=(--peak-tflops "$PEAK_TFLOPS"); fi
mkdir -p "$OUT"
if ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu_benchmark.sh: no CUDA device visible to $PY (torch.cuda.is_available() is False)." >&2
    exit 1
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit \
    --format=csv | tee "$OUT/nvidia_smi.csv" || true

# 1. ViViT-B/16x2 Model 2 as configs/vivit_m2_k400.py builds it (32 frames at
#    224, 12 spatial + 4 temporal layers): fp32 and bf16 forward/training
#    throughput, bf16 utilisation against the measured bf16 GEMM, and MFU.
"$PY" tools/analysis_tools/benchmark.py configs/vivit_m2_k400.py --layers 0 \
    --device cuda --batch 8 --warmup 3 --iters 10 --no-compare --no-cp \
    "${PEAK[@]}" --out-dir "$OUT/m2_k400"

# 2. The four variants against frames (ViViT-B width, 4 layers, 224),
#    HuggingFace VivitModel and MMAction2's TimeSformer side by side,
#    activation checkpointing and bf16 (add --compile for torch.compile;
#    it compiles every variant first).
"$PY" tools/analysis_tools/benchmark.py --device cuda --frames 8 16 32 \
    --img-size 224 --batch 4 --layers 4 --compare-frames 16 --warmup 3 \
    --iters 10 "${PEAK[@]}" --out-dir "$OUT/variants"

# 3. The memory plan against the GPU (docs/memory.md): ViViT-B Model 2 at
#    32 x 224, bf16, at the largest batch planned for this GPU's memory;
#    prints torch.cuda.max_memory_allocated next to the planned peak.
GIB=$("$PY" -c 'import torch; print(torch.cuda.get_device_properties(0).total_memory / 2**30)')
N=$("$PY" tools/analysis_tools/plan_memory.py configs/vivit_m2_k400.py \
    --precision bf16 --gpu-mem "$GIB" --json \
    | "$PY" -c 'import json, sys; print(list(json.load(sys.stdin)["max_batch"].values())[0]["without_cp"])')
echo "Planned largest batch for $GIB GiB (bf16, without with_cp): $N"
"$PY" tools/analysis_tools/plan_memory.py configs/vivit_m2_k400.py \
    --precision bf16 --device cuda --batch-size "$N" --measure \
    | tee "$OUT/memory_plan.md"

echo "Wrote $OUT/m2_k400/benchmark.md, $OUT/variants/benchmark.md and $OUT/memory_plan.md"
