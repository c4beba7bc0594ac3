import type { Command } from 'commander';
import { NDArray } from '../../engine/ndarray.js';
import { isT5Config } from '../../models/t5/config.js';
import { encodePrompts, InMemoryT5Encoder } from '../../models/t5/t5_encoder.js';
import { writeSafetensors } from '../../platform/node/files.js';
import { loadT5Encoder, resolveTextEncoderDirs } from '../../platform/node/t5_loader.js';
import { loadTokenizer } from '../../platform/node/tokenizer_files.js';
import { usageError } from '../errors.js';
import { ProgressBar } from '../progress.js';
import type { ForwardRunner } from './forward.js';

/** `imagen forward --model T5DIR`: input_ids, attention_mask → last_hidden_state. */
export const t5ForwardRunner: ForwardRunner = {
  name: 'T5EncoderModel',
  matches: (c) => isT5Config(c),
  inputs: { required: ['input_ids'], optional: ['attention_mask'] },
  async run(rt, dir, inputs, { fp16 }) {
    const ids = inputs.input_ids!;
    const mask = inputs.attention_mask ?? onesLike(ids);
    const encoder = await loadT5Encoder(dir, { runtime: rt, ...(fp16 ? { variant: 'fp16' as const } : {}) });
    try {
      return { last_hidden_state: await encoder.encode(ids, mask) };
    } finally {
      await encoder.release();
    }
  },
};

/** transformers' default when no mask is passed: attend everywhere. */
function onesLike(ids: NDArray): NDArray {
  return new NDArray('int64', ids.shape, new BigInt64Array(ids.size).fill(1n));
}

interface EncodeOpts {
  textEncoder?: string;
  tokenizer?: string;
  out: string;
  negativePrompt?: string;
  maxLength: string;
  cleanCaption: boolean;
  fp16: boolean;
  streaming?: boolean;
  quiet: boolean;
}

export function registerEncode(program: Command): void {
  program
    .command('encode')
    .description(
      'Encode prompts with the T5 text encoder as the DeepFloyd IF pipeline does (caption cleaning, T5 tokenizer,\n' +
        'max-length padding) and write prompt_embeds [B,L,D] float32 + attention_mask [B,L] int64 to a safetensors file.',
    )
    .argument('<prompt...>', 'one or more prompts ("" = the unconditional embedding)')
    .option(
      '--text-encoder <dir>',
      'T5 encoder folder, or a pipeline folder with text_encoder/ and tokenizer/ (default: $IMAGEN_TEXT_ENCODER)',
    )
    .option(
      '--tokenizer <dir>',
      'tokenizer folder (default: tokenizer/ beside text_encoder/, or the encoder folder)',
    )
    .requiredOption('--out <file>', 'safetensors file to write')
    .option('--quiet', 'no progress bar', false)
    .option(
      '--negative-prompt <text>',
      'also write negative_prompt_embeds / negative_attention_mask ("" = unconditional)',
    )
    .option('--max-length <n>', 'token length (IF: 77)', '77')
    .option('--no-clean-caption', 'only lower-case and strip the prompt (diffusers encode_prompt default)')
    .option('--fp16', 'load the *.fp16.safetensors weight variant', false)
    .option('--streaming', 'stream the encoder block by block (automatic for large models such as T5-XXL)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  imagen encode "a red circle" --text-encoder IF-I-XL-v1.0 --out emb.safetensors\n' +
        '  imagen encode "a photo of a cat" --text-encoder t5/text_encoder --negative-prompt "" --out emb.safetensors',
    )
    .action(async (prompts: string[], opts: EncodeOpts) => {
      const dir = opts.textEncoder ?? process.env.IMAGEN_TEXT_ENCODER;
      if (!dir) throw usageError('encode: pass --text-encoder DIR (or set IMAGEN_TEXT_ENCODER)');
      if (!opts.out?.trim()) throw usageError('encode: --out must name a file');
      const maxLength = Number(opts.maxLength);
      if (!Number.isInteger(maxLength) || maxLength < 2 || maxLength > 4096) {
        throw usageError(
          `encode: --max-length must be an integer in 2..4096, got ${JSON.stringify(opts.maxLength)}`,
        );
      }
      const { encoderDir, tokenizerDir } = await resolveTextEncoderDirs(dir, opts.tokenizer);
      const tokenizer = await loadTokenizer(tokenizerDir);
      // A streamed encoder (T5-XXL) reports each block: that is the long part worth a progress bar.
      const bar = new ProgressBar('encode', 'block {block}', { quiet: opts.quiet });
      let started = false;
      const encoder = await loadT5Encoder(encoderDir, {
        ...(opts.fp16 ? { variant: 'fp16' as const } : {}),
        ...(opts.streaming ? { streaming: true } : {}),
        onBlock: (index, count) => {
          if (!started) {
            bar.start(count, 0, { block: '' });
            started = true;
          }
          bar.update(index + 1, { block: `${index + 1}/${count}` });
        },
      });
      try {
        const res = await encodePrompts(encoder, tokenizer, prompts, {
          maxLength,
          cleanCaption: opts.cleanCaption,
          negativePrompt: opts.negativePrompt,
        });
        for (const t of res.truncated) {
          const which = t.negative ? 'negative prompt' : 'prompt';
          process.stderr.write(
            `warning: ${which} ${t.index + 1} is longer than ${maxLength} tokens; ${t.droppedTokens} token(s) were dropped\n`,
          );
        }
        const tensors: Record<string, NDArray> = {
          prompt_embeds: res.promptEmbeds,
          attention_mask: res.attentionMask,
        };
        if (res.negativePromptEmbeds) {
          tensors.negative_prompt_embeds = res.negativePromptEmbeds;
          tensors.negative_attention_mask = res.negativeAttentionMask!;
        }
        await writeSafetensors(opts.out, tensors, {
          prompts: JSON.stringify(res.texts),
          ...(res.negativeTexts ? { negative_prompts: JSON.stringify(res.negativeTexts) } : {}),
          max_length: String(maxLength),
          clean_caption: String(opts.cleanCaption),
          text_encoder: encoderDir,
          encoder: encoder instanceof InMemoryT5Encoder ? 'in-memory' : 'streaming',
        });
        const [b, l, d] = res.promptEmbeds.shape;
        process.stderr.write(`wrote prompt_embeds [${b}, ${l}, ${d}] to ${opts.out}\n`);
      } finally {
        bar.stop();
        await encoder.release();
      }
    });
}
