/**
 * CLIP's byte-level BPE tokenizer (`vocab.json` + `merges.txt`) with the semantics of transformers'
 * slow `CLIPTokenizer` as the Stable Diffusion pipelines call it (ftfy absent, its default):
 *
 * 1. special / added tokens (`<|startoftext|>`, `<|endoftext|>`, the pad token, `added_tokens_decoder`)
 *    are split out of the raw text first — so with the SD 2 / ×4 upscaler pad token `!`, a literal
 *    `!` in a prompt becomes the pad id, exactly as upstream;
 * 2. every other chunk is cleaned like transformers' `BasicTokenizer(strip_accents=False,
 *    do_split_on_punc=False)`: control characters dropped, whitespace runs collapsed, CJK ideographs
 *    spaced apart, NFC, lower-cased;
 * 3. the CLIP regex splits words, numbers (one digit each) and punctuation runs; each piece's UTF-8
 *    bytes are mapped to printable characters (GPT-2's `bytes_to_unicode`), `</w>` marks the end of
 *    the word, and BPE merges are applied by rank;
 * 4. `<|startoftext|>` … `<|endoftext|>` around the ids; truncation keeps both; padding with the pad id.
 *
 * The fast tokenizer (`tokenizer.json`) differs only in step 2 (it neither drops control characters
 * nor spaces CJK ideographs apart); such folders go through `HFJsonTokenizer`.
 *
 * Core module: no node imports. The folder loader is `src/platform/node/clip_loader.ts`.
 */
import { ImagenError } from '../engine/errors.js';
import {
  type AddedTokenSpec,
  AddedTokenSplitter,
  addedTokensFromConfig,
  type BatchEncoding,
  type DecodeOptions,
  type EncodeBatchOptions,
  encodeBatchWith,
  type JsonObject,
  type TextTokenizer,
} from './tokenizer.js';

/** CLIP's pre-tokeniser (transformers `CLIPTokenizer.pat`; the text is already lower-case). */
const CLIP_PATTERN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

/**
 * The real merges.txt holds 48 894 merges after its `#version` line; the slow tokenizer reads lines
 * 1 … 49152 − 256 − 2 and ignores anything after, so we do too.
 */
const MAX_MERGES = 49152 - 256 - 2;

/**
 * GPT-2's reversible byte → printable character table: printable Latin-1 bytes map to themselves,
 * the rest to U+0100 onwards, so BPE never sees whitespace or control characters.
 */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  }
  return table;
}

const BYTE_ENCODER = bytesToUnicode();
const BYTE_DECODER = new Map(BYTE_ENCODER.map((c, b) => [c, b]));

/** transformers `_is_chinese_char`: the CJK ideograph blocks (not Hangul, Hiragana or Katakana). */
function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

const IS_CONTROL = /^\p{C}$/u;
const IS_SPACE_SEPARATOR = /^\p{Zs}$/u;

/**
 * transformers `BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize` joined with
 * spaces: what the slow CLIPTokenizer feeds its regex when ftfy is not installed.
 */
export function clipBasicClean(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || IS_SPACE_SEPARATOR.test(ch)) out += ' ';
    else if (cp === 0 || cp === 0xfffd || IS_CONTROL.test(ch)) continue;
    else if (isCjk(cp)) out += ` ${ch} `;
    else out += ch;
  }
  return out
    .normalize('NFC')
    .split(/\s+/)
    .filter((t) => t.length > 0)
    .map((t) => t.toLowerCase())
    .join(' ');
}

export interface ClipTokenizerOptions {
  bosToken?: string;
  eosToken?: string;
  unkToken?: string;
  /** `<|endoftext|>` for SD 1.x (OpenAI CLIP); `!` (id 0) for SD 2.x and the ×4 upscaler (OpenCLIP). */
  padToken?: string;
  /** Extra added tokens (tokenizer_config.json `added_tokens_decoder`). */
  addedTokens?: AddedTokenSpec[];
  /** tokenizer_config.json `model_max_length` (77 for every CLIP text encoder). */
  modelMaxLength?: number;
  /** Name used in error messages. */
  source?: string;
}

