/**
 * ImageDataset.load decodes many files at once: rows keep the order of the folders' entries, a
 * folder given twice (to weigh it more in a mix) is decoded once, progress counts every row, and
 * one unreadable file fails the load naming it; a training run reports the load's progress.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { NDArray } from '../../src/engine/ndarray.js';
import { imagesToTensor } from '../../src/io/image.js';
import { ImageDataset } from '../../src/platform/node/dataset.js';
import * as image from '../../src/platform/node/image.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { runTraining } from '../../src/platform/node/train_run.js';
import { tinyTrainConfig } from '../../src/train/config.js';
import { writeShapesDataset } from '../helpers/shapes.js';

vi.mock('../../src/platform/node/image.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../src/platform/node/image.js')>();
  return { ...orig, readImage: vi.fn(orig.readImage), readImageAtSizes: vi.fn(orig.readImageAtSizes) };
});

const N = 20;
const px = (t: NDArray) => Array.from(t.data as Float32Array);
let root: string;
let dir: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-dataset-load-'));
  dir = join(root, 'shapes');
  await writeShapesDataset(dir, N, 32);
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('ImageDataset.load', () => {
  it('keeps the entries’ order while decoding several files at once', async () => {
    const ds = await ImageDataset.load(dir, 16);
    const all = Array.from({ length: N }, (_, i) => i);
    const direct = imagesToTensor(
      await Promise.all(all.map((i) => image.readImage(ds.entries[i]!.file, { width: 16, height: 16 }))),
    );
    expect(px(ds.batch(all).images)).toEqual(px(direct));
  });

  it('decodes a folder given twice once, and reports progress for every row', async () => {
    const read = vi.mocked(image.readImage);
    const atSizes = vi.mocked(image.readImageAtSizes);
    read.mockClear();
    atSizes.mockClear();
    const progress: [number, number][] = [];
    const ds = await ImageDataset.load([dir, dir], 16, 4, (done, total) => progress.push([done, total]));
    expect(ds.length).toBe(2 * N);
    // One decode per distinct file, giving both the full-size and the low-resolution image.
    expect(atSizes).toHaveBeenCalledTimes(N);
    expect(read).not.toHaveBeenCalled();
    expect(progress).toEqual(Array.from({ length: 2 * N }, (_, i) => [i + 1, 2 * N]));
    const first = ds.batch([0, 7, N - 1]);
    const second = ds.batch([N, N + 7, 2 * N - 1]);
    expect(px(second.images)).toEqual(px(first.images));
    expect(px(second.lowRes!)).toEqual(px(first.lowRes!));
    expect(second.captions).toEqual(first.captions);
  });

  it('decoding once and resizing twice gives the pixels of two separate reads', async () => {
    // Not square, so the center crop of 'cover' matters too.
    const file = join(root, 'wide.png');
    const noise = Uint8Array.from({ length: 40 * 24 * 3 }, (_, i) => (i * 7919) % 251);
    await image.writePng(file, { width: 40, height: 24, data: noise });
    const sizes = [
      { width: 16, height: 16 },
      { width: 5, height: 5 },
    ];
    const [big, small] = await image.readImageAtSizes(file, sizes);
    expect(big).toEqual(await image.readImage(file, sizes[0]));
    expect(small).toEqual(await image.readImage(file, sizes[1]));
  });

  it('fails with FILE_INVALID naming the one file that is not an image', async () => {
    const bad = join(root, 'bad');
    await writeShapesDataset(bad, N, 32);
    await writeFile(join(bad, 'img_13.png'), 'not a png');
    await expect(ImageDataset.load(bad, 16)).rejects.toMatchObject({
      code: 'FILE_INVALID',
      message: expect.stringContaining('img_13.png'),
    });
  });

  it('a training run reports the load’s progress before its first step', async () => {
    const events: string[] = [];
    await runTraining({
      dataDir: dir,
      outDir: join(root, 'run'),
      config: tinyTrainConfig('base', 16),
      overrides: { maxSteps: 1, batchSize: 2 },
      runtime: createRuntime(),
      onLoadProgress: (done, total) => events.push(`${done}/${total}`),
      onStep: (s) => events.push(`step ${s.step}`),
    });
    expect(events).toEqual([...Array.from({ length: N }, (_, i) => `${i + 1}/${N}`), 'step 1']);
  }, 60_000);
});
