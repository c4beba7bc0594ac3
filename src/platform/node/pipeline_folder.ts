import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeSchedule, parseSchedulerConfig, type Schedule } from '../../diffusion/schedule.js';
import { ImagenError } from '../../engine/errors.js';
import type { NDArray } from '../../engine/ndarray.js';
import type { Runtime } from '../../engine/runtime.js';
import { t5EncoderFloat32Bytes } from '../../models/t5/config.js';
import { InMemoryT5Encoder, type T5Encoder, type T5TextEncoder } from '../../models/t5/t5_encoder.js';
import type { UNetConfig } from '../../models/unet/config.js';
import type { UNet2DConditionModel } from '../../models/unet/unet.js';
import { stageDefaultsFor } from '../../pipelines/generation_config.js';
import type { StageDefaults, StageModels } from '../../pipelines/text_to_image.js';
import { maxTextLengthOf, type TextTokenizer } from '../../text/tokenizer.js';
import { isDirectory, readJson } from './config.js';
import { atomicWriteFile, writeSafetensors } from './files.js';
import {
  DEFAULT_STREAMING_THRESHOLD_BYTES,
  loadT5Encoder,
  loadT5EncoderModule,
  readT5Config,
} from './t5_loader.js';
import { loadTokenizer } from './tokenizer_files.js';
import { loadUNet } from './unet_loader.js';

const DIFFUSERS_VERSION = '0.30.0';

export function unetConfigJson(cfg: UNetConfig): Record<string, unknown> {
  return { _class_name: 'UNet2DConditionModel', _diffusers_version: DIFFUSERS_VERSION, ...cfg };
}

/**
 * The transformers class model_index.json names for the tokenizer: a copied folder's own
 * `tokenizer_class` (a word-level tokenizer.json is a `PreTrainedTokenizerFast`, which
 * transformers' `T5Tokenizer` cannot load), else T5's.
 */
function tokenizerClass(t: NonNullable<PipelineParts['tokenizer']>): string {
  if ('type' in t) return 'ByT5Tokenizer';
  const config = t.files['tokenizer_config.json'];
  if (config === undefined) return 'T5Tokenizer';
  const text = typeof config === 'string' ? config : new TextDecoder().decode(config);
  const named = (JSON.parse(text) as { tokenizer_class?: unknown }).tokenizer_class;
  return typeof named === 'string' && named ? named : 'T5Tokenizer';
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await atomicWriteFile(path, `${JSON.stringify(value, null, 2)}\n`);
}

export interface PipelineParts {
  stage: 'base' | 'sr';
  unet: UNet2DConditionModel;
  /** Weights to store for the UNet and text encoder (e.g. the EMA copy); default: current values. */
  weights?: Map<string, NDArray>;
  textEncoder?: { module: T5Encoder; configJson: Record<string, unknown> };
  tokenizer?: { type: 'byt5'; maxLength: number } | { files: Record<string, Uint8Array | string> };
  scheduler: Record<string, unknown>;
  imageNoisingScheduler?: Record<string, unknown>;
}

function pick(
  params: { name: string; value?: NDArray }[],
  weights?: Map<string, NDArray>,
): Record<string, NDArray> {
  const out: Record<string, NDArray> = {};
  for (const p of params) {
    const v = weights?.get(p.name) ?? p.value;
    if (!v) throw new ImagenError('WEIGHTS_MISMATCH', `parameter ${p.name} has no value to save`);
    out[p.name] = v;
  }
  return out;
}

/**
 * Write a diffusers pipeline folder (model_index.json, unet/, scheduler/, text_encoder/,
 * tokenizer/, and image_noising_scheduler/ for super-resolution): every file atomically, in the
 * names and formats diffusers and transformers load.
 */
