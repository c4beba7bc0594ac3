import { grad } from './autodiff.js';
import type { DType } from './dtype.js';
import { type EmittedModel, emitModel, type ParamBinding } from './emit.js';
import { ImagenError } from './errors.js';
import { type Tensor, Trace } from './graph.js';
import { type NDArray, shapeStr } from './ndarray.js';
import type { Parameter } from './parameter.js';

// ---------------------------------------------------------------- backend boundary

export interface SessionOptions {
  /** Intra-op threads; default: the backend's choice (all cores). */
  threads?: number;
  /** Keep weights memory-mapped instead of pre-packed (less RAM, slower small matmuls). */
  lowMemory?: boolean;
  /**
   * Plan all intermediates into one block ahead of the first run (ORT's memory pattern; default
   * true). Gradient graphs turn it off: their block held about 1.7× the live set (3.1 vs 1.8 GB
   * for the bench's UNet train step), where the arena alone reuses freed buffers at the same speed.
   */
  memoryPattern?: boolean;
}

/** A compiled ONNX model inside some ONNX Runtime build (node, web). */
export interface BackendSession {
  run(feeds: Record<string, NDArray>, outputNames: readonly string[]): Promise<Record<string, NDArray>>;
  release(): Promise<void>;
}

/** The only thing the core knows about ONNX Runtime; platform/ modules implement it. */
export interface Backend {
  readonly name: string;
  createSession(model: Uint8Array, options?: SessionOptions): Promise<BackendSession>;
}

// ---------------------------------------------------------------- compiled functions

export type TracedFn = (inputs: Record<string, Tensor>, trace: Trace) => Tensor | Record<string, Tensor>;

export interface CompileOptions {
  /** How parameters enter the graph (default 'initializer'). */
  params?: ParamBinding;
  /** Expand composite ops into primitives (default false: use fused kernels). */
  decompose?: boolean;
  name?: string;
  session?: SessionOptions;
}

interface Compiled {
  session: BackendSession;
  emitted: EmittedModel;
}

function signature(inputs: Record<string, NDArray>): string {
  return Object.entries(inputs)
    .map(([k, v]) => `${k}:${v.dtype}${shapeStr(v.shape)}`)
    .join(';');
}

/**
 * A traced function compiled on first use for each input signature (names, dtypes, shapes)
 * and cached: later calls with the same shapes reuse the session, never re-tracing.
 */
export class CompiledFunction {
  private readonly cache = new Map<string, Promise<Compiled>>();

  constructor(
    private readonly backend: Backend,
    private readonly fn: TracedFn,
    private readonly options: CompileOptions = {},
  ) {}

