import { describe, expect, it } from 'vitest';
import { Generator } from '../../src/diffusion/noise.js';
import { thresholdingFromConfig } from '../../src/diffusion/thresholding.js';
import { setTimesteps } from '../../src/diffusion/timesteps.js';
import type { NDArray } from '../../src/engine/ndarray.js';
import { imagesToTensor, tensorToImages } from '../../src/io/image.js';
import { type GrayImage, imageForStage, prepareConditioning } from '../../src/pipelines/img2img.js';
import {
  extendCanvas,
  inpaint,
  inpaintImages,
  maskForStage,
  parseExtend,
} from '../../src/pipelines/inpaint.js';
import { UNetRunner } from '../../src/pipelines/unet_runner.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { TINY_BASE_SIZE, TINY_SR_SIZE, testPicture } from '../helpers/tiny_if.js';
import { stage, useTinyIfPipelines } from '../helpers/tiny_if_pipelines.js';

const rt = createRuntime({ threads: 2 });
const tiny = useTinyIfPipelines(rt);

/** White (repaint) on the left half, black (keep) on the right. */
function leftHalfMask(w: number, h: number): GrayImage {
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w / 2; x++) data[y * w + x] = 255;
  return { width: w, height: h, data };
}

/** Max |a − b| over pixels where mask = 0 (kept) and where mask = 1 (repainted), all channels. */
function regionDiffs(a: NDArray, b: NDArray, mask: NDArray): { kept: number; repainted: number } {
  const [n, c, h, w] = a.shape as number[];
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  const m = mask.data as Float32Array;
  let kept = 0;
  let repainted = 0;
  for (let i = 0; i < n! * c!; i++) {
    for (let p = 0; p < h! * w!; p++) {
      const d = Math.abs(x[i * h! * w! + p]! - y[i * h! * w! + p]!);
      if (m[p] === 0) kept = Math.max(kept, d);
      else repainted = Math.max(repainted, d);
    }
  }
  return { kept, repainted };
}

describe('mask preprocessing (diffusers preprocess_mask_image)', () => {
  it('resizes like the image and binarises at 0.5', () => {
    const m = maskForStage(leftHalfMask(64, 64), 16);
    expect(m.shape).toEqual([1, 1, 16, 16]);
    const d = m.data as Float32Array;
    expect(new Set(d)).toEqual(new Set([0, 1]));
    expect(d[0]).toBe(1);
    expect(d[15]).toBe(0);
    const grey = maskForStage({ width: 4, height: 4, data: new Uint8Array(16).fill(127) }, 4);
    expect(Array.from(grey.data as Float32Array).every((v) => v === 0)).toBe(true);
    const light = maskForStage({ width: 4, height: 4, data: new Uint8Array(16).fill(128) }, 4);
    expect(Array.from(light.data as Float32Array).every((v) => v === 1)).toBe(true);
  });
});

