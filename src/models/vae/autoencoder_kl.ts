/**
 * diffusers `AutoencoderKL` (the Stable Diffusion / ×4 upscaler VAE) with diffusers' parameter
 * names, and {@link VaeRunner}: encode, decode and diffusers-style tiled decoding on a Runtime.
 *
 * Core module: no node imports. Loading from a folder is `src/platform/node/vae_loader.ts`.
 */
import { ImagenError } from '../../engine/errors.js';
import type { Tensor } from '../../engine/graph.js';
import { NDArray } from '../../engine/ndarray.js';
import * as F from '../../engine/ops/index.js';
import type { CompiledFunction, Runtime } from '../../engine/runtime.js';
import { Conv2d, GroupNorm, Linear, Module } from '../../nn/index.js';
import { parseVaeConfig, type VaeConfig, vaeScaleFactor } from './config.js';

/** diffusers builds every VAE norm with eps 1e-6 (`resnet_eps`), not GroupNorm's default 1e-5. */
const VAE_EPS = 1e-6;

/** `ResnetBlock2D` with no time embedding (temb_channels None), as in DownEncoderBlock2D / UpDecoderBlock2D. */
export class VaeResnetBlock extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | undefined;

  constructor(prefix: string, inChannels: number, outChannels: number, groups: number) {
    super(prefix);
    this.norm1 = this.child(new GroupNorm(`${prefix}.norm1`, groups, inChannels, VAE_EPS));
    this.conv1 = this.child(new Conv2d(`${prefix}.conv1`, inChannels, outChannels, 3, { padding: 1 }));
    this.norm2 = this.child(new GroupNorm(`${prefix}.norm2`, groups, outChannels, VAE_EPS));
    this.conv2 = this.child(new Conv2d(`${prefix}.conv2`, outChannels, outChannels, 3, { padding: 1 }));
    this.convShortcut =
      inChannels !== outChannels
        ? this.child(new Conv2d(`${prefix}.conv_shortcut`, inChannels, outChannels, 1))
        : undefined;
  }

  forward(x: Tensor): Tensor {
    return this.scoped(x, () => {
      const h = this.conv1.forward(F.silu(this.norm1.forward(x)));
      const y = this.conv2.forward(F.silu(this.norm2.forward(h)));
      return F.add(this.convShortcut ? this.convShortcut.forward(x) : x, y);
    });
  }
}

/**
 * The mid-block `Attention` (one head of width C, group norm first, residual): diffusers names
 * `to_q/to_k/to_v/to_out.0`; checkpoints from before diffusers 0.14 say `query/key/value/proj_attn`
 * ({@link vaeCheckpointView} renames them).
 */
export class VaeAttention extends Module {
  readonly groupNorm: GroupNorm;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: Linear;

  constructor(prefix: string, channels: number, groups: number) {
    super(prefix);
    this.groupNorm = this.child(new GroupNorm(`${prefix}.group_norm`, groups, channels, VAE_EPS));
    this.toQ = this.child(new Linear(`${prefix}.to_q`, channels, channels));
    this.toK = this.child(new Linear(`${prefix}.to_k`, channels, channels));
    this.toV = this.child(new Linear(`${prefix}.to_v`, channels, channels));
    this.toOut = this.child(new Linear(`${prefix}.to_out.0`, channels, channels));
  }

  forward(x: Tensor): Tensor {
    return this.scoped(x, () => {
      const [b, c, h, w] = x.shape as [number, number, number, number];
      const s = F.transpose(F.reshape(this.groupNorm.forward(x), [b, c, h * w]), 1, 2); // [B, HW, C]
      const a = F.attention(this.toQ.forward(s), this.toK.forward(s), this.toV.forward(s), { numHeads: 1 });
      const o = F.reshape(F.transpose(this.toOut.forward(a), 1, 2), [b, c, h, w]);
      return F.add(o, x);
    });
  }
}

/** `UNetMidBlock2D` without time embedding: resnet, (attention, resnet). */
export class VaeMidBlock extends Module {
  readonly resnets: VaeResnetBlock[];
  readonly attention: VaeAttention | undefined;

  constructor(prefix: string, channels: number, groups: number, addAttention: boolean) {
    super(prefix);
    this.resnets = [0, 1].map((i) =>
      this.child(new VaeResnetBlock(`${prefix}.resnets.${i}`, channels, channels, groups)),
    );
    this.attention = addAttention
      ? this.child(new VaeAttention(`${prefix}.attentions.0`, channels, groups))
      : undefined;
  }

