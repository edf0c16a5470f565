#!/usr/bin/env bash
# The methods on Fashion-MNIST, selfsup and lightly side by side: for each seed and method,
# lightly's implementation (bench/lightly_fashion_methods.py, PyTorch in a virtualenv) and then
# selfsup's (bench/fashion-mnist-pretext.mjs), one process each, the same budget, backbone
# (ResNet-18 small stem, width 0.25), augmentations, AdamW + cosine, seed, linear probe and
# kNN probe (k 200, cosine, votes exp(s / 0.1)); 2 threads on both sides
# (torch.set_num_threads, TensorFlow intra-op). rotation and jigsaw have no lightly counterpart
# (selfsup side only); "random-init" probes the untrained backbone; selfsup's "contrastive" is
# SimCLR (lightly's SimCLR heads and NT-Xent on the other side). Prints one JSON line per run,
# appended to <out>/rows.jsonl (a re-run skips the runs already there), then a table of
# mean ± std over seeds: linear-probe and kNN accuracy of both sides and selfsup's pretraining
# minutes over lightly's.
#
#   TORCH_PYTHON=/work/venvs/lightly/bin/python bash bench/methods-side-by-side.sh <out> \
#     [methods] [limit] [batch] [epochs] [seeds]
# defaults: byol,simsiam,barlow-twins,vicreg,moco,dino 4096 64 1 0   (seeds: comma list, e.g. 0,1,2)
# SELFSUP_COMPILE=on SELFSUP_PRECISION=float32|bfloat16 run selfsup's side with the compiled step
# (recipe train.compile / train.precision; default off = eager). ORDER=method runs every seed of a
# method before the next method (default: every method of a seed first). The table alone: TABLE_ONLY=1.
# SAME_INIT=1: selfsup's side starts from the very backbone lightly's side starts from for the seed
# (bench/torch_probe_backbone.py --save-random-init, then --init), so the pair differs only in the
# implementation, the head's initial weights and the random draws of data order and views; use its
# own <out> (rows carry "init":"lightly").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/methods-side-by-side.sh <out> [methods] [limit] [batch] [epochs] [seeds]}
METHODS=${2:-byol,simsiam,barlow-twins,vicreg,moco,dino}
LIMIT=${3:-4096}
BATCH=${4:-64}
EPOCHS=${5:-1}
SEEDS=${6:-0}
PY=${TORCH_PYTHON:-python3}
mkdir -p "$OUT"
touch "$OUT/rows.jsonl"
done_already() { grep -q "\"side\":\"$1\",\"method\":\"$2\",\"seed\":$3," "$OUT/rows.jsonl"; }
# Each row gets the 1-minute load average before the run and right after it (2 = this bench alone).
tag() { while read -r line; do echo "$line" | sed "s/^{/{\"side\":\"$1\",\"method\":\"$2\",\"seed\":$3,\"load\":\"$4\",\"loadAfter\":\"$(load)\",/"; done; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
if [ -z "${TABLE_ONLY:-}" ]; then
  echo "start: $(uptime)"
  pairs=()
  if [ "${ORDER:-seed}" = method ]; then
    for m in ${METHODS//,/ }; do for seed in ${SEEDS//,/ }; do pairs+=("$seed:$m"); done; done
  else
    for seed in ${SEEDS//,/ }; do for m in ${METHODS//,/ }; do pairs+=("$seed:$m"); done; done
  fi
  for pair in "${pairs[@]}"; do
      seed=${pair%%:*} m=${pair#*:}
      if [ "$m" = random-init ]; then
        done_already selfsup "$m" "$seed" && continue
        l=$(load)
        node bench/fashion-mnist-pretext.mjs --tasks none --seed "$seed" --out "$OUT/seed$seed/selfsup" \
          | grep '^{' | tag selfsup "$m" "$seed" "$l" | tee -a "$OUT/rows.jsonl"
        continue
      fi
      case "$m" in rotation | jigsaw) lm= ;; contrastive) lm=simclr ;; *) lm=$m ;; esac
      if [ -n "$lm" ] && ! done_already lightly "$m" "$seed"; then
        l=$(load)
        echo "== seed $seed $m: lightly [load $l]"
        "$PY" bench/lightly_fashion_methods.py --methods "$lm" --limit "$LIMIT" --batch "$BATCH" --epochs "$EPOCHS" \
          --seed "$seed" --threads 2 --out "$OUT/seed$seed/lightly" | grep '^{' | tag lightly "$m" "$seed" "$l" | tee -a "$OUT/rows.jsonl"
      fi
      if ! done_already selfsup "$m" "$seed"; then
        init=() mark=
        if [ -n "${SAME_INIT:-}" ]; then
          init=(--init "$OUT/seed$seed/lightly-init.safetensors") mark='s/^{/{"init":"lightly",/'
          mkdir -p "$OUT/seed$seed"
          [ -f "${init[1]}" ] || "$PY" bench/torch_probe_backbone.py --seed "$seed" --save-random-init "${init[1]}" >/dev/null
        fi
        l=$(load)
        echo "== seed $seed $m: selfsup [load $l] ${init[*]}"
        node bench/fashion-mnist-pretext.mjs --tasks "$m" --no-baseline --limit "$LIMIT" --batch "$BATCH" --epochs "$EPOCHS" \
          --seed "$seed" --compile "${SELFSUP_COMPILE:-off}" --precision "${SELFSUP_PRECISION:-float32}" "${init[@]}" \
          --out "$OUT/seed$seed/selfsup" | grep '^{' | tag selfsup "$m" "$seed" "$l" | sed -e "$mark" \
          | tee -a "$OUT/rows.jsonl"
      fi
  done
  echo "end: $(uptime)"
fi
node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
  const of = (m, s) => rows.filter((r) => r.method === m && r.side === s);
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = (xs) => (xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)) : 0);
  const pct = (rs, key) => {
    const xs = rs.map((r) => 100 * r[key]).filter(Number.isFinite);
    return xs.length ? `${mean(xs).toFixed(2)} ± ${sd(xs).toFixed(2)}` : "-";
  };
  const mins = (rs) => (rs.length ? mean(rs.map((r) => r.pretrainMinutes)).toFixed(2) : "-");
  // Highest 1-minute load average seen before or after the method\x27s runs (2 = the bench alone on 2 cores).
  const maxLoad = (rs) => Math.max(...rs.flatMap((r) => [r.load, r.loadAfter].filter(Boolean).map((l) => Number(l.split(" ")[0]))));
  console.log("\n| method | seeds | lightly linear % | selfsup linear % | lightly kNN % | selfsup kNN % | lightly pretrain min | selfsup pretrain min | selfsup / lightly time | max load |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const m of [...new Set(rows.map((r) => r.method))]) {
    const l = of(m, "lightly"), s = of(m, "selfsup");
    const ratio = l.length && s.length ? (mean(s.map((r) => r.pretrainMinutes)) / mean(l.map((r) => r.pretrainMinutes))).toFixed(2) : "-";
    const seeds = `${l.length}/${s.length}`;
    console.log(`| ${m} | ${seeds} | ${pct(l, "testAccuracy")} | ${pct(s, "testAccuracy")} | ${pct(l, "knnAccuracy")} | ${pct(s, "knnAccuracy")} | ${mins(l)} | ${mins(s)} | ${ratio} | ${maxLoad([...l, ...s]).toFixed(1)} |`);
  }
' "$OUT/rows.jsonl"
