/** Training configs can extend another file and name only what differs (training/*.json do). */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrainConfig } from '../../src/platform/node/train_config_file.js';
import { mergeConfigJson, tinyTrainConfig } from '../../src/train/config.js';

let root: string;
const write = (p: string, v: unknown) => writeFile(join(root, p), JSON.stringify(v));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-extends-'));
  await mkdir(join(root, 'recipes'));
  await mkdir(join(root, 'mine'));
  const base = tinyTrainConfig('base', 16);
  await write('recipes/base.json', { ...base, comment: 'the base', tokenizer: { path: 'tok' } });
  await write('mine/child.json', {
    extends: '../recipes/base.json',
    scheduler: { prediction_type: 'v_prediction' },
    unet: { block_out_channels: [16, 16] },
    text_encoder_from: 'enc',
  });
  await write('mine/grandchild.json', { extends: 'child.json', comment: 'mine', train: { batch_size: 3 } });
  await write('mine/loop-a.json', { extends: 'loop-b.json' });
  await write('mine/loop-b.json', { extends: 'loop-a.json' });
  await write('mine/bad.json', { extends: 3 });
  // A chain as deep as the repository's own recipes grew (training/*.json: ten files by the
  // twenty-seventh chunk), each file changing one thing.
  for (let i = 1; i <= 12; i++)
    await write(`mine/deep-${i}.json`, {
      extends: i === 1 ? 'grandchild.json' : `deep-${i - 1}.json`,
      train: { max_steps: i },
    });
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('train config "extends"', () => {
  it('merges sections key by key, replaces values and arrays, and resolves paths per file', async () => {
    const base = tinyTrainConfig('base', 16);
    const cfg = await readTrainConfig(join(root, 'mine', 'grandchild.json'));
    expect(cfg.scheduler.prediction_type).toBe('v_prediction');
    expect(cfg.scheduler.num_train_timesteps).toBe(base.scheduler.num_train_timesteps);
    expect(cfg.unet.block_out_channels).toEqual([16, 16]);
    expect(cfg.unet.down_block_types).toEqual(base.unet.down_block_types);
    expect(cfg.train.batch_size).toBe(3);
    expect(cfg.tokenizer).toEqual({ path: join(root, 'recipes', 'tok') });
    expect(cfg.text_encoder_from).toBe(join(root, 'mine', 'enc'));
    expect(cfg.comment).toBe('mine');
    expect('extends' in cfg).toBe(false);
    // A comment describes its own file: the child, having none, inherits none.
    expect((await readTrainConfig(join(root, 'mine', 'child.json'))).comment).toBeUndefined();
  });

  it('follows a long chain of recipes, each extending the last', async () => {
    const cfg = await readTrainConfig(join(root, 'mine', 'deep-12.json'));
    expect(cfg.train.max_steps).toBe(12);
    expect(cfg.train.batch_size).toBe(3);
    expect(cfg.scheduler.prediction_type).toBe('v_prediction');
  });

  it('refuses loops and a non-string "extends"', async () => {
    await expect(readTrainConfig(join(root, 'mine', 'loop-a.json'))).rejects.toThrow(/loops/);
    await expect(readTrainConfig(join(root, 'mine', 'bad.json'))).rejects.toThrow(/must be the path/);
    await expect(readTrainConfig(join(root, 'mine', 'none.json'))).rejects.toThrow(/file not found/);
  });

  it('mergeConfigJson drops keys set to undefined and does not touch its inputs', () => {
    const a = { x: { y: 1, z: [1, 2] }, k: 1 };
    const m = mergeConfigJson(a, { x: { z: [3] }, k: undefined });
    expect(m).toEqual({ x: { y: 1, z: [3] } });
    expect(a).toEqual({ x: { y: 1, z: [1, 2] }, k: 1 });
  });
});
