import { rasterize, shapeContour } from '../data/synth/raster.js';
import {
  COLOUR_NAMES,
  COLOURS,
  type Colour,
  type Rgb,
  SHAPES,
  type Shape,
  SIZE_FRACTION,
  type Size,
} from '../data/synth/vocab.js';
import type { RgbImage } from '../io/image.js';

/**
 * Classical analysis of a (generated or rendered) image: fit the background, segment what
 * differs from it, split into connected components and describe each one (colour, shape, size,
 * position). Works on any resolution; positions and sizes are fractions of the image side.
 */

export interface Detected {
  /** Nearest named colour of the component's interior pixels. */
  colour: Colour;
  /** Mean RGB of the voting interior pixels. */
  rgb: Rgb;
  shape: Shape;
  /** Soft IoU of the best shape template (1 = perfect). */
  shapeScore: number;
  size: Size;
  /** Extent (larger bounding-box side) and centre, as fractions of the image side. */
  extent: number;
  cx: number;
  cy: number;
  /** Pixel bounding box [x0, y0, x1, y1) in the analysed image and pixel count. */
  box: [number, number, number, number];
  area: number;
}

export interface Analysis {
  width: number;
  height: number;
  /** Background colour per pixel (planar fit), interleaved RGB floats. */
  background: Float32Array;
  components: Detected[];
}

/** Pixels at least this far (RGB distance) from the fitted background count as foreground. */
const FG_THRESHOLD = 45;

/**
 * Per-channel planar fit bg(x, y) = a + b·x + c·y over the image border, refitted without
 * outliers: exact for the dataset's solid and linear-gradient backgrounds, and robust to an
 * object or artefact touching the border in a generated image.
 */
export function fitBackground(img: RgbImage): Float32Array {
  const { width: W, height: H, data } = img;
  const ring = Math.max(1, Math.round(W / 64));
  const pts: number[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (x < ring || y < ring || x >= W - ring || y >= H - ring) pts.push(x, y);
    }
  }
  let use = pts.map(() => true).filter((_, i) => i % 2 === 0);
  let coef: number[][] = [];
  for (let iter = 0; iter < 3; iter++) {
    coef = [0, 1, 2].map((c) => solvePlane(pts, use, (x, y) => data[(y * W + x) * 3 + c]!));
    const res = use.map((_, k) => {
      const x = pts[2 * k]!;
      const y = pts[2 * k + 1]!;
      let d = 0;
      for (let c = 0; c < 3; c++)
        d += (data[(y * W + x) * 3 + c]! - (coef[c]![0]! + coef[c]![1]! * x + coef[c]![2]! * y)) ** 2;
      return Math.sqrt(d);
    });
    const sorted = res.filter((_, k) => use[k]).sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)] ?? 0;
    const limit = Math.max(12, 3 * med);
    const next = res.map((r) => r <= limit);
    if (next.filter(Boolean).length < pts.length / 8) break; // too few inliers: keep the last fit
    use = next;
  }
  const bg = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++)
        bg[(y * W + x) * 3 + c] = coef[c]![0]! + coef[c]![1]! * x + coef[c]![2]! * y;
    }
  }
  return bg;
}

function solvePlane(pts: number[], use: boolean[], v: (x: number, y: number) => number): number[] {
  // Normal equations of least squares for [1, x, y].
  const A = [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ];
  const b = [0, 0, 0];
  for (let k = 0; k < use.length; k++) {
    if (!use[k]) continue;
    const x = pts[2 * k]!;
    const y = pts[2 * k + 1]!;
    const f = [1, x, y];
    const val = v(x, y);
    for (let i = 0; i < 3; i++) {
      b[i]! += f[i]! * val;
      for (let j = 0; j < 3; j++) A[i]![j]! += f[i]! * f[j]!;
    }
  }
  // Ridge on the slopes keeps the solve well-posed when the inliers lie on one line.
  A[1]![1]! += 1e-3;
  A[2]![2]! += 1e-3;
  return solve3(A, b);
}

