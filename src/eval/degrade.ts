import { Rng } from '../data/synth/rng.js';
import type { RgbImage } from '../io/image.js';

/**
 * Degradations of ground-truth renders that imitate a diffusion model's output (soft edges,
 * grain), to measure how much slack the checker has before real generated images reach it.
 */
export function gaussianBlur(img: RgbImage, sigma: number): RgbImage {
  if (sigma <= 0) return img;
  const r = Math.ceil(3 * sigma);
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const ks = k.reduce((a, b) => a + b, 0);
  const { width: W, height: H, data } = img;
  const tmp = new Float32Array(W * H * 3);
  const out = new Uint8Array(W * H * 3);
  const clampIdx = (v: number, n: number) => Math.min(n - 1, Math.max(0, v));
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let i = -r; i <= r; i++) s += k[i + r]! * data[(y * W + clampIdx(x + i, W)) * 3 + c]!;
        tmp[(y * W + x) * 3 + c] = s / ks;
      }
    }
  }
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let i = -r; i <= r; i++) s += k[i + r]! * tmp[(clampIdx(y + i, H) * W + x) * 3 + c]!;
        out[(y * W + x) * 3 + c] = Math.round(s / ks);
      }
    }
  }
  return { width: W, height: H, data: out };
}

/** Add uniform per-channel noise of the given amplitude (8-bit levels), seeded. */
export function addNoise(img: RgbImage, amplitude: number, seed: number): RgbImage {
  if (amplitude <= 0) return img;
  const rng = new Rng(seed);
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.min(255, Math.max(0, Math.round(img.data[i]! + rng.uniform(-amplitude, amplitude))));
  }
  return { width: img.width, height: img.height, data: out };
}
