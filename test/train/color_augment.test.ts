import { describe, expect, it } from 'vitest';
import { Generator } from '../../src/diffusion/noise.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { colorAugment, hueRotationMatrix } from '../../src/train/color_augment.js';

const apply = (m: number[], v: number[]) =>
  [0, 1, 2].map((r) => m[r * 3]! * v[0]! + m[r * 3 + 1]! * v[1]! + m[r * 3 + 2]! * v[2]!);

/** A [n, 3, s, s] batch where image i is the constant colour `colours[i]`. */
function constantBatch(colours: number[][], s: number): NDArray {
  const plane = s * s;
  const d = new Float32Array(colours.length * 3 * plane);
  for (const [i, c] of colours.entries())
    for (const [ch, v] of c.entries()) d.fill(v, (i * 3 + ch) * plane, (i * 3 + ch + 1) * plane);
  return new NDArray('float32', [colours.length, 3, s, s], d);
}

describe('hue rotation', () => {
  it('is a rotation about the grey axis: grey stays, norms stay, 120° cycles the channels', () => {
    for (const a of [0.3, 1.7, 4]) {
      const m = hueRotationMatrix(a);
      const g = apply(m, [0.4, 0.4, 0.4]);
      for (const v of g) expect(v).toBeCloseTo(0.4, 6);
      const x = [0.9, -0.2, 0.1];
      const y = apply(m, x);
      expect(Math.hypot(...y)).toBeCloseTo(Math.hypot(...x), 6);
    }
    // 2π/3 about (1,1,1) sends red to green (the cyclic permutation R → G → B).
    const y = apply(hueRotationMatrix((2 * Math.PI) / 3), [1, 0, 0]);
    expect(y[0]).toBeCloseTo(0, 6);
    expect(y[1]).toBeCloseTo(1, 6);
    expect(y[2]).toBeCloseTo(0, 6);
  });
});

describe('colorAugment', () => {
  const batch = () => ({
    images: constantBatch(
      [
        [0.8, -0.6, -0.6],
        [0, 0.5, -0.5],
        [-0.9, -0.9, 0.7],
      ],
      4,
    ),
    lowRes: constantBatch(
      [
        [0.8, -0.6, -0.6],
        [0, 0.5, -0.5],
        [-0.9, -0.9, 0.7],
      ],
      2,
    ),
    captions: ['a red square', 'a green circle', 'a blue star'],
  });

  it('with probability 0 returns the batch and draws nothing', () => {
    const g = new Generator(5);
    const b = batch();
    expect(colorAugment(b, 0, g)).toBe(b);
    expect(g.uniform()).toBe(new Generator(5).uniform());
  });

  it('with probability 1 rotates image and low-res alike, within [−1, 1], and blanks every caption', () => {
    const b = batch();
    const out = colorAugment(b, 1, new Generator(3));
    expect(out.captions).toEqual(['', '', '']);
    const hi = out.images.data as Float32Array;
    const lo = out.lowRes!.data as Float32Array;
    let changed = 0;
    for (let i = 0; i < 3; i++)
      for (let ch = 0; ch < 3; ch++) {
        const h = hi[(i * 3 + ch) * 16]!;
        expect(lo[(i * 3 + ch) * 4]).toBeCloseTo(h, 6); // the same rotation for both
        expect(Math.abs(h)).toBeLessThanOrEqual(1);
        if (Math.abs(h - (b.images.data as Float32Array)[(i * 3 + ch) * 16]!) > 1e-3) changed++;
      }
    expect(changed).toBeGreaterThan(3);
    // The input is left untouched.
    expect((b.images.data as Float32Array)[0]).toBeCloseTo(0.8, 6);
  });

  it('is deterministic per generator state and mixes at intermediate probability', () => {
    const a = colorAugment(batch(), 0.5, new Generator(11));
    const b = colorAugment(batch(), 0.5, new Generator(11));
    expect(a.captions).toEqual(b.captions);
    expect(a.images.data).toEqual(b.images.data);
    let blanked = 0;
    for (let s = 0; s < 40; s++)
      blanked += colorAugment(batch(), 0.5, new Generator(s)).captions.filter((c) => c === '').length;
    expect(blanked).toBeGreaterThan(30);
    expect(blanked).toBeLessThan(90);
  });
});
