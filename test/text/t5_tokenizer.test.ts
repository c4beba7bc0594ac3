import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ImagenError } from '../../src/engine/errors.js';
import { parseSentencePieceModel } from '../../src/text/spiece.js';
import { T5Tokenizer } from '../../src/text/tokenizer.js';
import { SentencePieceProcessor } from '../../src/text/unigram.js';
import { fixture } from '../helpers/fixtures.js';

interface Case {
  text: string;
  raw_sentencepiece_encode: number[];
  spiece_model_input_ids: number[];
  spiece_model_padded_77: { input_ids: number[]; attention_mask: number[] };
}

const dir = fixture('t5-tokenizer');

describe.skipIf(!dir)('T5Tokenizer on the t5-tokenizer fixture (spiece.model)', () => {
  const modelBytes = new Uint8Array(readFileSync(join(dir!, 'spiece.model')));
  const cases = JSON.parse(readFileSync(join(dir!, 'cases.json'), 'utf8')) as Case[];
  const config = JSON.parse(readFileSync(join(dir!, 'tokenizer_config.json'), 'utf8')) as {
    extra_ids: number;
  };
  const sp = SentencePieceProcessor.fromBytes(modelBytes);
  const tok = new T5Tokenizer(modelBytes, { extraIds: config.extra_ids, legacy: true });

  it('parses the model proto', () => {
    const proto = parseSentencePieceModel(modelBytes);
    expect(proto.pieces.length).toBe(1200);
    expect(proto.trainerSpec).toMatchObject({
      modelType: 1,
      unkId: 2,
      eosId: 1,
      padId: 0,
      bosId: -1,
      byteFallback: false,
    });
    expect(proto.normalizerSpec.name).toBe('nmt_nfkc');
    expect(proto.normalizerSpec.precompiledCharsmap?.length).toBe(240007);
    expect(proto.normalizerSpec).toMatchObject({
      addDummyPrefix: true,
      removeExtraWhitespaces: true,
      escapeWhitespaces: true,
    });
    expect(proto.pieces.slice(0, 4).map((p) => [p.piece, p.type])).toEqual([
      ['<pad>', 3],
      ['</s>', 1 + 2],
      ['<unk>', 2],
      ['\u2581', 1],
    ]);
  });

  it.each(cases.map((c) => [c.text, c] as const))('raw sentencepiece encode %j', (_t, c) => {
    expect(sp.encode(c.text)).toEqual(c.raw_sentencepiece_encode);
  });

  it.each(cases.map((c) => [c.text, c] as const))('T5Tokenizer input_ids %j', (_t, c) => {
    expect(tok.encode(c.text)).toEqual(c.spiece_model_input_ids);
  });

  it('padded to 77 with truncation matches for every case (one batch)', () => {
    const enc = tok.encodeBatch(
      cases.map((c) => c.text),
      { maxLength: 77, padding: 'max_length', truncation: true },
    );
    expect(enc.inputIds.dtype).toBe('int64');
    expect(enc.inputIds.shape).toEqual([cases.length, 77]);
    expect(enc.attentionMask.shape).toEqual([cases.length, 77]);
    const ids = enc.inputIds.toArray();
    const mask = enc.attentionMask.toArray();
    cases.forEach((c, b) => {
      expect(ids.slice(b * 77, (b + 1) * 77)).toEqual(c.spiece_model_padded_77.input_ids);
      expect(mask.slice(b * 77, (b + 1) * 77)).toEqual(c.spiece_model_padded_77.attention_mask);
    });
  });

  it('truncation: a long prompt gives 77 ids ending in </s> and sets the flag', () => {
    const long = 'a red circle to the left of a blue square '.repeat(20);
    const enc = tok.encodeBatch([long, 'a'], {});
    const row = enc.inputIds.toArray().slice(0, 77);
    expect(row).toHaveLength(77);
    expect(row[76]).toBe(tok.eosId);
    expect(row.slice(0, 76)).toEqual(tok.encode(long, false).slice(0, 76));
    expect(
      enc.attentionMask
        .toArray()
        .slice(0, 77)
        .every((v) => v === 1),
    ).toBe(true);
    expect(enc.truncated).toEqual([true, false]);
    const exact = tok.encode(long, false).slice(0, 76);
    expect(exact).toHaveLength(76);
  });

  it('empty prompt (the default negative prompt) → [1, 0, …] with mask [1, 0, …]', () => {
    const enc = tok.encodeBatch(['']);
    const ids = enc.inputIds.toArray();
    const mask = enc.attentionMask.toArray();
    expect(ids[0]).toBe(1);
    expect(ids.slice(1).every((v) => v === 0)).toBe(true);
    expect(mask[0]).toBe(1);
    expect(mask.slice(1).every((v) => v === 0)).toBe(true);
    expect(enc.truncated).toEqual([false]);
  });

  it('padding modes', () => {
    const longest = tok.encodeBatch(['a', 'a red circle'], { padding: 'longest' });
    const n = tok.encode('a red circle').length;
    expect(longest.inputIds.shape).toEqual([2, n]);
    expect(longest.inputIds.toArray().slice(0, n)).toEqual([7, 1, ...new Array(n - 2).fill(0)]);
    expect(() => tok.encodeBatch(['a', 'a red circle'], { padding: false })).toThrow(ImagenError);
    const same = tok.encodeBatch(['a', 'a'], { padding: false });
    expect(same.inputIds.shape).toEqual([2, 2]);
    const noSpecial = tok.encodeBatch(['a'], { addSpecialTokens: false, padding: 'longest' });
    expect(noSpecial.inputIds.toArray()).toEqual([7]);
    const noTrunc = tok.encodeBatch(['x '.repeat(100)], { truncation: false, maxLength: 10 });
    expect(noTrunc.inputIds.shape).toEqual([1, 201]);
    expect(noTrunc.truncated).toEqual([false]);
  });

  it('special tokens in the text are single ids and </s> is not doubled', () => {
    expect(tok.encode('a </s>')).toEqual([7, 1]);
    expect(tok.encode('a <pad> a')).toEqual([7, 0, 7, 1]);
    expect(tok.encode('<unk>')).toEqual([2, 1]);
  });

  it('decode', () => {
    expect(tok.decode(tok.encode('a red circle to the left of a blue square'))).toBe(
      'a red circle to the left of a blue square',
    );
    expect(tok.decode([7, 1, 0, 0], { skipSpecialTokens: false })).toBe('a </s> <pad> <pad>');
    // <unk> is a special token of T5Tokenizer (skipped); raw sentencepiece decoding shows " ⁇ ".
    expect(tok.decode(tok.encode('unknown ☃'))).toBe('unknown');
    expect(sp.decode(sp.encode('unknown ☃'))).toBe('unknown  \u2047 '); // same as sentencepiece
  });

  it('sizes and special ids come from the model file', () => {
    expect(tok.vocabSize).toBe(1200);
    expect(tok.padId).toBe(0);
    expect(tok.eosId).toBe(1);
    expect(tok.unkId).toBe(2);
  });

  it('extra_ids are counted from the end: <extra_id_0> = vocab_size − 1', () => {
    const t = new T5Tokenizer(modelBytes, { extraIds: 100 });
    expect(t.vocabSize).toBe(1300);
    expect(t.encode('<extra_id_0>')).toEqual([1299, 1]);
    expect(t.encode('<extra_id_99>')).toEqual([1200, 1]);
    // lstrip/rstrip: the spaces around a sentinel are swallowed, as in transformers.
    expect(t.encode('a <extra_id_1> a')).toEqual([7, 1298, 7, 1]);
  });

  it('non-legacy mode (legacy=false) keeps the dummy-prefix behaviour for plain text', () => {
    const t = new T5Tokenizer(modelBytes, { extraIds: 0, legacy: false });
    expect(t.encode('a red circle')).toEqual(tok.encode('a red circle'));
    expect(t.encode('')).toEqual([1]);
  });

  it('rejects bad options', () => {
    expect(() => tok.encodeBatch(['a'], { maxLength: 0 })).toThrow(/maxLength/);
    expect(() => tok.encodeBatch([3 as unknown as string])).toThrow(/texts\[0\]/);
  });
});
