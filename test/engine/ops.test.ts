/**
 * Every engine op: forward against an independent plain-JS reference, and reverse-mode
 * gradients (computed in the ONNX graph) against central finite differences of that
 * float64 reference. Composite ops are checked fused, decomposed, and differentiated both
 * ways (decomposed forward; fused forward with a locally decomposed backward).
 */
import { describe, expect, it } from 'vitest';
import * as E from '../../src/engine/index.js';
import { NDArray, Parameter, Runtime, type Tensor } from '../../src/engine/index.js';
import { NodeBackend } from '../../src/platform/node/ort.js';
import { randAwayFromZero, randDistinct, randF32, rng } from '../helpers/random.js';
import { finiteDifferenceGrad, relErr } from '../reference/fd.js';
import * as R from '../reference/ops.js';

const rt = new Runtime(new NodeBackend({ threads: 1 }));
const r = rng(1234);

interface Case {
  name: string;
  inputs: NDArray[];
  engine: (xs: Tensor[]) => Tensor;
  ref: (xs: NDArray[]) => NDArray;
  /** Inputs to differentiate (default: every float input); [] = forward only. */
  diff?: number[];
  tol?: number;
  gradTol?: number;
  composite?: boolean;
}

/** Reference for the attention cases on q [2, 3, 8], k [2, 5, 8], v [2, 5, 4] with 2 heads and a bias. */
function attentionRef([q, k, v, b]: NDArray[]): NDArray {
  const heads = (t: NDArray, d: number) => R.permute(R.reshape(t, [2, t.shape[1]!, 2, d]), [0, 2, 1, 3]);
  const o = R.attention(heads(q!, 4), heads(k!, 4), heads(v!, 2), { scale: 0.5, additiveMask: b! });
  return R.reshape(R.permute(o, [0, 2, 1, 3]), [2, 3, 4]);
}

const f = (shape: number[], lo = -1, hi = 1) => randF32(r, shape, lo, hi);
const pos = (shape: number[]) => randF32(r, shape, 0.5, 2);
const nz = (shape: number[]) => randAwayFromZero(r, shape);
const boolArr = (shape: number[]) =>
  new NDArray(
    'bool',
    shape,
    Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (r() < 0.5 ? 1 : 0)),
  );

const unaryCases: [string, (x: Tensor) => Tensor, R.UnaryOp, NDArray, boolean?][] = [
  ['neg', E.neg, 'neg', f([2, 3])],
  ['exp', E.exp, 'exp', f([2, 3])],
  ['log', E.log, 'log', pos([2, 3])],
  ['sqrt', E.sqrt, 'sqrt', pos([2, 3])],
  ['rsqrt', E.rsqrt, 'rsqrt', pos([2, 3])],
  ['reciprocal', E.reciprocal, 'reciprocal', pos([2, 3])],
  ['tanh', E.tanh, 'tanh', f([2, 3], -2, 2)],
  ['erf', E.erf, 'erf', f([2, 3], -2, 2)],
  ['sigmoid', E.sigmoid, 'sigmoid', f([2, 3], -3, 3)],
  ['silu', E.silu, 'silu', f([2, 3], -3, 3)],
  ['relu', E.relu, 'relu', nz([2, 3])],
  ['abs', E.abs, 'abs', nz([2, 3])],
  ['sin', E.sin, 'sin', f([2, 3], -3, 3)],
  ['cos', E.cos, 'cos', f([2, 3], -3, 3)],
  ['square', E.square, 'square', f([2, 3])],
  ['gelu', E.gelu, 'gelu', f([3, 4], -3, 3), true],
  ['geluTanh', E.geluTanh, 'gelu_tanh', f([3, 4], -3, 3), true],
];

