/**
 * transformers `T5EncoderModel` (the text encoder of Imagen / DeepFloyd IF) with transformers'
 * parameter names, plus `encodePrompts`, the IF pipeline's prompt → embeddings step.
 *
 * Core module: no node imports. Loading from a folder is `src/platform/node/t5_loader.ts`; the
 * block-at-a-time variant for checkpoints larger than RAM is `streaming.ts`.
 */
import { ImagenError } from '../../engine/errors.js';
import type { Tensor, Trace } from '../../engine/graph.js';
import { NDArray } from '../../engine/ndarray.js';
import * as F from '../../engine/ops/index.js';
import type { CompiledFunction, Runtime } from '../../engine/runtime.js';
import { Embedding, Linear, Module, RMSNorm } from '../../nn/index.js';
import { preprocessPrompts } from '../../text/clean_caption.js';
import type { TextTokenizer } from '../../text/tokenizer.js';
import { parseT5Config, type T5Activation, type T5Config } from './config.js';

/** torch.finfo(torch.float32).min: transformers' additive value for masked keys. */
export const FLOAT32_MIN = -3.4028234663852886e38;

// ---------------------------------------------------------------- relative positions

/**
 * transformers `T5Attention._relative_position_bucket` for one relative position
 * `rel = key position − query position`. The log-spaced branch is evaluated in float32 the way
 * torch does it (float32 tensor ops with the Python scalars cast to float32, then truncation),
 * so ids agree with transformers even where a float64 evaluation would round across a bucket edge.
 */
export function relativePositionBucket(
  rel: number,
  bidirectional = true,
  numBuckets = 32,
  maxDistance = 128,
): number {
  let bucket = 0;
  let nb = numBuckets;
  let n: number;
  if (bidirectional) {
    nb = Math.floor(nb / 2);
    if (rel > 0) bucket += nb;
    n = Math.abs(rel);
  } else {
    n = -Math.min(rel, 0);
  }
  const maxExact = Math.floor(nb / 2);
  if (n < maxExact) return bucket + n;
  const f = Math.fround;
  const ratio = f(f(n) / maxExact);
  const scaled = f(f(f(Math.log(ratio)) / f(Math.log(maxDistance / maxExact))) * (nb - maxExact));
  return bucket + Math.min(maxExact + Math.trunc(scaled), nb - 1);
}

/** Bucket ids for every (query i, key j) pair: int64 [qLen, kLen]. */
export function relativePositionBuckets(qLen: number, kLen: number, cfg: T5Config): NDArray {
  const out = new BigInt64Array(qLen * kLen);
  for (let i = 0; i < qLen; i++) {
    for (let j = 0; j < kLen; j++) {
      out[i * kLen + j] = BigInt(
        relativePositionBucket(
          j - i,
          true,
          cfg.relativeAttentionNumBuckets,
          cfg.relativeAttentionMaxDistance,
        ),
      );
    }
  }
  return new NDArray('int64', [qLen, kLen], out);
}

// ---------------------------------------------------------------- modules

function activate(x: Tensor, act: T5Activation): Tensor {
  switch (act) {
    case 'relu':
      return F.relu(x);
    case 'gelu':
      return F.gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return F.geluTanh(x);
    case 'silu':
      return F.silu(x);
  }
}

/** `T5Attention` (encoder self-attention): no biases, no 1/√d scaling. */
export class T5Attention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  /** Only block 0 owns the relative-position table; the bias it yields is shared by all layers. */
  readonly relativeAttentionBias: Embedding | undefined;

  constructor(
    prefix: string,
    readonly cfg: T5Config,
    hasRelativeBias: boolean,
  ) {
    super(prefix);
    const inner = cfg.numHeads * cfg.dKv;
    this.q = this.child(new Linear(`${prefix}.q`, cfg.dModel, inner, { bias: false }));
    this.k = this.child(new Linear(`${prefix}.k`, cfg.dModel, inner, { bias: false }));
    this.v = this.child(new Linear(`${prefix}.v`, cfg.dModel, inner, { bias: false }));
    this.o = this.child(new Linear(`${prefix}.o`, inner, cfg.dModel, { bias: false }));
    this.relativeAttentionBias = hasRelativeBias
      ? this.child(
          new Embedding(`${prefix}.relative_attention_bias`, cfg.relativeAttentionNumBuckets, cfg.numHeads),
        )
      : undefined;
  }

  /** `positionBias`: [B|1, H, L, L], relative-position bias plus the padding mask. */
  forward(x: Tensor, positionBias: Tensor): Tensor {
    return this.scoped(x, () => {
      const a = F.attention(this.q.forward(x), this.k.forward(x), this.v.forward(x), {
        numHeads: this.cfg.numHeads,
        scale: 1,
        bias: positionBias,
      });
      return this.o.forward(a);
    });
  }
}

