/**
 * imagen-ts core API (no Node imports: runs in browsers with onnxruntime-web too).
 * Node-specific loaders (files, onnxruntime-node, sharp) are in `imagen-ts/node`.
 */

export { ddimStep } from './diffusion/ddim.js';
export { addNoise, ddpmStep } from './diffusion/ddpm.js';
export { classifierFreeGuidance } from './diffusion/guidance.js';
export { Generator } from './diffusion/noise.js';
export { type Denoiser, type StepInfo, sample } from './diffusion/sample.js';
export {
  makeSchedule,
  parseSchedulerConfig,
  type Schedule,
  type SchedulerConfig,
} from './diffusion/schedule.js';
export { dynamicThreshold, staticThreshold, type Thresholding } from './diffusion/thresholding.js';
export { PRESET_NAMES, presetTimesteps, setTimesteps } from './diffusion/timesteps.js';
export * from './engine/index.js';
export { imagesToTensor, type RgbImage, tensorToImages } from './io/image.js';
export { encodeSafetensors, SafetensorsFile } from './io/safetensors.js';
export { parseT5Config, type T5Config } from './models/t5/config.js';
export { encodePrompts, InMemoryT5Encoder, T5Encoder, type T5TextEncoder } from './models/t5/t5_encoder.js';
export { parseUNetConfig, type UNetConfig } from './models/unet/config.js';
export { UNet2DConditionModel } from './models/unet/unet.js';
export * as nn from './nn/index.js';
export type { ProgressEvent } from './pipelines/events.js';
export { guidedDenoiser, superResolution, textToImage } from './pipelines/if_pipeline.js';
export { type GenerateOptions, generateImages, IF_DEFAULTS } from './pipelines/text_to_image.js';
export { createUNetRunner, type UNetLike } from './pipelines/unet_runner.js';
export { ByT5Tokenizer } from './text/byt5.js';
export { textPreprocessing } from './text/clean_caption.js';
export { T5Tokenizer, type TextTokenizer } from './text/tokenizer.js';
export { EMA } from './train/ema.js';
export { AdamW, clipGradNorm, SGD } from './train/optim.js';
export { DiffusionTrainer, type TrainHyperparameters } from './train/trainer.js';