const cases: Case[] = [
  ...unaryCases.map(([name, fn, op, x, composite]) => ({
    name,
    inputs: [x],
    engine: ([a]: Tensor[]) => fn(a!),
    ref: ([a]: NDArray[]) => R.unary(op, a!),
    composite,
  })),
  // binary with NumPy broadcasting on both sides
  ...(
    [
      ['add', E.add],
      ['sub', E.sub],
      ['mul', E.mul],
    ] as const
  ).map(([op, fn]) => ({
    name: `${op} broadcast`,
    inputs: [f([2, 3, 4]), f([3, 1])],
    engine: ([a, b]: Tensor[]) => fn(a!, b!),
    ref: ([a, b]: NDArray[]) => R.binary(op, a!, b!),
  })),
  {
    name: 'div broadcast',
    inputs: [f([2, 1, 4]), pos([3, 4])],
    engine: ([a, b]) => E.div(a!, b!),
    ref: ([a, b]) => R.binary('div', a!, b!),
  },
  {
    name: 'pow',
    inputs: [pos([2, 3]), f([2, 3])],
    engine: ([a, b]) => E.pow(a!, b!),
    ref: ([a, b]) => R.binary('pow', a!, b!),
  },
  {
    name: 'scalar operands',
    inputs: [f([2, 3])],
    engine: ([a]) => E.sub(2, E.mul(E.add(a!, 1), 3)),
    ref: ([a]) =>
      R.binary('sub', R.f64([], [2]), R.binary('mul', R.binary('add', a!, R.f64([], [1])), R.f64([], [3]))),
  },
  ...(
    [
      ['maximum', E.maximum],
      ['minimum', E.minimum],
    ] as const
  ).map(([op, fn]) => ({
    name: op,
    inputs: [randDistinct(r, [2, 3]), randDistinct(r, [1, 3])],
    engine: ([a, b]: Tensor[]) => fn(a!, b!),
    ref: ([a, b]: NDArray[]) => R.binary(op, a!, b!),
  })),
  ...(
    [
      ['equal', 'eq', E.equal],
      ['less', 'lt', E.less],
      ['greater', 'gt', E.greater],
      ['lessOrEqual', 'le', E.lessOrEqual],
      ['greaterOrEqual', 'ge', E.greaterOrEqual],
    ] as const
  ).map(([op, rop, fn]) => {
    const a = NDArray.f32([2, 3], [1, 2, 3, 4, 5, 6]);
    const b = NDArray.f32([3], [2, 2, 7]);
    return {
      name: op,
      inputs: [a, b],
      engine: ([x, y]: Tensor[]) => fn(x!, y!),
      ref: ([x, y]: NDArray[]) => R.compare(rop, x!, y!),
      diff: [],
    };
  }),
  {
    name: 'where',
    inputs: [boolArr([2, 3]), f([2, 3]), f([3])],
    engine: ([c, a, b]) => E.where(c!, a!, b!),
    ref: ([c, a, b]) => R.where(c!, a!, b!),
    diff: [1, 2],
  },
  // reductions
  {
    name: 'reduceSum keepdims',
    inputs: [f([2, 3, 4])],
    engine: ([x]) => E.reduceSum(x!, [1], true),
    ref: ([x]) => R.reduce('sum', x!, [1], true),
  },
  {
    name: 'reduceMean two axes',
    inputs: [f([2, 3, 4])],
    engine: ([x]) => E.reduceMean(x!, [0, 2]),
    ref: ([x]) => R.reduce('mean', x!, [0, 2], false),
  },
  {
    name: 'reduceMax',
    inputs: [randDistinct(r, [2, 3, 4])],
    engine: ([x]) => E.reduceMax(x!, [-1]),
    ref: ([x]) => R.reduce('max', x!, [2], false),
  },
  {
    name: 'reduceMin all',
    inputs: [randDistinct(r, [2, 3])],
    engine: ([x]) => E.reduceMin(x!),
    ref: ([x]) => R.reduce('min', x!, [0, 1], false),
  },
  // linear algebra
  {
    name: 'matmul',
    inputs: [f([2, 3, 4]), f([4, 5])],
    engine: ([a, b]) => E.matmul(a!, b!),
    ref: ([a, b]) => R.matmul(a!, b!),
  },
  {
    name: 'matmul broadcast batch',
    inputs: [f([2, 1, 3, 4]), f([3, 4, 2])],
    engine: ([a, b]) => E.matmul(a!, b!),
    ref: ([a, b]) => R.matmul(a!, b!),
  },
  {
    name: 'linear',
    inputs: [f([2, 3, 4]), f([5, 4]), f([5])],
    engine: ([x, w, b]) => E.linear(x!, w!, b!),
    ref: ([x, w, b]) => R.linear(x!, w!, b!),
  },
  // convolution
  {
    name: 'conv2d 3x3 s1 p1 bias',
    inputs: [f([2, 3, 5, 5]), f([4, 3, 3, 3]), f([4])],
    engine: ([x, w, b]) => E.conv2d(x!, w!, b!, { padding: 1 }),
    ref: ([x, w, b]) => R.conv2d(x!, w!, b!, { padding: 1 }),
  },
  {
    name: 'conv2d 3x3 s2 p1',
    inputs: [f([2, 3, 6, 6]), f([4, 3, 3, 3])],
    engine: ([x, w]) => E.conv2d(x!, w!, undefined, { stride: 2, padding: 1 }),
    ref: ([x, w]) => R.conv2d(x!, w!, null, { stride: 2, padding: 1 }),
  },
  {
    name: 'conv2d 3x3 s2 p1 odd size',
    inputs: [f([1, 2, 7, 5]), f([3, 2, 3, 3]), f([3])],
    engine: ([x, w, b]) => E.conv2d(x!, w!, b!, { stride: 2, padding: 1 }),
    ref: ([x, w, b]) => R.conv2d(x!, w!, b!, { stride: 2, padding: 1 }),
  },
  {
    name: 'conv2d 1x1',
    inputs: [f([2, 3, 4, 4]), f([5, 3, 1, 1]), f([5])],
    engine: ([x, w, b]) => E.conv2d(x!, w!, b!),
    ref: ([x, w, b]) => R.conv2d(x!, w!, b!),
  },
  {
    name: 'conv2d 3x3 valid',
    inputs: [f([1, 2, 5, 6]), f([3, 2, 3, 3])],
    engine: ([x, w]) => E.conv2d(x!, w!),
    ref: ([x, w]) => R.conv2d(x!, w!),
  },
  // normalisation and softmax
  {
    name: 'groupNorm',
    inputs: [f([2, 6, 3, 3]), f([6], 0.5, 1.5), f([6])],
    engine: ([x, w, b]) => E.groupNorm(x!, 3, w!, b!, 1e-5),
    ref: ([x, w, b]) => R.groupNorm(x!, 3, w!, b!, 1e-5),
    composite: true,
  },
  {
    name: 'groupNorm on tokens [N,C,L]',
    inputs: [f([2, 4, 5]), f([4], 0.5, 1.5), f([4])],
    engine: ([x, w, b]) => E.groupNorm(x!, 2, w!, b!, 1e-5),
    ref: ([x, w, b]) => R.groupNorm(x!, 2, w!, b!, 1e-5),
    composite: true,
  },
  {
    name: 'layerNorm',
    inputs: [f([2, 3, 8]), f([8], 0.5, 1.5), f([8])],
    engine: ([x, w, b]) => E.layerNorm(x!, w!, b!, 1e-5),
    ref: ([x, w, b]) => R.layerNorm(x!, w!, b!, 1e-5),
    composite: true,
  },
  {
    name: 'layerNorm without affine',
    inputs: [f([3, 6])],
    engine: ([x]) => E.layerNorm(x!, undefined, undefined, 1e-6),
    ref: ([x]) => R.layerNorm(x!, null, null, 1e-6),
    composite: true,
  },
  {
    name: 'rmsNorm (T5)',
    inputs: [f([2, 3, 8]), f([8], 0.5, 1.5)],
    engine: ([x, w]) => E.rmsNorm(x!, w!, 1e-6),
    ref: ([x, w]) => R.rmsNorm(x!, w!, 1e-6),
    composite: true,
  },
  {
    name: 'softmax with additive mask',
    inputs: [f([2, 3, 5], -2, 2), NDArray.f32([1, 1, 5], [0, 0, -1e9, 0, -1e9])],
    engine: ([x, m]) => E.softmax(x!, -1, m!),
    ref: ([x, m]) => R.softmax(x!, 2, m!),
    diff: [0],
  },
  {
    name: 'softmax axis 1',
    inputs: [f([2, 4, 3], -2, 2)],
    engine: ([x]) => E.softmax(x!, 1),
    ref: ([x]) => R.softmax(x!, 1),
  },
  // movement
  {
    name: 'reshape',
    inputs: [f([2, 3, 4])],
    engine: ([x]) => E.reshape(x!, [4, -1]),
    ref: ([x]) => R.reshape(x!, [4, 6]),
  },
  {
    name: 'permute',
    inputs: [f([2, 3, 4])],
    engine: ([x]) => E.permute(x!, [2, 0, 1]),
    ref: ([x]) => R.permute(x!, [2, 0, 1]),
  },
  {
    name: 'transpose last two',
    inputs: [f([2, 3, 4])],
    engine: ([x]) => E.transpose(x!),
    ref: ([x]) => R.permute(x!, [0, 2, 1]),
  },
  {
    name: 'concat',
    inputs: [f([2, 3]), f([2, 1]), f([2, 2])],
    engine: (xs) => E.concat(xs, 1),
    ref: (xs) => R.concat(xs, 1),
  },
  {
    name: 'split (middle chunk)',
    inputs: [f([2, 7])],
    engine: ([x]) => E.split(x!, [2, 3, 2], -1)[1]!,
    ref: ([x]) => R.split(x!, [2, 3, 2], 1)[1]!,
  },
  {
    name: 'slice unit step, negative start',
    inputs: [f([3, 5, 4])],
    engine: ([x]) => E.slice(x!, [1, -3], [3, 5], [0, 1]),
    ref: ([x]) => R.slice(x!, [1, -3], [3, 5], [0, 1]),
  },
  {
    name: 'slice step -1 (flip)',
    inputs: [f([2, 5])],
    engine: ([x]) => E.slice(x!, [3], [0], [1], [-1]),
    ref: ([x]) => R.slice(x!, [3], [0], [1], [-1]),
  },
  {
    name: 'slice step 2 (forward only)',
    inputs: [f([2, 7])],
    engine: ([x]) => E.slice(x!, [1], [7], [1], [2]),
    ref: ([x]) => R.slice(x!, [1], [7], [1], [2]),
    diff: [],
  },
  {
    name: 'gather (embedding, repeated ids)',
    inputs: [f([6, 4]), NDArray.i64([2, 3], [0, 5, 2, 2, 5, 1])],
    engine: ([t, ids]) => E.gather(t!, ids!),
    ref: ([t, ids]) => R.gather(t!, ids!),
    diff: [0],
  },
  {
    name: 'expand',
    inputs: [f([3, 1])],
    engine: ([x]) => E.expand(x!, [2, 3, 4]),
    ref: ([x]) => R.expand(x!, [2, 3, 4]),
  },
  {
    name: 'pad',
    inputs: [f([2, 3, 4])],
    engine: ([x]) =>
      E.pad(x!, [
        [0, 0],
        [1, 2],
        [2, 1],
      ]),
    ref: ([x]) =>
      R.pad(x!, [
        [0, 0],
        [1, 2],
        [2, 1],
      ]),
  },
  {
    name: 'pad with value (forward)',
    inputs: [f([2, 2])],
    engine: ([x]) =>
      E.pad(
        x!,
        [
          [1, 0],
          [0, 1],
        ],
        -3,
      ),
    ref: ([x]) =>
      R.pad(
        x!,
        [
          [1, 0],
          [0, 1],
        ],
        -3,
      ),
  },
  // resampling
  {
    name: 'upsampleNearest2x',
    inputs: [f([2, 3, 3, 4])],
    engine: ([x]) => E.upsampleNearest2x(x!),
    ref: ([x]) => R.upsampleNearest2x(x!),
    composite: true,
  },
  {
    name: 'upsampleNearest2x decomposition (traced directly)',
    inputs: [f([2, 3, 3, 4])],
    engine: ([x]) => E.upsampleNearest2xOp.decompose!([x!], {}),
    ref: ([x]) => R.upsampleNearest2x(x!),
  },
  ...[
    [4, 4, 10, 7, true],
    [4, 4, 10, 7, false],
    [8, 6, 3, 4, false],
    [8, 6, 3, 4, true],
    [3, 3, 12, 12, true],
  ].map(([h, w, oh, ow, ac]) => ({
    name: `resizeBilinear ${h}x${w}→${oh}x${ow} alignCorners=${ac}`,
    inputs: [f([2, 2, h as number, w as number])],
    engine: ([x]: Tensor[]) => E.resizeBilinear(x!, oh as number, ow as number, ac as boolean),
    ref: ([x]: NDArray[]) => R.resizeBilinear(x!, oh as number, ow as number, ac as boolean),
  })),
  {
    name: 'avgPool2d',
    inputs: [f([2, 3, 4, 6])],
    engine: ([x]) => E.avgPool2d(x!, 2),
    ref: ([x]) => R.avgPool2d(x!, 2, 2),
  },
  // Composites with their own VJP stay fused in training graphs, so their decompositions are
  // traced here directly: forward vs the reference and autodiff through the primitives vs FD.
  {
    name: 'gelu decomposition (traced directly)',
    inputs: [f([3, 4], -3, 3)],
    engine: ([x]) => E.geluOp.decompose!([x!], {}),
    ref: ([x]) => R.unary('gelu', x!),
  },
  {
    name: 'groupNorm with a large mean (standardize VJP)',
    inputs: [f([2, 4, 6], 4, 6), f([4], 0.5, 1.5), f([4])],
    engine: ([x, w, b]) => E.groupNorm(x!, 2, w!, b!, 1e-5),
    ref: ([x, w, b]) => R.groupNorm(x!, 2, w!, b!, 1e-5),
    composite: true,
    gradTol: 5e-3,
  },
  // attention
  {
    name: 'attention with bias, S≠T',
    inputs: [f([2, 3, 8]), f([2, 5, 8]), f([2, 5, 4]), f([1, 2, 3, 5])],
    engine: ([q, k, v, b]) => E.attention(q!, k!, v!, { numHeads: 2, bias: b! }),
    ref: attentionRef,
    composite: true,
  },
  {
    name: 'attention, bias broadcast over heads, backward in query blocks of 2',
    inputs: [f([2, 3, 8]), f([2, 5, 8]), f([2, 5, 4]), f([2, 1, 3, 5])],
    engine: ([q, k, v, b]) => E.attention(q!, k!, v!, { numHeads: 2, bias: b!, backwardBlock: 2 }),
    ref: attentionRef,
    composite: true,
  },
  {
    // a padding mask is data: the VJP skips its gradient (checked structurally below)
    name: 'attention with a constant bias (gradients for q, k, v only), query blocks of 2',
    inputs: [f([2, 3, 8]), f([2, 5, 8]), f([2, 5, 4]), f([2, 1, 3, 5])],
    diff: [0, 1, 2],
    engine: ([q, k, v, b]) => E.attention(q!, k!, v!, { numHeads: 2, bias: b!, backwardBlock: 2 }),
    ref: attentionRef,
    composite: true,
  },
  {
    name: 'attention decomposition (traced directly)',
    inputs: [f([2, 3, 8]), f([2, 5, 8]), f([2, 5, 4]), f([1, 2, 3, 5])],
    engine: ([q, k, v, b]) =>
      E.attentionOp.decompose!([q!, k!, v!, b!], { numHeads: 2, scale: 0.5, hasBias: true }),
    ref: attentionRef,
  },
  {
    name: 'attention unscaled (T5)',
    inputs: [f([1, 4, 6]), f([1, 4, 6]), f([1, 4, 6])],
    engine: ([q, k, v]) => E.attention(q!, k!, v!, { numHeads: 3, scale: 1, backwardBlock: 3 }),
    ref: ([q, k, v]) => {
      const heads = (t: NDArray) => R.permute(R.reshape(t, [1, 4, 3, 2]), [0, 2, 1, 3]);
      const o = R.attention(heads(q!), heads(k!), heads(v!), { scale: 1 });
      return R.reshape(R.permute(o, [0, 2, 1, 3]), [1, 4, 6]);
    },
    composite: true,
  },
  {
    name: 'cast float32→float16→float32',
    inputs: [NDArray.f32([4], [1, 1.0009765625, 65504, -0.333])],
    engine: ([x]) => E.cast(E.cast(x!, 'float16'), 'float32'),
    ref: ([x]) => x!.cast('float16').toFloat32(),
  },
];