/** `T5DenseActDense` (wi, wo) or `T5DenseGatedActDense` (wi_0, wi_1, wo). */
export class T5DenseFF extends Module {
  readonly wi: Linear | undefined;
  readonly wi0: Linear | undefined;
  readonly wi1: Linear | undefined;
  readonly wo: Linear;

  constructor(
    prefix: string,
    readonly cfg: T5Config,
  ) {
    super(prefix);
    const { dModel, dFf } = cfg;
    if (cfg.isGatedAct) {
      this.wi0 = this.child(new Linear(`${prefix}.wi_0`, dModel, dFf, { bias: false }));
      this.wi1 = this.child(new Linear(`${prefix}.wi_1`, dModel, dFf, { bias: false }));
    } else {
      this.wi = this.child(new Linear(`${prefix}.wi`, dModel, dFf, { bias: false }));
    }
    this.wo = this.child(new Linear(`${prefix}.wo`, dFf, dModel, { bias: false }));
  }

  forward(x: Tensor): Tensor {
    return this.scoped(x, () => {
      const act = this.cfg.denseActFn;
      const h = this.wi
        ? activate(this.wi.forward(x), act)
        : F.mul(activate(this.wi0!.forward(x), act), this.wi1!.forward(x));
      return this.wo.forward(h);
    });
  }
}

/** `T5Block` of the encoder: pre-norm self-attention and pre-norm feed-forward, each residual. */
export class T5Block extends Module {
  readonly attnNorm: RMSNorm;
  readonly attn: T5Attention;
  readonly ffNorm: RMSNorm;
  readonly ff: T5DenseFF;

  constructor(prefix: string, cfg: T5Config, hasRelativeBias: boolean) {
    super(prefix);
    this.attnNorm = this.child(new RMSNorm(`${prefix}.layer.0.layer_norm`, cfg.dModel, cfg.layerNormEpsilon));
    this.attn = this.child(new T5Attention(`${prefix}.layer.0.SelfAttention`, cfg, hasRelativeBias));
    this.ffNorm = this.child(new RMSNorm(`${prefix}.layer.1.layer_norm`, cfg.dModel, cfg.layerNormEpsilon));
    this.ff = this.child(new T5DenseFF(`${prefix}.layer.1.DenseReluDense`, cfg));
  }

  forward(x: Tensor, positionBias: Tensor): Tensor {
    const h = F.add(x, this.attn.forward(this.attnNorm.forward(x), positionBias));
    return F.add(h, this.ff.forward(this.ffNorm.forward(h)));
  }
}

/** (1 − mask)·float32_min as [B, 1, 1, L], ready to add to a [1, H, L, L] bias. */
export function additiveMask(attentionMask: Tensor): Tensor {
  const [b, l] = attentionMask.shape as [number, number];
  const m = F.cast(attentionMask, 'float32');
  return F.reshape(F.mul(F.sub(1, m), FLOAT32_MIN), [b, 1, 1, l]);
}

/**
 * transformers `T5EncoderModel`. Parameter names are transformers' state-dict keys: `shared.weight`,
 * `encoder.block.{i}.layer.{0,1}...`, `encoder.final_layer_norm.weight`.
 */
export class T5Encoder extends Module {
  /** Checkpoints may store the tied embedding under its encoder name only. */
  static readonly ALIASES: Readonly<Record<string, string>> = {
    'shared.weight': 'encoder.embed_tokens.weight',
  };

  readonly config: T5Config;
  readonly shared: Embedding;
  readonly blocks: T5Block[] = [];
  readonly finalLayerNorm: RMSNorm;

  /** `config`: a parsed T5Config or a raw config.json object. */
  constructor(config: T5Config | Record<string, unknown>) {
    super('');
    const cfg = 'dModel' in config ? (config as T5Config) : parseT5Config(config);
    this.config = cfg;
    this.shared = this.child(new Embedding('shared', cfg.vocabSize, cfg.dModel));
    for (let i = 0; i < cfg.numLayers; i++) {
      this.blocks.push(this.child(new T5Block(`encoder.block.${i}`, cfg, i === 0)));
    }
    this.finalLayerNorm = this.child(
      new RMSNorm('encoder.final_layer_norm', cfg.dModel, cfg.layerNormEpsilon),
    );
  }

