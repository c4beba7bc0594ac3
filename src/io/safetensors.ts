/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors).
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section.
 * The reader is lazy: `open` reads only the 8-byte prefix and the header; `get` reads one
 * tensor's byte range. Everything here is platform-neutral (no `node:` imports) so the same
 * code loads weights from a `File`/`Blob`/`fetch` range reader in a browser.
 *
 * Every check on the header is done before any allocation sized by the header, because
 * checkpoints come from the internet: a corrupt or hostile file must end in an
 * `ImagenError('FILE_INVALID')`, never a crash, a hang or a multi-gigabyte allocation.
 */
import { type AnyTypedArray, allocate, BYTES_PER_ELEMENT, type DType } from '../engine/dtype.js';
import { ImagenError } from '../engine/errors.js';
import { NDArray } from '../engine/ndarray.js';

/** Same limit as the reference implementation: real headers are at most a few MB. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Random-access bytes: a file handle, an in-memory buffer, an HTTP range reader, a Blob. */
export interface ByteSource {
  /** Used in error messages, so a path or URL is best. */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes at `offset`; the result may be a view that the caller must not keep mutating. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional: fill `target` from `offset`. Lets `get` read straight into the tensor's own
   * typed array instead of reading into a temporary buffer and copying.
   */
  readInto?(offset: number, target: Uint8Array): Promise<void>;
  close?(): Promise<void>;
}

/** A ByteSource over bytes already in memory (tests, `fetch`ed files, browser uploads). */
export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset: number, length: number): Promise<Uint8Array> {
      checkReadRange(name, offset, length, bytes.byteLength);
      return bytes.subarray(offset, offset + length);
    },
  };
}

