import { addNoise } from '../diffusion/ddpm.js';
import { classifierFreeGuidance, concatBatch, duplicateBatch } from '../diffusion/guidance.js';
import type { Generator } from '../diffusion/noise.js';
import { type Denoiser, type SamplerName, type StepInfo, sample } from '../diffusion/sample.js';
import type { Schedule } from '../diffusion/schedule.js';
import type { Thresholding } from '../diffusion/thresholding.js';
import { ImagenError } from '../engine/errors.js';
import { NDArray } from '../engine/ndarray.js';
import * as F from '../engine/ops/index.js';
import type { Runtime } from '../engine/runtime.js';
import { backProject } from './back_projection.js';
import type { UNetRunner } from './unet_runner.js';

/** Text conditioning for one batch: T5 states of the prompts and of the negative (unconditional) prompts. */
export interface TextConditioning {
  promptEmbeds: NDArray;
  negativePromptEmbeds?: NDArray;
}

export interface DenoiseLoopOptions {
  schedule: Schedule;
  timesteps: readonly number[];
  guidanceScale: number;
  thresholding?: Thresholding;
  sampler?: SamplerName;
  eta?: number;
  generator: Generator;
  onStep?: (info: StepInfo) => void | Promise<void>;
  signal?: AbortSignal;
  /** Replay hooks for parity tests: recorded x_T and per-step noise. */
  initialNoise?: NDArray;
  varianceNoise?: (i: number, t: number) => NDArray | undefined;
}

function learnedVariance(schedule: Schedule): boolean {
  return schedule.config.varianceType === 'learned' || schedule.config.varianceType === 'learned_range';
}

/**
 * The UNet as a denoiser, with classifier-free guidance as one batched call [uncond; cond]
 * (IFPipeline steps 7–8). `extra` (the upscaled low-res image of a super-resolution stage) is
 * concatenated to the sample's channels; `classLabels` carries its noise level.
 */
export function guidedDenoiser(
  runner: UNetRunner,
  cond: TextConditioning,
  guidanceScale: number,
  schedule: Schedule,
  extra?: { image: NDArray; classLabels: NDArray },
): Denoiser {
  const cfg = guidanceScale > 1;
  if (cfg && !cond.negativePromptEmbeds) {
    throw new ImagenError('BAD_INPUT', 'guidance_scale > 1 needs negative (unconditional) prompt embeddings');
  }
  const embeds = cfg ? concatBatch([cond.negativePromptEmbeds!, cond.promptEmbeds]) : cond.promptEmbeds;
  const classLabels = extra && (cfg ? duplicateBatch(extra.classLabels) : extra.classLabels);
  const keepVariance = learnedVariance(schedule);
  return async (x, t) => {
    const c = x.shape[1]!;
    let input = extra ? concatChannels(x, extra.image) : x;
    if (cfg) input = duplicateBatch(input);
    let out = await runner.run({ sample: input, timestep: t, encoderHiddenStates: embeds, classLabels });
    if (cfg) out = classifierFreeGuidance(out, guidanceScale, c);
    return keepVariance ? out : firstChannels(out, c);
  };
}

function concatChannels(a: NDArray, b: NDArray): NDArray {
  const [n, ca, h, w] = a.shape as [number, number, number, number];
  const cb = b.shape[1]!;
  const inner = h * w;
  const out = new Float32Array(n * (ca + cb) * inner);
  const da = a.data as Float32Array;
  const db = b.data as Float32Array;
  for (let i = 0; i < n; i++) {
    out.set(da.subarray(i * ca * inner, (i + 1) * ca * inner), i * (ca + cb) * inner);
    out.set(db.subarray(i * cb * inner, (i + 1) * cb * inner), (i * (ca + cb) + ca) * inner);
  }
  return new NDArray('float32', [n, ca + cb, h, w], out);
}

function firstChannels(x: NDArray, c: number): NDArray {
  const [n, ct, ...rest] = x.shape as number[];
  const inner = rest.reduce((s, d) => s * d, 1);
  const out = new Float32Array(n! * c * inner);
  const d = x.data as Float32Array;
  for (let i = 0; i < n!; i++) out.set(d.subarray(i * ct! * inner, (i * ct! + c) * inner), i * c * inner);
  return new NDArray('float32', [n!, c, ...rest], out);
}

