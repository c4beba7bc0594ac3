import { type DType, ONNX_DTYPE } from './dtype.js';
import { ImagenError } from './errors.js';
import { type Tensor, topoSort } from './graph.js';
import { NDArray } from './ndarray.js';
import { type AttrValue, encodeModel, type NodeSpec, type TensorInit, type ValueInfo } from './onnx/model.js';
import type { OpDef } from './op.js';
import type { Parameter } from './parameter.js';

/** Default-domain opset 21 (per-channel GroupNormalization, Gelu-20, Pad-18+) + ORT contrib ops (notes §Recommendations). */
export const OPSETS = { '': 21, 'com.microsoft': 1 } as const;

export type ParamBinding = 'initializer' | 'input';

/** Lowering context handed to each op's `emit`. */
export class Emitter {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorInit[] = [];
  private readonly constCache = new Map<string, string>();
  private counter = 0;
  /** The op node being lowered, for node names. */
  current: Tensor | undefined;

  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  /** Add a node with one output; returns the output's name. */
  node(
    opType: string,
    inputs: readonly string[],
    attrs?: Record<string, AttrValue>,
    domain?: string,
  ): string {
    const out = this.fresh(opType.toLowerCase());
    const scope = this.current?.scope;
    // Trailing empty optional inputs are dropped: ORT 1.30 crashed on LayerNormalization(x, w, '').
    let n = inputs.length;
    while (n > 0 && inputs[n - 1] === '') n--;
    this.nodes.push({
      opType,
      inputs: inputs.slice(0, n),
      outputs: [out],
      attrs,
      domain,
      name: `${scope ? `${scope}/` : ''}${out}`,
    });
    return out;
  }

  int(v: number): AttrValue {
    return { kind: 'int', value: v };
  }
  ints(v: readonly number[]): AttrValue {
    return { kind: 'ints', value: v };
  }
  float(v: number): AttrValue {
    return { kind: 'float', value: v };
  }
  str(v: string): AttrValue {
    return { kind: 'string', value: v };
  }
  dtypeAttr(d: DType): AttrValue {
    return { kind: 'int', value: ONNX_DTYPE[d] };
  }

  /** A constant initializer (deduplicated for small values such as shapes). */
  constTensor(value: NDArray, name?: string): string {
    const bytes = toBytes(value);
    // Named initializers (parameters) are never shared: the graph refers to them by name.
    const small = name === undefined && bytes.length <= 256;
    const key = small ? `${value.dtype}|${value.shape.join(',')}|${Array.from(bytes).join(',')}` : '';
    if (small && this.constCache.has(key)) return this.constCache.get(key)!;
    const n = name ?? this.fresh('const');
    this.initializers.push({ name: n, dtype: value.dtype, dims: value.shape, raw: bytes });
    if (small) this.constCache.set(key, n);
    return n;
  }

  constI64(values: readonly number[]): string {
    return this.constTensor(NDArray.i64([values.length], values));
  }

  constScalar(value: number, dtype: DType): string {
    return this.constTensor(dtype === 'int64' ? NDArray.i64([], [value]) : NDArray.scalar(value).cast(dtype));
  }

  constZeros(shape: readonly number[], dtype: DType): string {
    // ConstantOfShape keeps large zero tensors out of the model file.
    const value = NDArray.zeros(dtype, [1]);
    return this.node('ConstantOfShape', [this.constI64(shape)], {
      value: { kind: 'tensor', value: { name: 'value', dtype, dims: [1], raw: toBytes(value) } },
    });
  }
}

export function toBytes(a: NDArray): Uint8Array {
  const d = a.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

export interface EmitOptions {
  /** Initializers bake weights into the model (inference); inputs let them change every run (training). */
  params: ParamBinding;
  graphName?: string;
}

export interface EmittedModel {
  model: Uint8Array;
  /** Graph inputs in order: user inputs first, then parameters bound as inputs. */
  inputNames: string[];
  paramInputs: { name: string; param: Parameter }[];
  outputNames: string[];
  nodeCount: number;
}

/** Lower the graph reaching `outputs` to an ONNX model. */
export function emitModel(outputs: Record<string, Tensor>, options: EmitOptions): EmittedModel {
  const e = new Emitter();
  const names = new Map<number, string>();
  const inputs: ValueInfo[] = [];
  const paramInputs: { name: string; param: Parameter }[] = [];
  const order = topoSort(Object.values(outputs));

  for (const t of order) {
    e.current = t;
    if (t.op === 'input') {
      names.set(t.id, t.attrs.name);
      inputs.push({ name: t.attrs.name, dtype: t.dtype, dims: [...t.shape] });
    } else if (t.op === 'param') {
      const p = t.attrs.param as Parameter;
      names.set(t.id, p.name);
      if (options.params === 'input') {
        inputs.push({ name: p.name, dtype: t.dtype, dims: [...t.shape] });
        paramInputs.push({ name: p.name, param: p });
      } else {
        if (!p.value) throw new ImagenError('WEIGHTS_MISMATCH', `parameter ${p.name} has no value to embed`);
        e.constTensor(p.value, p.name);
      }
    } else if (t.op === 'const') {
      names.set(t.id, e.constTensor(t.attrs.value as NDArray));
    } else {
      const op = t.op as OpDef<unknown>;
      const ins = t.inputs.map((i) => names.get(i.id)!);
      names.set(t.id, op.emit(e, ins, t.attrs, t));
    }
  }

  const outs: ValueInfo[] = [];
  for (const [key, t] of Object.entries(outputs)) {
    e.current = undefined;
    e.nodes.push({ opType: 'Identity', inputs: [names.get(t.id)!], outputs: [key], name: `output/${key}` });
    outs.push({ name: key, dtype: t.dtype, dims: [...t.shape] });
  }

  const model = encodeModel({
    nodes: e.nodes,
    inputs,
    outputs: outs,
    initializers: e.initializers,
    opsets: OPSETS,
    graphName: options.graphName,
  });
  return {
    model,
    inputNames: inputs.map((i) => i.name),
    paramInputs,
    outputNames: outs.map((o) => o.name),
    nodeCount: e.nodes.length,
  };
}
