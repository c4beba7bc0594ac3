/**
 * transformers `CLIPTextConfig` as the text encoder needs it, parsed from a checkpoint's config.json
 * (the `text_encoder/` folder of Stable Diffusion pipelines, e.g. the ×4 upscaler's OpenCLIP-H).
 * Keys are read verbatim; anything that would change the computation and is not supported is refused.
 */
import { ImagenError } from '../../engine/errors.js';

/** `hidden_act` values of CLIP text models: exact GELU (OpenCLIP), quick_gelu (OpenAI CLIP), tanh GELU. */
export const CLIP_ACTIVATIONS = ['gelu', 'quick_gelu', 'gelu_new', 'gelu_pytorch_tanh'] as const;
export type ClipActivation = (typeof CLIP_ACTIVATIONS)[number];

export interface ClipTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: ClipActivation;
  layer_norm_eps: number;
  /**
   * Decides the pooling rule: 2 (the legacy default every SD checkpoint carries) pools at
   * `input_ids.argmax(-1)` (the highest id = `<|endoftext|>` in the real vocab); any other value
   * pools at the first occurrence of that id.
   */
  eos_token_id: number;
  bos_token_id: number;
  pad_token_id: number;
}

/** transformers' CLIPTextConfig defaults (used for keys a config.json leaves out). */
const DEFAULTS: ClipTextConfig = {
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  eos_token_id: 2,
  bos_token_id: 0,
  pad_token_id: 1,
};

/** Keys transformers writes that do not change inference (dropout is off, init only matters for training). */
const INERT_KEYS = new Set([
  'architectures',
  'attention_dropout',
  'dropout',
  'initializer_factor',
  'initializer_range',
  'model_type',
  'projection_dim',
  'torch_dtype',
  'dtype',
  'transformers_version',
  'output_attentions',
  'output_hidden_states',
  'return_dict',
  'id2label',
  'label2id',
  'tie_word_embeddings',
  'is_encoder_decoder',
  'use_attention_mask',
  'name_or_path',
  // Generic PretrainedConfig keys (generation, fine-tuning, export) that older transformers versions
  // wrote into every config.json; none affects a CLIP text encoder forward.
  'add_cross_attention',
  'bad_words_ids',
  'begin_suppress_tokens',
  'chunk_size_feed_forward',
  'cross_attention_hidden_size',
  'decoder_start_token_id',
  'diversity_penalty',
  'do_sample',
  'early_stopping',
  'encoder_no_repeat_ngram_size',
  'exponential_decay_length_penalty',
  'finetuning_task',
  'forced_bos_token_id',
  'forced_eos_token_id',
  'gradient_checkpointing',
  'is_decoder',
  'length_penalty',
  'max_length',
  'min_length',
  'no_repeat_ngram_size',
  'num_beam_groups',
  'num_beams',
  'num_return_sequences',
  'output_scores',
  'prefix',
  'problem_type',
  'pruned_heads',
  'remove_invalid_values',
  'repetition_penalty',
  'return_dict_in_generate',
  'sep_token_id',
  'suppress_tokens',
  'task_specific_params',
  'temperature',
  'tf_legacy_loss',
  'tie_encoder_decoder',
  'tokenizer_class',
  'top_k',
  'top_p',
  'torchscript',
  'typical_p',
  'use_bfloat16',
]);

function fail(where: string, msg: string): never {
  throw new ImagenError('CONFIG_INVALID', `${where}: ${msg}`);
}

/** Whether a config.json describes a CLIP text model (CLIPTextModel / CLIPTextModelWithProjection). */
export function isClipTextConfig(raw: Record<string, unknown>): boolean {
  const archs = Array.isArray(raw.architectures) ? raw.architectures : [];
  return (
    raw.model_type === 'clip_text_model' ||
    archs.some((a) => a === 'CLIPTextModel' || a === 'CLIPTextModelWithProjection')
  );
}

/** Parse and validate a CLIP text config.json; unknown keys are rejected (they might matter). */
export function parseClipTextConfig(raw: unknown, where = 'CLIP text config'): ClipTextConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(where, 'not a JSON object');
  const j = raw as Record<string, unknown>;
  if (!isClipTextConfig(j) && (j.model_type !== undefined || j.architectures !== undefined)) {
    fail(
      where,
      `not a CLIP text encoder config (model_type ${JSON.stringify(j.model_type)}, architectures ${JSON.stringify(j.architectures)})`,
    );
  }
  const cfg: ClipTextConfig = { ...DEFAULTS };
  const ints = [
    'vocab_size',
    'hidden_size',
    'intermediate_size',
    'num_hidden_layers',
    'num_attention_heads',
    'max_position_embeddings',
  ] as const;
  for (const [k, v] of Object.entries(j)) {
    if (k.startsWith('_') || INERT_KEYS.has(k)) continue;
    if ((ints as readonly string[]).includes(k)) {
      if (!Number.isInteger(v) || (v as number) <= 0)
        fail(where, `${k} must be a positive integer, got ${JSON.stringify(v)}`);
      cfg[k as (typeof ints)[number]] = v as number;
    } else if (k === 'eos_token_id' || k === 'bos_token_id' || k === 'pad_token_id') {
      if (!Number.isInteger(v)) fail(where, `${k} must be an integer, got ${JSON.stringify(v)}`);
      cfg[k] = v as number;
    } else if (k === 'layer_norm_eps') {
      if (typeof v !== 'number' || !(v > 0))
        fail(where, `layer_norm_eps must be > 0, got ${JSON.stringify(v)}`);
      cfg.layer_norm_eps = v;
    } else if (k === 'hidden_act') {
      if (!(CLIP_ACTIVATIONS as readonly unknown[]).includes(v)) {
        fail(
          where,
          `hidden_act ${JSON.stringify(v)} is not supported (supported: ${CLIP_ACTIVATIONS.join(', ')})`,
        );
      }
      cfg.hidden_act = v as ClipActivation;
    } else {
      fail(where, `unknown key "${k}"`);
    }
  }
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
    fail(
      where,
      `hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`,
    );
  }
  return cfg;
}
