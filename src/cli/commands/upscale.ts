import type { Command } from 'commander';
import { repeatRows } from '../../diffusion/guidance.js';
import { Generator } from '../../diffusion/noise.js';
import { NDArray } from '../../engine/ndarray.js';
import type { RgbImage } from '../../io/image.js';
import { SD_UPSCALE_DEFAULTS, sdUpscale } from '../../pipelines/sd_upscale.js';
import { stageGuidance } from '../../pipelines/stage_run.js';
import type { TextModels } from '../../pipelines/text_to_image.js';
import { IF_DEFAULTS } from '../../pipelines/text_to_image.js';
import { IF_SR_FACTOR, upscaleImage } from '../../pipelines/upscale.js';
import { readJson } from '../../platform/node/config.js';
import { readImage } from '../../platform/node/image.js';
import { stageModels } from '../../platform/node/pipeline_folder.js';
import { createRuntime } from '../../platform/node/runtime.js';
import { encodeSdx4Prompts, isSdx4Folder, loadSdx4Folder } from '../../platform/node/sdx4_folder.js';
import { loadT5Encoder, resolveTextEncoderDirs } from '../../platform/node/t5_loader.js';
import { loadTokenizer } from '../../platform/node/tokenizer_files.js';
import { maxTextLengthOf } from '../../text/tokenizer.js';
import { usageError } from '../errors.js';
import {
  addCommonOptions,
  BACK_PROJECTION_HELP,
  type CommonFlags,
  type CommonOptions,
  folderDefault,
  parseCommon,
  parseNoiseLevel,
  parseNumber,
  parseOnOff,
  parseSteps,
  requirePrompt,
} from '../image_flags.js';
import { runWithProgress } from '../image_output.js';
import { loadStage } from '../load_stage.js';
import { logger } from '../progress.js';
import { folderText, promptConditioning } from '../prompt_conditioning.js';
import { parseTiling, TILE_SIZE_HELP, TILED_HELP } from '../tiling.js';

interface UpscaleFlags extends CommonFlags {
  model: string;
  tiled: boolean;
  tileSize?: string;
  textEncoder?: string;
  steps?: string;
  guidance?: string;
  noiseLevel?: string;
  backProjection?: string;
  lowResSize?: string;
}

