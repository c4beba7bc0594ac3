import { addNoise } from '../diffusion/ddpm.js';
import { repeatRows } from '../diffusion/guidance.js';
import { Generator } from '../diffusion/noise.js';
import type { Denoiser } from '../diffusion/sample.js';
import type { Schedule } from '../diffusion/schedule.js';
import { roundHalfEven, type TimestepRequest } from '../diffusion/timesteps.js';
import { ImagenError } from '../engine/errors.js';
import { NDArray } from '../engine/ndarray.js';
import type { Runtime } from '../engine/runtime.js';
import { imagesToTensor, type RgbImage } from '../io/image.js';
import { encodePrompts } from '../models/t5/t5_encoder.js';
import type { UNetConfig } from '../models/unet/config.js';
import { backProject } from './back_projection.js';
import type { ProgressEvent } from './events.js';
import {
  type DenoiseLoopOptions,
  guidedDenoiser,
  runSampling,
  type TextConditioning,
  upscaleBilinear,
} from './if_pipeline.js';
import { type PipelineStageDefaults, runStage, stageBackProjection, stageNoiseLevel } from './stage_run.js';
import type { SrStageOptions, StageModels, StageOptions, TextModels } from './text_to_image.js';
import type { UNetRunner } from './unet_runner.js';

const f = Math.fround;

// ---------------------------------------------------------------------------------------------
// Images: IF's resize rule and a PIL-like bicubic resampler
// ---------------------------------------------------------------------------------------------

/** A single-channel 8-bit image (masks), row-major. */
export interface GrayImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Resize an RGB image to exactly width × height (inject sharp, canvas, … or use `resizeRgb`). */
export type Resizer = (img: RgbImage, width: number, height: number) => Promise<RgbImage> | RgbImage;

/**
 * The size diffusers' IF image pipelines resize an input to (`deepfloyd_if` `resize()`): the short
 * side becomes `size`, the long side keeps the aspect ratio rounded to a multiple of 8 (Python
 * `round`, half to even). A square image becomes size × size.
 */
export function ifResizeTarget(
  width: number,
  height: number,
  size: number,
): { width: number; height: number } {
  if (width === height) return { width: size, height: size };
  const coef = width / height;
  if (coef >= 1) return { width: roundHalfEven((size / 8) * coef) * 8, height: size };
  return { width: size, height: roundHalfEven(size / 8 / coef) * 8 };
}

/** PIL's bicubic kernel (a = −0.5). */
function bicubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** Per output index: first input index and normalised weights (PIL `precompute_coeffs`, antialiased). */
function coefficients(inSize: number, outSize: number): { start: number; weights: Float64Array }[] {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const out: { start: number; weights: Float64Array }[] = [];
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const w = new Float64Array(hi - lo);
    let sum = 0;
    for (let k = 0; k < w.length; k++) {
      w[k] = bicubic((k + lo - center + 0.5) / filterScale);
      sum += w[k]!;
    }
    if (sum !== 0) for (let k = 0; k < w.length; k++) w[k] = w[k]! / sum;
    out.push({ start: lo, weights: w });
  }
  return out;
}

/**
 * Bicubic resampling as PIL's `Image.resize(..., BICUBIC, reducing_gap=None)` does it (what
 * diffusers' IF pipelines call): antialiased when shrinking, horizontal pass then vertical, 8-bit
 * rounding in between. Float arithmetic instead of PIL's fixed point (22 fraction bits); on random
 * images it gave PIL 12's bytes exactly, though a value exactly at .5 could round the other way.
 */
