import { ImagenError } from '../engine/errors.js';
import { NDArray } from '../engine/ndarray.js';

/** An 8-bit RGB image, row-major, interleaved (what image codecs produce). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Pixels [0, 255] → model space [−1, 1], NCHW (IF's `v / 127.5 − 1`). */
export function imagesToTensor(images: readonly RgbImage[]): NDArray {
  if (images.length === 0) throw new ImagenError('BAD_INPUT', 'no images');
  const { width: w, height: h } = images[0]!;
  const out = new Float32Array(images.length * 3 * h * w);
  images.forEach((img, n) => {
    if (img.width !== w || img.height !== h) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `images differ in size: ${img.width}×${img.height} vs ${w}×${h}`,
      );
    }
    const base = n * 3 * h * w;
    for (let p = 0; p < h * w; p++) {
      for (let c = 0; c < 3; c++) out[base + c * h * w + p] = img.data[p * 3 + c]! / 127.5 - 1;
    }
  });
  return new NDArray('float32', [images.length, 3, h, w], out);
}

/** Model space [−1, 1] NCHW → 8-bit RGB images (clamped, rounded as IF's `(x/2 + 0.5)·255`). */
export function tensorToImages(x: NDArray): RgbImage[] {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (x.shape.length !== 4 || c !== 3) {
    throw new ImagenError('SHAPE_MISMATCH', `expected [N, 3, H, W] images, got [${x.shape.join(', ')}]`);
  }
  const d = x.toFloat32().data as Float32Array;
  const images: RgbImage[] = [];
  for (let i = 0; i < n; i++) {
    const data = new Uint8Array(h * w * 3);
    const base = i * 3 * h * w;
    for (let p = 0; p < h * w; p++) {
      for (let ch = 0; ch < 3; ch++) {
        const v = (d[base + ch * h * w + p]! / 2 + 0.5) * 255;
        data[p * 3 + ch] = Math.min(255, Math.max(0, Math.round(v)));
      }
    }
    images.push({ width: w, height: h, data });
  }
  return images;
}
