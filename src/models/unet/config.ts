import { ImagenError } from '../../engine/errors.js';

/** DeepFloyd IF blocks: resnet resamplers, attention with text keys/values added to the image's own. */
export const IF_DOWN_BLOCK_TYPES = ['ResnetDownsampleBlock2D', 'SimpleCrossAttnDownBlock2D'] as const;
export const IF_UP_BLOCK_TYPES = ['ResnetUpsampleBlock2D', 'SimpleCrossAttnUpBlock2D'] as const;
/** Stable Diffusion blocks (x4 upscaler): conv resamplers, Transformer2DModel cross-attention. */
export const SD_DOWN_BLOCK_TYPES = ['DownBlock2D', 'CrossAttnDownBlock2D'] as const;
export const SD_UP_BLOCK_TYPES = ['UpBlock2D', 'CrossAttnUpBlock2D'] as const;

export const DOWN_BLOCK_TYPES = [...IF_DOWN_BLOCK_TYPES, ...SD_DOWN_BLOCK_TYPES] as const;
export const UP_BLOCK_TYPES = [...IF_UP_BLOCK_TYPES, ...SD_UP_BLOCK_TYPES] as const;
export const MID_BLOCK_TYPES = ['UNetMidBlock2DSimpleCrossAttn', 'UNetMidBlock2DCrossAttn'] as const;

export type DownBlockType = (typeof DOWN_BLOCK_TYPES)[number];
export type UpBlockType = (typeof UP_BLOCK_TYPES)[number];
export type MidBlockType = (typeof MID_BLOCK_TYPES)[number];

/**
 * diffusers `UNet2DConditionModel` config for the DeepFloyd IF and Stable Diffusion (x4 upscaler)
 * block families. Keys are spelled exactly as in config.json so a diffusers folder loads with no
 * renaming.
 *
 * `attention_head_dim` means what diffusers makes of it per block type: the width of one head for
 * the IF (SimpleCrossAttn) blocks, but the NUMBER of heads for CrossAttn blocks and
 * UNetMidBlock2DCrossAttn (diffusers' legacy naming: `num_attention_heads = attention_head_dim`).
 */
export interface UNetConfig {
  sample_size: number;
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  layers_per_block: number[];
  down_block_types: DownBlockType[];
  up_block_types: UpBlockType[];
  mid_block_type: MidBlockType;
  attention_head_dim: number[];
  cross_attention_dim: number;
  encoder_hid_dim: number | null;
  encoder_hid_dim_type: 'text_proj' | null;
  addition_embed_type: 'text' | null;
  addition_embed_type_num_heads: number;
  class_embed_type: 'timestep' | null;
  /** With class_embed_type null: an nn.Embedding(num_class_embeds, time_embed_dim) of integer labels. */
  num_class_embeds: number | null;
  act_fn: 'gelu' | 'silu';
  norm_num_groups: number;
  norm_eps: number;
  resnet_time_scale_shift: 'scale_shift' | 'default';
  resnet_skip_time_act: boolean;
  resnet_out_scale_factor: number;
  mid_block_scale_factor: number;
  time_embedding_dim: number | null;
  time_embedding_act_fn: 'gelu' | 'silu' | null;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  only_cross_attention: boolean[];
  mid_block_only_cross_attention: boolean | null;
  cross_attention_norm: 'group_norm' | null;
  /** Transformer2DModel proj_in/proj_out: Linear on tokens (true) or 1×1 conv (false). */
  use_linear_projection: boolean;
  /** fp16 softmax upcast in diffusers; every attention here already runs in float32. */
  upcast_attention: boolean;
  /** BasicTransformerBlocks per Transformer2DModel, per down block (up blocks mirror it). */
  transformer_layers_per_block: number[];
  /** Padding of the Downsample2D conv; 0 = diffusers' asymmetric (0, 1, 0, 1) pad first. */
  downsample_padding: number;
  conv_in_kernel: number;
  conv_out_kernel: number;
}

