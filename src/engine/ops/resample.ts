import type { Tensor } from '../graph.js';
import { NDArray } from '../ndarray.js';
import { defineOp } from '../op.js';
import { matmul } from './linalg.js';
import { expand, reduceMean, reduceSum, reshape, transpose } from './reduce_shape.js';

/**
 * Lowered to Resize (nearest, asymmetric, floor: torch's exact index rule), which ORT runs far
 * faster than the Expand of the primitive form (0.2 vs 3.7 ms on [4,128,32,32]); the primitive
 * form is the reference the kernel and the VJP are tested against.
 */
export const upsampleNearest2xOp = defineOp({
  name: 'upsampleNearest2x',
  infer: ([x]) => {
    if (x!.rank !== 4) throw new Error('input must be [N, C, H, W]');
    const [n, c, h, w] = x!.shape as [number, number, number, number];
    return { shape: [n, c, 2 * h, 2 * w], dtype: x!.dtype };
  },
  emit: (e, [x]) =>
    e.node('Resize', [x!, '', e.constTensor(NDArray.f32([4], [1, 1, 2, 2]))], {
      mode: e.str('nearest'),
      coordinate_transformation_mode: e.str('asymmetric'),
      nearest_mode: e.str('floor'),
    }),
  // Each input pixel fed a 2×2 block: its gradient is the block's sum.
  vjp: (dy, _y, [x]) => {
    const [n, c, h, w] = x!.shape as [number, number, number, number];
    return [reduceSum(reshape(dy, [n, c, h, 2, w, 2]), [3, 5])];
  },
  decompose: ([x]) => {
    const [n, c, h, w] = x!.shape as [number, number, number, number];
    const r = expand(reshape(x!, [n, c, h, 1, w, 1]), [n, c, h, 2, w, 2]);
    return reshape(r, [n, c, 2 * h, 2 * w]);
  },
});

/** Nearest-neighbour ×2 upsampling of [N, C, H, W] (F.interpolate(scale_factor=2, mode="nearest")). */
export function upsampleNearest2x(x: Tensor): Tensor {
  return x.trace.apply(upsampleNearest2xOp, [x], {});
}

/**
 * The [out, in] matrix of 1-D linear interpolation with torch's F.interpolate index rules,
 * so that resizing is two matmuls: exact (each row has at most two non-zero weights, summed
 * in torch's order) and differentiable with no extra gradient rule.
 */
export function linearInterpolationMatrix(inSize: number, outSize: number, alignCorners: boolean): NDArray {
  const m = new Float32Array(outSize * inSize);
  // torch computes source coordinates and lambdas in float32 (scalar_t) on CPU.
  const f = Math.fround;
  const scale = alignCorners ? (outSize > 1 ? f((inSize - 1) / (outSize - 1)) : 0) : f(inSize / outSize);
  for (let o = 0; o < outSize; o++) {
    let src = alignCorners ? f(scale * o) : f(f(scale * f(o + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
    const l1 = f(src - i0);
    const l0 = f(1 - l1);
    m[o * inSize + i0] += l0;
    m[o * inSize + i1] += l1;
  }
  return NDArray.f32([outSize, inSize], m);
}

/** Bilinear resize of [N, C, H, W] to [N, C, outH, outW] (F.interpolate mode="bilinear", no antialias). */
export function resizeBilinear(x: Tensor, outH: number, outW: number, alignCorners: boolean): Tensor {
  const [, , h, w] = x.shape as [number, number, number, number];
  let y = x;
  if (w !== outW) {
    const aw = x.trace.constant(linearInterpolationMatrix(w, outW, alignCorners));
    y = matmul(y, transpose(aw));
  }
  if (h !== outH) {
    const ah = x.trace.constant(linearInterpolationMatrix(h, outH, alignCorners));
    y = matmul(ah, y);
  }
  return y;
}

/**
 * The [out, in] matrix of 1-D area resampling (F.interpolate mode="area" when `in` is a multiple
 * of `out`; any ratio otherwise): output cell o averages input span [o·in/out, (o+1)·in/out),
 * input pixels cut by a cell edge weighted by the part inside.
 */
export function areaMatrix(inSize: number, outSize: number): NDArray {
  const m = new Float32Array(outSize * inSize);
  const span = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const a = o * span;
    const b = (o + 1) * span;
    for (let i = Math.floor(a); i < Math.min(Math.ceil(b), inSize); i++)
      m[o * inSize + i] = (Math.min(b, i + 1) - Math.max(a, i)) / span;
  }
  return NDArray.f32([outSize, inSize], m);
}

/** Area (box-filter) downsampling of [N, C, H, W] to [N, C, outH, outW], any ratio. */
export function resizeArea(x: Tensor, outH: number, outW: number): Tensor {
  const [, , h, w] = x.shape as [number, number, number, number];
  let y = x;
  if (w !== outW) y = matmul(y, transpose(x.trace.constant(areaMatrix(w, outW))));
  if (h !== outH) y = matmul(x.trace.constant(areaMatrix(h, outH)), y);
  return y;
}

/** Average pooling with kernel = stride = k and no padding (F.avg_pool2d(x, k)). */
export function avgPool2d(x: Tensor, k = 2): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (h % k || w % k) throw new Error(`avgPool2d: ${h}×${w} is not divisible by ${k}`);
  return reduceMean(reshape(x, [n, c, h / k, k, w / k, k]), [3, 5]);
}
