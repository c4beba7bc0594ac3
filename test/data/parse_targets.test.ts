import { describe, expect, it } from 'vitest';
import { captionParseTargets, PLACES } from '../../src/data/synth/parse_targets.js';
import type { Scene } from '../../src/data/synth/scene.js';
import { synthExamples } from '../../src/data/synth/splits.js';
import { COLOUR_NAMES, SHAPES } from '../../src/data/synth/vocab.js';

const bg = { from: [0, 0, 0], to: [0, 0, 0], direction: 'vertical', noise: 0, noiseSeed: 0 } as const;
const relationScene: Scene = {
  kind: 'relation',
  groups: [
    { shape: 'circle', colour: 'red', size: 'small', sizeStated: true, count: 1 },
    { shape: 'square', colour: 'blue', size: 'large', sizeStated: false, count: 2 },
  ],
  relation: 'left-of',
  background: bg,
  objects: [],
};

const place = (t: ReturnType<typeof captionParseTargets>, i: number) =>
  t!.targets[i] === undefined ? undefined : PLACES[t!.targets[i]!.place];

describe('captionParseTargets', () => {
  it('gives each noun phrase its own side of a relation, whichever is named first', () => {
    const t = captionParseTargets('a small red circle to the left of two blue squares', relationScene)!;
    expect(t.words).toHaveLength(11);
    expect([0, 1, 2, 3].map((i) => place(t, i))).toEqual(['left', 'left', 'left', 'left']);
    expect([4, 5, 6, 7].map((i) => place(t, i))).toEqual([undefined, undefined, undefined, undefined]);
    expect([8, 9, 10].map((i) => place(t, i))).toEqual(['right', 'right', 'right']);
    expect(t.targets[3]).toEqual({
      place: 1,
      colour: COLOUR_NAMES.indexOf('red'),
      shape: 0,
      count: 0,
      size: 0,
    });
    expect(t.targets[10]).toEqual({
      place: 2,
      colour: COLOUR_NAMES.indexOf('blue'),
      shape: SHAPES.indexOf('square'),
      count: 1,
      size: 3,
    });
    // The inverse wording names group 1 first; it still goes right.
    const inv = captionParseTargets('one red circle below a blue square', {
      ...relationScene,
      relation: 'above',
      groups: [relationScene.groups[1]!, { ...relationScene.groups[0]!, sizeStated: false }].map((g) => ({
        ...g,
        count: 1,
      })),
    })!;
    expect(place(inv, 2)).toBe('bottom');
    expect(place(inv, 6)).toBe('top');
  });

  it('labels positions, signs and "a group of" phrases, and rejects a caption of another scene', () => {
    const pos = captionParseTargets('in the top left corner, a green star', {
      kind: 'objects',
      groups: [{ shape: 'star', colour: 'green', size: 'medium', sizeStated: false, count: 1 }],
      position: 'top-left',
      background: bg,
      objects: [],
    })!;
    expect(pos.targets.slice(0, 5)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(place(pos, 7)).toBe('top-left');
    const sign = captionParseTargets('the word STOP on an orange sign', {
      kind: 'sign',
      groups: [],
      sign: { colour: 'orange', word: 'STOP', cx: 0.5, cy: 0.5, w: 0.5, h: 0.3 },
      background: bg,
      objects: [],
    })!;
    expect(sign.targets[6]).toEqual({
      place: 0,
      colour: COLOUR_NAMES.indexOf('orange'),
      shape: SHAPES.length,
      count: 0,
      size: 3,
    });
    expect(sign.targets[2]).toBeUndefined();
    const group = captionParseTargets('a group of three yellow hearts', {
      kind: 'objects',
      groups: [{ shape: 'heart', colour: 'yellow', size: 'small', sizeStated: false, count: 3 }],
      background: bg,
      objects: [],
    })!;
    expect(group.targets.map((t) => t?.count)).toEqual([undefined, undefined, undefined, 2, 2, 2]);
    expect(captionParseTargets('a green circle left of a blue square', relationScene)).toBeUndefined();
  });

  it('labels every noun phrase of generated captions', () => {
    for (const ex of synthExamples(3, 'train', 400)) {
      const t = captionParseTargets(ex.caption, ex.scene);
      expect(t, ex.caption).toBeDefined();
      const phrases = t!.targets.filter((x, i) => x && x !== t!.targets[i - 1]).length;
      const expected = ex.scene.kind === 'sign' ? 1 : ex.scene.groups.length;
      expect(phrases, ex.caption).toBe(expected);
    }
  });
});
