/**
 * The Stable Diffusion block family of diffusers' `UNet2DConditionModel` (v0.25
 * `unet_2d_blocks.py`, `transformer_2d.py`, `attention.py`, `downsampling.py`, `upsampling.py`), as
 * used by stabilityai/stable-diffusion-x4-upscaler: resnets with conv resamplers and
 * `Transformer2DModel` cross-attention (self-attention, text cross-attention, GEGLU feed-forward).
 * Parameter names are diffusers' state-dict keys.
 */
import { ImagenError } from '../../engine/errors.js';
import type { Tensor } from '../../engine/graph.js';
import * as F from '../../engine/ops/index.js';
import { Conv2d, GroupNorm, LayerNorm, Linear, Module } from '../../nn/index.js';
import {
  type AttentionFactory,
  type BlockContext,
  DownLayers,
  type ResnetShared,
  UpLayers,
} from './block_layers.js';
import { ResnetBlock2D } from './resnet.js';

/** diffusers `Attention` with the plain `AttnProcessor`: q from x, k/v from the context (or x). */
export class CrossAttention extends Module {
  toQ: Linear;
  toK: Linear;
  toV: Linear;
  toOut: Linear;

  constructor(
    prefix: string,
    queryDim: number,
    /** Width of the key/value source: the text width for cross-attention, queryDim for self. */
    kvDim: number,
    readonly heads: number,
    readonly headDim: number,
  ) {
    super(prefix);
    const inner = heads * headDim;
    // attention_bias=False in every UNet2DConditionModel transformer: no q/k/v biases.
    this.toQ = this.child(new Linear(`${prefix}.to_q`, queryDim, inner, { bias: false }));
    this.toK = this.child(new Linear(`${prefix}.to_k`, kvDim, inner, { bias: false }));
    this.toV = this.child(new Linear(`${prefix}.to_v`, kvDim, inner, { bias: false }));
    this.toOut = this.child(new Linear(`${prefix}.to_out.0`, inner, queryDim));
  }

  /** x [B, N, queryDim]; ctx [B, L, kvDim] or none (self-attention); bias additive [B, 1, 1, L]. */
  forward(x: Tensor, ctx?: Tensor, bias?: Tensor): Tensor {
    return this.scoped(x, () => {
      const kv = ctx ?? x;
      const q = this.toQ.forward(x);
      // The fused kernel wants the bias at its full [B, 1, N, L] query extent.
      const b = bias && F.expand(bias, [bias.shape[0]!, 1, q.shape[1]!, bias.shape[3]!]);
      const a = F.attention(q, this.toK.forward(kv), this.toV.forward(kv), {
        numHeads: this.heads,
        scale: this.headDim ** -0.5,
        bias: b,
      });
      return this.toOut.forward(a);
    });
  }
}

/** `FeedForward` with `activation_fn="geglu"`: net.0 = GEGLU (proj → [h, gate] → h·gelu(gate)), net.2 = Linear. */
export class GegluFeedForward extends Module {
  proj: Linear;
  out: Linear;
  constructor(
    prefix: string,
    dim: number,
    readonly inner = 4 * dim,
  ) {
    super(prefix);
    this.proj = this.child(new Linear(`${prefix}.net.0.proj`, dim, 2 * inner));
    // net.1 is a Dropout (no parameters, identity at inference).
    this.out = this.child(new Linear(`${prefix}.net.2`, inner, dim));
  }
  forward(x: Tensor): Tensor {
    return this.scoped(x, () => {
      // torch's chunk(2, dim=-1): the first half is the value, the second the gate.
      const [h, gate] = F.chunk(this.proj.forward(x), 2, x.rank - 1) as [Tensor, Tensor];
      return this.out.forward(F.mul(h, F.gelu(gate)));
    });
  }
}

export interface TransformerOptions {
  channels: number;
  /** Number of heads (diffusers' legacy `attention_head_dim` for these blocks). */
  heads: number;
  crossDim: number;
  groups: number;
  layers: number;
  /** Linear proj_in/proj_out on tokens (SD 2.x, x4 upscaler) instead of 1×1 convs (SD 1.x). */
  linearProjection: boolean;
  /** attn1 attends to the text instead of to the image tokens (x4 upscaler's high-res blocks). */
  onlyCross: boolean;
}

/** `BasicTransformerBlock` (norm_type "layer_norm"): attn1, attn2 (text), GEGLU feed-forward, each pre-norm + residual. */
export class BasicTransformerBlock extends Module {
  norm1: LayerNorm;
  attn1: CrossAttention;
  norm2: LayerNorm;
  attn2: CrossAttention;
  norm3: LayerNorm;
  ff: GegluFeedForward;

