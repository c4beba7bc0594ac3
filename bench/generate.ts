/**
 * Text → 256×256 image with the shipped model and its default settings, as `imagen generate`
 * runs it: cold (load both stages + compile sessions + sample) and warm (sessions cached), plus
 * stage I alone (warm) so the split between the stages is visible, and the process's peak resident
 * memory up to then (generate runs first in `npm run bench`, so nothing else has grown it yet).
 */
import { generateImages } from '../src/pipelines/text_to_image.js';
import { loadPipelineFolder, openTextEncoder, stageModels } from '../src/platform/node/pipeline_folder.js';
import { createRuntime } from '../src/platform/node/runtime.js';
import { shippedModel } from '../src/platform/node/shipped_model.js';
import { summarize } from './engine.js';

export interface GenerateBench {
  generate_256_cold_ms: number;
  generate_256_ms: number;
  generate_stage1_ms: number;
  generate_peak_rss_mb: number;
  base_steps: string;
  sr_steps: string;
}

export async function benchGenerate(
  threads: number,
  repeats: number,
): Promise<GenerateBench | { error: string }> {
  const shipped = shippedModel();
  if (!shipped) return { error: 'no shipped model in this copy (models/imagen-ts-shapes)' };
  const prompt = 'a red circle to the left of a blue square';
  const rt = createRuntime({ threads });
  const t0 = performance.now();
  const base = await loadPipelineFolder(shipped.base);
  const sr = await loadPipelineFolder(shipped.sr);
  const baseStage = stageModels(base);
  const srStage = stageModels(sr, rt);
  const encoder = (await openTextEncoder(base, rt))!;
  const text = { encoder, tokenizer: base.tokenizer!, maxLength: base.maxTextLength };
  const once = async (seed: number) => {
    const r = await generateImages(rt, text, baseStage, srStage, { prompt, seed });
    if (r.sr?.shape[2] !== 256) throw new Error(`expected a 256×256 output, got ${r.sr?.shape}`);
  };
  await once(0);
  const cold = performance.now() - t0;
  const warm: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    await once(i + 1);
    warm.push(performance.now() - t);
  }
  const stage1: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    await generateImages(rt, text, baseStage, undefined, { prompt, seed: i + 1 });
    stage1.push(performance.now() - t);
  }
  // maxRSS is in KiB on Linux and macOS.
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  await encoder.release();
  await srStage.text?.encoder.release();
  return {
    generate_256_cold_ms: Math.round(cold),
    generate_256_ms: Math.round(summarize(warm).medianMs),
    generate_stage1_ms: Math.round(summarize(stage1).medianMs),
    generate_peak_rss_mb: Math.round(peakRssMb),
    base_steps: String(base.defaults?.steps ?? 'IF default'),
    sr_steps: String(sr.defaults?.steps ?? 'IF default'),
  };
}
