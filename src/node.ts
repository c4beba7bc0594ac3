/**
 * imagen-ts for Node: model folders, onnxruntime-node, images on disk — and a one-call
 * text-to-image entry point in the spirit of transformers.js's `pipeline()`.
 */

import { ImagenError } from './engine/errors.js';
import type { NDArray } from './engine/ndarray.js';
import { type RgbImage, tensorToImages } from './io/image.js';
import { encodePrompts } from './models/t5/t5_encoder.js';
import type { ProgressEvent } from './pipelines/events.js';
import { generateImages, type StageOptions } from './pipelines/text_to_image.js';
import { loadPipelineFolder, openTextEncoder, stageModels } from './platform/node/pipeline_folder.js';
import { createRuntime, type RuntimeOptions } from './platform/node/runtime.js';
import { shippedModel } from './platform/node/shipped_model.js';

export { openCheckpoint, openSafetensors, writeSafetensors } from './platform/node/files.js';
export { readImage, writePng } from './platform/node/image.js';
export { loadPipelineFolder, openTextEncoder, savePipelineFolder } from './platform/node/pipeline_folder.js';
export { createRuntime } from './platform/node/runtime.js';
export { shippedModel } from './platform/node/shipped_model.js';
export { loadT5Encoder, loadT5EncoderModule } from './platform/node/t5_loader.js';
export { loadTokenizer } from './platform/node/tokenizer_files.js';
export { exportCheckpoint, runTraining } from './platform/node/train_run.js';
export { loadUNet, loadUNetRunner } from './platform/node/unet_loader.js';

export interface TextToImageOptions extends StageOptions {
  negativePrompt?: string;
  numImages?: number;
  seed?: number;
  sr?: StageOptions & { noiseLevel?: number };
  onProgress?: (e: ProgressEvent) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface TextToImage {
  (prompt: string, options?: TextToImageOptions): Promise<{ images: RgbImage[]; tensor: NDArray }>;
  dispose(): Promise<void>;
}

/**
 * Load a stage-I pipeline folder (and optionally a super-resolution one) once; call the result
 * per prompt. `const gen = await textToImage('my-model'); const { images } = await gen('a red circle');`
 * With no model, the shipped one (both stages): `await (await textToImage())('a red circle')`.
 */
export async function textToImage(
  model?: string,
  options: { srModel?: string; fp16?: boolean } & RuntimeOptions = {},
): Promise<TextToImage> {
  const variant = options.fp16 ? { variant: 'fp16' as const } : {};
  let srModel = options.srModel;
  if (model === undefined) {
    const shipped = shippedModel();
    if (!shipped)
      throw new ImagenError('NOT_FOUND', 'no model given and this copy of imagen-ts has no shipped model');
    model = shipped.base;
    srModel ??= shipped.sr;
  }
  const base = await loadPipelineFolder(model, variant);
  const sr = srModel ? await loadPipelineFolder(srModel, variant) : undefined;
  const rt = createRuntime(options);
  const run = async (prompt: string, o: TextToImageOptions = {}) => {
    const encoder = await openTextEncoder(base, rt);
    if (!encoder || !base.tokenizer) throw new Error(`${model}: no text encoder/tokenizer`);
    let e: Awaited<ReturnType<typeof encodePrompts>>;
    try {
      e = await encodePrompts(encoder, base.tokenizer, [prompt], {
        maxLength: base.maxTextLength,
        negativePrompt: o.negativePrompt ?? '',
      });
    } finally {
      await encoder.release();
    }
    const r = await generateImages(rt, undefined, stageModels(base), sr && stageModels(sr, rt), {
      prompt,
      embeddings: { promptEmbeds: e.promptEmbeds, negativePromptEmbeds: e.negativePromptEmbeds },
      numImagesPerPrompt: o.numImages ?? 1,
      seed: o.seed ?? 0,
      base: {
        steps: o.steps,
        guidanceScale: o.guidanceScale,
        thresholding: o.thresholding,
        sampler: o.sampler,
      },
      sr: o.sr,
      onProgress: o.onProgress,
      signal: o.signal,
    });
    const tensor = r.sr ?? r.base;
    return { images: tensorToImages(tensor), tensor };
  };
  return Object.assign(run, { dispose: async () => {} });
}
