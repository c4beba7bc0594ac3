import type { Tensor } from '../graph.js';
import { NDArray } from '../ndarray.js';
import { defineOp } from '../op.js';
import { add, erf, exp, mul, rsqrt, sub, sumTo, tanh } from './elementwise.js';
import { matmul, matmulOp } from './linalg.js';
import { concat, narrow, permute, reduceMean, reduceSum, reshape, transpose } from './reduce_shape.js';
import { normAxis, requireFloat } from './util.js';

// ---------------------------------------------------------------- softmax

export const softmaxOp = defineOp<{ axis: number }>({
  name: 'softmax',
  infer: ([x], { axis }) => {
    requireFloat(x!, 'softmax');
    normAxis(axis, x!.rank);
    return { shape: [...x!.shape], dtype: x!.dtype };
  },
  emit: (e, [x], { axis }) => e.node('Softmax', [x!], { axis: e.int(axis) }),
  // dx = y ⊙ (dy − Σ dy⊙y)
  vjp: (dy, y, _x, { axis }) => [mul(y, sub(dy, reduceSum(mul(dy, y), [axis], true)))],
});

/** Softmax along `axis`; an additive mask (0 keep / large negative drop) is added first. */
export function softmax(x: Tensor, axis = -1, additiveMask?: Tensor): Tensor {
  const z = additiveMask ? add(x, additiveMask) : x;
  return z.trace.apply(softmaxOp, [z], { axis: normAxis(axis, z.rank) });
}

// ---------------------------------------------------------------- GELU (composites)

const SQRT1_2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export const geluOp = defineOp({
  name: 'gelu',
  infer: ([x]) => ({ shape: [...x!.shape], dtype: x!.dtype }),
  emit: (e, [x]) => e.node('Gelu', [x!]),
  decompose: ([x]) => mul(mul(x!, 0.5), add(erf(mul(x!, SQRT1_2)), 1)),
  // With this rule training graphs keep the one-pass Gelu kernel instead of the five elementwise
  // passes of the decomposition. With u = x/√2: gelu'(x) = Φ(x) + x·φ(x)
  // = ½·(1 + erf(u) + (2/√π)·u·e^{−u²}).
  vjp: (dy, _y, [x]) => {
    const u = mul(x!, SQRT1_2);
    const bump = mul(mul(u, exp(mul(mul(u, u), -1))), 2 / Math.sqrt(Math.PI));
    return [mul(dy, mul(add(add(erf(u), bump), 1), 0.5))];
  },
});

/** GELU, exact erf form 0.5·x·(1 + erf(x/√2)) (torch nn.GELU(), diffusers act_fn "gelu"). */
export const gelu = (x: Tensor) => x.trace.apply(geluOp, [x], {});

export const geluTanhOp = defineOp({
  name: 'geluTanh',
  infer: ([x]) => ({ shape: [...x!.shape], dtype: x!.dtype }),
  emit: (e, [x]) => e.node('Gelu', [x!], { approximate: e.str('tanh') }),
  decompose: ([x]) => {
    const inner = mul(add(x!, mul(mul(mul(x!, x!), x!), 0.044715)), SQRT_2_OVER_PI);
    return mul(mul(x!, 0.5), add(tanh(inner), 1));
  },
});

/** gelu_new / tanh-approximate GELU, used by T5 v1.1's gated feed-forward. */
export const geluTanh = (x: Tensor) => x.trace.apply(geluTanhOp, [x], {});

// ---------------------------------------------------------------- normalisation (composites)

function ones(like: Tensor, n: number): Tensor {
  return like.trace.constant(NDArray.f32([n], new Float32Array(n).fill(1)));
}

/**
 * x̂ = xc · rstd, where xc = x − mean(x) and rstd = 1/√(var(x) + eps) over `axes` (inputs
 * [x, xc, rstd]). The forward is one Mul. The backward is the closed form of the whole
 * standardisation, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dx̂, a handful of passes
 * over x instead of the dozen that differentiating mean → sub → var → rsqrt → mul step by step
 * emits. It is the total derivative through xc and rstd, so those inputs get no gradient here
 * (their own subgraphs' VJPs do not run for this use); x is an input only to receive dx.
 * Only `standardize` builds this node, with exactly those xc and rstd.
 */
