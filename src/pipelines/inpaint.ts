/**
 * Inpainting and outpainting for DeepFloyd IF, after diffusers' `IFInpaintingPipeline` (stage I)
 * and `IFInpaintingSuperResolutionPipeline` (stage II). Mask white = repaint, black = keep.
 * Outpainting is inpainting a padded canvas (`extendCanvas`). No Node imports.
 *
 * The kept region follows diffusers exactly: it is the CLEAN input, not the input noised to the
 * current timestep (RePaint-style). diffusers blends `(1 − m)·x_before_step + m·x_after_step`, and
 * x_before_step's kept region was itself the clean image from the start (`prepare_intermediate_images`),
 * so the UNet always sees clean pixels next to noisy ones and the output keeps them bit for bit.
 */
import type { TimestepRequest } from '../diffusion/timesteps.js';
import { ImagenError } from '../engine/errors.js';
import { NDArray } from '../engine/ndarray.js';
import type { Runtime } from '../engine/runtime.js';
import type { RgbImage } from '../io/image.js';
import { backProject } from './back_projection.js';
import type { DenoiseLoopOptions, TextConditioning } from './if_pipeline.js';
import {
  blendWithMask,
  denoiseFromImage,
  type GrayImage,
  type ImagePipelineOptions,
  type ImageSrStageOptions,
  type ImageStageOptions,
  ifResizeTarget,
  imageForStage,
  prepareImageCascade,
  resizeChannels,
  runImageStage,
  type SrConditioning,
  sizeNote,
} from './img2img.js';
import { stageBackProjection, stageNoiseLevel } from './stage_run.js';
import type { StageModels, TextModels } from './text_to_image.js';
import type { UNetRunner } from './unet_runner.js';

/**
 * diffusers `preprocess_mask_image` for a PIL mask: grey levels, resized like the image (IF's
 * rule, bicubic), scaled to [0, 1] and binarised at 0.5. Returns [1, 1, H, W] float32 of 0/1.
 */
export function maskForStage(mask: GrayImage, stageSize: number): NDArray {
  const t = ifResizeTarget(mask.width, mask.height, stageSize);
  const px =
    t.width === mask.width && t.height === mask.height
      ? mask.data
      : resizeChannels(mask.data, mask.width, mask.height, 1, t.width, t.height);
  const out = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) out[i] = px[i]! / 255 >= 0.5 ? 1 : 0;
  return new NDArray('float32', [1, 1, t.height, t.width], out);
}

/** Stage I inpainting (`IFInpaintingPipeline`): `mask` [1, 1, H, W] of 0 (keep) / 1 (repaint). */
export function inpaint(
  runner: UNetRunner,
  cond: TextConditioning,
  image: NDArray,
  mask: NDArray,
  o: DenoiseLoopOptions & { strength: number; imageNoise?: NDArray },
): Promise<NDArray> {
  return denoiseFromImage(runner, cond, image, { ...o, mask });
}

/**
 * Stage II inpainting (`IFInpaintingSuperResolutionPipeline`): `original` and `mask` at the
 * stage's size, `sr.lowRes` the stage-I (inpainted) result.
 */
export function inpaintSuperResolution(
  runner: UNetRunner,
  cond: TextConditioning,
  original: NDArray,
  mask: NDArray,
  o: DenoiseLoopOptions & { strength: number; sr: SrConditioning; imageNoise?: NDArray },
): Promise<NDArray> {
  return denoiseFromImage(runner, cond, original, { ...o, mask });
}

/** diffusers' defaults: `IFInpaintingPipeline` (50 steps, guidance 7, strength 1) and its SR stage (100, 4, 0.8, noise 0). */
export const IF_INPAINT_DEFAULTS = {
  base: { steps: 50 as TimestepRequest, guidanceScale: 7.0, strength: 1.0 },
  sr: { steps: 100 as TimestepRequest, guidanceScale: 4.0, strength: 0.8, noiseLevel: 0 },
};

export interface InpaintOptions extends ImagePipelineOptions {
  image: RgbImage;
  /** Same size as `image`; white (≥ 128) = repaint, black = keep. */
  mask: GrayImage;
  base?: ImageStageOptions;
  sr?: ImageSrStageOptions;
}

/**
 * Inpainting through the cascade: stage I repaints the masked region at the stage-I size; stage II
 * (optional) super-resolves with the original and the mask at its own size. Pixels under black
 * mask stay the input's at each stage's resolution. Returns each stage's output in [−1, 1].
 */
