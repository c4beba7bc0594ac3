import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ImagenError } from '../../src/engine/errors.js';
import { loadTokenizer } from '../../src/platform/node/tokenizer_files.js';
import { ByT5Tokenizer } from '../../src/text/byt5.js';
import { HFJsonTokenizer, T5Tokenizer } from '../../src/text/tokenizer.js';
import { MERGE_ARTICLES_NORMALIZER as MERGE_ARTICLES } from '../../src/text/word_tokenizer_json.js';
import { fixture } from '../helpers/fixtures.js';
import { useTmpDir } from '../helpers/test_dirs.js';
import { wordLevelTokenizerJson } from '../helpers/word_tokenizer.js';

// test/text/data/t5-fast/tokenizer.json was generated from the fixture's spiece.model with
// transformers' T5TokenizerFast.from_pretrained(dir).save_pretrained(out) (see its README.md).
const FAST_DIR = join(dirname(fileURLToPath(import.meta.url)), 'data', 't5-fast');

interface Case {
  text: string;
  spiece_model_input_ids: number[];
  spiece_model_padded_77: { input_ids: number[]; attention_mask: number[] };
}

const dir = fixture('t5-tokenizer');

const tmp = useTmpDir('tokenizer-json-');
/** A fresh folder for one test's tokenizer files, removed with the others after the file's tests. */
const tempDir = (name: string) => {
  const d = tmp.file(name);
  mkdirSync(d);
  return d;
};

describe.skipIf(!dir)('tokenizer.json (fast tokenizer via @huggingface/tokenizers)', () => {
  const cases = JSON.parse(readFileSync(join(dir!, 'cases.json'), 'utf8')) as Case[];
  const json = JSON.parse(readFileSync(join(FAST_DIR, 'tokenizer.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(FAST_DIR, 'tokenizer_config.json'), 'utf8'));
  const tok = new HFJsonTokenizer(json, config);

  it.each(cases.map((c) => [c.text, c] as const))('input_ids %j', (_t, c) => {
    expect(tok.encode(c.text)).toEqual(c.spiece_model_input_ids);
  });

  it('padded 77 batch equals the fixture', () => {
    const enc = tok.encodeBatch(cases.map((c) => c.text));
    const ids = enc.inputIds.toArray();
    const mask = enc.attentionMask.toArray();
    cases.forEach((c, b) => {
      expect(ids.slice(b * 77, (b + 1) * 77)).toEqual(c.spiece_model_padded_77.input_ids);
      expect(mask.slice(b * 77, (b + 1) * 77)).toEqual(c.spiece_model_padded_77.attention_mask);
    });
    const long = tok.encodeBatch(['x '.repeat(200)]);
    expect(long.truncated).toEqual([true]);
    expect(long.inputIds.toArray()[76]).toBe(1);
  });

  it('special ids and decode', () => {
    expect([tok.padId, tok.eosId, tok.vocabSize]).toEqual([0, 1, 1200]);
    expect(tok.decode(tok.encode('a red circle'))).toBe('a red circle');
  });

  it('rejects something that is not a tokenizer.json', () => {
    expect(() => new HFJsonTokenizer({ hello: 1 })).toThrow(ImagenError);
  });
});

describe('loadTokenizer (Node folder loader)', () => {
  it.skipIf(!dir)('spiece.model folder → T5Tokenizer with the config applied', async () => {
    const tok = await loadTokenizer(dir!);
    expect(tok).toBeInstanceOf(T5Tokenizer);
    expect(tok.vocabSize).toBe(1200); // extra_ids = 0 in tokenizer_config.json
    expect(tok.encode('a')).toEqual([7, 1]);
  });

  it('prefers tokenizer.json', async () => {
    const tok = await loadTokenizer(FAST_DIR);
    expect(tok).toBeInstanceOf(HFJsonTokenizer);
  });

  it('ByT5 from config.json', async () => {
    const d = tempDir('byt5');
    writeFileSync(join(d, 'config.json'), JSON.stringify({ tokenizer_class: 'ByT5Tokenizer' }));
    const tok = await loadTokenizer(d);
    expect(tok).toBeInstanceOf(ByT5Tokenizer);
    expect(tok.encode('a')).toEqual([100, 1]);
  });

  it('NOT_FOUND lists what was looked for', async () => {
    const d = tempDir('empty');
    await expect(loadTokenizer(d)).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: /tokenizer\.json.*spiece\.model/,
    });
    await expect(loadTokenizer(join(d, 'missing'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('corrupt spiece.model → FILE_INVALID naming the file', async () => {
    const d = tempDir('corrupt');
    writeFileSync(join(d, 'spiece.model'), Buffer.from([0x0a, 0x05, 0x0a, 0x03, 0x61]));
    await expect(loadTokenizer(d)).rejects.toMatchObject({ code: 'FILE_INVALID', message: /spiece\.model/ });
  });

  it('invalid JSON config → FILE_INVALID', async () => {
    const d = tempDir('badjson');
    writeFileSync(join(d, 'tokenizer_config.json'), '{nope');
    await expect(loadTokenizer(d)).rejects.toMatchObject({ code: 'FILE_INVALID' });
  });
});

describe("word-level tokenizer.json (the shipped model's kind)", () => {
  const words = ['a', 'an', 'orange', 'sign', 'that', 'says', 'moon'];

  it('maps an unknown word to <unk> from tokenizer.json alone, with no tokenizer_config.json', async () => {
    const d = tempDir('word-level');
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(wordLevelTokenizerJson(words)));
    const tok = await loadTokenizer(d);
    expect(tok.encode('a big MOON')).toEqual([3, 2, 9, 1]);
    expect(
      Array.from(tok.encodeBatch(['a big moon'], { maxLength: 5 }).inputIds.data as BigInt64Array),
    ).toEqual([3n, 2n, 9n, 1n, 0n]);
  });

  it('runs a Replace normalizer after Lowercase: "An" reads as "a", other words keep their ids', () => {
    const plain = new HFJsonTokenizer(wordLevelTokenizerJson(words));
    const merged = new HFJsonTokenizer(wordLevelTokenizerJson(words, [MERGE_ARTICLES]));
    expect(plain.encode('An orange sign that says MOON')).not.toEqual(
      plain.encode('a orange sign that says MOON'),
    );
    expect(merged.encode('An orange sign that says MOON')).toEqual(
      plain.encode('a orange sign that says MOON'),
    );
    expect(merged.encode('a sign that says moon, an anchor')).toEqual(
      plain.encode('a sign that says moon, a anchor'),
    );
  });
});