export class ClipTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly modelMaxLength: number;
  readonly added: AddedTokenSplitter;
  private readonly encoder: Map<string, number>;
  private readonly decoder: Map<number, string>;
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();

  /** `vocab`: parsed vocab.json; `merges`: merges.txt text or its lines (a `#version` header is skipped). */
  constructor(
    vocab: Record<string, number>,
    merges: string | readonly string[],
    opts: ClipTokenizerOptions = {},
  ) {
    const source = opts.source ?? 'CLIP tokenizer';
    if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) {
      throw new ImagenError('FILE_INVALID', `${source}: vocab.json must be an object of token → id`);
    }
    this.encoder = new Map();
    this.decoder = new Map();
    for (const [tok, id] of Object.entries(vocab)) {
      if (!Number.isInteger(id) || id < 0)
        throw new ImagenError('FILE_INVALID', `${source}: vocab.json id of ${JSON.stringify(tok)} is ${id}`);
      this.encoder.set(tok, id);
      this.decoder.set(id, tok);
    }
    let lines = typeof merges === 'string' ? merges.trim().split('\n') : [...merges];
    if (lines[0]?.startsWith('#version')) lines = lines.slice(1);
    lines = lines.filter((line) => line.trim().length > 0);
    lines.slice(0, MAX_MERGES).forEach((line, rank) => {
      const parts = line.trim().split(/ +/);
      if (parts.length !== 2) {
        throw new ImagenError(
          'FILE_INVALID',
          `${source}: merges.txt line ${rank + 2} is not two symbols: ${JSON.stringify(line)}`,
        );
      }
      const key = `${parts[0]} ${parts[1]}`;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });

    const bos = opts.bosToken ?? '<|startoftext|>';
    const eos = opts.eosToken ?? '<|endoftext|>';
    const unk = opts.unkToken ?? '<|endoftext|>';
    const pad = opts.padToken ?? '<|endoftext|>';
    const added = new Map<string, AddedTokenSpec>();
    for (const t of opts.addedTokens ?? []) added.set(t.content, t);
    for (const content of [bos, eos, unk, pad]) {
      if (added.has(content)) continue;
      const id = this.encoder.get(content);
      if (id === undefined) {
        throw new ImagenError(
          'FILE_INVALID',
          `${source}: special token ${JSON.stringify(content)} is not in vocab.json`,
        );
      }
      added.set(content, { content, id, special: true });
    }
    this.added = new AddedTokenSplitter([...added.values()]);
    for (const t of added.values()) this.decoder.set(t.id, t.content);
    this.bosId = added.get(bos)!.id;
    this.eosId = added.get(eos)!.id;
    this.unkId = added.get(unk)!.id;
    this.padId = added.get(pad)!.id;
    this.modelMaxLength = opts.modelMaxLength ?? 77;
    let maxId = -1;
    for (const id of this.decoder.keys()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
  }

  /**
   * Tokenizer options from tokenizer_config.json and special_tokens_map.json. The map wins where
   * both name a token, as in transformers' `from_pretrained` (SD 2's tokenizer_config says pad
   * `<|endoftext|>` but its special_tokens_map says `!`, and upstream pads with `!`).
   */
  static optionsFromConfig(config: JsonObject = {}, specialTokensMap: JsonObject = {}): ClipTokenizerOptions {
    const content = (v: unknown): string | undefined =>
      typeof v === 'string'
        ? v
        : v && typeof v === 'object' && typeof (v as JsonObject).content === 'string'
          ? ((v as JsonObject).content as string)
          : undefined;
    const pick = (k: string) => content(specialTokensMap[k]) ?? content(config[k]);
    const opts: ClipTokenizerOptions = {};
    const bos = pick('bos_token');
    const eos = pick('eos_token');
    const unk = pick('unk_token');
    const pad = pick('pad_token');
    if (bos !== undefined) opts.bosToken = bos;
    if (eos !== undefined) opts.eosToken = eos;
    if (unk !== undefined) opts.unkToken = unk;
    if (pad !== undefined) opts.padToken = pad;
    // Saved configs carry model_max_length 77; an absent one gets transformers' huge sentinel, but
    // CLIP has 77 positions, so 77 is the only useful default.
    if (typeof config.model_max_length === 'number' && config.model_max_length <= 1e6) {
      opts.modelMaxLength = config.model_max_length;
    }
    const added = addedTokensFromConfig(config);
    if (added) opts.addedTokens = added;
    return opts;
  }

  /** BPE of one pre-token (already byte-encoded): transformers `CLIPTokenizer.bpe`. */
  bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    let word = [...token];
    word[word.length - 1] += '</w>';
    while (word.length > 1) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      // Merge every non-overlapping occurrence of the pair, left to right.
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          merged.push(first + second);
          i++;
        } else merged.push(word[i]!);
      }
      word = merged;
    }
    this.cache.set(token, word);
    return word;
  }

  /** BPE tokens (strings) of plain text with no special tokens in it. */
  tokenizeChunk(text: string): string[] {
    const out: string[] = [];
    for (const m of clipBasicClean(text).matchAll(CLIP_PATTERN)) {
      const bytes = new TextEncoder().encode(m[0]);
      let mapped = '';
      for (const b of bytes) mapped += BYTE_ENCODER[b];
      out.push(...this.bpe(mapped));
    }
    return out;
  }

  /** Ids without BOS/EOS. */
  encodeRaw(text: string): number[] {
    if (typeof text !== 'string')
      throw new ImagenError('BAD_INPUT', `CLIP tokenizer: expected a string, got ${typeof text}`);
    const ids: number[] = [];
    for (const chunk of this.added.split(text)) {
      if (chunk.token) {
        ids.push(chunk.token.id);
        continue;
      }
      for (const t of this.tokenizeChunk(chunk.text)) ids.push(this.encoder.get(t) ?? this.unkId);
    }
    return ids;
  }

  encode(text: string, addSpecialTokens = true): number[] {
    const ids = this.encodeRaw(text);
    return addSpecialTokens ? [this.bosId, ...ids, this.eosId] : ids;
  }

  /** Default `maxLength` is `model_max_length` (77): what the SD pipelines pass. */
  encodeBatch(texts: readonly string[], opts: EncodeBatchOptions = {}): BatchEncoding {
    return encodeBatchWith(
      {
        encodeRaw: (t) => this.encodeRaw(t),
        addSpecial: (ids) => [this.bosId, ...ids, this.eosId],
        numSpecialTokens: 2,
        padId: this.padId,
      },
      texts,
      { maxLength: this.modelMaxLength, ...opts },
    );
  }

  /** transformers `convert_tokens_to_string`: bytes back to UTF-8, `</w>` → space, trimmed. */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecialTokens ?? true;
    const parts: string[] = [];
    let run: number[] = [];
    const flush = () => {
      if (run.length === 0) return;
      parts.push(new TextDecoder().decode(Uint8Array.from(run)).replaceAll('</w>', ' '));
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = Number(ids[i]);
      const special = this.added.byId.get(id);
      if (special) {
        flush();
        if (!(skip && special.special !== false)) parts.push(`${special.content} `);
        continue;
      }
      const tok = this.decoder.get(id);
      if (tok === undefined) continue;
      for (const ch of tok) {
        const b = BYTE_DECODER.get(ch);
        if (b !== undefined) run.push(b);
      }
    }
    flush();
    return parts.join('').trim();
  }
}
