import { describe, expect, it } from 'vitest';
import { NDArray } from '../../src/engine/ndarray.js';
import { finiteDifferenceGrad, maxAbsErr, relErr } from './fd.js';
import {
  arange,
  attention,
  avgPool2d,
  binary,
  broadcastShapes,
  compare,
  concat,
  conv2d,
  erf,
  expand,
  f64,
  gather,
  groupNorm,
  layerNorm,
  linear,
  matmul,
  pad,
  permute,
  reduce,
  reshape,
  resizeBilinear,
  resizeNearest,
  rmsNorm,
  slice,
  softmax,
  split,
  transpose,
  unary,
  upsampleNearest2x,
  where,
} from './ops.js';

const arr = (x: NDArray): number[] => x.toArray();

function expectClose(actual: NDArray | ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  const a = actual instanceof NDArray ? actual.toArray() : Array.from(actual);
  expect(a.length).toBe(expected.length);
  const err = maxAbsErr(a, expected);
  if (!(err <= tol)) {
    throw new Error(
      `max abs err ${err} > ${tol}\n actual   ${a.join(', ')}\n expected ${Array.from(expected).join(', ')}`,
    );
  }
}

/** Same deterministic data as the torch generator script: ((i·7 + seed) mod 13 − 6) / 4. */
function data(shape: number[], seed: number): NDArray {
  const n = shape.reduce((a, b) => a * b, 1);
  return f64(
    shape,
    Array.from({ length: n }, (_, i) => (((i * 7 + seed) % 13) - 6) / 4),
  );
}

/*
 * Outputs of torch 2.13.0+cpu (float64), produced once by hand with this script:
 *
 *   import torch, math; import torch.nn.functional as F
 *   torch.set_default_dtype(torch.float64)
 *   def data(shape, seed):
 *       n = math.prod(shape)
 *       return torch.tensor([((i * 7 + seed) % 13 - 6) / 4 for i in range(n)]).reshape(shape)
 *   conv:  F.conv2d(data([1,4,5,6],1), data([6,2,3,2],2), data([6],3), stride=(2,1), padding=(1,2), groups=2)
 *   bil_{ac}_{h}x{w}: F.interpolate(data([1,2,3,4],4), size=(h,w), mode='bilinear', align_corners=ac)
 *   nearest2x: F.interpolate(data([1,2,3,4],4), scale_factor=2, mode='nearest'); nearest_5x7: size=(5,7)
 *   gn:    F.group_norm(data([2,4,3,2],5), 2, data([4],6), data([4],7), 1e-5)
 *   erf / gelu / gelu_tanh / silu: torch.erf(pts), F.gelu(pts), F.gelu(pts, approximate='tanh'), F.silu(pts)
 *   ln:    F.layer_norm(data([2,5],8), (5,), data([5],9), data([5],10), 1e-5)
 *   avgpool: F.avg_pool2d(data([1,2,4,6],11), (2,3), (2,2))
 *   (all flattened with .flatten().tolist())
 */
