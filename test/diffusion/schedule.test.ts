import { describe, expect, it } from 'vitest';
import { addNoise, getVelocity } from '../../src/diffusion/ddpm.js';
import {
  betasFor,
  cumprodF32,
  DEFAULT_SCHEDULER_CONFIG,
  makeSchedule,
  parseSchedulerConfig,
} from '../../src/diffusion/schedule.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { values } from './load.js';

const IF_STAGE1 = {
  _class_name: 'DDPMScheduler',
  _diffusers_version: '0.15.0.dev0',
  beta_end: 0.02,
  beta_schedule: 'squaredcos_cap_v2',
  beta_start: 0.0001,
  clip_sample: true,
  clip_sample_range: 1.0,
  dynamic_thresholding_ratio: 0.95,
  lambda_min_clipped: -5.1,
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  sample_max_value: 1.5,
  thresholding: true,
  trained_betas: null,
  variance_type: 'learned_range',
};

describe('squaredcos_cap_v2 schedule', () => {
  const s = makeSchedule({ betaSchedule: 'squaredcos_cap_v2' });

  it('matches the reference values of spec §6.1', () => {
    const ref: [number, number][] = [
      [0, 0.99995869398],
      [10, 0.9992788434],
      [100, 0.97157561779],
      [249, 0.84701222181],
      [250, 0.84588801861],
      [500, 0.492285043],
      [750, 0.1431786567],
      [900, 0.02361610718],
      [990, 1.9671733e-4],
      [998, 2.42876627e-6],
      [999, 2.42873499e-9],
    ];
    for (const [t, v] of ref) expect(s.alphasCumprod[t]).toBe(Math.fround(v));
    expect(s.betas[0]).toBe(Math.fround(4.1284224e-5));
    expect(s.betas[999]).toBe(Math.fround(0.999));
    expect(s.betas.filter((b) => b === Math.fround(0.999)).length).toBe(1);
  });

  it('cumprod accumulates in double and rounds each output (torch CPU)', () => {
    const x = Float32Array.of(0.1, 0.3, 0.7);
    expect(Array.from(cumprodF32(x))).toEqual([
      Math.fround(0.1),
      Math.fround(Math.fround(0.1) * Math.fround(0.3)),
      Math.fround(Math.fround(0.1) * Math.fround(0.3) * Math.fround(0.7)),
    ]);
  });
});

describe('linear schedules', () => {
  it('linear and scaled_linear hit their endpoints', () => {
    const lin = betasFor('linear', 1000, 0.0001, 0.02);
    expect([lin[0], lin[999]]).toEqual([Math.fround(0.0001), Math.fround(0.02)]);
    const sl = betasFor('scaled_linear', 1000, 0.00085, 0.012);
    expect(sl[0]).toBeCloseTo(0.00085, 9);
    expect(sl[999]).toBeCloseTo(0.012, 8);
    expect(lin.every((b, i) => i === 0 || b > lin[i - 1]!)).toBe(true);
  });

  it('trained_betas and zero-terminal-SNR rescaling', () => {
    const s = makeSchedule({ numTrainTimesteps: 3, trainedBetas: [0.1, 0.2, 0.3] });
    expect(Array.from(s.alphas)).toEqual([0.9, 0.8, 0.7].map(Math.fround));
    const z = makeSchedule({
      rescaleBetasZeroSnr: true,
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
    });
    expect(z.alphasCumprod[999]).toBe(0);
    expect(z.alphasCumprod[0]).toBeCloseTo(1 - 0.00085, 6);
    expect(() => makeSchedule({ numTrainTimesteps: 4, trainedBetas: [0.1] })).toThrow(/trained_betas/);
  });
});