  /**
   * The bias every layer adds to its attention scores: relative-position bias [1, H, L, L]
   * (a Gather from block 0's table, so it stays differentiable) plus the padding mask.
   */
  positionBias(trace: Trace, seqLen: number, attentionMask?: Tensor): Tensor {
    const table = this.blocks[0]!.attn.relativeAttentionBias!;
    return trace.withScope(table.prefix, () => {
      const buckets = trace.constant(relativePositionBuckets(seqLen, seqLen, this.config));
      const bias = F.unsqueeze(F.permute(F.gather(trace.param(table.weight), buckets), [2, 0, 1]), 0);
      return attentionMask ? F.add(bias, additiveMask(attentionMask)) : bias;
    });
  }

  /** `last_hidden_state` [B, L, d_model] from `inputIds` int64 [B, L] and `attentionMask` int64 [B, L]. */
  forward(inputIds: Tensor, attentionMask?: Tensor): Tensor {
    if (inputIds.rank !== 2) {
      throw new ImagenError('SHAPE_MISMATCH', `T5Encoder: input_ids must be [B, L], got [${inputIds.shape}]`);
    }
    if (attentionMask?.shape.some((d, i) => d !== inputIds.shape[i])) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `T5Encoder: attention_mask [${attentionMask.shape}] must match input_ids [${inputIds.shape}]`,
      );
    }
    const bias = this.positionBias(inputIds.trace, inputIds.shape[1]!, attentionMask);
    let x = this.shared.forward(inputIds);
    for (const block of this.blocks) x = block.forward(x, bias);
    return this.finalLayerNorm.forward(x);
  }
}

// ---------------------------------------------------------------- runnable encoders

/** Anything that turns token ids into T5 hidden states: the in-memory model or the streaming one. */
export interface T5TextEncoder {
  readonly config: T5Config;
  /** `last_hidden_state` float32 [B, L, d_model] for int64 `inputIds` / `attentionMask` [B, L]. */
  encode(inputIds: NDArray, attentionMask: NDArray): Promise<NDArray>;
  release(): Promise<void>;
}

/** Checks ids and mask before they reach ONNX Runtime, whose Gather error names no token. */
export function checkEncoderInputs(cfg: T5Config, inputIds: NDArray, attentionMask: NDArray): void {
  if (inputIds.dtype !== 'int64' || attentionMask.dtype !== 'int64') {
    throw new ImagenError(
      'DTYPE_MISMATCH',
      `T5 encoder: input_ids and attention_mask must be int64, got ${inputIds.dtype} and ${attentionMask.dtype}`,
    );
  }
  if (inputIds.shape.length !== 2 || inputIds.shape[1] === 0 || inputIds.shape[0] === 0) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `T5 encoder: input_ids must be a non-empty [B, L], got [${inputIds.shape}]`,
    );
  }
  if (attentionMask.shape.length !== 2 || attentionMask.shape.some((d, i) => d !== inputIds.shape[i])) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `T5 encoder: attention_mask [${attentionMask.shape}] must match input_ids [${inputIds.shape}]`,
    );
  }
  const ids = inputIds.data as BigInt64Array;
  const vocab = BigInt(cfg.vocabSize);
  for (let i = 0; i < ids.length; i++) {
    if (ids[i]! < 0n || ids[i]! >= vocab) {
      throw new ImagenError(
        'BAD_INPUT',
        `T5 encoder: token id ${ids[i]} at position ${i} is outside the embedding (vocab_size ${cfg.vocabSize})`,
      );
    }
  }
  for (const m of attentionMask.data as BigInt64Array) {
    if (m !== 0n && m !== 1n)
      throw new ImagenError('BAD_INPUT', `T5 encoder: attention_mask values must be 0 or 1, got ${m}`);
  }
}

/** A T5Encoder whose weights live in one ONNX session (one session per input shape). */
export class InMemoryT5Encoder implements T5TextEncoder {
  private readonly fn: CompiledFunction;

  constructor(
    readonly model: T5Encoder,
    rt: Runtime,
    options: { decompose?: boolean } = {},
  ) {
    this.fn = rt.compile((i) => ({ last_hidden_state: model.forward(i.input_ids!, i.attention_mask) }), {
      name: 't5-encoder',
      decompose: options.decompose ?? false,
    });
  }

  get config(): T5Config {
    return this.model.config;
  }

  async encode(inputIds: NDArray, attentionMask: NDArray): Promise<NDArray> {
    checkEncoderInputs(this.config, inputIds, attentionMask);
    const out = await this.fn.run({ input_ids: inputIds, attention_mask: attentionMask });
    return out.last_hidden_state!;
  }