const TORCH = {
  conv: [
    -0.75, -1.5, 2.875, -3.0, 2.5, -3.375, -1.9375, -1.0, -0.75, -0.75, -2.625, -2.625, 2.1875, -3.5625,
    2.0625, -6.125, 1.6875, -0.75, -0.75, 2.25, -2.25, -1.875, -1.5, -1.9375, -1.5625, -1.4375, -0.75, 1.0,
    2.1875, -2.9375, 7.3125, -2.75, 7.5, -0.9375, 4.0, 1.0, 1.0, 1.1875, 1.125, -4.0, 6.3125, -3.6875, 9.875,
    -2.6875, 1.0, 1.0, 0.75, 1.0625, 2.125, -2.5, 2.625, -2.0, 4.0625, 1.0, -0.5, -3.0625, 6.6875, -4.3125,
    6.625, -4.375, 3.3125, -0.75, -0.5, -0.5, -0.6875, -4.875, 6.0625, -4.9375, 6.0, -6.625, 2.6875, -0.5,
    -0.5, -0.75, 0.3125, -3.625, 2.1875, -3.375, 2.4375, -1.8125, -0.5, 1.25, 1.0625, 2.875, -1.75, 6.625,
    -2.875, 7.125, -0.6875, 1.25, 1.25, 0.1875, 0.375, 0.5625, 0.75, 4.1875, -0.5, 5.1875, 1.25, 1.25, 3.6875,
    -2.0625, 2.8125, -2.0625, 2.8125, 1.1875, 1.0, 1.25, -0.25, 1.8125, -3.125, 2.6875, -4.5, 7.0, -4.25,
    2.1875, -0.25, -0.25, -2.4375, 0.1875, 0.1875, 0.1875, -1.4375, 4.25, -1.5625, -0.25, -0.25, -1.5625,
    2.6875, -3.125, 2.4375, -3.375, 0.5625, -0.5, -0.25, 1.5, 0.9375, 3.0625, -1.8125, 7.125, -2.625, 7.125,
    0.1875, 1.5, 1.5, 0.625, 0.8125, 0.625, 0.4375, 4.3125, -0.75, 4.6875, 1.5, 1.5, 4.5625, -1.5, 3.125,
    -2.0, 2.625, 1.5625, 1.25, 1.5,
  ],
  conv_shape: [1, 6, 3, 9],
  bil_false_5x7: [
    -0.5, 0.12499999999999994, 1.1249999999999998, 0.5, -0.12500000000000044, 0.8749999999999999, 1.5,
    -0.30000000000000004, -0.13928571428571423, 0.11785714285714285, 0.050000000000000065,
    -0.017857142857142985, 0.23928571428571432, 0.40000000000000013, 0.0, -0.5357142857142856,
    -1.3928571428571428, -0.625, 0.14285714285714324, -0.7142857142857142, -1.25, 0.29999999999999993,
    -0.23571428571428568, -1.0928571428571427, -0.32500000000000007, 0.44285714285714317,
    -0.41428571428571426, -0.9500000000000001, 0.5, -0.03571428571428564, -0.8928571428571428, -0.125,
    0.6428571428571432, -0.21428571428571422, -0.75, 1.0, 0.46428571428571436, -0.39285714285714274, 0.375,
    1.1428571428571432, 0.2857142857142858, -0.25, 1.2, 0.6642857142857144, -0.19285714285714275,
    -0.07499999999999994, 0.13571428571428593, 0.021428571428571477, -0.05000000000000003, 1.5,
    0.9642857142857144, 0.10714285714285726, -0.75, -1.3750000000000004, -0.3750000000000001, 0.25,
    -0.14999999999999963, 0.010714285714285857, 0.2678571428571428, -0.45000000000000007, -1.0750000000000006,
    -0.07500000000000015, 0.5499999999999999, -1.25, -0.625, 0.3749999999999999, -0.25, -0.8750000000000004,
    0.12499999999999993, 0.75,
  ],
  bil_false_2x3: [
    -0.21875, 0.21875, 0.6562499999999998, 0.12500000000000003, -0.25, -0.6249999999999996, 0.875, 0.09375,
    -0.010416666666666463, -0.40625, -0.375, 0.3333333333333328,
  ],
  bil_true_5x7: [
    -0.5, 0.375, 1.25, 0.5, -0.25, 0.625, 1.5, -0.25, -0.1875, -0.125, -0.0625, 0.0, 0.0625, 0.125, 0.0,
    -0.75, -1.5, -0.625, 0.25, -0.5, -1.25, 0.25, -0.5, -1.25, -0.375, 0.5, -0.25, -1.0, 0.5, -0.25, -1.0,
    -0.125, 0.75, 0.0, -0.75, 1.0, 0.25, -0.5, 0.375, 1.25, 0.5, -0.25, 1.25, 0.5, -0.25, -0.1875, -0.125,
    -0.0625, 0.0, 1.5, 0.75, 0.0, -0.75, -1.5, -0.625, 0.25, 0.125, 0.1875, 0.25, -0.5, -1.25, -0.375, 0.5,
    -1.25, -0.375, 0.5, -0.25, -1.0, -0.125, 0.75,
  ],
  bil_true_2x3: [-0.5, 0.5, 1.5, 0.5, -0.125, -0.75, 1.0, 0.375, -0.25, -1.25, -0.25, 0.75],
  nearest2x: [
    -0.5, -0.5, 1.25, 1.25, -0.25, -0.25, 1.5, 1.5, -0.5, -0.5, 1.25, 1.25, -0.25, -0.25, 1.5, 1.5, 0.0, 0.0,
    -1.5, -1.5, 0.25, 0.25, -1.25, -1.25, 0.0, 0.0, -1.5, -1.5, 0.25, 0.25, -1.25, -1.25, 0.5, 0.5, -1.0,
    -1.0, 0.75, 0.75, -0.75, -0.75, 0.5, 0.5, -1.0, -1.0, 0.75, 0.75, -0.75, -0.75, 1.0, 1.0, -0.5, -0.5,
    1.25, 1.25, -0.25, -0.25, 1.0, 1.0, -0.5, -0.5, 1.25, 1.25, -0.25, -0.25, 1.5, 1.5, 0.0, 0.0, -1.5, -1.5,
    0.25, 0.25, 1.5, 1.5, 0.0, 0.0, -1.5, -1.5, 0.25, 0.25, -1.25, -1.25, 0.5, 0.5, -1.0, -1.0, 0.75, 0.75,
    -1.25, -1.25, 0.5, 0.5, -1.0, -1.0, 0.75, 0.75,
  ],
  nearest_5x7: [
    -0.5, -0.5, 1.25, 1.25, -0.25, -0.25, 1.5, -0.5, -0.5, 1.25, 1.25, -0.25, -0.25, 1.5, 0.0, 0.0, -1.5,
    -1.5, 0.25, 0.25, -1.25, 0.0, 0.0, -1.5, -1.5, 0.25, 0.25, -1.25, 0.5, 0.5, -1.0, -1.0, 0.75, 0.75, -0.75,
    1.0, 1.0, -0.5, -0.5, 1.25, 1.25, -0.25, 1.0, 1.0, -0.5, -0.5, 1.25, 1.25, -0.25, 1.5, 1.5, 0.0, 0.0,
    -1.5, -1.5, 0.25, 1.5, 1.5, 0.0, 0.0, -1.5, -1.5, 0.25, -1.25, -1.25, 0.5, 0.5, -1.0, -1.0, 0.75,
  ],
  gn: [
    0.25, 0.25, 0.25, 0.25, 0.25, 0.25, -2.2588970933230095, 0.2459508625134279, -2.6763717526290827,
    -0.171523796792645, -3.0938464119351554, -0.5889984560987179, 0.8140306625010426, 0.424199495258369,
    0.8790025237081549, 0.48917135646548127, 0.0993401892228076, 0.5541432176725936, 0.6784397478504005,
    -1.5955753943985291, 0.35358044181483916, -1.9204347004340907, 0.028721135779277762, -2.245294006469652,
    0.25, 0.25, 0.25, 0.25, 0.25, 0.25, -1.7899023771991915, 0.6396583201971704, -2.1948291600985854,
    0.23473153729777674, -2.599755942997979, -0.17019524560161692, 0.7474456729119063, 0.3515325962528562,
    0.8134311856884147, 0.4175181090293646, 0.879416698464923, 0.4835036218058729, 1.062047274265886,
    -1.2474456729119061, 0.7321197103833442, -1.577373236794448, 0.4021921465008025, -1.9073008006769898,
  ],
  pts: [-5.0, -3.2, -2.0, -1.0, -0.4, -0.001, 0.0, 1e-8, 0.3, 0.7, 1.3, 2.5, 4.0, 6.5],
  erf: [
    -0.9999999999984626, -0.9999939742388483, -0.9953222650189527, -0.8427007929497149, -0.42839235504666845,
    -0.0011283787909692365, 0.0, 1.1283791670955126e-8, 0.3286267594591274, 0.6778011938374184,
    0.9340079449406524, 0.999593047982555, 0.9999999845827421, 1.0,
  ],
  gelu: [
    -1.4332578593401202e-6, -0.0021988414013307533, -0.04550026389635842, -0.15865525393145702,
    -0.13783130335587032, -0.000499601057786089, 0.0, 5.000000039894228e-9, 0.1853734266566858,
    0.5306254434438489, 1.1741593700387067, 2.4844758366855597, 3.9998733150326675, 6.49999999973896,
  ],
  gelu_tanh: [
    -2.2917961972623857e-7, -0.0018695651620843634, -0.04540230591222494, -0.15880800939172324,
    -0.13783883057264382, -0.000499601057786418, 0.0, 5.000000039894228e-9, 0.18537092354275922,
    0.5305701347051167, 1.1739290123173094, 2.484915733910001, 3.9999297540518075, 6.499999999999372,
  ],
  silu: [
    -0.03346425462142428, -0.12533031294964594, -0.2384058440442351, -0.2689414213699951, -0.1605249359550192,
    -0.0004997500000208334, 0.0, 5.000000025e-9, 0.1723327550434977, 0.46773144051771626, 1.0215854779553264,
    2.3103545499468914, 3.928055160151634, 6.490242315331209,
  ],
  ln: [
    1.367880837680042, 0.5116723036201158, 2.047075148306758, 0.2711645200467262, 2.879553141300158,
    0.17226811521990554, -1.2817467800700895, 0.45292485169324237, -0.9244482024134105, 0.8868652705332633,
  ],
  avgpool: [0.125, -0.16666666666666666, 0.0, 0.25, -0.125, 0.125, -0.25, 0.0],
};

