/**
 * Central finite differences and error metrics for gradient tests (all float64).
 */
import { NDArray } from '../../src/engine/ndarray.js';

/**
 * Gradient of the scalar function `f` with respect to every element of every input, by central
 * differences: ∂f/∂xᵢ ≈ (f(x + eps·eᵢ) − f(x − eps·eᵢ)) / (2·eps).
 *
 * `f` receives float64 copies of `inputs` (the caller's arrays are never modified) and must not
 * keep or mutate them. Error is O(eps²·f''') plus O(ulp(f)/eps) from cancellation; eps = 1e-4
 * suits O(1) functions evaluated in float64. Kinks (relu at 0, max ties) must be avoided by the
 * caller.
 */
export function finiteDifferenceGrad(
  f: (xs: Float64Array[]) => number,
  inputs: readonly ArrayLike<number>[],
  eps = 1e-4,
): Float64Array[] {
  if (!(eps > 0)) throw new Error(`finiteDifferenceGrad: eps must be > 0, got ${eps}`);
  const xs = inputs.map((x) => Float64Array.from(x));
  const grads = xs.map((x) => new Float64Array(x.length));
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    const g = grads[i]!;
    for (let j = 0; j < x.length; j++) {
      const orig = x[j]!;
      x[j] = orig + eps;
      const fp = f(xs);
      x[j] = orig - eps;
      const fm = f(xs);
      x[j] = orig;
      g[j] = (fp - fm) / (2 * eps);
    }
  }
  return grads;
}

function values(a: ArrayLike<number> | NDArray): ArrayLike<number> {
  return a instanceof NDArray ? a.toArray() : a;
}

/** max |a − b| (NaN if any element is NaN on either side or the lengths differ). */
export function maxAbsErr(a: ArrayLike<number> | NDArray, b: ArrayLike<number> | NDArray): number {
  const x = values(a);
  const y = values(b);
  if (x.length !== y.length) throw new Error(`maxAbsErr: lengths differ (${x.length} vs ${y.length})`);
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    if (Number.isNaN(d)) {
      // equal infinities and NaN-vs-NaN count as agreement; anything else is a mismatch
      if (x[i] === y[i] || (Number.isNaN(x[i]!) && Number.isNaN(y[i]!))) continue;
      return Number.NaN;
    }
    if (d > m) m = d;
  }
  return m;
}

/** max |a − b| / max(1e-12, max |b|): error relative to the scale of the reference `b`. */
export function relErr(a: ArrayLike<number> | NDArray, b: ArrayLike<number> | NDArray): number {
  const y = values(b);
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    const v = Math.abs(y[i]!);
    if (Number.isFinite(v) && v > scale) scale = v;
  }
  return maxAbsErr(a, y) / Math.max(1e-12, scale);
}
