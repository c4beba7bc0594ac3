import { repeatRows } from '../diffusion/guidance.js';
import { Generator } from '../diffusion/noise.js';
import type { SamplerName } from '../diffusion/sample.js';
import type { Schedule } from '../diffusion/schedule.js';
import type { TimestepRequest } from '../diffusion/timesteps.js';
import { ImagenError } from '../engine/errors.js';
import type { NDArray } from '../engine/ndarray.js';
import type { Runtime } from '../engine/runtime.js';
import { encodePrompts, type T5TextEncoder } from '../models/t5/t5_encoder.js';
import type { UNet2DConditionModel } from '../models/unet/unet.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import type { ProgressEvent } from './events.js';
import {
  type DenoiseLoopOptions,
  superResolution,
  type TextConditioning,
  textToImage,
} from './if_pipeline.js';
import type { SdUpscaleComponents } from './sd_upscale.js';
import { type PipelineStageDefaults, runStage, stageBackProjection, stageNoiseLevel } from './stage_run.js';
import { runStage3, STAGE3_DEFAULTS } from './three_stage.js';
import type { UNetTileOptions } from './tiled_unet.js';
import type { UNetRunner } from './unet_runner.js';

export interface StageModels {
  unet: UNet2DConditionModel;
  schedule: Schedule;
  imageNoisingSchedule?: Schedule;
  /**
   * A super-resolution stage trained with its own text encoder encodes the prompt itself; without
   * one it reuses stage I's embeddings, as IF's stage II does with the shared T5.
   */
  text?: TextModels;
  /** The folder's own sampling defaults (generation_config.json), used where the caller sets none. */
  defaults?: StageDefaults;
}

/** Sampling defaults a model folder may carry; unset fields fall back to IF's published ones. */
export interface StageDefaults {
  steps?: TimestepRequest;
  guidanceScale?: number;
  sampler?: SamplerName;
  thresholding?: 'dynamic' | 'static' | 'none';
  noiseLevel?: number;
  /** Super-resolution: correct the output's colours towards the low-res input (back_projection.ts). */
  backProjection?: boolean;
  /** Denoise on overlapping tiles (a super-resolution stage trained on crops). */
  tiles?: UNetTileOptions;
}

export interface TextModels {
  encoder: T5TextEncoder;
  tokenizer: TextTokenizer;
  maxLength: number;
}

export interface StageOptions {
  steps?: TimestepRequest;
  guidanceScale?: number;
  /** 'dynamic' | 'static' | 'none'; default: the scheduler config's choice. */
  thresholding?: 'dynamic' | 'static' | 'none';
  sampler?: SamplerName;
  /** Denoise on overlapping UNet tiles; `false` turns off the folder's default tiling. */
  tiles?: UNetTileOptions | false;
}

/** A super-resolution stage's options: noise-conditioning level and back-projection on top. */
export interface SrStageOptions extends StageOptions {
  noiseLevel?: number;
  backProjection?: boolean;
}

