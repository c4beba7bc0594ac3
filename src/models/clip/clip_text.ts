/**
 * transformers `CLIPTextModel` (the text encoder of Stable Diffusion and of the ×4 upscaler) with
 * transformers' parameter names (`text_model.embeddings.token_embedding.weight`, …), plus a
 * runnable in-memory wrapper and `encodeClipPrompts`, the SD pipelines' prompt → embeddings step.
 *
 * Core module: no node imports. Loading from a folder is `src/platform/node/clip_loader.ts`.
 */
import { ImagenError } from '../../engine/errors.js';
import type { Tensor, Trace } from '../../engine/graph.js';
import { NDArray } from '../../engine/ndarray.js';
import * as F from '../../engine/ops/index.js';
import type { CompiledFunction, Runtime } from '../../engine/runtime.js';
import { Embedding, LayerNorm, Linear, Module } from '../../nn/index.js';
import type { TextTokenizer } from '../../text/tokenizer.js';
import { type ClipActivation, type ClipTextConfig, parseClipTextConfig } from './config.js';

/** torch.finfo(torch.float32).min: transformers' additive value for masked keys. */
const FLOAT32_MIN = -3.4028234663852886e38;

function activate(x: Tensor, act: ClipActivation): Tensor {
  switch (act) {
    case 'gelu':
      return F.gelu(x);
    case 'quick_gelu':
      // transformers QuickGELUActivation: x·σ(1.702·x), OpenAI CLIP's cheap GELU approximation.
      return F.mul(x, F.sigmoid(F.mul(x, 1.702)));
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return F.geluTanh(x);
  }
}

/** `CLIPAttention`: q/k/v/out projections with biases, scale 1/√head_dim. */
export class ClipAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;

  constructor(
    prefix: string,
    readonly cfg: ClipTextConfig,
  ) {
    super(prefix);
    const d = cfg.hidden_size;
    this.qProj = this.child(new Linear(`${prefix}.q_proj`, d, d));
    this.kProj = this.child(new Linear(`${prefix}.k_proj`, d, d));
    this.vProj = this.child(new Linear(`${prefix}.v_proj`, d, d));
    this.outProj = this.child(new Linear(`${prefix}.out_proj`, d, d));
  }

  /** `bias`: [B|1, 1, L, L] causal (+ padding) mask, additive. */
  forward(x: Tensor, bias: Tensor): Tensor {
    return this.scoped(x, () => {
      const a = F.attention(this.qProj.forward(x), this.kProj.forward(x), this.vProj.forward(x), {
        numHeads: this.cfg.num_attention_heads,
        bias,
      });
      return this.outProj.forward(a);
    });
  }
}

/** `CLIPEncoderLayer`: pre-LN self-attention and pre-LN MLP (fc1 → act → fc2), each residual. */
export class ClipEncoderLayer extends Module {
  readonly layerNorm1: LayerNorm;
  readonly selfAttn: ClipAttention;
  readonly layerNorm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(
    prefix: string,
    readonly cfg: ClipTextConfig,
  ) {
    super(prefix);
    const { hidden_size: d, intermediate_size: ff, layer_norm_eps: eps } = cfg;
    this.layerNorm1 = this.child(new LayerNorm(`${prefix}.layer_norm1`, d, eps));
    this.selfAttn = this.child(new ClipAttention(`${prefix}.self_attn`, cfg));
    this.layerNorm2 = this.child(new LayerNorm(`${prefix}.layer_norm2`, d, eps));
    this.fc1 = this.child(new Linear(`${prefix}.mlp.fc1`, d, ff));
    this.fc2 = this.child(new Linear(`${prefix}.mlp.fc2`, ff, d));
  }

  forward(x: Tensor, bias: Tensor): Tensor {
    const h = F.add(x, this.selfAttn.forward(this.layerNorm1.forward(x), bias));
    const m = this.fc2.forward(activate(this.fc1.forward(this.layerNorm2.forward(h)), this.cfg.hidden_act));
    return F.add(h, m);
  }
}

export interface ClipTextOutputs {
  /** [B, L, hidden] after `final_layer_norm`. */
  lastHiddenState: Tensor;
  /** [B, hidden]: `lastHiddenState` at each row's pooling position (present when `poolIndex` was given). */
  poolerOutput?: Tensor;
}

