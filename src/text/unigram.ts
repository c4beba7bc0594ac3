/**
 * SentencePiece unigram model and processor (sentencepiece `unigram_model.cc` `EncodeOptimized`
 * plus `SentencePieceProcessor::Encode`):
 *
 * - Viterbi over the UTF-8 bytes of the normalized text maximising the sum of float32 piece
 *   scores; NORMAL, USER_DEFINED and UNUSED pieces are in the trie, UNUSED are never emitted;
 * - a user-defined piece scores `length_in_bytes * max_score - 0.1` (max_score starts at FLT_MIN),
 *   which makes it win against any segmentation of the same bytes;
 * - a character not covered by any single-character piece is an `<unk>` node scoring
 *   `min_score - 10` (min/max over NORMAL pieces);
 * - consecutive `<unk>` pieces are merged into one (one unk id for a run of unknown characters),
 *   unless the model has `byte_fallback`, in which case each unknown piece is emitted as its UTF-8
 *   bytes `<0xXX>`.
 */
import { ImagenError } from '../engine/errors.js';
import {
  ByteTrie,
  oneCharLen,
  SentencePieceNormalizer,
  SPACE_SYMBOL,
  utf8Decoder,
  utf8Encoder,
} from './normalizer.js';
import { ModelType, PieceType, parseSentencePieceModel, type SentencePieceModelProto } from './spiece.js';

const FLT_MAX = 3.4028234663852886e38;
const FLT_MIN = 1.1754943508222875e-38;
const UNK_PENALTY = 10;
const f32 = Math.fround;

/** `<0x41>` ↔ 0x41 (sentencepiece ByteToPiece / PieceToByte). */
export function byteToPiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

function pieceToByte(piece: string): number {
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
  return m ? Number.parseInt(m[1]!, 16) : -1;
}

/** One segment of the normalized byte string: [start, end) and the vocabulary id. */
export interface Segment {
  start: number;
  end: number;
  id: number;
}

export class UnigramModel {
  readonly unkId: number;
  readonly minScore: number;
  readonly maxScore: number;
  readonly byteFallback: boolean;
  readonly userDefined: string[] = [];
  private readonly trie = new ByteTrie();
  private readonly scores: Float32Array;
  private readonly types: Uint8Array;
  /** piece → id for NORMAL/USER_DEFINED/UNUSED pieces, and separately for the others. */
  private readonly pieceIds = new Map<string, number>();
  private readonly reservedIds = new Map<string, number>();
  private readonly byteIds: Int32Array;

  constructor(
    readonly proto: SentencePieceModelProto,
    source = 'spiece.model',
  ) {
    if (proto.trainerSpec.modelType !== ModelType.UNIGRAM) {
      const names: Record<number, string> = { 2: 'BPE', 3: 'WORD', 4: 'CHAR' };
      throw new ImagenError(
        'UNSUPPORTED',
        `${source}: SentencePiece model_type ${names[proto.trainerSpec.modelType] ?? proto.trainerSpec.modelType} is not supported; only UNIGRAM models (T5, mT5, UL2) are implemented`,
      );
    }
    const n = proto.pieces.length;
    this.scores = new Float32Array(n);
    this.types = new Uint8Array(n);
    this.byteFallback = proto.trainerSpec.byteFallback;
    this.byteIds = new Int32Array(256).fill(-1);
    let unkId = -1;
    let minScore = FLT_MAX;
    let maxScore = FLT_MIN;
    for (let i = 0; i < n; i++) {
      const p = proto.pieces[i]!;
      this.scores[i] = p.score;
      this.types[i] = p.type;
      const isNormal =
        p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      const map = isNormal ? this.pieceIds : this.reservedIds;
      if (map.has(p.piece)) {
        throw new ImagenError(
          'FILE_INVALID',
          `${source}: piece ${JSON.stringify(p.piece)} is defined twice (ids ${map.get(p.piece)} and ${i})`,
        );
      }
      map.set(p.piece, i);
      if (p.type === PieceType.USER_DEFINED) this.userDefined.push(p.piece);
      if (p.type === PieceType.UNKNOWN) {
        if (unkId >= 0)
          throw new ImagenError('FILE_INVALID', `${source}: <unk> is defined twice (ids ${unkId} and ${i})`);
        unkId = i;
      }
      if (p.type === PieceType.BYTE) {
        if (!this.byteFallback) {
          throw new ImagenError(
            'FILE_INVALID',
            `${source}: byte piece ${p.piece} found although byte_fallback is false`,
          );
        }
        const b = pieceToByte(p.piece);
        if (b < 0)
          throw new ImagenError('FILE_INVALID', `${source}: malformed byte piece ${JSON.stringify(p.piece)}`);
        this.byteIds[b] = i;
      }
      if (p.type === PieceType.NORMAL) {
        minScore = Math.min(minScore, p.score);
        maxScore = Math.max(maxScore, p.score);
      }
      if (isNormal) this.trie.insert(utf8Encoder.encode(p.piece), i);
    }
    if (unkId < 0)
      throw new ImagenError('FILE_INVALID', `${source}: the model defines no <unk> piece (type UNKNOWN)`);
    if (this.byteFallback && this.byteIds.some((v) => v < 0)) {
      throw new ImagenError(
        'FILE_INVALID',
        `${source}: byte_fallback is set but not all 256 <0xXX> pieces are present`,
      );
    }
    this.unkId = unkId;
    this.minScore = minScore;
    this.maxScore = maxScore;
  }

