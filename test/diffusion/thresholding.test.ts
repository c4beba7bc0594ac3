import { describe, expect, it } from 'vitest';
import { Generator } from '../../src/diffusion/noise.js';
import { DEFAULT_SCHEDULER_CONFIG } from '../../src/diffusion/schedule.js';
import {
  applyThresholding,
  dynamicThreshold,
  lerp,
  parseThresholding,
  quantile,
  select,
  staticThreshold,
  thresholdingFromConfig,
} from '../../src/diffusion/thresholding.js';

describe('quantile (torch.quantile, linear interpolation)', () => {
  it('interpolates between order statistics at r = q·(n−1)', () => {
    // sorted [1,2,3,4], r = 1.5 → halfway between 2 and 3
    expect(quantile(Float32Array.of(3, 1, 2, 4), 0.5)).toBe(2.5);
    // r = float32(0.95)·9 ≈ 8.55 → 8 + 0.55·(9 − 8); value from torch.quantile
    expect(
      quantile(
        Float32Array.from({ length: 10 }, (_, i) => 9 - i),
        0.95,
      ),
    ).toBe(Math.fround(8.550000190734863));
    // sorted [0.3, 0.9, 1.2, 1.3], r = 2.85 → 1.2 + 0.85·0.1 = 1.285 (torch: 1.284999966621399)
    expect(quantile(Float32Array.of(1.2, 0.3, 0.9, 1.3), 0.95)).toBe(Math.fround(1.284999966621399));
  });

  it('q = 0 and q = 1 give the extremes; one element is itself', () => {
    const a = Float32Array.of(5, -1, 7, 7, 2);
    expect(quantile(a.slice(), 0)).toBe(-1);
    expect(quantile(a.slice(), 1)).toBe(7);
    expect(quantile(Float32Array.of(0.25), 0.95)).toBe(0.25);
  });

  it('torch lerp switches formula at w = 0.5', () => {
    expect(lerp(1, 3, 0.25)).toBe(1.5); // start + w·(end − start)
    expect(lerp(1, 3, 0.75)).toBe(2.5); // end − (end − start)·(1 − w)
  });

  it('quickselect agrees with a full sort (random sizes, duplicates)', () => {
    const g = new Generator(7);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(g.uniform() * 300);
      const a = Float32Array.from({ length: n }, () => Math.round(g.normal() * (trial % 2 ? 3 : 100)) + 0);
      const sorted = a.slice().sort();
      const k = Math.floor(g.uniform() * n);
      expect(select(a.slice(), k)).toBe(sorted[k]);
    }
  });

  it('propagates NaN like torch', () => {
    expect(quantile(Float32Array.of(1, Number.NaN, 2), 0.5)).toBeNaN();
    expect(Array.from(dynamicThreshold(Float32Array.of(1, Number.NaN, 0.5, 0.25), 2, 0.95, 1.5))).toEqual([
      Number.NaN,
      Number.NaN,
      0.5,
      0.25,
    ]);
  });

  it('rejects bad input', () => {
    expect(() => quantile(new Float32Array(0), 0.5)).toThrow(/empty/);
    expect(() => quantile(Float32Array.of(1), 1.5)).toThrow(/\[0, 1\]/);
  });
});

describe('dynamicThreshold (Imagen §2.3, diffusers _threshold_sample)', () => {
  // three rows: s < 1 (plain clip, values unchanged), 1 < s < max (divide by s), s > max (s = max)
  const x0 = Float32Array.of(0.1, -0.4, 0.25, 0.5, 1.2, -0.3, 0.9, -1.3, 3.0, -2.0, 0.5, 2.5);
  // expected values from torch (quantile/clamp/divide in float32)
  const want = [
    0.10000000149011612, -0.4000000059604645, 0.25, 0.5, 0.9338521957397461, -0.23346304893493652,
    0.7003890872001648, -1.0, 1.0, -1.0, 0.3333333432674408, 1.0,
  ];

  it('covers the three regimes of s', () => {
    expect(Array.from(dynamicThreshold(x0, 3, 0.95, 1.5))).toEqual(want.map(Math.fround));
  });

  it('with sample_max_value 1 it is clipping to ±1', () => {
    expect(Array.from(dynamicThreshold(x0, 3, 0.95, 1))).toEqual(Array.from(staticThreshold(x0, 1)));
  });

  it('does not modify its input and checks the batch split', () => {
    const copy = x0.slice();
    dynamicThreshold(x0, 3, 0.95, 1.5);
    expect(x0).toEqual(copy);
    expect(() => dynamicThreshold(x0, 5, 0.95, 1.5)).toThrow(/rows/);
  });
});

describe('Thresholding union', () => {
  it('from config: thresholding wins over clip_sample', () => {
    const cfg = {
      ...DEFAULT_SCHEDULER_CONFIG,
      thresholding: true,
      dynamicThresholdingRatio: 0.95,
      sampleMaxValue: 1.5,
    };
    expect(thresholdingFromConfig(cfg)).toEqual({ kind: 'dynamic', ratio: 0.95, maxValue: 1.5 });
    expect(thresholdingFromConfig({ ...cfg, thresholding: false })).toEqual({ kind: 'static', range: 1 });
    expect(thresholdingFromConfig({ ...cfg, thresholding: false, clipSample: false })).toEqual({
      kind: 'none',
    });
  });

  it('from a CLI string', () => {
    const cfg = { ...DEFAULT_SCHEDULER_CONFIG, clipSampleRange: 2 };
    expect(parseThresholding('static', cfg)).toEqual({ kind: 'static', range: 2 });
    expect(parseThresholding('dynamic', cfg)).toEqual({ kind: 'dynamic', ratio: 0.995, maxValue: 1 });
    expect(parseThresholding('none', cfg)).toEqual({ kind: 'none' });
    expect(() => parseThresholding('soft', cfg)).toThrow(/dynamic, static, none/);
  });

  it('applies each kind', () => {
    const x = Float32Array.of(-3, 0.5, 3);
    expect(Array.from(applyThresholding(x, 1, { kind: 'static', range: 2 }))).toEqual([-2, 0.5, 2]);
    expect(Array.from(applyThresholding(x, 1, { kind: 'none' }))).toEqual([-3, 0.5, 3]);
  });
});
