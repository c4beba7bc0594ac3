/**
 * Text tokenizers for the T5 encoder family behind one interface:
 *
 * - {@link T5Tokenizer}: `spiece.model` (SentencePiece unigram) with the semantics of transformers'
 *   slow `T5Tokenizer` (what the diffusers IF pipeline uses): added/special tokens (`<pad>`, `</s>`,
 *   `<unk>`, `<extra_id_N>`) are split out of the text first, every other chunk goes through
 *   SentencePiece, `</s>` is appended (unless the ids already end with it), truncation keeps room
 *   for `</s>`, right padding with `<pad>` (0) and mask 0.
 * - {@link HFJsonTokenizer}: a `tokenizer.json` (fast tokenizer) run by `@huggingface/tokenizers`.
 * - `ByT5Tokenizer` (byt5.ts): UTF-8 bytes + 3.
 *
 * {@link createTokenizer} picks one from already-read files (browser-safe; the Node folder loader
 * is `src/platform/node/tokenizer_files.ts`).
 */
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { ImagenError } from '../engine/errors.js';
import { NDArray } from '../engine/ndarray.js';
import { ByT5Tokenizer } from './byt5.js';
import { pyLstrip, pyRstrip } from './clean_caption.js';
import { SPACE_SYMBOL } from './normalizer.js';
import { parseSentencePieceModel, type SentencePieceModelProto } from './spiece.js';
import { SentencePieceProcessor } from './unigram.js';

export type PaddingMode = 'max_length' | 'longest' | false;

export interface EncodeBatchOptions {
  /** Default 77 (the IF pipeline's T5 length). */
  maxLength?: number;
  /** Default 'max_length'. `false` requires all rows to have the same length. */
  padding?: PaddingMode;
  /** Default true: cut to `maxLength` keeping room for the special tokens. */
  truncation?: boolean;
  /** Default true: append `</s>`. */
  addSpecialTokens?: boolean;
}

export interface BatchEncoding {
  /** int64 [B, L] */
  inputIds: NDArray;
  /** int64 [B, L]: 1 for real tokens (including `</s>`), 0 for padding. */
  attentionMask: NDArray;
  /** Per row: whether tokens were dropped by truncation. */
  truncated: boolean[];
}

export interface DecodeOptions {
  /** Default true: drop `<pad>`, `</s>`, `<extra_id_N>` and other special tokens. */
  skipSpecialTokens?: boolean;
}

export interface TextTokenizer {
  /** Number of ids the tokenizer can produce (T5 v1.1: 32100). */
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  /** Ids of one text; with special tokens (`</s>`) unless `addSpecialTokens` is false. */
  encode(text: string, addSpecialTokens?: boolean): number[];
  encodeBatch(texts: readonly string[], opts?: EncodeBatchOptions): BatchEncoding;
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
}

export const DEFAULT_MAX_LENGTH = 77;

/**
 * The prompt length a pipeline pads to, from its tokenizer_config.json: published T5 tokenizers say
 * 512 or a huge sentinel there while IF pads to 77, so only a small model's own length is taken.
 */
export function maxTextLengthOf(tokenizerConfig: Record<string, unknown> | undefined): number {
  const m = tokenizerConfig?.model_max_length;
  return typeof m === 'number' && m >= 8 && m < 512 ? m : DEFAULT_MAX_LENGTH;
}

// ---------------------------------------------------------------------------------------------
// Added (special) tokens: transformers' `tokens_trie.split` + lstrip/rstrip handling

export interface AddedTokenSpec {
  content: string;
  id: number;
  /** Strip whitespace on the left of the token (from the preceding chunk). */
  lstrip?: boolean;
  /** Strip whitespace on the right of the token (from the following chunk). */
  rstrip?: boolean;
  special?: boolean;
}

export type TextChunk = { text: string; token?: undefined } | { text: string; token: AddedTokenSpec };

/**
 * Splits text on added tokens like transformers' slow tokenizers: leftmost match, longest token
 * first at that position; then an `rstrip` token strips the whitespace starting the next chunk and
 * an `lstrip` token the whitespace ending the previous chunk. Empty plain chunks are dropped.
 */