  constructor(
    prefix: string,
    dim: number,
    heads: number,
    headDim: number,
    crossDim: number,
    readonly onlyCross: boolean,
  ) {
    super(prefix);
    this.norm1 = this.child(new LayerNorm(`${prefix}.norm1`, dim, 1e-5));
    this.attn1 = this.child(
      new CrossAttention(`${prefix}.attn1`, dim, onlyCross ? crossDim : dim, heads, headDim),
    );
    this.norm2 = this.child(new LayerNorm(`${prefix}.norm2`, dim, 1e-5));
    this.attn2 = this.child(new CrossAttention(`${prefix}.attn2`, dim, crossDim, heads, headDim));
    this.norm3 = this.child(new LayerNorm(`${prefix}.norm3`, dim, 1e-5));
    this.ff = this.child(new GegluFeedForward(`${prefix}.ff`, dim));
  }

  forward(h: Tensor, ctx: Tensor, textBias?: Tensor): Tensor {
    // With only_cross_attention diffusers gives attn1 the text but the UNet's (image) attention_mask,
    // never the encoder mask, so attn1 sees unmasked text; only attn2 applies the text padding bias.
    h = F.add(this.attn1.forward(this.norm1.forward(h), this.onlyCross ? ctx : undefined), h);
    h = F.add(this.attn2.forward(this.norm2.forward(h), ctx, textBias), h);
    return F.add(this.ff.forward(this.norm3.forward(h)), h);
  }
}

/** `Transformer2DModel` on continuous input: GroupNorm, proj_in, transformer blocks over H·W tokens, proj_out, residual. */
export class Transformer2DModel extends Module {
  norm: GroupNorm;
  projIn: Linear | Conv2d;
  blocks: BasicTransformerBlock[] = [];
  projOut: Linear | Conv2d;
  readonly inner: number;

  constructor(
    prefix: string,
    readonly o: TransformerOptions,
  ) {
    super(prefix);
    const c = o.channels;
    // diffusers passes (heads, channels // heads): inner width = heads · ⌊C/heads⌋.
    const headDim = Math.floor(c / o.heads);
    this.inner = o.heads * headDim;
    this.norm = this.child(new GroupNorm(`${prefix}.norm`, o.groups, c, 1e-6));
    this.projIn = this.child(
      o.linearProjection
        ? new Linear(`${prefix}.proj_in`, c, this.inner)
        : new Conv2d(`${prefix}.proj_in`, c, this.inner, 1),
    );
    for (let d = 0; d < o.layers; d++) {
      this.blocks.push(
        this.child(
          new BasicTransformerBlock(
            `${prefix}.transformer_blocks.${d}`,
            this.inner,
            o.heads,
            headDim,
            o.crossDim,
            o.onlyCross,
          ),
        ),
      );
    }
    this.projOut = this.child(
      o.linearProjection
        ? new Linear(`${prefix}.proj_out`, this.inner, c)
        : new Conv2d(`${prefix}.proj_out`, this.inner, c, 1),
    );
  }

  forward(x: Tensor, ctx: Tensor, textBias?: Tensor): Tensor {
    return this.scoped(x, () => {
      const [b, c, h, w] = x.shape as [number, number, number, number];
      const toTokens = (t: Tensor) => F.reshape(F.permute(t, [0, 2, 3, 1]), [b, h * w, t.shape[1]!]);
      const toImage = (t: Tensor) => F.permute(F.reshape(t, [b, h, w, t.shape[2]!]), [0, 3, 1, 2]);
      const n = this.norm.forward(x);
      // Linear projections act on tokens, conv projections on the image: same math, different layout.
      let tokens = this.o.linearProjection
        ? this.projIn.forward(toTokens(n))
        : toTokens(this.projIn.forward(n));
      for (const blk of this.blocks) tokens = blk.forward(tokens, ctx, textBias);
      const out = this.o.linearProjection
        ? toImage(this.projOut.forward(tokens))
        : this.projOut.forward(toImage(tokens));
      if (out.shape[1] !== c)
        throw new ImagenError('SHAPE_MISMATCH', `${this.prefix}: width ${out.shape[1]} ≠ ${c}`);
      return F.add(out, x);
    });
  }
}

/** `Downsample2D(use_conv=True)`: 3×3 conv, stride 2; padding 0 means diffusers' asymmetric (0,1,0,1) zero pad first. */
export class Downsample2D extends Module {
  conv: Conv2d;
  constructor(
    prefix: string,
    channels: number,
    readonly padding: number,
  ) {
    super(prefix);
    this.conv = this.child(new Conv2d(`${prefix}.conv`, channels, channels, 3, { stride: 2, padding }));
  }
  forward(x: Tensor): Tensor {
    return this.scoped(x, () => {
      const padded =
        this.padding === 0
          ? F.pad(x, [
              [0, 0],
              [0, 0],
              [0, 1],
              [0, 1],
            ])
          : x;
      return this.conv.forward(padded);
    });
  }
}

