/**
 * Tiled UNet denoising: one noise prediction for a big latent, computed on overlapping tiles so the
 * UNet's activations (and ONNX Runtime's arena) only ever hold one tile. No Node imports.
 *
 * Each tile's prediction is weighted by linear ramps across the overlaps with its neighbours and the
 * weights are normalised to sum to 1 at every latent pixel, so seams fade instead of showing. The
 * caller's scheduler step and classifier-free guidance see one full-size prediction, unchanged.
 * Tiled predictions are not bit-equal to untiled ones (a tile sees less context); one tile covering
 * the whole latent is.
 */
import { concatBatch, repeatBatch } from '../diffusion/guidance.js';
import { ImagenError } from '../engine/errors.js';
import { NDArray, shapeStr } from '../engine/ndarray.js';
import type { Runtime } from '../engine/runtime.js';
import type { UNet2DConditionModel } from '../models/unet/unet.js';
import { createUNetRunner, type UNetCall, type UNetLike } from './unet_runner.js';

export interface UNetTileOptions {
  /** Tile side in latent pixels (default 144: 2×2 tiles for the 256² latent of a 1024² output). */
  tileSize?: number;
  /** Minimal overlap of neighbouring tiles in latent pixels (default 32, at most half a tile). */
  overlap?: number;
  /**
   * Tiles stacked along the batch axis of one UNet call (default 1). One tile per call bounds memory
   * (big upscalers); several keep a small UNet busy, since a 64² tile alone leaves ONNX Runtime's
   * kernels short of work.
   */
  tilesPerCall?: number;
}

export const UNET_TILE_DEFAULTS = Object.freeze({ tileSize: 144, overlap: 32 });

/** One tile: its top-left corner, size, and blend weight per pixel (row-major h×w). */
export interface Tile {
  y: number;
  x: number;
  h: number;
  w: number;
  weights: Float32Array;
}

export interface TilePlan {
  height: number;
  width: number;
  tiles: Tile[];
}

function bad(msg: string): never {
  throw new ImagenError('BAD_INPUT', `tiled UNet: ${msg}`);
}

/**
 * Starts of the tiles along one axis of `size`: as few tiles as cover it with ≥ `overlap` shared
 * pixels, spread evenly, each start a multiple of `align` (the UNet's downsampling factor, so every
 * tile sees the same stride-2 sampling grid as the whole latent would) except the last, which ends
 * at the border.
 */
export function tileStarts(size: number, tile: number, overlap: number, align: number): number[] {
  if (tile >= size) return [0];
  const stride = tile - overlap;
  for (let n = Math.ceil((size - overlap) / stride); ; n++) {
    const starts = Array.from({ length: n }, (_, k) =>
      k === n - 1 ? size - tile : Math.floor((k * (size - tile)) / (n - 1) / align) * align,
    );
    // Rounding to `align` can widen one gap past the stride; one more tile then fixes it.
    if (starts.every((s, k) => k === 0 || s - starts[k - 1]! <= stride)) return starts;
  }
}

/**
 * Weight of each position of a tile along one axis: 1 inside, a linear ramp from ~0 to 1 across the
 * part shared with the previous tile and from 1 to ~0 across the part shared with the next. Never 0,
 * so every pixel keeps a positive total weight.
 */
function ramp(starts: number[], k: number, len: number): Float32Array {
  const start = starts[k]!;
  const before = k > 0 ? starts[k - 1]! + len - start : 0;
  const after = k < starts.length - 1 ? start + len - starts[k + 1]! : 0;
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) {
    const up = before > 0 ? Math.min(1, (i + 1) / (before + 1)) : 1;
    const down = after > 0 ? Math.min(1, (len - i) / (after + 1)) : 1;
    out[i] = up * down;
  }
  return out;
}

/**
 * The tiles of an h×w latent and their blend weights, normalised so that the weights of all tiles
 * covering a pixel sum to 1. `align` is the UNet's downsampling factor; tile size and overlap must be
 * multiples of it so that tiles line up with the UNet's grid.
 */
export function planTiles(height: number, width: number, options: UNetTileOptions, align: number): TilePlan {
  const tile = options.tileSize ?? UNET_TILE_DEFAULTS.tileSize;
  // Without an overlap, small tiles share at most half their side (the default suits 144² tiles).
  const overlap =
    options.overlap ?? Math.min(UNET_TILE_DEFAULTS.overlap, Math.floor(tile / 2 / align) * align);
  if (!Number.isInteger(tile) || tile < align || tile % align !== 0) {
    bad(`tile size must be a positive multiple of ${align} (the UNet's downsampling factor), got ${tile}`);
  }
  if (!Number.isInteger(overlap) || overlap < 0 || overlap % align !== 0 || overlap > tile - align) {
    bad(
      `overlap must be a multiple of ${align} in [0, ${tile - align}] (less than the tile size ${tile}), got ${overlap}`,
    );
  }
  const th = Math.min(tile, height);
  const tw = Math.min(tile, width);
  const ys = tileStarts(height, th, Math.min(overlap, th - 1), align);
  const xs = tileStarts(width, tw, Math.min(overlap, tw - 1), align);
  const tiles: Tile[] = [];
  const total = new Float32Array(height * width);
  for (let a = 0; a < ys.length; a++) {
    const ry = ramp(ys, a, th);
    for (let b = 0; b < xs.length; b++) {
      const rx = ramp(xs, b, tw);
      const weights = new Float32Array(th * tw);
      for (let i = 0; i < th; i++)
        for (let j = 0; j < tw; j++) {
          weights[i * tw + j] = ry[i]! * rx[j]!;
          total[(ys[a]! + i) * width + xs[b]! + j]! += weights[i * tw + j]!;
        }
      tiles.push({ y: ys[a]!, x: xs[b]!, h: th, w: tw, weights });
    }
  }
  for (const t of tiles)
    for (let i = 0; i < t.h; i++)
      for (let j = 0; j < t.w; j++) t.weights[i * t.w + j]! /= total[(t.y + i) * width + t.x + j]!;
  return { height, width, tiles };
}

