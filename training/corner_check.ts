/**
 * Does a stage-I model put things where the prompt says? "a red circle in the <corner> corner" for
 * the four corners, 16 seeds each (the same seeds for every corner, so a model that ignores the
 * position words draws the same picture four times and scores exactly 16 of 64). Scores where the
 * main object's centre lies (the eval checker's segmentation) and, apart, whether it is red; prints
 * a JSON line, and optionally writes a contact sheet (one column per corner, the first four seeds).
 *
 *   npx tsx training/corner_check.ts MODEL_DIR WORK_DIR [SHEET.png]
 *   (MODEL_DIR: a pipeline folder, e.g. from training/snapshot.ts; WORK_DIR receives the samples)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { contactSheet, type SheetItem } from '../src/eval/contact_sheet.js';
import { analyzeImage } from '../src/eval/analyze.js';
import { largest } from '../src/eval/checker.js';
import type { RgbImage } from '../src/io/image.js';
import { readImage, writePng } from '../src/platform/node/image.js';
import { loadDejaVu } from '../src/platform/node/synth_render.js';

const CORNERS = ['top left', 'top right', 'bottom left', 'bottom right'] as const;
const SEEDS = 16;

const [model, work, sheet] = process.argv.slice(2);
if (!model || !work) {
  console.error('usage: corner_check.ts MODEL_DIR WORK_DIR [SHEET.png]');
  process.exit(2);
}
mkdirSync(work, { recursive: true });

/**
 * The main object as the checker sees it: the largest component that differs from the fitted
 * background. Position is judged by its centre whatever its colour (a darker red still counts as
 * placed), and its colour is reported apart.
 */
function mainObject(img: RgbImage): { cx: number; cy: number; red: boolean } | undefined {
  const main = largest(analyzeImage(img).components);
  return main && { cx: main.cx, cy: main.cy, red: main.colour === 'red' };
}

interface Sample {
  image: RgbImage;
  red: boolean;
  pass: boolean;
}
const samples: Sample[][] = []; // [corner][seed]
for (const corner of CORNERS) {
  const base = join(work, `${corner.replace(' ', '-')}.png`);
  const prompt = `a red circle in the ${corner} corner`;
  const r = spawnSync(
    'npx',
    ['imagen', 'generate', prompt, '--model', model, '--num-images', String(SEEDS), '--seed', '3', '--out', base, '--quiet'],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
  const row: Sample[] = [];
  for (let i = 0; i < SEEDS; i++) {
    const image = await readImage(base.replace(/\.png$/, `-${i}.png`));
    const o = mainObject(image);
    const pass = !!o && o.cx < 0.5 === corner.endsWith('left') && o.cy < 0.5 === corner.startsWith('top');
    row.push({ image, red: !!o?.red, pass });
  }
  samples.push(row);
}
const all = samples.flat();
const correct = all.filter((s) => s.pass).length;
const red = all.filter((s) => s.red).length;
const correctAndRed = all.filter((s) => s.pass && s.red).length;
console.log(JSON.stringify({ model, correct, red, correctAndRed, of: all.length }));

if (sheet) {
  const items: SheetItem[] = [];
  for (let i = 0; i < 4; i++) {
    for (const [k, corner] of CORNERS.entries()) {
      const { image, pass } = samples[k]![i]!;
      items.push({ image, caption: `${corner}, seed ${i}`, pass });
    }
  }
  await writePng(sheet, contactSheet(items, loadDejaVu(), CORNERS.length));
  console.error(`wrote ${sheet}`);
}