/** `Upsample2D(use_conv=True)`: nearest ×2 (or to the skip's size), then a 3×3 conv. */
export class Upsample2D extends Module {
  conv: Conv2d;
  constructor(prefix: string, channels: number) {
    super(prefix);
    this.conv = this.child(new Conv2d(`${prefix}.conv`, channels, channels, 3, { padding: 1 }));
  }
  /** `size`: the target [H, W] diffusers passes as `upsample_size` when a side was odd on the way down. */
  forward(x: Tensor, size?: readonly [number, number]): Tensor {
    return this.scoped(x, () => {
      const [, , h, w] = x.shape as [number, number, number, number];
      let up = F.upsampleNearest2x(x);
      if (size && (size[0] !== 2 * h || size[1] !== 2 * w)) {
        // torch's nearest resize n → m reads source ⌊i·n/m⌋; for m = 2n − 1 that is ⌊i/2⌋, i.e. the
        // ×2 result cropped. That covers every size a padding-1 stride-2 conv (⌈m/2⌉) leaves.
        const ok = (m: number, n: number) => m === 2 * n || m === 2 * n - 1;
        if (!ok(size[0], h) || !ok(size[1], w)) {
          throw new ImagenError(
            'SHAPE_MISMATCH',
            `${this.prefix}: cannot upsample ${h}×${w} to ${size[0]}×${size[1]} (use sides divisible by the UNet's total downsampling)`,
          );
        }
        up = F.narrow(F.narrow(up, 2, 0, size[0]), 3, 0, size[1]);
      }
      return this.conv.forward(up);
    });
  }
}

/** What a block passes each of its transformers: all but the width, which is the block's. */
export type SdAttnShared = Omit<TransformerOptions, 'channels'>;

function transformers(a: SdAttnShared | undefined): AttentionFactory<Transformer2DModel> | undefined {
  return a && ((prefix, channels) => new Transformer2DModel(prefix, { ...a, channels }));
}

/** DownBlock2D (no attention) / CrossAttnDownBlock2D: resnets (+ transformers), then a stride-2 conv. */
export class SdDownBlock extends DownLayers<Transformer2DModel> {
  downsampler: Downsample2D | undefined;

  constructor(
    prefix: string,
    inCh: number,
    outCh: number,
    layers: number,
    res: ResnetShared,
    attn: SdAttnShared | undefined,
    downsamplePadding: number | undefined,
  ) {
    super(prefix, inCh, outCh, layers, res, transformers(attn));
    if (downsamplePadding !== undefined) {
      this.downsampler = this.child(new Downsample2D(`${prefix}.downsamplers.0`, outCh, downsamplePadding));
    }
  }

  protected downsample(x: Tensor): Tensor | undefined {
    return this.downsampler?.forward(x);
  }
}

/** UNetMidBlock2DCrossAttn (num_layers 1): resnet, transformer, resnet. */
export class SdMidBlock extends Module {
  resnets: ResnetBlock2D[];
  attentions: Transformer2DModel[];
  constructor(prefix: string, ch: number, res: ResnetShared, attn: SdAttnShared) {
    super(prefix);
    this.resnets = [
      this.child(new ResnetBlock2D(`${prefix}.resnets.0`, { ...res, inChannels: ch, outChannels: ch })),
    ];
    // The mid block never uses only_cross_attention (diffusers does not pass it there).
    this.attentions = [
      this.child(
        new Transformer2DModel(`${prefix}.attentions.0`, { ...attn, onlyCross: false, channels: ch }),
      ),
    ];
    this.resnets.push(
      this.child(new ResnetBlock2D(`${prefix}.resnets.1`, { ...res, inChannels: ch, outChannels: ch })),
    );
  }
  forward(x: Tensor, c: BlockContext): Tensor {
    x = this.resnets[0]!.forward(x, c.temb);
    x = this.attentions[0]!.forward(x, c.ctx, c.textBias);
    return this.resnets[1]!.forward(x, c.temb);
  }
}

/** UpBlock2D / CrossAttnUpBlock2D: [hidden, skip] concat → resnet (+ transformer), then nearest ×2 + conv. */
export class SdUpBlock extends UpLayers<Transformer2DModel> {
  upsampler: Upsample2D | undefined;

  constructor(
    prefix: string,
    prevCh: number,
    outCh: number,
    skipInCh: number,
    layers: number,
    res: ResnetShared,
    attn: SdAttnShared | undefined,
    addUpsample: boolean,
  ) {
    super(prefix, prevCh, outCh, skipInCh, layers, res, transformers(attn));
    if (addUpsample) this.upsampler = this.child(new Upsample2D(`${prefix}.upsamplers.0`, outCh));
  }

  /** To the size of the next block's first skip: one short of 2× where a side was odd on the way down. */
  protected upsample(x: Tensor, skips: readonly Tensor[]): Tensor {
    if (!this.upsampler) return x;
    const next = skips[skips.length - 1];
    return this.upsampler.forward(x, next && [next.shape[2]!, next.shape[3]!]);
  }
}
