#!/usr/bin/env bash
# Few labels, semi-supervised (docs/results.md "Few labels: semi-supervised"): Fashion-MNIST,
# 10 labels per class drawn by selfsup budget (seeds 0, 1, 2), the full 10,000 test images,
# a validation split of 100 training images per class held out first (never labeled, never
# unlabeled), 10,000 of the remaining training images as unlabeled images (labels hidden;
# they only measure the pseudo-labels). Backbone: the rotation-pretrained quarter-width
# ResNet-18 given as $1 (default: the run the results name).
#
#   bash bench/fewlabels-semi.sh [backbone] [out]
#   ARMS=pretrained+fixmatch bash bench/fewlabels-semi.sh [backbone] [out]   # FixMatch instead
#   RECIPE=recipes/finetune-fixmatch-long.yaml ARMS=pretrained+fixmatch UNLABELED=50000 \
#     bash bench/fewlabels-semi.sh [backbone] [out]                          # FixMatch, 1,500 steps
#
# The self-training arm logs, per seed, round 0 (= recipes/finetune-few-labels.yaml alone:
# the teacher) and the student; the budget table reports the student.
set -euo pipefail
BACKBONE=${1:-/work/runs/select-backbone/fmnist-rotation-20261202-014357Z}
OUT=${2:-runs/fewlabels-semi}
DATA=${FMNIST:-/usr/share/datasets/fashion-mnist}
cd "$(dirname "$0")/.."
uptime
time nice -n 10 node bin/selfsup.js budget "${RECIPE:-recipes/finetune-semi-supervised.yaml}" \
  --backbone "$BACKBONE" --labels "$DATA" --test "$DATA" --val-per-class 100 \
  --unlabeled-limit "${UNLABELED:-10000}" --per-class 10 --seeds "${SEEDS:-0,1,2}" --arms "${ARMS:-pretrained+self-training}" \
  --out "$OUT"
uptime