export class AddedTokenSplitter {
  private readonly tokens: AddedTokenSpec[];
  readonly byContent = new Map<string, AddedTokenSpec>();
  readonly byId = new Map<number, AddedTokenSpec>();
  private readonly firstCodes = new Set<number>();

  constructor(tokens: readonly AddedTokenSpec[]) {
    for (const t of tokens) {
      if (t.content.length === 0) continue;
      this.byContent.set(t.content, t);
      this.byId.set(t.id, t);
    }
    // Longest first so that "<extra_id_10>" wins over a shorter token at the same position.
    this.tokens = [...this.byContent.values()].sort((a, b) => b.content.length - a.content.length);
    for (const t of this.tokens) this.firstCodes.add(t.content.charCodeAt(0));
  }

  get size(): number {
    return this.tokens.length;
  }

  split(text: string): TextChunk[] {
    const parts: TextChunk[] = [];
    if (this.tokens.length === 0) return text ? [{ text }] : [];
    let pos = 0;
    let plainStart = 0;
    while (pos < text.length) {
      let hit: AddedTokenSpec | undefined;
      if (this.firstCodes.has(text.charCodeAt(pos))) {
        for (const t of this.tokens) {
          if (text.startsWith(t.content, pos)) {
            hit = t;
            break;
          }
        }
      }
      if (hit) {
        parts.push({ text: text.slice(plainStart, pos) });
        parts.push({ text: hit.content, token: hit });
        pos += hit.content.length;
        plainStart = pos;
      } else pos++;
    }
    parts.push({ text: text.slice(plainStart) });
    for (let i = 0; i < parts.length; i++) {
      const tok = parts[i]!.token;
      if (!tok) continue;
      const right = parts[i + 1];
      const left = parts[i - 1];
      if (tok.rstrip && right && !right.token) right.text = pyLstrip(right.text);
      if (tok.lstrip && left && !left.token) left.text = pyRstrip(left.text);
    }
    return parts.filter((p) => p.token !== undefined || p.text.length > 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Batch assembly shared by all tokenizers

export interface RowEncoder {
  /** Ids without special tokens. */
  encodeRaw(text: string): number[];
  /** Add special tokens to (possibly truncated) raw ids. */
  addSpecial(ids: number[]): number[];
  /** How many ids `addSpecial` adds to an empty sequence. */
  numSpecialTokens: number;
  padId: number;
}

export function encodeBatchWith(
  enc: RowEncoder,
  texts: readonly string[],
  opts: EncodeBatchOptions = {},
): BatchEncoding {
  if (!Array.isArray(texts))
    throw new ImagenError('BAD_INPUT', 'encodeBatch: texts must be an array of strings');
  const maxLength = opts.maxLength ?? DEFAULT_MAX_LENGTH;
  const padding = opts.padding ?? 'max_length';
  const truncation = opts.truncation ?? true;
  const addSpecial = opts.addSpecialTokens ?? true;
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new ImagenError('BAD_INPUT', `encodeBatch: maxLength must be a positive integer, got ${maxLength}`);
  }
  const numSpecial = addSpecial ? enc.numSpecialTokens : 0;
  if (truncation && maxLength < numSpecial) {
    throw new ImagenError(
      'BAD_INPUT',
      `encodeBatch: maxLength ${maxLength} leaves no room for ${numSpecial} special token(s)`,
    );
  }
  const rows: number[][] = [];
  const truncated: boolean[] = [];
  for (const [i, text] of texts.entries()) {
    if (typeof text !== 'string') {
      throw new ImagenError('BAD_INPUT', `encodeBatch: texts[${i}] is ${typeof text}, expected a string`);
    }
    let ids = enc.encodeRaw(text);
    let cut = false;
    if (truncation && ids.length + numSpecial > maxLength) {
      ids = ids.slice(0, maxLength - numSpecial);
      cut = true;
    }
    rows.push(addSpecial ? enc.addSpecial(ids) : ids);
    truncated.push(cut);
  }
  const longest = rows.reduce((m, r) => Math.max(m, r.length), 0);
  let L: number;
  if (padding === 'max_length') L = Math.max(maxLength, longest);
  else if (padding === 'longest') L = longest;
  else {
    L = longest;
    if (rows.some((r) => r.length !== L)) {
      throw new ImagenError(
        'BAD_INPUT',
        `encodeBatch: rows have different lengths (${rows.map((r) => r.length).join(', ')}) and padding is off; use padding 'longest' or 'max_length'`,
      );
    }
  }
  const B = rows.length;
  const ids = new BigInt64Array(B * L).fill(BigInt(enc.padId));
  const mask = new BigInt64Array(B * L);
  for (let b = 0; b < B; b++) {
    const r = rows[b]!;
    for (let j = 0; j < r.length; j++) {
      ids[b * L + j] = BigInt(r[j]!);
      mask[b * L + j] = 1n;
    }
  }
  return {
    inputIds: new NDArray('int64', [B, L], ids),
    attentionMask: new NDArray('int64', [B, L], mask),
    truncated,
  };
}

/** Append `eos` unless the ids already end with it (transformers `_add_eos_if_not_present`). */
export function addEosIfNotPresent(ids: number[], eosId: number): number[] {
  if (ids.length > 0 && ids[ids.length - 1] === eosId) return ids;
  return [...ids, eosId];
}

/** A tokenizer of the T5 family (T5, ByT5), whose only special token is a trailing `</s>`. */
export interface EosTokenizer {
  readonly padId: number;
  readonly eosId: number;
  /** Ids without special tokens. */
  encodeRaw(text: string): number[];
}

/** `encode` of the T5 family: `</s>` appended unless the ids already end with it. */
export function encodeWithEos(t: EosTokenizer, text: string, addSpecialTokens: boolean): number[] {
  const ids = t.encodeRaw(text);
  return addSpecialTokens ? addEosIfNotPresent(ids, t.eosId) : ids;
}

/** `encodeBatch` of the T5 family: truncation leaves room for the one `</s>`. */
export function encodeBatchWithEos(
  t: EosTokenizer,
  texts: readonly string[],
  opts: EncodeBatchOptions,
): BatchEncoding {
  return encodeBatchWith(
    {
      encodeRaw: (x) => t.encodeRaw(x),
      addSpecial: (ids) => addEosIfNotPresent(ids, t.eosId),
      numSpecialTokens: 1,
      padId: t.padId,
    },
    texts,
    opts,
  );
}

// ---------------------------------------------------------------------------------------------
// tokenizer_config.json helpers

export type JsonObject = Record<string, unknown>;

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as JsonObject).content === 'string')
    return (v as JsonObject).content as string;
  return undefined;
}

