/**
 * UNet runner for checkpoints larger than one ONNX model or than RAM as float32 (IF-I-XL: 4.3 B
 * parameters, 8.6 GB fp16, 17 GB float32; IF-II-L: 1.2 B, 2.5 GB fp16 — both past protobuf's 2 GB).
 *
 * The UNet is cut into pieces that run in order: embeddings + conv_in, every resnet and every
 * attention layer of every block, conv_out. Each piece is a graph with its weights as graph INPUTS
 * (ONNX Runtime reads the Float32Arrays in place, so nothing is copied or prepacked), compiled once
 * per input shape and shared by all pieces of identical structure (same module options), like the
 * T5 streamer's template block. Before a piece runs, its tensors are read from the checkpoint in
 * their storage dtype and widened to float32 into one reused arena; the next piece's bytes are read
 * while the current one runs. Activations and skip connections travel between pieces as NDArrays
 * (a few MB to ~100 MB each). At most one piece is held as float32 (IF-I-XL's largest, the first
 * resnet of up block 0, is 246 M parameters = 0.98 GB) plus the raw bytes of the next.
 *
 * Per-layer rather than per-block pieces: IF-I-XL's up block 0 alone is 1.05 B parameters (4.2 GB
 * as float32), which would dominate peak memory for no speed gain (the pieces are big GEMMs/convs;
 * per-piece overhead is milliseconds).
 *
 * Core module: the checkpoint is any `CheckpointReader` (files on Node, range requests elsewhere).
 */
import { f16BitsToF32 } from '../../engine/dtype.js';
import { ImagenError } from '../../engine/errors.js';
import type { Tensor } from '../../engine/graph.js';
import { NDArray, shapeStr } from '../../engine/ndarray.js';
import * as F from '../../engine/ops/index.js';
import type { Parameter } from '../../engine/parameter.js';
import type { CompiledFunction, Runtime } from '../../engine/runtime.js';
import type { CheckpointReader } from '../../io/sharded.js';
import type { Module } from '../../nn/index.js';
import type { UNetCall, UNetLike } from '../../pipelines/unet_runner.js';
import type { AddedKVAttention } from './attention.js';
import { textWidth } from './config.js';
import { activation, timestepEmbedding } from './embeddings.js';
import type { ResnetBlock2D } from './resnet.js';
import type { UNet2DConditionModel } from './unet.js';

export interface StreamingUNetOptions {
  /** Read piece i+1 from the checkpoint while piece i runs (default true; costs one piece of raw bytes). */
  prefetch?: boolean;
  /** Close the checkpoint in `release()` (default true; always true when given an opener). */
  ownsCheckpoint?: boolean;
  /**
   * Progress: called after every piece with its name, index, count and milliseconds, split into
   * waiting for its bytes, widening them, and running the graph (the first run of each graph
   * includes tracing it and creating its session).
   */
  onPiece?: (name: string, index: number, count: number, ms: number, split: PieceTiming) => void;
  /** Intra-op threads for the piece sessions. */
  threads?: number;
  /**
   * Where fp16 weights become float32 (default 'graph'): fed to ONNX Runtime as fp16 graph inputs
   * and cast by a Cast node (multi-threaded, about 0.3 ms per million values, and half the JS
   * memory), or 'js': widened in JS into a float32 arena through a 64 K-entry table. Both are exact.
   * bf16 is always widened in JS (ONNX Runtime has no bf16 tensors).
   */
  widen?: 'graph' | 'js';
}

export interface PieceTiming {
  readMs: number;
  widenMs: number;
  runMs: number;
}

/** What one piece does with the running state (hidden states, skips, time embedding, text context). */
type PieceKind = 'embed' | 'resnet' | 'attn' | 'out';

/** One traced structure, shared by all pieces with the same module options. */
interface Template {
  /** The parameters the graph reads: those of the first piece with this structure. */
  slots: Parameter[];
  make: () => CompiledFunction;
  /** One compiled function per weight-dtype pattern (fp16 inputs vs float32 inputs change the graph). */
  byDtypes: Map<string, CompiledFunction>;
}

interface Piece {
  /** State-dict prefix of the piece, e.g. `up_blocks.0.resnets.2` (error messages, progress). */
  name: string;
  kind: PieceKind;
  /** This piece's parameters; names are the checkpoint keys. */
  params: Parameter[];
  template: Template;
  /** Up-block resnets take the most recent skip connection (concatenated on channels in the graph). */
  popSkip: boolean;
  /** Down-block layers whose output is a skip connection for the matching up block. */
  pushSkip: boolean;
  /** float32 elements of all its parameters. */
  size: number;
}

