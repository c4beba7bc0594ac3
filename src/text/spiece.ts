/**
 * SentencePiece `*.model` (ModelProto, proto2) decoder, written by hand so that the core has no
 * protobuf dependency. Field numbers follow google/sentencepiece `src/sentencepiece_model.proto`:
 *
 * - ModelProto: pieces = 1 (repeated SentencePiece), trainer_spec = 2, normalizer_spec = 3,
 *   self_test_data = 4 (ignored), denormalizer_spec = 5.
 * - SentencePiece: piece = 1 (string), score = 2 (float), type = 3 (enum, default NORMAL).
 * - TrainerSpec: model_type = 3, vocab_size = 4, treat_whitespace_as_suffix = 24,
 *   user_defined_symbols = 31, byte_fallback = 35, unk_id = 40, bos_id = 41, eos_id = 42,
 *   pad_id = 43, unk_surface = 44, unk_piece = 45, bos_piece = 46, eos_piece = 47, pad_piece = 48.
 * - NormalizerSpec: name = 1, precompiled_charsmap = 2 (bytes), add_dummy_prefix = 3,
 *   remove_extra_whitespaces = 4, escape_whitespaces = 5.
 *
 * Unknown fields are skipped (protobuf semantics). Any structural problem (truncated varint or
 * length, invalid wire type, bad UTF-8 in a string field, no pieces) raises
 * `ImagenError('FILE_INVALID')`.
 */
import { ImagenError } from '../engine/errors.js';

/** ModelProto.SentencePiece.Type */
export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type PieceTypeValue = (typeof PieceType)[keyof typeof PieceType];

/** TrainerSpec.ModelType */
export const ModelType = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

export interface SentencePieceEntry {
  piece: string;
  /** float32 score (log probability for unigram models). */
  score: number;
  type: number;
}

export interface TrainerSpec {
  modelType: number;
  vocabSize: number;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
  unkSurface: string;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
  userDefinedSymbols: string[];
}

