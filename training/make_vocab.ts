/**
 * The shipped model's word-level tokenizer: every word the caption grammar can produce (both
 * splits, after IF's caption cleaning, which lower-cases), plus T5's <pad>/</s>/<unk>. Written as
 * a standard tokenizer.json (WordLevel model), so transformers and @huggingface/tokenizers load it.
 *
 *   npx tsx training/make_vocab.ts training/word-tokenizer
 *   npx tsx training/make_vocab.ts training/spelled-tokenizer --spell-words
 *
 * --spell-words (twentieth chunk): a WordPiece model instead, whose vocabulary holds the grammar's
 * words whole and, in place of the sign words, the 26 letters as word starts and as "##"
 * continuations, so a sign's word is spelled ("says h ##e ##l ##l ##o") and what is learnt of one
 * word's letters serves every word, any word a user types included. Ids of the grammar's words are
 * the word-level tokenizer's, and the letters take the sign words' freed ids, so a text encoder
 * trained with the word-level tokenizer loads unchanged (its sign-word rows are relearnt as letters).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { synthExamples } from '../src/data/synth/splits.js';
import { WORDS } from '../src/data/synth/vocab.js';
import { textPreprocessing } from '../src/text/clean_caption.js';
import { WORD_TOKENIZER_SPECIAL, wordTokenizerJson } from '../src/text/word_tokenizer_json.js';

const out = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? 'training/word-tokenizer';
const spell = process.argv.includes('--spell-words');
const words = new Set<string>();
const add = (text: string) => {
  for (const w of textPreprocessing(text, true).match(/\w+|[^\w\s]+/g) ?? []) words.add(w);
};
for (const split of ['train', 'heldout'] as const)
  for (const e of synthExamples(0, split, 50_000)) add(e.caption);
for (const w of WORDS) add(w);
const special = [...WORD_TOKENIZER_SPECIAL];
const vocab: Record<string, number> = {};
for (const [i, t] of [...special, ...[...words].sort()].entries()) vocab[t] = i;
if (spell) {
  const signWords = new Set(WORDS.map((w) => textPreprocessing(w, true)));
  const freed = Object.entries(vocab)
    .filter(([t]) => signWords.has(t))
    .map(([t, id]) => {
      delete vocab[t];
      return id;
    })
    .sort((a, b) => a - b);
  const letters = [...'abcdefghijklmnopqrstuvwxyz'];
  // "a" (the article) is already a word start; it doubles as the letter.
  for (const t of [...letters.filter((l) => !(l in vocab)), ...letters.map((l) => `##${l}`)]) {
    const id = freed.shift();
    if (id === undefined) throw new Error('not enough sign-word ids for the letters');
    vocab[t] = id;
  }
}

const tokenizer = wordTokenizerJson(
  spell
    ? { type: 'WordPiece', vocab, unk_token: '<unk>', continuing_subword_prefix: '##', max_input_chars_per_word: 100 }
    : { type: 'WordLevel', vocab, unk_token: '<unk>' },
);
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'tokenizer.json'), `${JSON.stringify(tokenizer, null, 1)}\n`);
writeFileSync(
  join(out, 'tokenizer_config.json'),
  `${JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', model_max_length: 77, pad_token: '<pad>', eos_token: '</s>', unk_token: '<unk>' }, null, 2)}\n`,
);
writeFileSync(
  join(out, 'special_tokens_map.json'),
  `${JSON.stringify({ pad_token: '<pad>', eos_token: '</s>', unk_token: '<unk>' }, null, 2)}\n`,
);
console.log(`${Object.keys(vocab).length} tokens → ${out}`);
