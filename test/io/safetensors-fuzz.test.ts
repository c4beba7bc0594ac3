import { describe, expect, it } from 'vitest';
import { f32ToBf16Bits, f32ToF16Bits } from '../../src/engine/dtype.js';
import { ImagenError } from '../../src/engine/errors.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { type ByteSource, encodeSafetensors, SafetensorsFile } from '../../src/io/safetensors.js';
import { rng } from '../helpers/random.js';

const prng = rng;

const SEED = 0x5afe7e45;
const ITERATIONS = 3000;

const bases: Uint8Array[] = [
  encodeSafetensors(
    {
      'a.weight': NDArray.f32(
        [3, 4],
        Array.from({ length: 12 }, (_, i) => i / 3),
      ),
      'b.bias': new NDArray('float16', [5], Uint16Array.from([1, 2, 3, 4, 5], f32ToF16Bits)),
      c: new NDArray('bfloat16', [2, 2], Uint16Array.from([1, -2, 3, -4], f32ToBf16Bits)),
      ids: NDArray.i64([4], [1, 2, 3, -4]),
      mask: new NDArray('bool', [3], Uint8Array.of(1, 0, 1)),
      empty: NDArray.f32([0, 3]),
      scalar: NDArray.scalar(7),
    },
    { format: 'pt', note: 'fuzz' },
  ),
  encodeSafetensors({
    x: new NDArray('float64', [2, 3], Float64Array.of(1, 2, 3, 4, 5, 6)),
    y: new NDArray('int32', [4], Int32Array.of(-1, 0, 1, 2)),
    z: new NDArray('uint8', [7], Uint8Array.of(1, 2, 3, 4, 5, 6, 7)),
  }),
];

function splitFile(bytes: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return {
    header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))),
    data: bytes.subarray(8 + n),
  };
}

function joinFile(headerText: string, data: Uint8Array, declared?: bigint): Uint8Array {
  const h = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

type Mutation = (file: Uint8Array, rnd: () => number) => Uint8Array;

const int = (rnd: () => number, n: number) => Math.floor(rnd() * n);
const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[int(rnd, xs.length)]!;

const weirdNumbers = [
  -1,
  0,
  1,
  2,
  3,
  7,
  8,
  1.5,
  1e15,
  1e300,
  -0,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 - 1,
  2 ** 64,
  Number.MAX_VALUE,
];
const weirdValues: unknown[] = [null, true, 'F32', '12', [], {}, [[1]], ...weirdNumbers];
const dtypes = [
  'F32',
  'F64',
  'F16',
  'BF16',
  'I64',
  'I32',
  'U8',
  'BOOL',
  'I8',
  'F8_E5M2',
  'f32',
  '',
  'toString',
];

function randomValue(rnd: () => number): unknown {
  return rnd() < 0.6 ? pick(rnd, weirdNumbers) : pick(rnd, weirdValues);
}

/** Structured edits: the header stays valid JSON, so the validator (not the parser) is exercised. */
const editJson: Mutation = (file, rnd) => {
  const { header, data } = splitFile(file);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = pick(rnd, names);
  const entry = header[name] as Record<string, unknown>;
  const other = header[pick(rnd, names)] as Record<string, unknown>;
  switch (int(rnd, 12)) {
    case 0:
      entry.dtype = pick(rnd, dtypes);
      break;
    case 1:
      entry.shape = Array.from({ length: int(rnd, 4) }, () => pick(rnd, weirdNumbers));
      break;
    case 2:
      entry.shape = randomValue(rnd);
      break;
    case 3:
      entry.data_offsets = [pick(rnd, weirdNumbers), pick(rnd, weirdNumbers)];
      break;
    case 4:
      entry.data_offsets = randomValue(rnd);
      break;
    case 5: // duplicated offsets → overlap (or exact alias)
      entry.data_offsets = other.data_offsets;
      entry.shape = other.shape;
      entry.dtype = other.dtype;
      break;
    case 6: {
      // shifted by a few bytes: overlapping neighbours, or off the end
      const [b, e] = entry.data_offsets as [number, number];
      const d = int(rnd, 9) - 4;
      entry.data_offsets = [b + d, e + d];
      break;
    }
    case 7:
      delete entry[pick(rnd, ['dtype', 'shape', 'data_offsets'])];
      break;
    case 8:
      header[name] = randomValue(rnd);
      break;
    case 9:
      header.__metadata__ = rnd() < 0.5 ? randomValue(rnd) : { k: randomValue(rnd) };
      break;
    case 10: // a plausible reshape that keeps the byte count, or nearly
      entry.shape = [(entry.shape as number[]).reduce((p, q) => p * q, 1) + int(rnd, 3) - 1];
      break;
    default: // swap begin and end
      entry.data_offsets = [...(entry.data_offsets as number[])].reverse();
  }
  const text = JSON.stringify(header);
  return joinFile(text, rnd() < 0.1 ? data.subarray(0, int(rnd, data.length)) : data);
};

const flipBytes =
  (region: 'header' | 'data' | 'any'): Mutation =>
  (file, rnd) => {
    const out = file.slice();
    const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
    const [lo, hi] =
      region === 'header' ? [8, 8 + n] : region === 'data' ? [8 + n, file.length] : [0, file.length];
    const flips = 1 + int(rnd, 8);
    for (let i = 0; i < flips; i++) {
      const at = lo + int(rnd, hi - lo);
      out[at] = rnd() < 0.5 ? out[at]! ^ (1 << int(rnd, 8)) : int(rnd, 256);
    }
    return out;
  };

const truncate: Mutation = (file, rnd) => file.subarray(0, int(rnd, file.length));

const rewriteLength: Mutation = (file, rnd) => {
  const out = file.slice();
  const dv = new DataView(out.buffer);
  const n = dv.getBigUint64(0, true);
  const choices = [
    BigInt(int(rnd, 2 ** 32)) * BigInt(int(rnd, 2 ** 32)),
    2n ** 64n - 1n,
    100_000_001n + BigInt(int(rnd, 1e9)),
    n + BigInt(int(rnd, 17)) - 8n < 0n ? 0n : n + BigInt(int(rnd, 17)) - 8n,
    BigInt(int(rnd, file.length + 16)),
    0n,
  ];
  dv.setBigUint64(0, pick(rnd, choices), true);
  return out;
};

const spliceGarbage: Mutation = (file, rnd) => {
  const at = int(rnd, file.length);
  const junk = Uint8Array.from({ length: 1 + int(rnd, 16) }, () => int(rnd, 256));
  const out = new Uint8Array(file.length + junk.length);
  out.set(file.subarray(0, at));
  out.set(junk, at);
  out.set(file.subarray(at), at + junk.length);
  return out;
};

const mutations: Array<[string, Mutation]> = [
  ['flip-header', flipBytes('header')],
  ['flip-data', flipBytes('data')],
  ['flip-any', flipBytes('any')],
  ['truncate', truncate],
  ['length-field', rewriteLength],
  ['json-edit', editJson],
  ['json-edit', editJson],
  ['json-edit', editJson],
  ['splice', spliceGarbage],
];

const byteMutations = mutations.filter(([k]) => k !== 'json-edit');

/** Tracks reads so the test can prove no read (hence no allocation) exceeds the file. */
function guardedSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.length,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new Error(`reader asked for [${offset}, ${offset + length}) of a ${bytes.length}-byte file`);
      }
      return bytes.subarray(offset, offset + length);
    },
  };
}