export function resizeChannels(
  data: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  const clip8 = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v));
  let src = data;
  let w = width;
  if (outWidth !== width) {
    const cx = coefficients(width, outWidth);
    const dst = new Uint8Array(outWidth * height * channels);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < outWidth; x++) {
        const { start, weights } = cx[x]!;
        for (let c = 0; c < channels; c++) {
          let s = 0;
          for (let k = 0; k < weights.length; k++)
            s += weights[k]! * src[(y * w + start + k) * channels + c]!;
          dst[(y * outWidth + x) * channels + c] = clip8(s);
        }
      }
    }
    src = dst;
    w = outWidth;
  }
  if (outHeight !== height) {
    const cy = coefficients(height, outHeight);
    const dst = new Uint8Array(w * outHeight * channels);
    for (let y = 0; y < outHeight; y++) {
      const { start, weights } = cy[y]!;
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < channels; c++) {
          let s = 0;
          for (let k = 0; k < weights.length; k++)
            s += weights[k]! * src[((start + k) * w + x) * channels + c]!;
          dst[(y * w + x) * channels + c] = clip8(s);
        }
      }
    }
    src = dst;
  }
  return src === data ? data.slice() : src;
}

/** Pure-TS bicubic resize of an RGB image (the default `Resizer`). */
export function resizeRgb(img: RgbImage, width: number, height: number): RgbImage {
  return { width, height, data: resizeChannels(img.data, img.width, img.height, 3, width, height) };
}

/**
 * Bring an input image to a stage's size by IF's rule; `resized` says whether anything changed
 * (the caller warns: the model only ever saw its own resolution).
 */
export async function imageForStage(
  img: RgbImage,
  stageSize: number,
  resize: Resizer = resizeRgb,
): Promise<{ tensor: NDArray; width: number; height: number; resized: boolean }> {
  const t = ifResizeTarget(img.width, img.height, stageSize);
  const resized = t.width !== img.width || t.height !== img.height;
  const out = resized ? await resize(img, t.width, t.height) : img;
  return { tensor: imagesToTensor([out]), width: t.width, height: t.height, resized };
}

// ---------------------------------------------------------------------------------------------
// Stage checks, strength, conditioning
// ---------------------------------------------------------------------------------------------

/**
 * A stage-II UNet takes the noisy image and the upscaled low-res image stacked (in_channels 6) and
 * embeds the augmentation noise level as a class label; stage I takes 3 channels and no class
 * label. Passing one for the other fails deep inside the graph, so say it up front.
 */
export function checkStageUNet(cfg: UNetConfig, want: 'base' | 'sr', where: string): void {
  const isSr = cfg.in_channels === 6 || cfg.class_embed_type !== null;
  const describe = `in_channels ${cfg.in_channels}, class embedding ${cfg.class_embed_type === null ? 'none' : `'${cfg.class_embed_type}'`}`;
  if (want === 'base' && isSr) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `${where} is a super-resolution (stage II) model (${describe}); this needs a stage-I model ` +
        '(in_channels 3, no class embedding). Pass stage-II folders as --sr-model (or to `imagen upscale`).',
    );
  }
  if (want === 'sr' && !(cfg.in_channels === 6 && cfg.class_embed_type !== null)) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `${where} is not a super-resolution (stage II) model (${describe}); stage II needs in_channels 6 ` +
        '(noisy image + upscaled low-res image) and a class embedding for the noise level. ' +
        'Pass stage-I folders as --model.',
    );
  }
}

/**
 * diffusers `get_timesteps(num_inference_steps, strength)`: keep the last ⌊n·strength⌋ timesteps
 * of the schedule; the input is noised to the first kept one. Strength 1 keeps them all.
 */
export function strengthTimesteps(timesteps: readonly number[], strength: number): number[] {
  if (!(strength > 0 && strength <= 1)) {
    throw new ImagenError('BAD_INPUT', `strength must be in (0, 1], got ${strength}`);
  }
  const n = timesteps.length;
  const init = Math.min(Math.floor(n * strength), n);
  const start = Math.max(n - init, 0);
  const kept = timesteps.slice(start);
  if (kept.length === 0) {
    throw new ImagenError(
      'BAD_INPUT',
      `strength ${strength} with ${n} steps leaves no denoising step (⌊${n}·${strength}⌋ = 0); raise the strength or the steps`,
    );
  }
  return kept;
}

