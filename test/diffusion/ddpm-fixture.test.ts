import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ddpmStep } from '../../src/diffusion/ddpm.js';
import { makeSchedule, parseSchedulerConfig } from '../../src/diffusion/schedule.js';
import { presetTimesteps, setTimesteps } from '../../src/diffusion/timesteps.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { fixture } from '../helpers/fixtures.js';
import { f32, i64, readSafetensors } from './load.js';

const dir = fixture('ddpm-scheduler');

const CASES = {
  main: 'scheduler_config.json',
  nothresh: 'scheduler_config_nothresh.json',
  fixedsmall: 'scheduler_config_fixed_small.json',
  stage2: 'scheduler_config_stage2.json',
} as const;

/** Max |a − b| / max|b| and the count of elements that differ at all. */
function compare(got: Float32Array, want: Float32Array): { rel: number; abs: number; mismatched: number } {
  let abs = 0;
  let scale = 0;
  let mismatched = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= abs)) abs = d;
    if (got[i] !== want[i]) mismatched++;
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return { rel: abs / scale, abs, mismatched };
}

describe.skipIf(!dir)('DDPMScheduler parity (ddpm-scheduler fixture)', () => {
  const tensors = dir ? readSafetensors(join(dir, 'steps.safetensors')) : new Map();
  const loadConfig = (file: string) =>
    parseSchedulerConfig(JSON.parse(readFileSync(join(dir!, file), 'utf8')));

  it('betas and alphas_cumprod are bit-exact', () => {
    const schedule = makeSchedule(loadConfig(CASES.main));
    expect(Array.from(schedule.betas)).toEqual(Array.from(f32(tensors, 'betas')));
    expect(Array.from(schedule.alphasCumprod)).toEqual(Array.from(f32(tensors, 'alphas_cumprod')));
  });

  it('timesteps after set_timesteps match', () => {
    const cfg = loadConfig(CASES.main);
    expect(setTimesteps(10, cfg)).toEqual(i64(tensors, 'main.n10.timesteps'));
    expect(setTimesteps('fast27', cfg)).toEqual(i64(tensors, 'main.fast27.timesteps'));
    for (const c of Object.keys(CASES))
      expect(presetTimesteps('fast27')).toEqual(i64(tensors, `${c}.fast27.timesteps`));
  });

  const runs = [...tensors.keys()]
    .map((k) => /^(\w+)\.(\w+)\.step(\d+)\.t$/.exec(k))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[0].slice(0, -2), c: m[1] as keyof typeof CASES, run: m[2]!, step: Number(m[3]) }));

  it('covers every recorded step', () => {
    expect(runs.length).toBe(4 + 7 * 4); // main.n10: 4 steps; every fast27 case: 7 steps
  });

  it.each(runs.map((r) => [r.name, r] as const))('%s', (_name, r) => {
    const config = loadConfig(CASES[r.c]);
    const schedule = makeSchedule(config);
    const timesteps = i64(tensors, `${r.c}.${r.run}.timesteps`);
    const get = (k: string) => tensors.get(`${r.name}.${k}`);
    const asND = (k: string) => {
      const t = get(k)!;
      return new NDArray('float32', t.shape, t.data as Float32Array);
    };
    const t = i64(tensors, `${r.name}.t`)[0]!;
    expect(t).toBe(timesteps[r.step]);
    const out = ddpmStep({
      modelOutput: asND('model_output'),
      timestep: t,
      sample: asND('sample'),
      timesteps,
      schedule,
      ...(get('variance_noise') ? { varianceNoise: asND('variance_noise') } : {}),
    });
    const x0 = compare(
      out.predOriginalSample.data as Float32Array,
      f32(tensors, `${r.name}.pred_original_sample`),
    );
    const prev = compare(out.prevSample.data as Float32Array, f32(tensors, `${r.name}.prev_sample`));
    if (process.env.DIFFUSION_REPORT) console.log(r.name, `t=${t}`, { x0, prev });
    expect(x0.rel).toBeLessThanOrEqual(1e-6);
    expect(prev.rel).toBeLessThanOrEqual(1e-6);
    // stronger: PyTorch's CPU float32 arithmetic is reproduced bit for bit
    expect([x0.mismatched, prev.mismatched]).toEqual([0, 0]);
  });
});

const loopDir = fixture('if-pipeline-loop');

describe.skipIf(!loopDir)('IFPipeline loop: every scheduler.step (if-pipeline-loop fixture)', () => {
  const tensors = loopDir ? readSafetensors(join(loopDir, 'loop.safetensors')) : new Map();
  const config = loopDir
    ? parseSchedulerConfig(JSON.parse(readFileSync(join(loopDir, 'scheduler_config.json'), 'utf8')))
    : undefined;
  const timesteps = loopDir ? i64(tensors, 'timesteps') : [];
  const nd = (k: string) => {
    const t = tensors.get(k)!;
    return new NDArray('float32', t.shape, t.data as Float32Array);
  };

  it('uses the custom timesteps of the README', () => {
    expect(timesteps).toEqual([830, 664, 498, 332, 166, 0]);
  });

  it.each(timesteps.map((t, i) => [i, t] as const))('step%i (t=%i) is bit-exact', (i, t) => {
    const schedule = makeSchedule(config);
    const out = ddpmStep({
      modelOutput: nd(`step${i}.guided_model_output`),
      timestep: t,
      sample: nd(`step${i}.sample_in`),
      timesteps,
      schedule,
      ...(tensors.has(`step${i}.variance_noise`) ? { varianceNoise: nd(`step${i}.variance_noise`) } : {}),
    });
    const x0 = compare(
      out.predOriginalSample.data as Float32Array,
      f32(tensors, `step${i}.pred_original_sample`),
    );
    const prev = compare(out.prevSample.data as Float32Array, f32(tensors, `step${i}.prev_sample`));
    if (process.env.DIFFUSION_REPORT) console.log(`loop step${i}`, `t=${t}`, { x0, prev });
    expect(x0.rel).toBeLessThanOrEqual(1e-6);
    expect(prev.rel).toBeLessThanOrEqual(1e-6);
    expect([x0.mismatched, prev.mismatched]).toEqual([0, 0]);
  });

  it('final_sample is the last prev_sample', () => {
    expect(Array.from(f32(tensors, 'final_sample'))).toEqual(
      Array.from(f32(tensors, `step${timesteps.length - 1}.prev_sample`)),
    );
  });
});
