/** An image command's prompt embeddings: from `--prompt-embeds`, or encoded by a folder's T5. */
import { ImagenError } from '../engine/errors.js';
import type { Runtime } from '../engine/runtime.js';
import { encodePrompts } from '../models/t5/t5_encoder.js';
import type { TextConditioning } from '../pipelines/if_pipeline.js';
import type { TextModels } from '../pipelines/text_to_image.js';
import { openSafetensors } from '../platform/node/files.js';
import { type LoadedPipeline, openTextEncoder } from '../platform/node/pipeline_folder.js';
import { usageError } from './errors.js';
import { type CommonFlags, requirePrompt } from './image_flags.js';

/** prompt_embeds / negative_prompt_embeds from an `imagen encode` file. */
export async function loadPromptEmbeds(path: string, needNegative: boolean): Promise<TextConditioning> {
  const f = await openSafetensors(path);
  try {
    if (!f.keys().includes('prompt_embeds')) {
      throw new ImagenError(
        'FILE_INVALID',
        `${path}: no prompt_embeds tensor (write it with \`imagen encode\`)`,
      );
    }
    const promptEmbeds = (await f.get('prompt_embeds')).toFloat32();
    const neg = f.keys().includes('negative_prompt_embeds')
      ? (await f.get('negative_prompt_embeds')).toFloat32()
      : undefined;
    if (promptEmbeds.shape.length !== 3) {
      throw new ImagenError(
        'FILE_INVALID',
        `${path}: prompt_embeds must be [B, L, D], got [${promptEmbeds.shape.join(', ')}]`,
      );
    }
    if (needNegative && !neg) {
      throw usageError(
        `${path} has no negative_prompt_embeds, which guidance > 1 needs: run \`imagen encode … --negative-prompt ""\` or pass --guidance 1`,
      );
    }
    if (neg && neg.shape.join() !== promptEmbeds.shape.join()) {
      throw new ImagenError(
        'FILE_INVALID',
        `${path}: negative_prompt_embeds [${neg.shape.join(', ')}] differs from prompt_embeds [${promptEmbeds.shape.join(', ')}]`,
      );
    }
    return { promptEmbeds, negativePromptEmbeds: neg };
  } finally {
    await f.close();
  }
}

/** The text encoder of a pipeline folder as `TextModels`, or undefined. */
export async function folderText(p: LoadedPipeline, rt: Runtime): Promise<TextModels | undefined> {
  if (!p.tokenizer) return undefined;
  const encoder = await openTextEncoder(p, rt);
  return encoder && { encoder, tokenizer: p.tokenizer, maxLength: p.maxTextLength };
}

/**
 * The prompt's embeddings: read from --prompt-embeds, or encoded here with the encoder released
 * at once, so the T5 weights (about 9 GB for T5-XXL in fp16) are gone before the UNet runs.
 */
export async function promptConditioning(
  f: CommonFlags,
  o: {
    needNegative: boolean;
    text: () => Promise<TextModels | undefined>;
    /** The error when there is neither a text encoder nor --prompt-embeds. */
    missing: string;
    say: (m: string) => void;
  },
): Promise<TextConditioning> {
  if (f.promptEmbeds) return loadPromptEmbeds(f.promptEmbeds, o.needNegative);
  const text = await o.text();
  if (!text) throw new ImagenError('NOT_FOUND', o.missing);
  try {
    const e = await encodePrompts(text.encoder, text.tokenizer, [requirePrompt(f)], {
      maxLength: text.maxLength,
      cleanCaption: f.cleanCaption,
      negativePrompt: f.negativePrompt,
    });
    for (const t of e.truncated) {
      o.say(
        `warning: the ${t.negative ? 'negative prompt' : 'prompt'} is longer than ${text.maxLength} tokens; ${t.droppedTokens} token(s) were dropped`,
      );
    }
    return { promptEmbeds: e.promptEmbeds, negativePromptEmbeds: e.negativePromptEmbeds };
  } finally {
    await text.encoder.release();
  }
}
