#!/usr/bin/env bash
# One learning-curve point for a running base-model run: snapshot its latest checkpoint, evaluate it
# on held-out and training-grammar prompts at its own resolution, append a line to CURVE.
#   [SAMPLER=ddpm STEPS=100] training/curve.sh RUN_DIR CURVE.jsonl [COUNT]
# (the points before 2026-11-26 00:30 used DDIM 25 steps, which scores colour about half as well)
set -euo pipefail
run=$1 curve=$2 count=${3:-100}
snap=$(mktemp -d)
trap 'rm -rf "$snap"' EXIT
step=$(npx tsx training/snapshot.ts "$run" "$snap/model" | node -e 'process.stdin.on("data",d=>console.log(JSON.parse(d).step))')
batch=$(node -e "console.log(require('$run/checkpoint/state.json').config.train.batch_size)")
for split in heldout train; do
  npx imagen eval --model "$snap/model" --split "$split" --count "$count" --sampler "${SAMPLER:-ddpm}" --steps "${STEPS:-100}" --guidance 5 \
    --batch 20 --report "$run/eval-$step-$split" --json --quiet > "$snap/$split.json"
done
node -e "
const h = require('$snap/heldout.json').summary, t = require('$snap/train.json').summary;
const acc = (s) => Object.fromEntries(Object.entries(s.perAttribute).map(([k, v]) => [k, Math.round(v.accuracy * 1000) / 1000]));
console.log(JSON.stringify({ time: new Date().toISOString(), step: $step, images_seen: $step * $batch, sampler: '${SAMPLER:-ddpm} ${STEPS:-100}',
  heldout: { whole: h.wholePrompt, ...acc(h) }, train: { whole: t.wholePrompt, ...acc(t) } }));
" | tee -a "$curve"
