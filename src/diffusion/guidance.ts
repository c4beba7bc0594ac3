import { ImagenError } from '../engine/errors.js';
import { NDArray, shapeStr } from '../engine/ndarray.js';

const f = Math.fround;

/**
 * Classifier-free guidance (Ho & Salimans 2022; Imagen §2.2, eq. 2):
 *   ε̃ = ε(z, ∅) + w · (ε(z, c) − ε(z, ∅))
 * `out` is the model output for the batch [uncond; cond] (2B rows). With learned variance the
 * output has 2C channels and guidance applies to the first C (the noise) only; the variance
 * channels are taken from the conditional half, as the IF pipelines do. The arithmetic is
 * float32 in torch's order, so results match diffusers bit for bit.
 */
export function classifierFreeGuidance(out: NDArray, guidanceScale: number, sampleChannels: number): NDArray {
  const [b2, c2, ...rest] = out.shape as number[];
  if (b2 === undefined || c2 === undefined || b2 % 2) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `guidance needs an even batch [uncond; cond], got ${shapeStr(out.shape)}`,
    );
  }
  const b = b2 / 2;
  const inner = rest.reduce((s, d) => s * d, 1);
  const guided = sampleChannels * inner;
  const row = c2 * inner;
  const src = out.data as Float32Array;
  const dst = new Float32Array(b * row);
  const w = f(guidanceScale);
  for (let i = 0; i < b; i++) {
    const u = i * row;
    const c = (b + i) * row;
    const o = i * row;
    for (let k = 0; k < guided; k++) {
      const eu = src[u + k]!;
      dst[o + k] = f(eu + f(w * f(src[c + k]! - eu)));
    }
    dst.set(src.subarray(c + guided, c + row), o + guided);
  }
  return new NDArray('float32', [b, c2, ...rest], dst);
}

/** [x; x] along the batch axis: the CFG batch reuses the same sample (or labels) for both halves. */
export function duplicateBatch(x: NDArray): NDArray {
  return repeatBatch(x, 2);
}

/** `times` copies of x one after another along the batch axis (any dtype: class labels are int64). */
export function repeatBatch(x: NDArray, times: number): NDArray {
  if (times === 1) return x;
  const d = x.data;
  const out = new (d.constructor as new (n: number) => typeof d)(d.length * times);
  for (let k = 0; k < times; k++) (out as Float32Array).set(d as Float32Array, k * d.length);
  return new NDArray(x.dtype, [x.shape[0]! * times, ...x.shape.slice(1)], out);
}

/**
 * Each row repeated `times` in place (a, a, b, b): one prompt's embeddings for each of its
 * images, as diffusers' `repeat_interleave(num_images_per_prompt)`.
 */
export function repeatRows(x: NDArray, times: number): NDArray {
  if (times === 1) return x;
  const [b, ...rest] = x.shape as number[];
  const per = rest.reduce((p, q) => p * q, 1);
  const d = x.data as Float32Array;
  const out = new (d.constructor as new (n: number) => Float32Array)(d.length * times);
  for (let i = 0; i < b!; i++)
    for (let r = 0; r < times; r++) out.set(d.subarray(i * per, (i + 1) * per), (i * times + r) * per);
  return new NDArray(x.dtype, [b! * times, ...rest], out);
}

/** Concatenate float32 NDArrays along the batch axis. */
export function concatBatch(xs: readonly NDArray[]): NDArray {
  const total = xs.reduce((s, x) => s + x.size, 0);
  const out = new Float32Array(total);
  let off = 0;
  for (const x of xs) {
    out.set(x.data as Float32Array, off);
    off += x.size;
  }
  return new NDArray('float32', [xs.reduce((s, x) => s + x.shape[0]!, 0), ...xs[0]!.shape.slice(1)], out);
}
