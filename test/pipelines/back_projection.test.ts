/**
 * Back-projection of a super-resolution output onto its low-res input: the colour drift a small
 * stage II adds is removed at the low resolution, the detail it added is kept.
 */
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseOnOff } from '../../src/cli/image_flags.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { areaMatrix, resizeArea } from '../../src/engine/ops/resample.js';
import { backProject } from '../../src/pipelines/back_projection.js';
import { parseGenerationConfig } from '../../src/pipelines/generation_config.js';
import { varyImages } from '../../src/pipelines/img2img.js';
import { generateImages, type SrStageOptions } from '../../src/pipelines/text_to_image.js';
import { loadPipelineFolder, stageModels } from '../../src/platform/node/pipeline_folder.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { useTmpDir } from '../helpers/test_dirs.js';
import { testPicture } from '../helpers/tiny_if.js';
import { stage, useTinyIfPipelines } from '../helpers/tiny_if_pipelines.js';
import { maxAbsErr } from '../reference/fd.js';

const rt = createRuntime({ threads: 1 });
const p = useTinyIfPipelines(rt);
const tmp = useTmpDir('imagen-bp-');

async function down(x: NDArray, h: number, w: number): Promise<NDArray> {
  const f = rt.compile(({ x: t }) => resizeArea(t!, h, w), { name: 'down' });
  try {
    return (await f.run({ x })).output!;
  } finally {
    await f.release();
  }
}

function filled(shape: number[], at: (n: number, c: number, y: number, x: number) => number): NDArray {
  const [N, C, H, W] = shape as [number, number, number, number];
  const d = new Float32Array(N * C * H * W);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) d[((n * C + c) * H + y) * W + x] = at(n, c, y, x);
  return new NDArray('float32', shape, d);
}

function meanAbsErr(a: NDArray, b: NDArray): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.abs(x[i]! - y[i]!);
  return s / x.length;
}

describe('area resampling', () => {
  it('averages whole cells for integer ratios and splits cut pixels for others', () => {
    expect([...areaMatrix(4, 2).data]).toEqual([0.5, 0.5, 0, 0, 0, 0, 0.5, 0.5]);
    const m = [...areaMatrix(3, 2).data];
    const want = [2 / 3, 1 / 3, 0, 0, 1 / 3, 2 / 3];
    for (const [i, v] of want.entries()) expect(m[i]).toBeCloseTo(v, 6);
    for (const [inS, outS] of [
      [7, 3],
      [256, 32],
      [10, 10],
    ] as const) {
      const a = areaMatrix(inS, outS).data as Float32Array;
      for (let o = 0; o < outS; o++) {
        let s = 0;
        for (let i = 0; i < inS; i++) s += a[o * inS + i]!;
        expect(s).toBeCloseTo(1, 5);
      }
    }
  });
});

describe('backProject', () => {
  it('removes a colour shift exactly and keeps detail finer than a low-res pixel', async () => {
    // Low-res: a flat colour per channel. Output: that colour shifted by 0.3, plus a ±0.2
    // checkerboard whose mean over every 4×4 cell is 0 (detail stage II may add).
    const low = filled([2, 3, 4, 4], (n, c) => 0.1 * c - 0.2 * n);
    const out = filled([2, 3, 16, 16], (n, c, y, x) => 0.1 * c - 0.2 * n + 0.3 + ((x + y) % 2 ? 0.2 : -0.2));
    const bp = await backProject(rt, out, low);
    const want = filled([2, 3, 16, 16], (n, c, y, x) => 0.1 * c - 0.2 * n + ((x + y) % 2 ? 0.2 : -0.2));
    expect(maxAbsErr(bp, want)).toBeLessThan(1e-5);
    expect(maxAbsErr(await down(bp, 4, 4), low)).toBeLessThan(1e-5);
  });

  it('pulls a varying output towards the low-res image at any ratio, clipped to [−1, 1]', async () => {
    const low = filled([1, 3, 5, 5], (_n, c, y, x) => Math.sin(x + 2 * y + c) * 0.6);
    const out = filled([1, 3, 12, 12], (_n, c, y, x) => Math.cos(0.7 * x - y + c) * 0.9 + 0.4);
    const before = maxAbsErr(await down(out, 5, 5), low);
    const bp = await backProject(rt, out, low);
    expect(bp.shape).toEqual([1, 3, 12, 12]);
    expect(maxAbsErr(await down(bp, 5, 5), low)).toBeLessThan(before / 2);
    expect(Math.max(...(bp.data as Float32Array).map(Math.abs))).toBeLessThanOrEqual(1);
  });

  it('refuses shapes that do not pair', async () => {
    const out = filled([1, 3, 8, 8], () => 0);
    for (const lowShape of [
      [1, 1, 4, 4], // channels
      [1, 3, 16, 16], // larger than the output
      [2, 3, 4, 4], // batch
    ])
      await expect(
        backProject(
          rt,
          out,
          filled(lowShape, () => 0),
        ),
      ).rejects.toThrow(/back-projection needs/);
  });
});

