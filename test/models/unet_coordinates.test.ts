import { describe, expect, it } from 'vitest';
import type { Tensor, Trace } from '../../src/engine/graph.js';
import { NDArray, Runtime } from '../../src/engine/index.js';
import * as F from '../../src/engine/ops/index.js';
import { parseUNetConfig } from '../../src/models/unet/config.js';
import { coordinateChannels, UNet2DConditionModel } from '../../src/models/unet/unet.js';
import { NodeBackend } from '../../src/platform/node/ort.js';
import { unetConfigJson } from '../../src/platform/node/pipeline_folder.js';
import { tinyUNetConfig } from '../../src/train/config.js';
import { rng } from '../helpers/random.js';
import { maxAbsErr } from '../reference/fd.js';

const rt = new Runtime(new NodeBackend({ threads: 2 }));
const SIZE = 16;
const TEXT = 64;

function config(coordinates: 0 | 2): Record<string, unknown> {
  return {
    ...tinyUNetConfig({ stage: 'base', size: SIZE, channels: [32, 32], textDim: TEXT }),
    coordinate_channels: coordinates,
  };
}

function randomArray(shape: number[], seed: number): NDArray {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return NDArray.f32(
    shape,
    Array.from({ length: n }, () => r() * 2 - 1),
  );
}

async function run(unet: UNet2DConditionModel, sample: NDArray): Promise<Float32Array> {
  const f = rt.compile((i) =>
    unet.forward({ sample: i.sample!, timestep: i.timestep!, encoderHiddenStates: i.enc! }),
  );
  const out = await f.run({
    sample,
    timestep: NDArray.i64([1], [500]),
    enc: randomArray([sample.shape[0]!, 8, TEXT], 9),
  });
  await f.release();
  return out.output!.data as Float32Array;
}

/** The coordinate UNet with every weight of `plain`, conv_in widened by `extra` (zeros by default). */
function withCoordinates(plain: UNet2DConditionModel, extra?: (o: number, c: number) => number) {
  const xy = new UNet2DConditionModel(config(2));
  const sd = plain.stateDict();
  for (const p of xy.parameters()) {
    const v = sd[p.name]!;
    if (p.name !== 'conv_in.weight') {
      p.set(v);
      continue;
    }
    const [o, i, kh, kw] = v.shape as number[];
    const k = kh! * kw!;
    const w = new Float32Array(o! * (i! + 2) * k);
    for (let a = 0; a < o!; a++) {
      w.set((v.data as Float32Array).subarray(a * i! * k, (a + 1) * i! * k), a * (i! + 2) * k);
      if (extra)
        for (let c = 0; c < 2; c++)
          for (let j = 0; j < k; j++) w[(a * (i! + 2) + i! + c) * k + j] = extra(a, c);
    }
    p.set(NDArray.f32([o!, i! + 2, kh!, kw!], w));
  }
  return xy;
}

describe('UNet coordinate channels (coordinate_channels: 2)', () => {
  it('x runs −1 → 1 along the width, y along the height', () => {
    const c = coordinateChannels(3, 2).data as Float32Array;
    expect(Array.from(c)).toEqual([-1, 1, -1, 1, -1, 1, -1, -1, 0, 0, 1, 1]);
    expect(Array.from(coordinateChannels(1, 1).data as Float32Array)).toEqual([0, 0]);
  });

  it('zero coordinate weights reproduce the plain UNet; non-zero ones change it', async () => {
    const plain = new UNet2DConditionModel(config(0)).initialize(3);
    expect(plain.convIn.weight.shape).toEqual([32, 3, 3, 3]);
    const sample = randomArray([2, 3, SIZE, SIZE], 4);
    const want = await run(plain, sample);
    const zero = withCoordinates(plain);
    expect(zero.convIn.weight.shape).toEqual([32, 5, 3, 3]);
    expect(maxAbsErr(await run(zero, sample), NDArray.f32([want.length], want))).toBeLessThan(1e-5);
    const used = withCoordinates(plain, (o, c) => (o % 2 ? 0.2 : -0.2) * (c + 1));
    expect(maxAbsErr(await run(used, sample), NDArray.f32([want.length], want))).toBeGreaterThan(1e-3);
  });

  it('the coordinate weights train: their gradient matches finite differences', async () => {
    const xy = withCoordinates(
      new UNet2DConditionModel(config(0)).initialize(3),
      (o, c) => 0.1 * (c - o / 32),
    );
    const sample = randomArray([1, 3, SIZE, SIZE], 4);
    const enc = randomArray([1, 8, TEXT], 9);
    const mix = randomArray([1, 6, SIZE, SIZE], 5);
    const loss = (tr: Trace, i: Record<string, Tensor>) =>
      F.reduceSum(
        F.mul(
          xy.forward({ sample: i.sample!, timestep: i.timestep!, encoderHiddenStates: i.enc! }),
          tr.constant(mix),
        ),
      );
    const feeds = { sample, timestep: NDArray.i64([1], [500]), enc };
    const g = rt.compileGrad((i, tr) => loss(tr, i), xy.parameters());
    const { grads } = await g.run(feeds);
    await g.release();
    const w = xy.convIn.weight;
    const grad = grads.get(w)!;
    // Output channel 5, coordinate channel y (input 4), kernel centre.
    const at = (5 * 5 + 4) * 9 + 4;
    const value = async (delta: number) => {
      const v = new Float32Array(w.value!.data as Float32Array);
      v[at]! += delta;
      w.set(NDArray.f32([...w.shape], v));
      const f = rt.compile((i, tr) => loss(tr, i));
      const out = (await f.run(feeds)).output!.data as Float32Array;
      await f.release();
      w.set(NDArray.f32([...w.shape], new Float32Array(v.map((x, k) => (k === at ? x - delta : x)))));
      return out[0]!;
    };
    const h = 1e-2;
    const fd = ((await value(h)) - (await value(-h))) / (2 * h);
    expect(Math.abs(grad[at]!)).toBeGreaterThan(1e-3);
    expect(Math.abs(grad[at]! - fd)).toBeLessThan(2e-2 * Math.max(1, Math.abs(fd)));
  });

  it('config: only 0 or 2; written to config.json only when used', () => {
    expect(parseUNetConfig(config(0)).coordinate_channels).toBe(0);
    expect(() => parseUNetConfig({ ...config(0), coordinate_channels: 1 })).toThrow(/coordinate_channels/);
    const plainJson = unetConfigJson(parseUNetConfig(config(0)));
    expect('coordinate_channels' in plainJson).toBe(false);
    const xyJson = unetConfigJson(parseUNetConfig(config(2)));
    expect(xyJson.coordinate_channels).toBe(2);
    expect(parseUNetConfig(xyJson).coordinate_channels).toBe(2);
  });
});