export interface GenerateOptions {
  prompt: string | readonly string[];
  negativePrompt?: string;
  numImagesPerPrompt?: number;
  seed?: number;
  cleanCaption?: boolean;
  base?: StageOptions;
  sr?: SrStageOptions;
  /**
   * Stage III (the SD ×4 upscaler) on stage II's output; needs a stage II. `load` is called only
   * after stage II has finished and released its UNet: it loads the upscaler and encodes the prompts
   * with its CLIP encoder (one row per prompt).
   */
  sr3?: Stage3Request;
  /**
   * Stage III as Imagen has it: a third text-conditioned super-resolution UNet of the IF family
   * (e.g. one trained with `imagen train --stage sr` on 256 → 1024 crops), instead of `sr3`.
   */
  sr3Stage?: { models: StageModels; options?: SrStageOptions };
  /** Precomputed embeddings (`imagen encode`), instead of running the text encoder. */
  embeddings?: TextConditioning;
  onProgress?: (e: ProgressEvent) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface Stage3Request {
  load: () => Promise<{
    components: SdUpscaleComponents;
    promptEmbeds: NDArray;
    negativePromptEmbeds: NDArray;
    release: () => Promise<void>;
  }>;
  steps?: number;
  guidanceScale?: number;
  /** Default 100, as the IF model cards' stage III. */
  noiseLevel?: number;
  onWarning?: (m: string) => void;
}

/** IF's published defaults per stage (diffusers IFPipeline / IFSuperResolutionPipeline). */
export const IF_DEFAULTS = {
  base: { steps: 100 as TimestepRequest, guidanceScale: 7.0 },
  sr: { steps: 50 as TimestepRequest, guidanceScale: 4.0, noiseLevel: 250 },
};

/**
 * Text → image through the cascade: encode the prompt once (stage II reuses stage I's
 * embeddings, as IF does), stage I at its native size, then optional super-resolution.
 * Returns every stage's output in [−1, 1].
 */
export async function generateImages(
  rt: Runtime,
  text: TextModels | undefined,
  base: StageModels,
  sr: StageModels | undefined,
  o: GenerateOptions,
): Promise<{ base: NDArray; sr?: NDArray; sr3?: NDArray }> {
  const prompts = typeof o.prompt === 'string' ? [o.prompt] : [...o.prompt];
  const per = o.numImagesPerPrompt ?? 1;
  if (!Number.isInteger(per) || per < 1)
    throw new ImagenError('BAD_INPUT', `num images must be a positive integer, got ${per}`);
  const gen = new Generator(o.seed ?? 0);
  const encode = async (t: TextModels): Promise<TextConditioning> => {
    await o.onProgress?.({ status: 'encode', prompts: prompts.length });
    const e = await encodePrompts(t.encoder, t.tokenizer, prompts, {
      maxLength: t.maxLength,
      cleanCaption: o.cleanCaption ?? true,
      negativePrompt: o.negativePrompt ?? '',
    });
    return { promptEmbeds: e.promptEmbeds, negativePromptEmbeds: e.negativePromptEmbeds };
  };
  const perImage = (c: TextConditioning): TextConditioning => ({
    promptEmbeds: repeatRows(c.promptEmbeds, per),
    negativePromptEmbeds: c.negativePromptEmbeds && repeatRows(c.negativePromptEmbeds, per),
  });
  let cond = o.embeddings;
  if (!cond) {
    if (!text)
      throw new ImagenError('BAD_INPUT', 'no text encoder in this model folder: pass precomputed embeddings');
    cond = await encode(text);
  }
  cond = perImage(cond);

  const stage = <T>(
    name: string,
    models: StageModels,
    opts: StageOptions | undefined,
    d: PipelineStageDefaults,
    run: (runner: UNetRunner, common: DenoiseLoopOptions) => Promise<T>,
  ) =>
    runStage(rt, name, models, opts, d, { generator: gen, signal: o.signal, onProgress: o.onProgress }, run);

  const size = base.unet.config.sample_size;
  const baseOut = await stage('stage I', base, o.base, IF_DEFAULTS.base, (runner, common) =>
    textToImage(runner, cond!, { height: size, width: size }, common),
  );
  if (!sr) {
    if (o.sr3 || o.sr3Stage) throw new ImagenError('BAD_INPUT', 'stage III needs a stage-II model');
    return { base: baseOut };
  }
  const runSr = async (
    name: string,
    models: StageModels,
    lowRes: NDArray,
    opts: SrStageOptions | undefined,
  ): Promise<NDArray> => {
    if (!models.imageNoisingSchedule)
      throw new ImagenError('CONFIG_INVALID', `the ${name} model has no image noising scheduler`);
    const hi = models.unet.config.sample_size;
    const c = models.text ? perImage(await encode(models.text)) : cond!;
    return stage(name, models, opts, IF_DEFAULTS.sr, (runner, common) =>
      superResolution(
        rt,
        runner,
        c,
        lowRes,
        { height: hi, width: hi },
        {
          ...common,
          noiseLevel: stageNoiseLevel(opts, models, IF_DEFAULTS.sr),
          imageNoisingSchedule: models.imageNoisingSchedule!,
          backProjection: stageBackProjection(opts, models),
        },
      ),
    );
  };
  const srOut = await runSr('stage II', sr, baseOut, o.sr);
  if (o.sr3Stage) {
    if (o.sr3)
      throw new ImagenError('BAD_INPUT', 'give one stage III: an SD x4 upscaler or an IF-style SR UNet');
    return {
      base: baseOut,
      sr: srOut,
      sr3: await runSr('stage III', o.sr3Stage.models, srOut, o.sr3Stage.options),
    };
  }
  if (!o.sr3) return { base: baseOut, sr: srOut };
  const s3 = await o.sr3.load();
  try {
    const sr3Out = await runStage3(s3.components, srOut, {
      promptEmbeds: s3.promptEmbeds,
      negativePromptEmbeds: s3.negativePromptEmbeds,
      steps: o.sr3.steps ?? STAGE3_DEFAULTS.steps,
      guidanceScale: o.sr3.guidanceScale ?? STAGE3_DEFAULTS.guidanceScale,
      noiseLevel: o.sr3.noiseLevel ?? STAGE3_DEFAULTS.noiseLevel,
      generator: gen,
      onProgress: o.onProgress,
      onWarning: o.sr3.onWarning,
      signal: o.signal,
    });
    return { base: baseOut, sr: srOut, sr3: sr3Out };
  } finally {
    await s3.release();
  }
}
