import type { Rgb, Shape } from './vocab.js';

/** A closed polygon, [x, y] vertices in pixel coordinates (y down). */
export type Contour = readonly (readonly [number, number])[];

/**
 * Anti-aliased coverage of a set of contours (non-zero winding), computed with our own scanline
 * filler rather than a graphics library: exact horizontal coverage on SUB sub-scanlines per pixel
 * row. Vertices are snapped to 1/256 px first, so every remaining operation is exact-enough
 * IEEE arithmetic on identical inputs — renders are byte-identical on every machine.
 */
const SUB = 5;
const SNAP = 256;

export interface Coverage {
  x0: number;
  y0: number;
  w: number;
  h: number;
  /** Row-major coverage in [0, 1] over the box (x0, y0, w, h). */
  data: Float32Array;
}

export function rasterize(contours: readonly Contour[], width: number, height: number): Coverage {
  const edges: number[] = []; // x0, y0, x1, y1 quadruples, non-horizontal only
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const c of contours) {
    for (let i = 0; i < c.length; i++) {
      const p = c[i]!;
      const q = c[(i + 1) % c.length]!;
      const ax = Math.round(p[0] * SNAP) / SNAP;
      const ay = Math.round(p[1] * SNAP) / SNAP;
      const bx = Math.round(q[0] * SNAP) / SNAP;
      const by = Math.round(q[1] * SNAP) / SNAP;
      minX = Math.min(minX, ax);
      maxX = Math.max(maxX, ax);
      minY = Math.min(minY, ay);
      maxY = Math.max(maxY, ay);
      if (ay !== by) edges.push(ax, ay, bx, by);
    }
  }
  const x0 = Math.max(0, Math.floor(minX));
  const y0 = Math.max(0, Math.floor(minY));
  const x1 = Math.min(width, Math.ceil(maxX));
  const y1 = Math.min(height, Math.ceil(maxY));
  const w = Math.max(0, x1 - x0);
  const h = Math.max(0, y1 - y0);
  const data = new Float32Array(w * h);
  const xs: number[] = [];
  const dirs: number[] = [];
  const order: number[] = [];
  for (let row = y0; row < y1; row++) {
    for (let k = 0; k < SUB; k++) {
      const y = row + (k + 0.5) / SUB;
      xs.length = 0;
      dirs.length = 0;
      for (let e = 0; e < edges.length; e += 4) {
        const ay = edges[e + 1]!;
        const by = edges[e + 3]!;
        const up = ay < by;
        if (up ? y >= ay && y < by : y >= by && y < ay) {
          const ax = edges[e]!;
          const bx = edges[e + 2]!;
          xs.push(ax + ((y - ay) * (bx - ax)) / (by - ay));
          dirs.push(up ? 1 : -1);
        }
      }
      if (xs.length < 2) continue;
      order.length = 0;
      for (let i = 0; i < xs.length; i++) order.push(i);
      order.sort((i, j) => xs[i]! - xs[j]! || dirs[i]! - dirs[j]!);
      let wind = 0;
      let spanStart = 0;
      const rowOff = (row - y0) * w;
      for (const i of order) {
        const before = wind;
        wind += dirs[i]!;
        if (before === 0 && wind !== 0) spanStart = xs[i]!;
        else if (before !== 0 && wind === 0) addSpan(data, rowOff, x0, w, spanStart, xs[i]!);
      }
    }
  }
  return { x0, y0, w, h, data };
}

function addSpan(data: Float32Array, rowOff: number, x0: number, w: number, a: number, b: number): void {
  a = Math.max(a, x0);
  b = Math.min(b, x0 + w);
  if (b <= a) return;
  const ia = Math.floor(a);
  const ib = Math.floor(b);
  const inc = 1 / SUB;
  if (ia === ib) {
    data[rowOff + ia - x0]! += (b - a) * inc;
    return;
  }
  data[rowOff + ia - x0]! += (ia + 1 - a) * inc;
  for (let x = ia + 1; x < ib; x++) data[rowOff + x - x0]! += inc;
  if (ib < x0 + w) data[rowOff + ib - x0]! += (b - ib) * inc;
}

/** A float RGB canvas (values 0..255) that shapes are composited onto, quantised once at the end. */
export class Canvas {
  readonly data: Float32Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Float32Array(width * height * 3);
  }

  fill(contours: readonly Contour[], colour: Rgb): void {
    const cov = rasterize(contours, this.width, this.height);
    for (let y = 0; y < cov.h; y++) {
      for (let x = 0; x < cov.w; x++) {
        const a = Math.min(1, cov.data[y * cov.w + x]!);
        if (a <= 0) continue;
        const p = ((cov.y0 + y) * this.width + cov.x0 + x) * 3;
        for (let c = 0; c < 3; c++) this.data[p + c] = this.data[p + c]! * (1 - a) + colour[c]! * a;
      }
    }
  }

  toRgb(): { width: number; height: number; data: Uint8Array } {
    const out = new Uint8Array(this.data.length);
    for (let i = 0; i < out.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(this.data[i]!)));
    return { width: this.width, height: this.height, data: out };
  }
}

/** Normalise a polygon so its bounding box is centred on the origin with larger side 1. */
function normalise(pts: [number, number][]): [number, number][] {
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const s = Math.max(x1 - x0, y1 - y0);
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  return pts.map(([x, y]) => [(x - cx) / s, (y - cy) / s]);
}

function regular(n: number, r: (i: number) => number, phase = -Math.PI / 2): [number, number][] {
  return Array.from({ length: n }, (_, i) => {
    const t = phase + (2 * Math.PI * i) / n;
    return [r(i) * Math.cos(t), r(i) * Math.sin(t)] as [number, number];
  });
}

/** Unit shapes (bounding box larger side 1, centred), y down. Axis-aligned, never rotated. */
export const UNIT_SHAPES: Record<Shape, [number, number][]> = {
  circle: normalise(regular(96, () => 1)),
  square: normalise([
    [0, 0],
    [1, 0],
    [1, 1],
    [0, 1],
  ]),
  triangle: normalise([
    [0, 0],
    [0.5, -Math.sqrt(3) / 2],
    [1, 0],
  ]),
  star: normalise(regular(10, (i) => (i % 2 === 0 ? 1 : 0.45))),
  diamond: normalise([
    [0, -0.5],
    [0.36, 0],
    [0, 0.5],
    [-0.36, 0],
  ]),
  cross: normalise([
    [-1, -3],
    [1, -3],
    [1, -1],
    [3, -1],
    [3, 1],
    [1, 1],
    [1, 3],
    [-1, 3],
    [-1, 1],
    [-3, 1],
    [-3, -1],
    [-1, -1],
  ]),
  heart: normalise(
    Array.from({ length: 96 }, (_, i) => {
      const t = (2 * Math.PI * i) / 96;
      return [
        16 * Math.sin(t) ** 3,
        -(13 * Math.cos(t) - 5 * Math.cos(2 * t) - 2 * Math.cos(3 * t) - Math.cos(4 * t)),
      ] as [number, number];
    }),
  ),
};

/** A shape's polygon at a centre and extent, in pixels. */
export function shapeContour(shape: Shape, cx: number, cy: number, extent: number): Contour {
  return UNIT_SHAPES[shape].map(([x, y]) => [cx + x * extent, cy + y * extent] as const);
}

export function rectContour(x0: number, y0: number, x1: number, y1: number): Contour {
  return [
    [x0, y0],
    [x1, y0],
    [x1, y1],
    [x0, y1],
  ];
}
