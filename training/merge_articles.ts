/**
 * Make a pipeline folder's word-level tokenizer read "an" as "a" (a `Replace` normalizer after the
 * `Lowercase` one in tokenizer.json, which transformers and @huggingface/tokenizers both run).
 *
 *   npx tsx training/merge_articles.ts runs/half31-init
 *
 * Why (thirtieth chunk): "orange" is the grammar's only colour that starts with a vowel, so "an"
 * occurs only before it. The frozen text encoder turns that one token into a large shift of the
 * following words' vectors (MOON after "an orange sign that says" has cosine 0.44–0.58 to MOON after
 * any other colour, which sit at 0.90–0.99), and the UNet, never having seen MOON on an orange
 * sign, draws a garbled word there while drawing MOON perfectly for "a orange sign that says MOON".
 * Both articles mean one thing, so they become one token; the UNet then has to relearn orange
 * captions once (a training cycle from the rewritten folder).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteFile } from '../src/platform/node/files.js';
import { MERGE_ARTICLES_NORMALIZER as MERGE_ARTICLES } from '../src/text/word_tokenizer_json.js';

type Normalizer = { type: string; normalizers?: Normalizer[]; [k: string]: unknown };

/** The normalizer with the article merge appended (unchanged if it is already there). */
function withMergedArticles(normalizer: Normalizer | null): Normalizer {
  const list = !normalizer ? [] : normalizer.type === 'Sequence' ? [...(normalizer.normalizers ?? [])] : [normalizer];
  if (list.some((n) => JSON.stringify(n) === JSON.stringify(MERGE_ARTICLES))) return normalizer!;
  // After lower-casing, so "An" merges too.
  return { type: 'Sequence', normalizers: [...list, MERGE_ARTICLES] };
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: npx tsx training/merge_articles.ts PIPELINE_DIR');
  process.exit(2);
}
const path = join(dir, 'tokenizer', 'tokenizer.json');
const tokenizer = JSON.parse(readFileSync(path, 'utf8')) as { normalizer: Normalizer | null };
tokenizer.normalizer = withMergedArticles(tokenizer.normalizer);
await atomicWriteFile(path, `${JSON.stringify(tokenizer, null, 2)}\n`);
console.log(`${path}: normalizer ${JSON.stringify(tokenizer.normalizer)}`);
