/**
 * `imagen train --stage text-encoder`: pretrains a pipeline's text encoder on the captions of synth
 * folders (parse heads over each token), writes the folder back with only the encoder changed, and a
 * base stage then trains on that encoder frozen (`text_encoder_from` + `--init-from`).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSynthDataset } from '../../src/platform/node/synth_render.js';
import { tinyTrainConfig } from '../../src/train/config.js';
import { runCli } from '../helpers/cli.js';
import { float32Tensors } from '../helpers/safetensors.js';
import { writeShapesDataset } from '../helpers/shapes.js';

let root: string;
const unetFile = (dir: string) => join(dir, 'unet', 'diffusion_pytorch_model.safetensors');
const encoderFile = (dir: string) => join(dir, 'text_encoder', 'model.safetensors');

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-te-pretrain-'));
  await writeSynthDataset({ out: join(root, 'synth'), count: 480, seed: 5, size: 16, split: 'train' });
  await writeShapesDataset(join(root, 'plain'), 4, 16);
  const tiny = tinyTrainConfig('base', 16);
  await writeFile(
    join(root, 'tiny.json'),
    JSON.stringify({
      ...tiny,
      tokenizer: { path: resolve('training/word-tokenizer') },
      text_encoder: { ...tiny.text_encoder, vocab_size: 137 },
      train: { ...tiny.train, max_text_length: 32 },
    }),
  );
  await writeFile(
    join(root, 'frozen.json'),
    JSON.stringify({ extends: 'tiny.json', text_encoder_from: 'unused' }),
  );
  const r = await runCli([
    'train',
    '--config',
    join(root, 'tiny.json'),
    '--data',
    join(root, 'synth'),
    '--out',
    join(root, 'base'),
    '--steps',
    '1',
    '--batch',
    '2',
    '--quiet',
  ]);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);
afterAll(() => rm(root, { recursive: true, force: true }));

const pretrain = (...args: string[]) =>
  runCli(['train', '--stage', 'text-encoder', '--data', join(root, 'synth'), '--quiet', ...args]);

describe('imagen train --stage text-encoder', () => {
  it('learns the parse heads, changes only the encoder, and a frozen-encoder stage keeps it', async () => {
    const te = join(root, 'te');
    const r = await pretrain(
      '--init-from',
      join(root, 'base'),
      '--out',
      te,
      '--steps',
      '80',
      '--batch',
      '8',
      '--lr',
      '0.003',
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(result.step).toBe(80);
    expect(result.validation).toBe(24);
    // Untrained heads are at chance; after 80 small steps the easy heads are clearly learned.
    expect(result.after.perHead.colour).toBeGreaterThan(result.before.perHead.colour + 0.3);
    expect(result.after.perHead.count).toBeGreaterThan(0.8);
    expect(result.after.identity).toBeGreaterThan(0.9);
    const saved = JSON.parse(await readFile(join(te, 'text_encoder_pretrain.json'), 'utf8'));
    expect(saved.after).toEqual(result.after);
    expect(await readFile(unetFile(te))).toEqual(await readFile(unetFile(join(root, 'base'))));
    const before = await float32Tensors(encoderFile(join(root, 'base')));
    const after = await float32Tensors(encoderFile(te));
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    expect([...before].some(([k, v]) => after.get(k)!.some((x, i) => x !== v[i]))).toBe(true);

    const next = join(root, 'next');
    const t = await runCli([
      'train',
      '--config',
      join(root, 'frozen.json'),
      '--data',
      join(root, 'synth'),
      '--init-from',
      te,
      '--out',
      next,
      '--steps',
      '2',
      '--batch',
      '2',
      '--quiet',
    ]);
    expect(t.code, t.stderr).toBe(0);
    expect(await float32Tensors(encoderFile(next))).toEqual(after);
    expect(await readFile(unetFile(next))).not.toEqual(await readFile(unetFile(te)));
  }, 180_000);

  it('explains what it needs', async () => {
    let r = await pretrain('--out', join(root, 'x1'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/needs --init-from DIR or --config FILE/);
    r = await runCli([
      'train',
      '--stage',
      'text-encoder',
      '--data',
      join(root, 'plain'),
      '--init-from',
      join(root, 'base'),
      '--out',
      join(root, 'x2'),
      '--quiet',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no rows with a "scene"/);
    r = await pretrain('--init-from', join(root, 'base'), '--out', join(root, 'base'), '--steps', '1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not the output of an earlier text-encoder pretraining/);
    r = await pretrain('--init-from', join(root, 'base'), '--out', join(root, 'x3'), '--resume');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no --resume/);
  }, 60_000);
});