describe('inpainting on tiny IF folders', () => {
  const picture = testPicture(TINY_BASE_SIZE, TINY_BASE_SIZE);

  it('stage I keeps every masked-out pixel equal to the original at every step', async () => {
    const cond = await prepareConditioning(tiny.text, { prompt: 'a blue circle' });
    const runner = new UNetRunner(rt, tiny.base.unet);
    const image = imagesToTensor([picture]);
    const mask = maskForStage(leftHalfMask(TINY_BASE_SIZE, TINY_BASE_SIZE), TINY_BASE_SIZE);
    const perStep: { kept: number; repainted: number }[] = [];
    try {
      const out = await inpaint(runner, cond, image, mask, {
        schedule: tiny.base.schedule,
        timesteps: setTimesteps(8, tiny.base.schedule.config),
        guidanceScale: 7,
        thresholding: thresholdingFromConfig(tiny.base.schedule.config),
        generator: new Generator(5),
        strength: 1,
        onStep: ({ sample }) => {
          perStep.push(regionDiffs(sample, image, mask));
        },
      });
      expect(perStep).toHaveLength(8);
      // diffusers blends with the clean original: (1 − 0)·x0 + 0·x is x0 bit for bit.
      for (const s of perStep) expect(s.kept).toBe(0);
      const final = regionDiffs(out, image, mask);
      expect(final.kept).toBe(0);
      expect(final.repainted).toBeGreaterThan(0.05);
    } finally {
      await runner.release();
    }
  });

  it('both stages: shapes, determinism, kept pixels preserved in the PNG at each resolution', async () => {
    const big = testPicture(64, 64);
    const maskImg = leftHalfMask(64, 64);
    const run = (seed: number) =>
      inpaintImages(rt, tiny.text, stage(tiny.base), stage(tiny.sr), {
        image: big,
        mask: maskImg,
        prompt: 'a blue circle',
        seed,
        base: { steps: 4 },
        sr: { steps: 5 },
      });
    const r = await run(2);
    expect(r.base.shape).toEqual([1, 3, TINY_BASE_SIZE, TINY_BASE_SIZE]);
    expect(r.sr!.shape).toEqual([1, 3, TINY_SR_SIZE, TINY_SR_SIZE]);
    for (const [out, size] of [
      [r.base, TINY_BASE_SIZE],
      [r.sr!, TINY_SR_SIZE],
    ] as const) {
      const original = (await imageForStage(big, size)).tensor;
      const mask = maskForStage(maskImg, size);
      const d = regionDiffs(out, original, mask);
      expect(d.kept).toBe(0);
      expect(d.repainted).toBeGreaterThan(0.05);
      // 8-bit round trip: kept pixels of the written image equal the resized input's.
      const png = tensorToImages(out)[0]!;
      const src = tensorToImages(original)[0]!;
      for (let p = 0; p < size * size; p++) {
        if ((mask.data as Float32Array)[p] === 0) {
          for (let c = 0; c < 3; c++) expect(png.data[p * 3 + c]).toBe(src.data[p * 3 + c]);
        }
      }
    }
    const again = await run(2);
    expect(Array.from(again.sr!.data as Float32Array)).toEqual(Array.from(r.sr!.data as Float32Array));
    // Back-projection corrects the repainted region only: kept pixels stay the input's.
    const bp = await inpaintImages(rt, tiny.text, stage(tiny.base), stage(tiny.sr), {
      image: big,
      mask: maskImg,
      prompt: 'a blue circle',
      seed: 2,
      base: { steps: 4 },
      sr: { steps: 5, backProjection: true },
    });
    const hiMask = maskForStage(maskImg, TINY_SR_SIZE);
    expect(regionDiffs(bp.sr!, (await imageForStage(big, TINY_SR_SIZE)).tensor, hiMask).kept).toBe(0);
    expect(regionDiffs(bp.sr!, r.sr!, hiMask).repainted).toBeGreaterThan(1e-3);
  });

  it('rejects a mask whose size differs from the image', async () => {
    await expect(
      inpaintImages(rt, tiny.text, stage(tiny.base), undefined, {
        image: picture,
        mask: leftHalfMask(8, 8),
        prompt: 'x',
      }),
    ).rejects.toThrow(/the mask is 8×8 but the image is 16×16/);
  });
});

describe('outpainting', () => {
  it('parses --extend', () => {
    expect(parseExtend('left=64,right=0,top=32,bottom=0')).toEqual({
      left: 64,
      right: 0,
      top: 32,
      bottom: 0,
    });
    expect(parseExtend('bottom=8')).toEqual({ left: 0, right: 0, top: 0, bottom: 8 });
    expect(() => parseExtend('left=-4')).toThrow(/not side=pixels/);
    expect(() => parseExtend('middle=4')).toThrow(/not side=pixels/);
    expect(() => parseExtend('left=0')).toThrow(/nothing to outpaint/);
    expect(() => parseExtend('left=1,left=2')).toThrow(/twice/);
  });

  it('pads the canvas (edge or grey) and masks exactly the new border', () => {
    const img = testPicture(4, 3);
    const { image, mask } = extendCanvas(img, { left: 2, right: 1, top: 1, bottom: 0 }, 'edge');
    expect([image.width, image.height, mask.width, mask.height]).toEqual([7, 4, 7, 4]);
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 7; x++) {
        const inside = x >= 2 && x < 6 && y >= 1;
        expect(mask.data[y * 7 + x]).toBe(inside ? 0 : 255);
        const sx = Math.min(Math.max(x - 2, 0), 3);
        const sy = Math.min(Math.max(y - 1, 0), 2);
        for (let c = 0; c < 3; c++)
          expect(image.data[(y * 7 + x) * 3 + c]).toBe(img.data[(sy * 4 + sx) * 3 + c]);
      }
    }
    const grey = extendCanvas(img, { left: 1, right: 0, top: 0, bottom: 0 }, 'grey');
    expect(Array.from(grey.image.data.subarray(0, 3))).toEqual([128, 128, 128]);
    // an inner mask is carried into the canvas
    const inner = { width: 4, height: 3, data: new Uint8Array(12).fill(255) };
    expect(
      extendCanvas(img, { left: 1, right: 0, top: 0, bottom: 0 }, 'edge', inner).mask.data.every(
        (v) => v === 255,
      ),
    ).toBe(true);
  });

  it('outpaints a widened canvas end to end, keeping the original pixels', async () => {
    const img = testPicture(TINY_BASE_SIZE, TINY_BASE_SIZE);
    const { image, mask } = extendCanvas(img, { left: 16, right: 0, top: 0, bottom: 0 });
    const r = await inpaintImages(rt, tiny.text, stage(tiny.base), undefined, {
      image,
      mask,
      prompt: 'more',
      base: { steps: 3 },
    });
    // 32×16 keeps its aspect ratio at stage I (short side 16)
    expect(r.base.shape).toEqual([1, 3, 16, 32]);
    const d = regionDiffs(r.base, imagesToTensor([image]), maskForStage(mask, 16));
    expect(d.kept).toBe(0);
  });
});
