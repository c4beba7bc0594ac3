import { NDArray, sizeOf } from '../../src/engine/ndarray.js';

/** Small deterministic PRNG for test data (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