const standardizeApplyOp = defineOp<{ axes: number[] }>({
  name: 'standardizeApply',
  infer: ([x, xc, rstd]) => {
    if (x!.shape.join() !== xc!.shape.join()) throw new Error('x and x − mean differ in shape');
    if (rstd!.rank !== x!.rank) throw new Error('rstd must keep the reduced dims');
    return { shape: [...x!.shape], dtype: x!.dtype };
  },
  emit: (e, [, xc, rstd]) => e.node('Mul', [xc!, rstd!]),
  vjp: (g, xhat, [, , rstd], { axes }) => {
    const m1 = reduceMean(g, axes, true);
    const m2 = reduceMean(mul(g, xhat), axes, true);
    return [mul(sub(sub(g, m1), mul(xhat, m2)), rstd!), null, null];
  },
});

/** (x − mean) / sqrt(var + eps) over the given axes (biased variance, as torch). */
function standardize(x: Tensor, axes: number[], eps: number): Tensor {
  const mu = reduceMean(x, axes, true);
  const xc = sub(x, mu);
  const rstd = rsqrt(add(reduceMean(mul(xc, xc), axes, true), eps));
  return x.trace.apply(standardizeApplyOp, [x, xc, rstd], { axes });
}

export const layerNormOp = defineOp<{ eps: number }>({
  name: 'layerNorm',
  infer: ([x, w, b]) => {
    const d = x!.shape[x!.rank - 1]!;
    for (const p of [w, b])
      if (p && (p.rank !== 1 || p.shape[0] !== d)) throw new Error(`weight/bias must be [${d}]`);
    return { shape: [...x!.shape], dtype: x!.dtype };
  },
  emit: (e, [x, w, b], { eps }) =>
    e.node('LayerNormalization', [x!, w!, b ?? ''], { axis: e.int(-1), epsilon: e.float(eps) }),
  decompose: ([x, w, b], { eps }) => {
    let y = standardize(x!, [x!.rank - 1], eps);
    if (w) y = mul(y, w);
    if (b) y = add(y, b);
    return y;
  },
});

/** LayerNorm over the last dim (torch.nn.LayerNorm). */
export function layerNorm(x: Tensor, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  // ONNX LayerNormalization requires a scale input.
  const ins = [x, weight ?? ones(x, x.shape[x.rank - 1]!)];
  if (bias) ins.push(bias);
  return x.trace.apply(layerNormOp, ins, { eps });
}

export const rmsNormOp = defineOp<{ eps: number }>({
  name: 'rmsNorm',
  infer: ([x, w]) => {
    const d = x!.shape[x!.rank - 1]!;
    if (w!.rank !== 1 || w!.shape[0] !== d) throw new Error(`weight must be [${d}]`);
    return { shape: [...x!.shape], dtype: x!.dtype };
  },
  // ORT registers SimplifiedLayerNormalization (RMS norm) in the default domain (notes §1).
  emit: (e, [x, w], { eps }) =>
    e.node('SimplifiedLayerNormalization', [x!, w!], { axis: e.int(-1), epsilon: e.float(eps) }),
  decompose: ([x, w], { eps }) =>
    mul(mul(x!, rsqrt(add(reduceMean(mul(x!, x!), [x!.rank - 1], true), eps))), w!),
});

/** T5 LayerNorm: x / sqrt(mean(x²) + eps) · w — no mean subtraction, no bias. */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  return x.trace.apply(rmsNormOp, [x, weight], { eps });
}

