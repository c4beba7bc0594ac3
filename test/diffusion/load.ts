import { readFileSync } from 'node:fs';
import type { NDArray } from '../../src/engine/ndarray.js';

/** A tensor read from a fixture: F32 → Float32Array, I64 → numbers. */
export interface FixtureTensor {
  shape: number[];
  data: Float32Array | number[];
}

/**
 * Minimal safetensors reader for the fixtures (until src/io/safetensors.ts lands):
 * u64 LE header length, JSON header `{name: {dtype, shape, data_offsets}}`, little-endian data.
 */
export function readSafetensors(path: string): Map<string, FixtureTensor> {
  const buf = readFileSync(path);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLen;
  const out = new Map<string, FixtureTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = info.data_offsets;
    const bytes = buf.subarray(base + begin, base + end);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (info.dtype === 'F32') {
      const data = new Float32Array(bytes.byteLength / 4);
      for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * 4, true);
      out.set(name, { shape: info.shape, data });
    } else if (info.dtype === 'I64') {
      const data: number[] = [];
      for (let i = 0; i < bytes.byteLength / 8; i++) data.push(Number(view.getBigInt64(i * 8, true)));
      out.set(name, { shape: info.shape, data });
    } else {
      throw new Error(`readSafetensors: unsupported dtype ${info.dtype} for ${name}`);
    }
  }
  return out;
}

/** F32 tensor by name (throws when absent). */
export function f32(tensors: Map<string, FixtureTensor>, name: string): Float32Array {
  const t = tensors.get(name);
  if (!t || !(t.data instanceof Float32Array)) throw new Error(`fixture tensor ${name} missing or not F32`);
  return t.data;
}

/** I64 tensor by name as numbers (throws when absent). */
export function i64(tensors: Map<string, FixtureTensor>, name: string): number[] {
  const t = tensors.get(name);
  if (!t || t.data instanceof Float32Array) throw new Error(`fixture tensor ${name} missing or not I64`);
  return t.data;
}

/** The float32 values of an NDArray (the diffusion functions always return float32). */
export function values(a: NDArray): Float32Array {
  if (!(a.data instanceof Float32Array)) throw new Error(`expected float32 data, got ${a.dtype}`);
  return a.data;
}