  get size(): number {
    return this.scores.length;
  }

  type(id: number): number {
    return this.types[id] ?? 0;
  }

  score(id: number): number {
    return this.scores[id] ?? 0;
  }

  /** Id of a piece string, or the unk id. */
  pieceToId(piece: string): number {
    return this.reservedIds.get(piece) ?? this.pieceIds.get(piece) ?? this.unkId;
  }

  byteId(b: number): number {
    return this.byteIds[b]!;
  }

  /** Best segmentation of normalized UTF-8 bytes (sentencepiece `EncodeOptimized`). */
  encodeNormalized(normalized: Uint8Array): Segment[] {
    const size = normalized.length;
    if (size === 0) return [];
    const unkScore = f32(this.minScore - UNK_PENALTY);
    const maxScore = this.maxScore;
    const bestScore = new Float32Array(size + 1);
    const startsAt = new Int32Array(size + 1).fill(-1);
    const bestId = new Int32Array(size + 1).fill(-1);
    const trie = this.trie;
    const types = this.types;
    const scores = this.scores;

    let start = 0;
    while (start < size) {
      const tillHere = bestScore[start]!;
      let hasSingleNode = false;
      const mblen = Math.min(oneCharLen(normalized[start]!), size - start);
      let node = 0;
      for (let keyPos = start; keyPos < size; ) {
        node = trie.step(node, normalized[keyPos]!);
        keyPos++;
        if (node < 0) break;
        const id = trie.value(node);
        if (id < 0) continue;
        const type = types[id]!;
        if (type === PieceType.UNUSED) continue;
        const length = keyPos - start;
        let candidate: number;
        if (type === PieceType.USER_DEFINED) {
          // C++: (size_t * float) is float; "- 0.1" promotes to double; so does the sum.
          candidate = f32(length * maxScore) - 0.1 + tillHere;
        } else {
          candidate = f32(scores[id]! + tillHere);
        }
        if (startsAt[keyPos] === -1 || candidate > bestScore[keyPos]!) {
          bestScore[keyPos] = candidate;
          startsAt[keyPos] = start;
          bestId[keyPos] = id;
        }
        if (!hasSingleNode && length === mblen) hasSingleNode = true;
      }
      if (!hasSingleNode) {
        const target = start + mblen;
        const candidate = f32(unkScore + tillHere);
        if (startsAt[target] === -1 || candidate > bestScore[target]!) {
          bestScore[target] = candidate;
          startsAt[target] = start;
          bestId[target] = this.unkId;
        }
      }
      start += mblen;
    }

    const out: Segment[] = [];
    let endsAt = size;
    while (endsAt > 0) {
      const s = startsAt[endsAt]!;
      if (s < 0 || s >= endsAt) {
        throw new ImagenError(
          'RUNTIME_FAILED',
          `unigram Viterbi: no path reaches byte ${endsAt} (internal error)`,
        );
      }
      out.push({ start: s, end: endsAt, id: bestId[endsAt]! });
      endsAt = s;
    }
    out.reverse();
    return out;
  }
}

export interface SentencePieceProcessorOptions {
  /** Override NormalizerSpec.add_dummy_prefix (transformers' non-legacy T5 sets it to false). */
  addDummyPrefix?: boolean;
  /** Name used in error messages. */
  source?: string;
}

/** Normalizer + unigram model + sentencepiece's post-processing of the segmentation. */
export class SentencePieceProcessor {
  readonly model: UnigramModel;
  readonly normalizer: SentencePieceNormalizer;