/**
 * transformers `CLIPTextModel`. Parameter names are transformers' state-dict keys; the
 * `text_model.embeddings.position_ids` buffer some checkpoints carry is not a parameter (see
 * {@link clipCheckpointView}).
 */
export class ClipTextModel extends Module {
  readonly config: ClipTextConfig;
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;
  readonly layers: ClipEncoderLayer[] = [];
  readonly finalLayerNorm: LayerNorm;

  /** `config`: a parsed ClipTextConfig or a raw config.json object. */
  constructor(config: ClipTextConfig | Record<string, unknown>) {
    super('');
    const cfg = parseClipTextConfig(config);
    this.config = cfg;
    const d = cfg.hidden_size;
    this.tokenEmbedding = this.child(
      new Embedding('text_model.embeddings.token_embedding', cfg.vocab_size, d),
    );
    this.positionEmbedding = this.child(
      new Embedding('text_model.embeddings.position_embedding', cfg.max_position_embeddings, d),
    );
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      this.layers.push(this.child(new ClipEncoderLayer(`text_model.encoder.layers.${i}`, cfg)));
    }
    this.finalLayerNorm = this.child(new LayerNorm('text_model.final_layer_norm', d, cfg.layer_norm_eps));
  }

  /**
   * The bias every layer adds to its scores: causal (key after query → finfo.min) plus, with a
   * padding mask, finfo.min on padded keys. transformers adds the two masks, so a key masked
   * twice gets −inf there; clamping to finfo.min gives the same softmax (exp underflows to 0
   * either way) and keeps −inf out of ORT's fused attention kernel.
   */
  attentionBias(trace: Trace, seqLen: number, attentionMask?: Tensor): Tensor {
    const causal = new Float32Array(seqLen * seqLen);
    for (let i = 0; i < seqLen; i++)
      for (let j = i + 1; j < seqLen; j++) causal[i * seqLen + j] = FLOAT32_MIN;
    const bias = trace.constant(NDArray.f32([1, 1, seqLen, seqLen], causal));
    if (!attentionMask) return bias;
    const [b, l] = attentionMask.shape as [number, number];
    const pad = F.reshape(F.mul(F.sub(1, F.cast(attentionMask, 'float32')), FLOAT32_MIN), [b, 1, 1, l]);
    return F.maximum(F.add(bias, pad), FLOAT32_MIN);
  }

  /**
   * `inputIds` int64 [B, L]; `attentionMask` optional int64 [B, L] (1 keep, 0 pad); `poolIndex`
   * optional int64 [B] of flat positions `b·L + pos` (from {@link clipPoolIndices}) for
   * `pooler_output` — computed outside the graph because it is an argmax over the ids.
   * `clipSkip` k > 0 (diffusers `clip_skip`) stops k layers early; both outputs then come from
   * that layer through `final_layer_norm`.
   */
  forward(
    inputIds: Tensor,
    attentionMask?: Tensor,
    poolIndex?: Tensor,
    options: { clipSkip?: number } = {},
  ): ClipTextOutputs {
    const skip = options.clipSkip ?? 0;
    if (!Number.isInteger(skip) || skip < 0 || skip >= this.layers.length) {
      throw new ImagenError(
        'BAD_INPUT',
        `CLIPTextModel: clipSkip must be an integer in [0, ${this.layers.length - 1}], got ${skip}`,
      );
    }
    if (inputIds.rank !== 2) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `CLIPTextModel: input_ids must be [B, L], got [${inputIds.shape}]`,
      );
    }
    const [b, l] = inputIds.shape as [number, number];
    if (l > this.config.max_position_embeddings) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `CLIPTextModel: ${l} tokens exceed max_position_embeddings ${this.config.max_position_embeddings}`,
      );
    }
    if (attentionMask?.shape.some((d, i) => d !== inputIds.shape[i])) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `CLIPTextModel: attention_mask [${attentionMask.shape}] must match input_ids [${inputIds.shape}]`,
      );
    }
    const trace = inputIds.trace;
    const positions = trace.constant(
      NDArray.i64(
        [1, l],
        Array.from({ length: l }, (_, i) => i),
      ),
    );
    let x = F.add(this.tokenEmbedding.forward(inputIds), this.positionEmbedding.forward(positions));
    const bias = this.attentionBias(trace, l, attentionMask);
    // diffusers `clip_skip` k: final_layer_norm(hidden_states[-(k + 1)]), i.e. skip the last k layers.
    for (const layer of this.layers.slice(0, this.layers.length - skip)) x = layer.forward(x, bias);
    const lastHiddenState = this.finalLayerNorm.forward(x);
    if (!poolIndex) return { lastHiddenState };
    const d = this.config.hidden_size;
    return { lastHiddenState, poolerOutput: F.gather(F.reshape(lastHiddenState, [b * l, d]), poolIndex) };
  }
}

