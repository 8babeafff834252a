#!/usr/bin/env bash
# GPU proof, for a machine with an NVIDIA GPU (run from anywhere; prints the key lines):
#   1. the train stage on one GPU (train.device: cuda), as `dvc repro` runs it;
#   2. evaluate and predict on that model with no GPU visible (CUDA_VISIBLE_DEVICES=);
#   3. DDP with NCCL, one process per GPU, when there are two or more;
#   4. the CUDA tests (tests/test_distributed_gpu.py), which skip on CPU-only machines.
# PYTHON picks the interpreter (default: python); it needs the project's dependencies with a
# CUDA build of torch. Takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PIPELINE_TRACKING=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
echo "usable CUDA devices: $gpus"
[ "$gpus" -ge 1 ] || { echo "no usable GPU: nothing to prove here" >&2; exit 1; }

cat > "$work/params.yaml" <<'YAML'
seed: 7
data: {kind: classification, n_samples: 6000, n_features: 50, n_classes: 3, test_size: 0.2, val_size: 0.1}
train: {epochs: 3, batch_size: 32, lr: 0.1, device: cuda, strategy: single}
YAML
stage_args() {  # the train stage's arguments, outputs under $work/$1
  echo --params "$work/$2" --data "$work/data" --checkpoint "$work/$1/checkpoint.pth" \
    --metrics "$work/$1/train.json" --plots "$work/$1/plots"
}
"$PYTHON" -m pipeline.stages.generate --params "$work/params.yaml" --out "$work/data"
# shellcheck disable=SC2046
"$PYTHON" -m pipeline.stages.train $(stage_args gpu params.yaml) 2>/dev/null
CUDA_VISIBLE_DEVICES= "$PYTHON" -m pipeline.stages.evaluate --params "$work/params.yaml" \
  --data "$work/data" --checkpoint "$work/gpu/checkpoint.pth" \
  --train-metrics "$work/gpu/train.json" --metrics "$work/gpu/eval.json" --plots "$work/gpu/plots"
echo "CPU-only evaluation of the GPU model: $(tr -d '\n ' < "$work/gpu/eval.json" | grep -o '"test_accuracy":[0-9.]*')"
printf '%s\n' "$(seq -s, 50 | sed 's/[0-9]*/0.1/g')" > "$work/points.csv"
echo "CPU-only prediction: $(CUDA_VISIBLE_DEVICES= "$PYTHON" -m pipeline.predict \
  --model "$work/gpu/checkpoint.pth" --input "$work/points.csv" | tail -1)"

if [ "$gpus" -ge 2 ]; then
  sed 's/strategy: single/strategy: ddp, nproc: 2/' "$work/params.yaml" > "$work/ddp.yaml"
  # shellcheck disable=SC2046
  "$PYTHON" -m pipeline.stages.train $(stage_args nccl ddp.yaml) 2>/dev/null
  echo "NCCL DDP on 2 GPUs: $(tr -d '\n ' < "$work/nccl/train.json")"
fi

"$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/test_distributed_gpu.py