  /** Trace for these input shapes and return the ONNX model (also used by tools and tests). */
  trace(inputs: Record<string, { shape: readonly number[]; dtype: DType }>): EmittedModel {
    const trace = new Trace({ decomposeComposites: this.options.decompose ?? false });
    const tin: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(inputs)) tin[k] = trace.input(k, v.shape, v.dtype);
    const out = this.fn(tin, trace);
    const outputs = isTensorLike(out) ? { output: out } : out;
    return emitModel(outputs, { params: this.options.params ?? 'initializer', graphName: this.options.name });
  }

  private compiled(inputs: Record<string, NDArray>): Promise<Compiled> {
    const key = signature(inputs);
    let c = this.cache.get(key);
    if (!c) {
      c = (async () => {
        const emitted = this.trace(inputs);
        const session = await this.backend.createSession(emitted.model, this.options.session);
        return { session, emitted };
      })();
      this.cache.set(key, c);
      c.catch(() => this.cache.delete(key));
    }
    return c;
  }

  async run(inputs: Record<string, NDArray>): Promise<Record<string, NDArray>> {
    const { session, emitted } = await this.compiled(inputs);
    const feeds: Record<string, NDArray> = { ...inputs };
    for (const { name, param } of emitted.paramInputs) {
      if (!param.value) throw new ImagenError('WEIGHTS_MISMATCH', `parameter ${name} has no value`);
      feeds[name] = param.value;
    }
    try {
      return await session.run(feeds, emitted.outputNames);
    } catch (e) {
      const described = Object.entries(feeds)
        .slice(0, 12)
        .map(([k, v]) => `${k}: ${v.dtype}${shapeStr(v.shape)}`)
        .join(', ');
      throw new ImagenError(
        'RUNTIME_FAILED',
        `ONNX Runtime failed in ${this.options.name ?? 'graph'} (inputs ${described}): ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  get sessionCount(): number {
    return this.cache.size;
  }

  async release(): Promise<void> {
    const all = [...this.cache.values()];
    this.cache.clear();
    for (const c of all) await (await c).session.release();
  }
}

function isTensorLike(x: unknown): x is Tensor {
  return typeof x === 'object' && x !== null && 'trace' in x && 'shape' in x && 'op' in x;
}

// ---------------------------------------------------------------- gradients

export interface GradResult {
  loss: number;
  grads: Map<Parameter, Float32Array>;
  /** Extra outputs the loss function returned (besides `loss`). */
  outputs: Record<string, NDArray>;
}

/**
 * Compile `lossFn` together with its gradient w.r.t. `params` into ONE ONNX model whose
 * outputs are the loss, the gradients and any extra outputs. Parameters are graph inputs
 * (zero-copy, updated in place by the optimizer between runs); composites are decomposed
 * so the backward pass reuses forward intermediates.
 */
export class GradFunction {
  private readonly inner: CompiledFunction;

  constructor(
    backend: Backend,
    lossFn: (inputs: Record<string, Tensor>, trace: Trace) => Tensor | { loss: Tensor; [k: string]: Tensor },
    private readonly params: readonly Parameter[],
    options: Omit<CompileOptions, 'params'> = {},
  ) {
    const trainable = params.filter((p) => p.requiresGrad);
    this.inner = new CompiledFunction(
      backend,
      (inputs, trace) => {
        const out = lossFn(inputs, trace);
        const { loss, ...rest } = isTensorLike(out) ? { loss: out } : out;
        if (loss.size !== 1) {
          throw new ImagenError('SHAPE_MISMATCH', `loss must be a scalar, got ${shapeStr(loss.shape)}`);
        }
        const leaves = trainable.map((p) => trace.param(p));
        const gs = grad(loss, leaves);
        const outputs: Record<string, Tensor> = { loss, ...rest };
        gs.forEach((g, i) => {
          if (g) outputs[`grad:${trainable[i]!.name}`] = g;
        });
        return outputs;
      },
      {
        ...options,
        params: 'input',
        decompose: options.decompose ?? true,
        session: { memoryPattern: false, ...options.session },
      },
    );
  }

  async run(inputs: Record<string, NDArray>): Promise<GradResult> {
    const out = await this.inner.run(inputs);
    const grads = new Map<Parameter, Float32Array>();
    const outputs: Record<string, NDArray> = {};
    for (const p of this.params) {
      const g = out[`grad:${p.name}`];
      if (g) grads.set(p, g.data as Float32Array);
    }
    for (const [k, v] of Object.entries(out)) if (!k.startsWith('grad:') && k !== 'loss') outputs[k] = v;
    const loss = out.loss!;
    return { loss: Number(loss.toFloat32().data[0]), grads, outputs };
  }

  get sessionCount(): number {
    return this.inner.sessionCount;
  }

  release(): Promise<void> {
    return this.inner.release();
  }
}

/** Entry point of the engine: compile traced functions on a backend. */
export class Runtime {
  constructor(readonly backend: Backend) {}

  compile(fn: TracedFn, options?: CompileOptions): CompiledFunction {
    return new CompiledFunction(this.backend, fn, options);
  }

  compileGrad(
    lossFn: (inputs: Record<string, Tensor>, trace: Trace) => Tensor | { loss: Tensor; [k: string]: Tensor },
    params: readonly Parameter[],
    options?: Omit<CompileOptions, 'params'>,
  ): GradFunction {
    return new GradFunction(this.backend, lossFn, params, options);
  }
}
