import { type DType, isFloat } from './dtype.js';
import { ImagenError } from './errors.js';
import { NDArray, shapeStr } from './ndarray.js';
import type { OpDef } from './op.js';
import type { Parameter } from './parameter.js';

export type LeafKind = 'input' | 'param' | 'const';

let nextId = 0;

/**
 * A traced value. Tensors are symbolic: operations record nodes in their `Trace`; nothing
 * is computed until the trace is emitted as ONNX and run by a Runtime.
 */
export class Tensor {
  readonly id = nextId++;

  constructor(
    readonly trace: Trace,
    // biome-ignore lint/suspicious/noExplicitAny: ops of every attribute type share one node class
    readonly op: OpDef<any> | LeafKind,
    readonly inputs: readonly Tensor[],
    // biome-ignore lint/suspicious/noExplicitAny: typed by the op's definition, checked there
    readonly attrs: any,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** Module path active when this node was created (for error messages and ONNX node names). */
    readonly scope: string,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  get isLeaf(): boolean {
    return typeof this.op === 'string';
  }

  get opName(): string {
    return typeof this.op === 'string' ? this.op : this.op.name;
  }

  toString(): string {
    return `Tensor(${this.opName}, ${shapeStr(this.shape)}, ${this.dtype})`;
  }
}

export interface TraceOptions {
  /** Expand composite ops into primitives (training: the backward pass reuses intermediates). */
  decomposeComposites?: boolean;
}

/** The recording context of one traced function. */
export class Trace {
  readonly decomposeComposites: boolean;
  private scopes: string[] = [];
  private readonly paramTensors = new Map<Parameter, Tensor>();
  readonly inputs: Tensor[] = [];

  constructor(options: TraceOptions = {}) {
    this.decomposeComposites = options.decomposeComposites ?? false;
  }

  get scope(): string {
    return this.scopes.join('.');
  }

  /** Run `fn` with `name` appended to the layer path used in errors and node names. */
  withScope<T>(name: string, fn: () => T): T {
    if (!name) return fn();
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** Run `fn` with the layer path replaced by `path` (gradient nodes take their forward node's path). */
  atScope<T>(path: string, fn: () => T): T {
    const saved = this.scopes.splice(0, this.scopes.length);
    if (path) this.scopes.push(path);
    try {
      return fn();
    } finally {
      this.scopes.splice(0, this.scopes.length, ...saved);
    }
  }

  input(name: string, shape: readonly number[], dtype: DType = 'float32'): Tensor {
    if (this.inputs.some((t) => t.attrs.name === name)) {
      throw new ImagenError('BAD_INPUT', `duplicate graph input name "${name}"`);
    }
    const t = new Tensor(this, 'input', [], { name }, [...shape], dtype, this.scope);
    this.inputs.push(t);
    return t;
  }

  /** The tensor standing for a parameter in this trace (one node per parameter). */
  param(p: Parameter): Tensor {
    let t = this.paramTensors.get(p);
    if (!t) {
      const dtype = p.value?.dtype ?? 'float32';
      t = new Tensor(this, 'param', [], { param: p }, [...p.shape], dtype, this.scope);
      // Compute is float32: 16-bit storage is cast once inside the graph.
      if (dtype !== 'float32' && isFloat(dtype)) t = castTo(t, 'float32');
      this.paramTensors.set(p, t);
    }
    return t;
  }

  get params(): ReadonlyMap<Parameter, Tensor> {
    return this.paramTensors;
  }

  constant(value: NDArray): Tensor {
    return new Tensor(this, 'const', [], { value }, [...value.shape], value.dtype, this.scope);
  }

  scalar(x: number, dtype: DType = 'float32'): Tensor {
    const v =
      dtype === 'float32'
        ? NDArray.scalar(x)
        : dtype === 'int64'
          ? NDArray.i64([], [x])
          : NDArray.scalar(x).cast(dtype);
    return this.constant(v);
  }

  /** Create an op node after shape/dtype inference; errors name the op, the layer and the shapes. */
  apply<A>(op: OpDef<A>, inputs: readonly Tensor[], attrs: A): Tensor {
    for (const t of inputs) {
      if (t.trace !== this) {
        throw new ImagenError('BAD_INPUT', `${op.name}: mixes tensors from two different traces`);
      }
    }
    // A composite with its own VJP stays one node (and one fused kernel) in training graphs too.
    if (this.decomposeComposites && op.decompose && !op.vjp) return op.decompose(inputs, attrs);
    let info: { shape: number[]; dtype: DType };
    try {
      info = op.infer(inputs, attrs);
    } catch (e) {
      const where = this.scope ? ` in ${this.scope}` : '';
      const shapes = inputs.map((t) => `${shapeStr(t.shape)} ${t.dtype}`).join(', ');
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `${op.name}${where}: ${(e as Error).message} (inputs: ${shapes})`,
      );
    }
    return new Tensor(this, op, inputs, attrs, info.shape, info.dtype, this.scope);
  }
}

// Set by ops/elementwise.ts; avoids an import cycle for the single cast Trace.param needs.
let castImpl: ((t: Tensor, dtype: DType) => Tensor) | undefined;
export function registerCast(fn: (t: Tensor, dtype: DType) => Tensor): void {
  castImpl = fn;
}
function castTo(t: Tensor, dtype: DType): Tensor {
  if (!castImpl) throw new Error('engine not initialised: import src/engine/index.js');
  return castImpl(t, dtype);
}

/** Nodes reachable from `outputs`, inputs before users. */
export function topoSort(outputs: readonly Tensor[]): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  // Iterative DFS: UNet graphs are deep enough to overflow the JS stack with recursion.
  const stack: [Tensor, number][] = outputs.map((t) => [t, 0]);
  stack.reverse();
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    if (seen.has(t.id)) {
      stack.pop();
      continue;
    }
    if (i < t.inputs.length) {
      top[1]++;
      const child = t.inputs[i]!;
      if (!seen.has(child.id)) stack.push([child, 0]);
    } else {
      stack.pop();
      seen.add(t.id);
      order.push(t);
    }
  }
  return order;
}
