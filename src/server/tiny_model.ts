import { join } from 'node:path';
import { T5Encoder } from '../models/t5/t5_encoder.js';
import { UNet2DConditionModel } from '../models/unet/unet.js';
import { atomicWriteFile } from '../platform/node/files.js';
import { savePipelineFolder } from '../platform/node/pipeline_folder.js';
import { ifSchedulerConfig, tinyTextEncoderConfig, tinyUNetConfig } from '../train/config.js';

/** An untrained stage with its own byte-level text encoder (the part both tiny folders share). */
async function writeTinyStage(dir: string, stage: 'base' | 'sr', size: number, seed: number): Promise<void> {
  const text = tinyTextEncoderConfig(64, 1);
  const unet = new UNet2DConditionModel(
    tinyUNetConfig({ stage, size, channels: [32, 32], textDim: 64 }),
  ).initialize(seed);
  await savePipelineFolder(dir, {
    stage,
    unet,
    textEncoder: { module: new T5Encoder(text).initialize(seed + 1), configJson: text },
    tokenizer: { type: 'byt5', maxLength: 16 },
    scheduler: ifSchedulerConfig(stage === 'base' ? 1.5 : 1.0),
    ...(stage === 'sr'
      ? { imageNoisingScheduler: { _class_name: 'DDPMScheduler', beta_schedule: 'squaredcos_cap_v2' } }
      : {}),
  });
}

/**
 * Write an untrained 16×16 stage-I pipeline folder (about 1 MB, a second to write): enough to
 * exercise the server, the workers and the page end to end — through the same loader as a real
 * checkpoint — without a download. Its images are structured noise.
 */
export async function writeTinyModel(dir: string, o: { size?: number; seed?: number } = {}): Promise<void> {
  await writeTinyStage(dir, 'base', o.size ?? 16, o.seed ?? 1);
}

/**
 * An untrained stage II for `writeTinyModel` (16 → 32 by default), laid out as the shipped one
 * (models/imagen-ts-shapes/sr): its own text encoder and tokenizer, an image noising scheduler, and
 * a generation_config.json that samples with DDIM, unguided, on overlapping tiles, and back-projects
 * onto stage I's image — so a test of the cascade goes through every part the shipped stage II uses.
 */
export async function writeTinySrModel(dir: string, o: { size?: number; seed?: number } = {}): Promise<void> {
  const size = o.size ?? 32;
  await writeTinyStage(dir, 'sr', size, o.seed ?? 5);
  const generationConfig = {
    num_inference_steps: 8,
    guidance_scale: 1,
    sampler: 'ddim',
    thresholding: 'dynamic',
    noise_level: 100,
    tile_size: size / 2,
    tile_overlap: size / 4,
    back_projection: true,
  };
  await atomicWriteFile(
    join(dir, 'generation_config.json'),
    `${JSON.stringify(generationConfig, null, 2)}\n`,
  );
}
