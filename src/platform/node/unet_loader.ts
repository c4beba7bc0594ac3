import { ImagenError } from '../../engine/errors.js';
import type { Runtime } from '../../engine/runtime.js';
import { isIfFamily } from '../../models/unet/config.js';
import { checkUNetCheckpoint, type PieceTiming, StreamingUNetRunner } from '../../models/unet/streaming.js';
import { UNet2DConditionModel } from '../../models/unet/unet.js';
import { createUNetRunner, setUNetRunnerFactory, type UNetLike } from '../../pipelines/unet_runner.js';
import { readModelConfig } from './config.js';
import { type ClosableCheckpoint, openCheckpoint } from './files.js';
import { createRuntime } from './runtime.js';

/**
 * Above this many checkpoint bytes (in the storage dtype) the UNet streams its weights. One ONNX
 * model cannot embed more than 2 GB (protobuf), and embedding from JS costs about 3× its size in
 * RSS (notes §4). IF-I-XL (8.6 GB fp16) and IF-II-L (2.5 GB fp16) stream; the tiny and M models don't.
 */
export const DEFAULT_UNET_STREAMING_THRESHOLD_BYTES = 1.5e9;

export interface LoadOptions {
  /** Prefer `*.fp16.safetensors` weights (kept as float16 in memory, cast to float32 in the graph). */
  variant?: 'fp16';
  /** Force (true) or forbid (false) weight streaming; default: by checkpoint size. */
  streaming?: boolean;
  streamingThresholdBytes?: number;
  /** Streaming only: read the next piece while one runs (default true). */
  prefetch?: boolean;
  /** Streaming only: intra-op threads of the piece sessions. */
  threads?: number;
  /** Streaming only: where fp16 weights are widened to float32 (see `StreamingUNetOptions.widen`). */
  widen?: 'graph' | 'js';
  /** Streaming only: progress after every piece. */
  onPiece?: (name: string, index: number, count: number, ms: number, split: PieceTiming) => void;
}

function withDir(dir: string, e: unknown): unknown {
  if (e instanceof ImagenError && !e.message.includes(dir)) {
    return new ImagenError(e.code, `${dir}: ${e.message}`, { cause: e });
  }
  return e;
}

function checkpointBytes(ckpt: ClosableCheckpoint): number {
  let n = 0;
  for (const k of ckpt.keys()) {
    const info = ckpt.info(k);
    n += info.end - info.begin;
  }
  return n;
}

/**
 * Load a diffusers UNet folder (config.json + diffusion_pytorch_model[.fp16].safetensors, possibly
 * sharded). Small checkpoints are loaded into the module. Large ones (or `streaming: true`) are only
 * checked against the config from the headers: the returned module has no weights, and
 * `createUNetRunner` / `new UNetRunner` on it give a `StreamingUNetRunner` that reads them piece by
 * piece from the folder (reopened per runner, closed by its `release()`).
 */
export async function loadUNet(dir: string, options: LoadOptions = {}): Promise<UNet2DConditionModel> {
  const cfg = await readModelConfig(dir);
  if (cfg._class_name !== undefined && cfg._class_name !== 'UNet2DConditionModel') {
    throw new ImagenError(
      'CONFIG_INVALID',
      `${dir}: _class_name is ${JSON.stringify(cfg._class_name)}, expected UNet2DConditionModel`,
    );
  }
  const model = new UNet2DConditionModel(cfg);
  const open = () => openCheckpoint(dir, options.variant ? { variant: options.variant } : {});
  const ckpt = await open();
  try {
    const threshold = options.streamingThresholdBytes ?? DEFAULT_UNET_STREAMING_THRESHOLD_BYTES;
    // The streaming runner knows the IF block family only; other UNets (the SD x4 upscaler's
    // 1.9 GB float32 file) stay in memory rather than fail.
    const streaming = options.streaming ?? (isIfFamily(model.config) && checkpointBytes(ckpt) > threshold);
    if (streaming) {
      checkUNetCheckpoint(model, ckpt);
      setUNetRunnerFactory(
        model,
        (rt) =>
          new StreamingUNetRunner(rt, model, open, {
            prefetch: options.prefetch,
            threads: options.threads,
            widen: options.widen,
            onPiece: options.onPiece,
          }),
      );
    } else {
      await model.loadStateDict(ckpt);
    }
  } catch (e) {
    throw withDir(dir, e);
  } finally {
    await ckpt.close();
  }
  return model;
}

/** A runnable UNet for `dir`: in memory, or weight-streaming above the size threshold (see `loadUNet`). */
export async function loadUNetRunner(
  dir: string,
  options: LoadOptions & { runtime?: Runtime } = {},
): Promise<UNetLike> {
  const rt = options.runtime ?? createRuntime(options.threads ? { threads: options.threads } : {});
  return createUNetRunner(rt, await loadUNet(dir, options));
}
