import type { Scene } from './scene.js';
import { COLOUR_NAMES, type Position, type Relation, SHAPE_PLURAL, SHAPES, SIZES } from './vocab.js';

/**
 * What each word of a caption says about the scene, for pretraining a text encoder on captions
 * alone (the role C4 pretraining plays for Imagen's frozen T5). Every word of a noun phrase
 * ("two small blue squares") is labelled with its group's attributes, including where that group
 * goes: in "a red circle to the right of a blue square" the words of "a red circle" get `right`
 * and those of "a blue square" get `left`. An encoder that can predict this from each word's
 * output vector hands the UNet's cross-attention features that say where each thing belongs.
 */
export const PLACES = [
  'anywhere',
  'left',
  'right',
  'top',
  'bottom',
  'center',
  'top-left',
  'top-right',
  'bottom-left',
  'bottom-right',
] as const;
export type Place = (typeof PLACES)[number];

/** Attribute heads and their classes; `shape` has an extra class for a sign. */
export const PARSE_HEADS = {
  place: PLACES.length,
  colour: COLOUR_NAMES.length,
  shape: SHAPES.length + 1,
  count: 4,
  size: SIZES.length + 1,
} as const;
export type ParseHead = keyof typeof PARSE_HEADS;
export const PARSE_HEAD_NAMES = Object.keys(PARSE_HEADS) as ParseHead[];

/** Class index per head for one word, or undefined for words outside any noun phrase. */
export type WordTargets = Record<ParseHead, number> | undefined;

const ARTICLES: Record<string, number> = { a: 1, an: 1, one: 1, two: 2, three: 3, four: 4 };
const RELATION_SIDE: Record<Relation, [Place, Place]> = {
  'left-of': ['left', 'right'],
  'right-of': ['right', 'left'],
  above: ['top', 'bottom'],
  below: ['bottom', 'top'],
};
const SIGN_CLASS = SHAPES.length;
const SIZE_UNSTATED = SIZES.length;

function shapeOf(word: string): { shape: number; plural: boolean } | undefined {
  if (word === 'sign') return { shape: SIGN_CLASS, plural: false };
  for (const [i, s] of SHAPES.entries()) {
    if (word === s) return { shape: i, plural: false };
    if (word === SHAPE_PLURAL[s]) return { shape: i, plural: true };
  }
  return undefined;
}

function placeOfGroup(scene: Scene, group: number): Place {
  if (scene.relation) return RELATION_SIDE[scene.relation][group === 0 ? 0 : 1];
  if (scene.position) return scene.position satisfies Position;
  return 'anywhere';
}

/**
 * Labels for the words of `caption` (split on spaces, lower-cased; punctuation stays on its word)
 * given the scene it describes. Returns undefined when a noun phrase names nothing in the scene,
 * which means the caption and scene do not belong together.
 */
export function captionParseTargets(
  caption: string,
  scene: Scene,
): { words: string[]; targets: WordTargets[] } | undefined {
  const words = caption.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const targets: WordTargets[] = words.map(() => undefined);
  for (let i = 0; i < words.length; i++) {
    const count = ARTICLES[words[i]!];
    if (count === undefined) continue;
    let j = i + 1;
    const size = SIZES.indexOf(words[j] as (typeof SIZES)[number]);
    if (size >= 0) j++;
    const colour = COLOUR_NAMES.indexOf(words[j] as (typeof COLOUR_NAMES)[number]);
    if (colour < 0) continue;
    const noun = shapeOf((words[j + 1] ?? '').replace(/[^a-z]+$/, ''));
    if (!noun) continue;
    let place: Place = 'anywhere';
    if (noun.shape === SIGN_CLASS) {
      if (scene.sign?.colour !== COLOUR_NAMES[colour]) return undefined;
    } else {
      const g = scene.groups.findIndex(
        (x) => x.colour === COLOUR_NAMES[colour] && x.shape === SHAPES[noun.shape] && x.count === count,
      );
      if (g < 0) return undefined;
      place = placeOfGroup(scene, g);
    }
    const t = {
      place: PLACES.indexOf(place),
      colour,
      shape: noun.shape,
      count: count - 1,
      size: size >= 0 ? size : SIZE_UNSTATED,
    };
    for (let k = i; k <= j + 1; k++) targets[k] = t;
    i = j + 1;
  }
  return { words, targets };
}
