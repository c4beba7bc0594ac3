/**
 * CLIP text encoder and tokenizer folders on Node: a transformers `CLIPTextModel` folder
 * (config.json + model[.fp16].safetensors, the SD pipelines' `text_encoder/`) and a CLIP tokenizer
 * folder (vocab.json + merges.txt, or tokenizer.json; the pipelines' `tokenizer/`).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ImagenError } from '../../engine/errors.js';
import type { Runtime } from '../../engine/runtime.js';
import { ClipTextModel, clipCheckpointView, InMemoryClipTextEncoder } from '../../models/clip/clip_text.js';
import { type ClipTextConfig, parseClipTextConfig } from '../../models/clip/config.js';
import { ClipTokenizer } from '../../text/clip_tokenizer.js';
import { HFJsonTokenizer, type JsonObject, type TextTokenizer } from '../../text/tokenizer.js';
import { isDirectory, readJson, readModelConfig } from './config.js';
import { openCheckpoint } from './files.js';
import { createRuntime } from './runtime.js';

function withDir(what: string, dir: string, e: unknown): unknown {
  if (e instanceof ImagenError && !e.message.includes(dir)) {
    return new ImagenError(e.code, `${what} ${dir}: ${e.message}`, { cause: e });
  }
  return e;
}

/** A CLIP text encoder folder, or a pipeline folder holding `text_encoder/`. */
async function encoderDir(dir: string): Promise<string> {
  return (await isDirectory(join(dir, 'text_encoder'))) ? join(dir, 'text_encoder') : dir;
}

/** The parsed config of a CLIP text encoder folder; CONFIG_INVALID when it is some other model. */
export async function readClipTextConfig(dir: string): Promise<ClipTextConfig> {
  const d = await encoderDir(dir);
  return parseClipTextConfig(await readModelConfig(d), join(d, 'config.json'));
}

/**
 * The ClipTextModel of `dir` with its weights (float16 files stay float16 and are cast to float32
 * inside the graph). A `position_ids` buffer in the checkpoint is ignored; anything else that does
 * not match is an error.
 */
export async function loadClipTextModel(
  dir: string,
  options: { variant?: 'fp16' } = {},
): Promise<ClipTextModel> {
  const d = await encoderDir(dir);
  const model = new ClipTextModel(await readClipTextConfig(d));
  const ckpt = await openCheckpoint(d, options.variant ? { variant: options.variant } : {}).catch((e) => {
    throw withDir('CLIP text encoder', d, e);
  });
  try {
    await model.loadStateDict(clipCheckpointView(ckpt));
  } catch (e) {
    throw withDir('CLIP text encoder', d, e);
  } finally {
    await ckpt.close();
  }
  return model;
}

/** A runnable CLIP text encoder for `dir` (a `text_encoder/` folder or a pipeline folder). */
export async function loadClipTextEncoder(
  dir: string,
  options: {
    variant?: 'fp16';
    runtime?: Runtime;
    decompose?: boolean;
    threads?: number;
    clipSkip?: number;
  } = {},
): Promise<InMemoryClipTextEncoder> {
  const model = await loadClipTextModel(dir, options);
  const rt = options.runtime ?? createRuntime(options.threads ? { threads: options.threads } : {});
  return new InMemoryClipTextEncoder(model, rt, {
    decompose: options.decompose ?? false,
    clipSkip: options.clipSkip ?? 0,
  });
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function readJsonObject(path: string): Promise<JsonObject | undefined> {
  if (!(await isFile(path))) return undefined;
  const v = await readJson(path);
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new ImagenError('FILE_INVALID', `${path}: expected a JSON object`);
  }
  return v as JsonObject;
}

/**
 * The CLIP tokenizer of `dir` (a `tokenizer/` folder or a pipeline folder holding one):
 * vocab.json + merges.txt (+ tokenizer_config.json, special_tokens_map.json) as transformers'
 * slow CLIPTokenizer, else tokenizer.json through `@huggingface/tokenizers`.
 */
export async function loadClipTokenizer(dir: string): Promise<TextTokenizer> {
  const d = (await isDirectory(join(dir, 'tokenizer'))) ? join(dir, 'tokenizer') : dir;
  if (!(await isDirectory(d)))
    throw new ImagenError('NOT_FOUND', `CLIP tokenizer folder ${d} does not exist`);
  const config = await readJsonObject(join(d, 'tokenizer_config.json'));
  const specialTokensMap = await readJsonObject(join(d, 'special_tokens_map.json'));
  const opts = ClipTokenizer.optionsFromConfig(config, specialTokensMap);
  if (await isFile(join(d, 'vocab.json'))) {
    if (!(await isFile(join(d, 'merges.txt')))) {
      throw new ImagenError('NOT_FOUND', `CLIP tokenizer ${d}: vocab.json without merges.txt`);
    }
    const vocab = await readJsonObject(join(d, 'vocab.json'));
    const merges = await readFile(join(d, 'merges.txt'), 'utf8');
    return new ClipTokenizer(vocab as Record<string, number>, merges, { ...opts, source: d });
  }
  const tokenizerJson = await readJsonObject(join(d, 'tokenizer.json'));
  if (tokenizerJson) {
    // HFJsonTokenizer reads its special tokens from the config; hand it the merged view.
    const merged: JsonObject = {
      ...config,
      ...(opts.padToken ? { pad_token: opts.padToken } : {}),
      eos_token: opts.eosToken ?? '<|endoftext|>',
      bos_token: opts.bosToken ?? '<|startoftext|>',
    };
    return new HFJsonTokenizer(tokenizerJson, merged, join(d, 'tokenizer.json'));
  }
  throw new ImagenError(
    'NOT_FOUND',
    `no CLIP tokenizer in ${d}: looked for vocab.json + merges.txt and tokenizer.json`,
  );
}