export const groupNormOp = defineOp<{ groups: number; eps: number }>({
  name: 'groupNorm',
  infer: ([x, w, b], { groups }) => {
    const c = x!.shape[1]!;
    if (x!.rank < 2) throw new Error('input must be [N, C, ...]');
    if (c % groups !== 0) throw new Error(`${c} channels are not divisible into ${groups} groups`);
    for (const p of [w, b])
      if (p && (p.rank !== 1 || p.shape[0] !== c)) throw new Error(`weight/bias must be [${c}]`);
    return { shape: [...x!.shape], dtype: x!.dtype };
  },
  // InstanceNormalization over [N, G, rest] is a native kernel; GroupNormalization-21 is not (notes §1).
  emit: (e, [x, w, b], { groups, eps }, out) => {
    const [n, c] = out.shape as [number, number];
    const g = e.node('Reshape', [x!, e.constI64([n, groups, -1])]);
    const onesG = e.constTensor(NDArray.f32([groups], new Float32Array(groups).fill(1)));
    const zerosG = e.constTensor(NDArray.f32([groups]));
    const normed = e.node('InstanceNormalization', [g, onesG, zerosG], { epsilon: e.float(eps) });
    let y = e.node('Reshape', [normed, e.constI64(out.shape)]);
    const affine = [c, ...out.shape.slice(2).map(() => 1)];
    if (w) y = e.node('Mul', [y, e.node('Reshape', [w, e.constI64(affine)])]);
    if (b) y = e.node('Add', [y, e.node('Reshape', [b, e.constI64(affine)])]);
    return y;
  },
  decompose: ([x, w, b], { groups, eps }) => {
    const [n, c] = x!.shape as [number, number];
    const y = reshape(standardize(reshape(x!, [n, groups, -1]), [2], eps), x!.shape);
    const affine = [c, ...x!.shape.slice(2).map(() => 1)];
    let out = y;
    if (w) out = mul(out, reshape(w, affine));
    if (b) out = add(out, reshape(b, affine));
    return out;
  },
});

/** GroupNorm over [N, C, ...] with per-channel affine (torch.nn.GroupNorm). */
export function groupNorm(x: Tensor, groups: number, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  const ins = [x];
  if (weight) ins.push(weight);
  else if (bias) ins.push(ones(x, x.shape[1]!));
  if (bias) ins.push(bias);
  return x.trace.apply(groupNormOp, ins, { groups, eps });
}

// ---------------------------------------------------------------- attention (composite)

/**
 * O = P·V where P = softmax(S) along the last axis, S being the first input. The forward is a
 * plain MatMul of P and V; S is an input only so that the backward can hand dS straight to S.
 * Softmax's own VJP needs rowsum(dP ⊙ P), a full pass (Mul + ReduceSum) over the [B,H,S,T]
 * score tensor. Here that row sum equals rowsum(dO ⊙ O) (Σ_j P_ij (dO_i·V_j) = dO_i·O_i), a
 * pass over the much smaller [B,H,S,D] output (the FlashAttention backward's D term), and P
 * gets no gradient through this node, so the softmax VJP does not run for this use of P.
 * Callers must pass P = softmax(S, -1); other consumers of P still differentiate normally.
 */
const attnApplyOp = defineOp({
  name: 'attnApply',
  infer: ([s, p, v]) => {
    if (s!.shape.join() !== p!.shape.join()) throw new Error('scores and probabilities differ in shape');
    return matmulOp.infer([p!, v!], {});
  },
  emit: (e, [, p, v]) => e.node('MatMul', [p!, v!]),
  vjp: (dO, o, [s, p, v]) => {
    const dv = sumTo(matmul(transpose(p!), dO), v!.shape);
    const dp = matmul(dO, transpose(v!));
    const d = reduceSum(mul(dO, o), [-1], true);
    return [sumTo(mul(p!, sub(dp, d)), s!.shape), null, dv];
  },
});

const attnApply = (s: Tensor, p: Tensor, v: Tensor) => s.trace.apply(attnApplyOp, [s, p, v], {});

export interface AttentionOptions {
  numHeads: number;
  /** Multiplier of QKᵀ; default 1/√(head dim). T5 uses 1. */
  scale?: number;
  /** Additive bias broadcast to [B, H, S, T] (padding masks, T5 relative positions). */
  bias?: Tensor;
  /** Query rows per block when the backward pass recomputes the scores (default: by size). */
  backwardBlock?: number;
}