  release(): Promise<void> {
    return this.fn.release();
  }
}

// ---------------------------------------------------------------- prompts → embeddings

export interface EncodePromptsOptions {
  /** Token length, default 77 (the IF pipeline's). */
  maxLength?: number;
  /** IF caption cleaning (default true, as the pipelines' `__call__`); false = lower + strip only. */
  cleanCaption?: boolean;
  /**
   * Also encode a negative prompt (`""` = the unconditional embedding, ids `</s>` then padding).
   * A string is used for every prompt; an array must have one entry per prompt.
   */
  negativePrompt?: string | readonly string[];
}

export interface TruncationNote {
  /** Row within `prompts` (or within the negative prompts when `negative`). */
  index: number;
  negative: boolean;
  /** Tokens (pieces) cut from the end to fit `maxLength` with `</s>`. */
  droppedTokens: number;
}

export interface PromptEmbeddings {
  /** float32 [B, L, d_model]: last_hidden_state at every position, padding included (as IF uses it). */
  promptEmbeds: NDArray;
  /** int64 [B, L] */
  attentionMask: NDArray;
  negativePromptEmbeds?: NDArray;
  negativeAttentionMask?: NDArray;
  /** The texts after preprocessing, as tokenised. */
  texts: string[];
  negativeTexts?: string[];
  truncated: TruncationNote[];
}

function rows(a: NDArray, start: number, count: number): NDArray {
  const per = a.shape.slice(1).reduce((x, y) => x * y, 1);
  const data = a.data.slice(start * per, (start + count) * per);
  return new NDArray(a.dtype, [count, ...a.shape.slice(1)], data);
}

/**
 * diffusers `IFPipeline.encode_prompt` without the torch plumbing: caption preprocessing, T5
 * tokenisation (max_length padding, truncation), one encoder call for prompts and negative
 * prompts together (a streaming encoder then reads its weights once), split back.
 */
export async function encodePrompts(
  encoder: T5TextEncoder,
  tokenizer: TextTokenizer,
  prompts: string | readonly string[],
  options: EncodePromptsOptions = {},
): Promise<PromptEmbeddings> {
  const list = typeof prompts === 'string' ? [prompts] : [...prompts];
  if (list.length === 0) throw new ImagenError('BAD_INPUT', 'encodePrompts: no prompts given');
  const maxLength = options.maxLength ?? 77;
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new ImagenError('BAD_INPUT', `max length must be a positive integer, got ${maxLength}`);
  }
  if (tokenizer.vocabSize > encoder.config.vocabSize) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `the tokenizer has ${tokenizer.vocabSize} ids but the T5 encoder's embedding has only ${encoder.config.vocabSize} rows ` +
        '(vocab_size): they do not belong together',
    );
  }
  const clean = options.cleanCaption ?? true;
  let negatives: string[] | undefined;
  if (options.negativePrompt !== undefined) {
    const n = options.negativePrompt;
    negatives = typeof n === 'string' ? list.map(() => n) : [...n];
    if (negatives.length !== list.length) {
      throw new ImagenError(
        'BAD_INPUT',
        `${negatives.length} negative prompts for ${list.length} prompts; give one or one per prompt`,
      );
    }
  }
  const texts = preprocessPrompts(list, clean);
  const negTexts = negatives && preprocessPrompts(negatives, clean);
  const all = negTexts ? [...texts, ...negTexts] : texts;
  const enc = tokenizer.encodeBatch(all, { maxLength, padding: 'max_length', truncation: true });
  const truncated: TruncationNote[] = [];
  enc.truncated.forEach((cut, r) => {
    if (!cut) return;
    const full = tokenizer.encode(all[r]!, true).length;
    const negative = r >= texts.length;
    truncated.push({ index: negative ? r - texts.length : r, negative, droppedTokens: full - maxLength });
  });
  const hidden = await encoder.encode(enc.inputIds, enc.attentionMask);
  const b = texts.length;
  const result: PromptEmbeddings = {
    promptEmbeds: negTexts ? rows(hidden, 0, b) : hidden,
    attentionMask: negTexts ? rows(enc.attentionMask, 0, b) : enc.attentionMask,
    texts,
    truncated,
  };
  if (negTexts) {
    result.negativePromptEmbeds = rows(hidden, b, b);
    result.negativeAttentionMask = rows(enc.attentionMask, b, b);
    result.negativeTexts = negTexts;
  }
  return result;
}
