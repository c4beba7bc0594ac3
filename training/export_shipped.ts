/**
 * Copy trained pipeline folders into the package's shipped model: configs as they are, weights
 * (the EMA copies `imagen train` saves) stored as float16 — the runtime widens them to float32
 * inside the graph — plus the sampling defaults of generation_config.json. Training state
 * (checkpoint/, loss.jsonl) stays behind.
 *
 *   npx tsx training/export_shipped.ts --base RUN/base --sr RUN/sr --out models/imagen-ts-shapes
 */
import { cp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { rewritePipeline, toFloat16 } from './pipeline_weights.js';

const { values } = parseArgs({
  options: { base: { type: 'string' }, sr: { type: 'string' }, out: { type: 'string' } },
});
if (!values.base || !values.sr || !values.out) {
  console.error('usage: export_shipped.ts --base DIR --sr DIR --out DIR');
  process.exit(2);
}

/** Sampling defaults chosen by the thresholding/steps measurements in training/README.md. */
const GENERATION = {
  // Guidance 5: the v-prediction stage I's best colour on held-out prompts (7 was the ε model's).
  base: { num_inference_steps: 100, guidance_scale: 5, sampler: 'ddpm', thresholding: 'dynamic' },
  // Stage II was fine-tuned on 128² crops: sampled in 128² tiles its GroupNorm statistics match
  // training's (in one 256² piece it leaves speckles and shifts flat colours; MODEL_CARD.md).
  // Back-projection takes out the colour drift and background blotches it still adds to stage I's
  // image (held-out cascade count 0.63 → 0.83; training/README.md, ninth chunk). 10 DDIM steps
  // score as 20 on 100 held-out prompts and halve stage II, which is most of the time (eleventh
  // chunk); 6 leave blotches.
  sr: {
    num_inference_steps: 10,
    guidance_scale: 1,
    sampler: 'ddim',
    thresholding: 'dynamic',
    noise_level: 100,
    tile_size: 128,
    tile_overlap: 64,
    back_projection: true,
  },
};

async function exportStage(src: string, dst: string, gen: Record<string, unknown>): Promise<void> {
  await rewritePipeline(src, dst, (_file, tensors) => toFloat16(tensors));
  await writeFile(join(dst, 'generation_config.json'), `${JSON.stringify(gen, null, 2)}\n`);
}

const tmp = `${values.out}.tmp`;
await rm(tmp, { recursive: true, force: true });
await exportStage(values.base, join(tmp, 'base'), GENERATION.base);
await exportStage(values.sr, join(tmp, 'sr'), GENERATION.sr);
// Keep the model card (written by hand from the eval reports) across re-exports.
await cp(join(values.out, 'MODEL_CARD.md'), join(tmp, 'MODEL_CARD.md')).catch(() => {});
await rm(values.out, { recursive: true, force: true });
await rename(tmp, values.out);
console.log(`exported to ${values.out}`);