/**
 * Flat pooling positions `b·L + pos` for `pooler_output`, as transformers picks them: with
 * `eos_token_id == 2` (the legacy config of every SD text encoder) the position of the highest id
 * (`<|endoftext|>` = 49407 is the largest id of the real vocab), otherwise the first `eos_token_id`.
 * Like torch's argmax, ties go to the first position, and a row without eos pools at position 0.
 */
export function clipPoolIndices(inputIds: NDArray, eosTokenId: number): NDArray {
  const [b, l] = inputIds.shape as [number, number];
  const ids = inputIds.toArray();
  const out: number[] = [];
  for (let r = 0; r < b; r++) {
    const row = ids.slice(r * l, (r + 1) * l);
    let pos = 0;
    if (eosTokenId === 2) {
      for (let j = 1; j < l; j++) if (row[j]! > row[pos]!) pos = j;
    } else {
      const k = row.indexOf(eosTokenId);
      pos = Math.max(k, 0); // no eos: torch argmax of all-false picks 0
    }
    out.push(r * l + pos);
  }
  return NDArray.i64([b], out);
}

interface StateSource {
  keys(): string[];
  get(name: string): Promise<NDArray>;
  info?(name: string): { shape: readonly number[] };
}

/**
 * A checkpoint reader without the `text_model.embeddings.position_ids` buffer: transformers < 4.31
 * saved it (persistent), later versions do not, and it only holds 0 … L−1, which the model builds.
 */
export function clipCheckpointView(source: StateSource): StateSource {
  const view: StateSource = {
    keys: () => source.keys().filter((k) => k !== 'text_model.embeddings.position_ids'),
    get: (k) => source.get(k),
  };
  if (source.info) view.info = (k) => source.info!(k);
  return view;
}

// ---------------------------------------------------------------- runnable encoder

export interface ClipEncodeResult {
  /** float32 [B, L, hidden] */
  lastHiddenState: NDArray;
  /** float32 [B, hidden] */
  poolerOutput: NDArray;
}

/** Checks ids (and mask) before they reach ONNX Runtime, whose Gather error names no token. */
export function checkClipInputs(cfg: ClipTextConfig, inputIds: NDArray, attentionMask?: NDArray): void {
  if (inputIds.dtype !== 'int64' || (attentionMask && attentionMask.dtype !== 'int64')) {
    throw new ImagenError('DTYPE_MISMATCH', 'CLIP text encoder: input_ids and attention_mask must be int64');
  }
  if (inputIds.shape.length !== 2 || inputIds.shape[0] === 0 || inputIds.shape[1] === 0) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `CLIP text encoder: input_ids must be a non-empty [B, L], got [${inputIds.shape}]`,
    );
  }
  if (inputIds.shape[1]! > cfg.max_position_embeddings) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `CLIP text encoder: ${inputIds.shape[1]} tokens exceed max_position_embeddings ${cfg.max_position_embeddings}`,
    );
  }
  if (
    attentionMask &&
    (attentionMask.shape.length !== 2 || attentionMask.shape.some((d, i) => d !== inputIds.shape[i]))
  ) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `CLIP text encoder: attention_mask [${attentionMask.shape}] must match input_ids [${inputIds.shape}]`,
    );
  }
  const ids = inputIds.data as BigInt64Array;
  const vocab = BigInt(cfg.vocab_size);
  for (let i = 0; i < ids.length; i++) {
    if (ids[i]! < 0n || ids[i]! >= vocab) {
      throw new ImagenError(
        'BAD_INPUT',
        `CLIP text encoder: token id ${ids[i]} at position ${i} is outside the embedding (vocab_size ${cfg.vocab_size})`,
      );
    }
  }
}

/** A ClipTextModel in one ONNX session per input shape (and per mask / no-mask call). */
export class InMemoryClipTextEncoder {
  private readonly withMask: CompiledFunction;
  private readonly noMask: CompiledFunction;

