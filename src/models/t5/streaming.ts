/**
 * T5 encoder for checkpoints larger than memory (T5 v1.1 XXL: 4.7 B parameters, 19 GB as float32).
 *
 * Weights stay on disk in their storage dtype. Each call walks the blocks in order: read one
 * block's tensors (lazily, by byte range), widen them to float32, run ONE compiled per-block graph
 * whose weights are graph inputs (ONNX Runtime reads the Float32Arrays without copying, and the
 * same session serves every block), then drop them. The embedding is gathered row by row in JS
 * from its 16-bit storage, and the position bias (relative positions + padding mask) is computed
 * once in JS and fed to every block. At most one block is held as float32, plus the raw bytes of
 * the next block being read ahead while the current one runs.
 *
 * Core module: the checkpoint is any `CheckpointReader` (files on Node, range requests elsewhere).
 */
import { f16BitsToF32 } from '../../engine/dtype.js';
import { ImagenError } from '../../engine/errors.js';
import { NDArray, shapeStr } from '../../engine/ndarray.js';
import type { CompiledFunction, Runtime } from '../../engine/runtime.js';
import type { CheckpointReader } from '../../io/sharded.js';
import { RMSNorm } from '../../nn/index.js';
import type { T5Config } from './config.js';
import {
  checkEncoderInputs,
  FLOAT32_MIN,
  relativePositionBuckets,
  T5Block,
  T5Encoder,
  type T5TextEncoder,
} from './t5_encoder.js';

export interface StreamingT5Options {
  /** Read block i+1 from disk while block i runs (default true; costs one block of raw bytes). */
  prefetch?: boolean;
  /** Close the checkpoint in `release()` (default true). */
  ownsCheckpoint?: boolean;
  /** Progress: called after every block with its index and the milliseconds it took. */
  onBlock?: (index: number, count: number, ms: number) => void;
  /** Intra-op threads for the block session. */
  threads?: number;
}

/** Name prefix of the template block's parameters (the graph inputs of the per-block session). */
const TEMPLATE = 'block';

/** Widen 16-bit / float64 storage to a fresh float32 array (float32 is passed through). */
function toFloat32(a: NDArray): NDArray {
  return a.dtype === 'float32' ? a : a.toFloat32();
}

/**
 * Widen `raw` into `dst` (reused across blocks: a fresh 771 MB allocation per XXL block costs more
 * in page faults than the conversion itself). float32 storage is passed through without a copy.
 */
function widenInto(raw: NDArray, dst: () => Float32Array): NDArray {
  if (raw.dtype === 'float32') return raw;
  const out = dst();
  if (raw.dtype === 'bfloat16') {
    const src = raw.data as Uint16Array;
    const o32 = new Uint32Array(out.buffer, out.byteOffset, out.length);
    // Two bf16 values per 32-bit load (little-endian): low half → even output, high half → odd.
    const pairs = src.length >>> 1;
    const w32 = src.byteOffset % 4 === 0 ? new Uint32Array(src.buffer, src.byteOffset, pairs) : undefined;
    if (w32) {
      for (let i = 0; i < pairs; i++) {
        const w = w32[i]!;
        o32[2 * i] = w << 16;
        o32[2 * i + 1] = w & 0xffff0000;
      }
      if (src.length & 1) o32[src.length - 1] = src[src.length - 1]! << 16;
    } else {
      for (let i = 0; i < src.length; i++) o32[i] = src[i]! << 16;
    }
  } else if (raw.dtype === 'float16') {
    const src = raw.data as Uint16Array;
    for (let i = 0; i < src.length; i++) out[i] = f16BitsToF32(src[i]!);
  } else {
    const src = raw.data as ArrayLike<number>;
    for (let i = 0; i < src.length; i++) out[i] = src[i]!;
  }
  return new NDArray('float32', raw.shape, out);
}

