import type { Contour } from './raster.js';

/**
 * A minimal TrueType reader (cmap format 4, hmtx, loca/glyf with simple and composite glyphs)
 * that turns text into polygons for our own rasteriser. Text therefore never goes through a
 * system font stack (fontconfig, hinting, sub-pixel settings): the glyph outlines come from the
 * DejaVu TTF shipped in npm, and the pixels are the same on every machine.
 */
export class TrueTypeFont {
  private readonly view: DataView;
  private readonly tables = new Map<string, number>();
  readonly unitsPerEm: number;
  readonly ascender: number;
  readonly descender: number;
  private readonly longLoca: boolean;
  private readonly numHMetrics: number;
  private readonly cmapSub: number;
  private readonly cache = new Map<number, { contours: [number, number][][]; advance: number }>();

  constructor(bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const v = this.view;
    const n = v.getUint16(4);
    for (let i = 0; i < n; i++) {
      const rec = 12 + 16 * i;
      const tag = String.fromCharCode(
        v.getUint8(rec),
        v.getUint8(rec + 1),
        v.getUint8(rec + 2),
        v.getUint8(rec + 3),
      );
      this.tables.set(tag, v.getUint32(rec + 8));
    }
    for (const t of ['head', 'hhea', 'hmtx', 'cmap', 'loca', 'glyf']) {
      if (!this.tables.has(t))
        throw new Error(`font has no ${t} table (only TrueType outlines are supported)`);
    }
    const head = this.table('head');
    this.unitsPerEm = v.getUint16(head + 18);
    this.longLoca = v.getInt16(head + 50) === 1;
    const hhea = this.table('hhea');
    this.ascender = v.getInt16(hhea + 4);
    this.descender = v.getInt16(hhea + 6);
    this.numHMetrics = v.getUint16(hhea + 34);
    const cmap = this.table('cmap');
    let sub = -1;
    for (let i = 0; i < v.getUint16(cmap + 2); i++) {
      const rec = cmap + 4 + 8 * i;
      const pid = v.getUint16(rec);
      const eid = v.getUint16(rec + 2);
      const off = cmap + v.getUint32(rec + 4);
      if (v.getUint16(off) === 4 && ((pid === 3 && eid === 1) || pid === 0)) sub = off;
    }
    if (sub < 0) throw new Error('font has no Unicode BMP cmap (format 4)');
    this.cmapSub = sub;
  }

  private table(tag: string): number {
    return this.tables.get(tag)!;
  }

  glyphIndex(code: number): number {
    const v = this.view;
    const s = this.cmapSub;
    const segX2 = v.getUint16(s + 6);
    const ends = s + 14;
    const starts = ends + segX2 + 2;
    const deltas = starts + segX2;
    const ranges = deltas + segX2;
    for (let i = 0; i < segX2; i += 2) {
      if (v.getUint16(ends + i) < code) continue;
      const start = v.getUint16(starts + i);
      if (start > code) return 0;
      const delta = v.getUint16(deltas + i);
      const ro = v.getUint16(ranges + i);
      if (ro === 0) return (code + delta) & 0xffff;
      const g = v.getUint16(ranges + i + ro + 2 * (code - start));
      return g === 0 ? 0 : (g + delta) & 0xffff;
    }
    return 0;
  }

  advance(glyph: number): number {
    const hmtx = this.table('hmtx');
    return this.view.getUint16(hmtx + 4 * Math.min(glyph, this.numHMetrics - 1));
  }

  /** Glyph outline in font units (y up), flattened to polygons. */
  glyph(glyph: number): { contours: [number, number][][]; advance: number } {
    let g = this.cache.get(glyph);
    if (!g) {
      g = { contours: this.outline(glyph, 0), advance: this.advance(glyph) };
      this.cache.set(glyph, g);
    }
    return g;
  }

  private outline(glyph: number, depth: number): [number, number][][] {
    if (depth > 8) return [];
    const v = this.view;
    const loca = this.table('loca');
    const off = this.longLoca ? v.getUint32(loca + 4 * glyph) : v.getUint16(loca + 2 * glyph) * 2;
    const next = this.longLoca ? v.getUint32(loca + 4 * glyph + 4) : v.getUint16(loca + 2 * glyph + 2) * 2;
    if (next === off) return []; // empty glyph (space)
    const p = this.table('glyf') + off;
    const nContours = v.getInt16(p);
    if (nContours < 0) return this.composite(p + 10, depth);
    const endPts: number[] = [];
    for (let i = 0; i < nContours; i++) endPts.push(v.getUint16(p + 10 + 2 * i));
    const nPts = nContours ? endPts[nContours - 1]! + 1 : 0;
    let q = p + 10 + 2 * nContours;
    q += 2 + v.getUint16(q); // skip instructions
    const flags: number[] = [];
    while (flags.length < nPts) {
      const f = v.getUint8(q++);
      flags.push(f);
      if (f & 8) {
        const rep = v.getUint8(q++);
        for (let r = 0; r < rep; r++) flags.push(f);
      }
    }
    const readCoords = (shortBit: number, sameBit: number): number[] => {
      const out: number[] = [];
      let c = 0;
      for (const f of flags) {
        if (f & shortBit) {
          const d = v.getUint8(q++);
          c += f & sameBit ? d : -d;
        } else if (!(f & sameBit)) {
          c += v.getInt16(q);
          q += 2;
        }
        out.push(c);
      }
      return out;
    };
    const xs = readCoords(2, 16);
    const ys = readCoords(4, 32);
    const contours: [number, number][][] = [];
    let first = 0;
    for (const end of endPts) {
      const pts: { x: number; y: number; on: boolean }[] = [];
      for (let i = first; i <= end; i++) pts.push({ x: xs[i]!, y: ys[i]!, on: (flags[i]! & 1) === 1 });
      first = end + 1;
      contours.push(flattenQuadratic(pts));
    }
    return contours;
  }

