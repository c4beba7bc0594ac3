import { basename, extname, join } from 'node:path';
import type { Command } from 'commander';
import { ImagenError } from '../../engine/errors.js';
import type { NDArray } from '../../engine/ndarray.js';
import type { Runtime } from '../../engine/runtime.js';
import { tensorToImages } from '../../io/image.js';
import { encodePrompts } from '../../models/t5/t5_encoder.js';
import type { ProgressEvent } from '../../pipelines/events.js';
import type { TextConditioning } from '../../pipelines/if_pipeline.js';
import { checkStageUNet, IF_IMG2IMG_DEFAULTS, varyImages } from '../../pipelines/img2img.js';
import type { TextModels } from '../../pipelines/text_to_image.js';
import { openSafetensors } from '../../platform/node/files.js';
import { readImage, writePng } from '../../platform/node/image.js';
import {
  type LoadedPipeline,
  loadPipelineFolder,
  openTextEncoder,
  stageModels,
} from '../../platform/node/pipeline_folder.js';
import { createRuntime } from '../../platform/node/runtime.js';
import { usageError } from '../errors.js';
import { logger, ProgressBar } from '../progress.js';

/*
 * `imagen vary` and the helpers the image commands (vary, inpaint, upscale) share.
 */

export function parseSteps(v: string | undefined, flag = '--steps'): number | string | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (Number.isInteger(n)) {
    if (n < 1 || n > 1000) throw usageError(`${flag} must be in 1..1000 or a preset name, got "${v}"`);
    return n;
  }
  return v;
}

export function parseNumber(
  v: string | undefined,
  flag: string,
  min: number,
  max: number,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw usageError(`${flag} must be a number in [${min}, ${max}], got "${v}"`);
  }
  return n;
}

export function parseStrength(v: string | undefined, flag: string): number | undefined {
  const s = parseNumber(v, flag, 0, 1);
  if (s === 0) throw usageError(`${flag} must be in (0, 1]: 0 would return the input unchanged`);
  return s;
}

export function parseNoiseLevel(v: string): number {
  const n = parseNumber(v, '--noise-level', 0, 999)!;
  if (!Number.isInteger(n)) throw usageError('--noise-level must be an integer in 0..999');
  return n;
}

export function parseSeed(v: string): number {
  const seed = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(seed) || seed < 0) {
    throw usageError(`--seed must be a non-negative integer, got "${v}"`);
  }
  return seed;
}

export function parseCommon(f: CommonFlags): {
  seed: number;
  numImages: number;
  thresholding?: 'dynamic' | 'static' | 'none';
  sampler: 'ddpm' | 'ddim';
  device: 'cpu' | 'cuda';
} {
  const numImages = Number(f.numImages);
  if (!Number.isInteger(numImages) || numImages < 1 || numImages > 64)
    throw usageError('--num-images must be an integer in 1..64');
  if (f.threshold && !['dynamic', 'static', 'none'].includes(f.threshold)) {
    throw usageError(`--threshold must be dynamic, static or none, got "${f.threshold}"`);
  }
  if (f.sampler !== 'ddpm' && f.sampler !== 'ddim') throw usageError('--sampler must be ddpm or ddim');
  if (f.device !== 'cpu' && f.device !== 'cuda')
    throw usageError(`--device must be cpu or cuda, got "${f.device}"`);
  return {
    device: f.device,
    seed: parseSeed(f.seed),
    numImages,
    thresholding: f.threshold as 'dynamic' | undefined,
    sampler: f.sampler,
  };
}

/** Flags every image command has. */
export interface CommonFlags {
  prompt?: string;
  promptEmbeds?: string;
  negativePrompt: string;
  out: string;
  seed: string;
  numImages: string;
  threshold?: string;
  sampler: string;
  device: string;
  fp16: boolean;
  cleanCaption: boolean;
  quiet: boolean;
  json: boolean;
}

/** Register the flags of `CommonFlags` (same names, help and defaults in every image command). */
export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--prompt <text>', 'the text prompt (or --prompt-embeds)')
    .option(
      '--prompt-embeds <file>',
      'precomputed embeddings from `imagen encode` (prompt_embeds, negative_prompt_embeds)',
    )
    .option('--negative-prompt <text>', 'what to steer away from (the unconditional branch)', '')
    .option('--out <file>', 'output PNG (several images: out-0.png, out-1.png, …)', 'out.png')
    .option('--seed <n>', 'random seed: the same seed gives the same image on the same machine', '0')
    .option('--num-images <n>', 'images per prompt', '1')
    .option('--threshold <kind>', 'dynamic | static | none [default: the scheduler config: dynamic for IF]')
    .option('--sampler <name>', 'ddpm | ddim', 'ddpm')
    .option(
      '--device <name>',
      "cpu | cuda (ONNX Runtime's CUDA provider; falls back to CPU with a message)",
      'cpu',
    )
    .option('--fp16', 'load *.fp16.safetensors weight variants', false)
    .option('--no-clean-caption', 'skip IF caption cleaning (lower-case + strip only)')
    .option('--quiet', 'no progress output', false)
    .option('--json', 'print a JSON result on stdout', false);
}