function embeddingKey(reader: CheckpointReader): string {
  for (const k of ['shared.weight', 'encoder.embed_tokens.weight']) if (reader.has(k)) return k;
  throw new ImagenError(
    'WEIGHTS_MISMATCH',
    'T5 checkpoint has neither shared.weight nor encoder.embed_tokens.weight (the token embedding)',
  );
}

export class StreamingT5Encoder implements T5TextEncoder {
  private readonly template: T5Block;
  private readonly blockFn: CompiledFunction;
  private readonly finalFn: CompiledFunction;
  private readonly finalNorm: RMSNorm;
  private released = false;
  /** One float32 buffer per block parameter, refilled for every block. */
  private buffers: (Float32Array | undefined)[] = [];

  private constructor(
    readonly config: T5Config,
    private readonly reader: CheckpointReader,
    /** `shared.weight` in its storage dtype (XXL bf16: 263 MB). */
    private readonly embedding: NDArray,
    /** float32 [num_buckets, num_heads] */
    private readonly relativeBias: Float32Array,
    rt: Runtime,
    private readonly options: StreamingT5Options,
    finalNormWeight: NDArray,
  ) {
    this.template = new T5Block(TEMPLATE, config, false);
    const sessionOptions = options.threads ? { threads: options.threads } : undefined;
    this.blockFn = rt.compile((i) => ({ block_out: this.template.forward(i.hidden!, i.position_bias!) }), {
      params: 'input',
      name: 't5-block',
      session: sessionOptions,
    });
    this.finalNorm = new RMSNorm('encoder.final_layer_norm', config.dModel, config.layerNormEpsilon);
    this.finalNorm.weight.set(finalNormWeight);
    this.finalFn = rt.compile((i) => ({ last_hidden_state: this.finalNorm.forward(i.hidden!) }), {
      name: 't5-final-norm',
      session: sessionOptions,
    });
  }