describe('erf and unary ops', () => {
  it('erf matches known float64 values to 1e-15', () => {
    // erf(-0.3) = -0.32862675945912741619... (mpmath, 30 digits; Python math.erf and torch agree)
    const known: [number, number][] = [
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [-0.3, -0.3286267594591274],
      [3.5, 0.9999992569016276],
    ];
    for (const [x, y] of known) expect(Math.abs(erf(x) - y)).toBeLessThanOrEqual(1e-15);
    expect(erf(0)).toBe(0);
    expect(erf(10)).toBe(1);
    expect(erf(-10)).toBe(-1);
    expect(Number.isNaN(erf(Number.NaN))).toBe(true);
  });

  it('erf is odd and monotone on a fine grid', () => {
    let prev = -1;
    for (let x = -6; x <= 6; x += 0.01) {
      const y = erf(x);
      expect(y).toBeGreaterThanOrEqual(prev);
      expect(erf(-x)).toBe(-y);
      prev = y;
    }
  });

  it('erf / gelu / gelu_tanh / silu match torch', () => {
    const pts = f64([TORCH.pts.length], TORCH.pts);
    expectClose(unary('erf', pts), TORCH.erf, 2e-16 * 8);
    expectClose(unary('gelu', pts), TORCH.gelu, 1e-15);
    expectClose(unary('gelu_tanh', pts), TORCH.gelu_tanh, 1e-15);
    expectClose(unary('gelu_new', pts), TORCH.gelu_tanh, 1e-15);
    expectClose(unary('silu', pts), TORCH.silu, 1e-15);
  });

  it('simple unary ops by hand', () => {
    const x = f64([4], [-2, -0.5, 0.25, 4]);
    expectClose(unary('neg', x), [2, 0.5, -0.25, -4]);
    expectClose(unary('abs', x), [2, 0.5, 0.25, 4]);
    expectClose(unary('relu', x), [0, 0, 0.25, 4]);
    expectClose(unary('square', x), [4, 0.25, 0.0625, 16]);
    expectClose(unary('reciprocal', x), [-0.5, -2, 4, 0.25]);
    const p = f64([3], [0.25, 1, 4]);
    expectClose(unary('sqrt', p), [0.5, 1, 2]);
    expectClose(unary('rsqrt', p), [2, 1, 0.5]);
    expectClose(unary('log', f64([2], [1, Math.E])), [0, 1]);
    expectClose(unary('exp', f64([2], [0, 1])), [1, Math.E]);
    expectClose(unary('sigmoid', f64([3], [0, 800, -800])), [0.5, 1, 0]);
    expectClose(unary('tanh', f64([1], [0])), [0]);
    expectClose(unary('sin', f64([2], [0, Math.PI / 2])), [0, 1]);
    expectClose(unary('cos', f64([2], [0, Math.PI])), [1, -1]);
    // gelu(1) = 0.5·(1 + erf(1/√2)) = Φ(1)
    expectClose(unary('gelu', f64([1], [1])), [0.8413447460685429], 1e-15);
  });

  it('reads float32 / int64 inputs and returns float64', () => {
    const y = unary('neg', NDArray.f32([2], [1.5, -2]));
    expect(y.dtype).toBe('float64');
    expect(arr(y)).toEqual([-1.5, 2]);
    expect(arr(unary('square', NDArray.i64([2], [3, -4])))).toEqual([9, 16]);
  });
});