  forward(x: Tensor): Tensor {
    let h = this.resnets[0]!.forward(x);
    if (this.attention) h = this.attention.forward(h);
    return this.resnets[1]!.forward(h);
  }
}

/** diffusers `Encoder`: conv_in, DownEncoderBlock2D × n, mid block, norm + SiLU + conv_out to 2·latent. */
export class VaeEncoder extends Module {
  readonly convIn: Conv2d;
  readonly downBlocks: { resnets: VaeResnetBlock[]; downsample: Conv2d | undefined }[] = [];
  readonly midBlock: VaeMidBlock;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(prefix: string, cfg: VaeConfig) {
    super(prefix);
    const boc = cfg.block_out_channels;
    const g = cfg.norm_num_groups;
    this.convIn = this.child(new Conv2d(`${prefix}.conv_in`, cfg.in_channels, boc[0]!, 3, { padding: 1 }));
    let ch = boc[0]!;
    boc.forEach((out, i) => {
      const p = `${prefix}.down_blocks.${i}`;
      const resnets: VaeResnetBlock[] = [];
      for (let j = 0; j < cfg.layers_per_block; j++) {
        resnets.push(this.child(new VaeResnetBlock(`${p}.resnets.${j}`, j === 0 ? ch : out, out, g)));
      }
      // Downsample2D with padding 0: F.pad(0, 1, 0, 1) then a stride-2 3×3 conv (see forward).
      const downsample =
        i < boc.length - 1
          ? this.child(new Conv2d(`${p}.downsamplers.0.conv`, out, out, 3, { stride: 2, padding: 0 }))
          : undefined;
      this.downBlocks.push({ resnets, downsample });
      ch = out;
    });
    this.midBlock = this.child(new VaeMidBlock(`${prefix}.mid_block`, ch, g, cfg.mid_block_add_attention));
    this.convNormOut = this.child(new GroupNorm(`${prefix}.conv_norm_out`, g, ch, VAE_EPS));
    this.convOut = this.child(
      new Conv2d(`${prefix}.conv_out`, ch, 2 * cfg.latent_channels, 3, { padding: 1 }),
    );
  }

  forward(x: Tensor): Tensor {
    let h = this.convIn.forward(x);
    for (const block of this.downBlocks) {
      for (const r of block.resnets) h = r.forward(h);
      if (block.downsample) {
        // Asymmetric: one zero row/column at the bottom/right only, so H/2 × W/2 comes out exactly.
        const padded = F.pad(h, [
          [0, 0],
          [0, 0],
          [0, 1],
          [0, 1],
        ]);
        h = block.downsample.forward(padded);
      }
    }
    h = this.midBlock.forward(h);
    return this.convOut.forward(F.silu(this.convNormOut.forward(h)));
  }
}

/** diffusers `Decoder`: conv_in, mid block, UpDecoderBlock2D × n (layers_per_block + 1 resnets, nearest ×2 + conv), norm + SiLU + conv_out. */
export class VaeDecoder extends Module {
  readonly convIn: Conv2d;
  readonly midBlock: VaeMidBlock;
  readonly upBlocks: { resnets: VaeResnetBlock[]; upsample: Conv2d | undefined }[] = [];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(prefix: string, cfg: VaeConfig) {
    super(prefix);
    const rev = [...cfg.block_out_channels].reverse();
    const g = cfg.norm_num_groups;
    this.convIn = this.child(
      new Conv2d(`${prefix}.conv_in`, cfg.latent_channels, rev[0]!, 3, { padding: 1 }),
    );
    this.midBlock = this.child(
      new VaeMidBlock(`${prefix}.mid_block`, rev[0]!, g, cfg.mid_block_add_attention),
    );
    let ch = rev[0]!;
    rev.forEach((out, i) => {
      const p = `${prefix}.up_blocks.${i}`;
      const resnets: VaeResnetBlock[] = [];
      for (let j = 0; j < cfg.layers_per_block + 1; j++) {
        resnets.push(this.child(new VaeResnetBlock(`${p}.resnets.${j}`, j === 0 ? ch : out, out, g)));
      }
      const upsample =
        i < rev.length - 1
          ? this.child(new Conv2d(`${p}.upsamplers.0.conv`, out, out, 3, { padding: 1 }))
          : undefined;
      this.upBlocks.push({ resnets, upsample });
      ch = out;
    });
    this.convNormOut = this.child(new GroupNorm(`${prefix}.conv_norm_out`, g, ch, VAE_EPS));
    this.convOut = this.child(new Conv2d(`${prefix}.conv_out`, ch, cfg.out_channels, 3, { padding: 1 }));
  }