/** IF pads prompts to 77 tokens; a tokenizer_config may say otherwise for small models (as pipeline_folder). */
async function maxLengthOf(tokenizerDir: string): Promise<number> {
  const tc = (await readJson(`${tokenizerDir}/tokenizer_config.json`).catch(() => ({}))) as Record<
    string,
    unknown
  >;
  return maxTextLengthOf(tc);
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
      `denoising steps or preset (super27, super40, super100, smart50, …) ${folderDefault(d.steps)}`,
    )
    .option('--guidance <f>', `classifier-free guidance scale ${folderDefault(d.guidanceScale)}`)
    .option(
      '--noise-level <n>',
      `noise-conditioning augmentation level 0..999: higher hides more input artefacts ${folderDefault(d.noiseLevel)}; SD x4 upscaler: ${SD_UPSCALE_DEFAULTS.noiseLevel}`,
    )
    .option('--back-projection <on|off>', `IF-style models: ${BACK_PROJECTION_HELP}`)
    .option('--tiled', `SD x4 upscaler only: ${TILED_HELP}`, false)
    .option('--tile-size <px>', `SD x4 upscaler only: ${TILE_SIZE_HELP}`)
    .option(
      '--low-res-size <px>',
      `the size the model lifts from [default: sample_size/${IF_SR_FACTOR}: 64 for IF-II]`,
    );
  addCommonOptions(cmd)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen upscale photo.png --model stable-diffusion-x4-upscaler --prompt "a red fox" --noise-level 20 --steps 75 --tiled --out fox4x.png\n  imagen upscale small.png --model IF-II-L-v1.0 --text-encoder IF-I-XL-v1.0 --prompt "a red fox" --out fox256.png\n  imagen encode "a red fox" --text-encoder IF-I-XL-v1.0 --negative-prompt "" --out fox.safetensors\n  imagen upscale small.png --model IF-II-L-v1.0 --prompt-embeds fox.safetensors --noise-level 100',
    )
    .action(async (imagePath: string, f: UpscaleFlags) => {
      const say = logger(f.quiet || f.json);
      const c = parseCommon(f);
      if (await isSdx4Folder(f.model)) {
        await upscaleSdx4(imagePath, f, c, say);
        return;
      }
      if (f.tiled || f.tileSize !== undefined)
        throw usageError('--tiled and --tile-size are for the SD x4 upscaler (a latent model)');
      const prompt = requirePrompt(f);
      const noiseLevel = parseNoiseLevel(f.noiseLevel);
      const backProjection = parseOnOff(f.backProjection, '--back-projection');
      const steps = parseSteps(f.steps);
      const guidance = parseNumber(f.guidance, '--guidance', 0, 100);
      const lowResSize = parseNumber(f.lowResSize, '--low-res-size', 1, 4096);
      if (lowResSize !== undefined && !Number.isInteger(lowResSize))
        throw usageError('--low-res-size must be an integer');
      const sr = await loadStage(f.model, 'sr', '--model', f.fp16, say);
      const image = await readImage(imagePath);
      const rt = createRuntime({ device: c.device });
      const embeddings = await promptConditioning(f, {
        needNegative: stageGuidance({ guidanceScale: guidance }, sr, d) > 1,
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
      await runWithProgress(f, say, (onProgress) =>
        upscaleImage(rt, undefined, stageModels(sr), {
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
          backProjection,
          lowResSize,
          thresholding: c.thresholding,
          sampler: c.sampler,
          onProgress,
          onWarning: (m) => say(`warning: ${m}`),
        }),
      );
    });
}

/** RGB pixels → [1, 3, H, W] in [0, 1] (what the SD upscaler's image processor expects). */
function toUnitTensor(img: RgbImage, times: number): NDArray {
  const { width: w, height: h } = img;
  const out = new Float32Array(times * 3 * h * w);
  for (let n = 0; n < times; n++)
    for (let p = 0; p < h * w; p++)
      for (let ch = 0; ch < 3; ch++) out[n * 3 * h * w + ch * h * w + p] = img.data[p * 3 + ch]! / 255;
  return new NDArray('float32', [times, 3, h, w], out);
}

/** `imagen upscale IMAGE --model SDX4_DIR`: StableDiffusionUpscalePipeline, ×4 any image. */
async function upscaleSdx4(
  imagePath: string,
  f: UpscaleFlags,
  c: CommonOptions,
  say: (m: string) => void,
): Promise<void> {
  if (f.textEncoder)
    throw usageError(
      '--text-encoder is for IF-II models; the SD x4 upscaler folder has its own CLIP encoder',
    );
  if (f.lowResSize !== undefined)
    throw usageError('--low-res-size is for IF-II models; the SD x4 upscaler takes any size');
  if (f.backProjection !== undefined)
    throw usageError('--back-projection is for IF-style (pixel) super-resolution models');
  const noiseLevel = parseNoiseLevel(f.noiseLevel) ?? SD_UPSCALE_DEFAULTS.noiseLevel;
  if (noiseLevel > SD_UPSCALE_DEFAULTS.maxNoiseLevel)
    throw usageError(
      `--noise-level must be in 0..${SD_UPSCALE_DEFAULTS.maxNoiseLevel} for the SD x4 upscaler`,
    );
  const steps = parseNumber(f.steps, '--steps', 1, 1000) ?? SD_UPSCALE_DEFAULTS.steps;
  if (!Number.isInteger(steps)) throw usageError('--steps must be an integer for the SD x4 upscaler');
  const guidance = parseNumber(f.guidance, '--guidance', 0, 100) ?? SD_UPSCALE_DEFAULTS.guidanceScale;
  const tiled = parseTiling(f.tiled, f.tileSize);
  const image = await readImage(imagePath);
  const rt = createRuntime({ device: c.device });
  const p = await loadSdx4Folder(f.model, {
    runtime: rt,
    tiled,
    ...(f.fp16 ? { variant: 'fp16' as const } : {}),
  });
  await runWithProgress(f, say, async (onProgress) => {
    try {
      const e = f.promptEmbeds
        ? await promptConditioning(f, {
            needNegative: guidance > 1,
            text: async () => undefined,
            missing: '',
            say,
          })
        : await encodeSdx4Prompts(p, [requirePrompt(f)], f.negativePrompt);
      const n = c.numImages;
      const r = await sdUpscale(p.components, {
        image: toUnitTensor(image, n),
        promptEmbeds: repeatRows(e.promptEmbeds, n),
        ...(e.negativePromptEmbeds ? { negativePromptEmbeds: repeatRows(e.negativePromptEmbeds, n) } : {}),
        steps,
        guidanceScale: guidance,
        noiseLevel,
        generator: new Generator(c.seed),
        onWarning: (m) => say(`warning: ${m}`),
        onStep: (s) =>
          onProgress({ status: 'step', stage: 'x4 upscale', step: s.i + 1, total: s.total, t: s.t }),
      });
      const img = r.image!.data as Float32Array;
      return new NDArray(
        'float32',
        r.image!.shape,
        img.map((v) => v * 2 - 1),
      );
    } finally {
      await p.release();
    }
  });
}
