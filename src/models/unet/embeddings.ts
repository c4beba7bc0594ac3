import type { Tensor } from '../../engine/graph.js';
import { NDArray } from '../../engine/ndarray.js';
import * as F from '../../engine/ops/index.js';
import { LayerNorm, Linear, Module } from '../../nn/index.js';

/**
 * Sinusoidal timestep embedding (diffusers `get_timestep_embedding`, DDPM / Transformer style):
 * frequencies exp(−ln(10000)·i/(half−shift)) computed in float32 as torch does; [cos, sin] when
 * flipSinToCos. Works for the noise-level class labels of super-resolution stages too.
 */
export function timestepEmbedding(t: Tensor, dim: number, flipSinToCos: boolean, shift: number): Tensor {
  const half = Math.floor(dim / 2);
  const f = Math.fround;
  const freqs = new Float32Array(half);
  const c = f(-Math.log(10000));
  for (let i = 0; i < half; i++) freqs[i] = f(Math.exp(f(f(c * i) / f(half - shift))));
  const tf = F.reshape(F.cast(t, 'float32'), [-1, 1]);
  const arg = F.mul(tf, t.trace.constant(NDArray.f32([1, half], freqs)));
  const sin = F.sin(arg);
  const cos = F.cos(arg);
  let emb = F.concat(flipSinToCos ? [cos, sin] : [sin, cos], 1);
  if (dim % 2)
    emb = F.pad(emb, [
      [0, 0],
      [0, 1],
    ]);
  return emb;
}

export function activation(name: 'gelu' | 'silu', x: Tensor): Tensor {
  return name === 'gelu' ? F.gelu(x) : F.silu(x);
}

/** `TimestepEmbedding`: linear_2(act(linear_1(x))). */
export class TimestepEmbedding extends Module {
  linear1: Linear;
  linear2: Linear;
  constructor(
    prefix: string,
    inDim: number,
    dim: number,
    readonly act: 'gelu' | 'silu',
  ) {
    super(prefix);
    this.linear1 = this.child(new Linear(`${prefix}.linear_1`, inDim, dim));
    this.linear2 = this.child(new Linear(`${prefix}.linear_2`, dim, dim));
  }
  forward(x: Tensor): Tensor {
    return this.linear2.forward(activation(this.act, this.linear1.forward(x)));
  }
}

/**
 * IF's attention pooling of the text tokens (deepfloyd_if/model/nn.py `AttentionPooling`):
 * a class token (mean of tokens + learned position) attends over [class, tokens]; q and k are
 * each scaled by d^(−1/4), i.e. 1/√d overall; no output projection.
 */
export class AttentionPooling extends Module {
  positionalEmbedding;
  q: Linear;
  k: Linear;
  v: Linear;
  constructor(
    prefix: string,
    readonly numHeads: number,
    readonly dim: number,
  ) {
    super(prefix);
    this.positionalEmbedding = this.param('positional_embedding', [1, dim], {
      kind: 'normal',
      std: 1 / Math.sqrt(dim),
    });
    this.q = this.child(new Linear(`${prefix}.q_proj`, dim, dim));
    this.k = this.child(new Linear(`${prefix}.k_proj`, dim, dim));
    this.v = this.child(new Linear(`${prefix}.v_proj`, dim, dim));
  }
  forward(x: Tensor): Tensor {
    return this.scoped(x, () => {
      const [b, , d] = x.shape as [number, number, number];
      const cls = F.add(F.reduceMean(x, [1], true), x.trace.param(this.positionalEmbedding));
      const seq = F.concat([cls, x], 1);
      const a = F.attention(this.q.forward(cls), this.k.forward(seq), this.v.forward(seq), {
        numHeads: this.numHeads,
        scale: 1 / Math.sqrt(d / this.numHeads),
      });
      return F.reshape(a, [b, d]);
    });
  }
}

/** `TextTimeEmbedding`: norm2(proj(pool(norm1(text)))) — the pooled caption added to the time embedding. */
export class TextTimeEmbedding extends Module {
  norm1: LayerNorm;
  pool: AttentionPooling;
  proj: Linear;
  norm2: LayerNorm;
  constructor(prefix: string, textDim: number, timeDim: number, numHeads: number) {
    super(prefix);
    this.norm1 = this.child(new LayerNorm(`${prefix}.norm1`, textDim));
    this.pool = this.child(new AttentionPooling(`${prefix}.pool`, numHeads, textDim));
    this.proj = this.child(new Linear(`${prefix}.proj`, textDim, timeDim));
    this.norm2 = this.child(new LayerNorm(`${prefix}.norm2`, timeDim));
  }
  forward(text: Tensor): Tensor {
    return this.norm2.forward(this.proj.forward(this.pool.forward(this.norm1.forward(text))));
  }
}
