/**
 * T5 encoder folders on Node: config.json + `model[.fp16].safetensors` or its sharded index
 * (transformers `T5EncoderModel.save_pretrained`, the IF pipeline's `text_encoder/`). Small models
 * are loaded into one ONNX session; large ones (T5-XXL) stream block by block.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ImagenError } from '../../engine/errors.js';
import type { NDArray } from '../../engine/ndarray.js';
import type { Runtime } from '../../engine/runtime.js';
import type { CheckpointReader } from '../../io/sharded.js';
import { parseT5Config, type T5Config, t5EncoderFloat32Bytes } from '../../models/t5/config.js';
import { StreamingT5Encoder } from '../../models/t5/streaming.js';
import { InMemoryT5Encoder, T5Encoder, type T5TextEncoder } from '../../models/t5/t5_encoder.js';
import { readModelConfig } from './config.js';
import { type ClosableCheckpoint, openCheckpoint } from './files.js';
import { createRuntime } from './runtime.js';

/**
 * Above this many bytes of float32 weights the encoder streams. One ONNX model cannot embed more
 * than 2 GB (protobuf), and building one from JS costs about 3× its size in RSS (notes §4).
 */
export const DEFAULT_STREAMING_THRESHOLD_BYTES = 1.5e9;

export interface LoadT5Options {
  /** Prefer `model.fp16.safetensors` (or its fp16 index). */
  variant?: 'fp16';
  /** Force (true) or forbid (false) streaming; default: by size. */
  streaming?: boolean;
  streamingThresholdBytes?: number;
  runtime?: Runtime;
  /** Streaming only: read the next block while one runs (default true). */
  prefetch?: boolean;
  /** Intra-op threads (streaming block session). */
  threads?: number;
  /** In-memory only: expand fused kernels into primitives (tests compare both). */
  decompose?: boolean;
  onBlock?: (index: number, count: number, ms: number) => void;
}

function withDir(dir: string, e: unknown): unknown {
  if (e instanceof ImagenError && !e.message.includes(dir)) {
    return new ImagenError(e.code, `T5 encoder ${dir}: ${e.message}`, { cause: e });
  }
  return e;
}

/** The parsed config of a T5 folder; CONFIG_INVALID when it is some other model. */
export async function readT5Config(dir: string): Promise<T5Config> {
  const raw = await readModelConfig(dir);
  return parseT5Config(raw, join(dir, 'config.json'));
}

/**
 * Only the encoder's tensors of a checkpoint: a full `T5ForConditionalGeneration` file also holds
 * `decoder.*` and `lm_head.*`, which the encoder never reads.
 */
function encoderView(ckpt: ClosableCheckpoint): ClosableCheckpoint {
  const keep = (k: string) => !k.startsWith('decoder.') && !k.startsWith('lm_head.');
  return {
    keys: () => ckpt.keys().filter(keep),
    has: (k) => keep(k) && ckpt.has(k),
    info: (k) => ckpt.info(k),
    get: (k) => ckpt.get(k),
    getFloat32: (k) => ckpt.getFloat32(k),
    close: () => ckpt.close(),
  };
}

async function openT5Checkpoint(dir: string, variant: 'fp16' | undefined): Promise<ClosableCheckpoint> {
  try {
    return encoderView(await openCheckpoint(dir, variant ? { variant } : {}));
  } catch (e) {
    throw withDir(dir, e);
  }
}

/**
 * Checkpoint reader whose bf16 tensors come back as float32: ONNX Runtime has no bf16 tensors and
 * no bf16 kernels, and narrowing to fp16 would overflow (bf16 has float32's exponent range).
 */
function bf16AsFloat32(reader: CheckpointReader): Parameters<T5Encoder['loadStateDict']>[0] {
  return {
    keys: () => reader.keys(),
    info: (k) => reader.info(k),
    get: async (k): Promise<NDArray> => {
      const a = await reader.get(k);
      return a.dtype === 'bfloat16' || a.dtype === 'float64' ? a.toFloat32() : a;
    },
  };
}

/** The T5Encoder module with its weights loaded (16-bit floats stay 16-bit, except bf16). */
export async function loadT5EncoderModule(
  dir: string,
  options: { variant?: 'fp16' } = {},
): Promise<T5Encoder> {
  const cfg = await readT5Config(dir);
  const model = new T5Encoder(cfg);
  const ckpt = await openT5Checkpoint(dir, options.variant);
  try {
    await model.loadStateDict(bf16AsFloat32(ckpt), { aliases: T5Encoder.ALIASES });
  } catch (e) {
    throw withDir(dir, e);
  } finally {
    await ckpt.close();
  }
  return model;
}

/**
 * A runnable T5 encoder for `dir`: in memory when its float32 weights fit under the threshold,
 * otherwise (or with `streaming: true`) the block-streaming encoder, which keeps the checkpoint
 * open until `release()`.
 */
export async function loadT5Encoder(dir: string, options: LoadT5Options = {}): Promise<T5TextEncoder> {
  const cfg = await readT5Config(dir);
  const rt = options.runtime ?? createRuntime(options.threads ? { threads: options.threads } : {});
  const threshold = options.streamingThresholdBytes ?? DEFAULT_STREAMING_THRESHOLD_BYTES;
  const streaming = options.streaming ?? t5EncoderFloat32Bytes(cfg) > threshold;
  if (!streaming) {
    const model = await loadT5EncoderModule(dir, options);
    return new InMemoryT5Encoder(model, rt, { decompose: options.decompose ?? false });
  }
  const ckpt = await openT5Checkpoint(dir, options.variant);
  try {
    return await StreamingT5Encoder.open(rt, ckpt, cfg, {
      prefetch: options.prefetch ?? true,
      threads: options.threads,
      onBlock: options.onBlock,
    });
  } catch (e) {
    await ckpt.close();
    throw withDir(dir, e);
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function hasTokenizerFiles(dir: string): Promise<boolean> {
  for (const f of ['tokenizer.json', 'spiece.model', 'tokenizer_config.json']) {
    if (await isFile(join(dir, f))) return true;
  }
  return false;
}

/**
 * Where the encoder and its tokenizer live, given what the user pointed at: a pipeline folder
 * (`text_encoder/` + `tokenizer/`), a `text_encoder/` folder (tokenizer in `../tokenizer/`), or one
 * folder holding both.
 */
export async function resolveTextEncoderDirs(
  dir: string,
  tokenizerDir?: string,
): Promise<{ encoderDir: string; tokenizerDir: string }> {
  let encoderDir = dir;
  let guess = dir;
  if (await isFile(join(dir, 'text_encoder', 'config.json'))) {
    encoderDir = join(dir, 'text_encoder');
    guess = join(dir, 'tokenizer');
  } else if (!(await hasTokenizerFiles(dir)) && (await hasTokenizerFiles(join(dir, '..', 'tokenizer')))) {
    guess = join(dir, '..', 'tokenizer');
  }
  return { encoderDir, tokenizerDir: tokenizerDir ?? guess };
}