let f16Table: Float32Array | undefined;

/** All 65,536 fp16 values as float32 (256 KB): widening is then one table load per element. */
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** Widen 16-bit / float64 storage into `out` (same length); float32 storage is returned as is. */
function widenInto(raw: NDArray, out: Float32Array): Float32Array {
  if (raw.dtype === 'float32') return raw.data as Float32Array;
  if (raw.dtype === 'float16') {
    const src = raw.data as Uint16Array;
    const lut = f16Lut();
    for (let i = 0; i < src.length; i++) out[i] = lut[src[i]!]!;
  } else if (raw.dtype === 'bfloat16') {
    const src = raw.data as Uint16Array;
    const o32 = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < src.length; i++) o32[i] = src[i]! << 16;
  } else {
    const src = raw.data as ArrayLike<number>;
    for (let i = 0; i < src.length; i++) out[i] = src[i]!;
  }
  return out;
}

const FLOAT_DTYPES = ['float32', 'float16', 'bfloat16', 'float64'];

/**
 * Check every UNet tensor's presence, shape and dtype in the checkpoint from its header only, and
 * that it holds nothing else (as the strict `loadStateDict` does: a half-matching checkpoint is a
 * different model). Throws WEIGHTS_MISMATCH listing the problems.
 */
export function checkUNetCheckpoint(unet: UNet2DConditionModel, reader: CheckpointReader): void {
  const problems: string[] = [];
  const expected = new Set<string>();
  for (const p of unet.parameters()) {
    expected.add(p.name);
    if (!reader.has(p.name)) {
      problems.push(`missing ${p.name}`);
      continue;
    }
    const info = reader.info(p.name);
    if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
      problems.push(`${p.name}: checkpoint ${shapeStr(info.shape)} vs model ${shapeStr(p.shape)}`);
    } else if (!FLOAT_DTYPES.includes(info.dtype)) {
      problems.push(`${p.name}: dtype ${info.dtype} is not a float type`);
    }
  }
  const unexpected = reader.keys().filter((k) => !expected.has(k));
  if (unexpected.length)
    problems.push(`unexpected ${unexpected.length}: ${unexpected.slice(0, 4).join(', ')}`);
  if (problems.length) {
    const shown = problems.length > 8 ? [...problems.slice(0, 8), `… (+${problems.length - 8})`] : problems;
    throw new ImagenError('WEIGHTS_MISMATCH', `weights do not match the UNet config (${shown.join('; ')})`);
  }
}

/** Input checks of `UNet2DConditionModel.forward`, on concrete arrays (the pieces never see the whole call). */
function validateCall(unet: UNet2DConditionModel, c: UNetCall): void {
  const cfg = unet.config;
  const bad = (msg: string): never => {
    throw new ImagenError('SHAPE_MISMATCH', `UNet: ${msg}`);
  };
  if (c.sample.shape.length !== 4) bad(`sample must be [B, C, H, W], got rank ${c.sample.shape.length}`);
  const [b, ch, h, w] = c.sample.shape as [number, number, number, number];
  if (ch !== cfg.in_channels) {
    bad(
      `sample has ${ch} channels but this UNet takes ${cfg.in_channels}` +
        (cfg.in_channels === 2 * ch
          ? ' (a super-resolution UNet: it also needs the upscaled low-res image)'
          : ''),
    );
  }
  const div = 2 ** (cfg.block_out_channels.length - 1);
  if (h % div || w % div) bad(`height and width must be multiples of ${div}, got ${h}×${w}`);
  const e = c.encoderHiddenStates;
  if (e.shape.length !== 3 || e.shape[0] !== b || e.shape[2] !== textWidth(cfg)) {
    bad(`encoder_hidden_states must be [${b}, L, ${textWidth(cfg)}], got ${shapeStr(e.shape)}`);
  }
  if (cfg.class_embed_type === 'timestep' && !c.classLabels) {
    bad(
      'this UNet has class_embed_type "timestep" (a super-resolution stage): class_labels (the noise level) are required',
    );
  }
  if (cfg.class_embed_type === null && c.classLabels) {
    bad('class_labels given but this UNet has no class embedding (is this a stage-I model?)');
  }
}