describe('broadcasting elementwise ops', () => {
  it('broadcastShapes', () => {
    expect(broadcastShapes([2, 1, 3], [4, 1])).toEqual([2, 4, 3]);
    expect(broadcastShapes([], [3])).toEqual([3]);
    expect(broadcastShapes([5, 0], [1])).toEqual([5, 0]);
    expect(() => broadcastShapes([2, 3], [3, 2])).toThrow(/broadcast/);
  });

  it('binary ops broadcast [2,1] with [3]', () => {
    const a = f64([2, 1], [1, 2]);
    const b = f64([3], [10, 20, 30]);
    const s = binary('add', a, b);
    expect(s.shape).toEqual([2, 3]);
    expect(arr(s)).toEqual([11, 21, 31, 12, 22, 32]);
    expect(arr(binary('sub', a, b))).toEqual([-9, -19, -29, -8, -18, -28]);
    expect(arr(binary('mul', a, b))).toEqual([10, 20, 30, 20, 40, 60]);
    expect(arr(binary('div', b, a))).toEqual([10, 20, 30, 5, 10, 15]);
    expect(arr(binary('pow', a, f64([3], [0, 1, 3])))).toEqual([1, 1, 1, 1, 2, 8]);
    expect(arr(binary('maximum', a, f64([3], [0, 1.5, 3])))).toEqual([1, 1.5, 3, 2, 2, 3]);
    expect(arr(binary('minimum', a, f64([3], [0, 1.5, 3])))).toEqual([0, 1, 1, 0, 1.5, 2]);
    expect(arr(binary('pow', f64([1], [1]), f64([1], [Number.NaN])))).toEqual([1]); // C pow
    expect(arr(binary('maximum', f64([1], [Number.NaN]), f64([1], [1])))).toEqual([Number.NaN]);
  });

  it('compare and where', () => {
    const a = f64([3], [1, 2, 3]);
    const b = f64([], [2]);
    const lt = compare('lt', a, b);
    expect(lt.dtype).toBe('bool');
    expect(arr(lt)).toEqual([1, 0, 0]);
    expect(arr(compare('le', a, b))).toEqual([1, 1, 0]);
    expect(arr(compare('gt', a, b))).toEqual([0, 0, 1]);
    expect(arr(compare('ge', a, b))).toEqual([0, 1, 1]);
    expect(arr(compare('eq', a, b))).toEqual([0, 1, 0]);
    const w = where(compare('lt', a, b), a, f64([2, 1], [-1, -2]));
    expect(w.shape).toEqual([2, 3]);
    expect(arr(w)).toEqual([1, -1, -1, 1, -2, -2]);
  });
});