  constructor(
    readonly model: ClipTextModel,
    rt: Runtime,
    options: { decompose?: boolean; clipSkip?: number } = {},
  ) {
    const decompose = options.decompose ?? false;
    const clip = { clipSkip: options.clipSkip ?? 0 };
    const outputs = (o: ClipTextOutputs) => ({
      last_hidden_state: o.lastHiddenState,
      pooler_output: o.poolerOutput!,
    });
    this.withMask = rt.compile(
      (i) => outputs(model.forward(i.input_ids!, i.attention_mask, i.pool_index, clip)),
      {
        name: 'clip-text-encoder',
        decompose,
      },
    );
    this.noMask = rt.compile((i) => outputs(model.forward(i.input_ids!, undefined, i.pool_index, clip)), {
      name: 'clip-text-encoder',
      decompose,
    });
  }

  get config(): ClipTextConfig {
    return this.model.config;
  }

  /**
   * `last_hidden_state` and `pooler_output` for int64 `inputIds` [B, L]. Without `attentionMask`
   * only the causal mask applies — what StableDiffusionUpscalePipeline.encode_prompt does (the
   * upscaler's config has no `use_attention_mask`).
   */
  async encode(inputIds: NDArray, attentionMask?: NDArray): Promise<ClipEncodeResult> {
    checkClipInputs(this.config, inputIds, attentionMask);
    const pool_index = clipPoolIndices(inputIds, this.config.eos_token_id);
    const out = attentionMask
      ? await this.withMask.run({ input_ids: inputIds, attention_mask: attentionMask, pool_index })
      : await this.noMask.run({ input_ids: inputIds, pool_index });
    return { lastHiddenState: out.last_hidden_state!, poolerOutput: out.pooler_output! };
  }

  async release(): Promise<void> {
    await this.withMask.release();
    await this.noMask.release();
  }
}

// ---------------------------------------------------------------- prompts → embeddings

export interface ClipPromptEmbeddings {
  /** float32 [B, L, hidden] */
  promptEmbeds: NDArray;
  /** float32 [B, L, hidden], present when a negative prompt was given. */
  negativePromptEmbeds?: NDArray;
  /** int64 [B, L] token ids as encoded. */
  inputIds: NDArray;
  negativeInputIds?: NDArray;
  /** Rows (of the prompts) whose tokens were cut to fit. */
  truncated: number[];
}

function rows(a: NDArray, start: number, count: number): NDArray {
  const per = a.shape.slice(1).reduce((x, y) => x * y, 1);
  return new NDArray(a.dtype, [count, ...a.shape.slice(1)], a.data.slice(start * per, (start + count) * per));
}

/**
 * diffusers `StableDiffusionUpscalePipeline.encode_prompt` without the torch plumbing: tokenise
 * with max_length padding and truncation (77), encode without an attention mask (the encoder's
 * config has no `use_attention_mask`), and the same for the negative prompt (`""` = the
 * unconditional embedding). Prompts and negatives go through the encoder in one batch.
 */
export async function encodeClipPrompts(
  encoder: InMemoryClipTextEncoder,
  tokenizer: TextTokenizer,
  prompts: string | readonly string[],
  options: {
    negativePrompt?: string | readonly string[];
    maxLength?: number;
    useAttentionMask?: boolean;
  } = {},
): Promise<ClipPromptEmbeddings> {
  const list = typeof prompts === 'string' ? [prompts] : [...prompts];
  if (list.length === 0) throw new ImagenError('BAD_INPUT', 'encodeClipPrompts: no prompts given');
  const maxLength = options.maxLength ?? encoder.config.max_position_embeddings;
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
  const all = negatives ? [...list, ...negatives] : list;
  const enc = tokenizer.encodeBatch(all, { maxLength, padding: 'max_length', truncation: true });
  const out = await encoder.encode(enc.inputIds, options.useAttentionMask ? enc.attentionMask : undefined);
  const b = list.length;
  const truncated = enc.truncated.flatMap((cut, r) => (cut && r < b ? [r] : []));
  if (!negatives) return { promptEmbeds: out.lastHiddenState, inputIds: enc.inputIds, truncated };
  return {
    promptEmbeds: rows(out.lastHiddenState, 0, b),
    negativePromptEmbeds: rows(out.lastHiddenState, b, b),
    inputIds: rows(enc.inputIds, 0, b),
    negativeInputIds: rows(enc.inputIds, b, b),
    truncated,
  };
}
