#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md: run once on an H100/H200-class GPU (a few minutes).
#   bash scripts/gpu_benchmark.sh            # results in ${OUT:-runs/gpu-benchmark}/
# Then paste device.txt and the JSON lines into docs/benchmarks.md ("GPU" section).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-benchmark}
mkdir -p "$OUT"
PY=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

$PY - <<'PY' | tee "$OUT/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name())
PY

# 1. Correctness of the CUDA-only switches (CUDA graph, compile, bf16) against plain fp32: ~1 min.
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_speed.py -k "cuda_fast_path" 2>&1 | tail -5 | tee "$OUT/cuda_tests.txt"

# 2. Throughput, ours vs the reference, same process: dcgan-64 b128 and b1024, mlp b64 (~2-4 min,
#    most of it torch.compile). Each command prints one JSON line last.
timeout 420 $PY -m gancv benchmark throughput --device cuda --json 2>"$OUT/throughput.log" | tail -1 | tee "$OUT/throughput.json"

# 3. The same without torch.compile (what compile adds, and a fallback figure if it fails).
timeout 240 $PY -m gancv benchmark throughput --device cuda --json --set compile=off 2>"$OUT/throughput_nocompile.log" \
  | tail -1 | tee "$OUT/throughput_nocompile.json"

# 4. Peak memory with gradient checkpointing of the generator (compare peak_mem_mb with step 3).
timeout 120 $PY -m gancv benchmark throughput --device cuda --model dcgan --batch 1024 --json --set compile=off \
  --set grad_checkpoint=true 2>"$OUT/throughput_ckpt.log" | tail -1 | tee "$OUT/throughput_ckpt.json"

# 5. Two-process smoke of torchrun on one GPU host (NCCL needs one GPU per process: skipped with one).
if [ "$($PY -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  timeout 240 $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m gancv train --preset dcgan-digits \
    steps=200 --out "$OUT/ddp-run" 2>&1 | tail -3 | tee "$OUT/ddp.txt"
fi
echo "done: $OUT"