/** out.png → out.png, out-1.png, … for several images. */
export function outputPaths(out: string, n: number): string[] {
  if (n === 1) return [out];
  const ext = extname(out) || '.png';
  const stem = join(out.slice(0, out.length - basename(out).length), basename(out, ext));
  return Array.from({ length: n }, (_, i) => `${stem}-${i}${ext}`);
}

/** One progress bar per stage on stderr (nothing with --quiet/--json or off a terminal). */
export function progressBars(quiet: boolean): { onProgress: (e: ProgressEvent) => void; stop: () => void } {
  const bars = new Map<string, ProgressBar>();
  return {
    onProgress: (e) => {
      if (e.status === 'step') {
        let bar = bars.get(e.stage);
        if (!bar) {
          bar = new ProgressBar(e.stage, 't={t}', { quiet });
          bar.start(e.total, 0, { t: e.t });
          bars.set(e.stage, bar);
        }
        bar.update(e.step, { t: e.t });
      } else if (e.status === 'done') bars.get(e.stage)?.stop();
    },
    stop: () => {
      for (const b of bars.values()) b.stop();
    },
  };
}

/**
 * Load a pipeline folder for a role and check it fits: the UNet's shape decides (a stage-II UNet
 * has in_channels 6 and a class embedding), and the folder's missing parts are named with the flag.
 */
export async function loadStage(
  dir: string,
  want: 'base' | 'sr',
  flag: string,
  fp16: boolean,
  say: (m: string) => void,
): Promise<LoadedPipeline> {
  let p: LoadedPipeline;
  try {
    p = await loadPipelineFolder(dir, fp16 ? { variant: 'fp16' } : {});
  } catch (e) {
    if (e instanceof ImagenError && e.code === 'NOT_FOUND' && e.message.includes('missing')) {
      throw new ImagenError(
        'NOT_FOUND',
        `${flag} ${e.message}. A diffusers IF ${want === 'base' ? 'stage-I' : 'stage-II'} folder has model_index.json, ` +
          `unet/, scheduler/${want === 'sr' ? ', image_noising_scheduler/' : ', text_encoder/, tokenizer/'}.`,
        { cause: e },
      );
    }
    throw e;
  }
  checkStageUNet(p.unet.config, want, `${flag} ${dir}`);
  if (want === 'sr' && !p.imageNoisingSchedule) {
    throw new ImagenError('NOT_FOUND', `${flag} ${dir}: pipeline folder is missing image_noising_scheduler`);
  }
  if (p.notApplied.length)
    say(`note: ${p.dir}: ${p.notApplied.join(', ')} present but not applied by imagen-ts`);
  return p;
}

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