/** x[:, :, y:y+h, x:x+w] of a float32 [B, C, H, W] array. */
export function cropTile(a: NDArray, t: Pick<Tile, 'y' | 'x' | 'h' | 'w'>): NDArray {
  const [b, c, H, W] = a.shape as [number, number, number, number];
  const src = a.toFloat32().data as Float32Array;
  const out = new Float32Array(b * c * t.h * t.w);
  for (let p = 0; p < b * c; p++)
    for (let i = 0; i < t.h; i++) {
      const from = (p * H + t.y + i) * W + t.x;
      out.set(src.subarray(from, from + t.w), (p * t.h + i) * t.w);
    }
  return new NDArray('float32', [b, c, t.h, t.w], out);
}

/** UNet downsampling factor: 2^(number of down blocks − 1), as diffusers' default_overall_up_factor. */
export function unetDownFactor(unet: Pick<UNetLike, 'unet'>): number {
  return 2 ** (unet.unet.config.block_out_channels.length - 1);
}

/**
 * Runs `unet` on each tile of `call.sample` ([B, C, H, W]) and blends the outputs. The text states,
 * timestep and class labels are the same for every tile; `tilesPerCall` tiles share one UNet call.
 */
export async function runUNetTiled(
  unet: UNetLike,
  call: UNetCall,
  options: UNetTileOptions = {},
): Promise<NDArray> {
  if (call.sample.shape.length !== 4) bad(`sample must be [B, C, H, W], got ${shapeStr(call.sample.shape)}`);
  const [b, , H, W] = call.sample.shape as [number, number, number, number];
  const plan = planTiles(H, W, options, unetDownFactor(unet));
  const per = Math.min(options.tilesPerCall ?? 1, plan.tiles.length);
  let out: Float32Array | undefined;
  let outC = 0;
  for (let first = 0; first < plan.tiles.length; first += per) {
    const group = plan.tiles.slice(first, first + per);
    const crops = group.map((t) => cropTile(call.sample, t));
    const sample = crops.length === 1 ? crops[0]! : concatBatch(crops);
    const pred = (
      await unet.run({
        ...call,
        sample,
        encoderHiddenStates: repeatBatch(call.encoderHiddenStates, group.length),
        classLabels: call.classLabels && repeatBatch(call.classLabels, group.length),
      })
    ).toFloat32();
    outC = pred.shape[1]!;
    out ??= new Float32Array(b * outC * H * W);
    const d = pred.data as Float32Array;
    group.forEach((t, g) => {
      const base = g * b * outC * t.h * t.w;
      for (let p = 0; p < b * outC; p++)
        for (let i = 0; i < t.h; i++)
          for (let j = 0; j < t.w; j++)
            out![(p * H + t.y + i) * W + t.x + j]! +=
              t.weights[i * t.w + j]! * d[base + (p * t.h + i) * t.w + j]!;
    });
  }
  return new NDArray('float32', [b, outC, H, W], out!);
}

/** Throws the BAD_INPUT error `planTiles` would for these settings (check before a long load). */
export function checkUNetTileOptions(options: UNetTileOptions, downFactor: number): void {
  const per = options.tilesPerCall;
  if (per !== undefined && (!Number.isInteger(per) || per < 1))
    bad(`tiles per call must be a positive integer, got ${per}`);
  planTiles(downFactor, downFactor, options, downFactor);
}

/**
 * A UNetLike that denoises in tiles: drop-in for any pipeline that calls `run` once per step (the
 * SD ×4 upscaler), leaving its scheduler and guidance untouched.
 */
export class TiledUNet implements UNetLike {
  constructor(
    readonly inner: UNetLike,
    readonly options: UNetTileOptions = {},
  ) {
    checkUNetTileOptions(options, unetDownFactor(inner));
  }

  get unet() {
    return this.inner.unet;
  }

  run(c: UNetCall): Promise<NDArray> {
    return runUNetTiled(this.inner, c, this.options);
  }

  release(): Promise<void> {
    return this.inner.release();
  }
}

/**
 * The runner of one cascade stage: the registered one (in-memory or weight-streaming), denoising in
 * tiles when `tiles` is set — e.g. a super-resolution UNet trained on crops, whose GroupNorm
 * statistics then match training's at every output size.
 */
export function stageUNetRunner(
  rt: Runtime,
  unet: UNet2DConditionModel,
  tiles: UNetTileOptions | false | undefined,
): UNetLike {
  const runner = createUNetRunner(rt, unet);
  if (!tiles) return runner;
  try {
    return new TiledUNet(runner, tiles);
  } catch (e) {
    void runner.release();
    throw e;
  }
}

/**
 * A stage's tiles: the caller's choice, else the folder's; `false` is no tiles. A caller that sets
 * only the tile geometry keeps the folder's tiles per call (a memory/speed choice of the model's).
 */
export function stageTiles(
  requested: UNetTileOptions | false | undefined,
  folder: UNetTileOptions | undefined,
): UNetTileOptions | false | undefined {
  if (requested === undefined || requested === false) return requested ?? folder;
  return requested.tilesPerCall === undefined && folder?.tilesPerCall !== undefined
    ? { ...requested, tilesPerCall: folder.tilesPerCall }
    : requested;
}
