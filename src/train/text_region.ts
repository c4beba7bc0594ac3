import { ImagenError } from '../engine/errors.js';
import { NDArray } from '../engine/ndarray.js';

/** Where a word is written in an image, as fractions of its width and height: [x0, y0, x1, y1]. */
export type TextBox = readonly [number, number, number, number];

/** Checks one box read from a file; `where` names it in the error. */
export function parseTextBox(v: unknown, where: string): TextBox {
  if (
    !Array.isArray(v) ||
    v.length !== 4 ||
    !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0 && x <= 1)
  )
    throw new ImagenError('FILE_INVALID', `${where}: a text box is [x0, y0, x1, y1], each in [0, 1]`);
  const [x0, y0, x1, y1] = v as number[];
  if (!(x0! <= x1! && y0! <= y1!))
    throw new ImagenError('FILE_INVALID', `${where}: a text box needs x0 ≤ x1 and y0 ≤ y1`);
  return [x0!, y0!, x1!, y1!];
}

/** The box as seen in a crop of `crop` pixels at [y, x] of an image of `size` pixels. */
export function cropTextBox(b: TextBox, size: number, y: number, x: number, crop: number): TextBox {
  const f = (v: number, o: number) => Math.min(1, Math.max(0, (v * size - o) / crop));
  return [f(b[0], x), f(b[1], y), f(b[2], x), f(b[3], y)];
}

/** Length of [a0, a1] ∩ [b0, b1]. */
const overlap = (a0: number, a1: number, b0: number, b1: number) =>
  Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));

/**
 * Per-pixel loss weights [B, 1, H, W]: 1 outside every text box, `weight` inside, and in between
 * in proportion to how much of a pixel a box covers, so a box's weight does not jump with the
 * resolution it is trained at. Where boxes overlap the larger coverage counts.
 *
 * Why: a word on a 32×32 sign is a few dozen pixels of strokes, a small share of an MSE summed
 * over the image, and the letters are what a sign prompt is judged on.
 */
export function textRegionWeights(
  boxes: readonly (readonly TextBox[])[],
  height: number,
  width: number,
  weight: number,
): NDArray {
  const out = new Float32Array(boxes.length * height * width).fill(1);
  boxes.forEach((list, i) => {
    for (const [x0, y0, x1, y1] of list) {
      for (let y = 0; y < height; y++) {
        const cy = overlap(y / height, (y + 1) / height, y0, y1) * height;
        if (cy === 0) continue;
        for (let x = 0; x < width; x++) {
          const c = cy * overlap(x / width, (x + 1) / width, x0, x1) * width;
          const p = (i * height + y) * width + x;
          out[p] = Math.max(out[p]!, 1 + (weight - 1) * c);
        }
      }
    }
  });
  return NDArray.f32([boxes.length, 1, height, width], out);
}
