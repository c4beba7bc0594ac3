import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import pMap from 'p-map';
import { ImagenError } from '../../engine/errors.js';
import { linearInterpolationMatrix } from '../../engine/ops/resample.js';
import { imagesToTensor, type RgbImage } from '../../io/image.js';
import { cropTextBox, parseTextBox, type TextBox } from '../../train/text_region.js';
import type { Batch } from '../../train/trainer.js';
import { readImage, readImageAtSizes } from './image.js';

export interface CaptionedFile {
  file: string;
  text: string;
  /** Where words are written (metadata.jsonl's optional `text_boxes`), for `text_loss_weight`. */
  textBoxes?: TextBox[];
}

/** Files decoded at once while loading: enough to keep sharp's worker threads fed. */
const DECODE_CONCURRENCY = 8;

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif', '.tif', '.tiff']);

/**
 * Entries of a captioned image folder: the Hugging Face `imagefolder` layout (images plus
 * `metadata.jsonl` with `file_name` and `text`), or `image.png` + `image.txt` pairs.
 */
export async function scanImageFolder(dir: string): Promise<CaptionedFile[]> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a folder');
  } catch {
    throw new ImagenError('NOT_FOUND', `${dir}: no such data folder`);
  }
  const meta = join(dir, 'metadata.jsonl');
  const entries: CaptionedFile[] = [];
  const hasMeta = await stat(meta).then(
    () => true,
    () => false,
  );
  if (hasMeta) {
    const lines = (await readFile(meta, 'utf8')).split('\n');
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        throw new ImagenError('FILE_INVALID', `${meta}:${i + 1}: not valid JSON`);
      }
      // `null` and arrays are valid JSON too: check the shape before reading fields.
      const r = (typeof row === 'object' && row !== null ? row : {}) as {
        file_name?: unknown;
        text?: unknown;
        text_boxes?: unknown;
      };
      if (typeof r.file_name !== 'string' || typeof r.text !== 'string') {
        throw new ImagenError('FILE_INVALID', `${meta}:${i + 1}: needs string fields "file_name" and "text"`);
      }
      if (!r.text.trim())
        throw new ImagenError('FILE_INVALID', `${meta}:${i + 1}: empty caption for ${r.file_name}`);
      // Trimmed like .txt captions, so both layouts give the model the same text.
      const entry: CaptionedFile = { file: join(dir, r.file_name), text: r.text.trim() };
      if (r.text_boxes !== undefined) {
        if (!Array.isArray(r.text_boxes))
          throw new ImagenError('FILE_INVALID', `${meta}:${i + 1}: "text_boxes" must be a list of boxes`);
        entry.textBoxes = r.text_boxes.map((b) => parseTextBox(b, `${meta}:${i + 1}`));
      }
      entries.push(entry);
    });
  } else {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      if (!IMAGE_EXT.has(extname(name).toLowerCase())) continue;
      const txt = join(dir, `${basename(name, extname(name))}.txt`);
      let text: string;
      try {
        text = await readFile(txt, 'utf8');
      } catch {
        throw new ImagenError('NOT_FOUND', `${join(dir, name)} has no caption file ${txt}`);
      }
      if (!text.trim()) throw new ImagenError('FILE_INVALID', `${txt}: empty caption file`);
      entries.push({ file: join(dir, name), text: text.trim() });
    }
  }
  if (entries.length === 0) {
    throw new ImagenError(
      'NOT_FOUND',
      `${dir}: no captioned images (expected metadata.jsonl with file_name/text, or image + .txt pairs)`,
    );
  }
  return entries;
}

/**
 * The low-res image brought to the high resolution exactly as the super-resolution pipeline does
 * (bilinear, align_corners), rounded to 8 bits: crops of it are what a crop-trained stage sees
 * around each pixel at sampling time.
 */
export function upsampleAlignCorners(img: RgbImage, size: number): RgbImage {
  const ah = linearInterpolationMatrix(img.height, size, true).data as Float32Array;
  const aw = linearInterpolationMatrix(img.width, size, true).data as Float32Array;
  const rows = new Float32Array(img.height * size * 3);
  for (let y = 0; y < img.height; y++)
    for (let o = 0; o < size; o++)
      for (let x = 0; x < img.width; x++) {
        const wgt = aw[o * img.width + x]!;
        if (wgt === 0) continue;
        for (let c = 0; c < 3; c++)
          rows[(y * size + o) * 3 + c]! += wgt * img.data[(y * img.width + x) * 3 + c]!;
      }
  const out = new Uint8Array(size * size * 3);
  const acc = new Float32Array(size * size * 3);
  for (let o = 0; o < size; o++)
    for (let y = 0; y < img.height; y++) {
      const wgt = ah[o * img.height + y]!;
      if (wgt === 0) continue;
      const src = y * size * 3;
      const dst = o * size * 3;
      for (let i = 0; i < size * 3; i++) acc[dst + i]! += wgt * rows[src + i]!;
    }
  for (let i = 0; i < acc.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(acc[i]!)));
  return { width: size, height: size, data: out };
}

