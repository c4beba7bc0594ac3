/**
 * The shipped model's word-level tokenizer: every word the caption grammar can produce (both
 * splits, after IF's caption cleaning, which lower-cases), plus T5's <pad>/</s>/<unk>. Written as
 * a standard tokenizer.json (WordLevel model), so transformers and @huggingface/tokenizers load it.
 *
 *   npx tsx training/make_vocab.ts training/word-tokenizer
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { synthExamples } from '../src/data/synth/splits.js';
import { WORDS } from '../src/data/synth/vocab.js';
import { textPreprocessing } from '../src/text/clean_caption.js';

const out = process.argv[2] ?? 'training/word-tokenizer';
const words = new Set<string>();
const add = (text: string) => {
  for (const w of textPreprocessing(text, true).match(/\w+|[^\w\s]+/g) ?? []) words.add(w);
};
for (const split of ['train', 'heldout'] as const)
  for (const e of synthExamples(0, split, 50_000)) add(e.caption);
for (const w of WORDS) add(w);
const special = ['<pad>', '</s>', '<unk>'];
const vocab: Record<string, number> = {};
for (const [i, t] of [...special, ...[...words].sort()].entries()) vocab[t] = i;

const tokenizer = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: special.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  })),
  normalizer: { type: 'Lowercase' },
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
  model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
};
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