function checkReadRange(name: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new ImagenError('BAD_INPUT', `${name}: invalid read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > size) {
    throw new ImagenError(
      'FILE_INVALID',
      `${name}: read of ${length} bytes at offset ${offset} runs past the end of the ${size}-byte file`,
    );
  }
}

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  /** Byte offsets as written in the header: relative to the start of the data section. */
  begin: number;
  end: number;
}

/** safetensors dtype spelling ↔ ours. A Map, not an object, so "constructor" is not a dtype. */
const FROM_ST = new Map<string, DType>([
  ['F32', 'float32'],
  ['F64', 'float64'],
  ['F16', 'float16'],
  ['BF16', 'bfloat16'],
  ['I64', 'int64'],
  ['I32', 'int32'],
  ['U8', 'uint8'],
  ['BOOL', 'bool'],
]);
const TO_ST = new Map<DType, string>([...FROM_ST].map(([st, d]) => [d, st]));
const KNOWN_DTYPES = [...FROM_ST.keys()].join(', ');

// The format is little-endian and typed arrays use host order; every mainstream host is LE,
// so rather than carrying untested byte-swapping code we refuse clearly on the rare BE one.
const HOST_LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function requireLittleEndianHost(what: string, dtype: DType): void {
  if (!HOST_LITTLE_ENDIAN && BYTES_PER_ELEMENT[dtype] > 1) {
    throw new ImagenError('UNSUPPORTED', `${what}: big-endian hosts are not supported for ${dtype} tensors`);
  }
}

/** Keeps error messages readable when a fuzzed header holds a megabyte-long name. */
function clip(s: string, max = 120): string {
  return s.length <= max ? s : `${s.slice(0, max)}…(${s.length} chars)`;
}

function show(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return clip(s, 80);
}

/** product(shape) × bytesPerElement, or undefined once it leaves the safe-integer range. */
function byteLengthOf(shape: readonly number[], bytesPerElement: number): number | undefined {
  if (shape.includes(0)) return 0;
  let n = bytesPerElement;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return n;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface Entry extends TensorInfo {
  name: string;
}

function parseHeader(
  file: string,
  json: Record<string, unknown>,
  dataSize: number,
): { entries: Map<string, Entry>; metadata: Record<string, string> } {
  const fail: (problem: string) => never = (problem) => {
    throw new ImagenError('FILE_INVALID', `${file}: ${problem}`);
  };
  const metadata: Record<string, string> = {};
  const entries = new Map<string, Entry>();
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(raw)) fail(`"__metadata__" must be an object of strings, got ${show(raw)}`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string')
          fail(`"__metadata__" value for "${clip(k)}" must be a string, got ${show(v)}`);
        // defineProperty, because a plain assignment to "__proto__" would change the prototype.
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    const where = `tensor "${clip(name)}"`;
    if (!isPlainObject(raw)) fail(`${where}: header entry is not an object (got ${show(raw)})`);
    const e = raw;
    for (const field of ['dtype', 'shape', 'data_offsets']) {
      if (!Object.hasOwn(e, field)) fail(`${where}: missing field "${field}"`);
    }
    if (typeof e.dtype !== 'string') fail(`${where}: dtype must be a string, got ${show(e.dtype)}`);
    const dtype = FROM_ST.get(e.dtype);
    if (dtype === undefined) fail(`${where}: unknown dtype ${show(e.dtype)}; known dtypes: ${KNOWN_DTYPES}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(`${where}: shape must be an array of non-negative safe integers, got ${show(shape)}`);
    }
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
    ) {
      fail(`${where}: data_offsets must be [begin, end] with non-negative safe integers, got ${show(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`${where}: data_offsets begin ${begin} > end ${end}`);
    const bpe = BYTES_PER_ELEMENT[dtype];
    const need = byteLengthOf(shape as number[], bpe);
    if (need !== end - begin) {
      fail(
        `${where}: byte length mismatch: shape ${show(shape)} × ${bpe} bytes (${e.dtype}) = ` +
          `${need ?? 'more than 2^53'} bytes but data_offsets [${begin}, ${end}] span ${end - begin} bytes`,
      );
    }
    if (end > dataSize) {
      fail(`${where}: data_offsets [${begin}, ${end}] out of range of the ${dataSize}-byte data section`);
    }
    entries.set(name, { name, dtype, shape: [...(shape as number[])], begin, end });
  }

  // Gaps and trailing bytes are tolerated (alignment padding written by other tools);
  // overlaps are not, since writing one tensor would silently change another.
  const byStart = [...entries.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1]!;
    const cur = byStart[i]!;
    if (cur.begin < prev.end) {
      fail(
        `tensors "${clip(prev.name)}" [${prev.begin}, ${prev.end}] and "${clip(cur.name)}" ` +
          `[${cur.begin}, ${cur.end}] overlap`,
      );
    }
  }
  return { entries, metadata };
}

async function readExact(src: ByteSource, offset: number, length: number, what: string): Promise<Uint8Array> {
  const bytes = await src.read(offset, length);
  if (bytes.byteLength !== length) {
    throw new ImagenError(
      'FILE_INVALID',
      `${src.name}: short read of ${what}: wanted ${length} bytes at offset ${offset}, got ${bytes.byteLength}`,
    );
  }
  return bytes;
}

function bytesOf(a: AnyTypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A parsed safetensors header plus lazy access to the tensors it describes. */
export class SafetensorsFile {
  private constructor(
    private readonly src: ByteSource,
    private readonly entries: Map<string, Entry>,
    readonly metadata: Record<string, string>,
    /** Absolute offset of the data section (8 + header length). */
    readonly dataOffset: number,
  ) {}

  get name(): string {
    return this.src.name;
  }

  static async open(src: ByteSource): Promise<SafetensorsFile> {
    const file = src.name;
    const fail: (problem: string) => never = (problem) => {
      throw new ImagenError('FILE_INVALID', `${file}: ${problem}`);
    };
    if (!Number.isSafeInteger(src.size) || src.size < 0) fail(`invalid file size ${src.size}`);
    if (src.size < 8) {
      fail(
        `file is ${src.size} bytes, shorter than the 8-byte header length prefix (not a safetensors file)`,
      );
    }
    const prefix = await readExact(src, 0, 8, 'the header length');
    const declared = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
    // Compare as bigint: a u64 need not fit a double, and the limit must hold before allocating.
    if (declared > BigInt(MAX_HEADER_BYTES)) {
      fail(`header length ${declared} exceeds the ${MAX_HEADER_BYTES}-byte (100 MB) limit`);
    }
    const headerLen = Number(declared);
    if (8 + headerLen > src.size) {
      fail(`header length ${headerLen} runs past the end of the file (${src.size} bytes)`);
    }
    const headerBytes = await readExact(src, 8, headerLen, 'the header');
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
    } catch {
      return fail('header is not valid UTF-8');
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      return fail(`header is not valid JSON (${clip((err as Error).message)})`);
    }
    if (!isPlainObject(json)) return fail(`header must be a JSON object, got ${show(json)}`);
    const dataOffset = 8 + headerLen;
    const { entries, metadata } = parseHeader(file, json, src.size - dataOffset);
    return new SafetensorsFile(src, entries, metadata, dataOffset);
  }

  /** Tensor names in header order. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: [...e.shape], begin: e.begin, end: e.end };
  }

  /** Reads this tensor's bytes only, into a freshly allocated (hence aligned) typed array. */
  async get(name: string): Promise<NDArray> {
    const e = this.entry(name);
    requireLittleEndianHost(`${this.src.name}: tensor "${clip(name)}"`, e.dtype);
    const nbytes = e.end - e.begin;
    const data = allocate(e.dtype, nbytes / BYTES_PER_ELEMENT[e.dtype]);
    if (nbytes > 0) {
      const at = this.dataOffset + e.begin;
      if (this.src.readInto) await this.src.readInto(at, bytesOf(data));
      else bytesOf(data).set(await readExact(this.src, at, nbytes, `tensor "${clip(name)}"`));
    }
    return new NDArray(e.dtype, [...e.shape], data);
  }

  /** Like `get`, upcast to float32 (16-bit floats decoded, float64 rounded, integers converted). */
  async getFloat32(name: string): Promise<NDArray> {
    return (await this.get(name)).toFloat32();
  }

  async close(): Promise<void> {
    await this.src.close?.();
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) {
      throw new ImagenError(
        'NOT_FOUND',
        `${this.src.name}: no tensor named "${clip(name)}" (the file has ${this.entries.size} tensors)`,
      );
    }
    return e;
  }
}

export interface SerializedSafetensors {
  /** The 8-byte length prefix plus the space-padded JSON header: write it, then every chunk. */
  header: Uint8Array;
  /** One view per tensor (sorted by name) onto the tensor's own bytes — not copies. */
  chunks: Uint8Array[];
  totalSize: number;
}

/** Code-unit order, like `Array.prototype.sort()`, spelled out so the comparator is explicit. */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Lay out tensors as a safetensors file without copying their data. Header keys are
 * emitted in sorted order (built by hand: `JSON.stringify` would move integer-like keys
 * such as "0" to the front), `__metadata__` first, padded with spaces so the data section
 * starts 8-byte aligned as the Python library does.
 */
export function serializeSafetensors(
  tensors: Record<string, NDArray>,
  metadata?: Record<string, string>,
): SerializedSafetensors {
  const specs: TensorSpec[] = [];
  const chunks: Uint8Array[] = [];
  for (const name of Object.keys(tensors).sort(byName)) {
    const t = tensors[name]!;
    requireLittleEndianHost(`safetensors: tensor "${clip(name)}"`, t.dtype);
    const data = t.data;
    if (data.BYTES_PER_ELEMENT !== BYTES_PER_ELEMENT[t.dtype]) {
      throw new ImagenError(
        'DTYPE_MISMATCH',
        `safetensors: tensor "${clip(name)}" is ${t.dtype} but holds a ${data.constructor.name}`,
      );
    }
    specs.push({ name, dtype: t.dtype, shape: t.shape });
    chunks.push(bytesOf(data));
  }
  const { header, dataBytes } = safetensorsHeader(specs, metadata);
  return { header, chunks, totalSize: header.byteLength + dataBytes };
}

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

/**
 * The header (length prefix + JSON, space-padded to 8 bytes) of a file whose tensors follow in
 * `specs` order. Lets a writer stream multi-GB files tensor by tensor without holding them.
 */
export function safetensorsHeader(
  specs: readonly TensorSpec[],
  metadata?: Record<string, string>,
): { header: Uint8Array; dataBytes: number } {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const kv = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string') {
        throw new ImagenError(
          'BAD_INPUT',
          `safetensors metadata "${clip(k)}" must be a string, got ${show(v)}`,
        );
      }
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${kv.join(',')}}`);
  }
  let offset = 0;
  for (const t of specs) {
    if (t.name === '__metadata__') {
      throw new ImagenError('BAD_INPUT', 'safetensors: "__metadata__" is reserved and cannot name a tensor');
    }
    const st = TO_ST.get(t.dtype);
    if (st === undefined)
      throw new ImagenError('UNSUPPORTED', `safetensors: tensor "${t.name}" has dtype ${t.dtype}`);
    const end = offset + t.shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[t.dtype];
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"${st}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, dataBytes: offset };
}

/** `serializeSafetensors` concatenated into one buffer (small files, tests, browser downloads). */
export function encodeSafetensors(
  tensors: Record<string, NDArray>,
  metadata?: Record<string, string>,
): Uint8Array {
  const { header, chunks, totalSize } = serializeSafetensors(tensors, metadata);
  const out = new Uint8Array(totalSize);
  out.set(header, 0);
  let at = header.byteLength;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
