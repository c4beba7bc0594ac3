import { type DType, ONNX_DTYPE } from '../dtype.js';
import { ProtoWriter } from './protobuf.js';

// Field numbers from onnx/onnx.proto (IR version 10). Only what the emitter needs.

export type AttrValue =
  | { kind: 'int'; value: number | bigint }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: readonly (number | bigint)[] }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'tensor'; value: TensorInit };

export interface NodeSpec {
  opType: string;
  domain?: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  attrs?: Record<string, AttrValue>;
}

export interface TensorInit {
  name: string;
  dtype: DType;
  dims: readonly number[];
  /** Raw little-endian bytes; absent for external data. */
  raw?: Uint8Array;
  /** Weights stored outside the model file (page-aligned), for multi-GB checkpoints. */
  external?: { location: string; offset: number; length: number };
}

export interface ValueInfo {
  name: string;
  dtype: DType;
  /** Numbers are fixed sizes; strings are symbolic dims. */
  dims: readonly (number | string)[];
}

export interface ModelSpec {
  nodes: readonly NodeSpec[];
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
  initializers: readonly TensorInit[];
  opsets: Record<string, number>;
  graphName?: string;
  producer?: string;
}

export const IR_VERSION = 10;

function tensorProto(t: TensorInit): ProtoWriter {
  const w = new ProtoWriter(64 + (t.raw?.length ?? 0));
  w.packedInts(1, t.dims);
  w.int(2, ONNX_DTYPE[t.dtype]);
  w.string(8, t.name);
  if (t.external) {
    const entry = (k: string, v: string) => new ProtoWriter().string(1, k).string(2, v);
    w.message(13, entry('location', t.external.location));
    w.message(13, entry('offset', String(t.external.offset)));
    w.message(13, entry('length', String(t.external.length)));
    w.int(14, 1); // data_location = EXTERNAL
  } else {
    w.bytes(9, t.raw ?? new Uint8Array(0));
  }
  return w;
}

function attributeProto(name: string, a: AttrValue): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, name);
  switch (a.kind) {
    case 'float':
      w.float(2, a.value).int(20, 1);
      break;
    case 'int':
      w.int(3, a.value).int(20, 2);
      break;
    case 'string':
      w.string(4, a.value).int(20, 3);
      break;
    case 'tensor':
      w.message(5, tensorProto(a.value)).int(20, 4);
      break;
    case 'floats':
      w.packedFloats(7, a.value).int(20, 6);
      break;
    case 'ints':
      w.packedInts(8, a.value).int(20, 7);
      break;
  }
  return w;
}

function nodeProto(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attributeProto(k, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function valueInfoProto(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.dims) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().int(1, ONNX_DTYPE[v.dtype]).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, v.name).message(2, type);
}

/** Encode a complete ONNX ModelProto. */
export function encodeModel(spec: ModelSpec): Uint8Array {
  const rawBytes = spec.initializers.reduce((s, t) => s + (t.raw?.length ?? 0), 0);
  const graph = new ProtoWriter(1024 + rawBytes);
  for (const n of spec.nodes) graph.message(1, nodeProto(n));
  graph.string(2, spec.graphName ?? 'imagen_ts');
  for (const t of spec.initializers) graph.message(5, tensorProto(t));
  for (const v of spec.inputs) graph.message(11, valueInfoProto(v));
  for (const v of spec.outputs) graph.message(12, valueInfoProto(v));

  const model = new ProtoWriter(graph.finish().length + 256);
  model.int(1, IR_VERSION);
  model.string(2, spec.producer ?? 'imagen-ts');
  model.message(7, graph);
  for (const [domain, version] of Object.entries(spec.opsets)) {
    const op = new ProtoWriter();
    if (domain) op.string(1, domain);
    op.int(2, version);
    model.message(8, op);
  }
  return model.finish();
}