  forward(z: Tensor): Tensor {
    let h = this.midBlock.forward(this.convIn.forward(z));
    for (const block of this.upBlocks) {
      for (const r of block.resnets) h = r.forward(h);
      if (block.upsample) h = block.upsample.forward(F.upsampleNearest2x(h));
    }
    return this.convOut.forward(F.silu(this.convNormOut.forward(h)));
  }
}

export interface LatentDistribution {
  /** [B, latent, h, w] */
  mean: Tensor;
  /** Clamped to [−30, 20] as diffusers' DiagonalGaussianDistribution does. */
  logvar: Tensor;
  /** exp(logvar / 2) */
  std: Tensor;
}

/** diffusers `AutoencoderKL`: state-dict keys `encoder.*`, `decoder.*`, `quant_conv.*`, `post_quant_conv.*`. */
export class AutoencoderKL extends Module {
  readonly config: VaeConfig;
  readonly encoder: VaeEncoder;
  readonly decoder: VaeDecoder;
  readonly quantConv: Conv2d;
  readonly postQuantConv: Conv2d;

  /** `config`: a parsed VaeConfig or a raw config.json object. */
  constructor(config: VaeConfig | Record<string, unknown>) {
    super('');
    const cfg = parseVaeConfig(config);
    this.config = cfg;
    const l = cfg.latent_channels;
    this.encoder = this.child(new VaeEncoder('encoder', cfg));
    this.decoder = this.child(new VaeDecoder('decoder', cfg));
    this.quantConv = this.child(new Conv2d('quant_conv', 2 * l, 2 * l, 1));
    this.postQuantConv = this.child(new Conv2d('post_quant_conv', l, l, 1));
  }

  /** `vae.encode(image).latent_dist` for an image [B, in_channels, H, W] in [−1, 1]. */
  encode(image: Tensor): LatentDistribution {
    const moments = this.quantConv.forward(this.encoder.forward(image));
    const [mean, raw] = F.chunk(moments, 2, 1) as [Tensor, Tensor];
    const logvar = F.minimum(F.maximum(raw, -30), 20);
    return { mean, logvar, std: F.exp(F.mul(logvar, 0.5)) };
  }

  /** `vae.decode(z).sample` (no scaling: the pipeline divides latents by `scaling_factor` first). */
  decode(latents: Tensor): Tensor {
    return this.decoder.forward(this.postQuantConv.forward(latents));
  }
}

// ---------------------------------------------------------------- checkpoint names

/** Pre-0.14 diffusers attention names → current ones (diffusers `_convert_deprecated_attention_blocks`). */
const DEPRECATED_ATTENTION_NAMES: [string, string][] = [
  ['query', 'to_q'],
  ['key', 'to_k'],
  ['value', 'to_v'],
  ['proj_attn', 'to_out.0'],
];

interface StateSource {
  keys(): string[];
  get(name: string): Promise<NDArray>;
  info?(name: string): { shape: readonly number[] };
}

/**
 * A checkpoint reader that shows old mid-block attention names (`attentions.0.query.weight`, …)
 * under the current ones (`to_q.weight`, …), and their [C, C, 1, 1] conv-shaped weights (as some
 * converted checkpoints store them) as the [C, C] linear weights they are.
 */