/** Rows of a single input image repeated to the batch (diffusers repeats the image per prompt). */
export function broadcastBatch(x: NDArray, batch: number): NDArray {
  const b = x.shape[0]!;
  if (b === batch) return x;
  if (b !== 1) throw new ImagenError('SHAPE_MISMATCH', `${b} images for a batch of ${batch}; give one image`);
  return repeatRows(x, batch);
}

/** Options every image-input pipeline takes. */
export interface ImagePipelineOptions {
  prompt: string | readonly string[];
  negativePrompt?: string;
  numImagesPerPrompt?: number;
  seed?: number;
  cleanCaption?: boolean;
  /** Precomputed embeddings (`imagen encode`), instead of running the text encoder. */
  embeddings?: TextConditioning;
  /** How input images are resized to a stage's size (default: pure-TS bicubic, as diffusers' PIL). */
  resize?: Resizer;
  onProgress?: (e: ProgressEvent) => void | Promise<void>;
  /** Non-fatal notes (an input had to be resized). */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

/** Per-stage options of the image-input pipelines. */
export interface ImageStageOptions extends StageOptions {
  /** How much of the schedule to run from the noised input, in (0, 1]. */
  strength?: number;
}

/** A super-resolution stage of the image-input pipelines: strength, noise level and back-projection. */
export interface ImageSrStageOptions extends ImageStageOptions, SrStageOptions {}

/** Encode (or take) the prompt embeddings and repeat them per image, as `generateImages` does. */
export async function prepareConditioning(
  text: TextModels | undefined,
  o: ImagePipelineOptions,
): Promise<TextConditioning> {
  const prompts = typeof o.prompt === 'string' ? [o.prompt] : [...o.prompt];
  const per = o.numImagesPerPrompt ?? 1;
  if (!Number.isInteger(per) || per < 1) {
    throw new ImagenError('BAD_INPUT', `num images must be a positive integer, got ${per}`);
  }
  let cond = o.embeddings;
  if (!cond) {
    if (!text) {
      throw new ImagenError(
        'BAD_INPUT',
        'no text encoder available: give a folder with text_encoder/ and tokenizer/, or precomputed embeddings',
      );
    }
    await o.onProgress?.({ status: 'encode', prompts: prompts.length });
    const e = await encodePrompts(text.encoder, text.tokenizer, prompts, {
      maxLength: text.maxLength,
      cleanCaption: o.cleanCaption ?? true,
      negativePrompt: o.negativePrompt ?? '',
    });
    cond = { promptEmbeds: e.promptEmbeds, negativePromptEmbeds: e.negativePromptEmbeds };
  }
  return {
    promptEmbeds: repeatRows(cond.promptEmbeds, per),
    negativePromptEmbeds: cond.negativePromptEmbeds && repeatRows(cond.negativePromptEmbeds, per),
  };
}

/**
 * The conditioning of a stage: a stage with its own text encoder (a super-resolution stage
 * trained on a frozen copy of an encoder) reads the prompt itself, as `generateImages` does;
 * precomputed embeddings belong to the stage-I encoder, so they are not used for it.
 */
export async function stageConditioning(
  stage: StageModels,
  shared: TextConditioning,
  o: ImagePipelineOptions,
): Promise<TextConditioning> {
  return stage.text ? prepareConditioning(stage.text, { ...o, embeddings: undefined }) : shared;
}

/**
 * What every image-input pipeline (vary, inpaint) checks and prepares before its stages run: each
 * stage's UNet is the kind its slot needs, the conditioning of both stages (width-checked), and
 * the noise generator.
 */
export async function prepareImageCascade(
  text: TextModels | undefined,
  base: StageModels,
  sr: StageModels | undefined,
  o: ImagePipelineOptions,
): Promise<{ gen: Generator; cond: TextConditioning; srCond?: TextConditioning }> {
  checkStageUNet(base.unet.config, 'base', 'the stage-I model');
  if (sr) checkStageUNet(sr.unet.config, 'sr', 'the stage-II model');
  if (sr && !sr.imageNoisingSchedule) {
    throw new ImagenError('CONFIG_INVALID', 'the super-resolution model has no image_noising_scheduler');
  }
  const gen = new Generator(o.seed ?? 0);
  const cond = await prepareConditioning(text, o);
  checkEmbeddingWidth(cond, base.unet.config, 'the stage-I UNet');
  const srCond = sr && (await stageConditioning(sr, cond, o));
  if (sr) checkEmbeddingWidth(srCond!, sr.unet.config, 'the stage-II UNet');
  return { gen, cond, srCond };
}

/** The UNet projects T5 states of width encoder_hid_dim; another encoder's states cannot fit. */
export function checkEmbeddingWidth(cond: TextConditioning, cfg: UNetConfig, where: string): void {
  const d = cond.promptEmbeds.shape[2];
  if (cfg.encoder_hid_dim !== null && d !== cfg.encoder_hid_dim) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `text embeddings have width ${d} but ${where} expects ${cfg.encoder_hid_dim} (encoder_hid_dim): ` +
        'the text encoder or embeddings do not belong to this model',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The denoising loop from an image
// ---------------------------------------------------------------------------------------------

export interface LoopArgs {
  denoise: Denoiser;
  sample: NDArray;
  timesteps: readonly number[];
  o: DenoiseLoopOptions;
  /** Applied to x after every scheduler step (inpainting's blend with the original). */
  afterStep?: (x: NDArray, i: number, t: number) => NDArray;
}

/**
 * The loop of `diffusion/sample.ts` with one addition: `afterStep` rewrites the sample after each
 * scheduler step, before progress is reported and before the next model call (diffusers IF
 * inpainting blends there). `timesteps` may start mid-schedule: prev_t is the next list entry,
 * exactly as diffusers after `get_timesteps`.
 */
export function denoiseLoop(a: LoopArgs): Promise<NDArray> {
  return runSampling(a.denoise, a.sample, { ...a.o, timesteps: a.timesteps }, a.afterStep);
}

/** Super-resolution conditioning: the low-res image, upscaled and noised to `noiseLevel`. */
export interface SrConditioning {
  rt: Runtime;
  /** [B or 1, 3, h, w] in [−1, 1] (a stage-I output or a user image). */
  lowRes: NDArray;
  noiseLevel: number;
  imageNoisingSchedule: Schedule;
  /** Replay hook: recorded augmentation noise. */
  augmentationNoise?: NDArray;
}

export interface FromImageOptions extends DenoiseLoopOptions {
  /** In (0, 1]: the first ⌊n·strength⌋ … see `strengthTimesteps`. */
  strength: number;
  /** Inpainting: [1 or B, 1, H, W] of 0 (keep) / 1 (repaint). */
  mask?: NDArray;
  /** Stage II: condition on an upscaled low-res image. */
  sr?: SrConditioning;
  /** Replay hook: the noise `add_noise` uses to noise the input. */
  imageNoise?: NDArray;
}

/** (1 − m)·a + m·b per pixel, the mask broadcast over channels; float32 as torch. */
export function blendWithMask(keep: NDArray, repaint: NDArray, mask: NDArray): NDArray {
  const [b, c, h, w] = keep.shape as [number, number, number, number];
  const plane = h * w;
  const ka = keep.data as Float32Array;
  const ra = repaint.data as Float32Array;
  const m = mask.data as Float32Array;
  const mb = mask.shape[0]!;
  const out = new Float32Array(ka.length);
  for (let n = 0; n < b; n++) {
    const mo = (mb === 1 ? 0 : n) * plane;
    for (let ch = 0; ch < c; ch++) {
      const o = (n * c + ch) * plane;
      for (let p = 0; p < plane; p++) {
        const mv = m[mo + p]!;
        out[o + p] = f(f(f(1 - mv) * ka[o + p]!) + f(mv * ra[o + p]!));
      }
    }
  }
  return new NDArray('float32', [b, c, h, w], out);
}

/**
 * The shared core of IF img2img / inpainting, both stages (diffusers `IFImg2Img*Pipeline`,
 * `IFInpainting*Pipeline`): trim the schedule by `strength`, noise the input image to the first
 * kept timestep (`add_noise`), and denoise with classifier-free guidance. With a mask, the kept
 * (mask 0) region is the CLEAN input — initially and after every step, where diffusers blends the
 * stepped sample with the sample the step started from. With `sr`, the UNet is also given the
 * low-res image, upscaled bilinearly (align_corners) to the input's size and noised to `noiseLevel`.
 * Draw order as diffusers: the input's noise, then the augmentation noise, then per-step noise.
 */
export async function denoiseFromImage(
  runner: UNetRunner,
  cond: TextConditioning,
  image: NDArray,
  o: FromImageOptions,
): Promise<NDArray> {
  const b = cond.promptEmbeds.shape[0]!;
  const [, c, h, w] = image.shape as [number, number, number, number];
  const channels = o.sr ? runner.unet.config.in_channels / 2 : runner.unet.config.in_channels;
  if (image.shape.length !== 4 || c !== channels) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `input image must be [B, ${channels}, H, W], got [${image.shape.join(', ')}]`,
    );
  }
  const timesteps = strengthTimesteps(o.timesteps, o.strength);
  const original = broadcastBatch(image, b);
  const noise = o.imageNoise ?? o.generator.randnNDArray([b, c, h, w]);
  const noised = addNoise(original, noise, new Array(b).fill(timesteps[0]), o.schedule);
  let mask: NDArray | undefined;
  if (o.mask) {
    const [mb, mc, mh, mw] = o.mask.shape as number[];
    if (o.mask.shape.length !== 4 || mc !== 1 || mh !== h || mw !== w || (mb !== 1 && mb !== b)) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `mask must be [1, 1, ${h}, ${w}] to match the image, got [${o.mask.shape.join(', ')}]`,
      );
    }
    mask = o.mask;
  }
  const start = mask ? blendWithMask(original, noised, mask) : noised;

  let extra: { image: NDArray; classLabels: NDArray } | undefined;
  if (o.sr) {
    const s = o.sr;
    if (
      !Number.isInteger(s.noiseLevel) ||
      s.noiseLevel < 0 ||
      s.noiseLevel >= s.imageNoisingSchedule.numTrainTimesteps
    ) {
      throw new ImagenError(
        'BAD_INPUT',
        `noise level must be an integer in [0, ${s.imageNoisingSchedule.numTrainTimesteps}), got ${s.noiseLevel}`,
      );
    }
    const low = broadcastBatch(s.lowRes, b);
    if (low.shape[1] !== channels) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `low-res image must have ${channels} channels, got [${low.shape.join(', ')}]`,
      );
    }
    const up = await upscaleBilinear(s.rt, low, h, w);
    const augNoise = s.augmentationNoise ?? o.generator.randnNDArray(up.shape);
    const levels = new Array(b).fill(s.noiseLevel);
    extra = {
      image: addNoise(up, augNoise, levels, s.imageNoisingSchedule),
      classLabels: NDArray.i64([b], levels),
    };
  }

  return denoiseLoop({
    denoise: guidedDenoiser(runner, cond, o.guidanceScale, o.schedule, extra),
    sample: start,
    timesteps,
    o,
    afterStep: mask ? (x) => blendWithMask(original, x, mask!) : undefined,
  });
}

