import type { Command } from 'commander';
import type { TextModels } from '../../pipelines/text_to_image.js';
import { IF_DEFAULTS } from '../../pipelines/text_to_image.js';
import { IF_SR_FACTOR, upscaleImage } from '../../pipelines/upscale.js';
import { readJson } from '../../platform/node/config.js';
import { readImage } from '../../platform/node/image.js';
import { createRuntime } from '../../platform/node/runtime.js';
import { loadT5Encoder, resolveTextEncoderDirs } from '../../platform/node/t5_loader.js';
import { loadTokenizer } from '../../platform/node/tokenizer_files.js';
import { usageError } from '../errors.js';
import { logger } from '../progress.js';
import {
  addCommonOptions,
  type CommonFlags,
  folderText,
  loadStage,
  parseCommon,
  parseNoiseLevel,
  parseNumber,
  parseSteps,
  progressBars,
  promptConditioning,
  requirePrompt,
  stageModels,
  writeResults,
} from './vary.js';

interface UpscaleFlags extends CommonFlags {
  model: string;
  textEncoder?: string;
  steps?: string;
  guidance?: string;
  noiseLevel: string;
  lowResSize?: string;
}

/** IF pads prompts to 77 tokens; a tokenizer_config may say otherwise for small models (as pipeline_folder). */
async function maxLengthOf(tokenizerDir: string): Promise<number> {
  const tc = (await readJson(`${tokenizerDir}/tokenizer_config.json`).catch(() => ({}))) as Record<
    string,
    unknown
  >;
  const m = tc.model_max_length;
  return typeof m === 'number' && m >= 8 && m < 512 ? m : 77;
}

export function registerUpscale(program: Command): void {
  const d = IF_DEFAULTS.sr;
  const cmd = program
    .command('upscale')
    .description(
      'Super-resolution of your own image with a stage-II IF model (IF-II: 64 → 256). IMAGE is the low-res input: ' +
        `it is resized to the model's low-res size (sample_size/${IF_SR_FACTOR} unless --low-res-size; short side, with a warning) ` +
        'and lifted by the stage-II sampler. IF-II folders have no text encoder: give --text-encoder (a T5 folder or ' +
        "the stage-I folder) or --prompt-embeds; the model folder's own text_encoder/ is used if it has one.",
    )
    .argument('<image>', 'low-resolution input image (PNG, JPEG, WebP, …)')
    .requiredOption('--model <dir>', 'stage-II pipeline folder (unet/, scheduler/, image_noising_scheduler/)')
    .option(
      '--text-encoder <dir>',
      'T5 encoder folder or a stage-I pipeline folder (text_encoder/ + tokenizer/)',
    )
    .option(
      '--steps <n|preset>',
      `denoising steps or preset (super27, super40, super100, smart50, …) [default: ${d.steps}]`,
    )
    .option('--guidance <f>', `classifier-free guidance scale [default: ${d.guidanceScale}]`)
    .option(
      '--noise-level <n>',
      'noise-conditioning augmentation level 0..999: higher hides more input artefacts',
      String(d.noiseLevel),
    )
    .option(
      '--low-res-size <px>',
      `the size the model lifts from [default: sample_size/${IF_SR_FACTOR}: 64 for IF-II]`,
    );
  addCommonOptions(cmd)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen upscale small.png --model IF-II-L-v1.0 --text-encoder IF-I-XL-v1.0 --prompt "a red fox" --out fox256.png   imagen encode "a red fox" --text-encoder IF-I-XL-v1.0 --negative-prompt "" --out fox.safetensors   imagen upscale small.png --model IF-II-L-v1.0 --prompt-embeds fox.safetensors --noise-level 100',
    )
    .action(async (imagePath: string, f: UpscaleFlags) => {
      const say = logger(f.quiet || f.json);
      const c = parseCommon(f);
      const prompt = requirePrompt(f);
      const noiseLevel = parseNoiseLevel(f.noiseLevel);
      const steps = parseSteps(f.steps);
      const guidance = parseNumber(f.guidance, '--guidance', 0, 100);
      const lowResSize = parseNumber(f.lowResSize, '--low-res-size', 1, 4096);
      if (lowResSize !== undefined && !Number.isInteger(lowResSize))
        throw usageError('--low-res-size must be an integer');
      const sr = await loadStage(f.model, 'sr', '--model', f.fp16, say);
      const image = await readImage(imagePath);
      const rt = createRuntime({ device: c.device });
      const embeddings = await promptConditioning(f, {
        needNegative: (guidance ?? d.guidanceScale) > 1,
        text: async (): Promise<TextModels | undefined> => {
          if (!f.textEncoder) return folderText(sr, rt);
          const dirs = await resolveTextEncoderDirs(f.textEncoder);
          return {
            encoder: await loadT5Encoder(dirs.encoderDir, {
              runtime: rt,
              ...(f.fp16 ? { variant: 'fp16' as const } : {}),
            }),
            tokenizer: await loadTokenizer(dirs.tokenizerDir),
            maxLength: await maxLengthOf(dirs.tokenizerDir),
          };
        },
        missing:
          `--model ${f.model} has no text encoder (DeepFloyd's stage-II folders have none): pass --text-encoder DIR ` +
          '(a T5 folder or the stage-I pipeline folder) or --prompt-embeds FILE (from `imagen encode`)',
        say,
      });
      sr.textEncoder = undefined; // let the T5 weights be collected before the UNet runs
      const bars = progressBars(f.quiet || f.json);
      const t0 = performance.now();
      let out: Awaited<ReturnType<typeof upscaleImage>>;
      try {
        out = await upscaleImage(rt, undefined, stageModels(sr), {
          image,
          prompt,
          embeddings,
          negativePrompt: f.negativePrompt,
          numImagesPerPrompt: c.numImages,
          seed: c.seed,
          cleanCaption: f.cleanCaption,
          steps,
          guidanceScale: guidance,
          noiseLevel,
          lowResSize,
          thresholding: c.thresholding,
          sampler: c.sampler,
          onProgress: bars.onProgress,
          onWarning: (m) => say(`warning: ${m}`),
        });
      } finally {
        bars.stop();
      }
      await writeResults(f, out, t0, say);
    });
}
