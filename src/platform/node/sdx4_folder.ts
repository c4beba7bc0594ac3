/**
 * A `stabilityai/stable-diffusion-x4-upscaler` diffusers folder on Node: model_index.json with
 * unet/ (UNet2DConditionModel, in_channels 7), vae/ (AutoencoderKL), text_encoder/ (CLIPTextModel),
 * tokenizer/ (CLIP), scheduler/ (DDIM) and low_res_scheduler/ (DDPM). Missing components are
 * listed in one error.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeSchedule, parseSchedulerConfig, type Schedule } from '../../diffusion/schedule.js';
import { ImagenError } from '../../engine/errors.js';
import type { NDArray } from '../../engine/ndarray.js';
import type { Runtime } from '../../engine/runtime.js';
import { encodeClipPrompts, type InMemoryClipTextEncoder } from '../../models/clip/clip_text.js';
import type { VaeRunner } from '../../models/vae/autoencoder_kl.js';
import { type SdUpscaleComponents, upscaleVae } from '../../pipelines/sd_upscale.js';
import {
  checkUNetTileOptions,
  TiledUNet,
  type UNetTileOptions,
  unetDownFactor,
} from '../../pipelines/tiled_unet.js';
import { InMemoryUNetRunner } from '../../pipelines/unet_runner.js';
import type { TextTokenizer } from '../../text/tokenizer.js';
import { loadClipTextEncoder, loadClipTokenizer } from './clip_loader.js';
import { isDirectory, readJson } from './config.js';
import { loadUNet } from './unet_loader.js';
import { loadVae } from './vae_loader.js';

export const SDX4_COMPONENTS = [
  'unet',
  'vae',
  'text_encoder',
  'tokenizer',
  'scheduler',
  'low_res_scheduler',
] as const;

/** True when `dir` looks like an SD ×4 upscaler folder (model_index class, or a 7-channel UNet). */
export async function isSdx4Folder(dir: string): Promise<boolean> {
  if (!(await isDirectory(dir))) return false;
  const index = (await readJson(join(dir, 'model_index.json')).catch(() => undefined)) as
    | Record<string, unknown>
    | undefined;
  if (index?._class_name === 'StableDiffusionUpscalePipeline') return true;
  const unet = (await readJson(join(dir, 'unet', 'config.json')).catch(() => undefined)) as
    | Record<string, unknown>
    | undefined;
  return unet?.in_channels === 7;
}

export interface Sdx4Pipeline {
  dir: string;
  components: SdUpscaleComponents;
  vae: VaeRunner;
  textEncoder: InMemoryClipTextEncoder;
  tokenizer: TextTokenizer;
  /** Token length prompts are padded to (tokenizer model_max_length, else 77). */
  maxTextLength: number;
  release(): Promise<void>;
}

export interface Sdx4LoadOptions {
  runtime: Runtime;
  variant?: 'fp16';
  /**
   * Bounded memory for big outputs: denoise on overlapping UNet tiles (`true`: default tile size and
   * overlap) and decode with diffusers' overlapping VAE tiles.
   */
  tiled?: boolean | UNetTileOptions;
}

async function schedule(dir: string): Promise<Schedule> {
  return makeSchedule(parseSchedulerConfig(await readJson(join(dir, 'scheduler_config.json'))));
}

/** Cheap check before a long run: the folder exists and has every component (all missing ones named). */
export async function checkSdx4Folder(dir: string): Promise<void> {
  if (!(await isDirectory(dir))) throw new ImagenError('NOT_FOUND', `${dir}: no such model folder`);
  const present = new Set(await readdir(dir));
  const missing = ['model_index.json', ...SDX4_COMPONENTS].filter((k) => !present.has(k));
  if (missing.length) {
    throw new ImagenError(
      'NOT_FOUND',
      `${dir}: SD x4 upscaler folder is missing ${missing.join(', ')} (expected model_index.json, ${SDX4_COMPONENTS.join('/, ')}/)`,
    );
  }
}

/** Load every component of an SD ×4 upscaler folder, naming all missing ones in one NOT_FOUND error. */
export async function loadSdx4Folder(dir: string, options: Sdx4LoadOptions): Promise<Sdx4Pipeline> {
  await checkSdx4Folder(dir);
  const index = (await readJson(join(dir, 'model_index.json'))) as Record<string, unknown>;
  const rt = options.runtime;
  const variant = options.variant ? { variant: options.variant } : {};
  const unet = await loadUNet(join(dir, 'unet'), { ...variant, streaming: false });
  if (unet.config.in_channels !== 7) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `${dir}/unet: in_channels is ${unet.config.in_channels}, an x4 upscaler UNet takes 7 (4 latent + 3 image)`,
    );
  }
  const tiled = options.tiled ?? false;
  // Bad tile settings fail here, before the VAE and text encoder take their time and memory.
  if (tiled) checkUNetTileOptions(tiled === true ? {} : tiled, unetDownFactor({ unet }));
  const vae = await loadVae(join(dir, 'vae'), { ...variant, runtime: rt });
  const textEncoder = await loadClipTextEncoder(join(dir, 'text_encoder'), { ...variant, runtime: rt });
  const tokenizer = await loadClipTokenizer(join(dir, 'tokenizer'));
  const tc = (await readJson(join(dir, 'tokenizer', 'tokenizer_config.json')).catch(() => ({}))) as Record<
    string,
    unknown
  >;
  const m = tc.model_max_length;
  const maxTextLength =
    typeof m === 'number' && m >= 1 && m <= textEncoder.config.max_position_embeddings
      ? m
      : Math.min(77, textEncoder.config.max_position_embeddings);
  const runner = new InMemoryUNetRunner(rt, unet);
  const maxNoiseLevel = typeof index.max_noise_level === 'number' ? index.max_noise_level : undefined;
  const components: SdUpscaleComponents = {
    unet: tiled ? new TiledUNet(runner, tiled === true ? {} : tiled) : runner,
    schedule: await schedule(join(dir, 'scheduler')),
    lowResSchedule: await schedule(join(dir, 'low_res_scheduler')),
    ...(maxNoiseLevel !== undefined ? { maxNoiseLevel } : {}),
    ...upscaleVae(vae, { tiled: tiled !== false }),
  };
  return {
    dir,
    components,
    vae,
    textEncoder,
    tokenizer,
    maxTextLength,
    release: async () => {
      await runner.release();
      await vae.release();
      await textEncoder.release();
    },
  };
}

/** The prompt (and negative prompt, "" by default) through the folder's CLIP text encoder. */
export async function encodeSdx4Prompts(
  p: Sdx4Pipeline,
  prompts: readonly string[],
  negativePrompt = '',
): Promise<{ promptEmbeds: NDArray; negativePromptEmbeds: NDArray }> {
  const e = await encodeClipPrompts(p.textEncoder, p.tokenizer, prompts, {
    negativePrompt,
    maxLength: p.maxTextLength,
  });
  return { promptEmbeds: e.promptEmbeds, negativePromptEmbeds: e.negativePromptEmbeds! };
}