/** The prompt source: --prompt-embeds, else --prompt with a text encoder; exactly one prompt source is needed. */
export function requirePrompt(f: CommonFlags): string {
  if (f.promptEmbeds) return f.prompt ?? '';
  if (f.prompt === undefined)
    throw usageError('pass --prompt "…" (or --prompt-embeds FILE from `imagen encode`)');
  return f.prompt;
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

/** Write the images, print the summary line or JSON. */
export async function writeResults(
  f: CommonFlags,
  x: NDArray,
  t0: number,
  say: (m: string) => void,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const images = tensorToImages(x);
  const paths = outputPaths(f.out, images.length);
  for (const [i, img] of images.entries()) await writePng(paths[i]!, img);
  const seconds = (performance.now() - t0) / 1000;
  if (f.json) {
    process.stdout.write(
      `${JSON.stringify({ prompt: f.prompt ?? null, seed: Number(f.seed), images: paths, width: images[0]!.width, height: images[0]!.height, seconds, ...extra })}\n`,
    );
  } else say(`wrote ${paths.join(', ')} (${images[0]!.width}×${images[0]!.height}, ${seconds.toFixed(1)} s)`);
}

interface VaryFlags extends CommonFlags {
  model: string;
  srModel?: string;
  strength?: string;
  srStrength?: string;
  steps?: string;
  srSteps?: string;
  guidance?: string;
  srGuidance?: string;
  noiseLevel: string;
}

export function registerVary(program: Command): void {
  const d = IF_IMG2IMG_DEFAULTS;
  const cmd = program
    .command('vary')
    .description(
      'Image variation (img2img): noise IMAGE part of the way (--strength) and denoise it towards the prompt with stage I, then optionally lift it with a stage-II model (--sr-model) that also starts from IMAGE. IMAGE is resized to the stage size (short side; a warning says so).',
    )
    .argument('<image>', 'input image (PNG, JPEG, WebP, …)')
    .requiredOption(
      '--model <dir>',
      'stage-I pipeline folder (model_index.json, unet/, scheduler/, text_encoder/, tokenizer/)',
    )
    .option('--sr-model <dir>', "stage-II pipeline folder; reuses stage I's text embeddings")
    .option(
      '--strength <f>',
      `how far to move away from IMAGE, (0, 1]: 1 = ignore it [default: ${d.base.strength}]`,
    )
    .option('--sr-strength <f>', `stage-II strength [default: ${d.sr.strength}]`)
    .option(
      '--steps <n|preset>',
      `stage-I steps before --strength trims them (e.g. 80 at 0.7 runs 56) [default: ${d.base.steps}]`,
    )
    .option('--sr-steps <n|preset>', `stage-II steps before --sr-strength [default: ${d.sr.steps}]`)
    .option('--guidance <f>', `stage-I classifier-free guidance scale [default: ${d.base.guidanceScale}]`)
    .option('--sr-guidance <f>', `stage-II guidance scale [default: ${d.sr.guidanceScale}]`)
    .option(
      '--noise-level <n>',
      'stage-II noise-conditioning augmentation level 0..999',
      String(d.sr.noiseLevel),
    );
  addCommonOptions(cmd)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen vary photo.png --model IF-I-XL-v1.0 --prompt "the same scene in winter" --strength 0.6\n  imagen vary photo.png --model IF-I-XL-v1.0 --sr-model IF-II-L-v1.0 --prompt "oil painting" --out v.png',
    )
    .action(async (imagePath: string, f: VaryFlags) => {
      const say = logger(f.quiet || f.json);
      const c = parseCommon(f);
      const prompt = requirePrompt(f);
      const noiseLevel = parseNoiseLevel(f.noiseLevel);
      const guidance = parseNumber(f.guidance, '--guidance', 0, 100);
      // Validate every flag before loading gigabytes of weights.
      const baseOpts = {
        steps: parseSteps(f.steps),
        guidanceScale: guidance,
        strength: parseStrength(f.strength, '--strength'),
        thresholding: c.thresholding,
        sampler: c.sampler,
      };
      const srOpts = {
        steps: parseSteps(f.srSteps, '--sr-steps'),
        guidanceScale: parseNumber(f.srGuidance, '--sr-guidance', 0, 100),
        strength: parseStrength(f.srStrength, '--sr-strength'),
        thresholding: c.thresholding,
        sampler: c.sampler,
        noiseLevel,
      };
      const base = await loadStage(f.model, 'base', '--model', f.fp16, say);
      const sr = f.srModel ? await loadStage(f.srModel, 'sr', '--sr-model', f.fp16, say) : undefined;
      const image = await readImage(imagePath);
      const rt = createRuntime({ device: c.device });
      const embeddings = await promptConditioning(f, {
        needNegative:
          Math.max(guidance ?? d.base.guidanceScale, srOpts.guidanceScale ?? d.sr.guidanceScale) > 1,
        text: async () => folderText(base, rt),
        missing: `--model ${f.model} has no text_encoder/ and tokenizer/: pass --prompt-embeds FILE (from \`imagen encode\`)`,
        say,
      });
      base.textEncoder = undefined; // let the T5 weights be collected before the UNets run
      const bars = progressBars(f.quiet || f.json);
      const t0 = performance.now();
      let result: Awaited<ReturnType<typeof varyImages>>;
      try {
        result = await varyImages(rt, undefined, stageModels(base), sr && stageModels(sr, rt), {
          image,
          prompt,
          embeddings,
          negativePrompt: f.negativePrompt,
          numImagesPerPrompt: c.numImages,
          seed: c.seed,
          cleanCaption: f.cleanCaption,
          base: baseOpts,
          sr: srOpts,
          onProgress: bars.onProgress,
          onWarning: (m) => say(`warning: ${m}`),
        });
      } finally {
        bars.stop();
      }
      await writeResults(f, result.sr ?? result.base, t0, say);
    });
}
