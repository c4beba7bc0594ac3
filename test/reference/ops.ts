/**
 * Plain-JavaScript reference implementations of tensor ops, used to test the ONNX-backed engine.
 *
 * Everything here is deliberately naive: simple loops, float64 arithmetic throughout, PyTorch
 * semantics. Float inputs (any float dtype, and integer inputs where an op is numeric) are read as
 * float64 and results are float64 NDArrays. Comparisons return 'bool' (0/1 in a Uint8Array).
 * Movement ops (reshape, permute, slice, gather, ...) return float64 for float inputs and keep
 * the dtype of non-float inputs (int64 ids stay int64).
 */
import { allocate, isFloat } from '../../src/engine/dtype.js';
import { NDArray, sizeOf } from '../../src/engine/ndarray.js';

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function fail(msg: string): never {
  throw new Error(`reference: ${msg}`);
}

function shp(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** The values of any NDArray as float64 (int64 via Number(), 16-bit floats decoded). */
export function toF64(x: NDArray): Float64Array {
  switch (x.dtype) {
    case 'float64':
      return Float64Array.from(x.data as Float64Array);
    case 'float16':
    case 'bfloat16':
      return Float64Array.from(x.toFloat32().data as Float32Array);
    case 'int64':
      return Float64Array.from(x.data as BigInt64Array, (v) => Number(v));
    default:
      return Float64Array.from(x.data as ArrayLike<number>);
  }
}

/** A float64 NDArray from plain numbers. */
export function f64(shape: readonly number[], data: ArrayLike<number>): NDArray {
  return new NDArray('float64', [...shape], Float64Array.from(data));
}

/** `[0, 1, ..., n-1]` reshaped to `shape`, as float64. */
export function arange(shape: readonly number[]): NDArray {
  const n = sizeOf(shape);
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = i;
  return new NDArray('float64', [...shape], d);
}

/** Row-major strides (in elements). */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

/** Multi-index of flat index `i` in `shape`. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    idx[d] = i % n;
    i = Math.floor(i / n);
  }
  return idx;
}

function ravel(idx: readonly number[], strides: readonly number[]): number {
  let o = 0;
  for (let d = 0; d < idx.length; d++) o += idx[d]! * strides[d]!;
  return o;
}

export function normAxis(axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim) fail(`axis ${axis} out of range for rank ${ndim}`);
  return a;
}

/** NumPy broadcasting of two shapes (right-aligned; a dim of 1 stretches). Throws if incompatible. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = i - (n - a.length) >= 0 ? a[i - (n - a.length)]! : 1;
    const db = i - (n - b.length) >= 0 ? b[i - (n - b.length)]! : 1;
    if (da === db || db === 1) out[i] = da;
    else if (da === 1) out[i] = db;
    else fail(`cannot broadcast shapes ${shp(a)} and ${shp(b)}`);
  }
  return out;
}

/** Maps a flat index of `outShape` to the flat index of the (broadcast) input `inShape`. */
function broadcastIndexer(inShape: readonly number[], outShape: readonly number[]): (o: number) => number {
  const nd = outShape.length;
  const off = nd - inShape.length;
  if (off < 0) fail(`cannot broadcast ${shp(inShape)} to ${shp(outShape)}`);
  const inStr = stridesOf(inShape);
  for (let d = 0; d < inShape.length; d++) {
    if (inShape[d] !== 1 && inShape[d] !== outShape[d + off]) {
      fail(`cannot broadcast ${shp(inShape)} to ${shp(outShape)}`);
    }
  }
  return (o: number) => {
    let idx = 0;
    let rem = o;
    for (let d = nd - 1; d >= 0; d--) {
      const n = outShape[d]!;
      const c = rem % n;
      rem = Math.floor(rem / n);
      const id = d - off;
      if (id >= 0 && inShape[id] !== 1) idx += c * inStr[id]!;
    }
    return idx;
  };
}

type Indexable = { [i: number]: number | bigint };

/**
 * Builds an output of `outShape` whose element `o` is `x[src(o)]` (or `fill` when src returns -1).
 * Float inputs give float64; other dtypes are kept.
 */
function moveElements(
  x: NDArray,
  outShape: readonly number[],
  src: (o: number) => number,
  fill = 0,
): NDArray {
  const n = sizeOf(outShape);
  if (isFloat(x.dtype)) {
    const xs = toF64(x);
    const out = new Float64Array(n);
    for (let o = 0; o < n; o++) {
      const s = src(o);
      out[o] = s < 0 ? fill : xs[s]!;
    }
    return new NDArray('float64', [...outShape], out);
  }
  const out = allocate(x.dtype, n);
  const o8 = out as unknown as Indexable;
  const i8 = x.data as unknown as Indexable;
  const fillV: number | bigint = x.dtype === 'int64' ? BigInt(Math.trunc(fill)) : fill;
  for (let o = 0; o < n; o++) {
    const s = src(o);
    o8[o] = s < 0 ? fillV : i8[s]!;
  }
  return new NDArray(x.dtype, [...outShape], out);
}

function pair(v: number | readonly [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

// ---------------------------------------------------------------------------------------------
// Scalar math
// ---------------------------------------------------------------------------------------------

/**
 * erf(x) in float64 (max error ≈ 4e-16 absolute against libm on [−6.5, 6.5]).
 * |x| < 1: the all-positive-term series (no cancellation)
 *   erf(x) = 2/√π · exp(−x²) · Σ_{n≥0} 2ⁿ x^{2n+1} / (1·3·5···(2n+1)).
 * 1 ≤ |x| < 6: erf = 1 − erfc, with the Laplace continued fraction
 *   erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))),
 * evaluated bottom-up with a fixed 4000 levels (ample at x ≥ 1).
 * |x| ≥ 6: erf(x) = ±1 exactly in float64.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x === 0) return x; // keeps −0
  const ax = Math.abs(x);
  if (ax >= 6) return x > 0 ? 1 : -1;
  let r: number;
  if (ax < 1) {
    const x2 = ax * ax;
    let term = ax;
    let sum = ax;
    for (let n = 0; n < 1000; n++) {
      term *= (2 * x2) / (2 * n + 3);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
  } else {
    let f = ax;
    for (let k = 4000; k >= 1; k--) f = ax + k / 2 / f;
    r = 1 - Math.exp(-ax * ax) / (Math.sqrt(Math.PI) * f);
  }
  r = Math.min(r, 1);
  return x < 0 ? -r : r;
}

/** C/PyTorch pow (JS Math.pow differs for base 1 / −1 with NaN or infinite exponents). */
function cPow(a: number, b: number): number {
  if (a === 1) return 1;
  if (a === -1 && (b === Number.POSITIVE_INFINITY || b === Number.NEGATIVE_INFINITY)) return 1;
  return a ** b;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

function sigmoidScalar(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export type UnaryOp =
  | 'neg'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'reciprocal'
  | 'abs'
  | 'tanh'
  | 'erf'
  | 'sigmoid'
  | 'silu'
  | 'relu'
  | 'gelu'
  | 'gelu_tanh'
  | 'gelu_new'
  | 'sin'
  | 'cos'
  | 'square';

export function unaryScalar(op: UnaryOp, x: number): number {
  switch (op) {
    case 'neg':
      return -x;
    case 'exp':
      return Math.exp(x);
    case 'log':
      return Math.log(x);
    case 'sqrt':
      return Math.sqrt(x);
    case 'rsqrt':
      return 1 / Math.sqrt(x);
    case 'reciprocal':
      return 1 / x;
    case 'abs':
      return Math.abs(x);
    case 'tanh':
      return Math.tanh(x);
    case 'erf':
      return erf(x);
    case 'sigmoid':
      return sigmoidScalar(x);
    case 'silu':
      return x * sigmoidScalar(x);
    case 'relu':
      return Math.max(x, 0); // NaN propagates, as in torch
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_tanh':
    case 'gelu_new':
      return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case 'sin':
      return Math.sin(x);
    case 'cos':
      return Math.cos(x);
    case 'square':
      return x * x;
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------

export function unary(op: UnaryOp, x: NDArray): NDArray {
  const xs = toF64(x);
  const out = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = unaryScalar(op, xs[i]!);
  return new NDArray('float64', [...x.shape], out);
}

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum';

export function binaryScalar(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add':
      return a + b;
    case 'sub':
      return a - b;
    case 'mul':
      return a * b;
    case 'div':
      return a / b;
    case 'pow':
      return cPow(a, b);
    case 'maximum':
      return Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : Math.max(a, b);
    case 'minimum':
      return Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : Math.min(a, b);
  }
}

/** Broadcasting elementwise binary op (true division for 'div'). */
export function binary(op: BinaryOp, a: NDArray, b: NDArray): NDArray {
  const shape = broadcastShapes(a.shape, b.shape);
  const A = toF64(a);
  const B = toF64(b);
  const ia = broadcastIndexer(a.shape, shape);
  const ib = broadcastIndexer(b.shape, shape);
  const n = sizeOf(shape);
  const out = new Float64Array(n);
  for (let o = 0; o < n; o++) out[o] = binaryScalar(op, A[ia(o)]!, B[ib(o)]!);
  return new NDArray('float64', shape, out);
}

export type CompareOp = 'eq' | 'lt' | 'gt' | 'le' | 'ge';

/** Broadcasting comparison; returns a 'bool' NDArray of 0/1. */
export function compare(op: CompareOp, a: NDArray, b: NDArray): NDArray {
  const shape = broadcastShapes(a.shape, b.shape);
  const A = toF64(a);
  const B = toF64(b);
  const ia = broadcastIndexer(a.shape, shape);
  const ib = broadcastIndexer(b.shape, shape);
  const n = sizeOf(shape);
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o++) {
    const x = A[ia(o)]!;
    const y = B[ib(o)]!;
    let r: boolean;
    switch (op) {
      case 'eq':
        r = x === y;
        break;
      case 'lt':
        r = x < y;
        break;
      case 'gt':
        r = x > y;
        break;
      case 'le':
        r = x <= y;
        break;
      case 'ge':
        r = x >= y;
        break;
    }
    out[o] = r ? 1 : 0;
  }
  return new NDArray('bool', shape, out);
}

/** `cond ? a : b` elementwise, all three broadcast together (cond is truthy where non-zero). */
export function where(cond: NDArray, a: NDArray, b: NDArray): NDArray {
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape), b.shape);
  const C = toF64(cond);
  const A = toF64(a);
  const B = toF64(b);
  const ic = broadcastIndexer(cond.shape, shape);
  const ia = broadcastIndexer(a.shape, shape);
  const ib = broadcastIndexer(b.shape, shape);
  const n = sizeOf(shape);
  const out = new Float64Array(n);
  for (let o = 0; o < n; o++) out[o] = C[ic(o)]! !== 0 ? A[ia(o)]! : B[ib(o)]!;
  return new NDArray('float64', shape, out);
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

export type ReduceOp = 'sum' | 'mean' | 'max' | 'min';

/**
 * Reduce over `axes` (negative allowed). An empty `axes` list reduces over every dim (the
 * torch / ONNX default). max/min propagate NaN like torch.
 */
export function reduce(op: ReduceOp, x: NDArray, axes: readonly number[], keepdims: boolean): NDArray {
  const nd = x.shape.length;
  const red = new Set<number>(
    axes.length === 0 ? x.shape.map((_, i) => i) : axes.map((a) => normAxis(a, nd)),
  );
  const keptShape = x.shape.map((d, i) => (red.has(i) ? 1 : d));
  const outShape = keepdims ? keptShape : x.shape.filter((_, i) => !red.has(i));
  const keptStr = stridesOf(keptShape);
  const n = sizeOf(keptShape);
  let count = 1;
  for (const a of red) count *= x.shape[a]!;
  const acc = new Float64Array(n);
  const init = op === 'max' ? Number.NEGATIVE_INFINITY : op === 'min' ? Number.POSITIVE_INFINITY : 0;
  acc.fill(init);
  const xs = toF64(x);
  for (let i = 0; i < xs.length; i++) {
    const idx = unravel(i, x.shape);
    for (const a of red) idx[a] = 0;
    const o = ravel(idx, keptStr);
    const v = xs[i]!;
    const cur = acc[o]!;
    if (op === 'sum' || op === 'mean') acc[o] = cur + v;
    else if (Number.isNaN(cur) || Number.isNaN(v)) acc[o] = Number.NaN;
    else if (op === 'max') acc[o] = Math.max(v, cur);
    else acc[o] = Math.min(v, cur);
  }
  if (op === 'mean') for (let o = 0; o < n; o++) acc[o] = acc[o]! / count;
  return new NDArray('float64', outShape, acc);
}

// ---------------------------------------------------------------------------------------------
// Linear algebra
// ---------------------------------------------------------------------------------------------

/** torch.matmul: batch dims broadcast; a 1-D left operand gets a 1 prepended, a 1-D right one a 1 appended (then removed). */
export function matmul(a: NDArray, b: NDArray): NDArray {
  if (a.shape.length === 0 || b.shape.length === 0) fail('matmul: scalar operands are not allowed');
  const aVec = a.shape.length === 1;
  const bVec = b.shape.length === 1;
  const as = aVec ? [1, a.shape[0]!] : [...a.shape];
  const bs = bVec ? [b.shape[0]!, 1] : [...b.shape];
  const M = as[as.length - 2]!;
  const K = as[as.length - 1]!;
  const K2 = bs[bs.length - 2]!;
  const N = bs[bs.length - 1]!;
  if (K !== K2) fail(`matmul: inner dims differ: ${shp(a.shape)} x ${shp(b.shape)}`);
  const aBatch = as.slice(0, -2);
  const bBatch = bs.slice(0, -2);
  const batch = broadcastShapes(aBatch, bBatch);
  const ia = broadcastIndexer(aBatch, batch);
  const ib = broadcastIndexer(bBatch, batch);
  const A = toF64(a);
  const B = toF64(b);
  const nb = sizeOf(batch);
  const out = new Float64Array(nb * M * N);
  for (let bi = 0; bi < nb; bi++) {
    const ao = ia(bi) * M * K;
    const bo = ib(bi) * K * N;
    const oo = bi * M * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[ao + m * K + k]! * B[bo + k * N + n]!;
        out[oo + m * N + n] = s;
      }
    }
  }
  const shape = [...batch];
  if (!aVec) shape.push(M);
  if (!bVec) shape.push(N);
  return new NDArray('float64', shape, out);
}

/** torch.nn.functional.linear: x[..., in] · w[out, in]ᵀ + b[out]. */
export function linear(x: NDArray, w: NDArray, b?: NDArray | null): NDArray {
  if (w.shape.length !== 2) fail(`linear: weight must be 2-D, got ${shp(w.shape)}`);
  const y = matmul(x, permute(w, [1, 0]));
  return b ? binary('add', y, b) : y;
}

// ---------------------------------------------------------------------------------------------
// Convolution / normalization
// ---------------------------------------------------------------------------------------------

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
  dilation?: number | readonly [number, number];
  groups?: number;
}

/**
 * torch.nn.functional.conv2d: cross-correlation with zero padding.
 * x[N, Ci, H, W], w[Co, Ci/groups, kh, kw] → [N, Co, Ho, Wo], Ho = ⌊(H + 2p − d(kh−1) − 1)/s⌋ + 1.
 */
export function conv2d(x: NDArray, w: NDArray, b?: NDArray | null, opts: Conv2dOptions = {}): NDArray {
  if (x.shape.length !== 4 || w.shape.length !== 4) {
    fail(`conv2d: need 4-D x and w, got ${shp(x.shape)} and ${shp(w.shape)}`);
  }
  const [N, Ci, H, W] = x.shape as [number, number, number, number];
  const [Co, Cig, kh, kw] = w.shape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  const [sh, sw] = pair(opts.stride ?? 1);
  const [ph, pw] = pair(opts.padding ?? 0);
  const [dh, dw] = pair(opts.dilation ?? 1);
  if (Ci % groups !== 0 || Co % groups !== 0 || Cig !== Ci / groups) {
    fail(`conv2d: channels x ${shp(x.shape)} w ${shp(w.shape)} groups ${groups} are inconsistent`);
  }
  if (b && (b.shape.length !== 1 || b.shape[0] !== Co)) fail(`conv2d: bias ${shp(b.shape)} must be [${Co}]`);
  const Ho = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  if (Ho <= 0 || Wo <= 0) fail(`conv2d: empty output for ${shp(x.shape)} with kernel ${kh}x${kw}`);
  const X = toF64(x);
  const Wt = toF64(w);
  const B = b ? toF64(b) : null;
  const out = new Float64Array(N * Co * Ho * Wo);
  const coPerG = Co / groups;
  for (let n = 0; n < N; n++) {
    for (let co = 0; co < Co; co++) {
      const g = Math.floor(co / coPerG);
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let s = B ? B[co]! : 0;
          for (let cig = 0; cig < Cig; cig++) {
            const ci = g * Cig + cig;
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - ph + ky * dh;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= W) continue;
                s += X[((n * Ci + ci) * H + iy) * W + ix]! * Wt[((co * Cig + cig) * kh + ky) * kw + kx]!;
              }
            }
          }
          out[((n * Co + co) * Ho + oy) * Wo + ox] = s;
        }
      }
    }
  }
  return new NDArray('float64', [N, Co, Ho, Wo], out);
}

