import type { Rng } from './rng.js';
import type { ObjectGroup, Scene } from './scene.js';
import { type Position, type Relation, SHAPE_PLURAL } from './vocab.js';

const NUMBER_WORDS = ['zero', 'a', 'two', 'three', 'four'];

/** "a large red circle", "two small blue squares", "three yellow triangles". */
export function describeGroup(g: ObjectGroup, rng?: Rng): string {
  const words: string[] = [];
  const article = g.count === 1 ? (rng?.chance(0.15) ? 'one' : 'a') : NUMBER_WORDS[g.count]!;
  words.push(article);
  if (g.sizeStated) words.push(g.size);
  words.push(g.colour);
  words.push(g.count === 1 ? g.shape : SHAPE_PLURAL[g.shape]);
  const text = words.join(' ');
  // "a orange" → "an orange"
  return text.replace(/^a (?=[aeiou])/, 'an ');
}

const POSITION_PHRASES: Record<Position, readonly string[]> = {
  center: ['in the center', 'in the middle', 'in the center of the image'],
  'top-left': ['in the top left corner', 'in the upper left corner', 'at the top left'],
  'top-right': ['in the top right corner', 'in the upper right corner', 'at the top right'],
  'bottom-left': ['in the bottom left corner', 'in the lower left corner', 'at the bottom left'],
  'bottom-right': ['in the bottom right corner', 'in the lower right corner', 'at the bottom right'],
};

export const RELATION_PHRASES: Record<Relation, readonly string[]> = {
  'left-of': ['to the left of', 'left of', 'on the left of'],
  'right-of': ['to the right of', 'right of', 'on the right of'],
  above: ['above', 'over', 'on top of'],
  below: ['below', 'under', 'beneath'],
};

/** The relation read the other way round: "A left of B" is "B right of A". */
export const INVERSE: Record<Relation, Relation> = {
  'left-of': 'right-of',
  'right-of': 'left-of',
  above: 'below',
  below: 'above',
};

/** `c` is the colour and a space, or empty for a caption that leaves the colour unsaid. */
const SIGN_TEMPLATES: readonly ((c: string, w: string) => string)[] = [
  (c, w) => `a ${c}sign that says ${w}`,
  (c, w) => `a ${c}sign with the word ${w}`,
  (c, w) => `a ${c}sign reading ${w}`,
  (c, w) => `the word ${w} on a ${c}sign`,
  (c, w) => `a ${c}sign saying ${w}`,
];

const withArticle = (t: string) => t.replace(/\ba ([aeiou])/g, 'an $1');

/**
 * A natural caption for a scene, choosing among templates with the given Rng. Relation captions
 * may name the pair in either order ("B to the right of A"), which keeps the scene the same but
 * varies the wording the text encoder sees.
 */
export function captionScene(scene: Scene, rng: Rng): string {
  if (scene.kind === 'sign') {
    const s = scene.sign!;
    return withArticle(rng.pick(SIGN_TEMPLATES)(`${s.colour} `, s.word));
  }
  const [g0, g1] = scene.groups;
  if (scene.kind === 'relation') {
    const rel = scene.relation!;
    // Only a single object may be the subject of the inverse wording's object role,
    // so inversion is used when group 1 is also a single object.
    if (g1!.count === 1 && rng.chance(0.3)) {
      return `${describeGroup(g1!, rng)} ${rng.pick(RELATION_PHRASES[INVERSE[rel]])} ${describeGroup(g0!, rng)}`;
    }
    return `${describeGroup(g0!, rng)} ${rng.pick(RELATION_PHRASES[rel])} ${describeGroup(g1!, rng)}`;
  }
  if (scene.groups.length === 2) {
    const joiner = rng.pick([' and ', ' and ', ' next to ', ' with ']);
    return `${describeGroup(g0!, rng)}${joiner}${describeGroup(g1!, rng)}`;
  }
  const obj = describeGroup(g0!, rng);
  if (scene.position) {
    const phrase = rng.pick(POSITION_PHRASES[scene.position]);
    return rng.chance(0.2) ? `${phrase}, ${obj}` : `${obj} ${phrase}`;
  }
  if (g0!.count > 1 && rng.chance(0.25))
    return `a group of ${obj.replace(/^\S+ /, `${NUMBER_WORDS[g0!.count]} `)}`;
  return obj;
}

/**
 * A sign caption that names the word but not the sign's colour ("a sign that says MOON"), meant to
 * teach a word's glyphs apart from its sign's colour, which a held-out word–colour pair asks for.
 * Measured in the thirtieth chunk: no effect on the pair that failed (its cause was the article "an").
 */
export function captionSignWithoutColour(word: string, rng: Rng): string {
  return withArticle(rng.pick(SIGN_TEMPLATES)('', word));
}
