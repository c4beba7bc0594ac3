/** The flags every image command (vary, inpaint, upscale) has, and the parsers of their values. */
import type { Command } from 'commander';
import type { UNetTileOptions } from '../pipelines/tiled_unet.js';
import { usageError } from './errors.js';

export function parseSteps(v: string | undefined, flag = '--steps'): number | string | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (Number.isInteger(n)) {
    if (n < 1 || n > 1000) throw usageError(`${flag} must be in 1..1000 or a preset name, got "${v}"`);
    return n;
  }
  return v;
}

export function parseNumber(
  v: string | undefined,
  flag: string,
  min: number,
  max: number,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw usageError(`${flag} must be a number in [${min}, ${max}], got "${v}"`);
  }
  return n;
}

export function parseStrength(v: string | undefined, flag: string): number | undefined {
  const s = parseNumber(v, flag, 0, 1);
  if (s === 0) throw usageError(`${flag} must be in (0, 1]: 0 would return the input unchanged`);
  return s;
}

/** `--noise-level`, or undefined when not given (the model's default). */
export function parseNoiseLevel(v: string | undefined): number | undefined {
  const n = parseNumber(v, '--noise-level', 0, 999);
  if (n !== undefined && !Number.isInteger(n)) throw usageError('--noise-level must be an integer in 0..999');
  return n;
}

/** Help of the back-projection flags (`--sr-back-projection`, upscale's `--back-projection`). */
export const BACK_PROJECTION_HELP =
  "on | off: correct the super-resolution output's colours towards its low-res input (one back-projection step: output + upsampled(low-res − downsampled output)) [default: the model's generation_config.json, else off]";

/** An on/off flag, or undefined when not given (the model's default). */
export function parseOnOff(v: string | undefined, flag: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw usageError(`${flag} must be on or off, got "${v}"`);
}

/** An integer flag in [min, max]; blank is not 0. */
export function intFlag(v: string, flag: string, min: number, max = Number.POSITIVE_INFINITY): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    const range = max === Number.POSITIVE_INFINITY ? `≥ ${min}` : `in ${min}..${max}`;
    throw usageError(`${flag} must be an integer ${range}, got "${v}"`);
  }
  return n;
}

/** `[default: …]` of a flag whose value the model folder's generation_config.json may set. */
export function folderDefault(fallback: unknown): string {
  return `[default: the model's generation_config.json, else ${fallback}]`;
}

/** `--sampler`-style flags: ddpm | ddim, or undefined when not given (the model's default). */
export function parseSampler(v: string | undefined, flag: string): 'ddpm' | 'ddim' | undefined {
  if (v !== undefined && v !== 'ddpm' && v !== 'ddim') throw usageError(`${flag} must be ddpm or ddim`);
  return v;
}

export function parseSeed(v: string): number {
  const seed = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(seed) || seed < 0) {
    throw usageError(`--seed must be a non-negative integer, got "${v}"`);
  }
  return seed;
}

/** What `parseCommon` makes of `CommonFlags`. */
export interface CommonOptions {
  seed: number;
  numImages: number;
  thresholding?: 'dynamic' | 'static' | 'none';
  /** Undefined: the model's generation_config.json, else DDPM. */
  sampler?: 'ddpm' | 'ddim';
  device: 'cpu' | 'cuda';
}

export function parseCommon(f: CommonFlags): CommonOptions {
  const numImages = Number(f.numImages);
  if (!Number.isInteger(numImages) || numImages < 1 || numImages > 64)
    throw usageError('--num-images must be an integer in 1..64');
  if (f.threshold && !['dynamic', 'static', 'none'].includes(f.threshold)) {
    throw usageError(`--threshold must be dynamic, static or none, got "${f.threshold}"`);
  }
  const sampler = parseSampler(f.sampler, '--sampler');
  if (f.device !== 'cpu' && f.device !== 'cuda')
    throw usageError(`--device must be cpu or cuda, got "${f.device}"`);
  return {
    device: f.device,
    seed: parseSeed(f.seed),
    numImages,
    thresholding: f.threshold as 'dynamic' | undefined,
    sampler,
  };
}

/** Flags every image command has. */
export interface CommonFlags {
  prompt?: string;
  promptEmbeds?: string;
  negativePrompt: string;
  out: string;
  seed: string;
  numImages: string;
  threshold?: string;
  sampler?: string;
  device: string;
  fp16: boolean;
  cleanCaption: boolean;
  quiet: boolean;
  json: boolean;
}

/** Register the flags of `CommonFlags` (same names, help and defaults in every image command). */
export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--prompt <text>', 'the text prompt (or --prompt-embeds)')
    .option(
      '--prompt-embeds <file>',
      'precomputed embeddings from `imagen encode` (prompt_embeds, negative_prompt_embeds)',
    )
    .option('--negative-prompt <text>', 'what to steer away from (the unconditional branch)', '')
    .option('--out <file>', 'output PNG (several images: out-0.png, out-1.png, …)', 'out.png')
    .option('--seed <n>', 'random seed: the same seed gives the same image on the same machine', '0')
    .option('--num-images <n>', 'images per prompt', '1')
    .option('--threshold <kind>', 'dynamic | static | none [default: the scheduler config: dynamic for IF]')
    .option('--sampler <name>', `ddpm | ddim ${folderDefault('ddpm')}`)
    .option(
      '--device <name>',
      "cpu | cuda (ONNX Runtime's CUDA provider; falls back to CPU with a message)",
      'cpu',
    )
    .option('--fp16', 'load *.fp16.safetensors weight variants', false)
    .option('--no-clean-caption', 'skip IF caption cleaning (lower-case + strip only)')
    .option('--quiet', 'no progress output', false)
    .option('--json', 'print a JSON result on stdout', false);
}

/** The prompt source: --prompt-embeds, else --prompt with a text encoder; exactly one prompt source is needed. */
export function requirePrompt(f: CommonFlags): string {
  if (f.promptEmbeds) return f.prompt ?? '';
  if (f.prompt === undefined)
    throw usageError('pass --prompt "…" (or --prompt-embeds FILE from `imagen encode`)');
  return f.prompt;
}

export const SR_TILE_SIZE_HELP =
  "stage II: denoise on overlapping UNet tiles of this side (pixels), as a stage trained on crops expects; 0 = one piece [default: the model's generation_config.json, else one piece]";
export const SR_TILE_OVERLAP_HELP =
  "stage II: pixels shared by neighbouring tiles [default: the model's, else half a tile, at most 32]";

/** `--sr-tile-size` / `--sr-tile-overlap`: undefined (model default), false (no tiles) or the tiles. */
export function parseSrTiles(
  size: string | undefined,
  overlap: string | undefined,
): UNetTileOptions | false | undefined {
  if (size === undefined) {
    if (overlap !== undefined) throw usageError('--sr-tile-overlap needs --sr-tile-size');
    return undefined;
  }
  const tileSize = intFlag(size, '--sr-tile-size', 0);
  if (tileSize === 0) return false;
  return overlap === undefined
    ? { tileSize }
    : { tileSize, overlap: intFlag(overlap, '--sr-tile-overlap', 0) };
}
