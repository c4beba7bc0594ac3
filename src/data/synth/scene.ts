import type { Rng } from './rng.js';
import {
  BACKGROUNDS,
  COLOUR_NAMES,
  COLOURS,
  type Colour,
  MIN_BG_DISTANCE,
  POSITIONS,
  type Position,
  RELATIONS,
  type Relation,
  type Rgb,
  rgbDistance,
  SHAPES,
  type Shape,
  SIGN_COLOURS,
  SIZE_FRACTION,
  SIZES,
  type Size,
  signTextColour,
  WORDS,
  type Word,
} from './vocab.js';

/** A set of identical objects named once in the caption ("two small blue squares"). */
export interface ObjectGroup {
  shape: Shape;
  colour: Colour;
  size: Size;
  /** Whether the caption names the size; unnamed sizes are drawn but not checked. */
  sizeStated: boolean;
  count: number;
}

/** One drawn object; coordinates are fractions of the image side, so a scene renders at any size. */
export interface PlacedObject {
  group: number;
  cx: number;
  cy: number;
}

export interface Sign {
  colour: Colour;
  word: Word;
  cx: number;
  cy: number;
  w: number;
  h: number;
}

export interface Background {
  /** Colour at the start (left or top) and end of a linear gradient; equal for a solid background. */
  from: Rgb;
  to: Rgb;
  direction: 'horizontal' | 'vertical';
  /** Uniform per-pixel noise amplitude in 8-bit levels (0 = none), drawn from `noiseSeed`. */
  noise: number;
  noiseSeed: number;
}

export const SCENE_KINDS = ['objects', 'relation', 'sign'] as const;
export type SceneKind = (typeof SCENE_KINDS)[number];

/**
 * The structured description behind a caption: what the checker verifies and what the renderer
 * draws. `objects` kind: one group with an optional absolute position, or up to two groups side by
 * side ("two red circles and a blue star"); `relation`: groups[0] (one object) relates to
 * groups[1]; `sign`: a coloured sign carrying a word.
 */
export interface Scene {
  kind: SceneKind;
  groups: ObjectGroup[];
  position?: Position;
  relation?: Relation;
  sign?: Sign;
  background: Background;
  objects: PlacedObject[];
}

/** Forces a held-out composition into a sampled scene. */
export type SceneForce = { colour: Colour; shape: Shape } | { word: Word; signColour: Colour };

/** Keep objects this far (fraction of the side) from the image border and from each other. */
const MARGIN = 0.04;
const GAP = 0.05;

export function objectExtent(size: Size): number {
  return SIZE_FRACTION[size];
}

function sampleGroup(rng: Rng, count: number, maxSize: Size = 'large'): ObjectGroup {
  const sizes = SIZES.slice(0, SIZES.indexOf(maxSize) + 1);
  return {
    shape: rng.pick(SHAPES),
    colour: rng.pick(COLOUR_NAMES),
    size: rng.pick(sizes),
    sizeStated: rng.chance(0.5),
    count,
  };
}

function sameLook(a: ObjectGroup, b: ObjectGroup): boolean {
  // Groups must differ in colour or shape, or "a red circle left of a red circle" has no answer.
  return a.colour === b.colour && a.shape === b.shape;
}

function sampleBackground(rng: Rng, colours: readonly Rgb[]): Background | undefined {
  const ok = BACKGROUNDS.filter((bg) => colours.every((c) => rgbDistance(bg, c) >= MIN_BG_DISTANCE));
  if (ok.length === 0) return undefined;
  const from = rng.pick(ok);
  const light = (c: Rgb) => c[0] + c[1] + c[2] > 382;
  const mates = ok.filter((c) => c !== from && light(c) === light(from));
  const gradient = mates.length > 0 && rng.chance(0.4);
  return {
    from,
    to: gradient ? rng.pick(mates) : from,
    direction: rng.chance(0.5) ? 'horizontal' : 'vertical',
    noise: rng.chance(0.35) ? rng.int(3, 7) : 0,
    noiseSeed: rng.nextU32(),
  };
}

