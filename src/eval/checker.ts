import { relationHolds, type Scene } from '../data/synth/scene.js';
import { type Rgb, rgbDistance, signTextColour } from '../data/synth/vocab.js';
import type { RgbImage } from '../io/image.js';
import { type Analysis, analyzeImage, type Detected } from './analyze.js';

export const ATTRIBUTES = ['count', 'colour', 'shape', 'size', 'relation', 'word'] as const;
export type Attribute = (typeof ATTRIBUTES)[number];

/** Per-attribute verdicts; an attribute the prompt does not constrain is absent. */
export type Verdicts = Partial<Record<Attribute, boolean>>;

export interface CheckResult {
  verdicts: Verdicts;
  /** Every constrained attribute holds. */
  pass: boolean;
  detected: Detected[];
  /** What OCR read on the sign, when the prompt has one. */
  ocrText?: string;
}

/** Reads a word from a binarised crop (black letters on white); injected so the core stays platform-free. */
export type WordReader = (img: RgbImage) => Promise<string>;

interface Expected {
  group: number;
  colour: string;
  shape: string;
  size: string;
  sizeStated: boolean;
}

/** Greedy matching of expected objects to detections, best agreement first (colour > shape > size). */
function match(expected: Expected[], found: Detected[]): (Detected | undefined)[] {
  const pairs: { e: number; d: number; s: number }[] = [];
  expected.forEach((e, ei) => {
    found.forEach((d, di) => {
      const s = 4 * +(e.colour === d.colour) + 2 * +(e.shape === d.shape) + +(e.size === d.size);
      pairs.push({ e: ei, d: di, s });
    });
  });
  pairs.sort((a, b) => b.s - a.s || a.e - b.e || a.d - b.d);
  const out: (Detected | undefined)[] = expected.map(() => undefined);
  const used = new Set<number>();
  for (const p of pairs) {
    if (out[p.e] || used.has(p.d)) continue;
    out[p.e] = found[p.d];
    used.add(p.d);
  }
  return out;
}

/** Absolute positions: generous regions around where the renderer puts objects. */
function inPosition(pos: NonNullable<Scene['position']>, d: Detected): boolean {
  if (pos === 'center') return Math.abs(d.cx - 0.5) < 0.15 && Math.abs(d.cy - 0.5) < 0.15;
  const xOk = pos.endsWith('left') ? d.cx < 0.4 : d.cx > 0.6;
  const yOk = pos.startsWith('top') ? d.cy < 0.4 : d.cy > 0.6;
  return xOk && yOk;
}

/** Verdicts for everything but the word (which needs OCR). */
export function checkAnalysis(scene: Scene, a: Analysis): Verdicts {
  const found = a.components;
  const v: Verdicts = {};
  if (scene.kind === 'sign') {
    // The sign with its letters is one component; the colour vote ignores the thinner letters.
    v.count = found.length === 1;
    const sign = largest(found);
    v.colour = !!sign && sign.colour === scene.sign!.colour;
    return v;
  }
  const expected: Expected[] = [];
  scene.groups.forEach((g, gi) => {
    for (let k = 0; k < g.count; k++)
      expected.push({ group: gi, colour: g.colour, shape: g.shape, size: g.size, sizeStated: g.sizeStated });
  });
  const m = match(expected, found);
  v.count = found.length === expected.length;
  v.colour = expected.every((e, i) => m[i]?.colour === e.colour);
  v.shape = expected.every((e, i) => m[i]?.shape === e.shape);
  if (expected.some((e) => e.sizeStated))
    v.size = expected.every((e, i) => !e.sizeStated || m[i]?.size === e.size);
  if (scene.relation) {
    v.relation =
      m.every((d) => d) &&
      relationHolds(
        scene.relation,
        m.map((d, i) => ({ group: expected[i]!.group, cx: d!.cx, cy: d!.cy })),
      );
  } else if (scene.position) {
    v.relation = !!m[0] && inPosition(scene.position, m[0]);
  }
  return v;
}

/** The largest component: a sign, or the main object of a one-object scene. */
export function largest(found: readonly Detected[]): Detected | undefined {
  return found.reduce<Detected | undefined>((b, d) => (!b || d.area > b.area ? d : b), undefined);
}

/**
 * The sign's letters as black on white, the crop scaled to `cropHeight` px (capitals about half of that): "textness" is the
 * distance from the sign's own colour relative to the expected letter contrast, bilinearly
 * upsampled and thresholded at one half, with a white margin (Tesseract wants one).
 */
