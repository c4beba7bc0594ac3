import type { Tensor } from '../engine/graph.js';
import * as F from '../engine/ops/index.js';
import { fanInUniform } from './init.js';
import { Module } from './module.js';

/** torch.nn.Linear: weight [out, in], bias [out]. */
export class Linear extends Module {
  readonly weight;
  readonly bias;
  constructor(
    prefix: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean } = {},
  ) {
    super(prefix);
    this.weight = this.param('weight', [outFeatures, inFeatures], fanInUniform(inFeatures));
    this.bias =
      options.bias === false ? undefined : this.param('bias', [outFeatures], fanInUniform(inFeatures));
  }
  forward(x: Tensor): Tensor {
    return this.scoped(x, () =>
      F.linear(x, x.trace.param(this.weight), this.bias && x.trace.param(this.bias)),
    );
  }
}

/** torch.nn.Conv2d (groups 1): weight [out, in, k, k]. */
export class Conv2d extends Module {
  readonly weight;
  readonly bias;
  constructor(
    prefix: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly options: { stride?: number; padding?: number; bias?: boolean } = {},
  ) {
    super(prefix);
    const fanIn = inChannels * kernelSize * kernelSize;
    this.weight = this.param(
      'weight',
      [outChannels, inChannels, kernelSize, kernelSize],
      fanInUniform(fanIn),
    );
    this.bias = options.bias === false ? undefined : this.param('bias', [outChannels], fanInUniform(fanIn));
  }
  forward(x: Tensor): Tensor {
    return this.scoped(x, () =>
      F.conv2d(x, x.trace.param(this.weight), this.bias && x.trace.param(this.bias), {
        stride: this.options.stride ?? 1,
        padding: this.options.padding ?? 0,
      }),
    );
  }
}

export class GroupNorm extends Module {
  readonly weight;
  readonly bias;
  constructor(
    prefix: string,
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
    affine = true,
  ) {
    super(prefix);
    this.weight = affine ? this.param('weight', [numChannels], { kind: 'constant', value: 1 }) : undefined;
    this.bias = affine ? this.param('bias', [numChannels], { kind: 'constant', value: 0 }) : undefined;
  }
  forward(x: Tensor): Tensor {
    return this.scoped(x, () =>
      F.groupNorm(
        x,
        this.numGroups,
        this.weight && x.trace.param(this.weight),
        this.bias && x.trace.param(this.bias),
        this.eps,
      ),
    );
  }
}

export class LayerNorm extends Module {
  readonly weight;
  readonly bias;
  constructor(
    prefix: string,
    readonly dim: number,
    readonly eps = 1e-5,
    affine = true,
  ) {
    super(prefix);
    this.weight = affine ? this.param('weight', [dim], { kind: 'constant', value: 1 }) : undefined;
    this.bias = affine ? this.param('bias', [dim], { kind: 'constant', value: 0 }) : undefined;
  }
  forward(x: Tensor): Tensor {
    return this.scoped(x, () =>
      F.layerNorm(
        x,
        this.weight && x.trace.param(this.weight),
        this.bias && x.trace.param(this.bias),
        this.eps,
      ),
    );
  }
}

/** T5LayerNorm: RMS norm with a weight and no bias. */
export class RMSNorm extends Module {
  readonly weight;
  constructor(
    prefix: string,
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super(prefix);
    this.weight = this.param('weight', [dim], { kind: 'constant', value: 1 });
  }
  forward(x: Tensor): Tensor {
    return this.scoped(x, () => F.rmsNorm(x, x.trace.param(this.weight), this.eps));
  }
}

export class Embedding extends Module {
  readonly weight;
  constructor(
    prefix: string,
    readonly numEmbeddings: number,
    readonly dim: number,
  ) {
    super(prefix);
    this.weight = this.param('weight', [numEmbeddings, dim], { kind: 'normal', std: 1 });
  }
  forward(ids: Tensor): Tensor {
    return this.scoped(ids, () => F.gather(ids.trace.param(this.weight), ids));
  }
}
