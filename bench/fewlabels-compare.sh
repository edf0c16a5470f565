#!/usr/bin/env bash
# Few labels on Fashion-MNIST (docs/results.md, "Few labels: the default path against a plain
# PyTorch loop"): 10 labels per class, seeds 0-2, the full 10,000 test images.
#   1. selfsup budget with its default recipe (recipes/finetune-few-labels.yaml), scratch and
#      pretrained; the validation split (100/class) keeps the label subsets identical to the
#      ones the recipe was chosen on, and subsets.json records them;
#   2. bench/torch_fewlabels.py, the plain PyTorch loop, on the same subsets, from scratch and
#      from the same backbone exported as torchvision-named safetensors.
# Both sides run one after the other in one sitting, 2 threads each; `uptime` is recorded.
# Usage: bash bench/fewlabels-compare.sh <backbone run or export> [out-dir]
#   The backbone of the published figures: `node bench/fashion-mnist-pretext.mjs --tasks rotation
#   --limit 12288 --batch 64 --epochs 2 --seed 0 --probe-train 2000 --probe-test 2000 --out <dir>`.
#   <backbone> may also be a PyTorch-pretrained one (the reference pretraining, same size and budget):
#   `python bench/torch_fashion_pretext.py --task rotation --limit 60000 --epochs 4 --batch 128
#   --save-backbone <dir>/backbone.safetensors` (AdamW 0.002, cosine; torchvision names), then
#   `bash bench/fewlabels-compare.sh <dir>/backbone.safetensors <out>`: both loops from that backbone.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKBONE=${1:?usage: bash bench/fewlabels-compare.sh <backbone run or export> [out-dir]}
OUT=${2:-runs/fewlabels-compare}
DATA=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
PYTHON=${TORCH_PYTHON:-python3}
mkdir -p "$OUT"

node bin/selfsup.js export "$BACKBONE" --format safetensors --out "$OUT/backbone" --overwrite --quiet

echo "selfsup start: $(uptime)" | tee "$OUT/uptime.txt"
node bin/selfsup.js budget --backbone "$BACKBONE" --labels "$DATA" --test "$DATA" --val-per-class 100 \
  --per-class 10 --seeds 0,1,2 --arms scratch,pretrained --out "$OUT/selfsup" --overwrite
echo "torch start: $(uptime)" | tee -a "$OUT/uptime.txt"
"$PYTHON" bench/torch_fewlabels.py --data "$DATA" --backbone "$OUT/backbone/backbone.safetensors" \
  --subsets "$OUT/selfsup/subsets.json" --per-class 10 --seeds 0,1,2 --arms scratch,pretrained \
  --threads 2 --out "$OUT/torch.json"
echo "end: $(uptime)" | tee -a "$OUT/uptime.txt"