interface Box {
  cx: number;
  cy: number;
  e: number;
}

function apart(a: Box, b: Box): boolean {
  const need = (a.e + b.e) / 2 + GAP;
  return Math.abs(a.cx - b.cx) >= need || Math.abs(a.cy - b.cy) >= need;
}

/** Uniform centre for an object of extent e inside [lo, hi] (clamped to the legal band). */
function coord(rng: Rng, e: number, lo = 0, hi = 1): number {
  const min = Math.max(lo, MARGIN + e / 2);
  const max = Math.min(hi, 1 - MARGIN - e / 2);
  return max <= min ? (min + max) / 2 : rng.uniform(min, max);
}

function positionCentre(rng: Rng, pos: Position, e: number): [number, number] {
  if (pos === 'center') return [0.5 + rng.uniform(-0.04, 0.04), 0.5 + rng.uniform(-0.04, 0.04)];
  // Corner objects hug their corner, with a little jitter towards the middle.
  const near = MARGIN + e / 2;
  const x = near + rng.uniform(0, 0.06);
  const y = near + rng.uniform(0, 0.06);
  return [pos.endsWith('left') ? x : 1 - x, pos.startsWith('top') ? y : 1 - y];
}

function layoutObjects(rng: Rng, scene: Scene): PlacedObject[] | undefined {
  const e = scene.groups.map((g) => objectExtent(g.size));
  for (let attempt = 0; attempt < 200; attempt++) {
    const placed: (PlacedObject & Box)[] = [];
    let ok = true;
    for (const [gi, g] of scene.groups.entries()) {
      for (let k = 0; k < g.count && ok; k++) {
        let cx: number;
        let cy: number;
        if (scene.position) [cx, cy] = positionCentre(rng, scene.position, e[gi]!);
        else if (scene.relation) {
          // Group 0 on its side of the image, group 1 on the other; halves overlap a little so
          // layouts are not always symmetric. The relation is verified exactly below.
          const first = gi === 0;
          const lowSide = scene.relation === 'left-of' || scene.relation === 'above' ? first : !first;
          const [lo, hi] = lowSide ? [0, 0.55] : [0.45, 1];
          const horizontal = scene.relation === 'left-of' || scene.relation === 'right-of';
          cx = horizontal ? coord(rng, e[gi]!, lo, hi) : coord(rng, e[gi]!);
          cy = horizontal ? coord(rng, e[gi]!) : coord(rng, e[gi]!, lo, hi);
        } else {
          cx = coord(rng, e[gi]!);
          cy = coord(rng, e[gi]!);
        }
        const box = { group: gi, cx, cy, e: e[gi]! };
        if (placed.some((p) => !apart(p, box))) ok = false;
        placed.push(box);
      }
    }
    if (ok && scene.relation && !relationHolds(scene.relation, placed, true)) ok = false;
    if (ok) return placed.map(({ group, cx, cy }) => ({ group, cx, cy }));
  }
  return undefined;
}

/**
 * Does every object of group 1 stand in `relation` to the (single) object of group 0? The offset
 * along the relation's axis must dominate the cross-axis offset, so "above" means mostly above.
 * The renderer asks for a clear margin (strict), the checker only for the order.
 */
export function relationHolds(
  relation: Relation,
  objects: readonly { group: number; cx: number; cy: number }[],
  strict = false,
): boolean {
  const a = objects.filter((o) => o.group === 0);
  const b = objects.filter((o) => o.group === 1);
  if (a.length !== 1 || b.length === 0) return false;
  const { cx, cy } = a[0]!;
  return b.every((o) => {
    // Offset from A to B; "A left of B" means B lies to the right.
    const along =
      relation === 'left-of'
        ? o.cx - cx
        : relation === 'right-of'
          ? cx - o.cx
          : relation === 'above'
            ? o.cy - cy
            : cy - o.cy;
    const across =
      relation === 'left-of' || relation === 'right-of' ? Math.abs(o.cy - cy) : Math.abs(o.cx - cx);
    return along > (strict ? 0.08 : 0) && along > across * (strict ? 1.2 : 1);
  });
}