export function vaeCheckpointView(source: StateSource): Required<StateSource> {
  const toOld = new Map<string, string>();
  for (const k of source.keys()) {
    const m = /^(.*\.mid_block\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$/.exec(k);
    if (!m) continue;
    const renamed = DEPRECATED_ATTENTION_NAMES.find(([old]) => old === m[2])![1];
    toOld.set(`${m[1]}.${renamed}.${m[3]}`, k);
  }
  const oldNames = new Set(toOld.values());
  const isAttnLinear = (k: string) =>
    /\.mid_block\.attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(k);
  const squeeze = (k: string, shape: readonly number[]) =>
    isAttnLinear(k) && shape.length === 4 && shape[2] === 1 && shape[3] === 1 ? shape.slice(0, 2) : shape;
  return {
    keys: () => [...source.keys().filter((k) => !oldNames.has(k)), ...toOld.keys()],
    info: (k) => {
      const shape = source.info?.(toOld.get(k) ?? k).shape;
      if (!shape) throw new ImagenError('NOT_FOUND', `checkpoint has no tensor ${k}`);
      return { shape: squeeze(k, shape) };
    },
    get: async (k) => {
      const a = await source.get(toOld.get(k) ?? k);
      const shape = squeeze(k, a.shape);
      return shape === a.shape ? a : a.reshape(shape);
    },
  };
}

// ---------------------------------------------------------------- runner (encode, decode, tiled decode)

export interface TiledDecodeOptions {
  /**
   * Output pixels per tile side (diffusers `tile_sample_min_size`), default the config's
   * `sample_size`; the latent tile is this divided by the VAE's scale factor.
   */
  tileSampleSize?: number;
  /** Fraction of a tile shared with its neighbour and cross-faded (diffusers `tile_overlap_factor`, 0.25). */
  overlapFactor?: number;
}

export interface EncodeResult {
  mean: NDArray;
  logvar: NDArray;
  std: NDArray;
}

/** Rows i0..i1 and columns j0..j1 of an NCHW float32 array (a copy). */
function cropNCHW(a: NDArray, i0: number, i1: number, j0: number, j1: number): NDArray {
  const [n, c, h, w] = a.shape as [number, number, number, number];
  const hh = Math.min(i1, h) - i0;
  const ww = Math.min(j1, w) - j0;
  const src = a.data as Float32Array;
  const out = new Float32Array(n * c * hh * ww);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < hh; y++) {
      const s = p * h * w + (i0 + y) * w + j0;
      out.set(src.subarray(s, s + ww), (p * hh + y) * ww);
    }
  }
  return new NDArray('float32', [n, c, hh, ww], out);
}

/**
 * diffusers `blend_v`, in place on `b`: its first rows fade from `a`'s last rows to its own, row y
 * weighted (1 − y/e, y/e).
 */
function blendV(a: NDArray, b: NDArray, extent: number): void {
  const [n, c, ha, w] = a.shape as [number, number, number, number];
  const hb = b.shape[2]!;
  const e = Math.min(ha, hb, extent);
  const wb = b.shape[3]!;
  if (wb !== w) throw new Error(`blendV: widths ${w} and ${wb} differ`);
  const A = a.data as Float32Array;
  const B = b.data as Float32Array;
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < e; y++) {
      const t = y / e;
      const ra = p * ha * w + (ha - e + y) * w;
      const rb = p * hb * w + y * w;
      for (let x = 0; x < w; x++) B[rb + x] = A[ra + x]! * (1 - t) + B[rb + x]! * t;
    }
  }
}

/** diffusers `blend_h`, in place on `b`: its first columns fade from `a`'s last columns. */
function blendH(a: NDArray, b: NDArray, extent: number): void {
  const [n, c, h, wa] = a.shape as [number, number, number, number];
  const wb = b.shape[3]!;
  const hb = b.shape[2]!;
  const e = Math.min(wa, wb, extent);
  const A = a.data as Float32Array;
  const B = b.data as Float32Array;
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < Math.min(h, hb); y++) {
      for (let x = 0; x < e; x++) {
        const t = x / e;
        const ia = p * h * wa + y * wa + (wa - e + x);
        const ib = p * hb * wb + y * wb + x;
        B[ib] = A[ia]! * (1 - t) + B[ib]! * t;
      }
    }
  }
}

/** An AutoencoderKL compiled on a Runtime (one ONNX session per input shape, per direction). */
export class VaeRunner {
  private readonly decodeFn: CompiledFunction;
  private readonly encodeFn: CompiledFunction;

  constructor(
    readonly model: AutoencoderKL,
    rt: Runtime,
    options: { decompose?: boolean } = {},
  ) {
    const decompose = options.decompose ?? false;
    this.decodeFn = rt.compile((i) => ({ sample: model.decode(i.latents!) }), {
      name: 'vae-decode',
      decompose,
    });
    this.encodeFn = rt.compile(
      (i) => {
        const d = model.encode(i.image!);
        return { mean: d.mean, logvar: d.logvar, std: d.std };
      },
      { name: 'vae-encode', decompose },
    );
  }

  get config(): VaeConfig {
    return this.model.config;
  }

