import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Generator } from '../../src/diffusion/noise.js';
import { makeSchedule, parseSchedulerConfig } from '../../src/diffusion/schedule.js';
import { thresholdingFromConfig } from '../../src/diffusion/thresholding.js';
import { setTimesteps } from '../../src/diffusion/timesteps.js';
import { ImagenError } from '../../src/engine/errors.js';
import { NDArray } from '../../src/engine/ndarray.js';
import type { ProgressEvent } from '../../src/pipelines/events.js';
import {
  denoiseFromImage,
  ifResizeTarget,
  resizeRgb,
  strengthTimesteps,
  varyImages,
} from '../../src/pipelines/img2img.js';
import { UNetRunner } from '../../src/pipelines/unet_runner.js';
import { upscaleImage } from '../../src/pipelines/upscale.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { loadUNet } from '../../src/platform/node/unet_loader.js';
import { fixture } from '../helpers/fixtures.js';
import { loadAll } from '../helpers/safetensors.js';
import { TINY_BASE_SIZE, TINY_SR_SIZE, testPicture } from '../helpers/tiny_if.js';
import { stage, useTinyIfPipelines } from '../helpers/tiny_if_pipelines.js';

const rt = createRuntime({ threads: 2 });
const tiny = useTinyIfPipelines(rt);

function same(a: NDArray, b: NDArray): boolean {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  return x.length === y.length && x.every((v, i) => Object.is(v, y[i]));
}

describe('strength → timesteps (diffusers get_timesteps)', () => {
  const cfg = { numTrainTimesteps: 1000, timestepSpacing: 'leading' as const, stepsOffset: 0 };
  it('keeps the last ⌊n·strength⌋ steps', () => {
    const all = setTimesteps(10, cfg);
    expect(strengthTimesteps(all, 0.5)).toEqual([400, 300, 200, 100, 0]);
    expect(strengthTimesteps(all, 1)).toEqual(all);
    // IFImg2ImgPipeline defaults: 80 steps, strength 0.7 → int(56.00000000000001) = 56 steps
    expect(strengthTimesteps(setTimesteps(80, cfg), 0.7)).toHaveLength(56);
    expect(strengthTimesteps(setTimesteps('smart27', cfg), 0.5)).toHaveLength(13);
  });
  it('rejects strengths that leave nothing to do or are out of range', () => {
    expect(() => strengthTimesteps(setTimesteps(10, cfg), 0.05)).toThrow(/leaves no denoising step/);
    expect(() => strengthTimesteps([0], 0)).toThrow(/strength must be in \(0, 1\]/);
    expect(() => strengthTimesteps([0], 1.5)).toThrow(ImagenError);
  });
});

describe('IF resize rule', () => {
  it('short side → stage size, long side a multiple of 8 keeping the aspect ratio', () => {
    expect(ifResizeTarget(512, 512, 64)).toEqual({ width: 64, height: 64 });
    expect(ifResizeTarget(300, 200, 64)).toEqual({ width: 96, height: 64 });
    expect(ifResizeTarget(200, 300, 64)).toEqual({ width: 64, height: 96 });
    expect(ifResizeTarget(1000, 500, 256)).toEqual({ width: 512, height: 256 });
  });
  it('bicubic resize equals PIL 12 Image.resize(BICUBIC, reducing_gap=None), as diffusers calls it', () => {
    const data = Uint8Array.from({ length: 9 * 7 * 3 }, (_, i) => (i * 37 + 11) % 256);
    const img = { width: 9, height: 7, data };
    // reference values printed by PIL 12.3 for the same input
    expect(Array.from(resizeRgb(img, 4, 3).data)).toEqual([
      142, 115, 101, 135, 150, 112, 101, 133, 154, 139, 102, 142, 129, 162, 111, 113, 116, 138, 135, 119, 119,
      124, 129, 119, 159, 104, 147, 153, 105, 99, 113, 152, 114, 105, 107, 146,
    ]);
    const up = resizeRgb(img, 13, 10).data;
    expect(Array.from(up.subarray(0, 20))).toEqual([
      0, 43, 80, 56, 117, 154, 156, 136, 177, 235, 3, 56, 139, 66, 129, 114, 171, 125, 201, 238,
    ]);
    expect(up.reduce((a, v) => a + v, 0)).toBe(49085);
  });
  it('bicubic resize keeps flat colours and is antialiased when shrinking', () => {
    const flat = { width: 40, height: 30, data: new Uint8Array(40 * 30 * 3).fill(77) };
    const r = resizeRgb(flat, 16, 12);
    expect(r.data.every((v) => v === 77)).toBe(true);
    // 1-pixel checkerboard shrunk 4×: an antialiased filter gives mid grey, not aliasing
    const cb = { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) };
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        cb.data.fill((x + y) % 2 ? 255 : 0, (y * 32 + x) * 3, (y * 32 + x) * 3 + 3);
    const s = resizeRgb(cb, 8, 8);
    for (const v of s.data) expect(Math.abs(v - 127.5)).toBeLessThan(8);
  });
});

