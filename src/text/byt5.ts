/**
 * ByT5 tokenizer (transformers `ByT5Tokenizer`): no vocabulary file. Ids: `<pad>` 0, `</s>` 1,
 * `<unk>` 2, byte b → b + 3, `<extra_id_i>` → 259 + i (the order in which transformers adds them;
 * an explicit `added_tokens_decoder` overrides this). `<pad>`/`</s>`/`<unk>` written in the text are
 * recognised as tokens and swallow the whitespace around them (lstrip/rstrip, as transformers).
 * `</s>` is appended unless the ids already end with it.
 */
import { ImagenError } from '../engine/errors.js';
import { utf8Decoder, utf8Encoder, validUtf8CharLen } from './normalizer.js';
import {
  type AddedTokenSpec,
  AddedTokenSplitter,
  type BatchEncoding,
  type DecodeOptions,
  type EncodeBatchOptions,
  encodeBatchWithEos,
  encodeWithEos,
  type TextTokenizer,
} from './tokenizer.js';

export const BYT5_OFFSET = 3;

export interface ByT5Options {
  /** Number of `<extra_id_i>` sentinels (transformers default 125 → vocab 384). */
  extraIds?: number;
  /** tokenizer_config.json `added_tokens_decoder`, when present. */
  addedTokens?: AddedTokenSpec[] | undefined;
}

export class ByT5Tokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly padId = 0;
  readonly eosId = 1;
  readonly unkId = 2;
  readonly added: AddedTokenSplitter;

  constructor(opts: ByT5Options = {}) {
    const extraIds = opts.extraIds ?? 125;
    if (!Number.isInteger(extraIds) || extraIds < 0) {
      throw new ImagenError(
        'CONFIG_INVALID',
        `ByT5Tokenizer: extra_ids must be a non-negative integer, got ${extraIds}`,
      );
    }
    let tokens: AddedTokenSpec[];
    if (opts.addedTokens && opts.addedTokens.length > 0) tokens = opts.addedTokens;
    else {
      tokens = [
        { content: '<pad>', id: 0, lstrip: true, rstrip: true, special: true },
        { content: '</s>', id: 1, lstrip: true, rstrip: true, special: true },
        { content: '<unk>', id: 2, lstrip: true, rstrip: true, special: true },
      ];
      for (let i = 0; i < extraIds; i++) {
        tokens.push({ content: `<extra_id_${i}>`, id: 256 + BYT5_OFFSET + i, special: true });
      }
    }
    this.added = new AddedTokenSplitter(tokens);
    let maxId = 256 + BYT5_OFFSET - 1;
    for (const t of tokens) maxId = Math.max(maxId, t.id);
    this.vocabSize = maxId + 1;
  }

  encodeRaw(text: string): number[] {
    if (typeof text !== 'string')
      throw new ImagenError('BAD_INPUT', `ByT5Tokenizer: expected a string, got ${typeof text}`);
    const ids: number[] = [];
    for (const chunk of this.added.split(text)) {
      if (chunk.token) ids.push(chunk.token.id);
      else for (const b of utf8Encoder.encode(chunk.text)) ids.push(b + BYT5_OFFSET);
    }
    return ids;
  }

  encode(text: string, addSpecialTokens = true): number[] {
    return encodeWithEos(this, text, addSpecialTokens);
  }

  encodeBatch(texts: readonly string[], opts: EncodeBatchOptions = {}): BatchEncoding {
    return encodeBatchWithEos(this, texts, opts);
  }

  /** Bytes → UTF-8 text; invalid sequences are dropped (Python `errors="ignore"`). */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecialTokens ?? true;
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = Number(ids[i]);
      const tok = this.added.byId.get(id);
      if (tok) {
        if (skip && tok.special !== false) continue;
        for (const b of utf8Encoder.encode(tok.content)) bytes.push(b);
      } else if (id >= BYT5_OFFSET && id < 256 + BYT5_OFFSET) bytes.push(id - BYT5_OFFSET);
      else if (!skip) for (const b of utf8Encoder.encode('<unk>')) bytes.push(b);
    }
    const buf = Uint8Array.from(bytes);
    let out = '';
    let pos = 0;
    while (pos < buf.length) {
      const len = validUtf8CharLen(buf, pos, buf.length);
      if (len === 0) pos++;
      else {
        out += utf8Decoder.decode(buf.subarray(pos, pos + len));
        pos += len;
      }
    }
    return out;
  }
}
