import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { ImagenError } from '../../engine/errors.js';
import { imagesToTensor, type RgbImage } from '../../io/image.js';
import type { Batch } from '../../train/trainer.js';
import { readImage } from './image.js';

export interface CaptionedFile {
  file: string;
  text: string;
}

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
      };
      if (typeof r.file_name !== 'string' || typeof r.text !== 'string') {
        throw new ImagenError('FILE_INVALID', `${meta}:${i + 1}: needs string fields "file_name" and "text"`);
      }
      if (!r.text.trim())
        throw new ImagenError('FILE_INVALID', `${meta}:${i + 1}: empty caption for ${r.file_name}`);
      // Trimmed like .txt captions, so both layouts give the model the same text.
      entries.push({ file: join(dir, r.file_name), text: r.text.trim() });
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

/** A captioned image folder decoded once into memory at the training resolution(s). */
export class ImageDataset {
  private constructor(
    readonly entries: CaptionedFile[],
    private readonly images: RgbImage[],
    private readonly lowRes: RgbImage[] | undefined,
  ) {}

  static async load(
    dir: string,
    size: number,
    lowResSize?: number,
    onProgress?: (done: number, total: number) => void,
  ): Promise<ImageDataset> {
    const entries = await scanImageFolder(dir);
    const images: RgbImage[] = [];
    const low: RgbImage[] = [];
    for (const [i, e] of entries.entries()) {
      images.push(await readImage(e.file, { width: size, height: size }));
      if (lowResSize) low.push(await readImage(e.file, { width: lowResSize, height: lowResSize }));
      onProgress?.(i + 1, entries.length);
    }
    return new ImageDataset(entries, images, lowResSize ? low : undefined);
  }

  get length(): number {
    return this.entries.length;
  }

  batch(indices: readonly number[]): Batch {
    return {
      images: imagesToTensor(indices.map((i) => this.images[i]!)),
      lowRes: this.lowRes && imagesToTensor(indices.map((i) => this.lowRes![i]!)),
      captions: indices.map((i) => this.entries[i]!.text),
    };
  }
}