/** `added_tokens_decoder` of a tokenizer_config.json, or undefined when absent. */
export function addedTokensFromConfig(config: JsonObject | undefined): AddedTokenSpec[] | undefined {
  const dec = config?.added_tokens_decoder;
  if (!dec || typeof dec !== 'object') return undefined;
  const out: AddedTokenSpec[] = [];
  for (const [k, v] of Object.entries(dec as JsonObject)) {
    const id = Number(k);
    const o = v as JsonObject;
    if (!Number.isInteger(id) || id < 0 || !o || typeof o.content !== 'string') {
      throw new ImagenError(
        'CONFIG_INVALID',
        `tokenizer_config.json: malformed added_tokens_decoder entry ${k}`,
      );
    }
    out.push({
      content: o.content,
      id,
      lstrip: o.lstrip === true,
      rstrip: o.rstrip === true,
      special: o.special !== false,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// T5Tokenizer (spiece.model)

export interface T5TokenizerOptions {
  /** Number of `<extra_id_N>` sentinels after the SentencePiece vocabulary (transformers default 100). */
  extraIds?: number;
  /** transformers `legacy` flag (default true, as when tokenizer_config.json does not set it). */
  legacy?: boolean;
  /** Only for legacy=false: prepend "▁" to the text (transformers `add_prefix_space`, default true). */
  addPrefixSpace?: boolean;
  /** Explicit added tokens (tokenizer_config.json `added_tokens_decoder`); overrides extraIds. */
  addedTokens?: AddedTokenSpec[];
  padToken?: string;
  eosToken?: string;
  unkToken?: string;
  modelMaxLength?: number;
  /** Name used in error messages. */
  source?: string;
}

export class T5Tokenizer implements TextTokenizer {
  readonly sp: SentencePieceProcessor;
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly legacy: boolean;
  readonly addPrefixSpace: boolean;
  readonly modelMaxLength: number | undefined;
  readonly added: AddedTokenSplitter;
  private readonly unkToken: string;
  private readonly unkTokenLength: number;

  constructor(model: Uint8Array | SentencePieceModelProto, opts: T5TokenizerOptions = {}) {
    const source = opts.source ?? 'spiece.model';
    const proto = model instanceof Uint8Array ? parseSentencePieceModel(model, source) : model;
    this.legacy = opts.legacy ?? true;
    this.addPrefixSpace = opts.addPrefixSpace ?? true;
    // Non-legacy T5 loads the model with add_dummy_prefix disabled and adds "▁" itself.
    this.sp = new SentencePieceProcessor(proto, {
      source,
      ...(this.legacy ? {} : { addDummyPrefix: false }),
    });
    this.modelMaxLength = opts.modelMaxLength;
    const spSize = this.sp.pieceSize;
    const ts = proto.trainerSpec;
    const padToken = opts.padToken ?? '<pad>';
    const eosToken = opts.eosToken ?? '</s>';
    this.unkToken = opts.unkToken ?? '<unk>';

    let tokens: AddedTokenSpec[];
    if (opts.addedTokens) {
      tokens = opts.addedTokens;
    } else {
      const extraIds = opts.extraIds ?? 100;
      if (!Number.isInteger(extraIds) || extraIds < 0) {
        throw new ImagenError(
          'CONFIG_INVALID',
          `T5Tokenizer: extra_ids must be a non-negative integer, got ${extraIds}`,
        );
      }
      tokens = [];
      for (const content of [padToken, eosToken, this.unkToken]) {
        const id = this.sp.pieceToId(content);
        if (id !== this.sp.unkId || content === this.unkToken) tokens.push({ content, id, special: true });
      }
      for (let i = 0; i < extraIds; i++) {
        tokens.push({
          content: `<extra_id_${i}>`,
          id: spSize + extraIds - 1 - i,
          lstrip: true,
          rstrip: true,
          special: true,
        });
      }
    }
    this.added = new AddedTokenSplitter(tokens);
    let maxId = spSize - 1;
    for (const t of tokens) maxId = Math.max(maxId, t.id);
    this.vocabSize = maxId + 1;

    const idOf = (content: string, fallback: number): number => {
      const t = this.added.byContent.get(content);
      if (t) return t.id;
      const id = this.sp.pieceToId(content);
      return id === this.sp.unkId && content !== this.unkToken ? fallback : id;
    };
    this.padId = idOf(padToken, Math.max(ts.padId, 0));
    this.eosId = idOf(eosToken, ts.eosId);
    this.unkId = idOf(this.unkToken, this.sp.unkId);
    if (this.eosId < 0) {
      throw new ImagenError('FILE_INVALID', `${source}: no ${eosToken} piece and no eos_id in the model`);
    }
    this.unkTokenLength = this.legacy ? 0 : this.sp.encode(this.unkToken).length;
  }

  /** Ids without `</s>` (transformers `tokenize` + `convert_tokens_to_ids`). */
  encodeRaw(text: string): number[] {
    if (typeof text !== 'string')
      throw new ImagenError('BAD_INPUT', `T5Tokenizer: expected a string, got ${typeof text}`);
    if (!this.legacy && text.length > 0) return this.encodeNonLegacy(text);
    const ids: number[] = [];
    for (const chunk of this.added.split(text)) {
      if (chunk.token) ids.push(chunk.token.id);
      else for (const id of this.sp.encode(chunk.text)) ids.push(id);
    }
    return ids;
  }

  /** transformers T5Tokenizer with legacy=False (no dummy prefix; "▁" handled explicitly). */
  private encodeNonLegacy(text: string): number[] {
    let t = text.replaceAll(SPACE_SYMBOL, ' ');
    if (this.addPrefixSpace) t = SPACE_SYMBOL + t;
    const pieces: string[] = [];
    const ids: number[] = [];
    for (const chunk of this.added.split(t)) {
      if (chunk.token) {
        pieces.push(chunk.token.content);
        ids.push(chunk.token.id);
        continue;
      }
      let r: { pieces: string[]; ids: number[] };
      if (!(chunk.text.startsWith(SPACE_SYMBOL) || chunk.text.startsWith(' '))) {
        r = this.sp.encodeWithPieces(chunk.text);
      } else {
        const full = this.sp.encodeWithPieces(this.unkToken + chunk.text);
        const k = full.ids.length >= this.unkTokenLength ? this.unkTokenLength : 0;
        r = { pieces: full.pieces.slice(k), ids: full.ids.slice(k) };
      }
      pieces.push(...r.pieces);
      ids.push(...r.ids);
    }
    if (ids.length > 1 && pieces[0] === SPACE_SYMBOL && this.added.byContent.get(pieces[1]!)?.special) {
      return ids.slice(1);
    }
    return ids;
  }

  encode(text: string, addSpecialTokens = true): number[] {
    return encodeWithEos(this, text, addSpecialTokens);
  }

  encodeBatch(texts: readonly string[], opts: EncodeBatchOptions = {}): BatchEncoding {
    return encodeBatchWithEos(this, texts, opts);
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecialTokens ?? true;
    let out = '';
    let run: number[] = [];
    const flush = (): void => {
      if (run.length > 0) {
        out += this.sp.decode(run);
        run = [];
      }
    };
    for (let i = 0; i < ids.length; i++) {
      const id = Number(ids[i]);
      const tok = this.added.byId.get(id);
      if (tok || id >= this.sp.pieceSize || this.sp.isControl(id)) {
        flush();
        const special = tok ? tok.special !== false : true;
        if (special && skip) continue;
        out += `${out.length > 0 && !out.endsWith(' ') ? ' ' : ''}${tok ? tok.content : this.sp.idToPiece(id)}`;
      } else run.push(id);
    }
    flush();
    return out.trim();
  }
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json via @huggingface/tokenizers

export class HFJsonTokenizer implements TextTokenizer {
  readonly tokenizer: HFTokenizer;
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;

  constructor(tokenizerJson: JsonObject, tokenizerConfig: JsonObject = {}, source = 'tokenizer.json') {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || typeof tokenizerJson.model !== 'object') {
      throw new ImagenError('FILE_INVALID', `${source}: not a tokenizers JSON file (no "model" object)`);
    }
    // A WordLevel model names its unknown token in tokenizer.json itself (the Python library reads it
    // there); @huggingface/tokenizers looks only in tokenizer_config.json and otherwise maps an
    // unknown word to no id at all.
    const model = tokenizerJson.model as JsonObject;
    const modelUnk =
      model.type === 'WordLevel' && typeof model.unk_token === 'string' ? model.unk_token : undefined;
    const config =
      modelUnk && tokenizerConfig.unk_token === undefined
        ? { ...tokenizerConfig, unk_token: modelUnk }
        : tokenizerConfig;
    try {
      this.tokenizer = new HFTokenizer(tokenizerJson, config);
    } catch (e) {
      throw new ImagenError(
        'FILE_INVALID',
        `${source}: @huggingface/tokenizers rejected it: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    const vocab = this.tokenizer.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const lookup = (key: string, fallback: string): number | undefined => {
      const name = tokenContent(tokenizerConfig[key]) ?? fallback;
      return this.tokenizer.token_to_id(name);
    };
    const pad = (tokenizerJson.padding as JsonObject | null | undefined)?.pad_id;
    this.padId = typeof pad === 'number' ? pad : (lookup('pad_token', '<pad>') ?? 0);
    const eos = lookup('eos_token', '</s>');
    if (eos === undefined) {
      throw new ImagenError(
        'FILE_INVALID',
        `${source}: no eos token (${tokenContent(tokenizerConfig.eos_token) ?? '</s>'})`,
      );
    }
    this.eosId = eos;
  }

  encode(text: string, addSpecialTokens = true): number[] {
    if (typeof text !== 'string')
      throw new ImagenError('BAD_INPUT', `tokenizer: expected a string, got ${typeof text}`);
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  encodeBatch(texts: readonly string[], opts: EncodeBatchOptions = {}): BatchEncoding {
    // The post-processor (e.g. T5's template "$A </s>") adds a fixed prefix/suffix to a single
    // sequence; find them once by comparing with and without special tokens.
    const probe = 'a';
    const withSp = this.encode(probe, true);
    const without = this.encode(probe, false);
    const numSpecial = withSp.length - without.length;
    let offset = 0;
    for (let p = 0; p <= numSpecial; p++) {
      if (without.every((v, i) => withSp[p + i] === v)) {
        offset = p;
        break;
      }
    }
    const prefix = withSp.slice(0, offset);
    const suffix = withSp.slice(offset + without.length);
    return encodeBatchWith(
      {
        encodeRaw: (t) => this.encode(t, false),
        addSpecial: (ids) => [...prefix, ...ids, ...suffix],
        numSpecialTokens: numSpecial,
        padId: this.padId,
      },
      texts,
      opts,
    );
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    return this.tokenizer.decode(Array.from(ids, Number), {
      skip_special_tokens: opts.skipSpecialTokens ?? true,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Factory from file contents

export interface TokenizerFiles {
  /** Parsed tokenizer.json */
  tokenizerJson?: JsonObject;
  /** spiece.model bytes */
  spieceModel?: Uint8Array;
  /** Parsed tokenizer_config.json */
  tokenizerConfig?: JsonObject;
  /** Parsed special_tokens_map.json */
  specialTokensMap?: JsonObject;
  /** Parsed model config.json (to recognise ByT5) */
  config?: JsonObject;
  /** Folder name for error messages. */
  source?: string;
}

function isByT5(files: TokenizerFiles): boolean {
  const cls = files.tokenizerConfig?.tokenizer_class ?? files.config?.tokenizer_class;
  if (cls === 'ByT5Tokenizer') return true;
  const name = files.config?._name_or_path;
  return typeof name === 'string' && /byt5/i.test(name);
}

/** T5Tokenizer options from tokenizer_config.json / special_tokens_map.json. */
export function t5OptionsFromConfig(
  config: JsonObject = {},
  specialTokensMap: JsonObject = {},
): T5TokenizerOptions {
  const opts: T5TokenizerOptions = {};
  const pick = (key: string): string | undefined =>
    tokenContent(config[key]) ?? tokenContent(specialTokensMap[key]);
  const pad = pick('pad_token');
  const eos = pick('eos_token');
  const unk = pick('unk_token');
  if (pad !== undefined) opts.padToken = pad;
  if (eos !== undefined) opts.eosToken = eos;
  if (unk !== undefined) opts.unkToken = unk;
  if (typeof config.legacy === 'boolean') opts.legacy = config.legacy;
  if (typeof config.add_prefix_space === 'boolean') opts.addPrefixSpace = config.add_prefix_space;
  if (typeof config.model_max_length === 'number') opts.modelMaxLength = config.model_max_length;
  const added = addedTokensFromConfig(config);
  if (added) opts.addedTokens = added;
  if (typeof config.extra_ids === 'number') opts.extraIds = config.extra_ids;
  else {
    const extra = [config.additional_special_tokens, specialTokensMap.additional_special_tokens]
      .filter(Array.isArray)
      .flat()
      .map(tokenContent)
      .filter((t): t is string => t !== undefined && /^<extra_id_\d+>$/.test(t));
    if (extra.length > 0) opts.extraIds = new Set(extra).size;
  }
  return opts;
}

/**
 * Build a tokenizer from file contents: `tokenizer.json` when given, else `spiece.model`
 * (+ tokenizer_config.json), else the ByT5 byte tokenizer when the configs say ByT5.
 */
export function createTokenizer(files: TokenizerFiles): TextTokenizer {
  const where = files.source ? `${files.source}: ` : '';
  if (files.tokenizerJson) {
    return new HFJsonTokenizer(files.tokenizerJson, files.tokenizerConfig ?? {}, `${where}tokenizer.json`);
  }
  if (files.spieceModel) {
    return new T5Tokenizer(files.spieceModel, {
      ...t5OptionsFromConfig(files.tokenizerConfig, files.specialTokensMap),
      source: `${where}spiece.model`,
    });
  }
  if (isByT5(files)) {
    const extra = files.tokenizerConfig?.extra_ids;
    return new ByT5Tokenizer({
      ...(typeof extra === 'number' ? { extraIds: extra } : {}),
      ...(files.tokenizerConfig ? { addedTokens: addedTokensFromConfig(files.tokenizerConfig) } : {}),
    });
  }
  throw new ImagenError(
    'NOT_FOUND',
    `${where}no tokenizer: looked for tokenizer.json, spiece.model, or a ByT5 config (tokenizer_class "ByT5Tokenizer")`,
  );
}
