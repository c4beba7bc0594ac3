import type { Tensor } from '../graph.js';
import { defineOp } from '../op.js';
import { matmul } from './linalg.js';
import { concat, flip, pad, permute, reduceSum, reshape, slice, unsqueeze } from './reduce_shape.js';
import { sameDtype } from './util.js';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

interface ConvAttrs {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] =>
  v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v;

function convOut(size: number, k: number, s: number, p: number, d: number): number {
  return Math.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1;
}

export const conv2dOp = defineOp<ConvAttrs>({
  name: 'conv2d',
  infer: (ins, a) => {
    const [x, w, b] = ins;
    if (x!.rank !== 4) throw new Error(`input must be [N, C, H, W], got rank ${x!.rank}`);
    if (w!.rank !== 4) throw new Error(`weight must be [Cout, Cin/groups, kH, kW], got rank ${w!.rank}`);
    const [n, ci, h, wd] = x!.shape as [number, number, number, number];
    const [co, cig, kh, kw] = w!.shape as [number, number, number, number];
    if (ci !== cig * a.groups) {
      throw new Error(`input has ${ci} channels but weight expects ${cig * a.groups} (groups ${a.groups})`);
    }
    if (co % a.groups !== 0) throw new Error(`out channels ${co} not divisible by groups ${a.groups}`);
    if (b && (b.rank !== 1 || b.shape[0] !== co)) throw new Error(`bias must be [${co}]`);
    const ho = convOut(h, kh, a.stride[0], a.padding[0], a.dilation[0]);
    const wo = convOut(wd, kw, a.stride[1], a.padding[1], a.dilation[1]);
    if (ho <= 0 || wo <= 0) throw new Error(`input ${h}×${wd} too small for a ${kh}×${kw} kernel`);
    return { shape: [n, co, ho, wo], dtype: sameDtype('conv2d', ins) };
  },
  emit: (e, ins, a) =>
    e.node('Conv', [...ins], {
      strides: e.ints(a.stride),
      pads: e.ints([a.padding[0], a.padding[1], a.padding[0], a.padding[1]]),
      dilations: e.ints(a.dilation),
      group: e.int(a.groups),
    }),
  vjp: (dy, _y, [x, w, b], a) => {
    if (a.groups !== 1 || a.dilation[0] !== 1 || a.dilation[1] !== 1) {
      throw new Error('conv2d gradient supports groups=1, dilation=1');
    }
    return [convInputGrad(dy, x!, w!, a), convWeightGrad(dy, x!, w!, a), b ? reduceSum(dy, [0, 2, 3]) : null];
  },
});

export const convTransposeOp = defineOp<ConvAttrs & { outputPadding: [number, number] }>({
  name: 'convTranspose2d',
  infer: ([dy, w], a) => {
    const [n, , ho, wo] = dy!.shape as [number, number, number, number];
    const [, ci, kh, kw] = w!.shape as [number, number, number, number];
    const h = (ho - 1) * a.stride[0] - 2 * a.padding[0] + kh + a.outputPadding[0];
    const wd = (wo - 1) * a.stride[1] - 2 * a.padding[1] + kw + a.outputPadding[1];
    return { shape: [n, ci, h, wd], dtype: dy!.dtype };
  },
  emit: (e, [dy, w], a) =>
    e.node('ConvTranspose', [dy!, w!], {
      strides: e.ints(a.stride),
      pads: e.ints([a.padding[0], a.padding[1], a.padding[0], a.padding[1]]),
      output_padding: e.ints(a.outputPadding),
    }),
});

/**
 * dL/dx. Stride 1: a convolution of dY with the flipped, in/out-swapped kernel (measured
 * faster on ORT's CPU than ConvTranspose, shared/notes/onnxruntime-cpu.md §5). Strided
 * convs fall back to ConvTranspose.
 */
function convInputGrad(dy: Tensor, x: Tensor, w: Tensor, a: ConvAttrs): Tensor {
  const [kh, kw] = [w.shape[2]!, w.shape[3]!];
  if (a.stride[0] === 1 && a.stride[1] === 1 && a.padding[0] <= kh - 1 && a.padding[1] <= kw - 1) {
    const wf = permute(flip(flip(w, 2), 3), [1, 0, 2, 3]);
    return conv2d(dy, wf, undefined, { padding: [kh - 1 - a.padding[0], kw - 1 - a.padding[1]] });
  }
  const outputPadding: [number, number] = [
    x.shape[2]! - ((dy.shape[2]! - 1) * a.stride[0] - 2 * a.padding[0] + kh),
    x.shape[3]! - ((dy.shape[3]! - 1) * a.stride[1] - 2 * a.padding[1] + kw),
  ];
  return dy.trace.apply(convTransposeOp, [dy, w], { ...a, outputPadding });
}

/**
 * dL/dW as one GEMM per kernel tap: dW[:, :, i, j] = dY·X_shifted(i, j) over N·H·W.
 * On ORT's CPU this beat Transpose+Conv and a single im2col GEMM (notes §5).
 */
function convWeightGrad(dy: Tensor, x: Tensor, w: Tensor, a: ConvAttrs): Tensor {
  const [co, ci, kh, kw] = w.shape as [number, number, number, number];
  const [n, , ho, wo] = dy.shape as [number, number, number, number];
  const dy2 = reshape(permute(dy, [1, 0, 2, 3]), [co, n * ho * wo]);
  const xh = permute(x, [0, 2, 3, 1]); // NHWC: each tap is a contiguous [NHW, Ci] matrix
  if (kh === 1 && kw === 1 && a.padding[0] === 0 && a.padding[1] === 0) {
    const xs =
      a.stride[0] === 1 && a.stride[1] === 1
        ? xh
        : slice(xh, [0, 0], [ho * a.stride[0], wo * a.stride[1]], [1, 2], a.stride);
    return reshape(matmul(dy2, reshape(xs, [n * ho * wo, ci])), [co, ci, 1, 1]);
  }
  const xp = pad(xh, [
    [0, 0],
    [a.padding[0], a.padding[0]],
    [a.padding[1], a.padding[1]],
    [0, 0],
  ]);
  const taps: Tensor[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const xs = slice(
        xp,
        [i, j],
        [i + (ho - 1) * a.stride[0] + 1, j + (wo - 1) * a.stride[1] + 1],
        [1, 2],
        a.stride,
      );
      taps.push(unsqueeze(matmul(dy2, reshape(xs, [n * ho * wo, ci])), -1));
    }
  }
  return reshape(concat(taps, 2), [co, ci, kh, kw]);
}

/** 2-D cross-correlation, NCHW, weight [Cout, Cin/groups, kH, kW] (torch.nn.functional.conv2d). */
export function conv2d(x: Tensor, w: Tensor, b?: Tensor, options: Conv2dOptions = {}): Tensor {
  const attrs: ConvAttrs = {
    stride: pair(options.stride, 1),
    padding: pair(options.padding, 0),
    dilation: pair(options.dilation, 1),
    groups: options.groups ?? 1,
  };
  return x.trace.apply(conv2dOp, b ? [x, w, b] : [x, w], attrs);
}