describe('reductions', () => {
  const x = arange([2, 3, 4]);
  it('sum / mean / max / min with negative axes and keepdims', () => {
    const s = reduce('sum', x, [-1], false);
    expect(s.shape).toEqual([2, 3]);
    expect(arr(s)).toEqual([6, 22, 38, 54, 70, 86]);
    const m = reduce('mean', x, [0, 2], true);
    expect(m.shape).toEqual([1, 3, 1]);
    // channel j: mean of {4j..4j+3} ∪ {12+4j..12+4j+3} = 4j + 7.5
    expect(arr(m)).toEqual([7.5, 11.5, 15.5]);
    expect(arr(reduce('max', x, [1], false))).toEqual([8, 9, 10, 11, 20, 21, 22, 23]);
    expect(arr(reduce('min', x, [1], false))).toEqual([0, 1, 2, 3, 12, 13, 14, 15]);
    const all = reduce('sum', x, [], false);
    expect(all.shape).toEqual([]);
    expect(arr(all)).toEqual([276]);
  });
});

describe('matmul / linear', () => {
  it('broadcasts batch dims: [2,1,2,3] x [3,3,2] -> [2,3,2,2]', () => {
    const y = matmul(arange([2, 1, 2, 3]), arange([3, 3, 2]));
    expect(y.shape).toEqual([2, 3, 2, 2]);
    const at = (i: number, j: number) => arr(y).slice((i * 3 + j) * 4, (i * 3 + j) * 4 + 4);
    // a[0,0] = [[0,1,2],[3,4,5]], b[0] = [[0,1],[2,3],[4,5]]
    expect(at(0, 0)).toEqual([10, 13, 28, 40]);
    // a[1,0] = [[6,7,8],[9,10,11]], b[2] = [[12,13],[14,15],[16,17]]
    expect(at(1, 2)).toEqual([298, 319, 424, 454]);
  });

  it('1-D operands', () => {
    const m = arange([2, 3]);
    const v = f64([3], [1, 1, 1]);
    const mv = matmul(m, v);
    expect(mv.shape).toEqual([2]);
    expect(arr(mv)).toEqual([3, 12]);
    const vm = matmul(f64([2], [1, -1]), m);
    expect(vm.shape).toEqual([3]);
    expect(arr(vm)).toEqual([-3, -3, -3]);
    const dot = matmul(v, v);
    expect(dot.shape).toEqual([]);
    expect(arr(dot)).toEqual([3]);
    expect(() => matmul(arange([2, 3]), arange([2, 3]))).toThrow(/inner/);
  });

  it('linear = x·wᵀ + b', () => {
    const x = f64([1, 2, 2], [1, 2, 3, 4]);
    const w = f64([3, 2], [1, 0, 0, 1, 1, 1]);
    const y = linear(x, w, f64([3], [0.5, 0, -1]));
    expect(y.shape).toEqual([1, 2, 3]);
    expect(arr(y)).toEqual([1.5, 2, 2, 3.5, 4, 6]);
    expect(arr(linear(x, w))).toEqual([1, 2, 3, 3, 4, 7]);
  });
});