/** Keys that diffusers writes but that do not change this block family's computation. */
const INERT_KEYS: Record<string, unknown[]> = {
  attention_type: ['default'],
  center_input_sample: [false],
  class_embeddings_concat: [false],
  dropout: [0],
  dual_cross_attention: [false],
  // diffusers v0.25 itself refuses a non-null num_attention_heads.
  num_attention_heads: [null],
  projection_class_embeddings_input_dim: [null],
  time_cond_proj_dim: [null],
  time_embedding_type: ['positional'],
  timestep_post_act: [null],
  reverse_transformer_layers_per_block: [null],
  addition_time_embed_dim: [null],
};

function fail(msg: string): never {
  throw new ImagenError('CONFIG_INVALID', `UNet config: ${msg}`);
}

function perBlock<T>(v: unknown, n: number, key: string, check: (x: unknown) => x is T): T[] {
  if (Array.isArray(v)) {
    if (v.length !== n) fail(`${key} has ${v.length} entries for ${n} blocks`);
    if (!v.every(check)) fail(`${key} has an invalid entry: ${JSON.stringify(v)}`);
    return v as T[];
  }
  if (!check(v)) fail(`${key} must be a value or a list of ${n}, got ${JSON.stringify(v)}`);
  return new Array(n).fill(v);
}

const isPosInt = (x: unknown): x is number => Number.isInteger(x) && (x as number) > 0;
const isBool = (x: unknown): x is boolean => typeof x === 'boolean';