describe('varyImages on tiny IF folders', () => {
  const picture = testPicture(TINY_BASE_SIZE, TINY_BASE_SIZE);

  it('stage I: right shape, strength → fewer steps, same seed → same image', async () => {
    const steps: number[] = [];
    const run = (seed: number, strength: number) =>
      varyImages(rt, tiny.text, stage(tiny.base), undefined, {
        image: picture,
        prompt: 'a red square',
        seed,
        base: { steps: 10, strength },
        onProgress: (e: ProgressEvent) => {
          if (e.status === 'step') steps.push(e.step);
        },
      });
    const a = await run(3, 0.5);
    expect(a.base.shape).toEqual([1, 3, TINY_BASE_SIZE, TINY_BASE_SIZE]);
    expect(steps).toEqual([1, 2, 3, 4, 5]);
    steps.length = 0;
    const b = await run(3, 0.5);
    expect(same(a.base, b.base)).toBe(true);
    const c = await run(4, 0.5);
    expect(same(a.base, c.base)).toBe(false);
    steps.length = 0;
    await run(3, 0.3);
    expect(steps).toHaveLength(3);
    for (const v of a.base.data as Float32Array) expect(Number.isFinite(v)).toBe(true);
  });

  it('both stages: stage II img2img super-resolution at its size, steps trimmed by strength', async () => {
    const counts = new Map<string, number>();
    const warnings: string[] = [];
    const big = testPicture(48, 48);
    const run = () =>
      varyImages(rt, tiny.text, stage(tiny.base), stage(tiny.sr), {
        image: big,
        prompt: 'a red square',
        seed: 1,
        base: { steps: 4, strength: 0.5 },
        sr: { steps: 5, strength: 0.8 },
        onWarning: (m) => warnings.push(m),
        onProgress: (e) => {
          if (e.status === 'step') counts.set(e.stage, (counts.get(e.stage) ?? 0) + 1);
        },
      });
    const r = await run();
    expect(r.base.shape).toEqual([1, 3, TINY_BASE_SIZE, TINY_BASE_SIZE]);
    expect(r.sr!.shape).toEqual([1, 3, TINY_SR_SIZE, TINY_SR_SIZE]);
    expect(counts.get('stage I')).toBe(2);
    expect(counts.get('stage II')).toBe(4);
    expect(warnings.join('\n')).toMatch(/48×48; resized to 16×16 for stage I/);
    const again = await run();
    expect(same(r.sr!, again.sr!)).toBe(true);
  });

  it('a non-square image keeps its aspect ratio (IF resize rule)', async () => {
    const r = await varyImages(rt, tiny.text, stage(tiny.base), undefined, {
      image: testPicture(64, 32),
      prompt: 'wide',
      base: { steps: 2, strength: 1 },
    });
    expect(r.base.shape).toEqual([1, 3, 16, 32]);
  });

  it('names the mismatch when a stage-II model is given as stage I and vice versa', async () => {
    const opts = { image: picture, prompt: 'x', base: { steps: 2 } };
    await expect(varyImages(rt, tiny.text, stage(tiny.sr), undefined, opts)).rejects.toThrow(
      /super-resolution \(stage II\) model \(in_channels 6, class embedding 'timestep'\)/,
    );
    await expect(varyImages(rt, tiny.text, stage(tiny.base), stage(tiny.base), opts)).rejects.toThrow(
      /not a super-resolution \(stage II\) model \(in_channels 3, class embedding none\)/,
    );
  });
});

describe('upscaleImage (stand-alone stage II) on a tiny IF-II folder', () => {
  it('lifts a user image to the stage-II size, deterministically, resizing the input with a warning', async () => {
    const warnings: string[] = [];
    let steps = 0;
    const run = (seed: number) =>
      upscaleImage(rt, tiny.text, stage(tiny.sr), {
        image: testPicture(TINY_BASE_SIZE, TINY_BASE_SIZE),
        prompt: 'a red square',
        seed,
        steps: 3,
        lowResSize: 12,
        onWarning: (m) => warnings.push(m),
        onProgress: (e) => {
          if (e.status === 'step') steps++;
        },
      });
    const a = await run(1);
    expect(a.shape).toEqual([1, 3, TINY_SR_SIZE, TINY_SR_SIZE]);
    expect(steps).toBe(3);
    expect(warnings[0]).toMatch(/16×16; resized to 12×12/);
    expect(same(a, await run(1))).toBe(true);
    expect(same(a, await run(2))).toBe(false);
  });

  it('keeps the aspect ratio of a wide input', async () => {
    const r = await upscaleImage(rt, tiny.text, stage(tiny.sr), {
      image: testPicture(16, 8),
      prompt: 'wide',
      steps: 2,
      lowResSize: 8,
    });
    expect(r.shape).toEqual([1, 3, 32, 64]);
  });

  it('refuses a stage-I model', async () => {
    await expect(
      upscaleImage(rt, tiny.text, stage(tiny.base), { image: testPicture(8, 8), prompt: 'x' }),
    ).rejects.toThrow(/not a super-resolution \(stage II\) model/);
  });
});

