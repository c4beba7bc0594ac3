import { describe, expect, it } from 'vitest';
import { ByT5Tokenizer } from '../../src/text/byt5.js';

describe('ByT5Tokenizer', () => {
  const tok = new ByT5Tokenizer();

  it('ids are UTF-8 bytes + 3 followed by </s>', () => {
    expect(tok.encode('hi')).toEqual([104 + 3, 105 + 3, 1]);
    expect(tok.encode('é')).toEqual([0xc3 + 3, 0xa9 + 3, 1]);
    expect(tok.encode('')).toEqual([1]);
    expect(tok.vocabSize).toBe(384);
    expect([tok.padId, tok.eosId, tok.unkId]).toEqual([0, 1, 2]);
  });

  it('round-trips arbitrary Unicode', () => {
    for (const text of ['a photo of a corgi', 'émigré café naïve', '日本語 🙂🚀', '', 'x\ny\tz']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  it('special tokens in the text, with transformers lstrip/rstrip', () => {
    expect(tok.encode('a </s> b')).toEqual([100, 1, 101, 1]);
    expect(tok.encode('a </s>')).toEqual([100, 1]);
    expect(tok.encode('<extra_id_0>')).toEqual([259, 1]);
  });

  it('decode drops invalid UTF-8 (errors="ignore") and special tokens', () => {
    expect(tok.decode([0xff + 3, 104 + 3, 0xc3 + 3, 1, 0])).toBe('h');
    expect(tok.decode([104 + 3, 1], { skipSpecialTokens: false })).toBe('h</s>');
  });

  it('batches with padding and truncation', () => {
    const enc = tok.encodeBatch(['abcdef', 'a'], { maxLength: 4 });
    expect(enc.inputIds.toArray()).toEqual([100, 101, 102, 1, 100, 1, 0, 0]);
    expect(enc.attentionMask.toArray()).toEqual([1, 1, 1, 1, 1, 1, 0, 0]);
    expect(enc.truncated).toEqual([true, false]);
  });
});
