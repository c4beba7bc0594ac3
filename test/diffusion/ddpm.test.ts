import { describe, expect, it } from 'vitest';
import { addNoise, ddpmStep, expf, getVelocity, splitModelOutput } from '../../src/diffusion/ddpm.js';
import { Generator } from '../../src/diffusion/noise.js';
import { makeSchedule, type SchedulerConfig } from '../../src/diffusion/schedule.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { values } from './load.js';

const base: Partial<SchedulerConfig> = { betaSchedule: 'squaredcos_cap_v2', clipSample: false };
const schedule = makeSchedule(base);
const shape = [1, 2, 3, 3];
const g = new Generator(11);
const x0 = NDArray.f32(
  shape,
  g.randn(18).map((v) => Math.tanh(v)),
);
const eps = g.randnNDArray(shape);
const timesteps = [800, 600, 300, 0];

/** DDPM eq. 7 posterior mean μ̃(x_t, x0) between t and prev on the respaced chain, in float64. */
function posteriorMean(xt: Float32Array, t: number, prev: number): Float64Array {
  const a = schedule.alphasCumprod[t]!;
  const ap = prev >= 0 ? schedule.alphasCumprod[prev]! : 1;
  const beta = 1 - a / ap;
  return Float64Array.from(
    xt,
    (x, i) =>
      ((Math.sqrt(ap) * beta) / (1 - a)) * values(x0)[i]! + ((Math.sqrt(a / ap) * (1 - ap)) / (1 - a)) * x,
  );
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('ddpmStep', () => {
  const xt = addNoise(x0, eps, [600], schedule);
  const zero = NDArray.zeros('float32', shape);

  it.each(['epsilon', 'sample', 'v_prediction'] as const)(
    '%s: a perfect model gives the posterior mean (z = 0)',
    (p) => {
      const modelOutput = p === 'epsilon' ? eps : p === 'sample' ? x0 : getVelocity(x0, eps, [600], schedule);
      const out = ddpmStep({
        modelOutput,
        timestep: 600,
        sample: xt,
        timesteps,
        schedule,
        config: { predictionType: p },
        varianceNoise: zero,
      });
      expect(maxDiff(values(out.predOriginalSample), values(x0))).toBeLessThan(1e-5);
      expect(maxDiff(values(out.prevSample), posteriorMean(values(xt), 600, 300))).toBeLessThan(1e-5);
    },
  );

  it('variance types scale z by the right σ', () => {
    const z = NDArray.f32(shape, new Float32Array(18).fill(1));
    const a = schedule.alphasCumprod[600]!;
    const ap = schedule.alphasCumprod[300]!;
    const beta = 1 - a / ap;
    const post = ((1 - ap) / (1 - a)) * beta;
    const sigma = (cfg: Partial<SchedulerConfig>, out = eps) => {
      const run = (noise: NDArray) =>
        ddpmStep({
          modelOutput: out,
          timestep: 600,
          sample: xt,
          timesteps,
          schedule,
          config: cfg,
          varianceNoise: noise,
        }).prevSample.toArray()[0]!;
      return run(z) - run(zero);
    };
    expect(sigma({ varianceType: 'fixed_small' })).toBeCloseTo(Math.sqrt(post), 6);
    expect(sigma({ varianceType: 'fixed_small_log' })).toBeCloseTo(Math.sqrt(post), 6);
    expect(sigma({ varianceType: 'fixed_large' })).toBeCloseTo(Math.sqrt(beta), 6);
    // learned_range: v = −1 → β̃ (min_log), v = +1 → β (max_log), v = 0 → geometric mean
    const withV = (v: number) => {
      const data = new Float32Array(36);
      data.set(values(eps));
      data.fill(v, 18);
      return NDArray.f32([1, 4, 3, 3], data);
    };
    const lr = { varianceType: 'learned_range' } as const;
    expect(sigma(lr, withV(-1))).toBeCloseTo(Math.sqrt(post), 6);
    expect(sigma(lr, withV(1))).toBeCloseTo(Math.sqrt(beta), 6);
    expect(sigma(lr, withV(0))).toBeCloseTo((post * beta) ** 0.25, 6);
    expect(sigma({ varianceType: 'learned' }, withV(0.25))).toBeCloseTo(0.5, 6);
  });

  it('t = 0 returns x̂0 and draws no noise', () => {
    const x = addNoise(x0, eps, [0], schedule);
    const out = ddpmStep({ modelOutput: eps, timestep: 0, sample: x, timesteps, schedule });
    expect(Array.from(values(out.prevSample))).toEqual(Array.from(values(out.predOriginalSample)));
  });

  it('draws z from the generator when no noise is injected', () => {
    const z = new Generator(5).randnNDArray(shape);
    const injected = ddpmStep({
      modelOutput: eps,
      timestep: 600,
      sample: xt,
      timesteps,
      schedule,
      varianceNoise: z,
    });
    const drawn = ddpmStep({
      modelOutput: eps,
      timestep: 600,
      sample: xt,
      timesteps,
      schedule,
      generator: new Generator(5),
    });
    expect(Array.from(values(drawn.prevSample))).toEqual(Array.from(values(injected.prevSample)));
  });

  it('fails loudly on bad inputs', () => {
    const args = { modelOutput: eps, timestep: 600, sample: xt, timesteps, schedule };
    expect(() => ddpmStep(args)).toThrow(/varianceNoise or a generator/);
    expect(() => ddpmStep({ ...args, timestep: 500, varianceNoise: zero })).toThrow(
      /not in the active timesteps/,
    );
    expect(() => ddpmStep({ ...args, timestep: 1000, varianceNoise: zero })).toThrow(/outside/);
    expect(() =>
      ddpmStep({ ...args, config: { varianceType: 'learned_range' }, varianceNoise: zero }),
    ).toThrow(/needs a model output with 4 channels/);
    expect(() =>
      ddpmStep({ ...args, config: { varianceType: 'fixed_large_log' }, varianceNoise: zero }),
    ).toThrow(/fixed_large_log/);
    expect(() => ddpmStep({ ...args, varianceNoise: NDArray.zeros('float32', [2, 2, 3, 3]) })).toThrow(
      /varianceNoise has shape/,
    );
    expect(() => ddpmStep({ ...args, modelOutput: NDArray.zeros('float32', [1, 2, 3, 4]) })).toThrow(
      /does not match/,
    );
    expect(() => splitModelOutput(NDArray.zeros('float32', [1, 4, 3, 3]), shape, false)).toThrow(
      /expected 2 channels/,
    );
  });

  it('without a timestep list the chain is the full one (prev_t = t − 1)', () => {
    const full = ddpmStep({ modelOutput: eps, timestep: 600, sample: xt, schedule, varianceNoise: zero });
    const listed = ddpmStep({
      modelOutput: eps,
      timestep: 600,
      sample: xt,
      timesteps: [600, 599],
      schedule,
      varianceNoise: zero,
    });
    expect(Array.from(values(full.prevSample))).toEqual(Array.from(values(listed.prevSample)));
  });
});

describe('expf (SLEEF expf_u10, as torch CPU)', () => {
  it('is within 1 ulp of the correctly rounded exp and exact at 0', () => {
    expect(expf(0)).toBe(1);
    const gen = new Generator(1);
    for (let i = 0; i < 20_000; i++) {
      const x = Math.fround((gen.uniform() - 0.5) * 40);
      const want = Math.fround(Math.exp(x));
      const ulp = Math.fround(want * (1 + 2 ** -23)) - want;
      expect(Math.abs(expf(x) - want)).toBeLessThanOrEqual(ulp);
    }
    expect(expf(-200)).toBe(0);
    expect(expf(200)).toBe(Number.POSITIVE_INFINITY);
  });
});
