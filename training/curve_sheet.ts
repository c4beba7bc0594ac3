/**
 * The learning curve as pictures: the same prompts (rows) sampled at each curve point (columns),
 * from the reports curve.sh leaves in the run folder (RUN/eval-STEP-SPLIT/), with the checker's
 * pass/fail bar under each image.
 *
 *   npx tsx training/curve_sheet.ts OUT.png PROMPTS STEP:IMAGES_SEEN:RUN_DIR [...]   (SPLIT=heldout)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { contactSheet, type SheetItem } from '../src/eval/contact_sheet.js';
import { readImage, writePng } from '../src/platform/node/image.js';
import { loadDejaVu } from '../src/platform/node/synth_render.js';

const [out, promptsArg, ...pointArgs] = process.argv.slice(2);
const prompts = Number(promptsArg);
if (!out || !Number.isInteger(prompts) || prompts < 1 || pointArgs.length === 0) {
  console.error('usage: curve_sheet.ts OUT.png PROMPTS STEP:IMAGES_SEEN:RUN_DIR [...]');
  process.exit(2);
}
const split = process.env.SPLIT ?? 'heldout';
const points = pointArgs.map((a) => {
  const [step, seen, run] = a.split(':');
  const dir = join(run!, `eval-${step}-${split}`);
  const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as {
    results: { index: number; prompt: string; pass: boolean }[];
  };
  return { dir, seen: Number(seen), results: report.results };
});
const items: SheetItem[] = [];
for (let i = 0; i < prompts; i++) {
  for (const p of points) {
    const r = p.results[i]!;
    if (r.prompt !== points[0]!.results[i]!.prompt)
      throw new Error(`${p.dir}: prompt ${i} differs from the first point's; evaluate with the same seed`);
    items.push({
      image: await readImage(join(p.dir, 'images', `${String(i).padStart(5, '0')}.png`)),
      caption: r.prompt,
      pass: r.pass,
      note: `${Math.round(p.seen / 1000)} k images`,
    });
  }
}
await writePng(out, contactSheet(items, loadDejaVu(), points.length));
console.log(`wrote ${out}: ${prompts} prompts × ${points.length} points`);
