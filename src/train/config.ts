import { ImagenError } from '../engine/errors.js';
import { DEFAULT_HYPERPARAMETERS, type TrainHyperparameters } from './trainer.js';

/**
 * A training run's configuration file (`imagen train --config FILE`). Model sections are the
 * exact JSON the saved folder will hold (diffusers UNet config, transformers T5 config, diffusers
 * scheduler configs), so what trains is what `imagen generate` and diffusers later load.
 */
export interface TrainConfig {
  stage: 'base' | 'sr';
  /** Training (output) resolution. */
  resolution: number;
  /** Super-resolution stages: the conditioning image's resolution. */
  low_resolution?: number;
  /**
   * Super-resolution stages: train on random crops of this side (the low-res image is upsampled
   * first, then cropped alike). The UNet is fully convolutional, so it samples at `resolution`.
   */
  crop_size?: number;
  unet: Record<string, unknown>;
  text_encoder: Record<string, unknown>;
  tokenizer: { type: 'byt5'; max_length?: number } | { path: string };
  /**
   * A pipeline folder whose trained text encoder this stage uses, frozen (Imagen's one frozen
   * encoder for every stage): its config replaces `text_encoder` and its tokenizer must match.
   */
  text_encoder_from?: string;
  scheduler: Record<string, unknown>;
  image_noising_scheduler?: Record<string, unknown>;
  train: Partial<Record<keyof typeof HP_KEYS, unknown>>;
  /** What the recipe is for; ignored by the trainer. */
  comment?: string;
}

/** snake_case keys of the `train` section → trainer hyperparameters. */
const HP_KEYS = {
  batch_size: 'batchSize',
  learning_rate: 'learningRate',
  warmup_steps: 'warmupSteps',
  lr_schedule: 'lrSchedule',
  max_steps: 'maxSteps',
  max_grad_norm: 'maxGradNorm',
  weight_decay: 'weightDecay',
  ema_decay: 'emaDecay',
  caption_dropout: 'captionDropout',
  snr_gamma: 'snrGamma',
  high_noise_weight_cap: 'highNoiseWeightCap',
  text_loss_weight: 'textLossWeight',
  max_aug_level: 'maxAugLevel',
  color_augment_prob: 'colorAugmentProb',
  max_text_length: 'maxTextLength',
  train_text_encoder: 'trainTextEncoder',
  seed: 'seed',
} as const satisfies Record<string, keyof TrainHyperparameters>;

export function hyperparameters(cfg: TrainConfig): TrainHyperparameters {
  const hp: Record<string, unknown> = { ...DEFAULT_HYPERPARAMETERS };
  for (const [k, v] of Object.entries(cfg.train ?? {})) {
    const field = (HP_KEYS as Record<string, string>)[k];
    if (!field) {
      throw new ImagenError(
        'CONFIG_INVALID',
        `train config: unknown key train.${k} (known: ${Object.keys(HP_KEYS).join(', ')})`,
      );
    }
    const expected = typeof (DEFAULT_HYPERPARAMETERS as unknown as Record<string, unknown>)[field];
    if (v !== null && expected !== 'object' && typeof v !== expected) {
      throw new ImagenError(
        'CONFIG_INVALID',
        `train config: train.${k} must be a ${expected}, got ${JSON.stringify(v)}`,
      );
    }
    hp[field] = v;
  }
  return hp as unknown as TrainHyperparameters;
}

/**
 * `over` laid on `base`: objects merge key by key, anything else (arrays too) replaces, and an
 * `undefined` value removes the key.
 */
export function mergeConfigJson(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    const isObj = (x: unknown): x is Record<string, unknown> =>
      typeof x === 'object' && x !== null && !Array.isArray(x);
    if (v === undefined) delete out[k];
    else out[k] = isObj(b) && isObj(v) ? mergeConfigJson(b, v) : v;
  }
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

