import type { DType } from '../dtype.js';
import { isFloat } from '../dtype.js';
import type { Tensor } from '../graph.js';
import { shapeStr } from '../ndarray.js';

export type TensorLike = Tensor | number;

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast (dim ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function sameDtype(op: string, ts: readonly Tensor[]): DType {
  const d = ts[0]!.dtype;
  for (const t of ts) {
    if (t.dtype !== d)
      throw new Error(`${op} needs equal dtypes, got ${ts.map((x) => x.dtype).join(' and ')}`);
  }
  return d;
}

export function requireFloat(t: Tensor, what: string): void {
  if (!isFloat(t.dtype)) throw new Error(`${what} needs a float tensor, got ${t.dtype}`);
}

export function prod(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