function relToScale(got: NDArray, want: NDArray): number {
  const g = got.data as Float32Array;
  const w = want.data as Float32Array;
  let err = 0;
  let scale = 1e-12;
  for (let i = 0; i < w.length; i++) {
    err = Math.max(err, Math.abs(g[i]! - w[i]!));
    scale = Math.max(scale, Math.abs(w[i]!));
  }
  return err / scale;
}

/**
 * No diffusers img2img fixture exists, but img2img IS the IF loop entered at timesteps[k] (diffusers
 * `get_timesteps` + `set_begin_index`). Feeding a zero image and the noise that `add_noise` turns
 * into the recorded x at step k, our loop must reproduce diffusers' recorded steps k… exactly as
 * the full loop does: this checks the trimmed schedule's prev_t, the strength arithmetic and the
 * stage-II conditioning path of the image pipelines against real upstream numbers.
 */
const loops = [
  {
    name: 'stage I (IFPipeline loop)',
    dir: 'if-pipeline-loop',
    unet: 'if-stage1-unet',
    guidance: 7,
    k: 2,
    tol: 1e-4,
  },
  {
    name: 'stage II (IFSuperResolutionPipeline loop)',
    dir: 'if-superres-loop',
    unet: 'if-stage2-unet',
    guidance: 4,
    k: 1,
  },
] as const;
for (const l of loops) {
  describe.skipIf(!fixture(l.dir) || !fixture(l.unet))(
    `img2img entered mid-schedule matches diffusers: ${l.name}`,
    () => {
      it('reproduces the recorded steps from timesteps[k] on', async () => {
        const dir = fixture(l.dir)!;
        const rec = await loadAll(join(dir, 'loop.safetensors'));
        const sched = (f: string) =>
          makeSchedule(parseSchedulerConfig(JSON.parse(readFileSync(join(dir, f), 'utf8'))));
        const schedule = sched('scheduler_config.json');
        const timesteps = rec.timesteps!.toArray();
        const n = timesteps.length;
        const start = rec[`step${l.k}.sample_in`]!;
        // x0 = 0 ⇒ add_noise gives √(1−ᾱ)·noise: choose noise so that this is the recorded x_k.
        const sb = Math.sqrt(1 - schedule.alphasCumprod[timesteps[l.k]!]!);
        const imageNoise = new NDArray(
          'float32',
          start.shape,
          Float32Array.from(start.data as Float32Array, (v) => v / sb),
        );
        const runner = new UNetRunner(rt, await loadUNet(fixture(l.unet)!));
        const errs: number[] = [];
        try {
          const out = await denoiseFromImage(
            runner,
            { promptEmbeds: rec.prompt_embeds!, negativePromptEmbeds: rec.negative_prompt_embeds! },
            NDArray.zeros('float32', start.shape),
            {
              schedule,
              timesteps,
              strength: (n - l.k + 0.5) / n,
              guidanceScale: l.guidance,
              thresholding: thresholdingFromConfig(schedule.config),
              generator: new Generator(0),
              imageNoise,
              varianceNoise: (i) => rec[`step${i + l.k}.variance_noise`],
              sr: rec.low_res_image
                ? {
                    rt,
                    lowRes: rec.low_res_image,
                    noiseLevel: 250,
                    imageNoisingSchedule: sched('image_noising_scheduler_config.json'),
                    augmentationNoise: rec.augmentation_noise!,
                  }
                : undefined,
              onStep: ({ i, t, sample }) => {
                expect(t).toBe(timesteps[i + l.k]);
                errs.push(relToScale(sample, rec[`step${i + l.k}.prev_sample`]!));
              },
            },
          );
          console.log(
            `${l.name} mid-schedule per-step error:`,
            errs.map((e) => e.toExponential(1)).join(' '),
          );
          expect(errs).toHaveLength(n - l.k);
          // same tolerance as the full-loop parity tests of test/pipelines/if_loop.test.ts
          for (const e of errs) expect(e).toBeLessThan(1e-3);
          expect(relToScale(out, rec.final_sample!)).toBeLessThan(1e-3);
        } finally {
          await runner.release();
        }
      });
    },
  );
}
