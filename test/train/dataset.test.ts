/**
 * Captioned image folders and the epoch order: the two layouts (Hugging Face imagefolder with
 * metadata.jsonl, and image + .txt pairs) give identical batches; super-resolution datasets carry
 * the low-resolution copy; DataOrder visits every item once per epoch and resumes exactly.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImagenError } from '../../src/engine/errors.js';
import type { NDArray } from '../../src/engine/ndarray.js';
import * as F from '../../src/engine/ops/index.js';
import { imagesToTensor } from '../../src/io/image.js';
import { ImageDataset, scanImageFolder, upsampleAlignCorners } from '../../src/platform/node/dataset.js';
import { readImage } from '../../src/platform/node/image.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { DataOrder } from '../../src/train/data_order.js';
import { rng } from '../helpers/random.js';
import { writeShapesDataset } from '../helpers/shapes.js';

let root: string;
let imagefolder: string;
let pairs: string;
const N = 6;

function sameArray(a: NDArray | undefined, b: NDArray | undefined): void {
  expect(a).toBeDefined();
  expect(b).toBeDefined();
  expect(a!.shape).toEqual(b!.shape);
  expect(
    Buffer.from((a!.data as Float32Array).buffer).equals(Buffer.from((b!.data as Float32Array).buffer)),
  ).toBe(true);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-dataset-'));
  imagefolder = join(root, 'imagefolder');
  await writeShapesDataset(imagefolder, N, 32);
  // The same images as image.png + image.txt pairs. Captions are written the way people write
  // them by hand (trailing newline, CRLF); the metadata rows get stray spaces. Both must load as
  // the same text.
  pairs = join(root, 'pairs');
  await mkdir(pairs);
  const rows = (await readFile(join(imagefolder, 'metadata.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { file_name: string; text: string });
  for (const [i, r] of rows.entries()) {
    await copyFile(join(imagefolder, r.file_name), join(pairs, r.file_name));
    await writeFile(
      join(pairs, r.file_name.replace('.png', '.txt')),
      i % 2 ? `${r.text}\r\n` : `${r.text}\n`,
    );
  }
  await writeFile(
    join(imagefolder, 'metadata.jsonl'),
    rows.map((r, i) => JSON.stringify({ ...r, text: i % 2 ? ` ${r.text} ` : r.text })).join('\n'),
  );
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('captioned image folders', () => {
  it('both layouts list the same files and captions', async () => {
    const a = await scanImageFolder(imagefolder);
    const b = await scanImageFolder(pairs);
    expect(a.map((e) => e.text)).toEqual(b.map((e) => e.text));
    expect(a.map((e) => e.file.replace(imagefolder, ''))).toEqual(b.map((e) => e.file.replace(pairs, '')));
    expect(a[0]!.text).toBe('a red square');
    expect(a.every((e) => e.text === e.text.trim())).toBe(true);
  });

  it('several folders load as one, concatenated in the order given', async () => {
    const both = await ImageDataset.load([imagefolder, pairs], 16);
    expect(both.length).toBe(2 * N);
    const one = await ImageDataset.load(pairs, 16);
    const b = both.batch([N + 2, 1]);
    const o = one.batch([2, 1]);
    sameArray(b.images, o.images);
    expect(b.captions).toEqual(o.captions);
    await expect(ImageDataset.load([imagefolder, join(imagefolder, 'missing')], 16)).rejects.toThrow(
      /no such data folder/,
    );
  });

  it('both layouts give identical batches (images in [−1, 1], NCHW)', async () => {
    const a = await ImageDataset.load(imagefolder, 16);
    const b = await ImageDataset.load(pairs, 16);
    expect(a.length).toBe(N);
    const idx = [3, 0, 5, 5];
    const ba = a.batch(idx);
    const bb = b.batch(idx);
    expect(ba.images.shape).toEqual([4, 3, 16, 16]);
    sameArray(ba.images, bb.images);
    expect(ba.captions).toEqual(bb.captions);
    expect(ba.lowRes).toBeUndefined();
    const px = ba.images.data as Float32Array;
    expect(Math.min(...px)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...px)).toBeLessThanOrEqual(1);
    // The batch is exactly the decoded files, in the order asked for.
    const direct = imagesToTensor(
      await Promise.all(idx.map((i) => readImage(a.entries[i]!.file, { width: 16, height: 16 }))),
    );
    sameArray(ba.images, direct);
  });

  it('super-resolution datasets carry the low-resolution copy of the same images', async () => {
    const ds = await ImageDataset.load(pairs, 32, 8);
    const b = ds.batch([1, 2]);
    expect(b.images.shape).toEqual([2, 3, 32, 32]);
    expect(b.lowRes!.shape).toEqual([2, 3, 8, 8]);
    const direct = imagesToTensor(
      await Promise.all([1, 2].map((i) => readImage(ds.entries[i]!.file, { width: 8, height: 8 }))),
    );
    sameArray(b.lowRes, direct);
    // Same picture at two sizes: per-channel means agree (filtering moves them only slightly).
    const mean = (x: NDArray, item: number, ch: number) => {
      const [, c, h, w] = x.shape as number[];
      const d = x.data as Float32Array;
      let s = 0;
      for (let p = 0; p < h! * w!; p++) s += d[(item * c! + ch) * h! * w! + p]!;
      return s / (h! * w!);
    };
    for (let item = 0; item < 2; item++) {
      for (let ch = 0; ch < 3; ch++) {
        expect(Math.abs(mean(b.images, item, ch) - mean(b.lowRes!, item, ch))).toBeLessThan(0.05);
      }
    }
  });

  it("upsampleAlignCorners is the pipeline's bilinear align_corners upsampling, rounded to 8 bits", async () => {
    const r = rng(5);
    const small = { width: 5, height: 4, data: Uint8Array.from({ length: 60 }, () => Math.floor(r() * 256)) };
    const up = upsampleAlignCorners(small, 13);
    const rt = createRuntime({ threads: 1 });
    const fn = rt.compile((i) => F.resizeBilinear(i.x!, 13, 13, true), { name: 'up' });
    const ref = (await fn.run({ x: imagesToTensor([small]) })).output!.data as Float32Array;
    await fn.release();
    let worst = 0;
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < 169; p++) {
        const want = ((ref[c * 169 + p]! + 1) / 2) * 255;
        worst = Math.max(worst, Math.abs(up.data[p * 3 + c]! - want));
      }
    expect(worst).toBeLessThanOrEqual(0.5 + 1e-3);
    // Corners are copied exactly (align_corners).
    expect(up.data[0]).toBe(small.data[0]);
    expect(up.data[(13 * 13 - 1) * 3 + 2]).toBe(small.data[59]);
  });

  it('crop training: matching crops of the image and of the upsampled low-res image', async () => {
    const ds = await ImageDataset.load(pairs, 32, 8, undefined, 16);
    const b = ds.batch(
      [1, 2],
      [
        [0, 16],
        [9, 3],
      ],
    );
    expect(b.images.shape).toEqual([2, 3, 16, 16]);
    expect(b.lowRes!.shape).toEqual([2, 3, 16, 16]);
    const full = imagesToTensor([await readImage(ds.entries[2]!.file, { width: 32, height: 32 })]);
    const low = upsampleAlignCorners(await readImage(ds.entries[2]!.file, { width: 8, height: 8 }), 32);
    const lowT = imagesToTensor([low]);
    const at = (x: NDArray, item: number, c: number, y: number, xx: number, side: number) =>
      (x.data as Float32Array)[((item * 3 + c) * side + y) * side + xx]!;
    for (const [y, x] of [
      [0, 0],
      [15, 15],
      [7, 11],
    ]) {
      for (let c = 0; c < 3; c++) {
        expect(at(b.images, 1, c, y!, x!, 16)).toBe(at(full, 0, c, 9 + y!, 3 + x!, 32));
        expect(at(b.lowRes!, 1, c, y!, x!, 16)).toBe(at(lowT, 0, c, 9 + y!, 3 + x!, 32));
      }
    }
    await expect(ImageDataset.load(pairs, 32, undefined, undefined, 16)).rejects.toThrow(/crop_size/);
  });

  it('grey, RGBA and non-square images load as RGB at the training size', async () => {
    const dir = join(root, 'mixed');
    await mkdir(dir);
    const grey = await sharp({
      create: { width: 20, height: 20, channels: 3, background: { r: 90, g: 90, b: 90 } },
    })
      .greyscale()
      .png()
      .toBuffer();
    const rgba = await sharp({
      create: { width: 24, height: 24, channels: 4, background: { r: 200, g: 10, b: 10, alpha: 0.5 } },
    })
      .png()
      .toBuffer();
    const wide = await sharp({
      create: { width: 40, height: 20, channels: 3, background: { r: 0, g: 0, b: 255 } },
    })
      .jpeg()
      .toBuffer();
    await writeFile(join(dir, 'a.png'), grey);
    await writeFile(join(dir, 'b.png'), rgba);
    await writeFile(join(dir, 'c.JPG'), wide);
    for (const n of ['a', 'b', 'c']) await writeFile(join(dir, `${n}.txt`), `image ${n}`);
    const ds = await ImageDataset.load(dir, 16);
    expect(ds.entries.map((e) => e.text)).toEqual(['image a', 'image b', 'image c']);
    expect(ds.batch([0, 1, 2]).images.shape).toEqual([3, 3, 16, 16]);
  });

  it('metadata.jsonl may name files in sub-folders', async () => {
    const dir = join(root, 'nested');
    await mkdir(join(dir, 'train'), { recursive: true });
    await copyFile(join(pairs, 'img_0.png'), join(dir, 'train', 'x.png'));
    await writeFile(
      join(dir, 'metadata.jsonl'),
      `${JSON.stringify({ file_name: 'train/x.png', text: 'a red square' })}\n`,
    );
    const ds = await ImageDataset.load(dir, 16);
    sameArray(ds.batch([0]).images, (await ImageDataset.load(pairs, 16)).batch([0]).images);
  });

  it('text_boxes ride along with their images, mapped into crops', async () => {
    const dir = join(root, 'boxes');
    await mkdir(dir);
    await copyFile(join(pairs, 'img_0.png'), join(dir, 'img_0.png'));
    await copyFile(join(pairs, 'img_1.png'), join(dir, 'img_1.png'));
    const box = [0.25, 0.5, 0.75, 1] as const;
    await writeFile(
      join(dir, 'metadata.jsonl'),
      `${JSON.stringify({ file_name: 'img_0.png', text: 'a sign', text_boxes: [box] })}\n${JSON.stringify({ file_name: 'img_1.png', text: 'a square' })}\n`,
    );
    const full = await ImageDataset.load(dir, 32);
    expect(full.batch([1, 0]).textBoxes).toEqual([[], [box]]);
    // A 16-pixel crop of the 32-pixel image at [y 16, x 0]: the box is x 8–24 px, y 16–32 px.
    const cropped = await ImageDataset.load(dir, 32, 8, undefined, 16);
    expect(cropped.batch([0], [[16, 0]]).textBoxes).toEqual([[[0.5, 0, 1, 1]]]);
  });

  it('bad rows fail with the file and line, as input errors', async () => {
    const cases: [string, RegExp][] = [
      ['null', /metadata\.jsonl:2: needs string fields "file_name" and "text"/],
      ['[1, 2]', /metadata\.jsonl:2: needs string fields/],
      ['{"file_name": "img_0.png"}', /metadata\.jsonl:2: needs string fields/],
      ['{"file_name": "img_0.png", "text": ""}', /metadata\.jsonl:2: empty caption for img_0\.png/],
      ['{"file_name": "img_0.png", "text": 5}', /metadata\.jsonl:2: needs string fields/],
      ['not json', /metadata\.jsonl:2: not valid JSON/],
      [
        '{"file_name": "img_0.png", "text": "a", "text_boxes": [0, 0, 1, 1]}',
        /metadata\.jsonl:2: a text box is/,
      ],
      [
        '{"file_name": "img_0.png", "text": "a", "text_boxes": {}}',
        /metadata\.jsonl:2: "text_boxes" must be a list/,
      ],
    ];
    for (const [i, [line, message]] of cases.entries()) {
      const dir = join(root, `bad-${i}`);
      await mkdir(dir);
      await copyFile(join(pairs, 'img_0.png'), join(dir, 'img_0.png'));
      await writeFile(
        join(dir, 'metadata.jsonl'),
        `${JSON.stringify({ file_name: 'img_0.png', text: 'a red square' })}\n${line}\n`,
      );
      const err = await scanImageFolder(dir).catch((e: unknown) => e);
      expect(err, line).toBeInstanceOf(ImagenError);
      expect((err as ImagenError).code).toBe('FILE_INVALID');
      expect((err as Error).message).toMatch(message);
    }
  });

  it('a row naming a missing image is NOT_FOUND', async () => {
    const dir = join(root, 'missing-image');
    await mkdir(dir);
    await writeFile(join(dir, 'metadata.jsonl'), `${JSON.stringify({ file_name: 'gone.png', text: 'x' })}\n`);
    await expect(ImageDataset.load(dir, 16)).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: /gone\.png/,
    });
  });
});

describe('DataOrder', () => {
  /** Concatenate `steps` batches. */
  const take = (o: DataOrder, steps: number, batch: number) =>
    Array.from({ length: steps }, () => o.next(batch)).flat();

  it('visits every item exactly once per epoch, even when batches straddle epochs', () => {
    for (const [size, batch] of [
      [10, 3],
      [7, 7],
      [5, 8],
      [1, 2],
    ] as const) {
      const o = new DataOrder(size, 42);
      const seq = take(o, 12, batch);
      for (let e = 0; e + size <= seq.length; e += size) {
        expect([...seq.slice(e, e + size)].sort((a, b) => a - b)).toEqual(
          Array.from({ length: size }, (_, i) => i),
        );
      }
    }
  });

  it('shuffles: epochs differ from each other and seeds from each other', () => {
    const a = take(new DataOrder(50, 1), 2, 50);
    const b = take(new DataOrder(50, 2), 1, 50);
    expect(a.slice(0, 50)).not.toEqual(a.slice(50));
    expect(a.slice(0, 50)).not.toEqual(b);
    expect(a.slice(0, 50)).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    // Deterministic from the seed.
    expect(take(new DataOrder(50, 1), 2, 50)).toEqual(a);
  });

  it('restore() continues exactly where the saved state left off (mid-epoch and at an epoch end)', () => {
    for (const stopAfter of [1, 3, 4, 7]) {
      const full = new DataOrder(12, 7);
      const reference = take(full, 10, 3);

      const first = new DataOrder(12, 7);
      const before = take(first, stopAfter, 3);
      // The checkpoint stores only this small state (JSON round trip as in state.json).
      const saved = JSON.parse(JSON.stringify(first.state));
      const resumed = new DataOrder(12, 7);
      resumed.restore(saved);
      const after = take(resumed, 10 - stopAfter, 3);
      expect([...before, ...after], `stopped after ${stopAfter} batches`).toEqual(reference);
    }
  });

  it('the constructor accepts a saved state too', () => {
    const a = new DataOrder(9, 3);
    take(a, 5, 4);
    const b = new DataOrder(9, 3, { ...a.state });
    expect(take(b, 6, 4)).toEqual(take(a, 6, 4));
  });
});
