/**
 * Stage III as Imagen builds it: a third IF-family super-resolution UNet after stage II, chosen by
 * `--sr3-model` when that folder is an IF super-resolution pipeline.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { readImage } from '../../src/platform/node/image.js';
import { useTinyIfFolders } from '../helpers/test_dirs.js';

const f = useTinyIfFolders();

const gen = (out: string, extra: string[]) =>
  main([
    'node',
    'imagen',
    'generate',
    'a red circle',
    '--model',
    f.base,
    '--sr-model',
    f.sr,
    '--out',
    out,
    '--steps',
    '2',
    '--sr-steps',
    '2',
    '--quiet',
    ...extra,
  ]);

describe('generate with an IF-style stage III', () => {
  it('runs base → stage II → stage III and writes the stage-III size; --size picks the stages', async () => {
    const three = join(f.root, 'three.png');
    expect(await gen(three, ['--sr3-model', f.sr3, '--sr3-steps', '2'])).toBe(0);
    const img = await readImage(three);
    expect([img.width, img.height]).toEqual([64, 64]);
    const two = join(f.root, 'two.png');
    expect(await gen(two, ['--sr3-model', f.sr3, '--size', '32'])).toBe(0);
    expect((await readImage(two)).width).toBe(32);
    // Same seed: stage II's output is the same whether or not stage III follows.
    const twoAgain = join(f.root, 'two-again.png');
    expect(await gen(twoAgain, [])).toBe(0);
    expect((await readImage(twoAgain)).data).toEqual((await readImage(two)).data);
  }, 60_000);

  it('a stage-I folder is not a stage III', async () => {
    expect(await gen(join(f.root, 'bad.png'), ['--sr3-model', f.base])).not.toBe(0);
  });
});
