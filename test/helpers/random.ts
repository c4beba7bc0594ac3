import { NDArray, sizeOf } from '../../src/engine/ndarray.js';
import { mulberry32 } from '../../src/nn/init.js';
import type { Module } from '../../src/nn/module.js';

/** Small deterministic PRNG for test data (the same mulberry32 the model initialiser uses). */
export const rng = mulberry32;

/** Uniform values in [lo, hi). */
export function randF32(r: () => number, shape: readonly number[], lo = -1, hi = 1): NDArray {
  const n = sizeOf(shape);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = lo + (hi - lo) * r();
  return new NDArray('float32', [...shape], d);
}

/** Values bounded away from zero (|x| ∈ [0.1, 1)), so kinks (relu, abs) stay out of finite differences. */
export function randAwayFromZero(r: () => number, shape: readonly number[]): NDArray {
  const a = randF32(r, shape, 0.1, 1);
  const d = a.data as Float32Array;
  for (let i = 0; i < d.length; i++) if (r() < 0.5) d[i] = -d[i]!;
  return a;
}

/** Distinct values (a shuffled ramp plus jitter): no ties for max/min. */
export function randDistinct(r: () => number, shape: readonly number[]): NDArray {
  const n = sizeOf(shape);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return NDArray.f32(
    shape,
    idx.map((v) => (v - n / 2) / n + (0.1 * r()) / n),
  );
}

/**
 * Initialised weights put zeros/ones in norms and biases; a trained model has neither, and a
 * UNet whose output ignores its inputs would make determinism and masking tests vacuous. So every
 * parameter gets a small deterministic perturbation.
 */
export function perturb(m: Module, seed: number, scale = 0.05): void {
  const r = rng(seed);
  for (const p of m.parameters()) {
    const v = p.value!.data as Float32Array;
    const d = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) d[i] = v[i]! + scale * (r() * 2 - 1);
    p.set(new NDArray('float32', [...p.shape], d));
  }
}