/** Stage I: text → image at the UNet's own resolution (IFPipeline.__call__). Returns x0 in [−1, 1]. */
export async function textToImage(
  runner: UNetRunner,
  cond: TextConditioning,
  size: { height: number; width: number },
  o: DenoiseLoopOptions,
): Promise<NDArray> {
  const b = cond.promptEmbeds.shape[0]!;
  const channels = runner.unet.config.in_channels;
  const x = o.initialNoise ?? o.generator.randnNDArray([b, channels, size.height, size.width]);
  return runSampling(guidedDenoiser(runner, cond, o.guidanceScale, o.schedule), x, o);
}

/** The sampling loop with a pipeline's options (shared by every IF pipeline). */
export function runSampling(
  denoise: Denoiser,
  x: NDArray,
  o: DenoiseLoopOptions,
  afterStep?: (x: NDArray, i: number, t: number) => NDArray,
): Promise<NDArray> {
  return sample({
    denoise,
    sample: x,
    timesteps: o.timesteps,
    schedule: o.schedule,
    thresholding: o.thresholding,
    sampler: o.sampler,
    eta: o.eta,
    generator: o.generator,
    varianceNoise: o.varianceNoise,
    onStep: o.onStep,
    signal: o.signal,
    afterStep,
  });
}

/** Bilinear resize with align_corners=True, as IFSuperResolutionPipeline upscales the low-res image. */
export async function upscaleBilinear(
  rt: Runtime,
  image: NDArray,
  height: number,
  width: number,
): Promise<NDArray> {
  const f = rt.compile(({ x }) => F.resizeBilinear(x!, height, width, true), { name: 'upscale' });
  const out = (await f.run({ x: image })).output!;
  await f.release();
  return out;
}

export interface SuperResolutionOptions extends DenoiseLoopOptions {
  /** Noise-conditioning augmentation level in [0, 1000) (IF default 250). */
  noiseLevel: number;
  imageNoisingSchedule: Schedule;
  /** Replay hook: recorded augmentation noise. */
  augmentationNoise?: NDArray;
  /** Correct the output's low frequencies towards `lowRes` (back_projection.ts); default off, as IF. */
  backProjection?: boolean;
}

/**
 * Stage II (IFSuperResolutionPipeline): upscale the low-res image, noise it to `noiseLevel`
 * (noise-conditioning augmentation, Imagen §2.5), and denoise a fresh high-res sample
 * conditioned on it. Draw order: x_T first, then the augmentation noise (as diffusers).
 */
export async function superResolution(
  rt: Runtime,
  runner: UNetRunner,
  cond: TextConditioning,
  lowRes: NDArray,
  size: { height: number; width: number },
  o: SuperResolutionOptions,
): Promise<NDArray> {
  if (
    !Number.isInteger(o.noiseLevel) ||
    o.noiseLevel < 0 ||
    o.noiseLevel >= o.imageNoisingSchedule.numTrainTimesteps
  ) {
    throw new ImagenError(
      'BAD_INPUT',
      `noise level must be an integer in [0, ${o.imageNoisingSchedule.numTrainTimesteps}), got ${o.noiseLevel}`,
    );
  }
  const b = cond.promptEmbeds.shape[0]!;
  const channels = runner.unet.config.in_channels / 2;
  if (lowRes.shape[0] !== b || lowRes.shape[1] !== channels) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `low-res image must be [${b}, ${channels}, h, w], got [${lowRes.shape.join(', ')}]`,
    );
  }
  const x = o.initialNoise ?? o.generator.randnNDArray([b, channels, size.height, size.width]);
  const up = await upscaleBilinear(rt, lowRes, size.height, size.width);
  const augNoise = o.augmentationNoise ?? o.generator.randnNDArray(up.shape);
  const levels = new Array(b).fill(o.noiseLevel);
  const upNoised = addNoise(up, augNoise, levels, o.imageNoisingSchedule);
  const classLabels = NDArray.i64([b], levels);
  const out = await runSampling(
    guidedDenoiser(runner, cond, o.guidanceScale, o.schedule, { image: upNoised, classLabels }),
    x,
    o,
  );
  return o.backProjection ? backProject(rt, out, lowRes) : out;
}
