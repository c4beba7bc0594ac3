/**
 * Hue rotation of training pairs, for super-resolution stages. A stage II learns only the colours of
 * its training set; stage I then hands it off-palette backgrounds (a mauve or slate it never saw) and
 * it repaints them in colours it knows, with blotches. Rotating the hue of the target and of its
 * low-res input alike teaches it to carry any colour through from the low-res image. The caption
 * names the original colours, so an augmented example is trained unconditionally (caption "").
 * No Node imports.
 */
import type { Generator } from '../diffusion/noise.js';
import { NDArray } from '../engine/ndarray.js';

/** Rotation by `angle` (radians) about the grey axis (1, 1, 1)/√3 of RGB in [−1, 1] (grey = 0). */
export function hueRotationMatrix(angle: number): number[] {
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const k = 1 / Math.sqrt(3);
  const a = (1 - c) / 3; // (1 − cos θ)·k_i·k_j with every k_i = 1/√3
  // Rodrigues: R = cos θ·I + sin θ·[k]× + (1 − cos θ)·k kᵀ, row-major
  return [c + a, a - s * k, a + s * k, a + s * k, c + a, a - s * k, a - s * k, a + s * k, c + a];
}

/** Apply a 3×3 colour matrix to image `i` of a [N, 3, H, W] float32 batch, clipping to [−1, 1]. */
function rotateImage(src: Float32Array, dst: Float32Array, i: number, plane: number, m: number[]): void {
  const o = i * 3 * plane;
  for (let p = 0; p < plane; p++) {
    const r = src[o + p]!;
    const g = src[o + plane + p]!;
    const b = src[o + 2 * plane + p]!;
    for (let ch = 0; ch < 3; ch++) {
      const v = m[ch * 3]! * r + m[ch * 3 + 1]! * g + m[ch * 3 + 2]! * b;
      dst[o + ch * plane + p] = Math.max(-1, Math.min(1, v));
    }
  }
}

export interface ColorAugmentable {
  images: NDArray;
  lowRes?: NDArray;
  captions: string[];
}

/**
 * With probability `prob` per example, rotate the hue of its image and low-res image by one
 * uniform angle and blank its caption. Draws two numbers from `g` per example (always, so the
 * draw count does not depend on the outcomes); draws nothing when `prob` is 0.
 */
export function colorAugment<B extends ColorAugmentable>(batch: B, prob: number, g: Generator): B {
  if (!(prob > 0)) return batch;
  const n = batch.images.shape[0]!;
  const rotations: (number[] | undefined)[] = [];
  for (let i = 0; i < n; i++) {
    const hit = g.uniform() < prob;
    const angle = g.uniform() * 2 * Math.PI;
    rotations.push(hit ? hueRotationMatrix(angle) : undefined);
  }
  if (!rotations.some(Boolean)) return batch;
  const rotate = (x: NDArray): NDArray => {
    const [, c, h, w] = x.shape as [number, number, number, number];
    if (c !== 3) return x;
    const src = x.data as Float32Array;
    const dst = new Float32Array(src);
    rotations.forEach((m, i) => {
      if (m) rotateImage(src, dst, i, h * w, m);
    });
    return new NDArray('float32', x.shape, dst);
  };
  return {
    ...batch,
    images: rotate(batch.images),
    lowRes: batch.lowRes && rotate(batch.lowRes),
    captions: batch.captions.map((c, i) => (rotations[i] ? '' : c)),
  };
}
