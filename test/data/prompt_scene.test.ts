import { describe, expect, it } from 'vitest';
import { INVERSE } from '../../src/data/synth/caption.js';
import { relationPromptScene } from '../../src/data/synth/prompt_scene.js';
import { synthExamples } from '../../src/data/synth/splits.js';

describe('relationPromptScene', () => {
  it("reads the README's prompt", () => {
    const s = relationPromptScene('A red circle  to the left of a blue square ');
    expect(s?.relation).toBe('left-of');
    expect(s?.groups).toEqual([
      { shape: 'circle', colour: 'red', size: 'medium', sizeStated: false, count: 1 },
      { shape: 'square', colour: 'blue', size: 'medium', sizeStated: false, count: 1 },
    ]);
  });

  it('reads sizes and the short wordings', () => {
    const s = relationPromptScene('a small green star left of an orange heart');
    expect(s?.relation).toBe('left-of');
    expect(s?.groups[0]).toMatchObject({ shape: 'star', size: 'small', sizeStated: true });
    expect(s?.groups[1]).toMatchObject({ shape: 'heart', colour: 'orange', sizeStated: false });
    expect(relationPromptScene('a red circle on top of a blue square')?.relation).toBe('above');
  });

  it('describes the same layout as the scene behind every one-to-one relation caption', () => {
    let n = 0;
    for (const { caption, scene } of synthExamples(5, 'train', 600)) {
      if (scene.kind !== 'relation' || scene.groups.some((g) => g.count !== 1)) continue;
      const parsed = relationPromptScene(caption);
      expect(parsed, caption).toBeDefined();
      const same = parsed!.relation === scene.relation;
      // The caption may use the inverse wording with the objects swapped.
      const [a, b] = same ? parsed!.groups : [parsed!.groups[1]!, parsed!.groups[0]!];
      expect(same ? parsed!.relation : INVERSE[parsed!.relation!], caption).toBe(scene.relation);
      for (const [p, g] of [
        [a!, scene.groups[0]!],
        [b!, scene.groups[1]!],
      ] as const) {
        expect({ shape: p.shape, colour: p.colour }, caption).toEqual({ shape: g.shape, colour: g.colour });
        expect(p.sizeStated, caption).toBe(g.sizeStated);
        if (g.sizeStated) expect(p.size, caption).toBe(g.size);
      }
      n++;
    }
    expect(n).toBeGreaterThan(20);
  });

  it('refuses what is not a one-to-one relation of the grammar', () => {
    for (const p of [
      '',
      'a red circle',
      'two red circles to the left of a blue square',
      'a red circle in the top left corner',
      'a purple unicorn to the left of a blue square',
      'a huge red circle to the left of a blue square',
    ])
      expect(relationPromptScene(p), p).toBeUndefined();
  });
});
