import type { Tensor } from '../graph.js';
import { defineOp } from '../op.js';
import { add, sumTo } from './elementwise.js';
import { transpose } from './reduce_shape.js';
import { broadcastShapes, sameDtype } from './util.js';

export const matmulOp = defineOp({
  name: 'matmul',
  infer: ([a, b]) => {
    if (a!.rank < 2 || b!.rank < 2) throw new Error('matmul needs rank ≥ 2 operands');
    const k1 = a!.shape[a!.rank - 1]!;
    const k2 = b!.shape[b!.rank - 2]!;
    if (k1 !== k2) throw new Error(`inner dimensions differ (${k1} vs ${k2})`);
    const batch = broadcastShapes(a!.shape.slice(0, -2), b!.shape.slice(0, -2));
    return {
      shape: [...batch, a!.shape[a!.rank - 2]!, b!.shape[b!.rank - 1]!],
      dtype: sameDtype('matmul', [a!, b!]),
    };
  },
  emit: (e, [a, b]) => e.node('MatMul', [a!, b!]),
  // dA = dY·Bᵀ, dB = Aᵀ·dY, each summed over broadcast batch dims.
  vjp: (dy, _y, [a, b]) => [
    sumTo(matmul(dy, transpose(b!)), a!.shape),
    sumTo(matmul(transpose(a!), dy), b!.shape),
  ],
});

/** Batched matrix product with NumPy broadcasting of the leading dims (torch.matmul for rank ≥ 2). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.trace.apply(matmulOp, [a, b], {});
}

/** y = x·Wᵀ + b with W [out, in] (torch.nn.functional.linear). */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const y = matmul(x, transpose(w));
  return b ? add(y, b) : y;
}
