/**
 * `imagen train --init-from DIR` fine-tunes from a pipeline folder's weights, and
 * `--color-augment P` rotates the hue of super-resolution examples. Runs in-process through `main`.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../src/platform/node/tokenizer_files.js';
import { MERGE_ARTICLES_NORMALIZER as MERGE_ARTICLES } from '../../src/text/word_tokenizer_json.js';
import { tinyTrainConfig } from '../../src/train/config.js';
import { runCli } from '../helpers/cli.js';
import { float32Tensors } from '../helpers/safetensors.js';
import { writeShapesDataset } from '../helpers/shapes.js';
import { wordLevelTokenizerJson } from '../helpers/word_tokenizer.js';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-init-from-'));
  await writeShapesDataset(join(root, 'data'), 8, 32);
});
afterAll(() => rm(root, { recursive: true, force: true }));

const run = (...args: string[]) => runCli(['train', '--data', join(root, 'data'), '--quiet', ...args]);
/** A tiny run of `steps` steps at batch 2: a 16² base stage, or the stage of `--config` in `extra`. */
const tiny = (out: string, steps: number, ...extra: string[]) =>
  run(
    '--out',
    out,
    ...(extra.includes('--config') ? [] : ['--resolution', '16']),
    '--steps',
    String(steps),
    '--batch',
    '2',
    ...extra,
  );

const tensors = float32Tensors;

const unetFile = (dir: string) => join(dir, 'unet', 'diffusion_pytorch_model.safetensors');
const encoderFile = (dir: string) => join(dir, 'text_encoder', 'model.safetensors');

function expectSame(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  for (const [k, v] of a) expect(b.get(k), k).toEqual(v);
}

function expectDifferent(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...a].some(([k, v]) => b.get(k)!.some((x, i) => x !== v[i]))).toBe(true);
}

describe('imagen train --init-from', () => {
  it('a base run starts from the folder: UNet and text encoder, with fresh optimizer state', async () => {
    const src = join(root, 'base-src');
    expect((await tiny(src, 3)).code).toBe(0);
    // Step 1 runs at learning rate 0 (warm-up), so the weights written are the loaded ones.
    const ft = join(root, 'base-ft');
    const r = await tiny(ft, 1, '--init-from', src);
    expect(r.code, r.stderr).toBe(0);
    expectSame(await tensors(unetFile(src)), await tensors(unetFile(ft)));
    expectSame(await tensors(encoderFile(src)), await tensors(encoderFile(ft)));
    // Without it the same command starts from random weights.
    const fresh = join(root, 'base-fresh');
    expect((await tiny(fresh, 1)).code).toBe(0);
    expectDifferent(await tensors(unetFile(src)), await tensors(unetFile(fresh)));
    const state = JSON.parse(await readFile(join(ft, 'checkpoint', 'state.json'), 'utf8')) as {
      step: number;
    };
    expect(state.step).toBe(1);
  }, 120_000);

  it('a super-resolution run with a frozen encoder takes the folder’s UNet and encoder, and keeps --color-augment', async () => {
    const base = join(root, 'sr-base');
    expect((await tiny(base, 2)).code).toBe(0);
    const cfg = { ...tinyTrainConfig('sr', 32, 8), crop_size: 16, text_encoder_from: base } as Record<
      string,
      unknown
    >;
    delete cfg.text_encoder;
    const cfgFile = join(root, 'sr.json');
    await writeFile(cfgFile, JSON.stringify(cfg));
    const src = join(root, 'sr-src');
    expect((await tiny(src, 3, '--config', cfgFile)).code).toBe(0);
    const ft = join(root, 'sr-ft');
    const r = await tiny(ft, 1, '--config', cfgFile, '--init-from', src, '--color-augment', '0.5');
    expect(r.code, r.stderr).toBe(0);
    expectSame(await tensors(unetFile(src)), await tensors(unetFile(ft)));
    expectSame(await tensors(encoderFile(src)), await tensors(encoderFile(ft)));
    const state = JSON.parse(await readFile(join(ft, 'checkpoint', 'state.json'), 'utf8')) as {
      config: { train: Record<string, unknown>; text_encoder_from: string };
    };
    expect(state.config.train.color_augment_prob).toBe(0.5);
    expect(state.config.text_encoder_from).toBe(src);
    // A resumed run goes on with it (and trains: the weights move once the warm-up lets them).
    const r2 = await tiny(ft, 3, '--config', cfgFile, '--resume');
    expect(r2.code, r2.stderr).toBe(0);
    expectDifferent(await tensors(unetFile(src)), await tensors(unetFile(ft)));
  }, 120_000);

  it('a run from a folder reads captions with the folder’s tokenizer, not the config’s', async () => {
    // A word-level tokenizer for the config; the source folder's copy then gains a normalizer
    // (as training/merge_articles.ts adds), which a fine-tune must keep using.
    const words = ['a', 'an', 'red', 'blue', 'circle', 'square', 'orange'];
    const tokenizerJson = wordLevelTokenizerJson(words);
    const tokDir = join(root, 'word-tokenizer');
    await mkdir(tokDir, { recursive: true });
    await writeFile(join(tokDir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
    const cfgFile = join(root, 'word.json');
    await writeFile(cfgFile, JSON.stringify({ ...tinyTrainConfig('base', 16), tokenizer: { path: tokDir } }));
    const src = join(root, 'word-src');
    const r0 = await tiny(src, 2, '--config', cfgFile);
    expect(r0.code, r0.stderr).toBe(0);
    const merged = wordLevelTokenizerJson(words, [MERGE_ARTICLES]);
    await writeFile(join(src, 'tokenizer', 'tokenizer.json'), JSON.stringify(merged));
    const ft = join(root, 'word-ft');
    const r = await tiny(ft, 1, '--config', cfgFile, '--init-from', src);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(await readFile(join(ft, 'tokenizer', 'tokenizer.json'), 'utf8'))).toEqual(merged);
    const state = JSON.parse(await readFile(join(ft, 'checkpoint', 'state.json'), 'utf8')) as {
      config: { tokenizer: { path: string } };
    };
    expect(state.config.tokenizer.path).toBe(join(src, 'tokenizer'));
    const tokenizer = await loadTokenizer(join(ft, 'tokenizer'));
    const ids = (t: string) =>
      Array.from(tokenizer.encodeBatch([t], { maxLength: 6 }).inputIds.data as BigInt64Array);
    expect(ids('An orange circle')).toEqual(ids('a orange circle'));
    expect(ids('a blue square')).not.toEqual(ids('a orange circle'));
  }, 120_000);

  it('refuses a folder that is not a pipeline, --resume with it, and colour augmentation of a base stage', async () => {
    const notPipe = await tiny(join(root, 'x'), 1, '--init-from', join(root, 'data'));
    expect(notPipe.code).toBe(2);
    expect(notPipe.stderr).toMatch(/init-from: .*no unet\/config\.json/);
    const both = await tiny(join(root, 'y'), 1, '--init-from', join(root, 'data'), '--resume');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--init-from .*--resume/);
    const baseAug = await tiny(join(root, 'z'), 1, '--color-augment', '0.5');
    expect(baseAug.code).toBe(2);
    expect(baseAug.stderr).toMatch(/color_augment_prob needs a super-resolution stage/);
    const bad = await run('--out', join(root, 'w'), '--stage', 'sr', '--color-augment', '1.5');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--color-augment must be a number in \[0, 1\]/);
  }, 60_000);
});
