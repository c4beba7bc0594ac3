/**
 * Stand-alone super-resolution of a user image with a stage-II IF model
 * (`IFSuperResolutionPipeline` called with a PIL image). No Node imports.
 */
import { Generator } from '../diffusion/noise.js';
import type { SamplerName } from '../diffusion/sample.js';
import type { TimestepRequest } from '../diffusion/timesteps.js';
import { ImagenError } from '../engine/errors.js';
import type { NDArray } from '../engine/ndarray.js';
import type { Runtime } from '../engine/runtime.js';
import type { RgbImage } from '../io/image.js';
import { superResolution } from './if_pipeline.js';
import {
  broadcastBatch,
  checkEmbeddingWidth,
  checkStageUNet,
  type ImagePipelineOptions,
  ifResizeTarget,
  imageForStage,
  prepareConditioning,
  runImageStage,
  sizeNote,
} from './img2img.js';
import { stageBackProjection, stageNoiseLevel } from './stage_run.js';
import { IF_DEFAULTS, type StageModels, type TextModels } from './text_to_image.js';

/** IF's stage II is a ×4 upscaler (64 → 256); the low-res size is not stored in its folder. */
export const IF_SR_FACTOR = 4;

export interface UpscaleOptions extends ImagePipelineOptions {
  /** The low-res image; resized (with a warning) to `lowResSize` on its short side. */
  image: RgbImage;
  /** Size the model was trained to lift from (default sample_size / 4: 64 for IF-II). */
  lowResSize?: number;
  steps?: TimestepRequest;
  guidanceScale?: number;
  /** Noise-conditioning augmentation level in [0, 1000) (default 250). */
  noiseLevel?: number;
  thresholding?: 'dynamic' | 'static' | 'none';
  sampler?: SamplerName;
  /** Correct the output's colours towards the input (back_projection.ts); default: the folder's, else off. */
  backProjection?: boolean;
}

/**
 * Upscale a user image: pixels → [−1, 1], resized to the low-res size if needed, then stage II
 * exactly as after stage I (bilinear upscale, augmentation noise, guided denoising from x_T).
 * The output keeps the input's aspect ratio by IF's resize rule (square input → sample_size²).
 */
export async function upscaleImage(
  rt: Runtime,
  text: TextModels | undefined,
  sr: StageModels,
  o: UpscaleOptions,
): Promise<NDArray> {
  checkStageUNet(sr.unet.config, 'sr', 'the upscaling model');
  if (!sr.imageNoisingSchedule) {
    throw new ImagenError('CONFIG_INVALID', 'the super-resolution model has no image_noising_scheduler');
  }
  const size = sr.unet.config.sample_size;
  const lowSize = o.lowResSize ?? Math.round(size / IF_SR_FACTOR);
  if (!Number.isInteger(lowSize) || lowSize < 1 || lowSize > size) {
    throw new ImagenError(
      'BAD_INPUT',
      `low-res size must be an integer in [1, ${size}], got ${o.lowResSize}`,
    );
  }
  const gen = new Generator(o.seed ?? 0);
  const cond = await prepareConditioning(text, o);
  checkEmbeddingWidth(cond, sr.unet.config, 'the stage-II UNet');
  const low = await imageForStage(o.image, lowSize, o.resize);
  if (low.resized) o.onWarning?.(sizeNote('the input image', o.image, low, `the ${lowSize}px low-res input`));
  const out = ifResizeTarget(low.width, low.height, size);
  const defaults = { ...IF_DEFAULTS.sr, strength: 1 };
  return runImageStage(
    rt,
    'stage II',
    sr,
    { steps: o.steps, guidanceScale: o.guidanceScale, thresholding: o.thresholding, sampler: o.sampler },
    defaults,
    gen,
    o,
    (runner, common) =>
      superResolution(rt, runner, cond, broadcastBatch(low.tensor, cond.promptEmbeds.shape[0]!), out, {
        ...common,
        noiseLevel: stageNoiseLevel(o, sr, IF_DEFAULTS.sr),
        imageNoisingSchedule: sr.imageNoisingSchedule!,
        backProjection: stageBackProjection(o, sr),
      }),
  );
}