  /**
   * Check every encoder tensor's presence and shape against the config (headers only), then load
   * the small always-needed tensors: embedding (storage dtype), relative bias, final norm.
   */
  static async open(
    rt: Runtime,
    reader: CheckpointReader,
    config: T5Config,
    options: StreamingT5Options = {},
  ): Promise<StreamingT5Encoder> {
    const reference = new T5Encoder(config);
    const problems: string[] = [];
    const embKey = embeddingKey(reader);
    for (const p of reference.parameters()) {
      const key = p.name === 'shared.weight' ? embKey : p.name;
      if (!reader.has(key)) {
        problems.push(`missing ${key}`);
        continue;
      }
      const info = reader.info(key);
      if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
        problems.push(`${key}: checkpoint ${shapeStr(info.shape)} vs model ${shapeStr(p.shape)}`);
      } else if (!['float32', 'float16', 'bfloat16', 'float64'].includes(info.dtype)) {
        problems.push(`${key}: dtype ${info.dtype} is not a float type`);
      }
    }
    if (problems.length) {
      const shown = problems.length > 8 ? [...problems.slice(0, 8), `… (+${problems.length - 8})`] : problems;
      throw new ImagenError('WEIGHTS_MISMATCH', `weights do not match the T5 config (${shown.join('; ')})`);
    }
    const embedding = await reader.get(embKey);
    const rel = reference.blocks[0]!.attn.relativeAttentionBias!.weight.name;
    const relativeBias = toFloat32(await reader.get(rel)).data as Float32Array;
    const finalNorm = toFloat32(await reader.get(reference.finalLayerNorm.weight.name));
    return new StreamingT5Encoder(config, reader, embedding, relativeBias, rt, options, finalNorm);
  }

  /** Embedding rows of `ids` as float32 [B, L, D], decoded from 16-bit storage row by row. */
  private embed(inputIds: NDArray): Float32Array {
    const d = this.config.dModel;
    const ids = inputIds.data as BigInt64Array;
    const out = new Float32Array(ids.length * d);
    const src = this.embedding.data;
    const dtype = this.embedding.dtype;
    for (let t = 0; t < ids.length; t++) {
      const row = Number(ids[t]!) * d;
      const o = t * d;
      if (dtype === 'bfloat16') {
        const out32 = new Uint32Array(out.buffer, o * 4, d);
        const s16 = src as Uint16Array;
        for (let k = 0; k < d; k++) out32[k] = s16[row + k]! << 16;
      } else if (dtype === 'float16') {
        const s16 = src as Uint16Array;
        for (let k = 0; k < d; k++) out[o + k] = f16BitsToF32(s16[row + k]!);
      } else {
        for (let k = 0; k < d; k++) out[o + k] = Number(src[row + k]!);
      }
    }
    return out;
  }

  /**
   * bias[b, h, i, j] = relative_attention_bias[bucket(j − i), h] + (1 − mask[b, j])·float32_min,
   * rounded to float32 once, as the in-graph Add does.
   */
  private positionBias(attentionMask: NDArray): Float32Array {
    const [b, l] = attentionMask.shape as [number, number];
    const h = this.config.numHeads;
    const buckets = relativePositionBuckets(l, l, this.config).data as BigInt64Array;
    const mask = attentionMask.data as BigInt64Array;
    const out = new Float32Array(b * h * l * l);
    for (let bi = 0; bi < b; bi++) {
      for (let hi = 0; hi < h; hi++) {
        const base = (bi * h + hi) * l * l;
        for (let i = 0; i < l; i++) {
          for (let j = 0; j < l; j++) {
            const add = mask[bi * l + j] === 1n ? 0 : FLOAT32_MIN;
            out[base + i * l + j] = Math.fround(
              this.relativeBias[Number(buckets[i * l + j]!) * h + hi]! + add,
            );
          }
        }
      }
    }
    return out;
  }

  private blockKeys(i: number): [string, string][] {
    return this.template
      .parameters()
      .map((p) => [p.name, `encoder.block.${i}${p.name.slice(TEMPLATE.length)}`] as [string, string]);
  }

  private readBlock(i: number): Promise<NDArray[]> {
    return Promise.all(this.blockKeys(i).map(([, key]) => this.reader.get(key)));
  }

  async encode(inputIds: NDArray, attentionMask: NDArray): Promise<NDArray> {
    if (this.released) throw new ImagenError('BAD_INPUT', 'StreamingT5Encoder: used after release()');
    checkEncoderInputs(this.config, inputIds, attentionMask);
    const [b, l] = inputIds.shape as [number, number];
    const d = this.config.dModel;
    let hidden = new NDArray('float32', [b, l, d], this.embed(inputIds));
    const bias = new NDArray('float32', [b, this.config.numHeads, l, l], this.positionBias(attentionMask));
    const params = this.template.parameters();
    const n = this.config.numLayers;
    const prefetch = this.options.prefetch ?? true;
    let next: Promise<NDArray[]> | undefined = this.readBlock(0);
    try {
      for (let i = 0; i < n; i++) {
        const t0 = Date.now();
        let raw: NDArray[] | undefined = await next!;
        next = prefetch && i + 1 < n ? this.readBlock(i + 1) : undefined;
        // Keep the promise from being reported as unhandled while block i runs; awaited next turn.
        next?.catch(() => {});
        for (let k = 0; k < params.length; k++) {
          params[k]!.set(widenInto(raw[k]!, () => (this.buffers[k] ??= new Float32Array(params[k]!.size))));
          raw[k] = undefined as unknown as NDArray;
        }
        raw = undefined;
        try {
          hidden = (await this.blockFn.run({ hidden, position_bias: bias })).block_out!;
        } finally {
          for (const p of params) p.value = undefined;
        }
        if (!prefetch && i + 1 < n) next = this.readBlock(i + 1);
        this.options.onBlock?.(i, n, Date.now() - t0);
      }
    } finally {
      // A failed run must not leave a read in flight on a checkpoint that may be closed next.
      await next?.catch(() => {});
    }
    return (await this.finalFn.run({ hidden })).last_hidden_state!;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.buffers = [];
    await this.blockFn.release();
    await this.finalFn.release();
    if (this.options.ownsCheckpoint ?? true) await this.reader.close?.();
  }
}
