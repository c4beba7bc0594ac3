/**
 * Does a model draw one two-object relation prompt right, seed after seed? Runs the README's
 * command (`imagen generate PROMPT --seed S`, default: "a red circle to the left of a blue square")
 * for seeds 0..N−1 exactly as a user would, and scores every image with the eval checker. The ship
 * gate of training/README.md (sixteenth chunk) reads this: right at seed 0, the README's default,
 * and on at least 15 of seeds 0–15. Prints a JSON line; optionally writes a contact sheet.
 *
 *   npx tsx training/prompt_seeds.ts MODEL_DIR WORK_DIR [--prompt P] [--seeds N] [--sheet SHEET.png]
 *   (MODEL_DIR: a stage-I pipeline folder, e.g. from training/snapshot.ts; WORK_DIR receives the samples)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { relationPromptScene } from '../src/data/synth/prompt_scene.js';
import { checkImage } from '../src/eval/checker.js';
import { contactSheet, type SheetItem } from '../src/eval/contact_sheet.js';
import { readImage, writePng } from '../src/platform/node/image.js';
import { loadDejaVu } from '../src/platform/node/synth_render.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    prompt: { type: 'string', default: 'a red circle to the left of a blue square' },
    seeds: { type: 'string', default: '16' },
    sheet: { type: 'string' },
  },
});
const [model, work] = positionals;
const seeds = Number(values.seeds);
if (!model || !work || !Number.isInteger(seeds) || seeds < 1) {
  console.error('usage: prompt_seeds.ts MODEL_DIR WORK_DIR [--prompt P] [--seeds N] [--sheet SHEET.png]');
  process.exit(2);
}

const prompt = values.prompt;
const scene = relationPromptScene(prompt);
if (!scene) {
  console.error(`not a two-object relation prompt of the grammar: "${prompt}"`);
  process.exit(2);
}
mkdirSync(work, { recursive: true });

const items: SheetItem[] = [];
const wrong: number[] = [];
for (let seed = 0; seed < seeds; seed++) {
  const out = join(work, `seed-${seed}.png`);
  const r = spawnSync('npx', ['imagen', 'generate', prompt, '--model', model, '--seed', String(seed), '--out', out, '--quiet'], {
    stdio: 'inherit',
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
  const image = await readImage(out);
  const { pass } = await checkImage(scene, image);
  if (!pass) wrong.push(seed);
  items.push({ image, caption: `seed ${seed}`, pass });
}
console.log(JSON.stringify({ model, prompt, right: seeds - wrong.length, of: seeds, wrongSeeds: wrong, seed0: !wrong.includes(0) }));
if (values.sheet) {
  await writePng(values.sheet, contactSheet(items, loadDejaVu(), 8));
  console.error(`wrote ${values.sheet}`);
}