/**
 * torch.nn.functional.group_norm: x[N, C, ...spatial]; per sample and group, mean and biased
 * variance over (channels in group × spatial); then per-channel affine.
 */
export function groupNorm(
  x: NDArray,
  G: number,
  weight?: NDArray | null,
  bias?: NDArray | null,
  eps = 1e-5,
): NDArray {
  if (x.shape.length < 2) fail(`groupNorm: need [N, C, ...], got ${shp(x.shape)}`);
  const N = x.shape[0]!;
  const C = x.shape[1]!;
  if (C % G !== 0) fail(`groupNorm: ${C} channels not divisible by ${G} groups`);
  const S = sizeOf(x.shape.slice(2));
  const cg = C / G;
  const X = toF64(x);
  const Wt = weight ? toF64(weight) : null;
  const Bs = bias ? toF64(bias) : null;
  if (Wt && Wt.length !== C) fail(`groupNorm: weight has ${Wt.length} elements, need ${C}`);
  if (Bs && Bs.length !== C) fail(`groupNorm: bias has ${Bs.length} elements, need ${C}`);
  const out = new Float64Array(X.length);
  const cnt = cg * S;
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < G; g++) {
      const base = (n * C + g * cg) * S;
      let mean = 0;
      for (let i = 0; i < cnt; i++) mean += X[base + i]!;
      mean /= cnt;
      let v = 0;
      for (let i = 0; i < cnt; i++) v += (X[base + i]! - mean) ** 2;
      v /= cnt;
      const inv = 1 / Math.sqrt(v + eps);
      for (let i = 0; i < cnt; i++) {
        const c = g * cg + Math.floor(i / S);
        let y = (X[base + i]! - mean) * inv;
        if (Wt) y *= Wt[c]!;
        if (Bs) y += Bs[c]!;
        out[base + i] = y;
      }
    }
  }
  return new NDArray('float64', [...x.shape], out);
}

