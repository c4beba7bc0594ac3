import type { RgbImage } from '../../io/image.js';
import type { TrueTypeFont } from './font.js';
import { Canvas, type Contour, rectContour, shapeContour } from './raster.js';
import { Rng } from './rng.js';
import { objectExtent, type Scene, type Sign, signLetterColour } from './scene.js';
import { COLOURS } from './vocab.js';

/** DejaVu Sans Bold's capital height as a fraction of the em (from the font's own 'H'). */
const CAP_HEIGHT_EM = 0.729;

/** Where the word sits on a sign: em size and baseline origin in pixels. */
export function signTextLayout(
  sign: Sign,
  size: number,
  font: TrueTypeFont,
): { em: number; x: number; baseline: number; width: number } {
  const w = sign.w * size;
  const h = sign.h * size;
  // Letters as tall as the sign allows (cap height 55 % of it), shrunk to fit 86 % of its width.
  let em = (0.55 * h) / CAP_HEIGHT_EM;
  const width = font.measure(sign.word, em);
  if (width > 0.86 * w) em *= (0.86 * w) / width;
  const tw = font.measure(sign.word, em);
  return { em, x: sign.cx * size - tw / 2, baseline: sign.cy * size + (CAP_HEIGHT_EM * em) / 2, width: tw };
}

/**
 * The box around a sign's word as fractions of the image, [x0, y0, x1, y1]: where the letters are,
 * for training that weighs the letters' pixels more (`text_loss_weight`). The outlines' own extent
 * (Q's tail and J reach below the baseline), padded by a twentieth of an em for antialiasing.
 */
export function signTextBox(sign: Sign, font: TrueTypeFont): [number, number, number, number] {
  const t = signTextLayout(sign, 1, font);
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const c of font.layout(sign.word, t.em, t.x, t.baseline))
    for (const [x, y] of c)
      [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  const pad = 0.05 * t.em;
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  return [clamp(x0 - pad), clamp(y0 - pad), clamp(x1 + pad), clamp(y1 + pad)];
}

export function paintBackground(canvas: Canvas, scene: Scene): void {
  const { from, to, direction, noise, noiseSeed } = scene.background;
  const rng = new Rng(noiseSeed);
  const { width: W, height: H, data } = canvas;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const t = direction === 'horizontal' ? (x + 0.5) / W : (y + 0.5) / H;
      const p = (y * W + x) * 3;
      for (let c = 0; c < 3; c++) {
        const n = noise ? rng.uniform(-noise, noise) : 0;
        data[p + c] = from[c]! + (to[c]! - from[c]!) * t + n;
      }
    }
  }
}

/**
 * Draw a scene at size×size pixels. Pure computation (no codecs, no system fonts), so the same
 * scene gives the same bytes everywhere; `font` is DejaVu Sans Bold, loaded by the platform layer.
 */
export function renderScene(scene: Scene, size: number, font: TrueTypeFont): RgbImage {
  const canvas = new Canvas(size, size);
  paintBackground(canvas, scene);
  for (const o of scene.objects) {
    const g = scene.groups[o.group]!;
    canvas.fill(
      [shapeContour(g.shape, o.cx * size, o.cy * size, objectExtent(g.size) * size)],
      COLOURS[g.colour],
    );
  }
  if (scene.sign) {
    const s = scene.sign;
    const x0 = (s.cx - s.w / 2) * size;
    const y0 = (s.cy - s.h / 2) * size;
    canvas.fill([rectContour(x0, y0, x0 + s.w * size, y0 + s.h * size)], COLOURS[s.colour]);
    const t = signTextLayout(s, size, font);
    canvas.fill(font.layout(s.word, t.em, t.x, t.baseline), signLetterColour(s));
  }
  return canvas.toRgb();
}

/** Polygons of a text line (for captions on contact sheets). */
export function textContours(
  font: TrueTypeFont,
  text: string,
  em: number,
  x: number,
  baseline: number,
): Contour[] {
  return font.layout(text, em, x, baseline);
}