function sizeOfParams(ps: readonly Parameter[]): number {
  return ps.reduce((s, p) => s + p.size, 0);
}

/**
 * A UNet that streams its weights piece by piece from a checkpoint. Implements the same `UNetLike`
 * contract as the in-memory runner, so the IF pipelines take either.
 */
export class StreamingUNetRunner implements UNetLike {
  private readonly pieces: Piece[] = [];
  private readonly fns: CompiledFunction[] = [];
  private reader: CheckpointReader | undefined;
  private opening: Promise<CheckpointReader> | undefined;
  /** One float32 arena sized for the largest piece, refilled for every piece. */
  private arena: Float32Array | undefined;
  private checked = false;
  private released = false;

  /**
   * @param unet the module tree, without weights: its parameters serve as the pieces' input slots
   *   (filled before a piece runs, cleared after), so a loaded module would lose its values.
   * @param checkpoint an open reader, or an opener called on first use (then closed by `release()`).
   */
  constructor(
    rt: Runtime,
    readonly unet: UNet2DConditionModel,
    private readonly checkpoint: CheckpointReader | (() => Promise<CheckpointReader>),
    private readonly options: StreamingUNetOptions = {},
  ) {
    if (unet.parameters().some((p) => p.value !== undefined)) {
      throw new ImagenError(
        'BAD_INPUT',
        'StreamingUNetRunner takes a UNet without loaded weights (it reads them from the checkpoint; ' +
          'loadUNet(dir, { streaming: true }) returns one)',
      );
    }
    if (typeof checkpoint !== 'function') this.reader = checkpoint;
    const session = options.threads ? { threads: options.threads } : undefined;
    const templates = new Map<string, Template>();
    const add = (
      name: string,
      kind: PieceKind,
      modules: Module[],
      key: string,
      trace: () => CompiledFunction,
      flags: { popSkip?: boolean; pushSkip?: boolean } = {},
    ) => {
      const params = modules.flatMap((m) => m.parameters());
      let t = templates.get(key);
      if (!t) {
        t = { make: trace, slots: params, byDtypes: new Map() };
        templates.set(key, t);
      }
      // Same options ⇒ same parameter list; checked so a structural key bug cannot feed wrong weights.
      if (t.slots.length !== params.length || t.slots.some((s, i) => s.size !== params[i]!.size)) {
        throw new ImagenError(
          'WEIGHTS_MISMATCH',
          `streaming UNet: piece ${name} does not match its template`,
        );
      }
      this.pieces.push({
        name,
        kind,
        params,
        template: t,
        popSkip: flags.popSkip ?? false,
        pushSkip: flags.pushSkip ?? false,
        size: sizeOfParams(params),
      });
    };
    // lowMemory: no per-session memory arena. With dozens of piece sessions each arena would keep
    // its own high-water mark of conv workspace (IF-II-L at 256²: 10 GiB RSS in total).
    const compile = (name: string, fn: Parameters<Runtime['compile']>[0]) =>
      rt.compile(fn, { params: 'input', name: `unet:${name}`, session: { ...session, lowMemory: true } });

    const u = unet;
    const cfg = u.config;
    const embedModules: Module[] = [u.convIn, u.timeEmbedding];
    if (u.classEmbedding) embedModules.push(u.classEmbedding);
    if (u.addEmbedding) embedModules.push(u.addEmbedding);
    if (u.encoderHidProj) embedModules.push(u.encoderHidProj);
    add('embeddings', 'embed', embedModules, 'embed', () =>
      compile('embeddings', (i) =>
        this.embeddings(i.sample!, i.timestep!, i.encoder_hidden_states!, i.class_labels),
      ),
    );

    const resnet = (m: ResnetBlock2D, flags: { popSkip?: boolean; pushSkip?: boolean }) =>
      add(
        m.prefix,
        'resnet',
        [m],
        `resnet:${JSON.stringify(m.o)}:${flags.popSkip ?? false}`,
        () =>
          compile(m.prefix, (i) => ({
            h: m.forward(flags.popSkip ? F.concat([i.x!, i.skip!], 1) : i.x!, i.temb!),
          })),
        flags,
      );
    const attention = (m: AddedKVAttention, flags: { pushSkip?: boolean }) =>
      add(
        m.prefix,
        'attn',
        [m],
        `attn:${JSON.stringify(m.o)}`,
        () => compile(m.prefix, (i) => ({ h: m.forward(i.x!, i.ctx!) })),
        flags,
      );

    for (const blk of u.downBlocks) {
      blk.resnets.forEach((r, j) => {
        const a = blk.attentions[j];
        resnet(r, { pushSkip: !a });
        if (a) attention(a, { pushSkip: true });
      });
      if (blk.downsampler) resnet(blk.downsampler, { pushSkip: true });
    }
    resnet(u.midBlock.resnets[0]!, {});
    attention(u.midBlock.attention, {});
    resnet(u.midBlock.resnets[1]!, {});
    for (const blk of u.upBlocks) {
      blk.resnets.forEach((r, j) => {
        resnet(r, { popSkip: true });
        const a = blk.attentions[j];
        if (a) attention(a, {});
      });
      if (blk.upsampler) resnet(blk.upsampler, {});
    }
    add('conv_out', 'out', [u.convNormOut, u.convOut], 'out', () =>
      compile('conv_out', (i) => ({
        output: u.convOut.forward(activation(cfg.act_fn, u.convNormOut.forward(i.x!))),
      })),
    );
    // Every parameter must belong to exactly one piece, or the streamed UNet is not the UNet.
    const covered = this.pieces.reduce((s, p) => s + p.params.length, 0);
    if (covered !== unet.parameters().length) {
      throw new ImagenError(
        'WEIGHTS_MISMATCH',
        `streaming UNet: pieces cover ${covered} of ${unet.parameters().length} parameters`,
      );
    }
  }

