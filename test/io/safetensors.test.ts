import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DType, f32ToBf16Bits, f32ToF16Bits } from '../../src/engine/dtype.js';
import { ImagenError } from '../../src/engine/errors.js';
import { NDArray } from '../../src/engine/ndarray.js';
import {
  type ByteSource,
  bytesSource,
  encodeSafetensors,
  MAX_HEADER_BYTES,
  SafetensorsFile,
  serializeSafetensors,
} from '../../src/io/safetensors.js';
import type { CheckpointReader } from '../../src/io/sharded.js';
import {
  atomicWriteChunks,
  atomicWriteFile,
  fileByteSource,
  isAtomicTempFile,
  openSafetensors,
  writeSafetensors,
} from '../../src/platform/node/files.js';
import { fixture } from '../helpers/fixtures.js';

function sample(dtype: DType, shape: number[]): NDArray {
  const n = shape.reduce((a, b) => a * b, 1);
  const vals = Array.from({ length: n }, (_, i) => (i % 7) - 3 + i * 0.25);
  switch (dtype) {
    case 'float32':
      return new NDArray(dtype, shape, Float32Array.from(vals));
    case 'float64':
      return new NDArray(
        dtype,
        shape,
        Float64Array.from(vals, (v) => v + 1e-12),
      );
    case 'float16':
      return new NDArray(dtype, shape, Uint16Array.from(vals, f32ToF16Bits));
    case 'bfloat16':
      return new NDArray(dtype, shape, Uint16Array.from(vals, f32ToBf16Bits));
    case 'int64':
      return new NDArray(
        dtype,
        shape,
        BigInt64Array.from(vals, (v, i) => BigInt(Math.trunc(v)) * 2n ** BigInt(i % 40)),
      );
    case 'int32':
      return new NDArray(
        dtype,
        shape,
        Int32Array.from(vals, (v) => Math.trunc(v * 1000)),
      );
    case 'uint8':
      return new NDArray(
        dtype,
        shape,
        Uint8Array.from(vals, (_, i) => (i * 37) & 255),
      );
    case 'bool':
      return new NDArray(
        dtype,
        shape,
        Uint8Array.from(vals, (_, i) => (i % 3 === 0 ? 1 : 0)),
      );
  }
}

const ALL_DTYPES: DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool'];

