import { isFloat } from './dtype.js';
import { ImagenError } from './errors.js';
import { type Tensor, topoSort } from './graph.js';
import { NDArray } from './ndarray.js';
import type { OpDef } from './op.js';
import { add, expand } from './ops/index.js';

/**
 * Reverse-mode differentiation on the traced graph: returns dy/dw for each `wrt` (null where
 * y does not depend on it). The gradient nodes are ordinary traced ops, so forward and
 * backward become one ONNX model. Gradients of a value used several times are summed;
 * integer and bool values get none.
 */
export function grad(y: Tensor, wrt: readonly Tensor[], dy?: Tensor): (Tensor | null)[] {
  const order = topoSort([y]);
  const wrtIds = new Set(wrt.map((t) => t.id));
  // Only nodes on a path from some `wrt` to `y` need gradients.
  const needs = new Set<number>();
  for (const t of order) {
    if (wrtIds.has(t.id) || t.inputs.some((i) => needs.has(i.id))) needs.add(t.id);
  }
  const grads = new Map<number, Tensor>();
  grads.set(y.id, dy ?? expand(y.trace.constant(NDArray.scalar(1).cast(y.dtype)), y.shape));

  for (let k = order.length - 1; k >= 0; k--) {
    const t = order[k]!;
    const g = grads.get(t.id);
    if (!g || t.isLeaf || !needs.has(t.id)) continue;
    const op = t.op as OpDef<unknown>;
    const inputGrads = t.trace.atScope(t.scope ? `${t.scope}.backward` : 'backward', () =>
      vjp(
        op,
        g,
        t,
        t.inputs.map((i) => needs.has(i.id) && isFloat(i.dtype)),
      ),
    );
    t.inputs.forEach((inp, i) => {
      const gi = inputGrads[i];
      if (!gi || !needs.has(inp.id) || !isFloat(inp.dtype)) return;
      const prev = grads.get(inp.id);
      grads.set(inp.id, prev ? add(prev, gi) : gi);
    });
  }
  return wrt.map((w) => grads.get(w.id) ?? null);
}

function vjp(op: OpDef<unknown>, g: Tensor, t: Tensor, needed: readonly boolean[]): (Tensor | null)[] {
  try {
    if (op.vjp) return op.vjp(g, t, t.inputs, t.attrs, needed);
    if (op.decompose) {
      // A composite left fused in the forward: differentiate its decomposition instead.
      const d = op.decompose(t.inputs, t.attrs);
      return grad(d, t.inputs, g);
    }
  } catch (e) {
    if (e instanceof ImagenError) throw e;
    throw new ImagenError(
      'NO_GRADIENT',
      `gradient of ${op.name}${t.scope ? ` in ${t.scope}` : ''}: ${(e as Error).message}`,
    );
  }
  throw new ImagenError('NO_GRADIENT', `${op.name}${t.scope ? ` in ${t.scope}` : ''} has no gradient rule`);
}
