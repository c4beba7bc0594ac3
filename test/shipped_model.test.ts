/**
 * The model that ships in the package follows its prompts: a fast faithfulness check on a few
 * grammar prompts (colour and shape of single objects, judged by the same checker as
 * `imagen eval`), which the same architecture with untrained weights fails.
 */
import { describe, expect, it } from 'vitest';
import { synthExamples } from '../src/data/synth/splits.js';
import { checkImage } from '../src/eval/checker.js';
import { tensorToImages } from '../src/io/image.js';
import { generateImages } from '../src/pipelines/text_to_image.js';
import { loadPipelineFolder, openTextEncoder, stageModels } from '../src/platform/node/pipeline_folder.js';
import { createRuntime } from '../src/platform/node/runtime.js';
import { shippedModel } from '../src/platform/node/shipped_model.js';

const shipped = shippedModel();
if (!shipped) {
  const msg = 'no shipped model in models/imagen-ts-shapes: the shipped-model test is skipped';
  if (process.env.CI === 'true') throw new Error(`${msg} (a failure under CI=true)`);
  console.warn(msg);
}

/** Single objects from the training grammar: colour and shape, the attributes learnt first. */
const PROMPTS = synthExamples(11, 'train', 400)
  .filter((e) => e.scene.kind === 'objects' && e.scene.groups.length === 1 && e.scene.groups[0]!.count === 1)
  .slice(0, 12);

async function score(randomWeights: boolean): Promise<{ colour: number; shape: number }> {
  const base = await loadPipelineFolder(shipped!.base);
  if (randomWeights) base.unet.initialize(123);
  const rt = createRuntime();
  const encoder = (await openTextEncoder(base, rt))!;
  try {
    const r = await generateImages(
      rt,
      { encoder, tokenizer: base.tokenizer!, maxLength: base.maxTextLength },
      stageModels(base),
      undefined,
      { prompt: PROMPTS.map((p) => p.caption), seed: 5, base: { steps: 25 } },
    );
    const images = tensorToImages(r.base);
    let colour = 0;
    let shape = 0;
    for (const [i, p] of PROMPTS.entries()) {
      const v = (await checkImage(p.scene, images[i]!)).verdicts;
      if (v.colour) colour++;
      if (v.shape) shape++;
    }
    return { colour: colour / PROMPTS.length, shape: shape / PROMPTS.length };
  } finally {
    await encoder.release();
  }
}

describe.skipIf(!shipped)('the shipped model', () => {
  it('draws the prompted colour and shape; an untrained UNet of the same architecture does not', async () => {
    expect(PROMPTS.length).toBe(12);
    const trained = await score(false);
    const random = await score(true);
    console.log(
      `shipped model on ${PROMPTS.length} prompts: trained ${JSON.stringify(trained)}, random ${JSON.stringify(random)}`,
    );
    // Measured with the committed weights (2026-11-27, v-prediction stage I): trained colour 1.00 / shape 1.00,
    // random 0.08 / 0.08 (the ε weights of 2026-11-26: 0.58 / 0.92; 415 k: 0.75; 560 k: 0.67). The bar is 6 of
    // 12, well above what random weights reach.
    expect(trained.colour).toBeGreaterThanOrEqual(0.5);
    expect(trained.shape).toBeGreaterThanOrEqual(0.3);
    expect(random.colour).toBeLessThanOrEqual(0.25);
  }, 180_000);
});