/** Validate the top level of a parsed config file (model sections are validated by their parsers). */
export function parseTrainConfig(json: unknown, source = 'train config'): TrainConfig {
  const fail = (m: string): never => {
    throw new ImagenError('CONFIG_INVALID', `${source}: ${m}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('expected a JSON object');
  const c = json as Record<string, unknown>;
  const known = [
    'stage',
    'resolution',
    'low_resolution',
    'crop_size',
    'unet',
    'text_encoder',
    'tokenizer',
    'text_encoder_from',
    'scheduler',
    'image_noising_scheduler',
    'train',
    'comment',
  ];
  for (const k of Object.keys(c))
    if (!known.includes(k)) fail(`unknown key "${k}" (known: ${known.join(', ')})`);
  if (c.stage !== 'base' && c.stage !== 'sr')
    fail(`stage must be "base" or "sr", got ${JSON.stringify(c.stage)}`);
  if (!Number.isInteger(c.resolution) || (c.resolution as number) < 8)
    fail('resolution must be an integer ≥ 8');
  if (
    c.stage === 'sr' &&
    (!Number.isInteger(c.low_resolution) || (c.low_resolution as number) >= (c.resolution as number))
  ) {
    fail('a super-resolution stage needs an integer low_resolution below resolution');
  }
  // null in a file that extends another: this recipe trains its text encoder after all.
  if (c.text_encoder_from === null) delete c.text_encoder_from;
  if (c.text_encoder_from !== undefined && (typeof c.text_encoder_from !== 'string' || !c.text_encoder_from))
    fail('text_encoder_from must be the path of a pipeline folder');
  if (c.text_encoder === undefined && typeof c.text_encoder_from === 'string') c.text_encoder = {};
  if (c.crop_size !== undefined) {
    const cs = c.crop_size as number;
    if (c.stage !== 'sr' || !Number.isInteger(cs) || cs < 8 || cs > (c.resolution as number))
      fail('crop_size needs a super-resolution stage and an integer in [8, resolution]');
  }
  for (const k of ['unet', 'text_encoder', 'tokenizer', 'scheduler']) {
    if (typeof c[k] !== 'object' || c[k] === null) fail(`missing section "${k}"`);
  }
  const cfg = c as unknown as TrainConfig;
  hyperparameters(cfg);
  return cfg;
}

/** A small text encoder of the T5 v1.1 architecture over ByT5 byte tokens (trained jointly). */
export function tinyTextEncoderConfig(dModel = 64, layers = 2): Record<string, unknown> {
  return {
    architectures: ['T5EncoderModel'],
    model_type: 't5',
    d_model: dModel,
    d_kv: 16,
    num_heads: dModel / 16,
    d_ff: dModel * 2,
    num_layers: layers,
    vocab_size: 384,
    feed_forward_proj: 'gated-gelu',
    relative_attention_num_buckets: 32,
    relative_attention_max_distance: 128,
    layer_norm_epsilon: 1e-6,
    dropout_rate: 0.0,
  };
}

/** IF's scheduler settings (squaredcos_cap_v2, learned range, dynamic thresholding). */
export function ifSchedulerConfig(
  sampleMaxValue: number,
  predictionType: 'epsilon' | 'v_prediction' = 'epsilon',
): Record<string, unknown> {
  return {
    _class_name: 'DDPMScheduler',
    num_train_timesteps: 1000,
    beta_schedule: 'squaredcos_cap_v2',
    variance_type: 'learned_range',
    prediction_type: predictionType,
    thresholding: true,
    dynamic_thresholding_ratio: 0.95,
    sample_max_value: sampleMaxValue,
    clip_sample: true,
    clip_sample_range: 1.0,
  };
}

/** A tiny IF-recipe UNet config (for tests and quick experiments). */
export function tinyUNetConfig(o: {
  stage: 'base' | 'sr';
  size: number;
  channels?: number[];
  textDim: number;
  layers?: number;
}): Record<string, unknown> {
  const ch = o.channels ?? [32, 64];
  const n = ch.length;
  const sr = o.stage === 'sr';
  return {
    _class_name: 'UNet2DConditionModel',
    sample_size: o.size,
    in_channels: sr ? 6 : 3,
    out_channels: 6,
    block_out_channels: ch,
    layers_per_block: o.layers ?? 1,
    down_block_types: ch.map((_, i) => (i === 0 ? 'ResnetDownsampleBlock2D' : 'SimpleCrossAttnDownBlock2D')),
    up_block_types: ch.map((_, i) => (i === n - 1 ? 'ResnetUpsampleBlock2D' : 'SimpleCrossAttnUpBlock2D')),
    mid_block_type: 'UNetMidBlock2DSimpleCrossAttn',
    attention_head_dim: 16,
    cross_attention_dim: ch[n - 1],
    encoder_hid_dim: o.textDim,
    encoder_hid_dim_type: 'text_proj',
    addition_embed_type: 'text',
    addition_embed_type_num_heads: Math.max(1, o.textDim / 16),
    class_embed_type: sr ? 'timestep' : null,
    act_fn: 'gelu',
    norm_num_groups: 32,
    norm_eps: 1e-5,
    resnet_time_scale_shift: 'scale_shift',
    resnet_skip_time_act: sr,
    resnet_out_scale_factor: sr ? 1.4142271248762552 : 1.0,
    mid_block_scale_factor: sr ? 1.4142271248762552 : 1,
    time_embedding_dim: sr ? ch[n - 1] : null,
    time_embedding_act_fn: sr ? 'gelu' : null,
    flip_sin_to_cos: true,
    freq_shift: 0,
    only_cross_attention: false,
    cross_attention_norm: 'group_norm',
  };
}

/** A complete tiny config for a stage (tests, `imagen train` without --config). */
export function tinyTrainConfig(
  stage: 'base' | 'sr',
  resolution: number,
  lowResolution?: number,
): TrainConfig {
  const text = tinyTextEncoderConfig();
  return {
    stage,
    resolution,
    low_resolution: stage === 'sr' ? (lowResolution ?? resolution / 4) : undefined,
    unet: tinyUNetConfig({ stage, size: resolution, textDim: text.d_model as number }),
    text_encoder: text,
    tokenizer: { type: 'byt5', max_length: 77 },
    // v-prediction for small super-resolution models: with ε, x̂0 = (x_t − σε)/α amplifies ε errors
    // by 1/α at high noise, and a briefly trained SR UNet then ignores its conditioning image.
    scheduler: ifSchedulerConfig(stage === 'base' ? 1.5 : 1.0, stage === 'sr' ? 'v_prediction' : 'epsilon'),
    image_noising_scheduler:
      stage === 'sr' ? { _class_name: 'DDPMScheduler', beta_schedule: 'squaredcos_cap_v2' } : undefined,
    train: { batch_size: 8, learning_rate: 1e-3, warmup_steps: 20, max_text_length: 77 },
  };
}
