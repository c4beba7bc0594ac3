import { describe, expect, it } from 'vitest';
import { ddimStep } from '../../src/diffusion/ddim.js';
import { addNoise, ddpmStep, getVelocity } from '../../src/diffusion/ddpm.js';
import { Generator } from '../../src/diffusion/noise.js';
import { makeSchedule } from '../../src/diffusion/schedule.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { values } from './load.js';

const schedule = makeSchedule({ betaSchedule: 'squaredcos_cap_v2', clipSample: false });
const shape = [2, 3, 4, 4];
const g = new Generator(42);
const x0 = NDArray.f32(
  shape,
  g.randn(96).map((v) => Math.tanh(v) * 0.9),
);
const eps = g.randnNDArray(shape);

/** √ᾱ·x0 + √(1−ᾱ)·ε in float64 (ᾱ = 1 for t < 0 unless given). */
function marginal(t: number, alphaFinal = 1): Float64Array {
  const a = t >= 0 ? schedule.alphasCumprod[t]! : alphaFinal;
  return Float64Array.from(values(x0), (v, i) => Math.sqrt(a) * v + Math.sqrt(1 - a) * values(eps)[i]!);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('ddimStep (DDIM eq. 12)', () => {
  it.each([
    [990, 800], // at t = 999 (√ᾱ ≈ 5e-5) float32 rounding of x_t alone moves x̂0 by ~1e-3
    [500, 250],
    [50, 0],
  ])('η = 0 with a perfect ε-model maps x_%i exactly onto x_%i', (t, prev) => {
    const xt = addNoise(x0, eps, [t, t], schedule);
    const out = ddimStep({ modelOutput: eps, timestep: t, prevTimestep: prev, sample: xt, schedule });
    expect(maxDiff(values(out.prevSample), marginal(prev))).toBeLessThan(2e-5);
    expect(maxDiff(values(out.predOriginalSample), values(x0))).toBeLessThan(t > 900 ? 1e-4 : 1e-5);
  });

  it('the final step returns x̂0 with set_alpha_to_one, else lands on ᾱ[0]', () => {
    const xt = addNoise(x0, eps, [10, 10], schedule);
    const one = ddimStep({ modelOutput: eps, timestep: 10, prevTimestep: -1, sample: xt, schedule });
    expect(Array.from(values(one.prevSample))).toEqual(Array.from(values(one.predOriginalSample)));
    const a0 = ddimStep({
      modelOutput: eps,
      timestep: 10,
      prevTimestep: -1,
      sample: xt,
      schedule,
      setAlphaToOne: false,
    });
    expect(maxDiff(values(a0.prevSample), marginal(-1, schedule.alphasCumprod[0]!))).toBeLessThan(1e-5);
  });

  it('sample and v_prediction models give the same step as ε', () => {
    const t = 600;
    const xt = addNoise(x0, eps, [t, t], schedule);
    const base = ddimStep({ modelOutput: eps, timestep: t, prevTimestep: 400, sample: xt, schedule });
    const fromX0 = ddimStep({
      modelOutput: x0,
      timestep: t,
      prevTimestep: 400,
      sample: xt,
      schedule,
      predictionType: 'sample',
    });
    const v = getVelocity(x0, eps, [t, t], schedule);
    const fromV = ddimStep({
      modelOutput: v,
      timestep: t,
      prevTimestep: 400,
      sample: xt,
      schedule,
      predictionType: 'v_prediction',
    });
    expect(maxDiff(values(fromX0.prevSample), values(base.prevSample))).toBeLessThan(1e-5);
    expect(maxDiff(values(fromV.prevSample), values(base.prevSample))).toBeLessThan(1e-5);
  });

  it('η = 1 is the DDPM posterior (fixed_small variance) when x̂0 is not clipped', () => {
    const t = 700;
    const prev = 500;
    const xt = addNoise(x0, eps, [t, t], schedule);
    const z = new Generator(3).randnNDArray(shape);
    // a model output that is not the true ε, so the step is not trivial
    const eh = NDArray.f32(
      shape,
      values(eps).map((v) => 0.8 * v + 0.1),
    );
    const ddim = ddimStep({
      modelOutput: eh,
      timestep: t,
      prevTimestep: prev,
      sample: xt,
      schedule,
      eta: 1,
      varianceNoise: z,
    });
    const ddpm = ddpmStep({
      modelOutput: eh,
      timestep: t,
      sample: xt,
      timesteps: [t, prev, 0],
      schedule,
      config: { varianceType: 'fixed_small' },
      varianceNoise: z,
    });
    expect(maxDiff(values(ddim.prevSample), values(ddpm.prevSample))).toBeLessThan(1e-5);
  });

  it('use_clipped_model_output re-derives ε from the clipped x̂0', () => {
    const t = 300;
    const xt = addNoise(x0, eps, [t, t], schedule);
    const big = NDArray.f32(
      shape,
      values(eps).map((v) => v * 4),
    );
    const out = ddimStep({
      modelOutput: big,
      timestep: t,
      prevTimestep: -1,
      sample: xt,
      schedule,
      thresholding: { kind: 'static', range: 1 },
      useClippedModelOutput: true,
    });
    expect(Math.max(...values(out.predOriginalSample).map(Math.abs))).toBeLessThanOrEqual(1);
    expect(Array.from(values(out.prevSample))).toEqual(Array.from(values(out.predOriginalSample)));
  });

  it('drops the variance half of a [B, 2C, …] output and validates inputs', () => {
    const xt = addNoise(x0, eps, [400, 400], schedule);
    const doubled = new Float32Array(192);
    for (let b = 0; b < 2; b++) doubled.set(values(eps).subarray(48 * b, 48 * (b + 1)), 96 * b);
    const a = ddimStep({
      modelOutput: NDArray.f32([2, 6, 4, 4], doubled),
      timestep: 400,
      prevTimestep: 200,
      sample: xt,
      schedule,
    });
    const b = ddimStep({ modelOutput: eps, timestep: 400, prevTimestep: 200, sample: xt, schedule });
    expect(Array.from(values(a.prevSample))).toEqual(Array.from(values(b.prevSample)));
    expect(() =>
      ddimStep({ modelOutput: eps, timestep: 400, prevTimestep: 500, sample: xt, schedule }),
    ).toThrow(/prevTimestep/);
    expect(() =>
      ddimStep({ modelOutput: eps, timestep: 400, prevTimestep: 200, sample: xt, schedule, eta: 0.5 }),
    ).toThrow(/varianceNoise/);
  });
});
