#!/bin/sh
# Continued pretraining on Fashion-MNIST: a rotation backbone continued with SimCLR
# (recipe init / --init) against rotation alone and SimCLR alone: a linear probe of
# each (bench/fashion-mnist-pretext.mjs) and a label-budget table of every start.
#
#   npm run build && nice -n 10 flock /tmp/heavy.lock sh bench/fashion-mnist-continued.sh [out dir]
#
# Budgets (quarter-width ResNet-18, small stem, 28 px, AdamW 0.002, cosine, seed 0):
#   rotation                128 steps (8,192 images, batch 64, 1 epoch)
#   SimCLR                  128 steps (4,096 images, batch 64, 2 epochs)
#   rotation -> SimCLR      the rotation backbone, then SimCLR as above; backbone at 0.1x the
#                           schedule in the first epoch (init.backboneLrMultiplier / warmEpochs)
set -e
OUT=${1:-runs/fmnist-continued}
DATA=/usr/share/datasets/fashion-mnist
newest() { ls -d "$1"/fmnist-* | tail -1; }
# Wall-clock and load at each step: the machine may be shared, so minutes need their load beside them.
mark() { echo "== $1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"; }

mark rotation
node bench/fashion-mnist-pretext.mjs --tasks rotation --limit 8192 --batch 64 --epochs 1 --seed 0 --out "$OUT/rotation"
ROTATION=$(newest "$OUT/rotation")
mark simclr
node bench/fashion-mnist-pretext.mjs --tasks contrastive --limit 4096 --batch 64 --epochs 2 --seed 0 --out "$OUT/simclr"
SIMCLR=$(newest "$OUT/simclr")
mark rotation-simclr
node bench/fashion-mnist-pretext.mjs --tasks contrastive --limit 4096 --batch 64 --epochs 2 --seed 0 \
  --init "$ROTATION" --init-lr-multiplier 0.1 --init-warm-epochs 1 --out "$OUT/rotation-simclr"
CONTINUED=$(newest "$OUT/rotation-simclr")

mark budget
node bin/selfsup.js budget recipes/finetune-budget-lpft.yaml --backbone "$ROTATION" \
  --labels "$DATA" --test "$DATA" --test-limit 2000 --per-class 10,100 --seeds 0,1,2 \
  --arms "scratch,pretrained,init:$SIMCLR,init:$CONTINUED" --out "$OUT/budget"
mark done
echo "rotation: $ROTATION"; echo "simclr: $SIMCLR"; echo "rotation -> simclr: $CONTINUED"
cat "$OUT/budget/budget.md"