/** Raw file from a header (object or literal JSON text) and data bytes; `declared` overrides the length field. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), declared?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  return rawBytes(json, data, declared);
}

function rawBytes(headerBytes: Uint8Array, data: Uint8Array, declared?: bigint): Uint8Array {
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

function countingSource(inner: ByteSource): ByteSource & { reads: Array<[number, number]> } {
  const reads: Array<[number, number]> = [];
  return {
    name: inner.name,
    size: inner.size,
    reads,
    read(offset, length) {
      reads.push([offset, length]);
      return inner.read(offset, length);
    },
  };
}

async function rejection(p: Promise<unknown>): Promise<ImagenError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImagenError);
  return err as ImagenError;
}

async function expectInvalid(src: ByteSource, phrase: string): Promise<ImagenError> {
  const err = await rejection(SafetensorsFile.open(src));
  expect(err.code).toBe('FILE_INVALID');
  expect(err.message).toContain(src.name);
  expect(err.message).toContain(phrase);
  return err;
}

const T = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

describe('safetensors round trip', () => {
  it.each(ALL_DTYPES)('%s: matrix, empty and scalar tensors', async (dtype) => {
    const tensors = {
      matrix: sample(dtype, [3, 5]),
      empty: sample(dtype, [0]),
      empty2d: sample(dtype, [2, 0, 3]),
      scalar: sample(dtype, []),
    };
    const f = await SafetensorsFile.open(bytesSource('rt.safetensors', encodeSafetensors(tensors)));
    for (const [name, t] of Object.entries(tensors)) {
      const got = await f.get(name);
      expect(got.dtype).toBe(dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data.constructor).toBe(t.data.constructor);
      expect(Array.from(got.data as ArrayLike<number | bigint>)).toEqual(
        Array.from(t.data as ArrayLike<number | bigint>),
      );
      expect(f.info(name).dtype).toBe(dtype);
    }
  });

  it('round-trips metadata, and reads no metadata as {}', async () => {
    const meta = { format: 'pt', note: 'ünïcødé "quoted"', '10': 'integer-like key' };
    const f = await SafetensorsFile.open(
      bytesSource('m.safetensors', encodeSafetensors({ a: sample('float32', [2]) }, meta)),
    );
    expect(f.metadata).toEqual(meta);
    const g = await SafetensorsFile.open(
      bytesSource('n.safetensors', encodeSafetensors({ a: sample('float32', [2]) })),
    );
    expect(g.metadata).toEqual({});
  });

  it('pads the header to 8 bytes, sorts keys, puts __metadata__ first, lays data out contiguously', () => {
    const tensors = {
      b: sample('uint8', [3]),
      '10': sample('float32', [1]),
      a: sample('float64', [2]),
      '2': sample('bool', [1]),
    };
    const { header, chunks, totalSize } = serializeSafetensors(tensors, { k: 'v' });
    expect(header.length % 8).toBe(0);
    const n = Number(new DataView(header.buffer).getBigUint64(0, true));
    expect(n).toBe(header.length - 8);
    const text = new TextDecoder().decode(header.subarray(8));
    expect(text.trimEnd().length).toBeGreaterThan(n - 8);
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    const keys = [...text.matchAll(/"([^"]+)":\{/g)].map((m) => m[1]);
    expect(keys).toEqual(['__metadata__', '10', '2', 'a', 'b']);
    expect(text).toContain('"10":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}');
    expect(text).toContain('"b":{"dtype":"U8","shape":[3],"data_offsets":[21,24]}');
    expect(totalSize).toBe(header.length + 24);
    // Chunks alias the tensors' own memory: no copy on the write path.
    expect(chunks[0]!.buffer).toBe(tensors['10'].data.buffer);
  });

  it('reads tensors at unaligned data offsets into aligned typed arrays (a copy, not a view)', async () => {
    const bytes = encodeSafetensors({
      a: sample('uint8', [3]),
      b: sample('float64', [4]),
      c: sample('int64', [2]),
    });
    const f = await SafetensorsFile.open(bytesSource('u.safetensors', bytes));
    expect(f.info('b').begin).toBe(3);
    const b = await f.get('b');
    expect(b.data).toBeInstanceOf(Float64Array);
    expect(Array.from(b.data as Float64Array)).toEqual(
      Array.from(sample('float64', [4]).data as Float64Array),
    );
    (b.data as Float64Array)[0] = 42;
    expect((await f.get('b')).data[0]).not.toBe(42);
  });

  it('getFloat32 upcasts every dtype', async () => {
    const vals = [-2, -0.5, 0, 1, 3.5];
    const tensors: Record<string, NDArray> = {
      f16: new NDArray('float16', [5], Uint16Array.from(vals, f32ToF16Bits)),
      bf16: new NDArray('bfloat16', [5], Uint16Array.from(vals, f32ToBf16Bits)),
      f64: new NDArray('float64', [5], Float64Array.from(vals)),
      i64: NDArray.i64([2], [-7, 9]),
      i32: new NDArray('int32', [2], Int32Array.of(-7, 9)),
      u8: new NDArray('uint8', [2], Uint8Array.of(0, 255)),
      b: new NDArray('bool', [2], Uint8Array.of(1, 0)),
    };
    const f = await SafetensorsFile.open(bytesSource('up.safetensors', encodeSafetensors(tensors)));
    for (const name of ['f16', 'bf16', 'f64']) {
      const t = await f.getFloat32(name);
      expect(t.dtype).toBe('float32');
      expect(Array.from(t.data as Float32Array)).toEqual(vals);
    }
    expect((await f.getFloat32('i64')).toArray()).toEqual([-7, 9]);
    expect((await f.getFloat32('i32')).toArray()).toEqual([-7, 9]);
    expect((await f.getFloat32('u8')).toArray()).toEqual([0, 255]);
    expect((await f.getFloat32('b')).toArray()).toEqual([1, 0]);
  });

  it('accepts gaps and trailing bytes in the data section (alignment padding from other writers)', async () => {
    const data = new Uint8Array(40);
    new Float32Array(data.buffer, 16, 2).set([1.5, -2]);
    const f = await SafetensorsFile.open(
      bytesSource('gap.safetensors', rawFile({ x: T('F32', [2], [16, 24]), z: T('U8', [0], [3, 3]) }, data)),
    );
    expect((await f.get('x')).toArray()).toEqual([1.5, -2]);
    expect((await f.get('z')).shape).toEqual([0]);
  });

  it('reports an unknown tensor name as NOT_FOUND with the file name', async () => {
    const f = await SafetensorsFile.open(
      bytesSource('k.safetensors', encodeSafetensors({ a: sample('uint8', [1]) })),
    );
    const err = await rejection(f.get('nope'));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain('k.safetensors');
    expect(err.message).toContain('"nope"');
    expect(f.has('a')).toBe(true);
    expect(f.has('nope')).toBe(false);
  });

  it('refuses to serialize a tensor named __metadata__ or with mismatched storage', () => {
    expect(() => serializeSafetensors({ __metadata__: sample('uint8', [1]) })).toThrow(/reserved/);
    const bad = new NDArray('float32', [2], Float32Array.of(1, 2));
    Object.defineProperty(bad, 'data', { value: Uint8Array.of(1, 2) });
    expect(() => serializeSafetensors({ bad })).toThrow(ImagenError);
  });

  it('a SafetensorsFile is a CheckpointReader', async () => {
    const r: CheckpointReader = await SafetensorsFile.open(
      bytesSource('r.safetensors', encodeSafetensors({ a: sample('int32', [2]) })),
    );
    expect(r.keys()).toEqual(['a']);
  });
});

describe('lazy reading', () => {
  it('open + get(one) reads only the prefix, the header and that tensor', async () => {
    const bytes = encodeSafetensors({
      a: sample('float32', [64]),
      b: sample('float64', [8]),
      c: sample('int32', [100]),
    });
    const src = countingSource(bytesSource('lazy.safetensors', bytes));
    const f = await SafetensorsFile.open(src);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(src.reads).toEqual([
      [0, 8],
      [8, n],
    ]);
    await f.get('b');
    const info = f.info('b');
    expect(src.reads[2]).toEqual([8 + n + info.begin, info.end - info.begin]);
    expect(src.reads).toHaveLength(3);
    expect(info.end - info.begin).toBe(64);
  });
});

const fp32Path = fixture('t5-encoder/model.safetensors');
const fp16Path = fixture('t5-encoder/model.fp16.safetensors');

describe.skipIf(!fp32Path || !fp16Path)('files written by Python', () => {
  let f32: SafetensorsFile;
  let f16: SafetensorsFile;
  beforeAll(async () => {
    f32 = await openSafetensors(fp32Path!);
    f16 = await openSafetensors(fp16Path!);
  });
  afterAll(async () => {
    await f32?.close();
    await f16?.close();
  });

  it('lists the same keys with F32 / F16 dtypes', () => {
    expect(f32.keys()).toContain('shared.weight');
    expect(f16.keys().sort()).toEqual(f32.keys().sort());
    expect(f32.info('shared.weight')).toMatchObject({ dtype: 'float32', shape: [128, 64] });
    expect(f16.info('shared.weight')).toMatchObject({ dtype: 'float16', shape: [128, 64] });
    expect(f32.metadata).toEqual({ format: 'pt' });
  });

  it('fp16 weights upcast to within 1e-3 relative of the fp32 weights', async () => {
    for (const name of f32.keys()) {
      const a = (await f32.get(name)).data as Float32Array;
      const b = (await f16.getFloat32(name)).data as Float32Array;
      expect(b.length).toBe(a.length);
      let worst = 0;
      for (let i = 0; i < a.length; i++) {
        worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(a[i]!), 1e-4));
      }
      expect(worst, name).toBeLessThan(1e-3);
    }
  });

  it('re-encoding a Python file gives back the same tensors', async () => {
    const all: Record<string, NDArray> = {};
    for (const k of f16.keys()) all[k] = await f16.get(k);
    const again = await SafetensorsFile.open(bytesSource('again', encodeSafetensors(all, f16.metadata)));
    for (const k of f16.keys()) {
      expect(Array.from((await again.get(k)).data as Uint16Array)).toEqual(
        Array.from(all[k]!.data as Uint16Array),
      );
    }
  });
});

describe('corrupt files are rejected with FILE_INVALID', () => {
  const okData = new Uint8Array(16);
  const src = (name: string, bytes: Uint8Array) => bytesSource(`corrupt-${name}.safetensors`, bytes);

  it('file shorter than 8 bytes', async () => {
    await expectInvalid(src('short', new Uint8Array(5)), 'shorter than the 8-byte header length prefix');
    await expectInvalid(src('empty', new Uint8Array(0)), 'shorter than the 8-byte');
  });

  it('header length past the end of the file', async () => {
    await expectInvalid(
      src('pastend', rawFile({}, okData, 1000n)),
      'header length 1000 runs past the end of the file',
    );
  });

  it('header length over 100 MB is refused before reading or allocating it', async () => {
    // A source that claims to be 300 MB but has no bytes behind it: reading the header would fail loudly.
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
    const reads: number[] = [];
    const huge: ByteSource = {
      name: 'corrupt-hugeheader.safetensors',
      size: 300_000_000,
      async read(offset, length) {
        reads.push(length);
        if (offset !== 0 || length !== 8) throw new Error('must not read the header');
        return prefix;
      },
    };
    await expectInvalid(huge, 'exceeds the 100000000-byte (100 MB) limit');
    expect(reads).toEqual([8]);
    await expectInvalid(
      src('u64max', rawFile({}, okData, 2n ** 64n - 1n)),
      'header length 18446744073709551615 exceeds',
    );
  });

  it('header that is not valid UTF-8', async () => {
    const bad = Uint8Array.of(0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d); // {"\xff\xfe":1}
    await expectInvalid(src('utf8', rawBytes(bad, okData)), 'header is not valid UTF-8');
  });

  it('header that is not JSON', async () => {
    await expectInvalid(src('json', rawFile('{"a": {"dtype": ', okData)), 'header is not valid JSON');
    await expectInvalid(src('zero', rawFile('', okData)), 'header is not valid JSON');
  });

  it('header that is JSON but not an object', async () => {
    await expectInvalid(src('array', rawFile('[1,2]', okData)), 'header must be a JSON object');
    await expectInvalid(src('null', rawFile('null', okData)), 'header must be a JSON object');
    await expectInvalid(src('string', rawFile('"x"', okData)), 'header must be a JSON object');
  });

  it('tensor entry that is not an object', async () => {
    await expectInvalid(
      src('entry', rawFile({ w: [1, 2] }, okData)),
      'tensor "w": header entry is not an object',
    );
  });

  it.each(['dtype', 'shape', 'data_offsets'])('tensor entry missing "%s"', async (field) => {
    const entry: Record<string, unknown> = T('F32', [2], [0, 8]);
    delete entry[field];
    await expectInvalid(
      src(`missing-${field}`, rawFile({ w: entry }, okData)),
      `tensor "w": missing field "${field}"`,
    );
  });

  it('fields of the wrong type', async () => {
    await expectInvalid(
      src('dtype-type', rawFile({ w: T(7 as never, [2], [0, 8]) }, okData)),
      'dtype must be a string',
    );
    await expectInvalid(
      src('offsets-type', rawFile({ w: T('F32', [2], '0-8') }, okData)),
      'data_offsets must be [begin, end] with non-negative safe integers',
    );
    await expectInvalid(
      src('offsets-len', rawFile({ w: T('F32', [2], [0, 8, 9]) }, okData)),
      'data_offsets must be',
    );
    await expectInvalid(
      src('offsets-neg', rawFile({ w: T('F32', [2], [-4, 4]) }, okData)),
      'data_offsets must be',
    );
  });

  it('unknown dtype, listing the known ones', async () => {
    const err = await expectInvalid(
      src('dtype', rawFile({ w: T('F8_E4M3', [2], [0, 2]) }, okData)),
      'unknown dtype "F8_E4M3"',
    );
    expect(err.message).toContain('known dtypes: F32, F64, F16, BF16, I64, I32, U8, BOOL');
    // Inherited object keys must not pass as dtypes.
    await expectInvalid(src('proto', rawFile({ w: T('constructor', [2], [0, 2]) }, okData)), 'unknown dtype');
  });

  it.each([
    ['not-array', '2'],
    ['negative', [-2]],
    ['fraction', [1.5]],
    ['unsafe', [2 ** 53]],
    ['string-dim', ['2']],
  ])('shape that is not an array of non-negative safe integers (%s)', async (label, shape) => {
    await expectInvalid(
      src(`shape-${label}`, rawFile({ w: T('U8', shape, [0, 2]) }, okData)),
      'shape must be an array of non-negative safe integers',
    );
  });

  it('product(shape) × dtype size ≠ end − begin', async () => {
    await expectInvalid(src('bytes', rawFile({ w: T('F32', [3], [0, 8]) }, okData)), 'byte length mismatch');
  });

  it('enormous shapes are rejected by the byte-length check, without allocating', async () => {
    await expectInvalid(
      src('1e15', rawFile({ w: T('F32', [1e15], [0, 8]) }, okData)),
      '= 4000000000000000 bytes',
    );
    await expectInvalid(
      src('overflow', rawFile({ w: T('F32', [2 ** 30, 2 ** 30, 2 ** 30], [0, 8]) }, okData)),
      'more than 2^53 bytes',
    );
  });

  it('begin > end', async () => {
    await expectInvalid(
      src('order', rawFile({ w: T('U8', [0], [8, 4]) }, okData)),
      'data_offsets begin 8 > end 4',
    );
  });

  it('offsets out of range of the data section (also: data truncated)', async () => {
    await expectInvalid(
      src('range', rawFile({ w: T('F32', [4], [8, 24]) }, okData)),
      'data_offsets [8, 24] out of range of the 16-byte data section',
    );
    const whole = encodeSafetensors({ a: sample('float32', [16]) });
    await expectInvalid(
      src('truncated', whole.subarray(0, whole.length - 1)),
      'out of range of the 63-byte data section',
    );
  });

  it('overlapping tensors', async () => {
    await expectInvalid(
      src('overlap', rawFile({ a: T('F32', [2], [0, 8]), b: T('F32', [2], [4, 12]) }, okData)),
      'tensors "a" [0, 8] and "b" [4, 12] overlap',
    );
    await expectInvalid(
      src('dup', rawFile({ a: T('U8', [4], [0, 4]), b: T('U8', [4], [0, 4]) }, okData)),
      'overlap',
    );
  });

  it('__metadata__ that is not a map of strings', async () => {
    await expectInvalid(
      src('meta', rawFile({ __metadata__: [1] }, okData)),
      '"__metadata__" must be an object of strings',
    );
    await expectInvalid(
      src('meta-value', rawFile({ __metadata__: { total_size: 5 } }, okData)),
      '"__metadata__" value for "total_size" must be a string',
    );
  });
});

describe('node files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'imagen-st-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const tempLeftovers = async () => (await readdir(dir)).filter((n) => n.includes('.tmp-'));

  it('writeSafetensors writes atomically and openSafetensors reads it back by positional reads', async () => {
    const p = join(dir, 'w.safetensors');
    const tensors = { x: sample('float32', [4, 4]), y: sample('int64', [3]), e: sample('bfloat16', [0]) };
    await writeSafetensors(p, tensors, { format: 'pt' });
    expect(await tempLeftovers()).toEqual([]);
    expect(new Uint8Array(await readFile(p))).toEqual(encodeSafetensors(tensors, { format: 'pt' }));
    const f = await openSafetensors(p);
    try {
      expect(f.metadata).toEqual({ format: 'pt' });
      expect((await f.get('y')).toArray()).toEqual(sample('int64', [3]).toArray());
      expect((await f.get('x')).toArray()).toEqual(sample('float32', [4, 4]).toArray());
      expect((await f.get('e')).shape).toEqual([0]);
    } finally {
      await f.close();
    }
    // Overwrite in place.
    await writeSafetensors(p, { z: sample('uint8', [2]) });
    const g = await openSafetensors(p);
    expect(g.keys()).toEqual(['z']);
    await g.close();
  });

  it('a failure in the middle of a write leaves the old file intact and no temp file', async () => {
    const p = join(dir, 'keep.bin.json');
    await atomicWriteFile(p, '{"old": true}');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(1024).fill(7);
      throw new Error('disk on fire');
    }
    await expect(atomicWriteChunks(p, failing())).rejects.toThrow('disk on fire');
    expect(await readFile(p, 'utf8')).toBe('{"old": true}');
    expect(await tempLeftovers()).toEqual([]);
  });

  it('a tensor whose bytes cannot be read fails the write without touching the target', async () => {
    const p = join(dir, 'keep.safetensors');
    await writeSafetensors(p, { a: sample('float32', [2]) });
    const before = await readFile(p);
    const bad = sample('float32', [2]);
    Object.defineProperty(bad, 'data', {
      get() {
        throw new Error('tensor data gone');
      },
    });
    await expect(writeSafetensors(p, { a: sample('float32', [2]), b: bad })).rejects.toThrow(
      'tensor data gone',
    );
    expect(await readFile(p)).toEqual(before);
    expect(await tempLeftovers()).toEqual([]);
  });

  it('a failure at the rename (target is a directory) removes the fully written temp file', async () => {
    const p = join(dir, 'occupied');
    await mkdir(join(p, 'child'), { recursive: true });
    await expect(writeSafetensors(p, { a: sample('float32', [1000]) })).rejects.toThrow();
    expect(await tempLeftovers()).toEqual([]);
  });

  it('atomicWriteFile writes strings and bytes; temp names are recognisable', async () => {
    const p = join(dir, 'config.json');
    await atomicWriteFile(p, '{"a":1}');
    await atomicWriteFile(p, new TextEncoder().encode('{"a":2}'));
    expect(await readFile(p, 'utf8')).toBe('{"a":2}');
    expect(isAtomicTempFile(`${p}.tmp-123-0123456789ab`)).toBe(true);
    expect(isAtomicTempFile(p)).toBe(false);
  });

  it('fileByteSource reads ranges and reports missing files as NOT_FOUND', async () => {
    const p = join(dir, 'bytes.dat');
    await writeFile(
      p,
      Uint8Array.from({ length: 100 }, (_, i) => i),
    );
    const s = await fileByteSource(p);
    try {
      expect(s.size).toBe(100);
      expect(Array.from(await s.read(10, 3))).toEqual([10, 11, 12]);
      expect((await s.read(100, 0)).length).toBe(0);
      expect((await rejection(s.read(98, 5))).code).toBe('FILE_INVALID');
    } finally {
      await s.close();
    }
    const err = await rejection(fileByteSource(join(dir, 'nope.safetensors')));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain('nope.safetensors');
  });

  it('a file truncated after opening gives FILE_INVALID on get, not a short tensor', async () => {
    const p = join(dir, 'shrink.safetensors');
    await writeSafetensors(p, { a: sample('float32', [256]) });
    const f = await openSafetensors(p);
    try {
      await writeFile(p, (await readFile(p)).subarray(0, 200));
      const err = await rejection(f.get('a'));
      expect(err.code).toBe('FILE_INVALID');
      expect(err.message).toContain('truncated');
    } finally {
      await f.close();
    }
  });

  it.skipIf(!existsSync('/proc/self/fd'))(
    'openSafetensors closes the file handle when the header is corrupt',
    async () => {
      const p = join(dir, 'bad.safetensors');
      await writeFile(p, rawFile('nope', new Uint8Array(4)));
      const fds = (await readdir('/proc/self/fd')).length;
      for (let i = 0; i < 20; i++) {
        const err = await rejection(openSafetensors(p));
        expect(err.code).toBe('FILE_INVALID');
        expect(err.message).toContain(p);
      }
      expect((await readdir('/proc/self/fd')).length).toBeLessThan(fds + 5);
    },
  );
});