function solve3(A: number[][], b: number[]): number[] {
  const m = A.map((r, i) => [...r, b[i]!]);
  for (let i = 0; i < 3; i++) {
    let p = i;
    for (let r = i + 1; r < 3; r++) if (Math.abs(m[r]![i]!) > Math.abs(m[p]![i]!)) p = r;
    [m[i], m[p]] = [m[p]!, m[i]!];
    const d = m[i]![i]! || 1e-12;
    for (let r = 0; r < 3; r++) {
      if (r === i) continue;
      const f = m[r]![i]! / d;
      for (let c = i; c < 4; c++) m[r]![c]! -= f * m[i]![c]!;
    }
  }
  return [0, 1, 2].map((i) => m[i]![3]! / (m[i]![i]! || 1e-12));
}

function nearestIndex(r: number, g: number, b: number): number {
  let best = 0;
  let bd = Infinity;
  for (let i = 0; i < COLOUR_NAMES.length; i++) {
    const c = COLOURS[COLOUR_NAMES[i]!];
    const d = (r - c[0]) ** 2 + (g - c[1]) ** 2 + (b - c[2]) ** 2;
    if (d < bd) {
      bd = d;
      best = i;
    }
  }
  return best;
}

/** Box-filter downscale to at most `max` pixels a side (object analysis does not need more). */
export function downscale(img: RgbImage, max: number): RgbImage {
  const f = Math.ceil(Math.max(img.width, img.height) / max);
  if (f <= 1) return img;
  const W = Math.floor(img.width / f);
  const H = Math.floor(img.height / f);
  const out = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let dy = 0; dy < f; dy++)
          for (let dx = 0; dx < f; dx++) s += img.data[((y * f + dy) * img.width + x * f + dx) * 3 + c]!;
        out[(y * W + x) * 3 + c] = Math.round(s / (f * f));
      }
    }
  }
  return { width: W, height: H, data: out };
}

/** Size class from an extent fraction; boundaries at the geometric means of neighbouring sizes. */
export function sizeClass(extent: number): Size {
  if (extent < Math.sqrt(SIZE_FRACTION.small * SIZE_FRACTION.medium)) return 'small';
  if (extent < Math.sqrt(SIZE_FRACTION.medium * SIZE_FRACTION.large)) return 'medium';
  return 'large';
}

/**
 * Segment and describe an image. Objects are analysed at ≤ 64 px a side (the dataset's native
 * size, and enough for shape templates); callers wanting pixel boxes at full resolution scale
 * `box` by `scale`.
 */
