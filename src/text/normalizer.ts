/**
 * SentencePiece text normalisation (the behaviour of sentencepiece `normalizer.cc`), working on
 * UTF-8 bytes exactly as the C++ code does:
 *
 * - the precompiled charsmap (e.g. `nmt_nfkc`): `<u32 LE trie byte size><Darts double-array trie
 *   (u32 units)><NUL-separated normalized strings>`; at each input position the LONGEST key of the
 *   trie that prefixes the remaining bytes is replaced by its normalized string, otherwise one UTF-8
 *   character is copied unchanged (a malformed byte becomes U+FFFD and consumes one byte);
 * - user-defined symbols are matched first and never normalised;
 * - `remove_extra_whitespaces`: leading spaces dropped, internal runs collapsed, trailing dropped;
 * - `add_dummy_prefix`: one "▁" in front (or behind with `treat_whitespace_as_suffix`);
 * - `escape_whitespaces`: " " → U+2581 "▁".
 */
import { ImagenError } from '../engine/errors.js';
import type { NormalizerSpec } from './spiece.js';

export const SPACE_SYMBOL = '\u2581';
const SPACE_SYMBOL_BYTES = Uint8Array.of(0xe2, 0x96, 0x81);
const REPLACEMENT_BYTES = Uint8Array.of(0xef, 0xbf, 0xbd);
const SPACE = 0x20;

export const utf8Encoder = new TextEncoder();
export const utf8Decoder = new TextDecoder('utf-8');

/** Length of the UTF-8 sequence starting with byte `b` (as sentencepiece `OneCharLen`). */
export function oneCharLen(b: number): number {
  // "\x01\x01...\x02\x02\x03\x04" lookup on the high nibble.
  const hi = b >>> 4;
  if (hi < 0xc) return 1;
  if (hi < 0xe) return 2;
  if (hi === 0xe) return 3;
  return 4;
}

/**
 * Length of the valid UTF-8 character at `pos`, or 0 when the bytes there are malformed
 * (sentencepiece `IsValidDecodeUTF8`: rejects overlongs, surrogates, > U+10FFFF, truncation).
 */
