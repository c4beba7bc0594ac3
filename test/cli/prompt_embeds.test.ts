/** Encode once (`imagen encode`), generate many times (`--prompt-embeds`): same image as encoding inline. */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { writeShapesDataset } from '../helpers/shapes.js';

let root: string;
const q = ['--quiet'];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-embeds-'));
  await writeShapesDataset(join(root, 'data'), 8, 16);
  const code = await main([
    'node',
    'imagen',
    'train',
    '--data',
    join(root, 'data'),
    '--out',
    join(root, 'm'),
    '--resolution',
    '16',
    '--steps',
    '3',
    '--batch',
    '4',
    ...q,
  ]);
  expect(code).toBe(0);
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('generate --prompt-embeds', () => {
  it('gives the same image as encoding the prompt inline', async () => {
    const m = join(root, 'm');
    const emb = join(root, 'emb.safetensors');
    expect(
      await main([
        'node',
        'imagen',
        'encode',
        'a red square',
        '--text-encoder',
        m,
        '--negative-prompt',
        '',
        '--out',
        emb,
      ]),
    ).toBe(0);
    const a = join(root, 'a.png');
    const b = join(root, 'b.png');
    expect(
      await main([
        'node',
        'imagen',
        'generate',
        'a red square',
        '--model',
        m,
        '--prompt-embeds',
        emb,
        '--steps',
        '5',
        '--out',
        a,
        ...q,
      ]),
    ).toBe(0);
    expect(
      await main([
        'node',
        'imagen',
        'generate',
        'a red square',
        '--model',
        m,
        '--steps',
        '5',
        '--out',
        b,
        ...q,
      ]),
    ).toBe(0);
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
  });

  it('rejects an embeddings file without prompt_embeds (exit code 2)', async () => {
    const bogus = join(root, 'bogus.safetensors');
    const { writeSafetensors } = await import('../../src/platform/node/files.js');
    const { NDArray } = await import('../../src/engine/ndarray.js');
    await writeSafetensors(bogus, { something: NDArray.f32([1], [0]) });
    const code = await main([
      'node',
      'imagen',
      'generate',
      'x',
      '--model',
      join(root, 'm'),
      '--prompt-embeds',
      bogus,
      '--out',
      join(root, 'c.png'),
      ...q,
    ]);
    expect(code).toBe(2);
  });
});
