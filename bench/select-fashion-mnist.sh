#!/usr/bin/env bash
# Selection study on Fashion-MNIST (docs/results.md, "Choosing images to label"):
# a rotation-pretrained quarter-width ResNet-18, then `selfsup select-study` on the
# 60,000 training images as the pool (labels hidden until picked) and the 10,000 test
# images, balanced and with three classes made rare; then `selfsup select` timed on the
# whole pool. Usage: bash bench/select-fashion-mnist.sh [out-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/select-fashion-mnist}
DATA=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
npx tsc -p tsconfig.json

# 1. Backbone: rotation, 2 epochs on 12,288 training images (384 steps), as in the finetuning section.
node bench/fashion-mnist-pretext.mjs --tasks rotation --limit 12288 --batch 64 --epochs 2 --seed 0 \
  --probe-train 2000 --probe-test 2000 --out "$OUT/backbone"
RUN=$(ls -d "$OUT"/backbone/fmnist-rotation-*/ | tail -1)

# 2. Simulated labeling loop: 10 rounds of 100 labels, 3 seeds, every strategy
#    (typical in a run of its own: it was added after the first run).
node bin/selfsup.js select-study "$RUN" --pool "$DATA/train-images-idx3-ubyte.gz" \
  --test "$DATA/t10k-images-idx3-ubyte.gz" --rounds 10 --per-round 100 --seeds 0,1,2 \
  --strategies random,diversity,uncertainty,hybrid,balanced --first-round diversity --out "$OUT/study"
node bin/selfsup.js select-study "$RUN" --pool "$DATA/train-images-idx3-ubyte.gz" \
  --test "$DATA/t10k-images-idx3-ubyte.gz" --rounds 10 --per-round 100 --seeds 0,1,2 \
  --strategies typical --out "$OUT/study-typical"
node bin/selfsup.js select-study "$RUN" --pool "$DATA/train-images-idx3-ubyte.gz" \
  --test "$DATA/t10k-images-idx3-ubyte.gz" --rounds 10 --per-round 100 --seeds 0,1,2 \
  --strategies uncertainty --first-round typical --out "$OUT/study-uncertainty-typical"

# 3. An imbalanced pool: t-shirt (0), trouser (1) and pullover (2) keep 10% of their images
#    (5 rounds, one seed: what fitted the machine's time).
node bin/selfsup.js select-study "$RUN" --pool "$DATA/train-images-idx3-ubyte.gz" \
  --test "$DATA/t10k-images-idx3-ubyte.gz" --rounds 5 --per-round 100 --seeds 0 \
  --first-round diversity --rare-classes 0,1,2 --rare-fraction 0.1 --out "$OUT/study-rare"

# 4. One selection of 1,000 from the whole pool, with time and peak memory.
/usr/bin/time -v node bin/selfsup.js select "$RUN" --data "$DATA/train-images-idx3-ubyte.gz" \
  --strategy diversity --budget 1000 --out "$OUT/select-60k" --quiet 2> "$OUT/select-60k.time"
grep -E "Elapsed|Maximum resident" "$OUT/select-60k.time"
node bench/select-plot.mjs "$OUT" docs/img/select-study.png
