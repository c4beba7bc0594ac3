import { ImagenError } from '../../engine/errors.js';
import { UNet2DConditionModel } from '../../models/unet/unet.js';
import { readModelConfig } from './config.js';
import { openCheckpoint } from './files.js';

export interface LoadOptions {
  /** Prefer `*.fp16.safetensors` weights (kept as float16 in memory, cast to float32 in the graph). */
  variant?: 'fp16';
}

/** Load a diffusers UNet folder (config.json + diffusion_pytorch_model[.fp16].safetensors, possibly sharded). */
export async function loadUNet(dir: string, options: LoadOptions = {}): Promise<UNet2DConditionModel> {
  const cfg = await readModelConfig(dir);
  if (cfg._class_name !== undefined && cfg._class_name !== 'UNet2DConditionModel') {
    throw new ImagenError(
      'CONFIG_INVALID',
      `${dir}: _class_name is ${JSON.stringify(cfg._class_name)}, expected UNet2DConditionModel`,
    );
  }
  const model = new UNet2DConditionModel(cfg);
  const ckpt = await openCheckpoint(dir, options);
  try {
    await model.loadStateDict(ckpt);
  } catch (e) {
    if (e instanceof ImagenError) throw new ImagenError(e.code, `${dir}: ${e.message}`);
    throw e;
  } finally {
    await ckpt.close();
  }
  return model;
}