/** Stage I img2img (`IFImg2ImgPipeline`). */
export function imageToImage(
  runner: UNetRunner,
  cond: TextConditioning,
  image: NDArray,
  o: DenoiseLoopOptions & { strength: number; imageNoise?: NDArray },
): Promise<NDArray> {
  return denoiseFromImage(runner, cond, image, o);
}

/** Stage II img2img (`IFImg2ImgSuperResolutionPipeline`): `original` at the stage's size, `lowRes` the stage-I result. */
export function imageToImageSuperResolution(
  runner: UNetRunner,
  cond: TextConditioning,
  original: NDArray,
  o: DenoiseLoopOptions & { strength: number; sr: SrConditioning; imageNoise?: NDArray },
): Promise<NDArray> {
  return denoiseFromImage(runner, cond, original, o);
}

// ---------------------------------------------------------------------------------------------
// High level: one call per cascade
// ---------------------------------------------------------------------------------------------

/** A pipeline's defaults for one stage, with its img2img strength. */
export interface ImageStageDefaults extends PipelineStageDefaults {
  strength: number;
}

/** `runStage` plus img2img's strength (the caller's, else the pipeline's: folders do not set it). */
export function runImageStage<T>(
  rt: Runtime,
  name: string,
  models: StageModels,
  opts: ImageStageOptions | undefined,
  d: ImageStageDefaults,
  gen: Generator,
  o: ImagePipelineOptions,
  run: (runner: UNetRunner, common: DenoiseLoopOptions & { strength: number }) => Promise<T>,
): Promise<T> {
  const ctx = { generator: gen, signal: o.signal, onProgress: o.onProgress };
  return runStage(rt, name, models, opts, d, ctx, (runner, common) =>
    run(runner, { ...common, strength: opts?.strength ?? d.strength }),
  );
}

