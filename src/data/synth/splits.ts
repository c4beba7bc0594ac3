import { ImagenError } from '../../engine/errors.js';
import { captionScene, captionSignWithoutColour } from './caption.js';
import { Rng } from './rng.js';
import { type Scene, type SceneForce, type SceneKind, sampleScene } from './scene.js';
import type { Colour, Shape, Word } from './vocab.js';

/**
 * Held-out compositions: these colour–shape and word–colour pairs never occur in the training
 * split, so an evaluation on them measures binding of known attributes into new combinations
 * rather than memorisation. Every shape and many colours appear in some pair, yet each colour,
 * shape and word still occurs in training in other combinations.
 */
export const HELDOUT_COLOUR_SHAPE: readonly (readonly [Colour, Shape])[] = [
  ['red', 'star'],
  ['blue', 'triangle'],
  ['green', 'heart'],
  ['yellow', 'square'],
  ['purple', 'circle'],
  ['orange', 'diamond'],
  ['cyan', 'cross'],
  ['pink', 'square'],
];

export const HELDOUT_WORD_COLOUR: readonly (readonly [Word, Colour])[] = [
  ['STOP', 'green'],
  ['HELLO', 'blue'],
  ['OPEN', 'red'],
  ['CAT', 'yellow'],
  ['LOVE', 'black'],
  ['PIZZA', 'purple'],
  ['MOON', 'orange'],
  ['FISH', 'pink'],
];

export type Split = 'train' | 'heldout';

/** True when the scene contains any held-out composition. */
export function isHeldout(scene: Scene): boolean {
  if (scene.groups.some((g) => HELDOUT_COLOUR_SHAPE.some(([c, s]) => g.colour === c && g.shape === s)))
    return true;
  const sign = scene.sign;
  return !!sign && HELDOUT_WORD_COLOUR.some(([w, c]) => sign.word === w && sign.colour === c);
}

export interface SynthExample {
  index: number;
  caption: string;
  scene: Scene;
}

const SPLIT_CODE: Record<Split, number> = { train: 1, heldout: 2 };

/**
 * Example `index` of a split for a seed. Each example has its own Rng stream keyed by
 * (seed, split, index), so `--count 100` is a prefix of `--count 1000` and examples can be
 * generated in any order or in parallel with identical results.
 */
export function synthExample(seed: number, split: Split, index: number): SynthExample {
  const rng = new Rng(seed, SPLIT_CODE[split], index);
  let scene: Scene;
  if (split === 'train') {
    // Rejection keeps the training distribution the grammar's own, minus the held-out pairs.
    do scene = sampleScene(rng);
    while (isHeldout(scene));
  } else {
    // Every held-out example is built around one held-out pair; object scenes and sign scenes
    // in proportion to the number of pairs of each kind.
    const nCs = HELDOUT_COLOUR_SHAPE.length;
    const k = rng.int(0, nCs + HELDOUT_WORD_COLOUR.length - 1);
    let force: SceneForce;
    if (k < nCs) {
      const [colour, shape] = HELDOUT_COLOUR_SHAPE[k]!;
      force = { colour, shape };
    } else {
      const [word, signColour] = HELDOUT_WORD_COLOUR[k - nCs]!;
      force = { word, signColour };
    }
    scene = sampleScene(rng, force);
  }
  return { index, scene, caption: captionScene(scene, rng) };
}

/** Rng stream purpose for caption rewrites, apart from the scene streams (split codes 1 and 2). */
const CAPTION_DROP_STREAM = 3;

/**
 * `ex` with, for a sign scene and with probability `p`, a caption that leaves the sign's colour
 * unsaid. The draw has its own Rng stream keyed by (seed, index), so the scene, the pixels and every
 * other caption stay exactly those of the plain dataset, and p = 0 changes nothing.
 */
export function withSignColourDropped(ex: SynthExample, seed: number, p: number): SynthExample {
  if (p <= 0 || !ex.scene.sign) return ex;
  const rng = new Rng(seed, CAPTION_DROP_STREAM, ex.index);
  if (!rng.chance(p)) return ex;
  return { ...ex, caption: captionSignWithoutColour(ex.scene.sign.word, rng) };
}

export function synthExamples(seed: number, split: Split, count: number, start = 0): SynthExample[] {
  return Array.from({ length: count }, (_, i) => synthExample(seed, split, start + i));
}

/** How many objects a scene draws: a sign counts as one. */
export function sceneObjectCount(scene: SynthExample['scene']): number {
  return scene.kind === 'sign' ? 1 : scene.groups.reduce((n, g) => n + g.count, 0);
}

/**
 * The first `count` examples whose scene is one of `kinds` (all kinds: the first `count`) and draws
 * at least `minObjects` objects, read in index order, so they are exactly those a full stream of the
 * seed holds; `drawn` is how many indices that took. Fails if the split never yields such scenes.
 */
export function synthExamplesOfKinds(
  seed: number,
  split: Split,
  count: number,
  kinds?: readonly SceneKind[],
  minObjects = 1,
): { examples: SynthExample[]; drawn: number } {
  if (!kinds && minObjects <= 1) return { examples: synthExamples(seed, split, count), drawn: count };
  const examples: SynthExample[] = [];
  const maxDrawn = 1000 + 100 * count;
  let drawn = 0;
  while (examples.length < count) {
    if (drawn >= maxDrawn)
      throw new ImagenError(
        'BAD_INPUT',
        `no ${kinds ? `${kinds.join('/')} ` : ''}scenes${minObjects > 1 ? ` of at least ${minObjects} objects` : ''} in the first ${drawn} of split ${split}`,
      );
    const ex = synthExample(seed, split, drawn++);
    if ((!kinds || kinds.includes(ex.scene.kind)) && sceneObjectCount(ex.scene) >= minObjects)
      examples.push(ex);
  }
  return { examples, drawn };
}