export async function savePipelineFolder(dir: string, parts: PipelineParts): Promise<void> {
  const sr = parts.stage === 'sr';
  await mkdir(dir, { recursive: true });
  const index: Record<string, unknown> = {
    _class_name: sr ? 'IFSuperResolutionPipeline' : 'IFPipeline',
    _diffusers_version: DIFFUSERS_VERSION,
    feature_extractor: [null, null],
    safety_checker: [null, null],
    watermarker: [null, null],
    requires_safety_checker: false,
    scheduler: ['diffusers', 'DDPMScheduler'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    text_encoder: parts.textEncoder ? ['transformers', 'T5EncoderModel'] : [null, null],
    tokenizer: parts.tokenizer ? ['transformers', tokenizerClass(parts.tokenizer)] : [null, null],
  };
  if (sr) index.image_noising_scheduler = ['diffusers', 'DDPMScheduler'];

  await mkdir(join(dir, 'unet'), { recursive: true });
  await writeJson(join(dir, 'unet', 'config.json'), unetConfigJson(parts.unet.config));
  await writeSafetensors(
    join(dir, 'unet', 'diffusion_pytorch_model.safetensors'),
    pick(parts.unet.parameters(), parts.weights),
    {
      format: 'pt',
    },
  );
  await mkdir(join(dir, 'scheduler'), { recursive: true });
  await writeJson(join(dir, 'scheduler', 'scheduler_config.json'), parts.scheduler);
  if (sr) {
    await mkdir(join(dir, 'image_noising_scheduler'), { recursive: true });
    await writeJson(
      join(dir, 'image_noising_scheduler', 'scheduler_config.json'),
      parts.imageNoisingScheduler ?? {},
    );
  }
  if (parts.textEncoder) {
    await mkdir(join(dir, 'text_encoder'), { recursive: true });
    await writeJson(join(dir, 'text_encoder', 'config.json'), parts.textEncoder.configJson);
    await writeSafetensors(
      join(dir, 'text_encoder', 'model.safetensors'),
      pick(parts.textEncoder.module.parameters(), parts.weights),
      { format: 'pt' },
    );
  }
  if (parts.tokenizer) {
    const t = join(dir, 'tokenizer');
    await mkdir(t, { recursive: true });
    if ('type' in parts.tokenizer) {
      await writeJson(join(t, 'tokenizer_config.json'), {
        tokenizer_class: 'ByT5Tokenizer',
        extra_ids: 125,
        model_max_length: parts.tokenizer.maxLength,
        eos_token: '</s>',
        pad_token: '<pad>',
        unk_token: '<unk>',
      });
      await writeJson(join(t, 'special_tokens_map.json'), {
        eos_token: '</s>',
        pad_token: '<pad>',
        unk_token: '<unk>',
      });
    } else {
      for (const [name, data] of Object.entries(parts.tokenizer.files))
        await atomicWriteFile(join(t, name), data);
    }
  }
  await writeJson(join(dir, 'model_index.json'), index);
}

export interface LoadedPipeline {
  dir: string;
  stage: 'base' | 'sr';
  unet: UNet2DConditionModel;
  /** The text encoder held in memory (small encoders only; see `openTextEncoder`). */
  textEncoder?: T5Encoder;
  /** `text_encoder/` of this folder, when it has one (T5-XXL stays on disk until prompts are encoded). */
  textEncoderDir?: string;
  variant?: 'fp16';
  tokenizer?: TextTokenizer;
  /** Token length prompts are padded to (tokenizer_config.json model_max_length, else IF's 77). */
  maxTextLength: number;
  schedule: Schedule;
  imageNoisingSchedule?: Schedule;
  /** Optional components present in the folder that imagen-ts does not apply (told to the user). */
  notApplied: string[];
  /** generation_config.json: the folder's own sampling defaults. */
  defaults?: StageDefaults;
}

const OPTIONAL = ['safety_checker', 'feature_extractor', 'watermarker'];

/** Load a diffusers IF pipeline folder (ours or DeepFloyd's), listing anything missing in one error. */
export async function loadPipelineFolder(
  dir: string,
  options: { variant?: 'fp16'; streamingThresholdBytes?: number } = {},
): Promise<LoadedPipeline> {
  if (!(await isDirectory(dir))) throw new ImagenError('NOT_FOUND', `${dir}: no such model folder`);
  const index = (await readJson(join(dir, 'model_index.json')).catch((e) => {
    if (e instanceof ImagenError && e.code === 'NOT_FOUND') {
      throw new ImagenError('NOT_FOUND', `${dir} is not a pipeline folder: model_index.json is missing`);
    }
    throw e;
  })) as Record<string, unknown>;
  const listed = (k: string) => Array.isArray(index[k]) && (index[k] as unknown[])[0] !== null;
  const sr = listed('image_noising_scheduler') || index._class_name === 'IFSuperResolutionPipeline';
  const required = ['unet', 'scheduler', ...(sr ? ['image_noising_scheduler'] : [])];
  const present = new Set(await readdir(dir));
  const missing = required.filter((k) => !present.has(k));
  for (const k of ['text_encoder', 'tokenizer']) if (listed(k) && !present.has(k)) missing.push(k);
  if (missing.length) {
    throw new ImagenError('NOT_FOUND', `${dir}: pipeline folder is missing ${missing.join(', ')}`);
  }
  const unet = await loadUNet(join(dir, 'unet'), { variant: options.variant });
  const sched = (sub: string) =>
    readJson(join(dir, sub, 'scheduler_config.json')).then((j) => makeSchedule(parseSchedulerConfig(j)));
  const loaded: LoadedPipeline = {
    dir,
    stage: sr ? 'sr' : 'base',
    unet,
    schedule: await sched('scheduler'),
    imageNoisingSchedule: sr ? await sched('image_noising_scheduler') : undefined,
    notApplied: OPTIONAL.filter((k) => listed(k) && present.has(k)),
    maxTextLength: 77,
  };
  if (present.has('generation_config.json')) {
    const file = join(dir, 'generation_config.json');
    loaded.defaults = stageDefaultsFor(await readJson(file), file, unet);
  }
  if (present.has('text_encoder')) {
    const teDir = join(dir, 'text_encoder');
    loaded.textEncoderDir = teDir;
    loaded.variant = options.variant;
    // Big encoders (T5-XXL: 19 GB as float32) are streamed block by block when prompts are encoded.
    const threshold = options.streamingThresholdBytes ?? DEFAULT_STREAMING_THRESHOLD_BYTES;
    if (t5EncoderFloat32Bytes(await readT5Config(teDir)) <= threshold) {
      loaded.textEncoder = await loadT5EncoderModule(teDir, { variant: options.variant });
    }
  }
  if (present.has('tokenizer')) {
    loaded.tokenizer = await loadTokenizer(join(dir, 'tokenizer'));
    const tc = (await readJson(join(dir, 'tokenizer', 'tokenizer_config.json')).catch(() => ({}))) as Record<
      string,
      unknown
    >;
    loaded.maxTextLength = maxTextLengthOf(tc);
  }
  return loaded;
}

/**
 * A runnable text encoder for a loaded pipeline: the in-memory module when it was loaded, else the
 * block-streaming encoder over the folder's checkpoint. Release it after encoding.
 */
export async function openTextEncoder(p: LoadedPipeline, rt: Runtime): Promise<T5TextEncoder | undefined> {
  if (p.textEncoder) return new InMemoryT5Encoder(p.textEncoder, rt);
  if (!p.textEncoderDir) return undefined;
  return loadT5Encoder(p.textEncoderDir, { runtime: rt, variant: p.variant, streaming: true });
}

/**
 * What the cascade samplers need from a loaded folder. A super-resolution folder that carries a
 * small text encoder of its own (one trained with imagen-ts) brings it along, so the stage is fed
 * the embeddings it was trained on; IF's stage II (no encoder, or T5-XXL) reuses stage I's.
 */
export function stageModels(p: LoadedPipeline, rt?: Runtime): StageModels {
  const s: StageModels = {
    unet: p.unet,
    schedule: p.schedule,
    imageNoisingSchedule: p.imageNoisingSchedule,
    defaults: p.defaults,
  };
  if (rt && p.stage === 'sr' && p.textEncoder && p.tokenizer) {
    s.text = {
      encoder: new InMemoryT5Encoder(p.textEncoder, rt),
      tokenizer: p.tokenizer,
      maxLength: p.maxTextLength,
    };
  }
  return s;
}
