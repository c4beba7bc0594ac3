/**
 * A tiny conditional cascade (base 16×16 + super-resolution 16→32) trained from scratch on
 * coloured squares whose captions name the colour. An automatic colour check on generated
 * images must find a clear majority matching their prompts; the untrained cascade must not.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { readImage } from '../../src/platform/node/image.js';
import { COLORS, dominantColor, writeShapesDataset } from '../helpers/shapes.js';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-cascade-'));
  await writeShapesDataset(join(root, 'data'), 128, 32);
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function train(out: string, stage: 'base' | 'sr', steps: number, resolution: number): Promise<void> {
  const code = await main([
    'node',
    'imagen',
    'train',
    '--data',
    join(root, 'data'),
    '--out',
    out,
    '--stage',
    stage,
    '--resolution',
    String(resolution),
    '--low-resolution',
    '16',
    '--steps',
    String(steps),
    '--batch',
    '16',
    '--checkpoint-every',
    '100000',
    '--quiet',
  ]);
  expect(code).toBe(0);
}

/** Fraction of generated images whose dominant colour is the one the prompt names. */
async function accuracy(base: string, sr: string | undefined): Promise<number> {
  let ok = 0;
  let n = 0;
  for (const color of Object.keys(COLORS)) {
    const out = join(root, `gen-${color}.png`);
    const args = ['node', 'imagen', 'generate', `a ${color} square`, '--model', base, '--out', out];
    if (sr) args.push('--sr-model', sr, '--sr-steps', '20');
    const code = await main([
      ...args,
      '--steps',
      '25',
      '--guidance',
      '4',
      '--num-images',
      '4',
      '--seed',
      '3',
      '--quiet',
    ]);
    expect(code).toBe(0);
    for (let i = 0; i < 4; i++) {
      const img = await readImage(join(root, `gen-${color}-${i}.png`));
      expect(img.width).toBe(sr ? 32 : 16);
      if (dominantColor(img) === color) ok++;
      n++;
    }
  }
  return ok / n;
}

describe('a tiny cascade learns to follow prompts', () => {
  it('trained base + SR match the prompted colour far above chance; untrained does not', async () => {
    const base = join(root, 'base');
    const sr = join(root, 'sr');
    await train(base, 'base', 400, 16);
    await train(sr, 'sr', 200, 32);
    const trained = await accuracy(base, sr);
    const untrainedBase = join(root, 'untrained');
    await train(untrainedBase, 'base', 1, 16);
    const untrained = await accuracy(untrainedBase, undefined);
    console.log(`colour accuracy: trained cascade ${trained}, untrained ${untrained} (chance 0.25)`);
    expect(trained).toBeGreaterThanOrEqual(0.7);
    expect(untrained).toBeLessThan(0.4);
  }, 600_000);
});
