import { WORD_TOKENIZER_SPECIAL, wordTokenizerJson } from '../../src/text/word_tokenizer_json.js';

/** A word-level tokenizer.json over `words` (ids from 3, after `<pad>`, `</s>`, `<unk>`). */
export function wordLevelTokenizerJson(
  words: readonly string[],
  normalizers: readonly Record<string, unknown>[] = [],
): Record<string, unknown> {
  const vocab = Object.fromEntries([...WORD_TOKENIZER_SPECIAL, ...words].map((w, i) => [w, i]));
  return wordTokenizerJson({ type: 'WordLevel', vocab, unk_token: '<unk>' }, normalizers);
}
