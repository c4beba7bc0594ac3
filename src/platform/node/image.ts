import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { ImagenError } from '../../engine/errors.js';
import type { RgbImage } from '../../io/image.js';
import { atomicWriteFile } from './files.js';

/** Decode any image sharp reads (PNG, JPEG, WebP, …) to RGB, optionally resized (cover + center crop). */
export async function readImage(path: string, size?: { width: number; height: number }): Promise<RgbImage> {
  return decodeRaw(path, 'image', 3, (img) => {
    const rgb = img.toColourspace('srgb');
    return size ? rgb.resize(size.width, size.height, { fit: 'cover', kernel: 'lanczos3' }) : rgb;
  });
}

/**
 * Decode the file once and resize it to each of `sizes` (cover + center crop, as `readImage`): a
 * super-resolution dataset needs every file at two sizes, and decoding is most of the cost.
 */
export async function readImageAtSizes(
  path: string,
  sizes: readonly { width: number; height: number }[],
): Promise<RgbImage[]> {
  const full = await readImage(path);
  return Promise.all(sizes.map((s) => resizeRaw(full, s.width, s.height, 'cover')));
}

/**
 * Decode the file at `path` with sharp (alpha dropped, then `prepare` applied) to raw pixels with
 * `channels` channels; a missing file is NOT_FOUND and anything sharp cannot read FILE_INVALID,
 * both naming the file as `what` (image, mask, …).
 */
export async function decodeRaw(
  path: string,
  what: string,
  channels: number,
  prepare: (img: sharp.Sharp) => sharp.Sharp,
): Promise<{ width: number; height: number; data: Uint8Array }> {
  try {
    const img = prepare(sharp(path, { failOn: 'error' }).removeAlpha());
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== channels) throw new Error(`decoded ${info.channels} channels`);
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (e) {
    const msg = (e as Error).message;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || /missing|no such file/i.test(msg)) {
      throw new ImagenError('NOT_FOUND', `${path}: ${what} file not found`);
    }
    const noun = what === 'image' ? 'image' : `${what} image`;
    throw new ImagenError('FILE_INVALID', `${path}: cannot decode ${noun} (${msg})`);
  }
}

export async function encodePng(img: RgbImage): Promise<Uint8Array> {
  const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .png()
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/** Write a PNG atomically (a crash never leaves a half-written image). */
export async function writePng(path: string, img: RgbImage): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await atomicWriteFile(path, await encodePng(img));
}

/** Resize with a good filter (used where the pipeline does not prescribe torch's exact resize). */
export async function resizeImage(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  return resizeRaw(img, width, height, 'fill');
}

async function resizeRaw(
  img: RgbImage,
  width: number,
  height: number,
  fit: 'fill' | 'cover',
): Promise<RgbImage> {
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit, kernel: 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
  };
}