/** Parse and validate a diffusers UNet config.json (IF or SD block family); unknown keys are rejected. */
export function parseUNetConfig(json: unknown): UNetConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('not a JSON object');
  const j = json as Record<string, unknown>;
  const known = new Set([
    'sample_size',
    'in_channels',
    'out_channels',
    'block_out_channels',
    'layers_per_block',
    'down_block_types',
    'up_block_types',
    'mid_block_type',
    'attention_head_dim',
    'cross_attention_dim',
    'encoder_hid_dim',
    'encoder_hid_dim_type',
    'addition_embed_type',
    'addition_embed_type_num_heads',
    'class_embed_type',
    'act_fn',
    'norm_num_groups',
    'norm_eps',
    'resnet_time_scale_shift',
    'resnet_skip_time_act',
    'resnet_out_scale_factor',
    'mid_block_scale_factor',
    'time_embedding_dim',
    'time_embedding_act_fn',
    'flip_sin_to_cos',
    'freq_shift',
    'only_cross_attention',
    'mid_block_only_cross_attention',
    'cross_attention_norm',
    'num_class_embeds',
    'use_linear_projection',
    'upcast_attention',
    'transformer_layers_per_block',
    'downsample_padding',
    'conv_in_kernel',
    'conv_out_kernel',
  ]);
  for (const [k, v] of Object.entries(j)) {
    if (k.startsWith('_') || known.has(k)) continue;
    const allowed = INERT_KEYS[k];
    if (!allowed) fail(`unknown key "${k}"`);
    if (!allowed.some((a) => a === v || (a === 0 && v === 0.0))) {
      fail(
        `${k} = ${JSON.stringify(v)} is not supported (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`,
      );
    }
  }
  const boc = j.block_out_channels;
  if (!Array.isArray(boc) || boc.length === 0 || !boc.every(isPosInt))
    fail('block_out_channels must be a list of positive integers');
  const n = boc.length;
  const downTypes = j.down_block_types;
  const upTypes = j.up_block_types;
  if (!Array.isArray(downTypes) || downTypes.length !== n) fail(`down_block_types must list ${n} blocks`);
  if (!Array.isArray(upTypes) || upTypes.length !== n) fail(`up_block_types must list ${n} blocks`);
  for (const t of downTypes) {
    if (!(DOWN_BLOCK_TYPES as readonly string[]).includes(t)) {
      fail(`unsupported down block type "${t}" (supported: ${DOWN_BLOCK_TYPES.join(', ')})`);
    }
  }
  for (const t of upTypes) {
    if (!(UP_BLOCK_TYPES as readonly string[]).includes(t)) {
      fail(`unsupported up block type "${t}" (supported: ${UP_BLOCK_TYPES.join(', ')})`);
    }
  }
  // diffusers defaults to UNetMidBlock2DCrossAttn; IF configs always name their mid block, and
  // configs written before the SD family existed here relied on the IF default, so an all-IF
  // config without the key keeps it.
  const allIf = downTypes.every((t) => (IF_DOWN_BLOCK_TYPES as readonly string[]).includes(t));
  const mid = j.mid_block_type ?? (allIf ? 'UNetMidBlock2DSimpleCrossAttn' : 'UNetMidBlock2DCrossAttn');
  if (!(MID_BLOCK_TYPES as readonly string[]).includes(mid as string)) {
    fail(`unsupported mid block type "${mid}" (supported: ${MID_BLOCK_TYPES.join(', ')})`);
  }
  const num = (k: string, d?: number): number => {
    const v = j[k] ?? d;
    if (typeof v !== 'number' || !Number.isFinite(v))
      fail(`${k} must be a number, got ${JSON.stringify(j[k])}`);
    return v;
  };
  const oneOf = <T>(k: string, options: readonly T[], d: T): T => {
    const v = (k in j ? j[k] : d) as T;
    if (!options.includes(v))
      fail(`${k} = ${JSON.stringify(v)} (supported: ${options.map((o) => JSON.stringify(o)).join(', ')})`);
    return v;
  };
  const cfg: UNetConfig = {
    sample_size: num('sample_size', 64),
    in_channels: num('in_channels', 3),
    out_channels: num('out_channels', 6),
    block_out_channels: boc,
    layers_per_block: perBlock(j.layers_per_block ?? 2, n, 'layers_per_block', isPosInt),
    down_block_types: downTypes as DownBlockType[],
    up_block_types: upTypes as UpBlockType[],
    mid_block_type: mid as MidBlockType,
    attention_head_dim: perBlock(j.attention_head_dim ?? 8, n, 'attention_head_dim', isPosInt),
    cross_attention_dim: num('cross_attention_dim'),
    encoder_hid_dim: (j.encoder_hid_dim as number | null) ?? null,
    encoder_hid_dim_type: oneOf('encoder_hid_dim_type', ['text_proj', null], null),
    addition_embed_type: oneOf('addition_embed_type', ['text', null], null),
    addition_embed_type_num_heads: num('addition_embed_type_num_heads', 64),
    class_embed_type: oneOf('class_embed_type', ['timestep', null], null),
    act_fn: oneOf('act_fn', ['gelu', 'silu'], 'silu'),
    norm_num_groups: num('norm_num_groups', 32),
    norm_eps: num('norm_eps', 1e-5),
    resnet_time_scale_shift: oneOf('resnet_time_scale_shift', ['scale_shift', 'default'], 'default'),
    resnet_skip_time_act: (j.resnet_skip_time_act as boolean) ?? false,
    resnet_out_scale_factor: num('resnet_out_scale_factor', 1),
    mid_block_scale_factor: num('mid_block_scale_factor', 1),
    time_embedding_dim: (j.time_embedding_dim as number | null) ?? null,
    time_embedding_act_fn: oneOf('time_embedding_act_fn', ['gelu', 'silu', null], null),
    flip_sin_to_cos: (j.flip_sin_to_cos as boolean) ?? true,
    freq_shift: num('freq_shift', 0),
    only_cross_attention: perBlock(j.only_cross_attention ?? false, n, 'only_cross_attention', isBool),
    mid_block_only_cross_attention: (j.mid_block_only_cross_attention as boolean | null) ?? null,
    cross_attention_norm: oneOf('cross_attention_norm', ['group_norm', null], null),
    num_class_embeds: nullablePosInt(j.num_class_embeds, 'num_class_embeds'),
    use_linear_projection: bool(j.use_linear_projection, 'use_linear_projection', false),
    upcast_attention: bool(j.upcast_attention, 'upcast_attention', false),
    transformer_layers_per_block: transformerLayers(j.transformer_layers_per_block, n),
    downsample_padding: nonNegInt(j.downsample_padding, 'downsample_padding', 1),
    conv_in_kernel: oddKernel(j.conv_in_kernel, 'conv_in_kernel'),
    conv_out_kernel: oddKernel(j.conv_out_kernel, 'conv_out_kernel'),
  };
  if (cfg.encoder_hid_dim_type === 'text_proj' && !isPosInt(cfg.encoder_hid_dim)) {
    fail('encoder_hid_dim_type "text_proj" needs encoder_hid_dim');
  }
  if (cfg.addition_embed_type === 'text' && cfg.encoder_hid_dim === null) {
    fail('addition_embed_type "text" needs encoder_hid_dim (the text encoder width)');
  }
  for (const c of boc) {
    if (c % cfg.norm_num_groups)
      fail(`block width ${c} is not divisible by norm_num_groups ${cfg.norm_num_groups}`);
  }
  // Transformer2DModel splits a block's width into attention_head_dim heads (their count, for
  // these blocks); a remainder would make its residual sum fail deep inside the graph.
  const sdAttn = (i: number) =>
    cfg.down_block_types[i] === 'CrossAttnDownBlock2D' ||
    cfg.up_block_types[n - 1 - i] === 'CrossAttnUpBlock2D' ||
    (i === n - 1 && cfg.mid_block_type === 'UNetMidBlock2DCrossAttn');
  for (let i = 0; i < n; i++) {
    const heads = cfg.attention_head_dim[i]!;
    if (sdAttn(i) && boc[i] % heads) {
      fail(
        `block ${i}: width ${boc[i]} is not divisible by attention_head_dim ${heads} ` +
          '(the number of heads for CrossAttn blocks)',
      );
    }
  }
  return cfg;
}