describe('conv2d', () => {
  const x = f64([1, 1, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  it('3x3 Laplacian, padding 1, stride 2, bias (hand-computed)', () => {
    const w = f64([1, 1, 3, 3], [0, 1, 0, 1, -4, 1, 0, 1, 0]);
    const y = conv2d(x, w, f64([1], [0.5]), { stride: 2, padding: 1 });
    expect(y.shape).toEqual([1, 1, 2, 2]);
    // centers x[0][0]=1, x[0][2]=3, x[2][0]=7, x[2][2]=9 with zero padding
    expect(arr(y)).toEqual([2.5, -3.5, -15.5, -21.5]);
  });
  it('is cross-correlation, not convolution (top-left tap shifts down-right)', () => {
    const w = f64([1, 1, 3, 3], [1, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(arr(conv2d(x, w, null, { padding: 1 }))).toEqual([0, 0, 0, 0, 1, 2, 0, 4, 5]);
  });
  it('groups', () => {
    const y = conv2d(f64([1, 2, 1, 1], [2, 3]), f64([2, 1, 1, 1], [10, 100]), null, { groups: 2 });
    expect(arr(y)).toEqual([20, 300]);
  });
  it('matches torch (groups 2, stride (2,1), padding (1,2), bias)', () => {
    const y = conv2d(data([1, 4, 5, 6], 1), data([6, 2, 3, 2], 2), data([6], 3), {
      stride: [2, 1],
      padding: [1, 2],
      groups: 2,
    });
    expect(y.shape).toEqual(TORCH.conv_shape);
    expectClose(y, TORCH.conv, 1e-12);
  });
});

describe('normalization', () => {
  it('groupNorm by hand', () => {
    // [1, 4, 1, 2], G = 2: group 0 = {1,3,5,7} (mean 4, var 5), group 1 = {0,0,2,2} (mean 1, var 1)
    const x = f64([1, 4, 1, 2], [1, 3, 5, 7, 0, 0, 2, 2]);
    const y = groupNorm(x, 2, f64([4], [1, 2, 1, 1]), f64([4], [0, 0, 0, 0.5]), 0);
    const r5 = Math.sqrt(5);
    expectClose(y, [-3 / r5, -1 / r5, 2 / r5, 6 / r5, -1, -1, 1.5, 1.5], 1e-15);
  });
  it('groupNorm matches torch', () => {
    expectClose(groupNorm(data([2, 4, 3, 2], 5), 2, data([4], 6), data([4], 7), 1e-5), TORCH.gn, 1e-12);
  });
  it('layerNorm by hand and vs torch', () => {
    // row [1,2,3,4]: mean 2.5, var 1.25
    const y = layerNorm(f64([1, 4], [1, 2, 3, 4]), null, null, 0);
    const s = Math.sqrt(1.25);
    expectClose(y, [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 1e-15);
    expectClose(layerNorm(data([2, 5], 8), data([5], 9), data([5], 10), 1e-5), TORCH.ln, 1e-12);
  });
  it('rmsNorm (T5): no mean subtraction', () => {
    // row [3, 4]: mean(x²) = 12.5
    const y = rmsNorm(f64([1, 2], [3, 4]), f64([2], [1, 2]), 0);
    const r = Math.sqrt(12.5);
    expectClose(y, [3 / r, 8 / r], 1e-15);
    expectClose(rmsNorm(f64([2], [1, 1]), null, 1), [Math.SQRT1_2, Math.SQRT1_2], 1e-15);
  });
});

describe('softmax / attention', () => {
  it('softmax with a -inf mask, and a fully masked row gives NaN (as torch)', () => {
    const x = f64([2, 3], [1, 2, 3, 1, 2, 3]);
    const mask = f64([2, 3], [0, Number.NEGATIVE_INFINITY, 0, ...Array(3).fill(Number.NEGATIVE_INFINITY)]);
    const y = arr(softmax(x, -1, mask));
    const d = Math.E + Math.E ** 3;
    expectClose(y.slice(0, 3), [Math.E / d, 0, Math.E ** 3 / d], 1e-15);
    expect(y.slice(3).every(Number.isNaN)).toBe(true);
  });
  it('softmax along axis 0 is max-stable', () => {
    const y = softmax(f64([2, 1], [1000, 1000]), 0);
    expect(arr(y)).toEqual([0.5, 0.5]);
  });
  it('mask broadcasts', () => {
    const y = softmax(f64([2, 2], [0, 0, 5, 5]), 1, f64([2], [0, Number.NEGATIVE_INFINITY]));
    expect(arr(y)).toEqual([1, 0, 1, 0]);
  });
  it('attention by hand', () => {
    // one query, two keys with scores 0 and ln 3 (after scale): weights 1/4, 3/4
    const q = f64([1, 1, 1, 1], [1]);
    const k = f64([1, 1, 2, 1], [0, Math.log(3)]);
    const v = f64([1, 1, 2, 2], [4, 0, 0, 8]);
    const y = attention(q, k, v, { scale: 1 });
    expect(y.shape).toEqual([1, 1, 1, 2]);
    expectClose(y, [1, 6], 1e-14);
    const masked = attention(q, k, v, { scale: 1, additiveMask: f64([2], [0, Number.NEGATIVE_INFINITY]) });
    expectClose(masked, [4, 0], 1e-15);
    // default scale 1/√D with D = 4: scores 2·… keep it simple: identical keys → uniform average
    const q4 = f64([1, 1, 1, 4], [1, 2, 3, 4]);
    const k4 = f64([1, 1, 2, 4], [1, 1, 1, 1, 1, 1, 1, 1]);
    expectClose(attention(q4, k4, v), [2, 4], 1e-14);
  });
});

describe('movement', () => {
  it('reshape / permute / transpose', () => {
    const x = arange([2, 3]);
    expect(reshape(x, [3, -1]).shape).toEqual([3, 2]);
    expect(() => reshape(x, [4, -1])).toThrow();
    const t = permute(x, [1, 0]);
    expect(t.shape).toEqual([3, 2]);
    expect(arr(t)).toEqual([0, 3, 1, 4, 2, 5]);
    const p = permute(arange([2, 3, 4]), [2, 0, 1]);
    expect(p.shape).toEqual([4, 2, 3]);
    // p[i,j,k] = x[j,k,i] = 12j + 4k + i
    expect(arr(p).slice(0, 7)).toEqual([0, 4, 8, 12, 16, 20, 1]);
    expect(arr(transpose(x))).toEqual([0, 3, 1, 4, 2, 5]);
  });
  it('int dtypes are preserved by movement ops', () => {
    const ids = NDArray.i64([2, 2], [1, 2, 3, 4]);
    const t = transpose(ids);
    expect(t.dtype).toBe('int64');
    expect(arr(t)).toEqual([1, 3, 2, 4]);
  });
  it('concat / split', () => {
    const a = arange([2, 2]);
    const b = f64([2, 1], [9, 8]);
    const c = concat([a, b], -1);
    expect(c.shape).toEqual([2, 3]);
    expect(arr(c)).toEqual([0, 1, 9, 2, 3, 8]);
    const [p, q] = split(c, [1, 2], 1);
    expect(arr(p!)).toEqual([0, 2]);
    expect(arr(q!)).toEqual([1, 9, 3, 8]);
    expect(arr(concat([a, a], 0))).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
  });
  it('slice with ONNX semantics incl. negative steps and clamping', () => {
    const x = arange([6]);
    expect(arr(slice(x, [-1], [-Number.MAX_SAFE_INTEGER], [0], [-2]))).toEqual([5, 3, 1]);
    expect(arr(slice(x, [4], [0], [0], [-1]))).toEqual([4, 3, 2, 1]);
    expect(arr(slice(x, [1], [100], [0], [2]))).toEqual([1, 3, 5]);
    expect(arr(slice(x, [-2], [Number.MAX_SAFE_INTEGER]))).toEqual([4, 5]);
    expect(arr(slice(x, [3], [1]))).toEqual([]);
    const m = arange([3, 4]);
    const r = slice(m, [10], [-10], [1], [-1]); // start clamps to 3, end to -1: all columns reversed
    expect(r.shape).toEqual([3, 4]);
    expect(arr(r)).toEqual([3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8]);
    expect(arr(slice(m, [1, 1], [3, 3], [0, -1]))).toEqual([5, 6, 9, 10]);
  });
  it('gather (embedding lookup, negative ids wrap)', () => {
    const table = arange([4, 2]);
    const g = gather(table, NDArray.i64([2, 2], [0, 3, -1, 1]));
    expect(g.shape).toEqual([2, 2, 2]);
    expect(arr(g)).toEqual([0, 1, 6, 7, 6, 7, 2, 3]);
    const g1 = gather(table, new NDArray('int32', [1], Int32Array.of(1)), 1);
    expect(g1.shape).toEqual([4, 1]);
    expect(arr(g1)).toEqual([1, 3, 5, 7]);
    expect(() => gather(table, NDArray.i64([1], [4]))).toThrow(/out of range/);
  });
  it('expand / pad', () => {
    const e = expand(f64([2, 1], [1, 2]), [3, -1, 2]);
    expect(e.shape).toEqual([3, 2, 2]);
    expect(arr(e)).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2]);
    const p = pad(
      f64([1, 2], [1, 2]),
      [
        [1, 0],
        [0, 2],
      ],
      -1,
    );
    expect(p.shape).toEqual([2, 4]);
    expect(arr(p)).toEqual([-1, -1, -1, -1, 1, 2, -1, -1]);
    expect(arr(pad(arange([4]), [[-1, -1]]))).toEqual([1, 2]);
  });
});

describe('resampling / pooling', () => {
  const x = f64([1, 1, 2, 2], [0, 1, 2, 3]);
  it('bilinear align_corners=False by hand (torch: src = (dst + 0.5)·in/out − 0.5, clamped at 0)', () => {
    // per axis, src = [0 (clamped from -0.25), 0.25, 0.75, 1.25 -> index clamps to 1]
    // value = x-interp + 2·y-interp
    expectClose(
      resizeBilinear(x, 4, 4, false),
      [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3],
    );
  });
  it('bilinear align_corners=True by hand (src = dst·(in−1)/(out−1) = dst/3)', () => {
    const t = 1 / 3;
    expectClose(
      resizeBilinear(x, 4, 4, true),
      [0, t, 2 * t, 1, 2 * t, 1, 4 * t, 5 * t, 4 * t, 5 * t, 2, 7 * t, 2, 7 * t, 8 * t, 3],
      1e-15,
    );
  });
  it('bilinear matches torch (up and down, both align modes)', () => {
    const xr = data([1, 2, 3, 4], 4);
    expectClose(resizeBilinear(xr, 5, 7, false), TORCH.bil_false_5x7, 1e-12);
    expectClose(resizeBilinear(xr, 2, 3, false), TORCH.bil_false_2x3, 1e-12);
    expectClose(resizeBilinear(xr, 5, 7, true), TORCH.bil_true_5x7, 1e-12);
    expectClose(resizeBilinear(xr, 2, 3, true), TORCH.bil_true_2x3, 1e-12);
  });
  it('nearest', () => {
    const u = upsampleNearest2x(x);
    expect(u.shape).toEqual([1, 1, 4, 4]);
    expect(arr(u)).toEqual([0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]);
    const xr = data([1, 2, 3, 4], 4);
    expectClose(upsampleNearest2x(xr), TORCH.nearest2x, 0);
    expectClose(resizeNearest(xr, 5, 7), TORCH.nearest_5x7, 0);
  });
  it('avgPool2d', () => {
    expect(arr(avgPool2d(arange([1, 1, 2, 4]), 2))).toEqual([2.5, 4.5]);
    expectClose(avgPool2d(data([1, 2, 4, 6], 11), [2, 3], [2, 2]), TORCH.avgpool, 1e-15);
  });
});

describe('finite differences', () => {
  it('gradient of a smooth function', () => {
    // f(a, b) = Σ a_i² · b_0 + sin(b_1)  →  ∂/∂a_i = 2 a_i b_0,  ∂/∂b = [Σ a², cos(b_1)]
    const f = ([a, b]: Float64Array[]) => {
      let s = 0;
      for (const v of a!) s += v * v;
      return s * b![0]! + Math.sin(b![1]!);
    };
    const a = Float64Array.of(0.5, -1.25, 2);
    const b = Float64Array.of(1.5, 0.3);
    const [ga, gb] = finiteDifferenceGrad(f, [a, b]);
    expect(relErr(ga!, [1.5, -3.75, 6])).toBeLessThan(1e-9);
    expect(relErr(gb!, [0.25 + 1.5625 + 4, Math.cos(0.3)])).toBeLessThan(1e-8);
    expect(Array.from(a)).toEqual([0.5, -1.25, 2]); // inputs untouched
  });
  it('gradient through a reference op (softmax cross term) agrees with the analytic one', () => {
    // f(x) = Σ_i w_i softmax(x)_i ;  ∂f/∂x_j = p_j (w_j − Σ p w)
    const w = [1, -2, 0.5];
    const f = ([x]: Float64Array[]) => {
      const p = arr(softmax(f64([3], x!), 0));
      return p.reduce((s, v, i) => s + v * w[i]!, 0);
    };
    const x = Float64Array.of(0.1, 0.7, -0.4);
    const p = arr(softmax(f64([3], x), 0));
    const pw = p.reduce((s, v, i) => s + v * w[i]!, 0);
    const [g] = finiteDifferenceGrad(f, [x]);
    expect(
      relErr(
        g!,
        p.map((v, i) => v * (w[i]! - pw)),
      ),
    ).toBeLessThan(1e-8);
  });
  it('error metrics', () => {
    expect(maxAbsErr([1, 2, 3], [1, 2.5, 3])).toBe(0.5);
    expect(relErr([1, 2, 3], [1, 2.5, 4])).toBe(0.25);
    expect(relErr([0], [0])).toBe(0);
    expect(maxAbsErr([Number.POSITIVE_INFINITY], [Number.POSITIVE_INFINITY])).toBe(0);
    expect(Number.isNaN(maxAbsErr([Number.NaN], [1]))).toBe(true);
    expect(() => maxAbsErr([1], [1, 2])).toThrow();
  });
});
