/**
 * transformers `T5Config` as the encoder needs it, parsed from a checkpoint's config.json.
 *
 * Covers original T5 (`feed_forward_proj: "relu"`), T5 v1.1 / Flan-T5 / mT5 (`"gated-gelu"`), and
 * `"gated-silu"`. UMT5 is refused: it has a relative-position bias in every layer, not only block 0.
 */
import { ImagenError } from '../../engine/errors.js';

export type T5Activation = 'relu' | 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'silu';

export interface T5Config {
  dModel: number;
  dKv: number;
  numHeads: number;
  dFf: number;
  numLayers: number;
  vocabSize: number;
  /** Gated FF (wi_0, wi_1, wo) vs plain FF (wi, wo). */
  isGatedAct: boolean;
  denseActFn: T5Activation;
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
  layerNormEpsilon: number;
}

/** T5 v1.1 XXL, the IF text encoder (spec §7.1). */
export const T5_V1_1_XXL: T5Config = {
  dModel: 4096,
  dKv: 64,
  numHeads: 64,
  dFf: 10240,
  numLayers: 24,
  vocabSize: 32128,
  isGatedAct: true,
  denseActFn: 'gelu_new',
  relativeAttentionNumBuckets: 32,
  relativeAttentionMaxDistance: 128,
  layerNormEpsilon: 1e-6,
};

const ACTIVATIONS = new Set<string>(['relu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'silu', 'swish']);
const T5_MODEL_TYPES = new Set(['t5', 'mt5']);
const T5_ARCHITECTURES = new Set([
  'T5EncoderModel',
  'T5ForConditionalGeneration',
  'T5Model',
  'MT5EncoderModel',
  'MT5ForConditionalGeneration',
  'MT5Model',
]);

/** Whether a config.json describes a T5 (or mT5) model this encoder can run. */
export function isT5Config(raw: Record<string, unknown>): boolean {
  const archs = Array.isArray(raw.architectures) ? raw.architectures : [];
  return (
    (typeof raw.model_type === 'string' && T5_MODEL_TYPES.has(raw.model_type)) ||
    archs.some((a) => typeof a === 'string' && T5_ARCHITECTURES.has(a))
  );
}

/**
 * Mirrors `T5Config.__init__`: the activation and gating come from `feed_forward_proj`, then any
 * `dense_act_fn` / `is_gated_act` stored in the JSON win, because `PretrainedConfig.__init__`
 * sets leftover kwargs last.
 */
export function parseT5Config(raw: unknown, source = 'config.json'): T5Config {
  const fail = (msg: string): never => {
    throw new ImagenError('CONFIG_INVALID', `${source}: ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('expected a JSON object');
  const c = raw as Record<string, unknown>;
  if (!isT5Config(c)) {
    const what = c._class_name ?? c.model_type ?? c.architectures ?? 'no model_type';
    return fail(
      `not a T5 encoder config (${JSON.stringify(what)}); expected model_type "t5" or architectures ["T5EncoderModel"]`,
    );
  }
  if (c.model_type === 'umt5') fail('UMT5 (per-layer relative attention bias) is not supported');

  const int = (key: string, dflt?: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      return fail(`"${key}" must be a positive integer, got ${JSON.stringify(c[key])}`);
    }
    return v;
  };
  const ffp = c.feed_forward_proj ?? 'relu';
  if (typeof ffp !== 'string')
    return fail(`"feed_forward_proj" must be a string, got ${JSON.stringify(ffp)}`);
  const parts = ffp.split('-');
  if ((parts.length > 1 && parts[0] !== 'gated') || parts.length > 2) {
    fail(`"feed_forward_proj" ${JSON.stringify(ffp)} is not "{ACT_FN}" or "gated-{ACT_FN}"`);
  }
  let act: string = ffp === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1]!;
  let gated = parts[0] === 'gated';
  if (c.dense_act_fn !== undefined) {
    if (typeof c.dense_act_fn !== 'string') fail(`"dense_act_fn" must be a string`);
    act = c.dense_act_fn as string;
  }
  if (c.is_gated_act !== undefined) {
    if (typeof c.is_gated_act !== 'boolean') fail(`"is_gated_act" must be a boolean`);
    gated = c.is_gated_act as boolean;
  }
  if (!ACTIVATIONS.has(act))
    fail(`activation ${JSON.stringify(act)} is not supported (${[...ACTIVATIONS].join(', ')})`);
  const eps = c.layer_norm_epsilon ?? 1e-6;
  if (typeof eps !== 'number' || !(eps > 0)) fail(`"layer_norm_epsilon" must be a positive number`);

  const cfg: T5Config = {
    dModel: int('d_model', 512),
    dKv: int('d_kv', 64),
    numHeads: int('num_heads', 8),
    dFf: int('d_ff', 2048),
    numLayers: int('num_layers', 6),
    vocabSize: int('vocab_size', 32128),
    isGatedAct: gated,
    denseActFn: (act === 'swish' ? 'silu' : act) as T5Activation,
    relativeAttentionNumBuckets: int('relative_attention_num_buckets', 32),
    relativeAttentionMaxDistance: int('relative_attention_max_distance', 128),
    layerNormEpsilon: eps as number,
  };
  if (cfg.relativeAttentionNumBuckets < 4) fail('"relative_attention_num_buckets" must be at least 4');
  return cfg;
}

/** Encoder parameter count (embedding, blocks, final norm; the decoder is never loaded). */
export function t5EncoderParamCount(cfg: T5Config): number {
  const inner = cfg.numHeads * cfg.dKv;
  const attn = 4 * inner * cfg.dModel;
  const ff = (cfg.isGatedAct ? 3 : 2) * cfg.dModel * cfg.dFf;
  const block = attn + ff + 2 * cfg.dModel;
  return (
    cfg.vocabSize * cfg.dModel +
    cfg.numLayers * block +
    cfg.relativeAttentionNumBuckets * cfg.numHeads +
    cfg.dModel
  );
}

/** Bytes of the encoder's weights held as float32 (what an in-memory session would need at least). */
export function t5EncoderFloat32Bytes(cfg: T5Config): number {
  return 4 * t5EncoderParamCount(cfg);
}
