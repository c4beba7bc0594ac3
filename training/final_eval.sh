#!/usr/bin/env bash
# Evaluate the shipped model the way MODEL_CARD.md reports it (reports land in $1, default ./eval-shipped):
# the cascade at 256×256 with its default settings on held-out and training-grammar prompts, the base
# stage alone at 32×32, and thresholding (dynamic / static / none) × guidance 3 / 7 / 15 on the base stage.
set -euo pipefail
out=${1:-eval-shipped} count=${COUNT:-100}
m=models/imagen-ts-shapes
mkdir -p "$out"
summary() { node -e "const r=require(require('path').resolve('$1','report.json'));const s=r.summary;console.log(JSON.stringify({whole:s.wholePrompt,...Object.fromEntries(Object.entries(s.perAttribute).map(([k,v])=>[k,+v.accuracy.toFixed(3)+' ('+v.correct+'/'+v.total+')']))}))"; }
for split in heldout train; do
  npx imagen eval --split $split --count "$count" --report "$out/cascade-$split" --quiet --json > /dev/null
  echo "cascade 256 $split: $(summary "$out/cascade-$split")"
  npx imagen eval --model $m/base --split $split --count $((2 * count)) --report "$out/base-$split" --quiet --json > /dev/null
  echo "base 32 $split: $(summary "$out/base-$split")"
done
for g in 3 7 15; do
  for t in dynamic static none; do
    npx imagen eval --model $m/base --split train --count 60 --guidance $g --threshold $t \
      --report "$out/threshold-$t-g$g" --quiet --json > /dev/null
    echo "threshold $t guidance $g: $(summary "$out/threshold-$t-g$g")"
  done
done