function lastDimRows(x: NDArray): [rows: number, D: number] {
  if (x.shape.length === 0) fail('normalization over the last dim needs rank >= 1');
  const D = x.shape[x.shape.length - 1]!;
  return [D === 0 ? 0 : x.size / D, D];
}

/** torch layer_norm over the last dim (biased variance). */
export function layerNorm(x: NDArray, weight?: NDArray | null, bias?: NDArray | null, eps = 1e-5): NDArray {
  const [rows, D] = lastDimRows(x);
  const X = toF64(x);
  const Wt = weight ? toF64(weight) : null;
  const Bs = bias ? toF64(bias) : null;
  if (Wt && Wt.length !== D) fail(`layerNorm: weight has ${Wt.length} elements, need ${D}`);
  if (Bs && Bs.length !== D) fail(`layerNorm: bias has ${Bs.length} elements, need ${D}`);
  const out = new Float64Array(X.length);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mean = 0;
    for (let i = 0; i < D; i++) mean += X[o + i]!;
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (X[o + i]! - mean) ** 2;
    v /= D;
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < D; i++) {
      let y = (X[o + i]! - mean) * inv;
      if (Wt) y *= Wt[i]!;
      if (Bs) y += Bs[i]!;
      out[o + i] = y;
    }
  }
  return new NDArray('float64', [...x.shape], out);
}

