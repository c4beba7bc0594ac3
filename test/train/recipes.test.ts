/**
 * The stage-I recipes in training/ stay trainable: each one takes a training step with the
 * repository's word tokenizer, and the pipeline folder it writes has the recipe's UNet layout
 * (what training/README.md tells people to run).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { writeSynthDataset } from '../../src/platform/node/synth_render.js';
import { loadTokenizer } from '../../src/platform/node/tokenizer_files.js';
import { readTrainConfig } from '../../src/platform/node/train_config_file.js';
import { writeShapesDataset } from '../helpers/shapes.js';

const RECIPES = ['shipped-base.json', 'base-deep.json', 'base-deep-v.json'];
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-recipes-'));
  await writeShapesDataset(join(root, 'data'), 4, 32);
});
afterAll(() => rm(root, { recursive: true, force: true }));

const recipe = (name: string) => readTrainConfig(join('training', name));

/** A recipe without its comment and the given key: what a child recipe must share with its parent. */
const except = (cfg: object, key: string) => ({ ...cfg, [key]: undefined, comment: undefined });

/** `child` is `parent` with only these `train` fields changed (its comment aside); returns both. */
async function expectTrainChanges(child: string, parent: string, train: object) {
  const [c, p] = [await recipe(child), await recipe(parent)];
  expect(c.train).toEqual({ ...p.train, ...train });
  expect(except(c, 'train')).toEqual(except(p, 'train'));
  return c;
}

/** One training step of batch 2 on the tiny dataset, as training/README.md's commands run a recipe. */
const trainOneStep = (file: string, out: string, extra: string[] = [], data = join(root, 'data')) =>
  main([
    'node',
    'imagen',
    'train',
    '--config',
    file,
    ...extra,
    '--data',
    data,
    '--out',
    out,
    '--steps',
    '1',
    '--batch',
    '2',
    '--checkpoint-every',
    '100000',
    '--quiet',
  ]);

describe('training/ recipes', () => {
  for (const recipe of RECIPES) {
    it(`${recipe} trains a step and exports its own UNet`, async () => {
      const file = join('training', recipe);
      const out = join(root, recipe);
      const code = await trainOneStep(file, out);
      expect(code).toBe(0);
      const want = (await readTrainConfig(file)).unet;
      const got = JSON.parse(await readFile(join(out, 'unet', 'config.json'), 'utf8'));
      for (const k of ['sample_size', 'block_out_channels', 'down_block_types', 'up_block_types'])
        expect(got[k], k).toEqual(want[k]);
    }, 120_000);
  }
});

describe('training/base-grown-finetune.json', () => {
  it('fine-tunes the shipped stage I a step with --init-from, keeping its grown layout, on a cosine schedule', async () => {
    const file = join('training', 'base-grown-finetune.json');
    const cfg = await readTrainConfig(file);
    expect(cfg.train).toMatchObject({ lr_schedule: 'cosine', learning_rate: 0.0002, max_steps: 8000 });
    const shipped = join('models', 'imagen-ts-shapes', 'base');
    const out = join(root, 'finetune');
    const code = await trainOneStep(file, out, ['--init-from', shipped]);
    expect(code).toBe(0);
    const want = JSON.parse(await readFile(join(shipped, 'unet', 'config.json'), 'utf8'));
    const got = JSON.parse(await readFile(join(out, 'unet', 'config.json'), 'utf8'));
    for (const k of ['block_out_channels', 'down_block_types', 'up_block_types'])
      expect(got[k], k).toEqual(want[k]);
    expect(got.down_block_types[1]).toBe('SimpleCrossAttnDownBlock2D');
  }, 120_000);
});

describe('training/base-grown-signs.json', () => {
  it('is the fine-tune recipe with its own learning rate and length, everything else inherited', async () => {
    const cfg = await expectTrainChanges('base-grown-signs.json', 'base-grown-finetune.json', {
      learning_rate: 0.0003,
      max_steps: 7000,
    });
    expect(cfg.train).toMatchObject({ lr_schedule: 'cosine', warmup_steps: 200 });
  });
});

describe('the twentieth chunk’s sign recipes', () => {
  it('base-grown-signs-text.json only adds text_loss_weight; -words trains the encoder; -spelled only swaps the tokenizer', async () => {
    const text = await expectTrainChanges('base-grown-signs-text.json', 'base-grown-signs.json', {
      text_loss_weight: 8,
    });
    const words = await recipe('base-grown-signs-words.json');
    expect(text.text_encoder_from).toBeDefined();
    expect(words.text_encoder_from).toBeUndefined();
    expect(words.train).toEqual(text.train);
    const spelled = await recipe('base-grown-signs-spelled.json');
    expect(spelled.tokenizer).toEqual({ path: resolve('training', 'spelled-tokenizer') });
    expect(except(spelled, 'tokenizer')).toEqual(except(words, 'tokenizer'));
  });

  it('the spelled tokenizer spells sign words and keeps every other word’s id', async () => {
    const spelled = await loadTokenizer(join('training', 'spelled-tokenizer'));
    // Pinned from Python's `tokenizers` (Tokenizer.from_file on the same tokenizer.json):
    // a red sign that says h ##e ##l ##l ##o </s>
    expect(spelled.encode('a red sign that says hello')).toEqual([
      4, 92, 102, 116, 100, 20, 63, 74, 74, 82, 1,
    ]);
    const words = await loadTokenizer(join('training', 'word-tokenizer'));
    const grammar = 'two small blue squares above a red circle , in the corner';
    expect(spelled.encode(grammar)).toEqual(words.encode(grammar));
    // Words the grammar never had are spelled too, and differ from one another.
    expect(spelled.encode('a sign that says zebra')).not.toContain(2);
    expect(spelled.encode('says ab')).not.toEqual(spelled.encode('says ba'));
  });

  it('base-grown-signs-spelled.json fine-tunes the shipped stage I a step on signs, encoder included', async () => {
    const signs = join(root, 'signs');
    await writeSynthDataset({ out: signs, count: 4, seed: 3, size: 32, split: 'train', kinds: ['sign'] });
    const out = join(root, 'spelled');
    const shipped = join('models', 'imagen-ts-shapes', 'base');
    const code = await trainOneStep(
      join('training', 'base-grown-signs-spelled.json'),
      out,
      ['--init-from', shipped],
      signs,
    );
    expect(code).toBe(0);
    const tj = JSON.parse(await readFile(join(out, 'tokenizer', 'tokenizer.json'), 'utf8'));
    expect(tj.model.type).toBe('WordPiece');
    const state = JSON.parse(await readFile(join(out, 'checkpoint', 'state.json'), 'utf8'));
    expect(state.config.text_encoder_from).toBeUndefined();
    expect(state.config.train.text_loss_weight).toBe(8);
  }, 120_000);
});

describe('training/base-grown-signs-long.json', () => {
  it('is the weighted sign recipe on a longer cosine schedule, nothing else changed', async () => {
    const long = await expectTrainChanges('base-grown-signs-long.json', 'base-grown-signs-text.json', {
      max_steps: 30000,
    });
    expect(long.text_encoder_from).toBeDefined();
  });
});

describe('training/base-grown-signs-long-1e3.json', () => {
  it('is the long sign recipe from a peak lr of 1e-3, nothing else changed', async () => {
    await expectTrainChanges('base-grown-signs-long-1e3.json', 'base-grown-signs-long.json', {
      learning_rate: 0.001,
    });
  });
});
