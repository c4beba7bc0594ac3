/**
 * Does a stage-I model put things where the prompt says? "a red circle in the <corner> corner" for
 * the four corners, 16 seeds each (the same seeds for every corner, so a model that ignores the
 * position words draws the same picture four times and scores exactly 16 of 64). Scores where the
 * red pixels' centroid lies, prints a JSON line, and optionally writes a contact sheet (one column
 * per corner, the first four seeds).
 *
 *   npx tsx training/corner_check.ts MODEL_DIR WORK_DIR [SHEET.png]
 *   (MODEL_DIR: a pipeline folder, e.g. from training/snapshot.ts; WORK_DIR receives the samples)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { contactSheet, type SheetItem } from '../src/eval/contact_sheet.js';
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

/** Centroid of the clearly red pixels as fractions of the side, or undefined when there are none. */
function redCentroid(img: RgbImage): [number, number] | undefined {
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const o = (y * img.width + x) * 3;
      if (img.data[o]! > 150 && img.data[o + 1]! < 100 && img.data[o + 2]! < 100) {
        sx += x + 0.5;
        sy += y + 0.5;
        n++;
      }
    }
  }
  return n ? [sx / n / img.width, sy / n / img.height] : undefined;
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
    const c = redCentroid(image);
    const pass = !!c && c[0] < 0.5 === corner.endsWith('left') && c[1] < 0.5 === corner.startsWith('top');
    row.push({ image, red: !!c, pass });
  }
  samples.push(row);
}
const all = samples.flat();
const correct = all.filter((s) => s.pass).length;
const withRed = all.filter((s) => s.red).length;
console.log(JSON.stringify({ model, correct, withRed, of: all.length }));

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
