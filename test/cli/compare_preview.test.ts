/** `imagen compare` (labelled thresholding × guidance grid) and `generate --preview` (x̂0 snapshots). */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { readImage } from '../../src/platform/node/image.js';
import { tinyTrainArgs } from '../helpers/cli.js';
import { writeShapesDataset } from '../helpers/shapes.js';

let root: string;
let model: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-compare-'));
  await writeShapesDataset(join(root, 'data'), 8, 16);
  model = join(root, 'm');
  expect(await main(['node', 'imagen', ...tinyTrainArgs(join(root, 'data'), model)])).toBe(0);
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('imagen compare', () => {
  it('writes one grid with a cell per threshold × guidance', async () => {
    const out = join(root, 'grid.png');
    const args = [
      'compare',
      'a red square',
      '--model',
      model,
      '--thresholds',
      'none,dynamic',
      '--guidance',
      '1,3,7',
    ];
    expect(await main(['node', 'imagen', ...args, '--steps', '4', '--out', out, '--quiet'])).toBe(0);
    const img = await readImage(out);
    // 3 columns of 160 px cells with 8 px gaps, 2 rows.
    expect(img.width).toBe(3 * 168 + 8);
    expect(img.height).toBeGreaterThan(2 * 160);
  });

  it('rejects an unknown thresholding with exit code 2', async () => {
    const code = await main([
      'node',
      'imagen',
      'compare',
      'x',
      '--model',
      model,
      '--thresholds',
      'bogus',
      '--quiet',
    ]);
    expect(code).toBe(2);
  });
});

describe('imagen generate --preview', () => {
  it('writes the predicted clean image every k steps and at the end', async () => {
    const dir = join(root, 'preview');
    const args = [
      'generate',
      'a red square',
      '--model',
      model,
      '--steps',
      '10',
      '--out',
      join(root, 'p.png'),
    ];
    expect(await main(['node', 'imagen', ...args, '--preview', dir, '--preview-every', '4', '--quiet'])).toBe(
      0,
    );
    expect((await readdir(dir)).sort()).toEqual([
      'stage-i-step0004.png',
      'stage-i-step0008.png',
      'stage-i-step0010.png',
    ]);
  });
});