  /** The head of `UNet2DConditionModel.forward`: time/class/text embeddings, text projection, conv_in. */
  private embeddings(
    sample: Tensor,
    timestep: Tensor,
    enc: Tensor,
    classLabels?: Tensor,
  ): Record<string, Tensor> {
    const u = this.unet;
    const cfg = u.config;
    const b = sample.shape[0]!;
    const boc0 = cfg.block_out_channels[0]!;
    const t = F.expand(F.reshape(timestep, [-1]), [b]);
    let emb = u.timeEmbedding.forward(timestepEmbedding(t, boc0, cfg.flip_sin_to_cos, cfg.freq_shift));
    if (u.classEmbedding && classLabels) {
      const cl = F.expand(F.reshape(classLabels, [-1]), [b]);
      emb = F.add(
        emb,
        u.classEmbedding.forward(timestepEmbedding(cl, boc0, cfg.flip_sin_to_cos, cfg.freq_shift)),
      );
    }
    if (u.addEmbedding) emb = F.add(emb, u.addEmbedding.forward(enc));
    if (cfg.time_embedding_act_fn) emb = activation(cfg.time_embedding_act_fn, emb);
    const ctx = u.encoderHidProj ? u.encoderHidProj.forward(enc) : enc;
    return { h: u.convIn.forward(sample), temb: emb, ctx };
  }

  /** Number of pieces a call runs (embeddings, every resnet and attention, conv_out). */
  get pieceCount(): number {
    return this.pieces.length;
  }

  /** Distinct graphs compiled so far (pieces of identical structure share one). */
  get graphCount(): number {
    return this.fns.length;
  }

  /** float32 elements of the largest piece: the arena every piece is widened into. */
  get largestPieceSize(): number {
    return Math.max(...this.pieces.map((p) => p.size));
  }

  private async open(): Promise<CheckpointReader> {
    if (this.reader) {
      if (!this.checked) checkUNetCheckpoint(this.unet, this.reader);
      this.checked = true;
      return this.reader;
    }
    if (!this.opening) {
      const opener = this.checkpoint as () => Promise<CheckpointReader>;
      this.opening = opener().then(async (r) => {
        try {
          checkUNetCheckpoint(this.unet, r);
        } catch (e) {
          await r.close?.();
          throw e;
        }
        this.checked = true;
        this.reader = r;
        return r;
      });
      this.opening.catch(() => {
        this.opening = undefined;
      });
    }
    return this.opening;
  }

  private read(reader: CheckpointReader, piece: Piece): Promise<NDArray[]> {
    return Promise.all(piece.params.map((p) => reader.get(p.name)));
  }

