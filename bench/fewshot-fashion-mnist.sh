#!/usr/bin/env bash
# The whole few-labels path as a user runs it, in one command, timed (docs/results.md, "Few labels:
# semi-supervised"): `selfsup fewshot` pretrains on the 60,000 Fashion-MNIST training images (their
# labels unused), then finetunes on 10 labels per class with those images as the unlabeled dump,
# and reports on the 10,000 test images. The labels are one seed's subset of a `selfsup budget`
# run (its subsets.json), so the figure pairs with that run's arms; fewshot.json records the
# minutes of each stage.
#
#   bash bench/fewshot-fashion-mnist.sh <budget run>/subsets.json <out> [seed] [pretrain recipe] [finetune recipe]
#   defaults: seed 0, recipes/rotation-small-quick.yaml, recipes/finetune-fixmatch-long.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSETS=${1:?usage: bash bench/fewshot-fashion-mnist.sh <subsets.json> <out> [seed] [pretrain] [finetune]}
OUT=${2:?usage: bash bench/fewshot-fashion-mnist.sh <subsets.json> <out> [seed] [pretrain] [finetune]}
SEED=${3:-0}
PRETRAIN=${4:-recipes/rotation-small-quick.yaml}
FINETUNE=${5:-recipes/finetune-fixmatch-long.yaml}
DATA=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
mkdir -p "$OUT/labeled"
# The seed's labeled images as an IDX pair (train-images / train-labels, so the labels file is found beside).
node --input-type=module - "$SUBSETS" "$SEED" "$DATA" "$OUT/labeled" <<'EOF'
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { idxBytes, readIdx } from './scripts/idx-files.mjs';
const [subsetsFile, seed, data, out] = process.argv.slice(2);
const subset = JSON.parse(readFileSync(subsetsFile, 'utf8')).subsets.find((s) => s.seed === Number(seed));
if (!subset) throw new Error(`${subsetsFile}: no subset for seed ${seed}`);
const images = readIdx(path.join(data, 'train-images-idx3-ubyte.gz'));
const labels = readIdx(path.join(data, 'train-labels-idx1-ubyte.gz'));
const [, rows, cols] = images.shape;
const size = rows * cols;
const ids = subset.indices;
const write = (name, bytes) => {
  const file = path.join(out, name);
  writeFileSync(`${file}.tmp`, bytes);
  renameSync(`${file}.tmp`, file);
};
write('train-images-idx3-ubyte.gz', idxBytes([ids.length, rows, cols], Buffer.concat(ids.map((i) => images.data.subarray(i * size, (i + 1) * size)))));
write('train-labels-idx1-ubyte.gz', idxBytes([ids.length], Buffer.from(ids.map((i) => labels.data[i]))));
console.log(`${ids.length} labeled images (seed ${seed}) -> ${out}`);
EOF
echo "start: $(uptime)" | tee "$OUT/uptime.txt"
time node bin/selfsup.js fewshot "$PRETRAIN" "$FINETUNE" --seed "$SEED" \
  --data "$DATA/train-images-idx3-ubyte.gz" --labels "$OUT/labeled/train-images-idx3-ubyte.gz" \
  --test "$DATA/t10k-images-idx3-ubyte.gz" --unlabeled-limit "${UNLABELED:-50000}" --out "$OUT/run"
echo "end: $(uptime)" | tee -a "$OUT/uptime.txt"
