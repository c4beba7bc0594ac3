/**
 * Where are the words lost: in stage I, or in stage II? Gives stage II the TRUE sign at stage I's
 * size (rendered at 64×64 and read at 32×32 as training reads it, lanczos3) and OCRs what comes
 * back at 256×256, beside the same sign upscaled bicubically and the true 256×256 render. If stage
 * II reads true 32×32 signs well, word accuracy is bounded by stage I's letters (training/README.md,
 * nineteenth chunk). Prints a JSON line; writes the stage-II outputs and an optional contact sheet.
 *
 *   npx tsx training/sr_true_signs.ts WORK_DIR [--sr models/imagen-ts-shapes/sr] [--count 32]
 *     [--split heldout|train] [--seed 1] [--sheet SHEET.png]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderScene } from '../src/data/synth/render.js';
import { type Split, synthExamplesOfKinds } from '../src/data/synth/splits.js';
import { checkImage } from '../src/eval/checker.js';
import { contactSheet, type SheetItem } from '../src/eval/contact_sheet.js';
import type { RgbImage } from '../src/io/image.js';
import { readImage, resizeImage, writePng } from '../src/platform/node/image.js';
import { createWordOcr } from '../src/platform/node/ocr.js';
import { loadDejaVu } from '../src/platform/node/synth_render.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    sr: { type: 'string', default: 'models/imagen-ts-shapes/sr' },
    count: { type: 'string', default: '32' },
    split: { type: 'string', default: 'heldout' },
    seed: { type: 'string', default: '1' },
    sheet: { type: 'string' },
  },
});
const [work] = positionals;
const count = Number(values.count);
const seed = Number(values.seed);
const split = values.split as Split;
if (!work || !Number.isInteger(count) || count < 1 || !Number.isInteger(seed) || !['heldout', 'train'].includes(split)) {
  console.error('usage: sr_true_signs.ts WORK_DIR [--sr DIR] [--count N] [--split heldout|train] [--seed S] [--sheet F.png]');
  process.exit(2);
}
mkdirSync(work, { recursive: true });

const font = loadDejaVu();
const { examples } = synthExamplesOfKinds(seed, split, count, ['sign'], 1);
const ocr = await createWordOcr();
const kinds = ['true256', 'bicubic', 'stageII'] as const;
const right: Record<(typeof kinds)[number], number> = { true256: 0, bicubic: 0, stageII: 0 };
const items: SheetItem[] = [];
try {
  for (const e of examples) {
    const low = await resizeImage(renderScene(e.scene, 64, font), 32, 32);
    const lowPath = join(work, `${e.index}-32.png`);
    const outPath = join(work, `${e.index}-256.png`);
    await writePng(lowPath, low);
    // The user's command, so that the stage's generation_config.json defaults apply as shipped.
    const r = spawnSync(
      'npx',
      ['imagen', 'upscale', lowPath, '--model', values.sr, '--prompt', e.caption, '--seed', String(seed), '--out', outPath, '--quiet'],
      { stdio: 'inherit' },
    );
    if (r.status !== 0) process.exit(r.status ?? 1);
    const images: Record<(typeof kinds)[number], RgbImage> = {
      true256: renderScene(e.scene, 256, font),
      bicubic: await resizeImage(low, 256, 256),
      stageII: await readImage(outPath),
    };
    for (const k of kinds) {
      const { verdicts } = await checkImage(e.scene, images[k], ocr.read);
      if (verdicts.word) right[k]++;
      if (k === 'stageII') items.push({ image: images[k], caption: e.caption, pass: verdicts.word === true });
    }
  }
} finally {
  await ocr.terminate();
}
console.log(JSON.stringify({ sr: values.sr, split, seed, of: examples.length, wordRight: right }));
if (values.sheet) {
  await writePng(values.sheet, contactSheet(items, font, 8));
  console.error(`wrote ${values.sheet}`);
}