export async function inpaintImages(
  rt: Runtime,
  text: TextModels | undefined,
  base: StageModels,
  sr: StageModels | undefined,
  o: InpaintOptions,
): Promise<{ base: NDArray; sr?: NDArray }> {
  if (o.mask.width !== o.image.width || o.mask.height !== o.image.height) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `the mask is ${o.mask.width}×${o.mask.height} but the image is ${o.image.width}×${o.image.height}; ` +
        'they must have the same size (white = repaint, black = keep)',
    );
  }
  if (o.mask.data.length !== o.mask.width * o.mask.height) {
    throw new ImagenError('BAD_INPUT', 'the mask must be a single-channel (grey) image');
  }
  const { gen, cond, srCond } = await prepareImageCascade(text, base, sr, o);

  const lo = await imageForStage(o.image, base.unet.config.sample_size, o.resize);
  if (lo.resized) o.onWarning?.(sizeNote('the input image and mask', o.image, lo, 'stage I'));
  const loMask = maskForStage(o.mask, base.unet.config.sample_size);
  const baseOut = await runImageStage(
    rt,
    'stage I',
    base,
    o.base,
    IF_INPAINT_DEFAULTS.base,
    gen,
    o,
    (runner, common) => inpaint(runner, cond, lo.tensor, loMask, common),
  );
  if (!sr) return { base: baseOut };
  const hi = await imageForStage(o.image, sr.unet.config.sample_size, o.resize);
  const hiMask = maskForStage(o.mask, sr.unet.config.sample_size);
  const srOut = await runImageStage(
    rt,
    'stage II',
    sr,
    o.sr,
    IF_INPAINT_DEFAULTS.sr,
    gen,
    o,
    (runner, common) =>
      inpaintSuperResolution(runner, srCond!, hi.tensor, hiMask, {
        ...common,
        sr: {
          rt,
          lowRes: baseOut,
          noiseLevel: stageNoiseLevel(o.sr, sr, IF_INPAINT_DEFAULTS.sr),
          imageNoisingSchedule: sr.imageNoisingSchedule!,
        },
      }),
  );
  if (!stageBackProjection(o.sr, sr)) return { base: baseOut, sr: srOut };
  // Corrected in the repainted region only: the kept region stays the input's pixels.
  const corrected = await backProject(rt, srOut, baseOut);
  return { base: baseOut, sr: blendWithMask(srOut, corrected, hiMask) };
}

// ---------------------------------------------------------------------------------------------
// Outpainting
// ---------------------------------------------------------------------------------------------

export interface Extend {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** Parse `left=64,right=0,top=32,bottom=0` (any subset; missing sides are 0). */
export function parseExtend(spec: string): Extend {
  const e: Extend = { left: 0, right: 0, top: 0, bottom: 0 };
  const seen = new Set<string>();
  for (const part of spec.split(',')) {
    const m = /^\s*(left|right|top|bottom)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m) {
      throw new ImagenError(
        'BAD_INPUT',
        `--extend: "${part.trim()}" is not side=pixels; expected e.g. left=64,right=0,top=32,bottom=0`,
      );
    }
    const side = m[1] as keyof Extend;
    if (seen.has(side)) throw new ImagenError('BAD_INPUT', `--extend: ${side} given twice`);
    seen.add(side);
    e[side] = Number(m[2]);
  }
  if (e.left + e.right + e.top + e.bottom === 0) {
    throw new ImagenError('BAD_INPUT', '--extend: every side is 0; nothing to outpaint');
  }
  return e;
}

/**
 * Outpainting canvas: the image padded by `ext` pixels per side, the new border filled with the
 * nearest edge pixel ('edge', which keeps colours plausible under the noise the repaint starts
 * from when strength < 1) or mid grey ('grey', 0 in model space), and a mask that is white on
 * the border. A given `mask` (same size as the image) marks extra pixels to repaint inside.
 */
export function extendCanvas(
  image: RgbImage,
  ext: Extend,
  fill: 'edge' | 'grey' = 'edge',
  mask?: GrayImage,
): { image: RgbImage; mask: GrayImage } {
  for (const [k, v] of Object.entries(ext)) {
    if (!Number.isInteger(v) || v < 0)
      throw new ImagenError('BAD_INPUT', `extend ${k} must be a non-negative integer, got ${v}`);
  }
  if (mask && (mask.width !== image.width || mask.height !== image.height)) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `the mask is ${mask.width}×${mask.height} but the image is ${image.width}×${image.height}`,
    );
  }
  const W = image.width + ext.left + ext.right;
  const H = image.height + ext.top + ext.bottom;
  const data = new Uint8Array(W * H * 3);
  const m = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    const sy = y - ext.top;
    for (let x = 0; x < W; x++) {
      const sx = x - ext.left;
      const inside = sx >= 0 && sx < image.width && sy >= 0 && sy < image.height;
      const o = (y * W + x) * 3;
      if (inside || fill === 'edge') {
        const cx = Math.min(Math.max(sx, 0), image.width - 1);
        const cy = Math.min(Math.max(sy, 0), image.height - 1);
        const i = (cy * image.width + cx) * 3;
        data[o] = image.data[i]!;
        data[o + 1] = image.data[i + 1]!;
        data[o + 2] = image.data[i + 2]!;
      } else {
        data[o] = data[o + 1] = data[o + 2] = 128;
      }
      m[y * W + x] = inside ? (mask ? mask.data[sy * image.width + sx]! : 0) : 255;
    }
  }
  return { image: { width: W, height: H, data }, mask: { width: W, height: H, data: m } };
}