/** True when every block is of the DeepFloyd IF family (the weight-streaming runner's domain). */
export function isIfFamily(cfg: UNetConfig): boolean {
  const has = (list: readonly string[], t: string) => list.includes(t);
  return (
    cfg.down_block_types.every((t) => has(IF_DOWN_BLOCK_TYPES, t)) &&
    cfg.up_block_types.every((t) => has(IF_UP_BLOCK_TYPES, t)) &&
    cfg.mid_block_type === 'UNetMidBlock2DSimpleCrossAttn'
  );
}

function nullablePosInt(v: unknown, key: string): number | null {
  if (v === undefined || v === null) return null;
  if (!isPosInt(v)) fail(`${key} must be a positive integer or null, got ${JSON.stringify(v)}`);
  return v;
}

function bool(v: unknown, key: string, d: boolean): boolean {
  if (v === undefined) return d;
  if (!isBool(v)) fail(`${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function nonNegInt(v: unknown, key: string, d: number): number {
  if (v === undefined) return d;
  if (!Number.isInteger(v) || (v as number) < 0)
    fail(`${key} must be an integer ≥ 0, got ${JSON.stringify(v)}`);
  return v as number;
}

/** conv_in/conv_out kernels: odd, so diffusers' padding (k − 1)/2 keeps the size. */
function oddKernel(v: unknown, key: string): number {
  if (v === undefined) return 3;
  if (!isPosInt(v) || v % 2 === 0) fail(`${key} must be an odd positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** An int or one int per block; SDXL-style per-layer lists need reverse_transformer_layers_per_block. */
function transformerLayers(v: unknown, n: number): number[] {
  if (Array.isArray(v) && v.some(Array.isArray)) {
    fail('transformer_layers_per_block with per-layer lists (asymmetric UNets) is not supported');
  }
  return perBlock(v ?? 1, n, 'transformer_layers_per_block', isPosInt);
}

/** Text-encoder width the UNet expects (encoder_hidden_states last dim). */
export function textWidth(cfg: UNetConfig): number {
  return cfg.encoder_hid_dim ?? cfg.cross_attention_dim;
}

/** Width of the time embedding (and of the class / pooled-text embeddings added to it). */
export function timeEmbedDim(cfg: UNetConfig): number {
  return cfg.time_embedding_dim ?? 4 * cfg.block_out_channels[0]!;
}
