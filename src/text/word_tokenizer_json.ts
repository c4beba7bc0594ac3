/**
 * The tokenizer.json of the shipped model's kind of tokenizer: a small vocabulary model (WordLevel,
 * or WordPiece for spelled words) behind T5's conventions — `<pad>`, `</s>`, `<unk>` as ids 0–2,
 * lower-casing, whitespace pre-tokenizing, `</s>` appended. transformers and @huggingface/tokenizers
 * both load it. Browser-safe: it only builds JSON.
 */
import type { JsonObject } from './tokenizer.js';

export const WORD_TOKENIZER_SPECIAL = ['<pad>', '</s>', '<unk>'] as const;

/**
 * A normalizer that reads "an" as "a" (after lower-casing). In the synthetic caption grammar "an"
 * precedes only "orange", and a frozen text encoder lets that one token move the next words' vectors
 * far enough that a word never seen after it is drawn as garbage (training/README.md, thirtieth chunk).
 */
export const MERGE_ARTICLES_NORMALIZER = {
  type: 'Replace',
  pattern: { Regex: '\\ban\\b' },
  content: 'a',
} as const;

/** `model` is the tokenizers model object; `normalizers` run after the lower-casing. */
export function wordTokenizerJson(model: JsonObject, normalizers: readonly JsonObject[] = []): JsonObject {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: WORD_TOKENIZER_SPECIAL.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: normalizers.length
      ? { type: 'Sequence', normalizers: [{ type: 'Lowercase' }, ...normalizers] }
      : { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model,
  };
}
