import { type Tensor, topoSort } from './graph.js';
import type { OpDef } from './op.js';

/**
 * Multiply–add FLOPs (×2) of the matrix work in a traced graph: MatMul, Conv (and its
 * transpose), fused attention. Elementwise ops are ignored: they are memory-bound and
 * negligible next to the GEMMs, which is what "achieved GFLOP/s" is meant to compare.
 */
export function countFlops(outputs: readonly Tensor[]): number {
  let total = 0;
  for (const t of topoSort(outputs)) {
    if (t.isLeaf) continue;
    const name = (t.op as OpDef<unknown>).name;
    const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
    if (name === 'matmul') {
      const a = t.inputs[0]!;
      total += 2 * prod(t.shape) * a.shape[a.rank - 1]!;
    } else if (name === 'conv2d') {
      const w = t.inputs[1]!;
      total += 2 * prod(t.shape) * prod(w.shape.slice(1));
    } else if (name === 'convTranspose2d') {
      const dy = t.inputs[0]!;
      const w = t.inputs[1]!;
      total += 2 * prod(dy.shape) * prod(w.shape.slice(1));
    } else if (name === 'attention') {
      const [q, k, v] = t.inputs as [Tensor, Tensor, Tensor];
      const [b, s, dq] = q.shape as [number, number, number];
      const tk = k.shape[1]!;
      total += 2 * b * s * tk * dq + 2 * b * s * tk * v.shape[2]!;
    }
  }
  return total;
}
