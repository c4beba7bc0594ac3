/** A minimal word-level tokenizer.json (the shipped model's kind: WordLevel, lower-casing, T5's `</s>`). */
export function wordTokenizerJson(
  words: readonly string[],
  normalizers: readonly Record<string, unknown>[] = [],
): Record<string, unknown> {
  const all = ['<pad>', '</s>', '<unk>', ...words];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: all.slice(0, 3).map((content, id) => ({
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
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: null,
    model: { type: 'WordLevel', vocab: Object.fromEntries(all.map((w, i) => [w, i])), unk_token: '<unk>' },
  };
}

/** "an" read as "a" (training/merge_articles.ts). */
export const MERGE_ARTICLES = { type: 'Replace', pattern: { Regex: '\\ban\\b' }, content: 'a' };
