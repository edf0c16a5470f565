#!/usr/bin/env bash
# The methods on Fashion-MNIST, selfsup and lightly side by side: for each method,
# lightly's implementation (bench/lightly_fashion_methods.py, PyTorch in a virtualenv)
# and then selfsup's (bench/fashion-mnist-pretext.mjs), one process each, the same
# budget, backbone (ResNet-18 small stem, width 0.25), augmentations, AdamW + cosine,
# seed and linear probe; 2 threads on both sides (torch.set_num_threads, TensorFlow
# intra-op). Prints one JSON line per run, then a table with the probe accuracy of
# both and selfsup's pretraining minutes over lightly's.
#
#   TORCH_PYTHON=/work/venvs/lightly/bin/python bash bench/methods-side-by-side.sh <out> \
#     [methods] [limit] [batch] [epochs] [seed]
# defaults: byol,simsiam,barlow-twins,vicreg,moco,dino 4096 64 1 0
# SELFSUP_COMPILE=on SELFSUP_PRECISION=float32|bfloat16 run selfsup's side with the compiled step
# (recipe train.compile / train.precision; default off = eager).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/methods-side-by-side.sh <out> [methods] [limit] [batch] [epochs] [seed]}
METHODS=${2:-byol,simsiam,barlow-twins,vicreg,moco,dino}
LIMIT=${3:-4096}
BATCH=${4:-64}
EPOCHS=${5:-1}
SEED=${6:-0}
PY=${TORCH_PYTHON:-python3}
mkdir -p "$OUT"
: > "$OUT/rows.jsonl"
echo "start: $(uptime)"
for m in ${METHODS//,/ }; do
  echo "== $m: lightly [load $(cut -d' ' -f1-3 /proc/loadavg)]"
  "$PY" bench/lightly_fashion_methods.py --methods "$m" --limit "$LIMIT" --batch "$BATCH" --epochs "$EPOCHS" \
    --seed "$SEED" --threads 2 --out "$OUT/lightly" | grep '^{' | sed "s/^{/{\"side\":\"lightly\",\"method\":\"$m\",/" | tee -a "$OUT/rows.jsonl"
  echo "== $m: selfsup [load $(cut -d' ' -f1-3 /proc/loadavg)]"
  node bench/fashion-mnist-pretext.mjs --tasks "$m" --limit "$LIMIT" --batch "$BATCH" --epochs "$EPOCHS" \
    --seed "$SEED" --compile "${SELFSUP_COMPILE:-off}" --precision "${SELFSUP_PRECISION:-float32}" --out "$OUT/selfsup" | grep '^{' | grep -v '"random init"' | sed "s/^{/{\"side\":\"selfsup\",\"method\":\"$m\",/" | tee -a "$OUT/rows.jsonl"
done
echo "end: $(uptime)"
node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
  const by = (m, s) => rows.find((r) => r.method === m && r.side === s);
  console.log("\n| method | lightly probe | selfsup probe | lightly pretrain min | selfsup pretrain min | selfsup / lightly time |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const m of [...new Set(rows.map((r) => r.method))]) {
    const l = by(m, "lightly"), s = by(m, "selfsup");
    const pct = (r) => (r ? (100 * r.testAccuracy).toFixed(2) + "%" : "-");
    const ratio = l && s ? (s.pretrainMinutes / l.pretrainMinutes).toFixed(2) : "-";
    console.log(`| ${m} | ${pct(l)} | ${pct(s)} | ${l?.pretrainMinutes ?? "-"} | ${s?.pretrainMinutes ?? "-"} | ${ratio} |`);
  }
' "$OUT/rows.jsonl"
