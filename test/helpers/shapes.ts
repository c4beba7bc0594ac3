import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RgbImage } from '../../src/io/image.js';
import { encodePng } from '../../src/platform/node/image.js';
import { rng } from './random.js';

export const COLORS: Record<string, [number, number, number]> = {
  red: [220, 30, 30],
  green: [30, 190, 40],
  blue: [30, 60, 220],
  yellow: [230, 220, 30],
};

/** A filled square of `color` on a mid-grey background, at a random place. */
export function shapeImage(size: number, color: [number, number, number], r: () => number): RgbImage {
  const data = new Uint8Array(size * size * 3).fill(128);
  const s = Math.floor(size * (0.45 + 0.25 * r()));
  const x0 = Math.floor(r() * (size - s));
  const y0 = Math.floor(r() * (size - s));
  for (let y = y0; y < y0 + s; y++) {
    for (let x = x0; x < x0 + s; x++) data.set(color, (y * size + x) * 3);
  }
  return { width: size, height: size, data };
}

/** Write an imagefolder dataset (PNG + metadata.jsonl) of coloured squares; captions name the colour. */
export async function writeShapesDataset(dir: string, count: number, size: number, seed = 1): Promise<void> {
  await mkdir(dir, { recursive: true });
  const r = rng(seed);
  const names = Object.keys(COLORS);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = names[i % names.length]!;
    const file = `img_${i}.png`;
    await writeFile(join(dir, file), await encodePng(shapeImage(size, COLORS[name]!, r)));
    lines.push(JSON.stringify({ file_name: file, text: `a ${name} square` }));
  }
  await writeFile(join(dir, 'metadata.jsonl'), `${lines.join('\n')}\n`);
}

/**
 * The automatic check: the named colour that most pixels are close to (within a fixed RGB
 * distance), ignoring pixels near the grey background; 'none' when too few pixels match any.
 */
export function dominantColor(img: RgbImage): string {
  const counts = new Map<string, number>();
  const near = 90 * 90;
  for (let p = 0; p < img.width * img.height; p++) {
    const px = [img.data[p * 3]!, img.data[p * 3 + 1]!, img.data[p * 3 + 2]!];
    let best = 'none';
    let bestD = near;
    for (const [name, c] of Object.entries(COLORS)) {
      const d = c.reduce((s, v, i) => s + (v - px[i]!) ** 2, 0);
      if (d < bestD) {
        bestD = d;
        best = name;
      }
    }
    if (best !== 'none') counts.set(best, (counts.get(best) ?? 0) + 1);
  }
  let winner = 'none';
  let max = (img.width * img.height) / 20;
  for (const [name, n] of counts) {
    if (n > max) {
      max = n;
      winner = name;
    }
  }
  return winner;
}
