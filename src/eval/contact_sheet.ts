import type { TrueTypeFont } from '../data/synth/font.js';
import { Canvas } from '../data/synth/raster.js';
import type { Rgb } from '../data/synth/vocab.js';
import type { RgbImage } from '../io/image.js';

export interface SheetItem {
  image: RgbImage;
  caption: string;
  /** Draws a green (pass) or red (fail) bar above the caption when given. */
  pass?: boolean;
  /** A short second line, e.g. the failed attributes or what OCR read. */
  note?: string;
}

const CELL = 160;
const PAD = 8;
const EM = 11;
const LINE = 13;
const MAX_LINES = 4;

/** Greedy word wrap by measured width. */
export function wrapText(font: TrueTypeFont, text: string, em: number, width: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const next = cur ? `${cur} ${word}` : word;
    if (cur && font.measure(next, em) > width) {
      lines.push(cur);
      cur = word;
    } else cur = next;
  }
  if (cur) lines.push(cur);
  return lines;
}

/**
 * A grid of images with each prompt written underneath in DejaVu Sans Bold (drawn by our own
 * rasteriser, so the sheet looks the same everywhere). Images are scaled to a 160 px cell with
 * nearest-neighbour sampling so generated pixels stay visible as they are.
 */
export function contactSheet(items: readonly SheetItem[], font: TrueTypeFont, columns = 6): RgbImage {
  const cols = Math.max(1, Math.min(columns, items.length));
  const rows = Math.ceil(items.length / cols);
  const cellH = CELL + 6 + LINE * (MAX_LINES + 1) + PAD;
  const W = cols * (CELL + PAD) + PAD;
  const H = rows * cellH + PAD;
  const canvas = new Canvas(W, H);
  canvas.data.fill(255);
  items.forEach((it, i) => {
    const x0 = PAD + (i % cols) * (CELL + PAD);
    const y0 = PAD + Math.floor(i / cols) * cellH;
    const { width: w, height: h, data } = it.image;
    for (let y = 0; y < CELL; y++) {
      const sy = Math.min(h - 1, Math.floor((y * h) / CELL));
      for (let x = 0; x < CELL; x++) {
        const sx = Math.min(w - 1, Math.floor((x * w) / CELL));
        const p = ((y0 + y) * W + x0 + x) * 3;
        const q = (sy * w + sx) * 3;
        canvas.data[p] = data[q]!;
        canvas.data[p + 1] = data[q + 1]!;
        canvas.data[p + 2] = data[q + 2]!;
      }
    }
    let ty = y0 + CELL + 2;
    if (it.pass !== undefined) {
      const c: Rgb = it.pass ? [30, 160, 50] : [220, 30, 35];
      canvas.fill(
        [
          [
            [x0, ty],
            [x0 + CELL, ty],
            [x0 + CELL, ty + 3],
            [x0, ty + 3],
          ],
        ],
        c,
      );
    }
    ty += 4;
    const lines = wrapText(font, it.caption, EM, CELL);
    if (lines.length > MAX_LINES) {
      lines.length = MAX_LINES;
      lines[MAX_LINES - 1] = `${lines[MAX_LINES - 1]}…`;
    }
    for (const line of lines) {
      ty += LINE;
      canvas.fill(font.layout(line, EM, x0, ty), [20, 20, 20]);
    }
    if (it.note) {
      ty += LINE;
      canvas.fill(font.layout(it.note, EM - 2, x0, ty), [150, 40, 40]);
    }
  });
  return canvas.toRgb();
}
