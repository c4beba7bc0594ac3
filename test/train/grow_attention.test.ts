/**
 * Growing attention into a trained UNet keeps its function: the grown model's output equals the
 * old one's until training moves the new zero-started output projections.
 */
import { describe, expect, it } from 'vitest';
import { NDArray, Runtime } from '../../src/engine/index.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet.js';
import { memorySource } from '../../src/nn/module.js';
import { NodeBackend } from '../../src/platform/node/ort.js';
import { readTrainConfig } from '../../src/platform/node/train_config_file.js';
import { growAttention, growAttentionConfig } from '../../src/train/grow_attention.js';
import { perturb, randF32, rng } from '../helpers/random.js';

const rt = new Runtime(new NodeBackend({ threads: 2 }));

async function run(unet: UNet2DConditionModel, feeds: Record<string, NDArray>): Promise<Float32Array> {
  const f = rt.compile((i) =>
    unet.forward({ sample: i.sample!, timestep: i.timestep!, encoderHiddenStates: i.text! }),
  );
  const out = (await f.run(feeds)).output!;
  await f.release();
  return out.data as Float32Array;
}

describe('growAttention', async () => {
  const config = (await readTrainConfig('training/base-deep.json')).unet as Record<string, unknown>;
  const old = new UNet2DConditionModel(config).initialize(1);
  // A trained model has no exact zeros or ones; nudge every weight so all paths carry signal.
  perturb(old, 3);
  const r2 = rng(5);
  const feeds = {
    sample: randF32(r2, [2, 3, 32, 32]),
    timestep: NDArray.f32([2], [400, 30]),
    text: randF32(r2, [2, 8, 128]),
  };

  it('keeps every old weight and computes what the old UNet did', async () => {
    const grown = await growAttention(config, memorySource(old.stateDict()), { down: [1], up: [2] });
    expect(grown.config.down_block_types).toEqual([
      'ResnetDownsampleBlock2D',
      'SimpleCrossAttnDownBlock2D',
      'SimpleCrossAttnDownBlock2D',
      'SimpleCrossAttnDownBlock2D',
    ]);
    expect(grown.added.some((n) => n.startsWith('down_blocks.1.attentions.0.'))).toBe(true);
    expect(grown.added.some((n) => n.startsWith('up_blocks.2.attentions.1.'))).toBe(true);
    const want = await run(old, feeds);
    const got = await run(grown.unet, feeds);
    let err = 0;
    let scale = 0;
    for (let i = 0; i < want.length; i++) {
      err = Math.max(err, Math.abs(got[i]! - want[i]!));
      scale = Math.max(scale, Math.abs(want[i]!));
    }
    expect(scale).toBeGreaterThan(0.1);
    expect(err / scale).toBeLessThan(1e-5);

    // The new blocks are live: once their output projection moves, so does the output.
    const toOut = grown.unet.namedParameters().get('down_blocks.1.attentions.0.to_out.0.weight')!;
    toOut.set(randF32(r2, toOut.shape, -0.5, 0.5));
    const moved = await run(grown.unet, feeds);
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(moved[i]! - want[i]!));
    expect(diff / scale).toBeGreaterThan(1e-3);
  }, 60_000);

  it('refuses a block that already has attention, and weights the grown UNet would drop', async () => {
    expect(() => growAttentionConfig(config, { down: [2] })).toThrow(
      /down block 2 is SimpleCrossAttnDownBlock2D/,
    );
    const extra = { ...old.stateDict(), 'down_blocks.9.bogus': NDArray.f32([1], [0]) };
    await expect(growAttention(config, memorySource(extra), { up: [2] })).rejects.toThrow(
      /lacks 1 old weights/,
    );
  });
});