describe('safetensors fuzz', () => {
  it(`${ITERATIONS} mutated files: parse cleanly or fail with ImagenError FILE_INVALID`, async () => {
    const rnd = prng(SEED);
    const outcomes = new Map<string, number>();
    const bump = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    const started = performance.now();

    for (let i = 0; i < ITERATIONS; i++) {
      const [kind, mutate] = pick(rnd, mutations);
      let file = mutate(pick(rnd, bases), rnd);
      // Compound mutations; only byte-level ones, since the header may no longer parse.
      if (rnd() < 0.15) file = pick(rnd, byteMutations)[1](file, rnd);
      const name = `fuzz-${i}-${kind}.safetensors`;
      const context = `iteration ${i} (${kind}, seed ${SEED})`;

      let f: SafetensorsFile;
      try {
        f = await SafetensorsFile.open(guardedSource(name, file));
      } catch (err) {
        if (!(err instanceof ImagenError))
          throw new Error(`${context}: open threw a non-ImagenError: ${err}`);
        expect(err.code, context).toBe('FILE_INVALID');
        expect(err.message, context).toContain(name);
        bump(`${kind}:rejected`);
        continue;
      }
      bump(`${kind}:parsed`);
      // Whatever was accepted must satisfy the format's invariants.
      const spans = f
        .keys()
        .map((k) => f.info(k))
        .filter((t) => t.end > t.begin)
        .sort((a, b) => a.begin - b.begin);
      for (const [j, t] of spans.entries()) {
        expect(f.dataOffset + t.end, context).toBeLessThanOrEqual(file.length);
        if (j > 0) expect(t.begin, context).toBeGreaterThanOrEqual(spans[j - 1]!.end);
      }
      for (const key of f.keys()) {
        try {
          const t = await f.get(key);
          const info = f.info(key);
          expect(t.shape, context).toEqual(info.shape);
          const g = await f.getFloat32(key);
          expect(g.dtype, context).toBe('float32');
          expect(g.size, context).toBe(t.size);
        } catch (err) {
          if (!(err instanceof ImagenError)) throw new Error(`${context}: get("${key}") threw ${err}`);
        }
      }
    }

    const elapsed = performance.now() - started;
    const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(ITERATIONS);
    // The fuzzer must exercise both paths, or it is testing nothing.
    const parsed = [...outcomes].filter(([k]) => k.endsWith(':parsed')).reduce((a, [, v]) => a + v, 0);
    expect(parsed).toBeGreaterThan(ITERATIONS * 0.05);
    expect(ITERATIONS - parsed).toBeGreaterThan(ITERATIONS * 0.3);
    expect(elapsed).toBeLessThan(20_000);
  });

  it('a declared header over 100 MB on a file that really is that large is refused after an 8-byte read', async () => {
    const prefix = new Uint8Array(8);
    const lengths: bigint[] = [100_000_001n, 150_000_000n, 2n ** 40n, 2n ** 63n];
    for (const len of lengths) {
      new DataView(prefix.buffer).setBigUint64(0, len, true);
      let bytesRead = 0;
      const src: ByteSource = {
        name: 'huge.safetensors',
        size: 4 * 2 ** 30,
        async read(offset, length) {
          bytesRead += length;
          return offset === 0 && length === 8 ? prefix : new Uint8Array(length);
        },
      };
      await expect(SafetensorsFile.open(src)).rejects.toMatchObject({
        code: 'FILE_INVALID',
        message: expect.stringContaining('100 MB'),
      });
      expect(bytesRead).toBe(8);
    }
  });
});
