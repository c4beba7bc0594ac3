import type { Tensor } from '../../engine/graph.js';
import { Module } from '../../nn/index.js';
import { AddedKVAttention, type AddedKVAttentionOptions } from './attention.js';
import {
  type AttentionFactory,
  type BlockContext,
  DownLayers,
  type ResnetShared,
  UpLayers,
} from './block_layers.js';
import { ResnetBlock2D } from './resnet.js';

export type { BlockContext, ResnetShared } from './block_layers.js';

/** What a block passes each of its attentions: all but the width, which is the block's. */
export type AttnShared = Omit<AddedKVAttentionOptions, 'channels'>;

function addedKV(attn: AttnShared | undefined): AttentionFactory<AddedKVAttention> | undefined {
  return attn && ((prefix, channels) => new AddedKVAttention(prefix, { ...attn, channels }));
}

/** ResnetDownsampleBlock2D / SimpleCrossAttnDownBlock2D: resnets (+ attentions), then a resnet ↓. */
export class DownBlock extends DownLayers<AddedKVAttention> {
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
    super(prefix, inCh, outCh, layers, res, addedKV(attn));
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

  protected downsample(x: Tensor, c: BlockContext): Tensor | undefined {
    return this.downsampler?.forward(x, c.temb);
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
export class UpBlock extends UpLayers<AddedKVAttention> {
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
    super(prefix, prevCh, outCh, skipInCh, layers, res, addedKV(attn));
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

  protected upsample(x: Tensor, _skips: readonly Tensor[], c: BlockContext): Tensor {
    return this.upsampler ? this.upsampler.forward(x, c.temb) : x;
  }
}
