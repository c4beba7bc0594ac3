import type { Tensor } from '../../engine/graph.js';
import * as F from '../../engine/ops/index.js';
import { GroupNorm, Linear, Module } from '../../nn/index.js';

export interface AddedKVAttentionOptions {
  channels: number;
  headDim: number;
  crossDim: number;
  groups: number;
  onlyCross: boolean;
}

/**
 * diffusers `Attention` with `AttnAddedKVProcessor`: the text tokens' keys/values are
 * prepended to the image tokens' own, so self- and cross-attention share one softmax.
 */
export class AddedKVAttention extends Module {
  groupNorm: GroupNorm;
  normCross: GroupNorm;
  toQ: Linear;
  toK: Linear | undefined;
  toV: Linear | undefined;
  addK: Linear;
  addV: Linear;
  toOut: Linear;

  constructor(
    prefix: string,
    readonly o: AddedKVAttentionOptions,
  ) {
    super(prefix);
    const c = o.channels;
    this.groupNorm = this.child(new GroupNorm(`${prefix}.group_norm`, o.groups, c, 1e-5));
    // diffusers builds norm_cross with 32 groups regardless of norm_num_groups.
    this.normCross = this.child(new GroupNorm(`${prefix}.norm_cross`, 32, o.crossDim, 1e-5));
    this.toQ = this.child(new Linear(`${prefix}.to_q`, c, c));
    this.toK = o.onlyCross ? undefined : this.child(new Linear(`${prefix}.to_k`, c, c));
    this.toV = o.onlyCross ? undefined : this.child(new Linear(`${prefix}.to_v`, c, c));
    this.addK = this.child(new Linear(`${prefix}.add_k_proj`, o.crossDim, c));
    this.addV = this.child(new Linear(`${prefix}.add_v_proj`, o.crossDim, c));
    this.toOut = this.child(new Linear(`${prefix}.to_out.0`, c, c));
  }

  /** x [B, C, H, W]; ctx [B, L, crossDim]; textBias optional additive [B, 1, 1, L] (masked tokens). */
  forward(x: Tensor, ctx: Tensor, textBias?: Tensor): Tensor {
    return this.scoped(x, () => {
      const [b, c, h, w] = x.shape as [number, number, number, number];
      const n = h * w;
      const tokens = F.reshape(x, [b, c, n]);
      const s = F.transpose(this.groupNorm.forward(tokens), 1, 2); // [B, N, C]
      const cn = F.transpose(this.normCross.forward(F.transpose(ctx, 1, 2)), 1, 2); // [B, L, X]
      const q = this.toQ.forward(s);
      let k = this.addK.forward(cn);
      let v = this.addV.forward(cn);
      if (this.toK && this.toV) {
        k = F.concat([k, this.toK.forward(s)], 1); // text tokens first
        v = F.concat([v, this.toV.forward(s)], 1);
      }
      let bias: Tensor | undefined;
      if (textBias) {
        const extra = k.shape[1]! - textBias.shape[3]!;
        bias = extra
          ? F.pad(textBias, [
              [0, 0],
              [0, 0],
              [0, 0],
              [0, extra],
            ])
          : textBias;
        // ORT's MultiHeadAttention takes attention_bias only with the full query length.
        bias = F.expand(bias, [b, 1, n, bias.shape[3]!]);
      }
      const heads = c / this.o.headDim;
      const a = F.attention(q, k, v, { numHeads: heads, scale: 1 / Math.sqrt(this.o.headDim), bias });
      const o = F.reshape(F.transpose(this.toOut.forward(a), 1, 2), [b, c, h, w]);
      return F.add(o, x);
    });
  }
}
