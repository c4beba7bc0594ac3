/**
 * diffusers AutoencoderKL folders on Node: config.json + diffusion_pytorch_model[.fp16].safetensors
 * (the SD pipelines' `vae/`). The VAE is small (≈84 M parameters for SD / the ×4 upscaler), so it is
 * always loaded into memory; large outputs are handled by tiled decoding, not weight streaming.
 */
import { join } from 'node:path';
import { ImagenError } from '../../engine/errors.js';
import type { Runtime } from '../../engine/runtime.js';
import { AutoencoderKL, VaeRunner, vaeCheckpointView } from '../../models/vae/autoencoder_kl.js';
import { parseVaeConfig, type VaeConfig } from '../../models/vae/config.js';
import { isDirectory, readModelConfig } from './config.js';
import { openCheckpoint } from './files.js';
import { createRuntime } from './runtime.js';

function withDir(dir: string, e: unknown): unknown {
  if (e instanceof ImagenError && !e.message.includes(dir)) {
    return new ImagenError(e.code, `VAE ${dir}: ${e.message}`, { cause: e });
  }
  return e;
}

/** A `vae/` folder, or a pipeline folder holding one. */
async function vaeDir(dir: string): Promise<string> {
  return (await isDirectory(join(dir, 'vae'))) ? join(dir, 'vae') : dir;
}

export async function readVaeConfig(dir: string): Promise<VaeConfig> {
  const d = await vaeDir(dir);
  return parseVaeConfig(await readModelConfig(d), join(d, 'config.json'));
}

/**
 * The AutoencoderKL of `dir` with its weights (old `query/key/value/proj_attn` attention names
 * accepted). float16 files stay float16 in memory and are cast to float32 in the graph: diffusers
 * `force_upcast` runs the VAE in float32 too.
 */
export async function loadAutoencoderKL(
  dir: string,
  options: { variant?: 'fp16' } = {},
): Promise<AutoencoderKL> {
  const d = await vaeDir(dir);
  const model = new AutoencoderKL(await readVaeConfig(d));
  const ckpt = await openCheckpoint(d, options.variant ? { variant: options.variant } : {}).catch((e) => {
    throw withDir(d, e);
  });
  try {
    await model.loadStateDict(vaeCheckpointView(ckpt));
  } catch (e) {
    throw withDir(d, e);
  } finally {
    await ckpt.close();
  }
  return model;
}

/** A runnable VAE (encode, decode, decodeTiled) for `dir`. */
export async function loadVae(
  dir: string,
  options: { variant?: 'fp16'; runtime?: Runtime; decompose?: boolean; threads?: number } = {},
): Promise<VaeRunner> {
  const model = await loadAutoencoderKL(dir, options);
  const rt = options.runtime ?? createRuntime(options.threads ? { threads: options.threads } : {});
  return new VaeRunner(model, rt, { decompose: options.decompose ?? false });
}
