/**
 * What IF's blocks (`blocks.ts`) and the SD blocks (`sd_blocks.ts`) have in common: a down or up
 * block is `layers` resnets, each followed by an attention when the block has one, plus a
 * resampler. The families differ only in the attention module and the resampler, so the
 * state-dict names (`resnets.j`, `attentions.j`), the channel arithmetic and the order of the
 * layers live here once.
 */
import type { Tensor } from '../../engine/graph.js';
import * as F from '../../engine/ops/index.js';
import { Module } from '../../nn/index.js';
import { ResnetBlock2D, type ResnetOptions } from './resnet.js';

export type ResnetShared = Omit<ResnetOptions, 'inChannels' | 'outChannels' | 'down' | 'up'>;

export interface BlockContext {
  temb: Tensor;
  ctx: Tensor;
  textBias?: Tensor;
}

/** The attention after a resnet: IF's `AddedKVAttention` or SD's `Transformer2DModel`. */
export interface BlockAttention extends Module {
  forward(x: Tensor, ctx: Tensor, textBias?: Tensor): Tensor;
}

/** Builds the attention at `prefix` for `channels`. */
export type AttentionFactory<A> = (prefix: string, channels: number) => A;

export abstract class ResnetAttentionLayers<A extends BlockAttention> extends Module {
  resnets: ResnetBlock2D[] = [];
  attentions: A[] = [];

  /** Resnet j gets `inChannels(j)` channels; parameters register resnet, attention, resnet, … as diffusers lists them. */
  protected addLayers(
    layers: number,
    inChannels: (j: number) => number,
    outCh: number,
    res: ResnetShared,
    attention: AttentionFactory<A> | undefined,
  ): void {
    for (let j = 0; j < layers; j++) {
      this.resnets.push(
        this.child(
          new ResnetBlock2D(`${this.prefix}.resnets.${j}`, {
            ...res,
            inChannels: inChannels(j),
            outChannels: outCh,
          }),
        ),
      );
      if (attention) this.attentions.push(this.child(attention(`${this.prefix}.attentions.${j}`, outCh)));
    }
  }

  protected layer(j: number, x: Tensor, c: BlockContext): Tensor {
    x = this.resnets[j]!.forward(x, c.temb);
    const a = this.attentions[j];
    return a ? a.forward(x, c.ctx, c.textBias) : x;
  }
}

/** A down block: every layer's output is a skip, and so is the downsampled one. */
export abstract class DownLayers<A extends BlockAttention> extends ResnetAttentionLayers<A> {
  constructor(
    prefix: string,
    inCh: number,
    outCh: number,
    layers: number,
    res: ResnetShared,
    attention: AttentionFactory<A> | undefined,
  ) {
    super(prefix);
    this.addLayers(layers, (j) => (j === 0 ? inCh : outCh), outCh, res, attention);
  }

  /** The resampled x, or undefined for a block without a downsampler. */
  protected abstract downsample(x: Tensor, c: BlockContext): Tensor | undefined;

  forward(x: Tensor, c: BlockContext): { x: Tensor; skips: Tensor[] } {
    const skips: Tensor[] = [];
    for (let j = 0; j < this.resnets.length; j++) {
      x = this.layer(j, x, c);
      skips.push(x);
    }
    const down = this.downsample(x, c);
    if (down) {
      x = down;
      skips.push(x);
    }
    return { x, skips };
  }
}

/** An up block: each layer takes [hidden, skip] concatenated; the last layer's skip comes from `skipInCh`. */
export abstract class UpLayers<A extends BlockAttention> extends ResnetAttentionLayers<A> {
  constructor(
    prefix: string,
    prevCh: number,
    outCh: number,
    skipInCh: number,
    layers: number,
    res: ResnetShared,
    attention: AttentionFactory<A> | undefined,
  ) {
    super(prefix);
    this.addLayers(
      layers,
      (j) => (j === 0 ? prevCh : outCh) + (j === layers - 1 ? skipInCh : outCh),
      outCh,
      res,
      attention,
    );
  }

  /** `skips`: those left for the blocks after this one. */
  protected abstract upsample(x: Tensor, skips: readonly Tensor[], c: BlockContext): Tensor;

  /** Pops one skip per resnet. */
  forward(x: Tensor, skips: Tensor[], c: BlockContext): Tensor {
    for (let j = 0; j < this.resnets.length; j++) {
      const skip = skips.pop()!;
      x = this.layer(j, F.concat([x, skip], 1), c);
    }
    return this.upsample(x, skips, c);
  }
}
