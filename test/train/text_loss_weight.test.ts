/**
 * `imagen train --text-loss-weight F` (config `train.text_loss_weight`): pixels inside the data's
 * text boxes count F times in the loss. Runs in-process through `main`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSynthDataset } from '../../src/platform/node/synth_render.js';
import { runCli, tinyTrainArgs } from '../helpers/cli.js';
import { writeShapesDataset } from '../helpers/shapes.js';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-text-weight-'));
  await writeSynthDataset({
    out: join(root, 'signs'),
    count: 8,
    seed: 3,
    size: 32,
    split: 'train',
    kinds: ['sign'],
  });
  await writeShapesDataset(join(root, 'shapes'), 4, 32);
});
afterAll(() => rm(root, { recursive: true, force: true }));

const train = (data: string, out: string, ...extra: string[]) =>
  runCli([...tinyTrainArgs(join(root, data), join(root, out)), ...extra]);

const stepLoss = async (out: string, step: number) =>
  (await readFile(join(root, out, 'loss.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number; loss: number })
    .find((r) => r.step === step)!.loss;

describe('imagen train --text-loss-weight', () => {
  it('weighs the sign words more: the same batch gives a larger loss, and the run keeps the weight', async () => {
    const plain = await train('signs', 'plain');
    expect(plain.code, plain.stderr).toBe(0);
    const weighted = await train('signs', 'weighted', '--text-loss-weight', '4');
    expect(weighted.code, weighted.stderr).toBe(0);
    // Same seed, so the same images, noise and timesteps at step 1 (learning rate 0 in warm-up):
    // only the weighting differs, and it adds (4 − 1) × the boxed pixels' error.
    const a = await stepLoss('plain', 1);
    const b = await stepLoss('weighted', 1);
    expect(b).toBeGreaterThan(a * 1.2);
    expect(b).toBeLessThan(a * 4);
    const state = JSON.parse(await readFile(join(root, 'weighted', 'checkpoint', 'state.json'), 'utf8')) as {
      config: { train: Record<string, unknown> };
    };
    expect(state.config.train.text_loss_weight).toBe(4);
    const resumed = await runCli([
      'train',
      '--data',
      join(root, 'signs'),
      '--out',
      join(root, 'weighted'),
      '--quiet',
      '--steps',
      '3',
      '--resume',
    ]);
    expect(resumed.code, resumed.stderr).toBe(0);
  }, 120_000);

  it('refuses data without text boxes, and weights below 1', async () => {
    const none = await train('shapes', 'none', '--text-loss-weight', '4');
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/text_loss_weight needs images with text_boxes/);
    const low = await train('signs', 'low', '--text-loss-weight', '0.5');
    expect(low.code).toBe(2);
    expect(low.stderr).toMatch(/--text-loss-weight must be a number in \[1, 1000\]/);
  }, 60_000);
});