  async run(c: UNetCall): Promise<NDArray> {
    if (this.released) throw new ImagenError('BAD_INPUT', 'StreamingUNetRunner: used after release()');
    validateCall(this.unet, c);
    const reader = await this.open();
    const prefetch = this.options.prefetch ?? true;
    const n = this.pieces.length;
    const state: { x?: NDArray; temb?: NDArray; ctx?: NDArray } = {};
    const skips: NDArray[] = [];
    let next: Promise<NDArray[]> | undefined = this.read(reader, this.pieces[0]!);
    try {
      for (let i = 0; i < n; i++) {
        const piece = this.pieces[i]!;
        const t0 = performance.now();
        let raw: (NDArray | undefined)[] | undefined = await next!;
        next = prefetch && i + 1 < n ? this.read(reader, this.pieces[i + 1]!) : undefined;
        // Awaited on the next turn; this keeps a failure from being reported as unhandled meanwhile.
        next?.catch(() => {});
        // Starting the next read (allocating its buffers) counts as reading, not widening.
        const t1 = performance.now();
        let at = 0;
        const { slots } = piece.template;
        const inGraph = (this.options.widen ?? 'graph') === 'graph';
        for (let k = 0; k < slots.length; k++) {
          const r = raw[k]!;
          if (inGraph && r.dtype === 'float16') {
            // Zero-copy: the graph input is fp16 and its Cast node widens it (Trace.param adds it).
            slots[k]!.set(r);
          } else {
            // Allocated on first need only: with fp16 weights cast in the graph it is never used.
            this.arena ??= new Float32Array(this.largestPieceSize);
            const dst = this.arena.subarray(at, at + r.size);
            slots[k]!.set(new NDArray('float32', r.shape, widenInto(r, dst)));
            at += r.size;
          }
          raw[k] = undefined;
        }
        raw = undefined;
        const t2 = performance.now();
        let out: Record<string, NDArray>;
        try {
          out = await this.fnFor(piece.template).run(this.feeds(piece, c, state, skips));
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          throw new ImagenError('RUNTIME_FAILED', `streaming UNet piece ${piece.name}: ${msg}`, { cause: e });
        } finally {
          for (const p of slots) p.value = undefined;
        }
        if (piece.kind === 'embed') {
          state.temb = out.temb;
          state.ctx = out.ctx;
          skips.push(out.h!);
        }
        // Graph outputs are `h` (an input cannot share a name with an output), `output` at the end.
        state.x = out.h ?? out.output;
        if (piece.pushSkip) skips.push(state.x!);
        if (!prefetch && i + 1 < n) next = this.read(reader, this.pieces[i + 1]!);
        const t3 = performance.now();
        this.options.onPiece?.(piece.name, i, n, t3 - t0, {
          readMs: t1 - t0,
          widenMs: t2 - t1,
          runMs: t3 - t2,
        });
      }
    } finally {
      // A failed run must not leave a read in flight on a checkpoint that may be closed next.
      await next?.catch(() => {});
    }
    return state.x!;
  }

  /** The template's graph for the dtypes now in its slots (traced on first use with these values). */
  private fnFor(t: Template): CompiledFunction {
    const key = t.slots.map((p) => p.value!.dtype).join(',');
    let fn = t.byDtypes.get(key);
    if (!fn) {
      fn = t.make();
      t.byDtypes.set(key, fn);
      this.fns.push(fn);
    }
    return fn;
  }

  private feeds(
    piece: Piece,
    c: UNetCall,
    state: { x?: NDArray; temb?: NDArray; ctx?: NDArray },
    skips: NDArray[],
  ): Record<string, NDArray> {
    switch (piece.kind) {
      case 'embed': {
        const f: Record<string, NDArray> = {
          sample: c.sample,
          timestep: NDArray.i64([1], [c.timestep]),
          encoder_hidden_states: c.encoderHiddenStates,
        };
        if (c.classLabels) f.class_labels = c.classLabels;
        return f;
      }
      case 'resnet':
        return piece.popSkip
          ? { x: state.x!, skip: skips.pop()!, temb: state.temb! }
          : { x: state.x!, temb: state.temb! };
      case 'attn':
        return { x: state.x!, ctx: state.ctx! };
      case 'out':
        return { x: state.x! };
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.arena = undefined;
    for (const fn of this.fns) await fn.release();
    const owns = typeof this.checkpoint === 'function' || (this.options.ownsCheckpoint ?? true);
    if (owns) await this.reader?.close?.();
  }
}