  private composite(q: number, depth: number): [number, number][][] {
    const v = this.view;
    const out: [number, number][][] = [];
    for (;;) {
      const flags = v.getUint16(q);
      const glyph = v.getUint16(q + 2);
      q += 4;
      let dx: number;
      let dy: number;
      if (flags & 1) {
        dx = v.getInt16(q);
        dy = v.getInt16(q + 2);
        q += 4;
      } else {
        dx = v.getInt8(q);
        dy = v.getInt8(q + 1);
        q += 2;
      }
      if (!(flags & 2)) dx = dy = 0; // point-matching placement: not used by DejaVu's Latin letters
      let [a, b, c, d] = [1, 0, 0, 1];
      const f2dot14 = (o: number) => v.getInt16(o) / 16384;
      if (flags & 8) {
        a = d = f2dot14(q);
        q += 2;
      } else if (flags & 0x40) {
        a = f2dot14(q);
        d = f2dot14(q + 2);
        q += 4;
      } else if (flags & 0x80) {
        a = f2dot14(q);
        b = f2dot14(q + 2);
        c = f2dot14(q + 4);
        d = f2dot14(q + 6);
        q += 8;
      }
      for (const contour of this.outline(glyph, depth + 1)) {
        out.push(contour.map(([x, y]) => [a * x + c * y + dx, b * x + d * y + dy]));
      }
      if (!(flags & 0x20)) break;
    }
    return out;
  }

  /** Width of a string in pixels at `sizePx` (em size). */
  measure(text: string, sizePx: number): number {
    let w = 0;
    for (const ch of text) w += this.advance(this.glyphIndex(ch.codePointAt(0)!));
    return (w * sizePx) / this.unitsPerEm;
  }

  /** Polygons of a string with its baseline starting at (x, y) in pixel coordinates (y down). */
  layout(text: string, sizePx: number, x: number, y: number): Contour[] {
    const scale = sizePx / this.unitsPerEm;
    const out: Contour[] = [];
    let pen = x;
    for (const ch of text) {
      const g = this.glyph(this.glyphIndex(ch.codePointAt(0)!));
      for (const c of g.contours) out.push(c.map(([gx, gy]) => [pen + gx * scale, y - gy * scale] as const));
      pen += g.advance * scale;
    }
    return out;
  }
}

/** TrueType quadratic B-spline contour → polygon (consecutive off-curve points imply an on-curve midpoint). */
function flattenQuadratic(pts: { x: number; y: number; on: boolean }[]): [number, number][] {
  const n = pts.length;
  if (n === 0) return [];
  // Start at an on-curve point (or the implied midpoint of the first two off-curve points).
  let startIdx = pts.findIndex((p) => p.on);
  let start: { x: number; y: number };
  if (startIdx < 0) {
    start = { x: (pts[0]!.x + pts[1 % n]!.x) / 2, y: (pts[0]!.y + pts[1 % n]!.y) / 2 };
    startIdx = 0;
  } else start = pts[startIdx]!;
  const out: [number, number][] = [[start.x, start.y]];
  let cur = start;
  let ctrl: { x: number; y: number } | undefined;
  const STEPS = 6;
  const quad = (p0: { x: number; y: number }, c: { x: number; y: number }, p1: { x: number; y: number }) => {
    for (let s = 1; s <= STEPS; s++) {
      const t = s / STEPS;
      const u = 1 - t;
      out.push([
        u * u * p0.x + 2 * u * t * c.x + t * t * p1.x,
        u * u * p0.y + 2 * u * t * c.y + t * t * p1.y,
      ]);
    }
  };
  for (let k = 1; k <= n; k++) {
    // k === n closes the contour back at the start point.
    const p = k === n ? { ...start, on: true } : pts[(startIdx + k) % n]!;
    if (p.on) {
      if (ctrl) quad(cur, ctrl, p);
      else out.push([p.x, p.y]);
      cur = p;
      ctrl = undefined;
    } else if (ctrl) {
      const mid = { x: (ctrl.x + p.x) / 2, y: (ctrl.y + p.y) / 2 };
      quad(cur, ctrl, mid);
      cur = mid;
      ctrl = p;
    } else ctrl = p;
  }
  out.pop(); // the closing point repeats the start
  return out;
}
