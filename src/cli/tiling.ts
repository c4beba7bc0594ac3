/** `--tiled` / `--tile-size` of the SD ×4 upscaler, shared by `upscale` and `generate` (stage III). */
import { UNET_TILE_DEFAULTS, type UNetTileOptions } from '../pipelines/tiled_unet.js';
import { usageError } from './errors.js';

export const TILED_HELP =
  'denoise on overlapping UNet tiles and decode in overlapping VAE tiles (bounded memory: a 1024² output fits in 16 GiB; ' +
  'tiles blend smoothly but are not bit-equal to one-piece runs)';

export const TILE_SIZE_HELP =
  'UNet tile side in latent pixels (= low-res input pixels), a multiple of 8; implies --tiled; ' +
  `tiles overlap by ${UNET_TILE_DEFAULTS.overlap} [default: ${UNET_TILE_DEFAULTS.tileSize}]`;

/** false (no tiling), true (defaults) or the tile options; a bad number is a usage error (exit 2). */
export function parseTiling(tiled: boolean, tileSize: string | undefined): boolean | UNetTileOptions {
  if (tileSize === undefined) return tiled;
  const n = Number(tileSize);
  if (!Number.isInteger(n) || n < 8 || n % 8 !== 0)
    throw usageError(`--tile-size must be a multiple of 8 (latent pixels), got ${tileSize}`);
  // A tile must hold the default overlap plus one stride; smaller tiles overlap less.
  return { tileSize: n, overlap: Math.min(UNET_TILE_DEFAULTS.overlap, Math.floor(n / 16) * 8) };
}
