import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Generator } from '../../src/diffusion/noise.js';
import { NDArray } from '../../src/engine/ndarray.js';
import type { Runtime } from '../../src/engine/runtime.js';
import type { UNet2DConditionModel } from '../../src/models/unet/unet.js';
import { type SdUpscaleResult, sdUpscale } from '../../src/pipelines/sd_upscale.js';
import { cropTile, planTiles, runUNetTiled, TiledUNet, tileStarts } from '../../src/pipelines/tiled_unet.js';
import type { UNetCall, UNetLike } from '../../src/pipelines/unet_runner.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { encodeSdx4Prompts, loadSdx4Folder, type Sdx4Pipeline } from '../../src/platform/node/sdx4_folder.js';
import { buildTinySdx4Folder, SDX4_FIXTURE, type TinySdx4Folder } from '../helpers/tiny_sdx4.js';

function randn(shape: number[], seed: number): NDArray {
  return new Generator(seed).randnNDArray(shape);
}

/** A UNet stand-in with no spatial context: out[c] = 2·in[c] + in[c+1]² (+ its call count). */
class PointwiseUNet implements UNetLike {
  calls: number[][] = [];
  readonly unet = { config: { block_out_channels: [1, 1, 1, 1] } } as unknown as UNet2DConditionModel;
  async run(c: UNetCall): Promise<NDArray> {
    this.calls.push([...c.sample.shape]);
    const [b, ch, h, w] = c.sample.shape as [number, number, number, number];
    const x = c.sample.data as Float32Array;
    const out = new Float32Array(b * (ch - 1) * h * w);
    for (let n = 0; n < b; n++)
      for (let k = 0; k < ch - 1; k++)
        for (let p = 0; p < h * w; p++) {
          const a = x[(n * ch + k) * h * w + p]!;
          const nb = x[(n * ch + k + 1) * h * w + p]!;
          out[(n * (ch - 1) + k) * h * w + p] = 2 * a + nb * nb;
        }
    return new NDArray('float32', [b, ch - 1, h, w], out);
  }
  async release(): Promise<void> {}
}

function maxAbsDiff(a: NDArray, b: NDArray): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

function rms(a: NDArray): number {
  const x = a.data as Float32Array;
  return Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
}

/** RMS of a − b relative to the RMS of b. */
function relDiff(a: NDArray, b: NDArray): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  return (
    rms(
      new NDArray(
        'float32',
        a.shape,
        x.map((v, i) => v - y[i]!),
      ),
    ) / rms(b)
  );
}

describe('tile plan', () => {
  it('starts cover the axis with at least the requested overlap, aligned to the UNet factor', () => {
    expect(tileStarts(256, 144, 32, 8)).toEqual([0, 112]);
    expect(tileStarts(256, 128, 32, 8)).toEqual([0, 64, 128]);
    expect(tileStarts(64, 64, 16, 8)).toEqual([0]);
    for (const [size, tile, overlap] of [
      [256, 96, 16],
      [100, 32, 8],
      [77, 24, 8],
      [1000, 144, 32],
    ] as const) {
      const s = tileStarts(size, tile, overlap, 8);
      expect(s[0]).toBe(0);
      expect(s.at(-1)! + tile).toBe(size);
      for (let k = 1; k < s.length; k++) {
        expect(s[k - 1]! + tile - s[k]!).toBeGreaterThanOrEqual(overlap);
        if (k < s.length - 1) expect(s[k]! % 8).toBe(0);
      }
    }
  });

  it('blend weights are positive and sum to 1 at every latent pixel', () => {
    for (const [h, w, tileSize, overlap] of [
      [256, 256, 144, 32],
      [256, 256, 64, 16],
      [100, 72, 32, 8],
      [40, 24, 16, 8],
      [16, 16, 16, 8],
    ] as const) {
      const plan = planTiles(h, w, { tileSize, overlap }, 8);
      const sum = new Float64Array(h * w);
      let min = Number.POSITIVE_INFINITY;
      for (const t of plan.tiles)
        for (let i = 0; i < t.h; i++)
          for (let j = 0; j < t.w; j++) {
            const v = t.weights[i * t.w + j]!;
            min = Math.min(min, v);
            sum[(t.y + i) * w + t.x + j]! += v;
          }
      expect(min).toBeGreaterThan(0);
      let worst = 0;
      for (const s of sum) worst = Math.max(worst, Math.abs(s - 1));
      expect(worst, `${h}×${w} tile ${tileSize}/${overlap}`).toBeLessThan(1e-6);
    }
    expect(planTiles(256, 256, { tileSize: 144, overlap: 32 }, 8).tiles).toHaveLength(4);
  });

  it('weights ramp across an overlap: 1 away from it, smaller towards the neighbour', () => {
    const [a] = planTiles(8, 40, { tileSize: 24, overlap: 8 }, 8).tiles;
    // tiles at x = 0 and 16: a's last 8 columns are shared and fade out
    const row = Array.from(a!.weights.subarray(0, a!.w));
    expect(row.slice(0, 16).every((v) => v === 1)).toBe(true);
    for (let j = 16; j < 23; j++) expect(row[j + 1]!).toBeLessThan(row[j]!);
  });

  it('bad tile settings are clear errors', () => {
    expect(() => planTiles(64, 64, { tileSize: 12 }, 8)).toThrow(
      /tile size must be a positive multiple of 8.*got 12/,
    );
    expect(() => planTiles(64, 64, { tileSize: 0 }, 8)).toThrow(/tile size/);
    expect(() => planTiles(64, 64, { tileSize: 32, overlap: 32 }, 8)).toThrow(
      /overlap must be a multiple of 8 in \[0, 24\].*got 32/,
    );
    expect(() => planTiles(64, 64, { tileSize: 32, overlap: -8 }, 8)).toThrow(/overlap/);
    expect(() => planTiles(64, 64, { tileSize: 32, overlap: 4 }, 8)).toThrow(/overlap/);
    expect(() => new TiledUNet(new PointwiseUNet(), { tileSize: 20 })).toThrow(/tile size/);
  });
});

