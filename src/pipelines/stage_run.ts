/**
 * One cascade stage, the same way for every pipeline (text-to-image, image-to-image, inpainting,
 * upscaling): sampling settings resolved in one order, the UNet runner built and released, progress
 * reported. No Node imports.
 */
import type { Generator } from '../diffusion/noise.js';
import { parseThresholding, thresholdingFromConfig } from '../diffusion/thresholding.js';
import { setTimesteps, type TimestepRequest } from '../diffusion/timesteps.js';
import type { Runtime } from '../engine/runtime.js';
import type { ProgressEvent } from './events.js';
import type { DenoiseLoopOptions } from './if_pipeline.js';
import type { StageModels, StageOptions } from './text_to_image.js';
import { stageTiles, stageUNetRunner } from './tiled_unet.js';
import type { UNetRunner } from './unet_runner.js';

/** A pipeline's published defaults for one stage (diffusers' `__call__` defaults). */
export interface PipelineStageDefaults {
  steps: TimestepRequest;
  guidanceScale: number;
  noiseLevel?: number;
}

/**
 * Guidance scale of a stage: the caller's, else the model folder's own (generation_config.json),
 * else the pipeline's. The folder wins over the pipeline because it says how that model was
 * meant to be sampled (a stage II trained to run unguided), while the pipeline's numbers were
 * chosen for DeepFloyd's checkpoints.
 */
export function stageGuidance(
  opts: Pick<StageOptions, 'guidanceScale'> | undefined,
  models: Pick<StageModels, 'defaults'>,
  d: PipelineStageDefaults,
): number {
  return opts?.guidanceScale ?? models.defaults?.guidanceScale ?? d.guidanceScale;
}

/** Noise-conditioning augmentation level of a super-resolution stage, in the same order. */
export function stageNoiseLevel(
  opts: { noiseLevel?: number } | undefined,
  models: Pick<StageModels, 'defaults'>,
  d: PipelineStageDefaults & { noiseLevel: number },
): number {
  return opts?.noiseLevel ?? models.defaults?.noiseLevel ?? d.noiseLevel;
}

/** Back-projection of a super-resolution stage (back_projection.ts): the caller's, else the folder's, else off (IF). */
export function stageBackProjection(
  opts: { backProjection?: boolean } | undefined,
  models: Pick<StageModels, 'defaults'>,
): boolean {
  return opts?.backProjection ?? models.defaults?.backProjection ?? false;
}

export interface StageRunContext {
  generator: Generator;
  signal?: AbortSignal;
  onProgress?: (e: ProgressEvent) => void | Promise<void>;
}

/**
 * Run one stage: steps, guidance, thresholding, sampler and tiles each come from `opts`, else the
 * folder's generation_config, else `d` (thresholding: the scheduler config; sampler: DDPM).
 */
export async function runStage<T>(
  rt: Runtime,
  name: string,
  models: StageModels,
  opts: StageOptions | undefined,
  d: PipelineStageDefaults,
  ctx: StageRunContext,
  run: (runner: UNetRunner, common: DenoiseLoopOptions) => Promise<T>,
): Promise<T> {
  const own = models.defaults ?? {};
  // the registered runner: weight-streaming for checkpoints too big for one ONNX graph
  const runner = stageUNetRunner(rt, models.unet, stageTiles(opts?.tiles, own.tiles));
  const cfg = models.schedule.config;
  const thresholding = opts?.thresholding ?? own.thresholding;
  try {
    return await run(runner, {
      schedule: models.schedule,
      timesteps: setTimesteps(opts?.steps ?? own.steps ?? d.steps, cfg),
      guidanceScale: stageGuidance(opts, models, d),
      thresholding: thresholding ? parseThresholding(thresholding, cfg) : thresholdingFromConfig(cfg),
      sampler: opts?.sampler ?? own.sampler,
      generator: ctx.generator,
      signal: ctx.signal,
      onStep: (s) =>
        ctx.onProgress?.({
          status: 'step',
          stage: name,
          step: s.i + 1,
          total: s.total,
          t: s.t,
          predOriginalSample: s.predOriginalSample,
        }),
    });
  } finally {
    await runner.release();
    await ctx.onProgress?.({ status: 'done', stage: name });
  }
}