export function signCrop(
  img: RgbImage,
  a: Analysis & { scale: number },
  scene: Scene,
  cropHeight = 160,
): RgbImage | undefined {
  const sign = largest(a.components);
  if (!sign || !scene.sign) return undefined;
  const s = a.scale;
  const [bx0, by0, bx1, by1] = sign.box;
  // Trim the sign's border (anti-aliased edge against the background; the box comes from the
  // ≤ 64 px analysis, so it is up to one analysis pixel off at full resolution).
  const inset = Math.max(1, Math.round(1.5 * s));
  const x0 = Math.round(bx0 * s) + inset;
  const y0 = Math.round(by0 * s) + inset;
  const x1 = Math.round(bx1 * s) - inset;
  const y1 = Math.round(by1 * s) - inset;
  const w = x1 - x0;
  const h = y1 - y0;
  if (w < 4 || h < 4) return undefined;
  const signRgb: Rgb = sign.rgb;
  const letter = signTextColour(sign.colour);
  const contrast = Math.max(60, rgbDistance(letter, signRgb));
  const t = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = ((y0 + y) * img.width + x0 + x) * 3;
      const d = Math.hypot(
        img.data[p]! - signRgb[0],
        img.data[p + 1]! - signRgb[1],
        img.data[p + 2]! - signRgb[2],
      );
      t[y * w + x] = Math.min(1, d / contrast);
    }
  }
  const k = Math.max(1, cropHeight / h);
  const W = Math.round(w * k);
  const H = Math.round(h * k);
  const margin = 24;
  const outW = W + 2 * margin;
  const outH = H + 2 * margin;
  const out = new Uint8Array(outW * outH * 3).fill(255);
  for (let Y = 0; Y < H; Y++) {
    const fy = Math.min(h - 1, Math.max(0, (Y + 0.5) / k - 0.5));
    const iy = Math.floor(fy);
    const ty = fy - iy;
    const iy1 = Math.min(h - 1, iy + 1);
    for (let X = 0; X < W; X++) {
      const fx = Math.min(w - 1, Math.max(0, (X + 0.5) / k - 0.5));
      const ix = Math.floor(fx);
      const tx = fx - ix;
      const ix1 = Math.min(w - 1, ix + 1);
      const v =
        (1 - ty) * ((1 - tx) * t[iy * w + ix]! + tx * t[iy * w + ix1]!) +
        ty * ((1 - tx) * t[iy1 * w + ix]! + tx * t[iy1 * w + ix1]!);
      if (v > 0.5)
        out.fill(0, ((Y + margin) * outW + X + margin) * 3, ((Y + margin) * outW + X + margin) * 3 + 3);
    }
  }
  clearBorderBlobs(out, outW, outH, margin);
  return { width: outW, height: outH, data: out };
}

/**
 * Whiten dark blobs that touch the crop's edge: leftovers of the sign's border, which Tesseract
 * reads as I or | (or refuses the line over). Letters sit well inside the sign.
 */
function clearBorderBlobs(img: Uint8Array, W: number, H: number, margin: number): void {
  const dark = (p: number) => img[p * 3] === 0;
  const stack: number[] = [];
  const seed = (x: number, y: number) => {
    const p = y * W + x;
    if (dark(p)) stack.push(p);
  };
  for (let x = margin; x < W - margin; x++) {
    seed(x, margin);
    seed(x, H - margin - 1);
  }
  for (let y = margin; y < H - margin; y++) {
    seed(margin, y);
    seed(W - margin - 1, y);
  }
  while (stack.length) {
    const p = stack.pop()!;
    if (!dark(p)) continue;
    img.fill(255, p * 3, p * 3 + 3);
    const x = p % W;
    const y = (p - x) / W;
    if (x > 0) stack.push(p - 1);
    if (x < W - 1) stack.push(p + 1);
    if (y > 0) stack.push(p - W);
    if (y < H - 1) stack.push(p + W);
  }
}

/** Normalise OCR output for comparison: capitals only. */
export function normaliseWord(s: string): string {
  return s.toUpperCase().replace(/[^A-Z]/g, '');
}

/** Sign-crop heights (px) tried in turn for OCR. */
const OCR_SCALES = [160, 100];

/** Check one image against the scene its prompt came from. */
export async function checkImage(scene: Scene, img: RgbImage, readWord?: WordReader): Promise<CheckResult> {
  const a = analyzeImage(img);
  const verdicts = checkAnalysis(scene, a);
  let ocrText: string | undefined;
  if (scene.sign) {
    if (!readWord) throw new Error('a sign prompt needs an OCR reader');
    // Two honest reads at different magnifications: Tesseract occasionally drops a letter of a
    // short word ("ZOO" → "ZO") at one scale and not at the other. A wrong word stays wrong.
    for (const scale of OCR_SCALES) {
      const crop = signCrop(img, a, scene, scale);
      ocrText = crop ? normaliseWord(await readWord(crop)) : '';
      if (ocrText === scene.sign.word) break;
    }
    verdicts.word = ocrText === scene.sign.word;
  }
  const pass = Object.values(verdicts).every(Boolean);
  return { verdicts, pass, detected: a.components, ...(ocrText !== undefined ? { ocrText } : {}) };
}

export interface Summary {
  n: number;
  wholePrompt: number;
  perAttribute: Partial<Record<Attribute, { correct: number; total: number; accuracy: number }>>;
}

export function summarise(results: readonly Pick<CheckResult, 'verdicts' | 'pass'>[]): Summary {
  const perAttribute: Summary['perAttribute'] = {};
  for (const r of results) {
    for (const [k, ok] of Object.entries(r.verdicts) as [Attribute, boolean][]) {
      perAttribute[k] ??= { correct: 0, total: 0, accuracy: 0 };
      const s = perAttribute[k];
      s.total++;
      if (ok) s.correct++;
    }
  }
  for (const s of Object.values(perAttribute)) s.accuracy = s.total ? s.correct / s.total : 0;
  const ordered: Summary['perAttribute'] = {};
  for (const k of ATTRIBUTES) if (perAttribute[k]) ordered[k] = perAttribute[k];
  return {
    n: results.length,
    wholePrompt: results.length ? results.filter((r) => r.pass).length / results.length : 0,
    perAttribute: ordered,
  };
}
