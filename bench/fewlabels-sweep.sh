#!/usr/bin/env bash
# Candidates for the default few-labels recipe, on the validation split only: each candidate is
# recipes/finetune-few-labels.yaml with one or two settings changed, run by `selfsup budget`
# (pretrained arm, 10 labels per class, seeds 0-2, 100 held-out training images per class as
# validation, no --test: the test images are not read). Prints each run's validation accuracy
# and writes <out>/<candidate>/budget.md.
#
#   bash bench/fewlabels-sweep.sh <backbone run or export> [out-dir] [candidates]
#   candidates: comma-separated names from the list below (default: the first sweep's twelve;
#   ls0.2-600steps and ls0.3-400steps, the follow-ups to the chosen 400 steps, by name)
set -euo pipefail
cd "$(dirname "$0")/.."
BACKBONE=${1:?usage: bash bench/fewlabels-sweep.sh <backbone> [out-dir] [candidates]}
OUT=${2:-runs/fewlabels-sweep}
DATA=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BASE=$(realpath --relative-to="$OUT" recipes/finetune-few-labels.yaml)
# candidate -> label smoothing, stage epochs of 20 steps (10 = 200 steps), then any other settings
# (YAML under train:). The first sweep's starting point: label smoothing 0.1, 200 steps.
declare -A CANDIDATES=(
  [ls0.1]='0.1 10'
  [ls0.2]='0.2 10'
  [ls0.3]='0.3 10'
  [ls0.4]='0.4 10'
  [ls0.2-400steps]='0.2 20'
  [ls0.2-600steps]='0.2 30'
  [ls0.3-400steps]='0.3 20'
  [ls0.2-lr0.03]=$'0.2 10\n  optimizer:\n    lr: 0.03'
  [ema0.99]=$'0.1 10\n  emaDecay: 0.99'
  [ema0.998]=$'0.1 10\n  emaDecay: 0.998'
  [wd5e-3]=$'0.1 10\n  optimizer:\n    weightDecay: 0.005'
  [wd5e-3-400steps]=$'0.1 20\n  optimizer:\n    weightDecay: 0.005'
  [backbone-x0.5]=$'0.1 10\n  backboneLrMultiplier: 0.5'
  [batch32-400steps]=$'0.1 10\n  batchSize: 32\n  stepsPerEpoch: 40'
)
NAMES=${3:-ls0.1,ls0.2,ls0.3,ls0.4,ls0.2-400steps,ls0.2-lr0.03,ema0.99,ema0.998,wd5e-3,wd5e-3-400steps,backbone-x0.5,batch32-400steps}
for name in ${NAMES//,/ }; do
  [[ -v CANDIDATES[$name] ]] || { echo "unknown candidate $name" >&2; exit 2; }
  spec=${CANDIDATES[$name]}
  first=${spec%%$'\n'*}
  rest=${spec#"$first"}
  read -r smoothing epochs <<< "$first"
  printf 'extends: %s\nloss:\n  labelSmoothing: %s\nstages:\n  - epochs: %s\n    trainable: [all]\ntrain:%s\n' \
    "$BASE" "$smoothing" "$epochs" "${rest:-" {}"}" > "$OUT/$name.yaml"
  echo "== $name: $(uptime)"
  node bin/selfsup.js budget "$OUT/$name.yaml" --backbone "$BACKBONE" --labels "$DATA" --val-per-class 100 \
    --per-class 10 --seeds 0,1,2 --arms pretrained --out "$OUT/$name" --overwrite 2>&1 | grep -E 'val |rror'
done