export function analyzeImage(full: RgbImage, maxSide = 64): Analysis & { scale: number } {
  const img = downscale(full, maxSide);
  const scale = full.width / img.width;
  const { width: W, height: H, data } = img;
  const bg = fitBackground(img);
  const N = W * H;
  const fg = new Uint8Array(N);
  const dist = new Float32Array(N);
  for (let p = 0; p < N; p++) {
    const d = Math.hypot(
      data[3 * p]! - bg[3 * p]!,
      data[3 * p + 1]! - bg[3 * p + 1]!,
      data[3 * p + 2]! - bg[3 * p + 2]!,
    );
    dist[p] = d;
    fg[p] = d > FG_THRESHOLD ? 1 : 0;
  }
  // 8-connected components by flood fill.
  const label = new Int32Array(N).fill(-1);
  const comps: number[][] = [];
  const stack: number[] = [];
  for (let p = 0; p < N; p++) {
    if (!fg[p] || label[p]! >= 0) continue;
    const id = comps.length;
    const pix: number[] = [];
    label[p] = id;
    stack.push(p);
    while (stack.length) {
      const q = stack.pop()!;
      pix.push(q);
      const qx = q % W;
      const qy = (q - qx) / W;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = qx + dx;
          const ny = qy + dy;
          if (nx < 0 || ny < 0 || nx >= W || ny >= H) continue;
          const n = ny * W + nx;
          if (fg[n] && label[n]! < 0) {
            label[n] = id;
            stack.push(n);
          }
        }
      }
    }
    comps.push(pix);
  }
  // Components smaller than a third of the smallest object's area are noise.
  const minArea = ((SIZE_FRACTION.small * W) ** 2 * 0.35) / 3;
  const pal = new Int16Array(N).fill(-1);
  for (let p = 0; p < N; p++)
    if (fg[p]) pal[p] = nearestIndex(data[3 * p]!, data[3 * p + 1]!, data[3 * p + 2]!);
  // A component inside another's bounding box is a hole's content (the counter of an "O" on a
  // sign, cut off by the letter): the grammar never nests objects, so merge it into the outer one.
  const boxes = comps.map((pix) => {
    let [x0, y0, x1, y1] = [W, H, -1, -1];
    for (const p of pix) {
      const x = p % W;
      const y = (p - x) / W;
      x0 = Math.min(x0, x);
      y0 = Math.min(y0, y);
      x1 = Math.max(x1, x);
      y1 = Math.max(y1, y);
    }
    return [x0, y0, x1, y1] as const;
  });
  const order = comps.map((_, i) => i).sort((a, b) => comps[b]!.length - comps[a]!.length);
  for (const [oi, i] of order.entries()) {
    const bi = boxes[i]!;
    for (const j of order.slice(0, oi)) {
      const bj = boxes[j]!;
      if (comps[j]!.length === 0) continue;
      if (bi[0] > bj[0] && bi[1] > bj[1] && bi[2] < bj[2] && bi[3] < bj[3]) {
        for (const p of comps[i]!) {
          label[p] = j;
          comps[j]!.push(p);
        }
        comps[i] = [];
        break;
      }
    }
  }
  const components: Detected[] = [];
  for (const [id, pix] of comps.entries()) {
    if (pix.length < minArea) continue;
    components.push(describe(img, bg, label, id, pix, pal));
  }
  return { width: W, height: H, background: bg, components, scale };
}

