/**
 * diffusers `AutoencoderKL` config (the Stable Diffusion / ×4 upscaler VAE), keys verbatim as
 * `save_config` writes them. Only the block types and options that SD VAEs use are accepted.
 */
import { ImagenError } from '../../engine/errors.js';

export interface VaeConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: 'DownEncoderBlock2D'[];
  up_block_types: 'UpDecoderBlock2D'[];
  block_out_channels: number[];
  layers_per_block: number;
  act_fn: 'silu';
  latent_channels: number;
  norm_num_groups: number;
  /** Pixel size of one decoder tile; the tiled decoder's default tile (diffusers `tile_sample_min_size`). */
  sample_size: number;
  /** Latents are multiplied by this after encoding and divided by it before decoding (by the pipeline). */
  scaling_factor: number;
  /** diffusers runs the VAE in float32 when the pipeline is fp16; we always compute in float32. */
  force_upcast: boolean;
  mid_block_add_attention: boolean;
}

/** diffusers' AutoencoderKL constructor defaults. */
const DEFAULTS: VaeConfig = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D'],
  block_out_channels: [64],
  layers_per_block: 1,
  act_fn: 'silu',
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 32,
  scaling_factor: 0.18215,
  force_upcast: true,
  mid_block_add_attention: true,
};

/** Keys diffusers writes that only matter to it (or are fixed to their only supported value below). */
const INERT_KEYS: Record<string, unknown[]> = {
  latents_mean: [null],
  latents_std: [null],
  shift_factor: [null],
  use_quant_conv: [true],
  use_post_quant_conv: [true],
};

function fail(where: string, msg: string): never {
  throw new ImagenError('CONFIG_INVALID', `${where}: ${msg}`);
}

const isPosInt = (x: unknown): x is number => Number.isInteger(x) && (x as number) > 0;

/** Parse and validate an AutoencoderKL config.json; unknown keys are rejected. */
export function parseVaeConfig(raw: unknown, where = 'AutoencoderKL config'): VaeConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(where, 'not a JSON object');
  const j = raw as Record<string, unknown>;
  if (j._class_name !== undefined && j._class_name !== 'AutoencoderKL') {
    fail(where, `_class_name is ${JSON.stringify(j._class_name)}, expected "AutoencoderKL"`);
  }
  const cfg: VaeConfig = { ...DEFAULTS };
  for (const [k, v] of Object.entries(j)) {
    if (k.startsWith('_')) continue;
    const inert = INERT_KEYS[k];
    if (inert) {
      if (!inert.includes(v))
        fail(
          where,
          `${k} = ${JSON.stringify(v)} is not supported (supported: ${inert.map((a) => JSON.stringify(a)).join(', ')})`,
        );
      continue;
    }
    switch (k) {
      case 'sample_size':
        // diffusers accepts [h, w] and tiles with the first entry.
        if (Array.isArray(v) && v.length === 2 && v.every(isPosInt)) {
          cfg.sample_size = v[0];
          break;
        }
        if (!isPosInt(v))
          fail(where, `sample_size must be a positive integer or [h, w], got ${JSON.stringify(v)}`);
        cfg.sample_size = v;
        break;
      case 'in_channels':
      case 'out_channels':
      case 'layers_per_block':
      case 'latent_channels':
      case 'norm_num_groups':
        if (!isPosInt(v)) fail(where, `${k} must be a positive integer, got ${JSON.stringify(v)}`);
        cfg[k] = v;
        break;
      case 'block_out_channels':
        if (!Array.isArray(v) || v.length === 0 || !v.every(isPosInt))
          fail(where, 'block_out_channels must be a non-empty list of positive integers');
        cfg.block_out_channels = [...v];
        break;
      case 'down_block_types':
      case 'up_block_types': {
        const want = k === 'down_block_types' ? 'DownEncoderBlock2D' : 'UpDecoderBlock2D';
        if (!Array.isArray(v) || !v.every((t) => t === want)) {
          fail(where, `${k} must list only "${want}" blocks, got ${JSON.stringify(v)}`);
        }
        (cfg as unknown as Record<string, unknown>)[k] = [...v];
        break;
      }
      case 'act_fn':
        if (v !== 'silu') fail(where, `act_fn ${JSON.stringify(v)} is not supported (supported: "silu")`);
        break;
      case 'scaling_factor':
        if (typeof v !== 'number' || !(v > 0))
          fail(where, `scaling_factor must be > 0, got ${JSON.stringify(v)}`);
        cfg.scaling_factor = v;
        break;
      case 'force_upcast':
      case 'mid_block_add_attention':
        if (typeof v !== 'boolean') fail(where, `${k} must be a boolean, got ${JSON.stringify(v)}`);
        cfg[k] = v;
        break;
      default:
        fail(where, `unknown key "${k}"`);
    }
  }
  const n = cfg.block_out_channels.length;
  if (cfg.down_block_types.length !== n || cfg.up_block_types.length !== n) {
    fail(where, `down_block_types/up_block_types must list ${n} blocks (one per block_out_channels entry)`);
  }
  for (const c of cfg.block_out_channels) {
    if (c % cfg.norm_num_groups !== 0)
      fail(where, `${c} channels are not divisible into ${cfg.norm_num_groups} groups`);
  }
  return cfg;
}

/** Spatial factor between image and latent: 2^(blocks − 1) (the pipeline's `vae_scale_factor`). */
export function vaeScaleFactor(cfg: VaeConfig): number {
  return 2 ** (cfg.block_out_channels.length - 1);
}