/** T5-style RMSNorm over the last dim: x / sqrt(mean(x²) + eps) · weight (no mean subtraction, no bias). */
export function rmsNorm(x: NDArray, weight?: NDArray | null, eps = 1e-6): NDArray {
  const [rows, D] = lastDimRows(x);
  const X = toF64(x);
  const Wt = weight ? toF64(weight) : null;
  if (Wt && Wt.length !== D) fail(`rmsNorm: weight has ${Wt.length} elements, need ${D}`);
  const out = new Float64Array(X.length);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let ms = 0;
    for (let i = 0; i < D; i++) ms += X[o + i]! * X[o + i]!;
    ms /= D;
    const inv = 1 / Math.sqrt(ms + eps);
    for (let i = 0; i < D; i++) out[o + i] = X[o + i]! * inv * (Wt ? Wt[i]! : 1);
  }
  return new NDArray('float64', [...x.shape], out);
}

/**
 * Softmax along `axis` of (x + additiveMask), the mask broadcast against x (the result has the
 * broadcast shape). Max-subtracted. A slice that is entirely −∞ gives NaN, as in torch.
 */
export function softmax(x: NDArray, axis: number, additiveMask?: NDArray | null): NDArray {
  const z = additiveMask ? binary('add', x, additiveMask) : new NDArray('float64', [...x.shape], toF64(x));
  const shape = z.shape;
  const ax = normAxis(axis, shape.length);
  const outer = sizeOf(shape.slice(0, ax));
  const L = shape[ax]!;
  const inner = sizeOf(shape.slice(ax + 1));
  const Z = z.data as Float64Array;
  const out = new Float64Array(Z.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (l: number) => (o * L + l) * inner + i;
      let m = Number.NEGATIVE_INFINITY;
      for (let l = 0; l < L; l++) m = Math.max(m, Z[at(l)]!);
      let s = 0;
      for (let l = 0; l < L; l++) {
        const e = Math.exp(Z[at(l)]! - m);
        out[at(l)] = e;
        s += e;
      }
      for (let l = 0; l < L; l++) out[at(l)] = out[at(l)]! / s;
    }
  }
  return new NDArray('float64', [...shape], out);
}

