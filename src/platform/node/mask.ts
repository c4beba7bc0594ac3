/**
 * Loading the inputs of the image pipelines on Node: masks (any format sharp decodes, read as
 * grey) and the outpainting canvas (`--extend`).
 */
import sharp from 'sharp';
import { ImagenError } from '../../engine/errors.js';
import type { RgbImage } from '../../io/image.js';
import type { GrayImage } from '../../pipelines/img2img.js';
import { type Extend, extendCanvas } from '../../pipelines/inpaint.js';
import { decodeRaw, readImage } from './image.js';

/**
 * A mask as one grey channel. Colour masks are converted to luminance and alpha is ignored, as
 * PIL's `convert("L")` in diffusers does: paint the region to repaint white on black.
 */
export async function readMask(path: string): Promise<GrayImage> {
  return decodeRaw(path, 'mask', 1, (img) => img.toColourspace('b-w'));
}

export interface InpaintInputs {
  image: RgbImage;
  mask: GrayImage;
  /** Outpainting: the canvas is larger than the input image. */
  extended: boolean;
}

/**
 * The image and mask `imagen inpaint` works on: the files as given, or with `extend` the padded
 * canvas whose new border is masked white (plus the given mask, if any, inside).
 */
export async function loadInpaintInputs(o: {
  image: string;
  mask?: string;
  extend?: Extend;
  fill?: 'edge' | 'grey';
}): Promise<InpaintInputs> {
  const image = await readImage(o.image);
  const mask = o.mask ? await readMask(o.mask) : undefined;
  if (mask && (mask.width !== image.width || mask.height !== image.height)) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `the mask ${o.mask} is ${mask.width}×${mask.height} but the image ${o.image} is ${image.width}×${image.height}; ` +
        'they must have the same size (white = repaint, black = keep)',
    );
  }
  if (o.extend) return { ...extendCanvas(image, o.extend, o.fill ?? 'edge', mask), extended: true };
  if (!mask)
    throw new ImagenError(
      'BAD_INPUT',
      'inpainting needs --mask MASK (white = repaint) or --extend for outpainting',
    );
  return { image, mask, extended: false };
}

/** Write a grey mask as PNG (to show the user what `--extend` built). */
export async function encodeMaskPng(mask: GrayImage): Promise<Uint8Array> {
  const buf = await sharp(mask.data, { raw: { width: mask.width, height: mask.height, channels: 1 } })
    .png()
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}