export interface NormalizerSpec {
  name: string;
  /** Serialized Darts trie + normalized strings; absent for the `identity` rule. */
  precompiledCharsmap: Uint8Array | undefined;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

export interface SentencePieceModelProto {
  pieces: SentencePieceEntry[];
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
  denormalizerSpec: NormalizerSpec | undefined;
}

// ---------------------------------------------------------------------------------------------
// Minimal protobuf wire-format reader

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

function invalid(what: string, detail: string): ImagenError {
  return new ImagenError('FILE_INVALID', `${what}: ${detail} (is this a SentencePiece .model file?)`);
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** A bounded cursor over protobuf bytes; every read is checked against `end`. */
export class ProtoReader {
  pos: number;

  constructor(
    readonly buf: Uint8Array,
    readonly what: string,
    start = 0,
    readonly end: number = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Varint as [low 32 bits (unsigned), high 32 bits (unsigned)]. */
  varint64(): [number, number] {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw invalid(this.what, `truncated varint at byte ${this.pos}`);
      const b = this.buf[this.pos++]!;
      const bits = b & 0x7f;
      const shift = 7 * i;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (shift - 32);
      if ((b & 0x80) === 0) return [lo >>> 0, hi >>> 0];
    }
    throw invalid(this.what, `varint longer than 10 bytes at byte ${this.pos}`);
  }

  /** Unsigned varint that must fit in 2^53 (lengths, tags). */
  uvarint(): number {
    const [lo, hi] = this.varint64();
    if (hi >= 0x200000) throw invalid(this.what, `varint out of range at byte ${this.pos}`);
    return hi * 0x100000000 + lo;
  }

  /** int32 / enum field: low 32 bits, sign-extended (negative values use 10-byte varints). */
  int32(): number {
    return this.varint64()[0] | 0;
  }

  bool(): boolean {
    const [lo, hi] = this.varint64();
    return lo !== 0 || hi !== 0;
  }

  float32(): number {
    if (this.pos + 4 > this.end) throw invalid(this.what, `truncated float at byte ${this.pos}`);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  /** Length-delimited payload as a [start, end) range (no copy). */
  lengthDelimited(): [number, number] {
    const len = this.uvarint();
    if (len > this.end - this.pos) {
      throw invalid(
        this.what,
        `length ${len} at byte ${this.pos} runs past the end of its message (${this.end})`,
      );
    }
    const start = this.pos;
    this.pos += len;
    return [start, this.pos];
  }

  bytes(): Uint8Array {
    const [s, e] = this.lengthDelimited();
    return this.buf.slice(s, e);
  }

  string(field: string): string {
    const [s, e] = this.lengthDelimited();
    try {
      return utf8Strict.decode(this.buf.subarray(s, e));
    } catch {
      throw invalid(this.what, `field ${field} at byte ${s} is not valid UTF-8`);
    }
  }

  /** Next field tag, validated: returns [fieldNumber, wireType]. */
  tag(): [number, number] {
    const at = this.pos;
    const t = this.uvarint();
    const field = Math.floor(t / 8);
    const wire = t % 8;
    if (field === 0) throw invalid(this.what, `field number 0 at byte ${at}`);
    if (wire !== WIRE_VARINT && wire !== WIRE_FIXED64 && wire !== WIRE_LEN && wire !== WIRE_FIXED32) {
      throw invalid(this.what, `unsupported wire type ${wire} (field ${field}) at byte ${at}`);
    }
    return [field, wire];
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint64();
        return;
      case WIRE_FIXED64:
        this.advance(8);
        return;
      case WIRE_LEN:
        this.lengthDelimited();
        return;
      case WIRE_FIXED32:
        this.advance(4);
        return;
      default:
        throw invalid(this.what, `cannot skip wire type ${wire} at byte ${this.pos}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw invalid(this.what, `truncated fixed-size field at byte ${this.pos}`);
    this.pos += n;
  }

  sub(range: [number, number], what: string): ProtoReader {
    return new ProtoReader(this.buf, what, range[0], range[1]);
  }
}

function expectWire(r: ProtoReader, field: string, wire: number, expected: number): void {
  if (wire !== expected) {
    throw invalid(r.what, `field ${field} has wire type ${wire}, expected ${expected} (near byte ${r.pos})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Messages

function defaultTrainerSpec(): TrainerSpec {
  return {
    modelType: ModelType.UNIGRAM,
    vocabSize: 8000,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
    unkSurface: ' \u2047 ',
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
    userDefinedSymbols: [],
  };
}

function defaultNormalizerSpec(): NormalizerSpec {
  return {
    name: '',
    precompiledCharsmap: undefined,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
}

function parsePiece(r: ProtoReader): SentencePieceEntry {
  const out: SentencePieceEntry = { piece: '', score: 0, type: PieceType.NORMAL };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) {
      expectWire(r, 'SentencePiece.piece', w, WIRE_LEN);
      out.piece = r.string('SentencePiece.piece');
    } else if (f === 2) {
      expectWire(r, 'SentencePiece.score', w, WIRE_FIXED32);
      out.score = r.float32();
    } else if (f === 3) {
      expectWire(r, 'SentencePiece.type', w, WIRE_VARINT);
      out.type = r.int32();
    } else r.skip(w);
  }
  return out;
}

function parseTrainerSpec(r: ProtoReader): TrainerSpec {
  const s = defaultTrainerSpec();
  while (!r.done) {
    const [f, w] = r.tag();
    const v = (name: string): number => {
      expectWire(r, `TrainerSpec.${name}`, w, WIRE_VARINT);
      return r.int32();
    };
    const b = (name: string): boolean => {
      expectWire(r, `TrainerSpec.${name}`, w, WIRE_VARINT);
      return r.bool();
    };
    const str = (name: string): string => {
      expectWire(r, `TrainerSpec.${name}`, w, WIRE_LEN);
      return r.string(`TrainerSpec.${name}`);
    };
    switch (f) {
      case 3:
        s.modelType = v('model_type');
        break;
      case 4:
        s.vocabSize = v('vocab_size');
        break;
      case 24:
        s.treatWhitespaceAsSuffix = b('treat_whitespace_as_suffix');
        break;
      case 31:
        s.userDefinedSymbols.push(str('user_defined_symbols'));
        break;
      case 35:
        s.byteFallback = b('byte_fallback');
        break;
      case 40:
        s.unkId = v('unk_id');
        break;
      case 41:
        s.bosId = v('bos_id');
        break;
      case 42:
        s.eosId = v('eos_id');
        break;
      case 43:
        s.padId = v('pad_id');
        break;
      case 44:
        s.unkSurface = str('unk_surface');
        break;
      case 45:
        s.unkPiece = str('unk_piece');
        break;
      case 46:
        s.bosPiece = str('bos_piece');
        break;
      case 47:
        s.eosPiece = str('eos_piece');
        break;
      case 48:
        s.padPiece = str('pad_piece');
        break;
      default:
        r.skip(w);
    }
  }
  return s;
}

function parseNormalizerSpec(r: ProtoReader): NormalizerSpec {
  const s = defaultNormalizerSpec();
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        expectWire(r, 'NormalizerSpec.name', w, WIRE_LEN);
        s.name = r.string('NormalizerSpec.name');
        break;
      case 2:
        expectWire(r, 'NormalizerSpec.precompiled_charsmap', w, WIRE_LEN);
        s.precompiledCharsmap = r.bytes();
        break;
      case 3:
        expectWire(r, 'NormalizerSpec.add_dummy_prefix', w, WIRE_VARINT);
        s.addDummyPrefix = r.bool();
        break;
      case 4:
        expectWire(r, 'NormalizerSpec.remove_extra_whitespaces', w, WIRE_VARINT);
        s.removeExtraWhitespaces = r.bool();
        break;
      case 5:
        expectWire(r, 'NormalizerSpec.escape_whitespaces', w, WIRE_VARINT);
        s.escapeWhitespaces = r.bool();
        break;
      default:
        r.skip(w);
    }
  }
  if (s.precompiledCharsmap && s.precompiledCharsmap.length === 0) s.precompiledCharsmap = undefined;
  return s;
}

/**
 * Decode a SentencePiece model file. `source` names the file in error messages.
 * Throws `ImagenError('FILE_INVALID')` on malformed input; never reads out of bounds.
 */
export function parseSentencePieceModel(bytes: Uint8Array, source = 'spiece.model'): SentencePieceModelProto {
  if (!(bytes instanceof Uint8Array)) {
    throw new ImagenError('BAD_INPUT', `${source}: expected the file contents as a Uint8Array`);
  }
  if (bytes.length === 0) throw invalid(source, 'file is empty');
  const r = new ProtoReader(bytes, source);
  const pieces: SentencePieceEntry[] = [];
  let trainerSpec: TrainerSpec | undefined;
  let normalizerSpec: NormalizerSpec | undefined;
  let denormalizerSpec: NormalizerSpec | undefined;
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) {
      expectWire(r, 'ModelProto.pieces', w, WIRE_LEN);
      pieces.push(parsePiece(r.sub(r.lengthDelimited(), `${source} (piece ${pieces.length})`)));
    } else if (f === 2) {
      expectWire(r, 'ModelProto.trainer_spec', w, WIRE_LEN);
      trainerSpec = parseTrainerSpec(r.sub(r.lengthDelimited(), `${source} (trainer_spec)`));
    } else if (f === 3) {
      expectWire(r, 'ModelProto.normalizer_spec', w, WIRE_LEN);
      normalizerSpec = parseNormalizerSpec(r.sub(r.lengthDelimited(), `${source} (normalizer_spec)`));
    } else if (f === 5) {
      expectWire(r, 'ModelProto.denormalizer_spec', w, WIRE_LEN);
      denormalizerSpec = parseNormalizerSpec(r.sub(r.lengthDelimited(), `${source} (denormalizer_spec)`));
    } else r.skip(w);
  }
  if (pieces.length === 0) throw invalid(source, 'the model contains no pieces');
  // sentencepiece writes pieces, then trainer_spec, then normalizer_spec: a file without the specs
  // is (almost certainly) truncated.
  if (!trainerSpec) throw invalid(source, `no trainer_spec after ${pieces.length} pieces (truncated file?)`);
  if (!normalizerSpec) throw invalid(source, 'no normalizer_spec (truncated file?)');
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    if (p.piece.length === 0) throw invalid(source, `piece ${i} is empty`);
    if (p.type < PieceType.NORMAL || p.type > PieceType.BYTE) {
      throw invalid(source, `piece ${i} (${JSON.stringify(p.piece)}) has unknown type ${p.type}`);
    }
    if (!Number.isFinite(p.score)) throw invalid(source, `piece ${i} has a non-finite score`);
  }
  return {
    pieces,
    trainerSpec,
    normalizerSpec,
    denormalizerSpec,
  };
}