  private check(x: NDArray, channels: number, what: string): void {
    if (x.dtype !== 'float32' || x.shape.length !== 4 || x.shape[1] !== channels) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `VAE ${what}: expected float32 [B, ${channels}, H, W], got ${x.dtype} [${x.shape}]`,
      );
    }
  }

  /** The latent distribution of `image` (float32 [B, in_channels, H, W], H and W multiples of the scale factor). */
  async encode(image: NDArray): Promise<EncodeResult> {
    this.check(image, this.config.in_channels, 'encode');
    const f = vaeScaleFactor(this.config);
    if (image.shape[2]! % f || image.shape[3]! % f) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `VAE encode: image ${image.shape[2]}×${image.shape[3]} is not a multiple of ${f}`,
      );
    }
    const o = await this.encodeFn.run({ image });
    return { mean: o.mean!, logvar: o.logvar!, std: o.std! };
  }

  /** `vae.decode(latents).sample` in one piece (memory grows with the latent area; see {@link decodeTiled}). */
  async decode(latents: NDArray): Promise<NDArray> {
    this.check(latents, this.config.latent_channels, 'decode');
    return (await this.decodeFn.run({ latents })).sample!;
  }

  /**
   * diffusers `AutoencoderKL.tiled_decode`: overlapping latent tiles decoded one at a time, each
   * blended with the tile above and the one to the left over `overlapFactor` of a tile, then
   * cropped and stitched. Peak memory is one tile's activations, whatever the output size. The
   * result is not bit-equal to {@link decode}: each tile's group norms and mid-block attention see
   * only that tile.
   */
  async decodeTiled(latents: NDArray, options: TiledDecodeOptions = {}): Promise<NDArray> {
    this.check(latents, this.config.latent_channels, 'decode');
    const f = vaeScaleFactor(this.config);
    const sampleTile = options.tileSampleSize ?? this.config.sample_size;
    const overlap = options.overlapFactor ?? 0.25;
    if (!(overlap >= 0 && overlap < 1)) {
      throw new ImagenError('BAD_INPUT', `VAE tiled decode: overlapFactor must be in [0, 1), got ${overlap}`);
    }
    // Python int() truncation, as diffusers computes these.
    const latentTile = Math.trunc(sampleTile / f);
    const stride = Math.trunc(latentTile * (1 - overlap));
    const blend = Math.trunc(sampleTile * overlap);
    const keep = sampleTile - blend;
    if (latentTile < 1 || stride < 1) {
      throw new ImagenError(
        'BAD_INPUT',
        `VAE tiled decode: tile of ${sampleTile} px (${latentTile} latents) with overlap ${overlap} leaves no stride`,
      );
    }
    const [, , h, w] = latents.shape as [number, number, number, number];
    const rows: NDArray[][] = [];
    for (let i = 0; i < h; i += stride) {
      const row: NDArray[] = [];
      for (let j = 0; j < w; j += stride) {
        row.push(await this.decode(cropNCHW(latents, i, i + latentTile, j, j + latentTile)));
      }
      rows.push(row);
    }
    // Blend in place and in the same order as diffusers: a tile's left neighbour has already been
    // blended with the tile above it, and the next row blends with these blended tiles.
    const crops: NDArray[][] = rows.map((row, i) =>
      row.map((tile, j) => {
        if (i > 0) blendV(rows[i - 1]![j]!, tile, blend);
        if (j > 0) blendH(row[j - 1]!, tile, blend);
        return cropNCHW(tile, 0, keep, 0, keep);
      }),
    );
    return stitch(crops);
  }

  async release(): Promise<void> {
    await this.decodeFn.release();
    await this.encodeFn.release();
  }
}

/** torch.cat of a grid of NCHW tiles: along W within each row, then the rows along H. */
function stitch(grid: NDArray[][]): NDArray {
  const [n, c] = grid[0]![0]!.shape as [number, number];
  const heights = grid.map((row) => row[0]!.shape[2]!);
  const widths = grid[0]!.map((t) => t.shape[3]!);
  const H = heights.reduce((a, b) => a + b, 0);
  const W = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(n * c * H * W);
  let y0 = 0;
  grid.forEach((row, i) => {
    let x0 = 0;
    row.forEach((t, j) => {
      const [, , th, tw] = t.shape as [number, number, number, number];
      if (th !== heights[i] || tw !== widths[j]) throw new Error('stitch: ragged tile grid');
      const src = t.data as Float32Array;
      for (let p = 0; p < n * c; p++) {
        for (let y = 0; y < th; y++) {
          const s = (p * th + y) * tw;
          out.set(src.subarray(s, s + tw), p * H * W + (y0 + y) * W + x0);
        }
      }
      x0 += tw;
    });
    y0 += heights[i]!;
  });
  return new NDArray('float32', [n, c, H, W], out);
}
