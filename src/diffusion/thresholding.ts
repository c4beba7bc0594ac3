import { ImagenError } from '../engine/errors.js';
import type { SchedulerConfig } from './schedule.js';

/**
 * What happens to the predicted x̂0 before the posterior mean is formed. Parsed once from the
 * scheduler config (or a CLI flag); samplers only see this union.
 */
export type Thresholding =
  | { kind: 'dynamic'; ratio: number; maxValue: number }
  | { kind: 'static'; range: number }
  | { kind: 'none' };

export const THRESHOLDING_KINDS = ['dynamic', 'static', 'none'] as const;

const f = Math.fround;

/** diffusers' rule: `thresholding` wins over `clip_sample`; neither → none. */
export function thresholdingFromConfig(
  config: Pick<
    SchedulerConfig,
    'thresholding' | 'dynamicThresholdingRatio' | 'sampleMaxValue' | 'clipSample' | 'clipSampleRange'
  >,
): Thresholding {
  if (config.thresholding) {
    return { kind: 'dynamic', ratio: config.dynamicThresholdingRatio, maxValue: config.sampleMaxValue };
  }
  if (config.clipSample) return { kind: 'static', range: config.clipSampleRange };
  return { kind: 'none' };
}

/** A CLI choice ('dynamic' | 'static' | 'none'), taking ratio/max/range from the scheduler config. */
export function parseThresholding(
  kind: string,
  config: Pick<SchedulerConfig, 'dynamicThresholdingRatio' | 'sampleMaxValue' | 'clipSampleRange'>,
): Thresholding {
  switch (kind) {
    case 'dynamic':
      return { kind, ratio: config.dynamicThresholdingRatio, maxValue: config.sampleMaxValue };
    case 'static':
      return { kind, range: config.clipSampleRange };
    case 'none':
      return { kind };
  }
  throw new ImagenError(
    'CONFIG_INVALID',
    `unknown thresholding "${kind}"; expected one of ${THRESHOLDING_KINDS.join(', ')}`,
  );
}

/** Apply a thresholding choice to x̂0 laid out as `batch` equal rows; returns a new array. */
export function applyThresholding(x0: Float32Array, batch: number, th: Thresholding): Float32Array {
  switch (th.kind) {
    case 'dynamic':
      return dynamicThreshold(x0, batch, th.ratio, th.maxValue);
    case 'static':
      return staticThreshold(x0, th.range);
    case 'none':
      return x0.slice();
  }
}

/** Static clipping of x̂0 to [−range, range] (DDPM's `clip_sample`). */
export function staticThreshold(x0: Float32Array, range: number): Float32Array {
  const r = f(range);
  return x0.map((v) => clamp(v, -r, r));
}

/**
 * Imagen (Saharia et al. 2022) §2.3 dynamic thresholding, exactly as diffusers' `_threshold_sample`
 * (float32, per batch element over all C·H·W values).
 *
 * "Dynamic thresholding: At each sampling step we set s to a certain percentile absolute pixel value
 * in x̂t0 (the prediction of x0 at timestep t), and if s > 1, then we threshold x̂t0 to the range
 * [−s, s] and then divide by s."
 */
export function dynamicThreshold(
  x0: Float32Array,
  batch: number,
  ratio: number,
  maxValue: number,
): Float32Array {
  if (batch <= 0 || x0.length % batch !== 0) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `dynamicThreshold: ${x0.length} values do not split into ${batch} rows`,
    );
  }
  const n = x0.length / batch;
  const out = new Float32Array(x0.length);
  const abs = new Float32Array(n);
  for (let b = 0; b < batch; b++) {
    const row = x0.subarray(b * n, (b + 1) * n);
    for (let i = 0; i < n; i++) abs[i] = Math.abs(row[i]!); // "a certain percentile absolute pixel value"
    // "if s > 1, then we threshold": clamping s to [1, max] makes s ≤ 1 plain clipping to [−1, 1].
    const s = Math.min(Math.max(quantile(abs, ratio), 1), f(maxValue));
    // "we threshold x̂t0 to the range [−s, s] and then divide by s"
    for (let i = 0; i < n; i++) out[b * n + i] = f(clamp(row[i]!, -s, s) / s);
  }
  return out;
}

/**
 * `torch.quantile(x, q)` for float32 data (linear interpolation): rank r = float32(q)·(n−1) in
 * float32, result = lerp(v[⌊r⌋], v[⌈r⌉], r − ⌊r⌋) over the ascending order statistics v.
 * NaN if any value is NaN. Uses quickselect (expected O(n)) on `values`, which it reorders.
 */
export function quantile(values: Float32Array, q: number): number {
  const n = values.length;
  if (n === 0) throw new ImagenError('BAD_INPUT', 'quantile of an empty array');
  if (!(q >= 0 && q <= 1)) throw new ImagenError('BAD_INPUT', `quantile q=${q} must be in [0, 1]`);
  for (let i = 0; i < n; i++) if (Number.isNaN(values[i])) return Number.NaN; // torch propagates NaN
  const r = f(f(q) * (n - 1));
  const lo = Math.floor(r);
  const w = f(r - lo);
  const vLo = select(values, lo);
  if (w === 0) return vLo;
  // After selecting index lo, values[lo+1..] hold the larger elements: their minimum is v[lo+1].
  let vHi = Number.POSITIVE_INFINITY;
  for (let i = lo + 1; i < n; i++) vHi = Math.min(vHi, values[i]!);
  return lerp(vLo, vHi, w);
}

/** torch's float32 `lerp`: start + w·(end − start) for |w| < 0.5, else end − (end − start)·(1 − w). */
export function lerp(start: number, end: number, w: number): number {
  const d = f(end - start);
  return Math.abs(w) < 0.5 ? f(start + f(w * d)) : f(end - f(d * f(1 - w)));
}

/** k-th smallest element (0-based); partially sorts `a` in place (Hoare-style quickselect). */
export function select(a: Float32Array, k: number): number {
  let left = 0;
  let right = a.length - 1;
  while (right > left) {
    // median-of-three pivot keeps sorted/constant inputs linear in practice
    const mid = (left + right) >>> 1;
    const pivot = median3(a[left]!, a[mid]!, a[right]!);
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const tmp = a[i]!;
        a[i] = a[j]!;
        a[j] = tmp;
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return a[k]!;
  }
  return a[k]!;
}

function median3(a: number, b: number, c: number): number {
  return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(Math.max(v, lo), hi);
}