// ---------------------------------------------------------------------------------------------
// Movement
// ---------------------------------------------------------------------------------------------

/** Reshape (one −1 dim is inferred). Copies. */
export function reshape(x: NDArray, shape: readonly number[]): NDArray {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    if (s.indexOf(-1, neg + 1) >= 0) fail(`reshape: more than one -1 in ${shp(shape)}`);
    const rest = sizeOf(s.filter((_, i) => i !== neg));
    if (rest === 0 || x.size % rest !== 0)
      fail(`reshape: cannot infer -1 in ${shp(shape)} for ${x.size} elements`);
    s[neg] = x.size / rest;
  }
  if (sizeOf(s) !== x.size) fail(`reshape: ${shp(x.shape)} (${x.size} elements) cannot become ${shp(shape)}`);
  return moveElements(x, s, (o) => o);
}

/** torch.permute / ONNX Transpose: out.shape[i] = x.shape[perm[i]]. */
export function permute(x: NDArray, perm: readonly number[]): NDArray {
  const nd = x.shape.length;
  if (perm.length !== nd) fail(`permute: perm ${shp(perm)} has wrong length for ${shp(x.shape)}`);
  const p = perm.map((a) => normAxis(a, nd));
  if (new Set(p).size !== nd) fail(`permute: ${shp(perm)} is not a permutation`);
  const outShape = p.map((a) => x.shape[a]!);
  const inStr = stridesOf(x.shape);
  return moveElements(x, outShape, (o) => {
    const idx = unravel(o, outShape);
    let s = 0;
    for (let d = 0; d < nd; d++) s += idx[d]! * inStr[p[d]!]!;
    return s;
  });
}