describe('runUNetTiled', () => {
  it('crops every tile and blends back exactly where the network has no spatial context', async () => {
    const unet = new PointwiseUNet();
    const call = {
      sample: randn([2, 7, 40, 24], 1),
      timestep: 5,
      encoderHiddenStates: randn([2, 3, 4], 2),
    };
    const whole = await unet.run(call);
    unet.calls = [];
    const tiled = await runUNetTiled(unet, call, { tileSize: 16, overlap: 8 });
    expect(unet.calls).toHaveLength(4 * 2);
    expect(unet.calls.every((s) => s.join() === '2,7,16,16')).toBe(true);
    expect(tiled.shape).toEqual([2, 6, 40, 24]);
    expect(maxAbsDiff(tiled, whole)).toBeLessThan(1e-5 * rms(whole));
  });

  it('tilesPerCall stacks tiles on the batch axis with their own rows of text states and class labels', async () => {
    // Pointwise, plus a per-row offset from the text states and the class label: a tile whose
    // conditioning rows were repeated in the wrong order would get another row's offset.
    class RowAwareUNet extends PointwiseUNet {
      override async run(c: UNetCall): Promise<NDArray> {
        const out = await super.run(c);
        const [b, ch, h, w] = out.shape as [number, number, number, number];
        const e = c.encoderHiddenStates.data as Float32Array;
        const per = e.length / b;
        const d = out.data as Float32Array;
        for (let n = 0; n < b; n++) {
          const off = e[n * per]! + 10 * Number((c.classLabels!.data as BigInt64Array)[n]!);
          for (let k = 0; k < ch * h * w; k++) d[n * ch * h * w + k]! += off;
        }
        return out;
      }
    }
    const unet = new RowAwareUNet();
    const call = {
      sample: randn([2, 7, 40, 24], 1),
      timestep: 5,
      encoderHiddenStates: randn([2, 3, 4], 2),
      classLabels: NDArray.i64([2], [3, 250]),
    };
    const whole = await unet.run(call);
    const one = await runUNetTiled(unet, call, { tileSize: 16, overlap: 8 });
    unet.calls = [];
    const three = await runUNetTiled(unet, call, { tileSize: 16, overlap: 8, tilesPerCall: 3 });
    // 8 tiles: calls of 3, 3 and 2 tiles, each with the batch of 2
    expect(unet.calls.map((c) => c[0])).toEqual([6, 6, 4]);
    expect(maxAbsDiff(three, one)).toBe(0);
    expect(maxAbsDiff(three, whole)).toBeLessThan(1e-5 * rms(whole));
    expect(() => new TiledUNet(unet, { tileSize: 16, tilesPerCall: 0 })).toThrow(/tiles per call/);
  });

  it('cropTile takes the [y, x] window of every batch row and channel', () => {
    const a = new NDArray(
      'float32',
      [1, 2, 4, 5],
      Float32Array.from({ length: 40 }, (_, i) => i),
    );
    expect(Array.from(cropTile(a, { y: 1, x: 2, h: 2, w: 3 }).data as Float32Array)).toEqual([
      7, 8, 9, 12, 13, 14, 27, 28, 29, 32, 33, 34,
    ]);
  });
});

