/**
 * The public TypeScript API: the core entry imports no Node APIs (so it can run in a browser),
 * and the Node entry generates from a model folder in one call.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { writeShapesDataset } from './helpers/shapes.js';

const SRC = resolve(__dirname, '..', 'src');
const CORE = ['engine', 'nn', 'models', 'diffusion', 'pipelines', 'train', 'text', 'io', 'data', 'eval'];
const NODE_BUILTINS =
  /from ['"](node:|fs|path|os|child_process|worker_threads|url|module|crypto|sharp|onnxruntime-node|tesseract\.js)(['"/])|from ['"][^'"]*\/platform\//;

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await tsFiles(p)));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-api-'));
  await writeShapesDataset(join(root, 'data'), 8, 16);
  const args = [
    'train',
    '--data',
    join(root, 'data'),
    '--out',
    join(root, 'm'),
    '--resolution',
    '16',
    '--steps',
    '2',
  ];
  expect(await main(['node', 'imagen', ...args, '--batch', '4', '--quiet'])).toBe(0);
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('public API', () => {
  it('core modules import no Node APIs', async () => {
    const offenders: string[] = [];
    for (const dir of CORE) {
      for (const f of await tsFiles(join(SRC, dir))) {
        if (NODE_BUILTINS.test(await readFile(f, 'utf8'))) offenders.push(f);
      }
    }
    if (NODE_BUILTINS.test(await readFile(join(SRC, 'index.ts'), 'utf8'))) offenders.push('src/index.ts');
    expect(offenders).toEqual([]);
  });

  it('imagen-ts/node: textToImage(model)(prompt) gives images, the same per seed', async () => {
    const { textToImage } = await import('../src/node.js');
    const core = await import('../src/index.js');
    expect(typeof core.UNet2DConditionModel).toBe('function');
    const gen = await textToImage(join(root, 'm'), { threads: 1 });
    const a = await gen('a red square', { steps: 4, seed: 1 });
    const b = await gen('a red square', { steps: 4, seed: 1 });
    expect(a.images).toHaveLength(1);
    expect(a.images[0]!.width).toBe(16);
    expect(Buffer.from(a.images[0]!.data).equals(Buffer.from(b.images[0]!.data))).toBe(true);
    await gen.dispose();
  });
});