/** Like ONNX Transpose: without `perm`, reverses the dims. */
export function transpose(x: NDArray, perm?: readonly number[]): NDArray {
  return permute(x, perm ?? x.shape.map((_, i) => x.shape.length - 1 - i));
}

/** Concatenate along `axis`. Float inputs give float64; otherwise all inputs must share a dtype. */
export function concat(xs: readonly NDArray[], axis: number): NDArray {
  if (xs.length === 0) fail('concat: no inputs');
  const first = xs[0]!;
  const nd = first.shape.length;
  const ax = normAxis(axis, nd);
  for (const x of xs) {
    if (x.shape.length !== nd || x.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      fail(`concat: shapes ${xs.map((t) => shp(t.shape)).join(', ')} differ outside axis ${axis}`);
    }
  }
  const anyFloat = xs.some((x) => isFloat(x.dtype));
  if (!anyFloat && xs.some((x) => x.dtype !== first.dtype)) fail('concat: mixed non-float dtypes');
  const outShape = [...first.shape];
  outShape[ax] = xs.reduce((s, x) => s + x.shape[ax]!, 0);
  const n = sizeOf(outShape);
  const out = anyFloat ? new Float64Array(n) : allocate(first.dtype, n);
  const o8 = out as unknown as Indexable;
  const srcs = xs.map((x) => (anyFloat ? toF64(x) : x.data) as unknown as Indexable);
  for (let o = 0; o < n; o++) {
    const idx = unravel(o, outShape);
    let k = 0;
    let pos = idx[ax]!;
    while (pos >= xs[k]!.shape[ax]!) {
      pos -= xs[k]!.shape[ax]!;
      k++;
    }
    idx[ax] = pos;
    o8[o] = srcs[k]![ravel(idx, stridesOf(xs[k]!.shape))]!;
  }
  return new NDArray(anyFloat ? 'float64' : first.dtype, outShape, out);
}

/** torch.split with explicit sizes along `axis` (sizes must sum to the dim). */
export function split(x: NDArray, sizes: readonly number[], axis: number): NDArray[] {
  const ax = normAxis(axis, x.shape.length);
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== x.shape[ax])
    fail(`split: sizes ${shp(sizes)} do not sum to dim ${x.shape[ax]} of ${shp(x.shape)}`);
  const outs: NDArray[] = [];
  let start = 0;
  for (const s of sizes) {
    outs.push(slice(x, [start], [start + s], [ax]));
    start += s;
  }
  return outs;
}

/**
 * ONNX Slice: per listed axis, negative starts/ends count from the end; then for step > 0 start and
 * end clamp to [0, dim], for step < 0 start clamps to [0, dim−1] and end to [−1, dim−1].
 * Use ±Number.MAX_SAFE_INTEGER (or ±Infinity) for "to the end".
 */
export function slice(
  x: NDArray,
  starts: readonly number[],
  ends: readonly number[],
  axes?: readonly number[],
  steps?: readonly number[],
): NDArray {
  const nd = x.shape.length;
  const ax = axes ? axes.map((a) => normAxis(a, nd)) : starts.map((_, i) => i);
  if (starts.length !== ax.length || ends.length !== ax.length || (steps && steps.length !== ax.length)) {
    fail('slice: starts, ends, axes and steps must have the same length');
  }
  const begin = x.shape.map(() => 0);
  const step = x.shape.map(() => 1);
  const outShape = [...x.shape];
  for (let i = 0; i < ax.length; i++) {
    const a = ax[i]!;
    const dim = x.shape[a]!;
    const st = steps ? steps[i]! : 1;
    if (st === 0) fail('slice: step 0');
    let s = starts[i]!;
    let e = ends[i]!;
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (st > 0) {
      s = Math.min(Math.max(s, 0), dim);
      e = Math.min(Math.max(e, 0), dim);
      outShape[a] = Math.max(0, Math.ceil((e - s) / st));
    } else {
      s = Math.min(Math.max(s, 0), dim - 1);
      e = Math.min(Math.max(e, -1), dim - 1);
      outShape[a] = Math.max(0, Math.ceil((s - e) / -st));
    }
    begin[a] = s;
    step[a] = st;
  }
  const inStr = stridesOf(x.shape);
  return moveElements(x, outShape, (o) => {
    const idx = unravel(o, outShape);
    let si = 0;
    for (let d = 0; d < nd; d++) si += (begin[d]! + idx[d]! * step[d]!) * inStr[d]!;
    return si;
  });
}