function crop(img: RgbImage, y: number, x: number, size: number): RgbImage {
  const out = new Uint8Array(size * size * 3);
  for (let r = 0; r < size; r++) {
    const src = ((y + r) * img.width + x) * 3;
    out.set(img.data.subarray(src, src + size * 3), r * size * 3);
  }
  return { width: size, height: size, data: out };
}

/** A captioned image folder decoded once into memory at the training resolution(s). */
export class ImageDataset {
  private constructor(
    readonly entries: CaptionedFile[],
    private readonly images: RgbImage[],
    private readonly lowRes: RgbImage[] | undefined,
    /** Crop training: `lowRes` holds the low-res images already upsampled to the full size. */
    readonly cropSize: number | undefined,
  ) {}

  /**
   * `cropSize` (super-resolution only) keeps each low-res image upsampled to `size`, so that
   * `batch` can cut matching crops of both, as Imagen trained its 256→1024 stage on crops.
   */
  /** `dir` may list several folders: their entries are concatenated in the order given. */
  static async load(
    dir: string | readonly string[],
    size: number,
    lowResSize?: number,
    onProgress?: (done: number, total: number) => void,
    cropSize?: number,
  ): Promise<ImageDataset> {
    if (cropSize !== undefined && (!lowResSize || cropSize > size))
      throw new ImagenError(
        'CONFIG_INVALID',
        `crop_size ${cropSize} needs a super-resolution stage and ≤ ${size}`,
      );
    const entries: CaptionedFile[] = [];
    for (const d of typeof dir === 'string' ? [dir] : dir) entries.push(...(await scanImageFolder(d)));
    // sharp decodes on libuv's pool: several files in flight keep every core busy, where one
    // awaited file at a time left the machine mostly idle on a 100 k-image mix. A folder given
    // twice (to weigh it more in the mix) is decoded once; its rows share the pixels.
    const decoded = new Map<string, Promise<[RgbImage, RgbImage | undefined]>>();
    const decode = async (file: string): Promise<[RgbImage, RgbImage | undefined]> => {
      if (!lowResSize) return [await readImage(file, { width: size, height: size }), undefined];
      const [image, l] = await readImageAtSizes(file, [
        { width: size, height: size },
        { width: lowResSize, height: lowResSize },
      ]);
      return [image!, cropSize ? upsampleAlignCorners(l!, size) : l];
    };
    let done = 0;
    const pairs = await pMap(
      entries,
      async (e) => {
        let p = decoded.get(e.file);
        if (!p) {
          p = decode(e.file);
          decoded.set(e.file, p);
        }
        const r = await p;
        onProgress?.(++done, entries.length);
        return r;
      },
      { concurrency: DECODE_CONCURRENCY },
    );
    const images = pairs.map(([image]) => image);
    const low = lowResSize ? pairs.map(([, l]) => l!) : undefined;
    return new ImageDataset(entries, images, low, cropSize);
  }

  get length(): number {
    return this.entries.length;
  }

  /** `offsets` ([y, x] per example) pick the crops when the dataset was loaded with a crop size. */
  batch(indices: readonly number[], offsets?: readonly (readonly [number, number])[]): Batch {
    const c = this.cropSize;
    const cut = (img: RgbImage, k: number) => {
      if (!c) return img;
      const [y, x] = offsets?.[k] ?? [0, 0];
      return crop(img, y, x, c);
    };
    const boxes = (i: number, k: number): TextBox[] => {
      const list = this.entries[i]!.textBoxes ?? [];
      if (!c) return list;
      const [y, x] = offsets?.[k] ?? [0, 0];
      return list.map((b) => cropTextBox(b, this.images[i]!.width, y, x, c));
    };
    return {
      images: imagesToTensor(indices.map((i, k) => cut(this.images[i]!, k))),
      lowRes: this.lowRes && imagesToTensor(indices.map((i, k) => cut(this.lowRes![i]!, k))),
      captions: indices.map((i) => this.entries[i]!.text),
      textBoxes: indices.map(boxes),
    };
  }
}