describe('back-projection in the cascade', () => {
  const run = async (sr: ReturnType<typeof stage>, opts: SrStageOptions = {}) =>
    generateImages(rt, p.text, stage(p.base), sr, {
      prompt: 'a red square',
      seed: 3,
      base: { steps: 2 },
      sr: { steps: 2, noiseLevel: 100, ...opts },
    });

  it('is off by default (as IF), on per call or by the folder, and brings stage II to stage I', async () => {
    const plain = await run(stage(p.sr));
    const on = await run(stage(p.sr), { backProjection: true });
    expect(maxAbsErr(on.base, plain.base)).toBe(0);
    const [, , h, w] = plain.base.shape as number[];
    // Mean, not max: a random tiny stage II overshoots [−1, 1] where clipping limits any correction.
    const errPlain = meanAbsErr(await down(plain.sr!, h!, w!), plain.base);
    const errOn = meanAbsErr(await down(on.sr!, h!, w!), on.base);
    expect(errOn).toBeLessThan(errPlain * 0.7); // measured 0.75 → 0.42
    expect(maxAbsErr(on.sr!, await backProject(rt, plain.sr!, plain.base))).toBeLessThan(1e-6);

    const dir = tmp.file('sr-bp');
    cpSync(p.folders.sr, dir, { recursive: true });
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ back_projection: true }));
    const folder = stageModels(await loadPipelineFolder(dir));
    expect(folder.defaults?.backProjection).toBe(true);
    expect(maxAbsErr((await run(folder)).sr!, on.sr!)).toBe(0);
    expect(maxAbsErr((await run(folder, { backProjection: false })).sr!, plain.sr!)).toBe(0);
  }, 60_000);

  it('vary applies it to its stage-II output the same way', async () => {
    const image = testPicture(32, 32);
    const vary = (sr: SrStageOptions) =>
      varyImages(rt, p.text, stage(p.base), stage(p.sr), {
        prompt: 'a red square',
        image,
        seed: 4,
        base: { steps: 2 },
        sr: { steps: 2, noiseLevel: 100, ...sr },
      });
    const plain = await vary({});
    const on = await vary({ backProjection: true });
    expect(maxAbsErr(on.sr!, await backProject(rt, plain.sr!, plain.base))).toBeLessThan(1e-6);
    expect(maxAbsErr(on.sr!, plain.sr!)).toBeGreaterThan(1e-3);
  }, 60_000);

  it('generation_config key and the on/off flag parse strictly', () => {
    expect(parseGenerationConfig({ back_projection: true }, 'g.json')).toEqual({ backProjection: true });
    expect(() => parseGenerationConfig({ back_projection: 'yes' }, 'g.json')).toThrow(
      /g\.json: bad value for back_projection/,
    );
    expect(parseOnOff(undefined, '--sr-back-projection')).toBeUndefined();
    expect(parseOnOff('on', '--sr-back-projection')).toBe(true);
    expect(parseOnOff('off', '--sr-back-projection')).toBe(false);
    expect(() => parseOnOff('true', '--sr-back-projection')).toThrow(
      /--sr-back-projection must be on or off/,
    );
  });
});