/**
 * Gather along `axis` (embedding lookup for axis 0): out.shape = table.shape[:axis] + ids.shape +
 * table.shape[axis+1:]. Negative ids wrap; out-of-range ids throw.
 */
export function gather(table: NDArray, ids: NDArray, axis = 0): NDArray {
  const nd = table.shape.length;
  const ax = normAxis(axis, nd);
  const dim = table.shape[ax]!;
  const idv = toF64(ids).map((v) => {
    const w = v < 0 ? v + dim : v;
    if (!Number.isInteger(w) || w < 0 || w >= dim) fail(`gather: index ${v} out of range for dim ${dim}`);
    return w;
  });
  const before = table.shape.slice(0, ax);
  const after = table.shape.slice(ax + 1);
  const outShape = [...before, ...ids.shape, ...after];
  const nIds = sizeOf(ids.shape);
  const nAfter = sizeOf(after);
  return moveElements(table, outShape, (o) => {
    const a = o % nAfter;
    const rest = Math.floor(o / nAfter);
    const k = rest % nIds;
    const b = Math.floor(rest / nIds);
    return (b * dim + idv[k]!) * nAfter + a;
  });
}

/**
 * Broadcast x to `shape`. A −1 in `shape` keeps x's (right-aligned) dim, as torch.expand; otherwise
 * ONNX Expand's bidirectional broadcast is applied (the result may be larger than `shape`).
 */
export function expand(x: NDArray, shape: readonly number[]): NDArray {
  const off = shape.length - x.shape.length;
  const target = shape.map((d, i) => (d === -1 ? (i - off >= 0 ? x.shape[i - off]! : 1) : d));
  const outShape = broadcastShapes(x.shape, target);
  const ix = broadcastIndexer(x.shape, outShape);
  return moveElements(x, outShape, ix);
}

/**
 * Constant pad: `pads[d] = [before, after]` for every dim d (negative values crop).
 */
export function pad(x: NDArray, pads: readonly (readonly [number, number])[], value = 0): NDArray {
  const nd = x.shape.length;
  if (pads.length !== nd) fail(`pad: need ${nd} [before, after] pairs, got ${pads.length}`);
  const outShape = x.shape.map((d, i) => d + pads[i]![0] + pads[i]![1]);
  if (outShape.some((d) => d < 0)) fail(`pad: negative output shape ${shp(outShape)}`);
  const inStr = stridesOf(x.shape);
  return moveElements(
    x,
    outShape,
    (o) => {
      const idx = unravel(o, outShape);
      let si = 0;
      for (let d = 0; d < nd; d++) {
        const i = idx[d]! - pads[d]![0];
        if (i < 0 || i >= x.shape[d]!) return -1;
        si += i * inStr[d]!;
      }
      return si;
    },
    value,
  );
}

// ---------------------------------------------------------------------------------------------
// Resampling / pooling
// ---------------------------------------------------------------------------------------------

function spatial4(x: NDArray, op: string): [number, number, number, number] {
  if (x.shape.length !== 4) fail(`${op}: need [N, C, H, W], got ${shp(x.shape)}`);
  return x.shape as unknown as [number, number, number, number];
}

/**
 * F.interpolate(mode='nearest') to (outH, outW) with no scale_factor: src = min(⌊dst·in/out⌋, in−1).
 * (With scale_factor=s torch uses 1/s as the scale; for integer factors that is identical.)
 */
export function resizeNearest(x: NDArray, outH: number, outW: number): NDArray {
  const [N, C, H, W] = spatial4(x, 'resizeNearest');
  const sh = H / outH;
  const sw = W / outW;
  const X = toF64(x);
  const out = new Float64Array(N * C * outH * outW);
  for (let nc = 0; nc < N * C; nc++) {
    for (let y = 0; y < outH; y++) {
      const iy = Math.min(Math.floor(y * sh), H - 1);
      for (let xx = 0; xx < outW; xx++) {
        const ix = Math.min(Math.floor(xx * sw), W - 1);
        out[(nc * outH + y) * outW + xx] = X[(nc * H + iy) * W + ix]!;
      }
    }
  }
  return new NDArray('float64', [N, C, outH, outW], out);
}