  constructor(
    readonly proto: SentencePieceModelProto,
    opts: SentencePieceProcessorOptions = {},
  ) {
    this.model = new UnigramModel(proto, opts.source);
    this.normalizer = new SentencePieceNormalizer(proto.normalizerSpec, {
      treatWhitespaceAsSuffix: proto.trainerSpec.treatWhitespaceAsSuffix,
      userDefinedSymbols: this.model.userDefined,
      ...(opts.addDummyPrefix === undefined ? {} : { addDummyPrefix: opts.addDummyPrefix }),
    });
  }

  /** Parse a `spiece.model` file and build a processor (FILE_INVALID on corrupt input). */
  static fromBytes(bytes: Uint8Array, opts: SentencePieceProcessorOptions = {}): SentencePieceProcessor {
    return new SentencePieceProcessor(parseSentencePieceModel(bytes, opts.source), opts);
  }

  /** Number of pieces in the model (`get_piece_size()`). */
  get pieceSize(): number {
    return this.model.size;
  }

  get unkId(): number {
    return this.model.unkId;
  }

  idToPiece(id: number): string {
    const p = this.proto.pieces[id];
    if (!p) throw new ImagenError('BAD_INPUT', `piece id ${id} is out of range [0, ${this.pieceSize})`);
    return p.piece;
  }

  pieceToId(piece: string): number {
    return this.model.pieceToId(piece);
  }

  isControl(id: number): boolean {
    return this.model.type(id) === PieceType.CONTROL;
  }

  isUnknown(id: number): boolean {
    return this.model.type(id) === PieceType.UNKNOWN;
  }

  /** Pieces (surface strings of the normalized text) with their ids, as `encode(out_type=str)`. */
  encodeWithPieces(text: string): { pieces: string[]; ids: number[] } {
    const normalized = this.normalizer.normalizeBytes(utf8Encoder.encode(text));
    const segments = this.model.encodeNormalized(normalized);
    const pieces: string[] = [];
    const ids: number[] = [];
    let prevUnk = false;
    for (const seg of segments) {
      const isUnk = seg.id === this.model.unkId;
      if (isUnk && this.model.byteFallback) {
        for (let i = seg.start; i < seg.end; i++) {
          const b = normalized[i]!;
          pieces.push(byteToPiece(b));
          ids.push(this.model.byteId(b));
        }
      } else if (isUnk && prevUnk) {
        const last = pieces.length - 1;
        pieces[last] += utf8Decoder.decode(normalized.subarray(seg.start, seg.end));
      } else {
        pieces.push(utf8Decoder.decode(normalized.subarray(seg.start, seg.end)));
        ids.push(seg.id);
      }
      prevUnk = isUnk;
    }
    return { pieces, ids };
  }

  /** Piece ids of `text` (sentencepiece `encode(text)`: no BOS/EOS). */
  encode(text: string): number[] {
    return this.encodeWithPieces(text).ids;
  }

  encodeAsPieces(text: string): string[] {
    return this.encodeWithPieces(text).pieces;
  }

  /**
   * Ids → text (sentencepiece `DecodeIds`): control pieces vanish, `<unk>` becomes the unk
   * surface (" ⁇ "), byte pieces are re-assembled as UTF-8, "▁" becomes a space and the dummy
   * prefix space of the first piece is removed.
   */
  decode(ids: ArrayLike<number>): string {
    let out = '';
    let pendingBytes: number[] = [];
    let first = true;
    const flushBytes = (): void => {
      if (pendingBytes.length > 0) {
        out += emit(utf8Decoder.decode(Uint8Array.from(pendingBytes)));
        pendingBytes = [];
      }
    };
    const emit = (s: string): string => {
      let t = s;
      if (
        first &&
        this.normalizer.addDummyPrefix &&
        !this.normalizer.treatWhitespaceAsSuffix &&
        t.startsWith(' ')
      ) {
        t = t.slice(1);
      }
      if (t.length > 0 || s.length > 0) first = false;
      return t;
    };
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      const type = this.model.type(id);
      if (type === 0)
        throw new ImagenError('BAD_INPUT', `piece id ${id} is out of range [0, ${this.pieceSize})`);
      if (type === PieceType.BYTE) {
        pendingBytes.push(pieceToByte(this.proto.pieces[id]!.piece));
        continue;
      }
      flushBytes();
      if (type === PieceType.CONTROL) continue;
      if (type === PieceType.UNKNOWN) {
        out += emit(this.proto.trainerSpec.unkSurface);
        continue;
      }
      out += emit(this.proto.pieces[id]!.piece.replaceAll(SPACE_SYMBOL, ' '));
    }
    flushBytes();
    return out;
  }
}
