#!/usr/bin/env bash
# Finetuning with the compiled step: the default few-labels recipe
# (recipes/finetune-few-labels.yaml) eager, compiled float32 and compiled bfloat16
# (train.compile / train.precision), interleaved per seed, on Fashion-MNIST with
# 10 labels per class, tested on all 10,000 test images. Prints one line per run
# (seconds, test accuracy) and writes <out>/runs.jsonl.
# Usage: bash bench/finetune-compiled.sh <backbone run or export> [out-dir] [seeds]
set -euo pipefail
cd "$(dirname "$0")/.."
BACKBONE=${1:?usage: bash bench/finetune-compiled.sh <backbone> [out-dir] [seeds]}
OUT=${2:-runs/finetune-compiled}
SEEDS=${3:-0,1,2}
DATA=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BASE=$(realpath --relative-to="$OUT" recipes/finetune-few-labels.yaml)
write_variant() { # name compile precision
  printf 'extends: %s\ntrain:\n  compile: %s\n  precision: %s\n' "$BASE" "$2" "$3" > "$OUT/$1.yaml"
}
write_variant eager off float32
write_variant compiled-float32 on float32
write_variant compiled-bfloat16 on bfloat16
: > "$OUT/runs.jsonl"
echo "start: $(uptime)"
for seed in ${SEEDS//,/ }; do
  for variant in eager compiled-float32 compiled-bfloat16; do
    start=$(date +%s%N)
    node bin/selfsup.js finetune "$OUT/$variant.yaml" --backbone "$BACKBONE" --labels "$DATA" --test "$DATA" \
      --per-class 10 --seed "$seed" --out "$OUT/$variant-s$seed" --overwrite --quiet --json > "$OUT/$variant-s$seed.json"
    wall_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    node -e '
      const [file, variant, seed, wallMs, load] = process.argv.slice(1);
      const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
      console.log(JSON.stringify({ variant, seed: +seed, wallSeconds: +wallMs / 1000, runSeconds: r.seconds,
        testAccuracy: r.accuracy, testImages: r.testImages, load1: +load }));
    ' "$OUT/$variant-s$seed.json" "$variant" "$seed" "$wall_ms" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/runs.jsonl"
  done
done
echo "end: $(uptime)"