function inputsRecord(xs: NDArray[]): Record<string, NDArray> {
  return Object.fromEntries(xs.map((x, i) => [`x${i}`, x]));
}

async function forward(c: Case, decompose: boolean): Promise<NDArray> {
  const fn = rt.compile((ins) => c.engine(c.inputs.map((_, i) => ins[`x${i}`]!)), { decompose });
  return (await fn.run(inputsRecord(c.inputs))).output!;
}

const isFloatArr = (a: NDArray) => a.dtype === 'float32';

async function checkGrad(c: Case, decompose: boolean): Promise<void> {
  const diff = c.diff ?? c.inputs.map((x, i) => (isFloatArr(x) ? i : -1)).filter((i) => i >= 0);
  if (diff.length === 0) return;
  const params = diff.map((i) => new Parameter(`p${i}`, c.inputs[i]!.shape, { value: c.inputs[i]! }));
  const refOut = c.ref(c.inputs);
  const weights = randF32(rng(99), refOut.shape, -1, 1);
  const g = rt.compileGrad(
    (ins, trace) => {
      const xs = c.inputs.map((_, i) => {
        const k = diff.indexOf(i);
        return k >= 0 ? trace.param(params[k]!) : ins[`x${i}`]!;
      });
      return E.reduceSum(E.mul(c.engine(xs), trace.constant(weights)));
    },
    params,
    { decompose },
  );
  // Non-differentiated inputs stay graph inputs under their original names.
  const named: Record<string, NDArray> = {};
  c.inputs.forEach((x, i) => {
    if (!diff.includes(i)) named[`x${i}`] = x;
  });
  const { grads } = await g.run(named);
  const wd = R.toF64(weights);
  const loss = (vals: Float64Array[]) => {
    const xs = c.inputs.map((x, i) => {
      const k = diff.indexOf(i);
      return k >= 0 ? R.f64(x.shape, vals[k]!) : x;
    });
    const y = R.toF64(c.ref(xs));
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * wd[i]!;
    return s;
  };
  const fd = finiteDifferenceGrad(
    loss,
    diff.map((i) => R.toF64(c.inputs[i]!)),
    1e-3,
  );
  diff.forEach((_, k) => {
    const got = grads.get(params[k]!);
    expect(got, `gradient for input ${diff[k]}`).toBeDefined();
    expect(relErr(got!, fd[k]!), `${c.name}: d/dx${diff[k]}`).toBeLessThan(c.gradTol ?? 2e-3);
  });
}