/** F.interpolate(scale_factor=2, mode='nearest'): out[y, x] = in[⌊y/2⌋, ⌊x/2⌋]. */
export function upsampleNearest2x(x: NDArray): NDArray {
  const [, , H, W] = spatial4(x, 'upsampleNearest2x');
  return resizeNearest(x, 2 * H, 2 * W);
}

/** torch area_pixel_compute_source_index + the bilinear index/lambda computation, for one axis. */
function bilinearTaps(
  inSize: number,
  outSize: number,
  alignCorners: boolean,
): [number, number, number, number][] {
  const taps: [number, number, number, number][] = [];
  let scale: number;
  if (alignCorners) scale = outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  else scale = inSize / outSize;
  for (let d = 0; d < outSize; d++) {
    let src: number;
    if (alignCorners) src = scale * d;
    else {
      src = scale * (d + 0.5) - 0.5;
      if (src < 0) src = 0;
    }
    const i0 = Math.floor(src);
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
    const l1 = src - i0;
    taps.push([i0, i1, 1 - l1, l1]);
  }
  return taps;
}

/**
 * F.interpolate(size=(outH, outW), mode='bilinear', align_corners) on x[N, C, H, W], exact torch
 * semantics (scale = in/out as torch computes when only `size` is given).
 */
export function resizeBilinear(x: NDArray, outH: number, outW: number, alignCorners: boolean): NDArray {
  const [N, C, H, W] = spatial4(x, 'resizeBilinear');
  const ty = bilinearTaps(H, outH, alignCorners);
  const tx = bilinearTaps(W, outW, alignCorners);
  const X = toF64(x);
  const out = new Float64Array(N * C * outH * outW);
  for (let nc = 0; nc < N * C; nc++) {
    const at = (iy: number, ix: number) => X[(nc * H + iy) * W + ix]!;
    for (let y = 0; y < outH; y++) {
      const [y0, y1, wy0, wy1] = ty[y]!;
      for (let xx = 0; xx < outW; xx++) {
        const [x0, x1, wx0, wx1] = tx[xx]!;
        out[(nc * outH + y) * outW + xx] =
          wy0 * (wx0 * at(y0, x0) + wx1 * at(y0, x1)) + wy1 * (wx0 * at(y1, x0) + wx1 * at(y1, x1));
      }
    }
  }
  return new NDArray('float64', [N, C, outH, outW], out);
}

/** F.avg_pool2d without padding (floor mode); stride defaults to the kernel. */
export function avgPool2d(
  x: NDArray,
  kernel: number | readonly [number, number],
  stride?: number | readonly [number, number],
): NDArray {
  const [N, C, H, W] = spatial4(x, 'avgPool2d');
  const [kh, kw] = pair(kernel);
  const [sh, sw] = pair(stride ?? kernel);
  const Ho = Math.floor((H - kh) / sh) + 1;
  const Wo = Math.floor((W - kw) / sw) + 1;
  if (Ho <= 0 || Wo <= 0) fail(`avgPool2d: kernel ${kh}x${kw} larger than input ${shp(x.shape)}`);
  const X = toF64(x);
  const out = new Float64Array(N * C * Ho * Wo);
  for (let nc = 0; nc < N * C; nc++) {
    for (let oy = 0; oy < Ho; oy++) {
      for (let ox = 0; ox < Wo; ox++) {
        let s = 0;
        for (let ky = 0; ky < kh; ky++) {
          for (let kx = 0; kx < kw; kx++) s += X[(nc * H + oy * sh + ky) * W + ox * sw + kx]!;
        }
        out[(nc * Ho + oy) * Wo + ox] = s / (kh * kw);
      }
    }
  }
  return new NDArray('float64', [N, C, Ho, Wo], out);
}

// ---------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------

export interface AttentionOptions {
  /** Multiplies q·kᵀ; defaults to 1/√D. */
  scale?: number;
  /** Added to the scaled scores [B, H, S, T] (broadcast), e.g. 0 / −∞. */
  additiveMask?: NDArray | null;
}

/** softmax(q·kᵀ·scale + mask)·v with q[B,H,S,D], k[B,H,T,D], v[B,H,T,Dv] (any batch dims broadcast). */
export function attention(q: NDArray, k: NDArray, v: NDArray, opts: AttentionOptions = {}): NDArray {
  const D = q.shape[q.shape.length - 1]!;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const nk = k.shape.length;
  const perm = k.shape.map((_, i) => i);
  perm[nk - 1] = nk - 2;
  perm[nk - 2] = nk - 1;
  const scores = binary('mul', matmul(q, permute(k, perm)), f64([], [scale]));
  const p = softmax(scores, -1, opts.additiveMask ?? null);
  return matmul(p, v);
}
