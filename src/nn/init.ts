import { NDArray } from '../engine/ndarray.js';
import type { Parameter } from '../engine/parameter.js';

/** mulberry32: tiny, fast, deterministic on every platform (init needs no crypto quality). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Initialise parameters from their specs; each parameter's stream depends only on (seed, name). */
export function initialize(params: readonly Parameter[], seed: number): void {
  for (const p of params) {
    if (!p.init) continue;
    let h = seed >>> 0;
    for (let i = 0; i < p.name.length; i++) h = Math.imul(h ^ p.name.charCodeAt(i), 0x01000193) >>> 0;
    const rand = mulberry32(h);
    const d = new Float32Array(p.size);
    const init = p.init;
    if (init.kind === 'constant') d.fill(init.value);
    else if (init.kind === 'uniform') for (let i = 0; i < d.length; i++) d[i] = (rand() * 2 - 1) * init.bound;
    else {
      for (let i = 0; i < d.length; i += 2) {
        const u = Math.max(rand(), 1e-12);
        const v = rand();
        const r = Math.sqrt(-2 * Math.log(u)) * init.std;
        d[i] = r * Math.cos(2 * Math.PI * v);
        if (i + 1 < d.length) d[i + 1] = r * Math.sin(2 * Math.PI * v);
      }
    }
    p.set(new NDArray('float32', [...p.shape], d));
  }
}

/** torch's default for Linear/Conv weights and biases: U(−1/√fan_in, 1/√fan_in). */
export function fanInUniform(fanIn: number) {
  return { kind: 'uniform' as const, bound: 1 / Math.sqrt(fanIn) };
}