/** Bytes of one query block's score tensor in the attention backward (see its VJP). */
const BACKWARD_BLOCK_BYTES = 16 * 2 ** 20;

export const attentionOp = defineOp<{
  numHeads: number;
  scale: number;
  hasBias: boolean;
  /** Query rows per block in the backward pass; default: blocks of BACKWARD_BLOCK_BYTES. */
  backwardBlock?: number;
}>({
  name: 'attention',
  infer: ([q, k, v, bias], { numHeads }) => {
    for (const t of [q, k, v]) if (t!.rank !== 3) throw new Error('q, k, v must be [B, L, heads·dim]');
    const [b, s, dq] = q!.shape as [number, number, number];
    const [bk, t, dk] = k!.shape as [number, number, number];
    const [bv, tv, dv] = v!.shape as [number, number, number];
    if (bk !== b || bv !== b) throw new Error('q, k, v batch sizes differ');
    if (tv !== t) throw new Error(`k has ${t} positions but v has ${tv}`);
    if (dq !== dk) throw new Error(`q width ${dq} ≠ k width ${dk}`);
    if (dq % numHeads || dv % numHeads)
      throw new Error(`widths ${dq}/${dv} not divisible by ${numHeads} heads`);
    if (bias && (bias.rank !== 4 || bias.shape[2] !== s || bias.shape[3] !== t)) {
      throw new Error(`bias must be [B|1, H|1, ${s}, ${t}]`);
    }
    return { shape: [b, s, dv], dtype: q!.dtype };
  },
  // com.microsoft MultiHeadAttention: tiled kernel, no [B,H,S,T] score tensor in memory (notes §3).
  emit: (e, [q, k, v, bias], { numHeads, scale }) =>
    e.node(
      'MultiHeadAttention',
      [q!, k!, v!, '', '', bias ?? ''],
      { num_heads: e.int(numHeads), scale: e.float(scale) },
      'com.microsoft',
    ),
  // Training keeps the fused kernel in the forward pass and recomputes the probabilities here
  // (FlashAttention's trade): no [B,H,S,T] tensor is held from the forward to the backward pass,
  // at the price of one QKᵀ product again. The recomputation runs over blocks of query rows, so
  // the score-sized temporaries (S, P, dP, dS) of one block stay small and cache-resident: at the
  // bench's 32² attention whole-tensor temporaries were 4 × 144 MB, most of a train step's peak.
  vjp: (dy, y, [q, k, v, bias], { numHeads, scale, backwardBlock }, needed) => {
    // A padding mask is data, not a weight: its gradient (a pass over every score block, carried
    // through the accumulator) is skipped when nothing uses it.
    const biasGrad = !!bias && needed[3] !== false;
    const heads = splitHeads(numHeads);
    const qh = heads(q!);
    const kh = heads(k!);
    const vh = heads(v!);
    const dO = heads(dy);
    const o = heads(y);
    const [b, h, sLen, t] = [qh.shape[0]!, numHeads, qh.shape[2]!, kh.shape[2]!];
    const rows = backwardBlock ?? Math.max(1, Math.floor(BACKWARD_BLOCK_BYTES / (4 * b * h * t)));
    const khT = transpose(kh);
    const vhT = transpose(vh);
    const dbShape = (n: number) => (bias ? [bias.shape[0]!, bias.shape[1]!, n, t] : []);
    // dK and dV are accumulated transposed ([B,H,D,T]): Qᵢᵀ·dSᵢ multiplies a small transposed
    // operand with the big score block as stored, where dSᵢᵀ·Qᵢ had ORT transpose the block
    // itself — 1.0 vs 1.9 ms per block at the bench's 32² attention.
    const dkShape = [b, h, kh.shape[3]!, t];
    const dvShape = [b, h, vh.shape[3]!, t];
    const dqShape = (n: number) => [b, h, n, qh.shape[3]!];
    const flat = (x: Tensor) => reshape(x, [-1]);
    const size = (shape: readonly number[]) => shape.reduce((x, y) => x * y, 1);
    const kvSize = size(dkShape) + size(dvShape);
    // All results so far travel in one flat tensor, [dK + dV summed | dQ and dBias of each block],
    // that each block reads and rewrites. Executed depth-first from the outputs (ORT's order too),
    // block i then runs only after block i−1 is done, and its score-sized temporaries die with it;
    // separate dK/dV sums and dQ concatenation kept every block's P and dS alive to the end.
    let acc: Tensor | undefined;
    const blocks: number[] = [];
    for (let r0 = 0; r0 < sLen; r0 += rows) {
      const n = Math.min(rows, sLen - r0);
      const part = (x: Tensor) => narrow(x, 2, r0, n);
      const qi = part(qh);
      const dOi = part(dO);
      let s = mul(matmul(qi, khT), scale);
      if (bias) s = add(s, part(bias));
      const p = softmax(s, -1);
      // rowsum(dP ⊙ P) = rowsum(dO ⊙ O): a pass over [B,H,n,D] instead of the scores.
      const d = reduceSum(mul(dOi, part(o)), [-1], true);
      const ds = mul(p, sub(matmul(dOi, vhT), d));
      const dkv = concat([flat(matmul(transpose(qi), ds)), flat(matmul(transpose(dOi), p))], 0);
      const tail = [flat(matmul(ds, kh))];
      if (biasGrad) tail.push(flat(sumTo(ds, dbShape(n))));
      acc = acc
        ? concat(
            [add(narrow(acc, 0, 0, kvSize), dkv), narrow(acc, 0, kvSize, acc.shape[0]! - kvSize), ...tail],
            0,
          )
        : concat([dkv, ...tail], 0);
      blocks.push(n);
    }
    let off = 0;
    const take = (shape: readonly number[]) => {
      const r = reshape(narrow(acc!, 0, off, size(shape)), shape);
      off += size(shape);
      return r;
    };
    const dk = transpose(take(dkShape));
    const dv = transpose(take(dvShape));
    const dqs: Tensor[] = [];
    const dbs: Tensor[] = [];
    for (const n of blocks) {
      dqs.push(take(dqShape(n)));
      if (biasGrad) dbs.push(take(dbShape(n)));
    }
    const dq = mul(dqs.length === 1 ? dqs[0]! : concat(dqs, 2), scale);
    let dbias: Tensor | null = null;
    if (biasGrad) dbias = sumTo(dbs.length === 1 ? dbs[0]! : concat(dbs, 2), bias!.shape);
    return [mergeHeads(dq), mergeHeads(mul(dk, scale)), mergeHeads(dv), dbias];
  },
  // The same attention in primitives: the reference the fused kernel and the VJP are tested against.
  decompose: ([q, k, v, bias], { numHeads, scale }) => {
    const heads = splitHeads(numHeads);
    const qh = heads(q!);
    const kt = permute(heads(k!), [0, 1, 3, 2]);
    let scores = mul(matmul(qh, kt), scale);
    if (bias) scores = add(scores, bias);
    return mergeHeads(attnApply(scores, softmax(scores, -1), heads(v!)));
  },
});

/** [B, L, H·d] → [B, H, L, d]. */
const splitHeads = (numHeads: number) => (t: Tensor) => {
  const [b, l, d] = t.shape as [number, number, number];
  return permute(reshape(t, [b, l, numHeads, d / numHeads]), [0, 2, 1, 3]);
};

/** [B, H, L, d] → [B, L, H·d]. */
function mergeHeads(t: Tensor): Tensor {
  const [b, h, l, d] = t.shape as [number, number, number, number];
  return reshape(permute(t, [0, 2, 1, 3]), [b, l, h * d]);
}

/** Multi-head scaled dot-product attention on [B, L, heads·dim] tensors. */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
  const headDim = q.shape[2]! / options.numHeads;
  const ins = options.bias ? [q, k, v, options.bias] : [q, k, v];
  return q.trace.apply(attentionOp, ins, {
    numHeads: options.numHeads,
    scale: options.scale ?? 1 / Math.sqrt(headDim),
    hasBias: !!options.bias,
    ...(options.backwardBlock ? { backwardBlock: options.backwardBlock } : {}),
  });
}
