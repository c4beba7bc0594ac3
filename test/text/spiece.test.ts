import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ImagenError } from '../../src/engine/errors.js';
import { PrecompiledCharsmap, SentencePieceNormalizer } from '../../src/text/normalizer.js';
import { parseSentencePieceModel } from '../../src/text/spiece.js';
import { T5Tokenizer } from '../../src/text/tokenizer.js';
import { SentencePieceProcessor } from '../../src/text/unigram.js';
import { fixture } from '../helpers/fixtures.js';

function expectFileInvalid(fn: () => unknown): ImagenError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ImagenError);
    expect((e as ImagenError).code).toBe('FILE_INVALID');
    return e as ImagenError;
  }
  throw new Error('expected FILE_INVALID');
}

/** Deterministic pseudo-random bytes (xorshift32). */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Hand-built protobuf helpers for tiny models. */
function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
function field(num: number, wire: number, payload: number[]): number[] {
  return [...varint(num * 8 + wire), ...payload];
}
function lenField(num: number, bytes: number[]): number[] {
  return field(num, 2, [...varint(bytes.length), ...bytes]);
}
function str(s: string): number[] {
  return [...new TextEncoder().encode(s)];
}
function piece(p: string, score: number, type?: number): number[] {
  const f = new Uint8Array(new Float32Array([score]).buffer);
  return lenField(1, [
    ...lenField(1, str(p)),
    ...field(2, 5, [...f]),
    ...(type ? field(3, 0, varint(type)) : []),
  ]);
}

describe('spiece.model parser', () => {
  it('decodes a hand-built model (negative int32 ids, defaults, unknown fields skipped)', () => {
    const trainer = [
      ...field(3, 0, varint(1)),
      ...field(40, 0, varint(0)),
      ...field(41, 0, varint(-1)),
      ...field(99, 0, varint(7)),
    ];
    const normalizer = [...lenField(1, str('identity')), ...field(3, 0, varint(0))];
    const bytes = Uint8Array.from([
      ...piece('<unk>', 0, 2),
      ...piece('a', -1),
      ...piece('b', -2),
      ...piece('ab', -1.5),
      ...piece('▁', -3),
      ...lenField(2, trainer),
      ...lenField(3, normalizer),
      ...lenField(
        4,
        [1, 2, 3].flatMap(() => lenField(1, str('x'))),
      ),
    ]);
    const proto = parseSentencePieceModel(bytes);
    expect(proto.pieces.map((p) => p.piece)).toEqual(['<unk>', 'a', 'b', 'ab', '▁']);
    expect(proto.pieces[3]!.score).toBeCloseTo(-1.5);
    expect(proto.trainerSpec).toMatchObject({ unkId: 0, bosId: -1, eosId: 2, padId: -1, modelType: 1 });
    expect(proto.normalizerSpec).toMatchObject({
      name: 'identity',
      addDummyPrefix: false,
      removeExtraWhitespaces: true,
    });
    const sp = new SentencePieceProcessor(proto);
    // "ab" (−1.5) beats "a"+"b" (−3); "c" is unknown.
    expect(sp.encodeAsPieces('abc ab')).toEqual(['ab', 'c', '▁', 'ab']);
    expect(sp.encode('abc ab')).toEqual([3, 0, 4, 3]);
  });

  it('user-defined pieces are always matched whole and not normalised', () => {
    const bytes = Uint8Array.from([
      ...piece('<unk>', 0, 2),
      ...piece('a', -1),
      ...piece('b', -1),
      ...piece('▁', -1),
      ...piece('<sep>', 0, 4),
      ...lenField(2, field(3, 0, varint(1))),
      ...lenField(3, []),
    ]);
    const sp = SentencePieceProcessor.fromBytes(bytes);
    expect(sp.encodeAsPieces('a<sep>b')).toEqual(['▁', 'a', '<sep>', 'b']);
  });

  it('rejects an empty file, truncated bytes and random bytes with FILE_INVALID', () => {
    expect(expectFileInvalid(() => parseSentencePieceModel(new Uint8Array(0))).message).toMatch(/empty/);
    for (let seed = 1; seed <= 50; seed++) {
      expectFileInvalid(() => SentencePieceProcessor.fromBytes(randomBytes(64 + seed * 37, seed)));
    }
    // A length prefix that runs past the end.
    expect(
      expectFileInvalid(() => parseSentencePieceModel(Uint8Array.from([0x0a, 0x7f, 0x0a]))).message,
    ).toMatch(/runs past the end/);
    // An unterminated varint.
    expect(
      expectFileInvalid(() => parseSentencePieceModel(Uint8Array.from([0x0a, 0xff, 0xff]))).message,
    ).toMatch(/varint/);
  });

  it('rejects models without <unk> or with duplicate pieces', () => {
    const specs = [...lenField(2, field(3, 0, varint(1))), ...lenField(3, [])];
    expectFileInvalid(() => SentencePieceProcessor.fromBytes(Uint8Array.from([...piece('a', -1), ...specs])));
    expectFileInvalid(() =>
      SentencePieceProcessor.fromBytes(
        Uint8Array.from([...piece('<unk>', 0, 2), ...piece('a', -1), ...piece('a', -2), ...specs]),
      ),
    );
    // Pieces only (a file cut between messages): no trainer_spec.
    expect(
      expectFileInvalid(() => parseSentencePieceModel(Uint8Array.from(piece('<unk>', 0, 2)))).message,
    ).toMatch(/trainer_spec/);
  });

  it('precompiled charsmap with a bad header is FILE_INVALID', () => {
    expectFileInvalid(() => new PrecompiledCharsmap(Uint8Array.from([1, 2])));
    expectFileInvalid(() => new PrecompiledCharsmap(Uint8Array.from([0xff, 0, 0, 0, 1, 2, 3, 4])));
  });
});

