import { RELATION_PHRASES } from './caption.js';
import type { ObjectGroup, Scene } from './scene.js';
import { COLOUR_NAMES, type Colour, RELATIONS, SHAPES, type Shape, SIZES, type Size } from './vocab.js';

/** "a [size] colour shape": one object of the grammar, or undefined. */
function parseObject(words: string): ObjectGroup | undefined {
  const m = /^(?:a|an|one) (?:(\w+) )?(\w+) (\w+)$/.exec(words);
  if (!m) return undefined;
  const [, size, colour, shape] = m;
  if (size !== undefined && !SIZES.includes(size as Size)) return undefined;
  if (!COLOUR_NAMES.includes(colour as Colour) || !SHAPES.includes(shape as Shape)) return undefined;
  return {
    shape: shape as Shape,
    colour: colour as Colour,
    size: (size ?? 'medium') as Size,
    sizeStated: size !== undefined,
    count: 1,
  };
}

// Longest phrases first: "to the left of" also contains "left of", which would leave "to the"
// on the first object.
const PHRASES = RELATIONS.flatMap((r) => RELATION_PHRASES[r].map((p) => ({ r, p }))).sort(
  (a, b) => b.p.length - a.p.length,
);

/**
 * The scene the eval checker verifies for a typed prompt of the form "OBJECT RELATION OBJECT"
 * ("a red circle to the left of a blue square"), or undefined for anything else. Only what the
 * checker reads is filled in: the renderer's background and placements are left empty.
 */
export function relationPromptScene(prompt: string): Scene | undefined {
  const text = prompt.toLowerCase().replace(/\s+/g, ' ').trim();
  for (const { r, p } of PHRASES) {
    const parts = text.split(` ${p} `);
    if (parts.length !== 2) continue;
    const [g0, g1] = parts.map(parseObject);
    if (!g0 || !g1) return undefined;
    const background = {
      from: [0, 0, 0],
      to: [0, 0, 0],
      direction: 'horizontal',
      noise: 0,
      noiseSeed: 0,
    } as const;
    return { kind: 'relation', groups: [g0, g1], relation: r, background, objects: [] };
  }
  return undefined;
}