function describe(
  img: RgbImage,
  bg: Float32Array,
  label: Int32Array,
  id: number,
  pix: number[],
  pal: Int16Array,
): Detected {
  const { width: W, height: H, data } = img;
  let [x0, y0, x1, y1] = [W, H, 0, 0];
  for (const p of pix) {
    const x = p % W;
    const y = (p - x) / W;
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x + 1);
    y1 = Math.max(y1, y + 1);
  }
  // Colour vote over interior pixels (all 4-neighbours in the same component with the same
  // nearest colour), so anti-aliased edges, whose mixtures land on other names, do not vote.
  const votes = new Float64Array(COLOUR_NAMES.length);
  const sums = COLOUR_NAMES.map(() => [0, 0, 0]);
  const vote = (interiorOnly: boolean) => {
    for (const p of pix) {
      const x = p % W;
      const y = (p - x) / W;
      const k = pal[p]!;
      if (interiorOnly) {
        const ns = [x > 0 ? p - 1 : -1, x < W - 1 ? p + 1 : -1, y > 0 ? p - W : -1, y < H - 1 ? p + W : -1];
        if (ns.some((n) => n < 0 || label[n] !== label[p] || pal[n] !== k)) continue;
      }
      votes[k]! += 1;
      for (let c = 0; c < 3; c++) sums[k]![c]! += data[3 * p + c]!;
    }
  };
  vote(true);
  if (votes.every((v) => v === 0)) vote(false);
  let k = 0;
  for (let i = 1; i < votes.length; i++) if (votes[i]! > votes[k]!) k = i;
  const rgb = sums[k]!.map((s) => s / votes[k]!) as unknown as Rgb;
  // Soft coverage α: where the pixel lies between background and object colour. Anti-aliasing
  // mixes the two linearly, so α recovers sub-pixel shape for the template match.
  const pad = 3;
  const bx0 = Math.max(0, x0 - pad);
  const by0 = Math.max(0, y0 - pad);
  const bx1 = Math.min(W, x1 + pad);
  const by1 = Math.min(H, y1 + pad);
  const bw = bx1 - bx0;
  const bh = by1 - by0;
  const alpha = new Float32Array(bw * bh);
  for (let y = by0; y < by1; y++) {
    for (let x = bx0; x < bx1; x++) {
      const p = y * W + x;
      if (label[p] !== id && label[p]! >= 0) continue; // another component
      let num = 0;
      let den = 0;
      for (let c = 0; c < 3; c++) {
        const o = rgb[c]! - bg[3 * p + c]!;
        num += (data[3 * p + c]! - bg[3 * p + c]!) * o;
        den += o * o;
      }
      let a = num / (den || 1);
      if (label[p] === id) {
        // Pixels of the component far off the background–object line (letters on a sign,
        // texture) still belong to the object.
        let off = 0;
        for (let c = 0; c < 3; c++)
          off += (data[3 * p + c]! - bg[3 * p + c]! - a * (rgb[c]! - bg[3 * p + c]!)) ** 2;
        if (Math.sqrt(off) > 60) a = 1;
      }
      alpha[(y - by0) * bw + (x - bx0)] = Math.min(1, Math.max(0, a));
    }
  }
  // Centre and extent from the foreground box. (Measured: boxes from α ≥ ½ and templates
  // blurred to match soft edges were both worse on blurred renders than this plus a wider
  // scale search.)
  const ext0 = Math.max(x1 - x0, y1 - y0);
  const cx0 = (x0 + x1) / 2;
  const cy0 = (y0 + y1) / 2;
  let best = { shape: 'circle' as Shape, score: -1, cx: cx0, cy: cy0, ext: ext0 };
  const win = { x0: bx0, y0: by0, w: bw, h: bh };
  for (const shape of SHAPES) {
    for (const s of SCALES) {
      for (const dx of [-0.5, 0, 0.5]) {
        for (const dy of [-0.5, 0, 0.5]) {
          const cx = cx0 + dx;
          const cy = cy0 + dy;
          const ext = ext0 * s;
          const t = templateWindow(shapeContour(shape, cx, cy, ext), win, W, H);
          const score = softIoU(alpha, t.cov, t.outside);
          if (score > best.score) best = { shape, score, cx, cy, ext };
        }
      }
    }
  }
  return {
    colour: COLOUR_NAMES[k]!,
    rgb,
    shape: best.shape,
    shapeScore: best.score,
    size: sizeClass(best.ext / W),
    extent: best.ext / W,
    cx: best.cx / W,
    cy: best.cy / H,
    box: [x0, y0, x1, y1],
    area: pix.length,
  };
}

/** Template scales around the measured extent: soft (blurred) edges move the foreground box. */
const SCALES = [0.84, 0.92, 1, 1.08, 1.16];

/** Template coverage inside the analysis window, plus its mass falling outside the window. */
function templateWindow(
  contour: ReturnType<typeof shapeContour>,
  win: { x0: number; y0: number; w: number; h: number },
  W: number,
  H: number,
): { cov: Float32Array; outside: number } {
  const c = rasterize([contour], W, H);
  const cov = new Float32Array(win.w * win.h);
  let outside = 0;
  for (let y = 0; y < c.h; y++) {
    for (let x = 0; x < c.w; x++) {
      const v = Math.min(1, c.data[y * c.w + x]!);
      const X = c.x0 + x - win.x0;
      const Y = c.y0 + y - win.y0;
      if (X < 0 || Y < 0 || X >= win.w || Y >= win.h) outside += v;
      else cov[Y * win.w + X] = v;
    }
  }
  return { cov, outside };
}

/** Soft IoU Σmin/Σmax of measured coverage and template; template mass outside the window counts against. */
function softIoU(alpha: Float32Array, t: Float32Array, outside: number): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < alpha.length; i++) {
    const a = alpha[i]!;
    const b = t[i]!;
    inter += Math.min(a, b);
    union += Math.max(a, b);
  }
  return inter / (union + outside || 1);
}