describe.skipIf(!SDX4_FIXTURE)('tiled UNet in the SD x4 upscaler (tiny random folder)', () => {
  let folder: TinySdx4Folder;
  let rt: Runtime;
  let p: Sdx4Pipeline;
  let prompts: Awaited<ReturnType<typeof encodeSdx4Prompts>>;
  // 32×32 low-res image → 32×32×4 latents → 128×128 output
  const image = new NDArray(
    'float32',
    [1, 3, 32, 32],
    Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => 0.5 + 0.4 * Math.sin(i / 7)),
  );
  const upscale = (unet: UNetLike): Promise<SdUpscaleResult> =>
    sdUpscale(
      { ...p.components, unet },
      { image, ...prompts, steps: 3, noiseLevel: 20, generator: new Generator(4) },
    );

  beforeAll(async () => {
    folder = buildTinySdx4Folder()!;
    rt = createRuntime({ threads: 1 });
    p = await loadSdx4Folder(folder.dir, { runtime: rt });
    prompts = await encodeSdx4Prompts(p, ['a red square']);
  });
  afterAll(async () => {
    await p?.release();
    folder?.cleanup();
  });

  it('one tile covering the whole latent gives exactly the untiled result', async () => {
    const untiled = await upscale(p.components.unet);
    for (const tileSize of [32, 64]) {
      const one = await upscale(new TiledUNet(p.components.unet, { tileSize, overlap: 16 }));
      expect(Array.from(one.latents.data as Float32Array)).toEqual(
        Array.from(untiled.latents.data as Float32Array),
      );
      expect(Array.from(one.image!.data as Float32Array)).toEqual(
        Array.from(untiled.image!.data as Float32Array),
      );
    }
  });

  it('several tiles: right shape, deterministic, close to (but not equal to) the untiled result', async () => {
    const untiled = await upscale(p.components.unet);
    const tiled = () => upscale(new TiledUNet(p.components.unet, { tileSize: 16, overlap: 8 }));
    const a = await tiled();
    const b = await tiled();
    expect(a.latents.shape).toEqual([1, 4, 32, 32]);
    expect(a.image!.shape).toEqual([1, 3, 128, 128]);
    expect(Array.from(a.image!.data as Float32Array)).toEqual(Array.from(b.image!.data as Float32Array));
    // Tiling changes the prediction only near tile borders (seam context): measured 12% RMS of the
    // latents for 16-px tiles on this 3-downsample UNet, against ~100% between two seeds.
    const otherSeed = await sdUpscale(p.components, {
      image,
      ...prompts,
      steps: 3,
      noiseLevel: 20,
      generator: new Generator(5),
    });
    const tilingRel = relDiff(a.latents, untiled.latents);
    expect(maxAbsDiff(a.latents, untiled.latents)).toBeGreaterThan(0);
    expect(tilingRel).toBeLessThan(0.2);
    expect(tilingRel).toBeLessThan(0.25 * relDiff(otherSeed.latents, untiled.latents));
  });

  it('loadSdx4Folder({ tiled }) wraps the UNet; bad tile settings fail before loading the rest', async () => {
    const q = await loadSdx4Folder(folder.dir, { runtime: rt, tiled: { tileSize: 16, overlap: 8 } });
    try {
      expect(q.components.unet).toBeInstanceOf(TiledUNet);
      expect((q.components.unet as TiledUNet).options).toEqual({ tileSize: 16, overlap: 8 });
    } finally {
      await q.release();
    }
    const r = await loadSdx4Folder(folder.dir, { runtime: rt, tiled: true });
    try {
      expect(r.components.unet).toBeInstanceOf(TiledUNet);
    } finally {
      await r.release();
    }
    await expect(loadSdx4Folder(folder.dir, { runtime: rt, tiled: { tileSize: 15 } })).rejects.toThrow(
      /tile size must be a positive multiple of 8/,
    );
  });
});