function sceneColours(s: Scene): Rgb[] {
  const cs: Rgb[] = s.groups.map((g) => COLOURS[g.colour]);
  if (s.sign) cs.push(COLOURS[s.sign.colour]);
  return cs;
}

function sampleSign(rng: Rng, force?: SceneForce): Sign {
  const word = force && 'word' in force ? force.word : rng.pick(WORDS);
  const colour = force && 'word' in force ? force.signColour : rng.pick(SIGN_COLOURS);
  const w = rng.uniform(0.82, 0.9);
  const h = rng.uniform(0.4, 0.48);
  return {
    word,
    colour,
    w,
    h,
    cx: 0.5 + rng.uniform(-1, 1) * Math.min(0.03, (1 - w) / 2 - MARGIN),
    cy: 0.5 + rng.uniform(-1, 1) * ((1 - h) / 2 - MARGIN - 0.02),
  };
}

function sampleStructure(rng: Rng, force?: SceneForce): Omit<Scene, 'background' | 'objects'> {
  if (force && 'word' in force) return { kind: 'sign', groups: [], sign: sampleSign(rng, force) };
  const kind = rng.weighted<'single' | 'multi' | 'relation' | 'sign'>([
    ['single', 25],
    ['multi', 25],
    ['relation', 32],
    ['sign', force ? 0 : 18],
  ]);
  let s: Omit<Scene, 'background' | 'objects'>;
  if (kind === 'sign') return { kind: 'sign', groups: [], sign: sampleSign(rng) };
  if (kind === 'single') {
    const g = sampleGroup(rng, 1);
    s = { kind: 'objects', groups: [g] };
    if (rng.chance(0.7)) s.position = rng.pick(POSITIONS);
  } else if (kind === 'multi') {
    if (rng.chance(0.55)) {
      const n = rng.int(2, 4);
      s = { kind: 'objects', groups: [sampleGroup(rng, n, n >= 3 ? 'medium' : 'large')] };
    } else {
      const n0 = rng.int(1, 2);
      const n1 = rng.int(1, 2);
      const max: Size = n0 + n1 >= 3 ? 'medium' : 'large';
      s = { kind: 'objects', groups: [sampleGroup(rng, n0, max), sampleGroup(rng, n1, max)] };
    }
  } else {
    const nb = rng.weighted([
      [1, 60],
      [2, 25],
      [3, 15],
    ]);
    s = {
      kind: 'relation',
      groups: [sampleGroup(rng, 1), sampleGroup(rng, nb, nb >= 2 ? 'medium' : 'large')],
      relation: rng.pick(RELATIONS),
    };
  }
  if (force && 'shape' in force) {
    const g = s.groups[rng.int(0, s.groups.length - 1)]!;
    g.colour = force.colour;
    g.shape = force.shape;
  }
  return s;
}

/**
 * Sample one scene from the grammar (optionally forcing a composition into it). Returns
 * undefined when the draw cannot be laid out or coloured; callers draw again from the same Rng,
 * which keeps the result a pure function of the seed.
 */
export function trySampleScene(rng: Rng, force?: SceneForce): Scene | undefined {
  const s = sampleStructure(rng, force);
  if (s.groups.length === 2 && sameLook(s.groups[0]!, s.groups[1]!)) return undefined;
  const scene = s as Scene;
  const background = sampleBackground(rng, sceneColours(scene));
  if (!background) return undefined;
  scene.background = background;
  if (scene.kind === 'sign') {
    scene.objects = [];
    return scene;
  }
  const objects = layoutObjects(rng, scene);
  if (!objects) return undefined;
  scene.objects = objects;
  return scene;
}

export function sampleScene(rng: Rng, force?: SceneForce): Scene {
  for (let i = 0; i < 1000; i++) {
    const s = trySampleScene(rng, force);
    if (s) return s;
  }
  throw new Error('could not sample a scene (grammar constraints unsatisfiable)');
}

/** Text colour drawn on a sign (kept here so renderer and checker agree). */
export function signLetterColour(sign: Sign): Rgb {
  return signTextColour(sign.colour);
}
