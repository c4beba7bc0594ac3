import { T5Encoder } from '../models/t5/t5_encoder.js';
import { UNet2DConditionModel } from '../models/unet/unet.js';
import { savePipelineFolder } from '../platform/node/pipeline_folder.js';
import { ifSchedulerConfig, tinyTextEncoderConfig, tinyUNetConfig } from '../train/config.js';

/**
 * Write an untrained 16×16 stage-I pipeline folder (about 1 MB, a second to write): enough to
 * exercise the server, the workers and the page end to end — through the same loader as a real
 * checkpoint — without a download. Its images are structured noise.
 */
export async function writeTinyModel(dir: string, o: { size?: number; seed?: number } = {}): Promise<void> {
  const seed = o.seed ?? 1;
  const text = tinyTextEncoderConfig(64, 1);
  const unet = new UNet2DConditionModel(
    tinyUNetConfig({ stage: 'base', size: o.size ?? 16, channels: [32, 32], textDim: 64 }),
  ).initialize(seed);
  await savePipelineFolder(dir, {
    stage: 'base',
    unet,
    textEncoder: { module: new T5Encoder(text).initialize(seed + 1), configJson: text },
    tokenizer: { type: 'byt5', maxLength: 16 },
    scheduler: ifSchedulerConfig(1.5),
  });
}
