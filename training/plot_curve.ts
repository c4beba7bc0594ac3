/**
 * Learning-curve chart (accuracy per attribute vs images seen) from curve.sh's JSONL lines.
 *
 *   npx tsx training/plot_curve.ts CURVE.jsonl OUT.png [title]
 */
import { readFileSync } from 'node:fs';
import sharp from 'sharp';

const [file, out, title = 'held-out accuracy vs images seen'] = process.argv.slice(2);
if (!file || !out) {
  console.error('usage: plot_curve.ts CURVE.jsonl OUT.png [title]');
  process.exit(2);
}
interface Point {
  images_seen: number;
  heldout: Record<string, number>;
  train: Record<string, number>;
}
const points = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Point);
const series: [string, string, (p: Point) => number][] = [
  ['colour', '#d62728', (p) => p.heldout.colour!],
  ['shape', '#1f77b4', (p) => p.heldout.shape!],
  ['count', '#2ca02c', (p) => p.heldout.count!],
  ['relation', '#9467bd', (p) => p.heldout.relation!],
  ['size', '#8c564b', (p) => p.heldout.size!],
  ['word', '#ff7f0e', (p) => p.heldout.word!],
  ['colour (train split)', '#d62728', (p) => p.train.colour!],
];
const W = 640;
const H = 400;
const L = 60;
const R = 170;
const T = 40;
const B = 50;
const maxX = Math.max(...points.map((p) => p.images_seen)) * 1.05;
const x = (v: number) => L + (v / maxX) * (W - L - R);
const y = (v: number) => T + (1 - v) * (H - T - B);
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`;
svg += `<rect width="${W}" height="${H}" fill="white"/><text x="${L}" y="24" font-size="14">${title}</text>`;
for (let v = 0; v <= 1.0001; v += 0.2) {
  svg += `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${L - 8}" y="${y(v) + 4}" text-anchor="end">${Math.round(v * 100)}%</text>`;
}
const step = 10 ** Math.floor(Math.log10(maxX / 4));
for (let v = 0; v <= maxX; v += step * Math.ceil(maxX / 5 / step)) {
  svg += `<text x="${x(v)}" y="${H - B + 18}" text-anchor="middle">${v >= 1000 ? `${v / 1000}k` : v}</text>`;
}
svg += `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">training images seen</text>`;
series.forEach(([name, colour, f], i) => {
  const pts = points.map((p) => `${x(p.images_seen)},${y(f(p))}`).join(' ');
  const dash = name.includes('train') ? ' stroke-dasharray="5,4"' : '';
  svg += `<polyline points="${pts}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`;
  for (const p of points) svg += `<circle cx="${x(p.images_seen)}" cy="${y(f(p))}" r="2.5" fill="${colour}"/>`;
  svg += `<line x1="${W - R + 10}" x2="${W - R + 30}" y1="${T + 10 + i * 18}" y2="${T + 10 + i * 18}" stroke="${colour}" stroke-width="2"${dash}/><text x="${W - R + 36}" y="${T + 14 + i * 18}">${name}</text>`;
});
svg += '</svg>';
await sharp(Buffer.from(svg)).png().toFile(out);
console.log(`wrote ${out}`);
