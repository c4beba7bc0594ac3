/**
 * A model folder's `generation_config.json` (as transformers' file of that name): sampling defaults
 * tuned for that model, e.g. a small model that needs far fewer steps than IF's 100. No Node
 * imports: the server's folder loader and the page's browser mode read it with the same code, so
 * both sample a stage the same way.
 */
import { ImagenError } from '../engine/errors.js';
import type { UNet2DConditionModel } from '../models/unet/unet.js';
import type { StageDefaults } from './text_to_image.js';
import { checkUNetTileOptions, type UNetTileOptions, unetDownFactor } from './tiled_unet.js';

const GENERATION_KEYS: Record<string, keyof StageDefaults> = {
  num_inference_steps: 'steps',
  guidance_scale: 'guidanceScale',
  sampler: 'sampler',
  thresholding: 'thresholding',
  noise_level: 'noiseLevel',
  back_projection: 'backProjection',
};

/** generation_config keys of `StageDefaults.tiles` (denoising on UNet tiles). */
const TILE_KEYS: Record<string, keyof UNetTileOptions> = {
  tile_size: 'tileSize',
  tile_overlap: 'overlap',
  tiles_per_call: 'tilesPerCall',
};

/** The file's keys as `StageDefaults`; unknown keys and bad values fail, naming `source`. */
export function parseGenerationConfig(json: unknown, source: string): StageDefaults {
  const fail = (m: string): never => {
    throw new ImagenError('CONFIG_INVALID', `${source}: ${m}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('expected a JSON object');
  const out: Record<string, unknown> = {};
  const tiles: UNetTileOptions = {};
  for (const [k, v] of Object.entries(json)) {
    if (k.startsWith('_') || k === 'comment') continue;
    const tileField = TILE_KEYS[k];
    if (tileField) {
      if (!Number.isInteger(v) || (v as number) < (tileField === 'overlap' ? 0 : 1))
        fail(`bad value for ${k}: ${JSON.stringify(v)}`);
      tiles[tileField] = v as number;
      continue;
    }
    const field = GENERATION_KEYS[k];
    if (!field)
      fail(
        `unknown key "${k}" (known: ${[...Object.keys(GENERATION_KEYS), ...Object.keys(TILE_KEYS)].join(', ')})`,
      );
    const ok =
      field === 'steps'
        ? (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1000) || typeof v === 'string'
        : field === 'sampler'
          ? v === 'ddpm' || v === 'ddim'
          : field === 'thresholding'
            ? v === 'dynamic' || v === 'static' || v === 'none'
            : field === 'backProjection'
              ? typeof v === 'boolean'
              : typeof v === 'number' && Number.isFinite(v) && v >= 0;
    if (!ok) fail(`bad value for ${k}: ${JSON.stringify(v)}`);
    out[field!] = v;
  }
  if (Object.keys(tiles).length) {
    if (tiles.tileSize === undefined) fail('tile_overlap and tiles_per_call need tile_size');
    out.tiles = tiles;
  }
  return out as StageDefaults;
}

/**
 * A folder's defaults for its UNet: parsed, and its tiles checked against the UNet's downsampling
 * now, so a bad file fails when the model is loaded rather than midway through a generation.
 */
export function stageDefaultsFor(json: unknown, source: string, unet: UNet2DConditionModel): StageDefaults {
  const defaults = parseGenerationConfig(json, source);
  if (defaults.tiles) {
    try {
      checkUNetTileOptions(defaults.tiles, unetDownFactor({ unet }));
    } catch (e) {
      throw new ImagenError('CONFIG_INVALID', `${source}: ${(e as Error).message}`, { cause: e });
    }
  }
  return defaults;
}