describe('parseSchedulerConfig', () => {
  it('parses the IF stage I config and fills diffusers defaults', () => {
    const cfg = parseSchedulerConfig(IF_STAGE1);
    expect(cfg).toEqual({
      ...DEFAULT_SCHEDULER_CONFIG,
      betaSchedule: 'squaredcos_cap_v2',
      varianceType: 'learned_range',
      thresholding: true,
      dynamicThresholdingRatio: 0.95,
      sampleMaxValue: 1.5,
    });
    expect(cfg.timestepSpacing).toBe('leading');
    expect(parseSchedulerConfig({})).toEqual(DEFAULT_SCHEDULER_CONFIG);
  });

  it('rejects unknown keys and values, listing the allowed ones', () => {
    expect(() => parseSchedulerConfig({ ...IF_STAGE1, beta_schedul: 'linear' })).toThrow(
      /unknown key "beta_schedul".*beta_schedule/,
    );
    expect(() => parseSchedulerConfig({ variance_type: 'fixed' })).toThrow(
      /fixed_small, fixed_small_log, fixed_large, fixed_large_log, learned, learned_range/,
    );
    expect(() => parseSchedulerConfig({ beta_schedule: 'sigmoid' })).toThrow(
      /linear, scaled_linear, squaredcos_cap_v2/,
    );
    expect(() => parseSchedulerConfig({ prediction_type: 'eps' })).toThrow(/epsilon, sample, v_prediction/);
    expect(() => parseSchedulerConfig({ timestep_spacing: 'even' })).toThrow(/leading, trailing, linspace/);
  });

  it('checks types and ranges', () => {
    expect(() => parseSchedulerConfig({ thresholding: 'yes' })).toThrow(
      /"thresholding" must be true or false/,
    );
    expect(() => parseSchedulerConfig({ num_train_timesteps: 10.5 })).toThrow(/integer/);
    expect(() => parseSchedulerConfig({ beta_start: '0.1' })).toThrow(/finite number/);
    expect(() => parseSchedulerConfig({ trained_betas: [0.1, 'x'] })).toThrow(/array of numbers/);
    expect(() => parseSchedulerConfig({ dynamic_thresholding_ratio: 1.5 })).toThrow(/\(0, 1\]/);
    expect(() => parseSchedulerConfig({ steps_offset: -1 })).toThrow(/≥ 0/);
    expect(() => parseSchedulerConfig([1])).toThrow(/JSON object/);
    expect(() => parseSchedulerConfig(null)).toThrow(/JSON object/);
  });

  it('errors carry the CONFIG_INVALID code', () => {
    try {
      parseSchedulerConfig({ variance_type: 1 });
    } catch (e) {
      expect((e as { code?: string }).code).toBe('CONFIG_INVALID');
    }
    expect.assertions(1);
  });
});

describe('addNoise / getVelocity', () => {
  const s = makeSchedule({ betaSchedule: 'squaredcos_cap_v2' });
  const x0 = NDArray.f32([2, 1, 2], [1, -1, 0.5, 2]);
  const eps = NDArray.f32([2, 1, 2], [0.3, 0.1, -1, 0.25]);

  it('q(x_t | x_0) with one timestep per batch element', () => {
    const xt = addNoise(x0, eps, [0, 999], s).data as Float32Array;
    for (const [b, t] of [
      [0, 0],
      [1, 999],
    ] as const) {
      const a = s.alphasCumprod[t]!;
      for (let i = 0; i < 2; i++) {
        const k = 2 * b + i;
        expect(xt[k]).toBeCloseTo(
          Math.sqrt(a) * values(x0)[k]! + Math.sqrt(1 - a) * (values(eps)[k] as number),
          6,
        );
      }
    }
    expect(() => addNoise(x0, eps, [0], s)).toThrow(/batch of 2/);
    expect(() => addNoise(x0, eps, [0, 1000], s)).toThrow(/outside/);
  });

  it('v = √ᾱ·ε − √(1−ᾱ)·x0 recovers x0 = √ᾱ·x_t − √(1−ᾱ)·v', () => {
    const ts = [250, 700];
    const xt = addNoise(x0, eps, ts, s).data as Float32Array;
    const v = getVelocity(x0, eps, ts, s).data as Float32Array;
    for (let k = 0; k < 4; k++) {
      const a = s.alphasCumprod[ts[k >> 1]!]!;
      expect(Math.sqrt(a) * xt[k]! - Math.sqrt(1 - a) * v[k]!).toBeCloseTo(values(x0)[k] as number, 6);
    }
  });
});