export function validUtf8CharLen(buf: Uint8Array, pos: number, end: number): number {
  const b0 = buf[pos]!;
  if (b0 < 0x80) return 1;
  const avail = end - pos;
  const cont = (i: number): number => {
    const b = buf[pos + i]!;
    return (b & 0xc0) === 0x80 ? b & 0x3f : -1;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    if (avail < 2 || cont(1) < 0) return 0;
    return 2;
  }
  if (b0 >= 0xe0 && b0 <= 0xef) {
    if (avail < 3) return 0;
    const c1 = cont(1);
    const c2 = cont(2);
    if (c1 < 0 || c2 < 0) return 0;
    const cp = ((b0 & 0x0f) << 12) | (c1 << 6) | c2;
    if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return 3;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    if (avail < 4) return 0;
    const c1 = cont(1);
    const c2 = cont(2);
    const c3 = cont(3);
    if (c1 < 0 || c2 < 0 || c3 < 0) return 0;
    const cp = ((b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3;
    if (cp < 0x10000 || cp > 0x10ffff) return 0;
    return 4;
  }
  return 0;
}

/**
 * A plain byte trie (used for the vocabulary and the user-defined-symbol matcher).
 * Transitions live in one Map keyed `node * 256 + byte`.
 */
export class ByteTrie {
  private readonly next = new Map<number, number>();
  private values: number[] = [-1];

  get nodeCount(): number {
    return this.values.length;
  }

  insert(key: Uint8Array, value: number): boolean {
    let node = 0;
    for (const b of key) {
      const k = node * 256 + b;
      let child = this.next.get(k);
      if (child === undefined) {
        child = this.values.length;
        this.values.push(-1);
        this.next.set(k, child);
      }
      node = child;
    }
    if (this.values[node] !== -1) return false;
    this.values[node] = value;
    return true;
  }

  /** Child of `node` on `byte`, or -1. */
  step(node: number, byte: number): number {
    return this.next.get(node * 256 + byte) ?? -1;
  }

  value(node: number): number {
    return this.values[node]!;
  }

  /** Length of the longest key that prefixes buf[pos, end), or 0. */
  longestPrefix(buf: Uint8Array, pos: number, end: number): number {
    let node = 0;
    let best = 0;
    for (let i = pos; i < end; i++) {
      node = this.step(node, buf[i]!);
      if (node < 0) break;
      if (this.values[node]! >= 0) best = i + 1 - pos;
    }
    return best;
  }
}

/**
 * The `precompiled_charsmap` blob: a Darts-clone double array (unit layout: bit 8 = has_leaf,
 * bit 9 = offset shift flag, bits 10..31 = offset, label = bits 0..7 | bit 31, value = bits 0..30)
 * mapping UTF-8 byte strings to offsets into a block of NUL-terminated replacement strings.
 */
export class PrecompiledCharsmap {
  private readonly units: Uint32Array;
  private readonly normalized: Uint8Array;

  constructor(blob: Uint8Array, source = 'precompiled_charsmap') {
    if (blob.length <= 4) {
      throw new ImagenError('FILE_INVALID', `${source}: blob of ${blob.length} bytes is too small`);
    }
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (trieSize > blob.length - 4) {
      throw new ImagenError(
        'FILE_INVALID',
        `${source}: trie size ${trieSize} exceeds the blob (${blob.length - 4} bytes after the header)`,
      );
    }
    if (trieSize % 4 !== 0 || trieSize === 0) {
      throw new ImagenError(
        'FILE_INVALID',
        `${source}: trie size ${trieSize} is not a positive multiple of 4`,
      );
    }
    const n = trieSize / 4;
    this.units = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.units[i] = dv.getUint32(4 + 4 * i, true);
    this.normalized = blob.slice(4 + trieSize);
  }

  /**
   * Longest rule matching a prefix of buf[pos, end): [matched byte length, replacement bytes],
   * or undefined when no rule matches.
   */
  match(buf: Uint8Array, pos: number, end: number): [number, Uint8Array] | undefined {
    const units = this.units;
    const n = units.length;
    let nodePos = offsetOf(units[0]!);
    let longest = 0;
    let longestValue = 0;
    for (let i = pos; i < end; i++) {
      const c = buf[i]!;
      nodePos = (nodePos ^ c) >>> 0;
      if (nodePos >= n) break;
      const unit = units[nodePos]!;
      if ((unit & 0x800000ff) >>> 0 !== c) break;
      nodePos = (nodePos ^ offsetOf(unit)) >>> 0;
      if ((unit >>> 8) & 1) {
        if (nodePos >= n) break;
        // Every leaf is longer than the previous one, so the last is the longest.
        longest = i + 1 - pos;
        longestValue = units[nodePos]! & 0x7fffffff;
      }
    }
    if (longest === 0) return undefined;
    if (longestValue >= this.normalized.length) {
      // Corrupt value: behave as if the string were empty rather than read out of bounds.
      return [longest, new Uint8Array(0)];
    }
    let stop = this.normalized.indexOf(0, longestValue);
    if (stop < 0) stop = this.normalized.length;
    return [longest, this.normalized.subarray(longestValue, stop)];
  }
}

function offsetOf(unit: number): number {
  return ((unit >>> 10) << ((unit & (1 << 9)) >>> 6)) >>> 0;
}

/** Growable byte buffer. */
class ByteBuilder {
  buf = new Uint8Array(64);
  length = 0;

  push(b: number): void {
    if (this.length === this.buf.length) this.grow(1);
    this.buf[this.length++] = b;
  }

  append(bytes: Uint8Array): void {
    if (this.length + bytes.length > this.buf.length) this.grow(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  endsWith(bytes: Uint8Array): boolean {
    if (this.length < bytes.length) return false;
    for (let i = 0; i < bytes.length; i++) {
      if (this.buf[this.length - bytes.length + i] !== bytes[i]) return false;
    }
    return true;
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  private grow(extra: number): void {
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + extra));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
}

export interface NormalizerOptions {
  /** TrainerSpec.treat_whitespace_as_suffix */
  treatWhitespaceAsSuffix?: boolean;
  /** User-defined pieces: matched before normalisation and copied verbatim. */
  userDefinedSymbols?: readonly string[];
  /** Overrides NormalizerSpec.add_dummy_prefix (transformers' non-legacy T5 disables it). */
  addDummyPrefix?: boolean;
}

export class SentencePieceNormalizer {
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
  readonly treatWhitespaceAsSuffix: boolean;
  private readonly charsmap: PrecompiledCharsmap | undefined;
  private readonly matcher: ByteTrie | undefined;

  constructor(spec: NormalizerSpec, opts: NormalizerOptions = {}) {
    this.addDummyPrefix = opts.addDummyPrefix ?? spec.addDummyPrefix;
    this.removeExtraWhitespaces = spec.removeExtraWhitespaces;
    this.escapeWhitespaces = spec.escapeWhitespaces;
    this.treatWhitespaceAsSuffix = opts.treatWhitespaceAsSuffix ?? false;
    this.charsmap = spec.precompiledCharsmap
      ? new PrecompiledCharsmap(
          spec.precompiledCharsmap,
          `normalizer_spec '${spec.name}' precompiled_charsmap`,
        )
      : undefined;
    if (opts.userDefinedSymbols && opts.userDefinedSymbols.length > 0) {
      this.matcher = new ByteTrie();
      for (const s of opts.userDefinedSymbols) this.matcher.insert(utf8Encoder.encode(s), 1);
    }
  }

  /**
   * Normalise one prefix of buf[pos, end): [replacement bytes, consumed bytes]
   * (sentencepiece `NormalizePrefix`).
   */
  normalizePrefix(buf: Uint8Array, pos: number, end: number): [Uint8Array, number] {
    if (this.matcher) {
      const m = this.matcher.longestPrefix(buf, pos, end);
      if (m > 0) return [buf.subarray(pos, pos + m), m];
    }
    const hit = this.charsmap?.match(buf, pos, end);
    if (hit) return [hit[1], hit[0]];
    const len = validUtf8CharLen(buf, pos, end);
    if (len === 0) return [REPLACEMENT_BYTES, 1];
    return [buf.subarray(pos, pos + len), len];
  }

  /** Normalise UTF-8 bytes (sentencepiece `Normalizer::Normalize`). */
  normalizeBytes(input: Uint8Array): Uint8Array {
    let pos = 0;
    const end = input.length;
    if (end === 0) return new Uint8Array(0);

    if (this.removeExtraWhitespaces) {
      while (pos < end) {
        const [sp, consumed] = this.normalizePrefix(input, pos, end);
        if (!(sp.length === 1 && sp[0] === SPACE)) break;
        pos += consumed;
      }
    }
    if (pos >= end) return new Uint8Array(0);

    const out = new ByteBuilder();
    const addWs = (): void => {
      if (this.escapeWhitespaces) out.append(SPACE_SYMBOL_BYTES);
      else out.push(SPACE);
    };
    if (!this.treatWhitespaceAsSuffix && this.addDummyPrefix) addWs();

    let isPrevSpace = this.removeExtraWhitespaces;
    while (pos < end) {
      const [sp, consumed] = this.normalizePrefix(input, pos, end);
      let s = 0;
      while (isPrevSpace && s < sp.length && sp[s] === SPACE) s++;
      if (s < sp.length) {
        for (let k = s; k < sp.length; k++) {
          const b = sp[k]!;
          if (this.escapeWhitespaces && b === SPACE) out.append(SPACE_SYMBOL_BYTES);
          else out.push(b);
        }
        isPrevSpace = sp[sp.length - 1] === SPACE;
      }
      pos += consumed;
      if (!this.removeExtraWhitespaces) isPrevSpace = false;
    }

    if (this.removeExtraWhitespaces) {
      const space = this.escapeWhitespaces ? SPACE_SYMBOL_BYTES : Uint8Array.of(SPACE);
      while (out.endsWith(space)) out.length -= space.length;
    }
    if (this.treatWhitespaceAsSuffix && this.addDummyPrefix) addWs();
    return out.result();
  }

  /** Normalise a JS string; returns the normalized text (UTF-8 decoded). */
  normalize(text: string): string {
    return utf8Decoder.decode(this.normalizeBytes(utf8Encoder.encode(text)));
  }
}
