/**
 * The closed vocabulary of the synthetic dataset: colours, shapes, sizes, positions, relations,
 * sign words and backgrounds. Colours are chosen far apart in RGB so that both the renderer's
 * background rule and the checker's nearest-colour decision have a wide margin.
 */

export const COLOURS = {
  red: [220, 30, 35],
  green: [30, 160, 50],
  blue: [35, 75, 225],
  yellow: [245, 215, 30],
  orange: [245, 135, 20],
  purple: [135, 45, 190],
  pink: [250, 125, 195],
  cyan: [30, 205, 225],
  white: [250, 250, 250],
  black: [20, 20, 20],
  brown: [125, 70, 30],
  gray: [130, 130, 130],
} as const satisfies Record<string, readonly [number, number, number]>;

export type Colour = keyof typeof COLOURS;
export const COLOUR_NAMES = Object.keys(COLOURS) as Colour[];
export type Rgb = readonly [number, number, number];

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'diamond', 'cross', 'heart'] as const;
export type Shape = (typeof SHAPES)[number];

/** Plural forms for captions ("three yellow crosses"). */
export const SHAPE_PLURAL: Record<Shape, string> = {
  circle: 'circles',
  square: 'squares',
  triangle: 'triangles',
  star: 'stars',
  diamond: 'diamonds',
  cross: 'crosses',
  heart: 'hearts',
};

export const SIZES = ['small', 'medium', 'large'] as const;
export type Size = (typeof SIZES)[number];

/**
 * Object extent (the larger side of its bounding box) as a fraction of the image side.
 * Successive sizes differ by 1.5× so the checker can split them at the geometric means.
 */
export const SIZE_FRACTION: Record<Size, number> = { small: 10 / 64, medium: 15 / 64, large: 22.5 / 64 };

export const POSITIONS = ['center', 'top-left', 'top-right', 'bottom-left', 'bottom-right'] as const;
export type Position = (typeof POSITIONS)[number];

export const RELATIONS = ['left-of', 'right-of', 'above', 'below'] as const;
export type Relation = (typeof RELATIONS)[number];

/** Sign words: short (3–5 letters) so they stay legible on a 64×64 sign. */
export const WORDS = [
  'HELLO',
  'STOP',
  'OPEN',
  'CAT',
  'DOG',
  'SUN',
  'MOON',
  'STAR',
  'FISH',
  'BIRD',
  'TREE',
  'BOOK',
  'CAKE',
  'MILK',
  'BREAD',
  'APPLE',
  'LEMON',
  'PARK',
  'CAFE',
  'SHOP',
  'HOTEL',
  'TAXI',
  'BUS',
  'EXIT',
  'PUSH',
  'PULL',
  'SALE',
  'FREE',
  'HOME',
  'LOVE',
  'YES',
  'WAIT',
  'SLOW',
  'WEST',
  'EAST',
  'NORTH',
  'SOUTH',
  'RAIN',
  'SNOW',
  'WIND',
  'FIRE',
  'WATER',
  'ROAD',
  'CITY',
  'FARM',
  'BANK',
  'BEACH',
  'ZOO',
  'JUMP',
  'PLAY',
  'HAPPY',
  'SMILE',
  'PIZZA',
  'TEA',
  'JAZZ',
  'ROCK',
  'KING',
  'QUEEN',
  'ROBOT',
  'MUSIC',
  'OCEAN',
  'RIVER',
  'FOX',
  'OWL',
  'BEAR',
  'LION',
  'FROG',
  'DUCK',
] as const;
export type Word = (typeof WORDS)[number];

/** Sign colours: all but white (a white sign on a light background reads as no sign). */
export const SIGN_COLOURS: readonly Colour[] = COLOUR_NAMES.filter((c) => c !== 'white');

/** Letters are white on dark signs and black on light ones, whichever contrasts more. */
export function signTextColour(c: Colour): Rgb {
  const [r, g, b] = COLOURS[c];
  const luma = 0.299 * r + 0.587 * g + 0.114 * b;
  return luma > 150 ? COLOURS.black : COLOURS.white;
}

/** Background base colours: light pastels and a few dark tones (for white or yellow objects). */
export const BACKGROUNDS: readonly Rgb[] = [
  [236, 230, 214],
  [214, 228, 242],
  [222, 222, 222],
  [216, 238, 220],
  [234, 222, 242],
  [246, 238, 222],
  [38, 42, 58],
  [30, 52, 44],
  [58, 40, 44],
];

/** Minimum RGB distance between a background (every point of it) and any object colour. */
export const MIN_BG_DISTANCE = 110;

export function rgbDistance(a: Rgb, b: Rgb): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

export function nearestColour(rgb: Rgb): { colour: Colour; distance: number } {
  let best: Colour = 'red';
  let bd = Infinity;
  for (const c of COLOUR_NAMES) {
    const d = rgbDistance(rgb, COLOURS[c]);
    if (d < bd) {
      bd = d;
      best = c;
    }
  }
  return { colour: best, distance: bd };
}
