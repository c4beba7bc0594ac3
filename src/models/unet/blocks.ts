import type { Tensor } from '../../engine/graph.js';
import * as F from '../../engine/ops/index.js';
import { Module } from '../../nn/index.js';
import { AddedKVAttention } from './attention.js';
import { ResnetBlock2D, type ResnetOptions } from './resnet.js';

export type ResnetShared = Omit<ResnetOptions, 'inChannels' | 'outChannels' | 'down' | 'up'>;

export interface AttnShared {
  headDim: number;
  crossDim: number;
  groups: number;
  onlyCross: boolean;
}

export interface BlockContext {
  temb: Tensor;
  ctx: Tensor;
  textBias?: Tensor;
}

/** ResnetDownsampleBlock2D / SimpleCrossAttnDownBlock2D: resnets (+ attentions), then a resnet ↓. */
export class DownBlock extends Module {
  resnets: ResnetBlock2D[] = [];
  attentions: AddedKVAttention[] = [];
  downsampler: ResnetBlock2D | undefined;

  constructor(
    prefix: string,
    inCh: number,
    outCh: number,
    layers: number,
    res: ResnetShared,
    attn: AttnShared | undefined,
    addDownsample: boolean,
  ) {
    super(prefix);
    for (let j = 0; j < layers; j++) {
      this.resnets.push(
        this.child(
          new ResnetBlock2D(`${prefix}.resnets.${j}`, {
            ...res,
            inChannels: j === 0 ? inCh : outCh,
            outChannels: outCh,
          }),
        ),
      );
      if (attn) {
        this.attentions.push(
          this.child(new AddedKVAttention(`${prefix}.attentions.${j}`, { ...attn, channels: outCh })),
        );
      }
    }
    if (addDownsample) {
      this.downsampler = this.child(
        new ResnetBlock2D(`${prefix}.downsamplers.0`, {
          ...res,
          inChannels: outCh,
          outChannels: outCh,
          down: true,
        }),
      );
    }
  }

  forward(x: Tensor, c: BlockContext): { x: Tensor; skips: Tensor[] } {
    const skips: Tensor[] = [];
    this.resnets.forEach((r, j) => {
      x = r.forward(x, c.temb);
      const a = this.attentions[j];
      if (a) x = a.forward(x, c.ctx, c.textBias);
      skips.push(x);
    });
    if (this.downsampler) {
      x = this.downsampler.forward(x, c.temb);
      skips.push(x);
    }
    return { x, skips };
  }
}

/** UNetMidBlock2DSimpleCrossAttn: resnet, attention, resnet. */
export class MidBlock extends Module {
  resnets: ResnetBlock2D[];
  attention: AddedKVAttention;
  constructor(prefix: string, ch: number, res: ResnetShared, attn: AttnShared) {
    super(prefix);
    this.resnets = [0, 1].map((j) =>
      this.child(new ResnetBlock2D(`${prefix}.resnets.${j}`, { ...res, inChannels: ch, outChannels: ch })),
    );
    this.attention = this.child(new AddedKVAttention(`${prefix}.attentions.0`, { ...attn, channels: ch }));
  }
  forward(x: Tensor, c: BlockContext): Tensor {
    x = this.resnets[0]!.forward(x, c.temb);
    x = this.attention.forward(x, c.ctx, c.textBias);
    return this.resnets[1]!.forward(x, c.temb);
  }
}

/** ResnetUpsampleBlock2D / SimpleCrossAttnUpBlock2D: [hidden, skip] concat → resnet (+ attention), then resnet ↑. */
export class UpBlock extends Module {
  resnets: ResnetBlock2D[] = [];
  attentions: AddedKVAttention[] = [];
  upsampler: ResnetBlock2D | undefined;

  constructor(
    prefix: string,
    prevCh: number,
    outCh: number,
    skipInCh: number,
    layers: number,
    res: ResnetShared,
    attn: AttnShared | undefined,
    addUpsample: boolean,
  ) {
    super(prefix);
    for (let j = 0; j < layers; j++) {
      const inCh = (j === 0 ? prevCh : outCh) + (j === layers - 1 ? skipInCh : outCh);
      this.resnets.push(
        this.child(
          new ResnetBlock2D(`${prefix}.resnets.${j}`, { ...res, inChannels: inCh, outChannels: outCh }),
        ),
      );
      if (attn) {
        this.attentions.push(
          this.child(new AddedKVAttention(`${prefix}.attentions.${j}`, { ...attn, channels: outCh })),
        );
      }
    }
    if (addUpsample) {
      this.upsampler = this.child(
        new ResnetBlock2D(`${prefix}.upsamplers.0`, {
          ...res,
          inChannels: outCh,
          outChannels: outCh,
          up: true,
        }),
      );
    }
  }

  forward(x: Tensor, skips: Tensor[], c: BlockContext): Tensor {
    this.resnets.forEach((r, j) => {
      const skip = skips.pop()!;
      x = r.forward(F.concat([x, skip], 1), c.temb);
      const a = this.attentions[j];
      if (a) x = a.forward(x, c.ctx, c.textBias);
    });
    if (this.upsampler) x = this.upsampler.forward(x, c.temb);
    return x;
  }
}
