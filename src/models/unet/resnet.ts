import type { Tensor } from '../../engine/graph.js';
import * as F from '../../engine/ops/index.js';
import { Conv2d, GroupNorm, Linear, Module } from '../../nn/index.js';
import { activation } from './embeddings.js';

export interface ResnetOptions {
  inChannels: number;
  outChannels: number;
  tembChannels: number;
  groups: number;
  eps: number;
  act: 'gelu' | 'silu';
  scaleShift: boolean;
  skipTimeAct: boolean;
  outputScaleFactor: number;
  /** 2×2 average pool inside the block (IF's ResnetDownsampleBlock2D resampler). */
  down?: boolean;
  /** Nearest ×2 upsampling inside the block (ResnetUpsampleBlock2D resampler). */
  up?: boolean;
}

/** diffusers `ResnetBlock2D` (no conv resamplers: IF resamples with avg-pool / nearest inside the block). */
export class ResnetBlock2D extends Module {
  norm1: GroupNorm;
  conv1: Conv2d;
  timeEmbProj: Linear;
  norm2: GroupNorm;
  conv2: Conv2d;
  convShortcut: Conv2d | undefined;

  constructor(
    prefix: string,
    readonly o: ResnetOptions,
  ) {
    super(prefix);
    const { inChannels: ci, outChannels: co } = o;
    this.norm1 = this.child(new GroupNorm(`${prefix}.norm1`, o.groups, ci, o.eps));
    this.conv1 = this.child(new Conv2d(`${prefix}.conv1`, ci, co, 3, { padding: 1 }));
    this.timeEmbProj = this.child(
      new Linear(`${prefix}.time_emb_proj`, o.tembChannels, o.scaleShift ? 2 * co : co),
    );
    this.norm2 = this.child(new GroupNorm(`${prefix}.norm2`, o.groups, co, o.eps));
    this.conv2 = this.child(new Conv2d(`${prefix}.conv2`, co, co, 3, { padding: 1 }));
    this.convShortcut = ci !== co ? this.child(new Conv2d(`${prefix}.conv_shortcut`, ci, co, 1)) : undefined;
  }

  forward(x: Tensor, temb: Tensor): Tensor {
    return this.scoped(x, () => {
      const o = this.o;
      let h = activation(o.act, this.norm1.forward(x));
      let skip = x;
      if (o.down) {
        h = F.avgPool2d(h, 2);
        skip = F.avgPool2d(skip, 2);
      } else if (o.up) {
        h = F.upsampleNearest2x(h);
        skip = F.upsampleNearest2x(skip);
      }
      h = this.conv1.forward(h);
      const e = this.timeEmbProj.forward(o.skipTimeAct ? temb : activation(o.act, temb));
      const [b, c] = [e.shape[0]!, o.outChannels];
      if (o.scaleShift) {
        // First half scales, second half shifts the normalised features (FiLM).
        const [scale, shift] = F.chunk(F.reshape(e, [b, 2 * c, 1, 1]), 2, 1) as [Tensor, Tensor];
        h = F.add(F.mul(this.norm2.forward(h), F.add(scale, 1)), shift);
      } else {
        h = this.norm2.forward(F.add(h, F.reshape(e, [b, c, 1, 1])));
      }
      h = this.conv2.forward(activation(o.act, h));
      if (this.convShortcut) skip = this.convShortcut.forward(skip);
      const out = F.add(skip, h);
      return o.outputScaleFactor === 1 ? out : F.div(out, o.outputScaleFactor);
    });
  }
}