describe('engine ops: forward vs plain-JS reference', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const want = c.ref(c.inputs);
      const got = await forward(c, false);
      expect(got.shape).toEqual(want.shape);
      if (want.dtype === 'bool')
        expect(Array.from(got.data as Uint8Array)).toEqual(Array.from(want.data as Uint8Array));
      else expect(relErr(got.toFloat32().data as Float32Array, want)).toBeLessThan(c.tol ?? 2e-6);
      if (c.composite) {
        const dec = await forward(c, true);
        expect(relErr(dec.data as Float32Array, want), 'decomposed').toBeLessThan(c.tol ?? 2e-6);
      }
    });
  }
});

describe('engine ops: gradients vs finite differences', () => {
  for (const c of cases) {
    if (c.diff && c.diff.length === 0) continue;
    if (c.inputs.every((x) => !isFloatArr(x))) continue;
    if (c.name.startsWith('cast')) continue;
    it(c.name, async () => {
      await checkGrad(c, true);
      // Composite left fused in the forward pass: its decomposition supplies the backward.
      if (c.composite) await checkGrad(c, false);
    });
  }
});

describe('attention backward with a constant bias', () => {
  it('computes no bias gradient: the same reductions as attention without a bias', () => {
    const reductions = (withBias: 'none' | 'constant' | 'differentiated') => {
      const t = new E.Trace();
      const q = t.input('q', [2, 6, 8]);
      const k = t.input('k', [2, 7, 8]);
      const v = t.input('v', [2, 7, 8]);
      const b = t.input('b', [2, 1, 6, 7]);
      const y = E.attention(q, k, v, {
        numHeads: 2,
        backwardBlock: 2,
        ...(withBias === 'none' ? {} : { bias: b }),
      });
      const grads = E.grad(E.reduceSum(y), withBias === 'differentiated' ? [q, k, v, b] : [q, k, v]);
      return E.topoSort(grads.filter((g): g is Tensor => g !== null)).filter(
        (n) => typeof n.op !== 'string' && n.op.name === 'reduceSum',
      ).length;
    };
    expect(reductions('constant')).toBe(reductions('none'));
    // three query blocks, one head-sum each, when the bias does need its gradient
    expect(reductions('differentiated')).toBe(reductions('none') + 3);
  });
});
