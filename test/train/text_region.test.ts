import { describe, expect, it } from 'vitest';
import { ImagenError } from '../../src/engine/errors.js';
import { cropTextBox, parseTextBox, textRegionWeights } from '../../src/train/text_region.js';

describe('textRegionWeights', () => {
  it('weighs covered pixels by their coverage, 1 elsewhere, per example', () => {
    // A 4×4 image; the box covers columns 1–2 fully and rows 1.5–3 (row 1 half, row 2 fully).
    const w = textRegionWeights([[[0.25, 0.375, 0.75, 0.75]], []], 4, 4, 5);
    expect(w.shape).toEqual([2, 1, 4, 4]);
    const a = Array.from(w.data as Float32Array);
    const first = a.slice(0, 16);
    expect(first).toEqual([1, 1, 1, 1, 1, 3, 3, 1, 1, 5, 5, 1, 1, 1, 1, 1]);
    expect(a.slice(16)).toEqual(new Array(16).fill(1));
  });

  it('takes the larger coverage where boxes overlap, and a box’s total weight does not depend on the resolution', () => {
    const boxes = [[[0.1, 0.2, 0.63, 0.47] as const, [0.5, 0.3, 0.9, 0.4] as const]];
    const sumExtra = (n: number) =>
      Array.from(
        textRegionWeights(
          boxes.slice(0, 1).map((l) => l.slice(0, 1)),
          n,
          n,
          3,
        ).data as Float32Array,
      ).reduce((s, v) => s + (v - 1), 0) /
      (n * n);
    // Extra weight = (weight − 1) × box area, at any resolution.
    for (const n of [8, 32, 64]) expect(sumExtra(n)).toBeCloseTo(2 * 0.53 * 0.27, 5);
    const both = textRegionWeights(boxes, 10, 10, 3).data as Float32Array;
    const one = textRegionWeights([[boxes[0]![0]]], 10, 10, 3).data as Float32Array;
    // Pixel (row 3, col 5) is fully inside both boxes: the weight is 3, not 5.
    expect(both[3 * 10 + 5]).toBeCloseTo(3, 6);
    expect(one[3 * 10 + 5]).toBeCloseTo(3, 6);
    expect(both[3 * 10 + 8]).toBeCloseTo(3, 6); // only the second box
    expect(one[3 * 10 + 8]).toBe(1);
  });
});

describe('text boxes from files', () => {
  it('accepts [x0, y0, x1, y1] in [0, 1] and names the row of a bad one', () => {
    expect(parseTextBox([0.1, 0.2, 0.3, 0.4], 'm:1')).toEqual([0.1, 0.2, 0.3, 0.4]);
    for (const bad of [[0.1, 0.2, 0.3], [0, 0, 1.5, 1], [0.5, 0, 0.4, 1], 'box', [0, 0, 1, Number.NaN]]) {
      expect(() => parseTextBox(bad, 'meta.jsonl:7')).toThrow(ImagenError);
      expect(() => parseTextBox(bad, 'meta.jsonl:7')).toThrow(/meta\.jsonl:7/);
    }
  });

  it('cropTextBox maps a box into a crop’s coordinates and clips it', () => {
    // A 64-pixel image cropped at [y 16, x 32] to 32 pixels.
    const b = cropTextBox([0.25, 0.25, 0.75, 0.5], 64, 16, 32, 32);
    expect(b[0]).toBe(0); // x 16 px is left of the crop
    expect(b[1]).toBeCloseTo(0, 9); // y 16 px is the crop's top
    expect(b[2]).toBeCloseTo(0.5, 9); // x 48 px
    expect(b[3]).toBeCloseTo(0.5, 9); // y 32 px
  });
});