/** diffusers' defaults: `IFImg2ImgPipeline` (80 steps, guidance 10, strength 0.7) and its SR stage. */
export const IF_IMG2IMG_DEFAULTS = {
  base: { steps: 80 as TimestepRequest, guidanceScale: 10.0, strength: 0.7 },
  sr: { steps: 50 as TimestepRequest, guidanceScale: 4.0, strength: 0.8, noiseLevel: 250 },
};

export interface VaryOptions extends ImagePipelineOptions {
  image: RgbImage;
  base?: ImageStageOptions;
  sr?: ImageSrStageOptions;
}

/** The warning when an input had to be resized: the model has only ever seen its own resolution. */
export function sizeNote(
  what: string,
  img: { width: number; height: number },
  to: { width: number; height: number },
  stage: string,
): string {
  return `${what} is ${img.width}×${img.height}; resized to ${to.width}×${to.height} for ${stage}`;
}

/**
 * Image variation through the cascade: stage I img2img of the input at the stage-I size, then
 * (optionally) stage-II img2img super-resolution of the input at the stage-II size conditioned
 * on the stage-I result. Returns each stage's output in [−1, 1].
 */
export async function varyImages(
  rt: Runtime,
  text: TextModels | undefined,
  base: StageModels,
  sr: StageModels | undefined,
  o: VaryOptions,
): Promise<{ base: NDArray; sr?: NDArray }> {
  const { gen, cond, srCond } = await prepareImageCascade(text, base, sr, o);

  const lo = await imageForStage(o.image, base.unet.config.sample_size, o.resize);
  if (lo.resized) o.onWarning?.(sizeNote('the input image', o.image, lo, 'stage I'));
  const baseOut = await runImageStage(
    rt,
    'stage I',
    base,
    o.base,
    IF_IMG2IMG_DEFAULTS.base,
    gen,
    o,
    (runner, common) => imageToImage(runner, cond, lo.tensor, common),
  );
  if (!sr) return { base: baseOut };
  const hi = await imageForStage(o.image, sr.unet.config.sample_size, o.resize);
  const srOut = await runImageStage(
    rt,
    'stage II',
    sr,
    o.sr,
    IF_IMG2IMG_DEFAULTS.sr,
    gen,
    o,
    (runner, common) =>
      imageToImageSuperResolution(runner, srCond!, hi.tensor, {
        ...common,
        sr: {
          rt,
          lowRes: baseOut,
          noiseLevel: stageNoiseLevel(o.sr, sr, IF_IMG2IMG_DEFAULTS.sr),
          imageNoisingSchedule: sr.imageNoisingSchedule!,
        },
      }),
  );
  return {
    base: baseOut,
    sr: stageBackProjection(o.sr, sr) ? await backProject(rt, srOut, baseOut) : srOut,
  };
}
