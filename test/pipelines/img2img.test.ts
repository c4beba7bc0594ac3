import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimesteps } from '../../src/diffusion/timesteps.js';
import { ImagenError } from '../../src/engine/errors.js';
import type { NDArray } from '../../src/engine/ndarray.js';
import { InMemoryT5Encoder } from '../../src/models/t5/t5_encoder.js';
import type { ProgressEvent } from '../../src/pipelines/events.js';
import { ifResizeTarget, resizeRgb, strengthTimesteps, varyImages } from '../../src/pipelines/img2img.js';
import type { StageModels, TextModels } from '../../src/pipelines/text_to_image.js';
import { type LoadedPipeline, loadPipelineFolder } from '../../src/platform/node/pipeline_folder.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import {
  buildTinyIfFolders,
  TINY_BASE_SIZE,
  TINY_SR_SIZE,
  type TinyIfFolders,
  testPicture,
} from '../helpers/tiny_if.js';

const rt = createRuntime({ threads: 2 });
let folders: TinyIfFolders;
let base: LoadedPipeline;
let sr: LoadedPipeline;
let text: TextModels;

const stage = (p: LoadedPipeline): StageModels => ({
  unet: p.unet,
  schedule: p.schedule,
  imageNoisingSchedule: p.imageNoisingSchedule,
});

beforeAll(async () => {
  folders = await buildTinyIfFolders();
  base = await loadPipelineFolder(folders.base);
  sr = await loadPipelineFolder(folders.sr);
  text = {
    encoder: new InMemoryT5Encoder(base.textEncoder!, rt),
    tokenizer: base.tokenizer!,
    maxLength: base.maxTextLength,
  };
});
afterAll(async () => {
  await text?.encoder.release();
  folders?.cleanup();
});

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
      varyImages(rt, text, stage(base), undefined, {
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
      varyImages(rt, text, stage(base), stage(sr), {
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
    const r = await varyImages(rt, text, stage(base), undefined, {
      image: testPicture(64, 32),
      prompt: 'wide',
      base: { steps: 2, strength: 1 },
    });
    expect(r.base.shape).toEqual([1, 3, 16, 32]);
  });

  it('names the mismatch when a stage-II model is given as stage I and vice versa', async () => {
    const opts = { image: picture, prompt: 'x', base: { steps: 2 } };
    await expect(varyImages(rt, text, stage(sr), undefined, opts)).rejects.toThrow(
      /super-resolution \(stage II\) model \(in_channels 6, class embedding 'timestep'\)/,
    );
    await expect(varyImages(rt, text, stage(base), stage(base), opts)).rejects.toThrow(
      /not a super-resolution \(stage II\) model \(in_channels 3, class embedding none\)/,
    );
  });
});