const dir = fixture('t5-tokenizer');

describe.skipIf(!dir)('spiece.model fixture: corruption and normalisation', () => {
  const bytes = new Uint8Array(readFileSync(join(dir!, 'spiece.model')));

  it('every truncation of the real file is FILE_INVALID (never a crash or hang)', () => {
    for (const n of [1, 2, 3, 10, 100, 1000, 5000, 12345, bytes.length - 1000, bytes.length - 1]) {
      const e = expectFileInvalid(() => new T5Tokenizer(bytes.subarray(0, n), { source: 'x/spiece.model' }));
      expect(e.message).toMatch(/x\/spiece\.model/);
    }
  });

  it('random bytes spliced into the file are FILE_INVALID or still a working model', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const copy = bytes.slice();
      copy.set(randomBytes(64, seed), 100 + seed * 997);
      try {
        const tok = new T5Tokenizer(copy);
        expect(Array.isArray(tok.encode('a red circle'))).toBe(true);
      } catch (e) {
        expect(e).toBeInstanceOf(ImagenError);
      }
    }
  });

  it('600 random strings (NFKC-sensitive characters, whitespace, controls) match sentencepiece 0.2.2', () => {
    // data/spiece_fuzz.json: random concatenations of words and tricky characters, encoded with
    // Python sentencepiece 0.2.2 `SentencePieceProcessor(model_file=spiece.model).encode(text)`.
    const here = dirname(fileURLToPath(import.meta.url));
    const cases = JSON.parse(readFileSync(join(here, 'data', 'spiece_fuzz.json'), 'utf8')) as Array<{
      text: string;
      ids: number[];
    }>;
    const sp = SentencePieceProcessor.fromBytes(bytes);
    const bad = cases.filter((c) => JSON.stringify(sp.encode(c.text)) !== JSON.stringify(c.ids));
    expect(bad).toEqual([]);
  });

  it('nmt_nfkc normalisation: NFKC, whitespace collapsing, dummy prefix, ▁ escaping', () => {
    const proto = parseSentencePieceModel(bytes);
    const n = new SentencePieceNormalizer(proto.normalizerSpec);
    expect(n.normalize('  Hello   World  ')).toBe('▁Hello▁World');
    expect(n.normalize('ﬁ Ｆｕｌｌ ℃ ①')).toBe('▁fi▁Full▁°C▁1');
    expect(n.normalize('a\tb\nc')).toBe('▁a▁b▁c');
    expect(n.normalize('   ')).toBe('');
    expect(n.normalize('')).toBe('');
  });
});
