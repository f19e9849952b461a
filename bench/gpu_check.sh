#!/usr/bin/env bash
# The prepared GPU check of pre-training, run as one script when a GPU is lent (about 6 minutes on one H100):
#
#     bash bench/gpu_check.sh RUN_DIR OUT_DIR     # RUN_DIR holds tokenizer/ and data/ from `llmlab data prepare`
#
# 1. the machine: GPU name, torch version, llmlab's view of the machine;
# 2. bench/bench_throughput.py (synthetic tokens, bf16 autocast): depth 12 eager, depth 12 compiled, depth 20
#    compiled, each printing tokens/s and MFU against the card's datasheet dense bf16 peak;
# 3. a real `llmlab pretrain` of depth 12 on RUN_DIR's shards (bf16 autocast, torch.compile, fused attention),
#    30 M tokens, so the whole trainer path (data loader, Muon, evaluation, checkpoint, zip view) runs on CUDA.
# Every step has its own time limit so that one hang still leaves the others' figures; OUT_DIR gets the log and the
# pretraining metrics.
set -u
RUN=${1:-runs/default}
OUT=${2:-bench/out/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  $PY -m llmlab.hardware
  for size in "--depth 12 --seq_len 1024 --batch_size 32" \
              "--depth 12 --seq_len 1024 --batch_size 32 --compile" \
              "--depth 20 --seq_len 2048 --batch_size 16 --compile"; do
    echo "== bench_throughput $size"
    timeout 200 $PY bench/bench_throughput.py --device cuda --steps 20 $size
  done
  echo "== llmlab pretrain, depth 12, 30 M tokens"
  timeout 300 $PY -m llmlab pretrain --run_dir "$RUN" --train.bookkeeping.device cuda --train.depth 12 --train.seq_len 1024 \
    --train.bookkeeping.compile true --train.tokens 30000000 --train.bookkeeping.eval_every 100 --train.bookkeeping.log_every 10
  cp "$RUN/pretrain/metrics.jsonl" "$OUT/pretrain_metrics.jsonl"
  date -u
} 2>&1 | tee "$OUT/gpu_check.log"
