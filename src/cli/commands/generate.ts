import { basename, extname, join } from 'node:path';
import type { Command } from 'commander';
import { ImagenError } from '../../engine/errors.js';
import { tensorToImages } from '../../io/image.js';
import { encodePrompts } from '../../models/t5/t5_encoder.js';
import type { ProgressEvent } from '../../pipelines/events.js';
import { generateImages } from '../../pipelines/text_to_image.js';
import { readJson } from '../../platform/node/config.js';
import { writePng } from '../../platform/node/image.js';
import { loadPipelineFolder, openTextEncoder, stageModels } from '../../platform/node/pipeline_folder.js';
import { createRuntime } from '../../platform/node/runtime.js';
import {
  checkSdx4Folder,
  encodeSdx4Prompts,
  isSdx4Folder,
  loadSdx4Folder,
} from '../../platform/node/sdx4_folder.js';
import { SHIPPED_MODEL_NAME, shippedModel } from '../../platform/node/shipped_model.js';
import { usageError } from '../errors.js';
import {
  BACK_PROJECTION_HELP,
  parseNumber,
  parseOnOff,
  parseSampler,
  parseSrTiles,
  parseSteps,
  SR_TILE_OVERLAP_HELP,
  SR_TILE_SIZE_HELP,
} from '../image_flags.js';
import { logger, ProgressBar } from '../progress.js';
import { parseTiling, TILE_SIZE_HELP, TILED_HELP } from '../tiling.js';
import { loadPromptEmbeds } from './vary.js';

interface GenerateFlags {
  model?: string;
  srModel?: string;
  sr3Model?: string;
  size?: string;
  sr3Steps?: string;
  sr3Guidance?: string;
  sr3NoiseLevel: string;
  tiled: boolean;
  tileSize?: string;
  out: string;
  seed: string;
  steps?: string;
  srSteps?: string;
  guidance?: string;
  srGuidance?: string;
  threshold?: string;
  numImages: string;
  negativePrompt: string;
  noiseLevel?: string;
  srBackProjection?: string;
  sampler?: string;
  srSampler?: string;
  srTileSize?: string;
  srTileOverlap?: string;
  quiet: boolean;
  json: boolean;
  fp16: boolean;
  cleanCaption: boolean;
  promptEmbeds?: string;
  preview?: string;
  previewEvery: string;
}

/** out.png → out.png, out-1.png, … for several images. */
function outputPaths(out: string, n: number): string[] {
  if (n === 1) return [out];
  const ext = extname(out) || '.png';
  const stem = join(out.slice(0, out.length - basename(out).length), basename(out, ext));
  return Array.from({ length: n }, (_, i) => `${stem}-${i}${ext}`);
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description(
      'Generate images from a text prompt with a cascade: stage I (text → 64×64 for IF) and optionally a\n' +
        'super-resolution stage (--sr-model). Sampling uses classifier-free guidance and dynamic thresholding.',
    )
    .argument('<prompt>', 'the text prompt')
    .option(
      '--model <dir>',
      'stage-I pipeline folder (model_index.json, unet/, scheduler/, text_encoder/, tokenizer/) ' +
        `[default: the shipped model, ${SHIPPED_MODEL_NAME} (32×32 base + 256×256 stage II)]`,
    )
    .option(
      '--sr-model <dir>',
      "super-resolution pipeline folder (stage II); reuses stage I's text embeddings unless it has its own encoder " +
        '[default with the shipped model: its stage II]',
    )
    .option(
      '--sr3-model <dir>',
      'stage III: a stabilityai/stable-diffusion-x4-upscaler folder (×4 of the stage-II output, 256 → 1024 for IF), ' +
        'or a third IF-style super-resolution pipeline (e.g. trained with `imagen train --stage sr`)',
    )
    .option(
      '--size <px>',
      'output size, which picks how many stages run: 64 (stage I), 256 (+ stage II), 1024 (+ stage III); ' +
        "or a stage's own output size [default: every stage given]",
    )
    .option('--sr3-steps <n>', 'stage-III (x4 upscaler) DDIM steps [default: 75]')
    .option('--sr3-guidance <f>', 'stage-III guidance scale [default: 9]')
    .option('--sr3-noise-level <n>', 'stage-III noise augmentation level 0..350 (the IF docs use 100)', '100')
    .option('--tiled', `stage III: ${TILED_HELP}`, false)
    .option('--tile-size <px>', `stage III: ${TILE_SIZE_HELP}`)
    .option('--out <file>', 'output PNG (several images: out-0.png, out-1.png, …)', 'out.png')
    .option('--seed <n>', 'random seed: the same seed gives the same image on the same machine', '0')
    .option(
      '--steps <n|preset>',
      'stage-I steps (e.g. 50) or an IF preset (fast27, smart27, smart50, smart100, smart185) [default: 100]',
    )
    .option(
      '--sr-steps <n|preset>',
      'stage-II steps or preset (super27, super40, super100, smart50, …) [default: 50]',
    )
    .option('--guidance <f>', 'stage-I classifier-free guidance scale [default: 7]')
    .option('--sr-guidance <f>', 'stage-II guidance scale [default: 4]')
    .option('--threshold <kind>', 'dynamic | static | none [default: the scheduler config: dynamic for IF]')
    .option('--num-images <n>', 'images per prompt', '1')
    .option('--negative-prompt <text>', 'what to steer away from (the unconditional branch)', '')
    .option(
      '--noise-level <n>',
      "stage-II noise-conditioning augmentation level 0..999 [default: 250, or the model's]",
    )
    .option('--sr-back-projection <on|off>', `stage II: ${BACK_PROJECTION_HELP}`)
    .option('--sampler <name>', "ddpm | ddim [default: ddpm, or the model's generation_config.json]")
    .option('--sr-sampler <name>', 'stage-II sampler: ddpm | ddim [default: --sampler, or the model default]')
    .option('--sr-tile-size <px>', SR_TILE_SIZE_HELP)
    .option('--sr-tile-overlap <px>', SR_TILE_OVERLAP_HELP)
    .option('--fp16', 'load *.fp16.safetensors weight variants', false)
    .option('--no-clean-caption', 'skip IF caption cleaning (lower-case + strip only)')
    .option(
      '--prompt-embeds <file>',
      'precomputed embeddings from `imagen encode --negative-prompt ""` (prompt_embeds, negative_prompt_embeds); the text encoder is then not loaded',
    )
    .option('--preview <dir>', 'write the predicted clean image x̂0 (first image) every --preview-every steps')
    .option('--preview-every <k>', 'steps between previews', '5')
    .option('--quiet', 'no progress output', false)
    .option('--json', 'print a JSON result on stdout', false)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen generate "a red circle to the left of a blue square" --out x.png     # the shipped model\n' +
        '  imagen generate "a red circle" --model my-model --out x.png\n' +
        '  imagen generate "a green sign that says HELLO" --model IF-I-XL-v1.0 --sr-model IF-II-L-v1.0 --steps smart50\n' +
        '  imagen generate "a red fox" --model IF-I-XL-v1.0 --sr-model IF-II-L-v1.0 --sr3-model stable-diffusion-x4-upscaler --size 1024',
    )
    .action(async (prompt: string, f: GenerateFlags) => {
      const say = logger(f.quiet || f.json);
      const numImages = Number(f.numImages);
      if (!Number.isInteger(numImages) || numImages < 1 || numImages > 64)
        throw usageError('--num-images must be an integer in 1..64');
      const seed = Number(f.seed);
      if (!Number.isSafeInteger(seed) || seed < 0)
        throw usageError(`--seed must be a non-negative integer, got "${f.seed}"`);
      if (f.threshold && !['dynamic', 'static', 'none'].includes(f.threshold)) {
        throw usageError(`--threshold must be dynamic, static or none, got "${f.threshold}"`);
      }
      const sampler = parseSampler(f.sampler, '--sampler');
      const srSampler = parseSampler(f.srSampler, '--sr-sampler') ?? sampler;
      const srTiles = parseSrTiles(f.srTileSize, f.srTileOverlap);
      const noiseLevel = parseNumber(f.noiseLevel, '--noise-level', 0, 999);
      if (noiseLevel !== undefined && !Number.isInteger(noiseLevel))
        throw usageError('--noise-level must be an integer');
      const backProjection = parseOnOff(f.srBackProjection, '--sr-back-projection');
      const variant = f.fp16 ? { variant: 'fp16' as const } : {};
      if (!f.model) {
        const shipped = shippedModel();
        if (!shipped) {
          throw new ImagenError(
            'NOT_FOUND',
            `no --model given and this copy of imagen-ts has no shipped model (models/${SHIPPED_MODEL_NAME}); pass --model DIR`,
          );
        }
        f.model = shipped.base;
        f.srModel ??= shipped.sr;
      }

      const base = await loadPipelineFolder(f.model, variant);
      if (base.stage !== 'base') {
        throw new ImagenError(
          'CONFIG_INVALID',
          `${f.model} is a super-resolution pipeline; pass it as --sr-model and give a stage-I --model`,
        );
      }
      const sizeArg = parseNumber(f.size, '--size', 1, 65536);
      if (sizeArg !== undefined && !Number.isInteger(sizeArg)) throw usageError('--size must be an integer');
      const srSize = f.srModel
        ? (
            (await readJson(join(f.srModel, 'unet', 'config.json')).catch(() => ({}))) as {
              sample_size?: number;
            }
          ).sample_size
        : undefined;
      // Stage III is an SD x4 upscaler folder, or an IF-family super-resolution pipeline (Imagen's own).
      const sr3Index = f.sr3Model
        ? ((await readJson(join(f.sr3Model, 'model_index.json')).catch(() => ({}))) as {
            _class_name?: string;
          })
        : undefined;
      const sr3IsIf = sr3Index?._class_name === 'IFSuperResolutionPipeline';
      if (sr3Index?._class_name === 'IFPipeline')
        throw new ImagenError(
          'CONFIG_INVALID',
          `--sr3-model ${f.sr3Model} is a stage-I pipeline, not super-resolution`,
        );
      const sr3Size = sr3IsIf
        ? ((await readJson(join(f.sr3Model!, 'unet', 'config.json'))) as { sample_size?: number }).sample_size
        : srSize && 4 * srSize;
      const stageSizes = [base.unet.config.sample_size, srSize, sr3Size];
      let stages = 1 + (f.srModel ? 1 : 0) + (f.sr3Model ? 1 : 0);
      if (f.sr3Model && !f.srModel)
        throw usageError('--sr3-model (stage III) upscales the stage-II output: give --sr-model too');
      if (sizeArg !== undefined) {
        const own = stageSizes.indexOf(sizeArg);
        const canonical = [64, 256, 1024].indexOf(sizeArg);
        if (own < 0 && canonical < 0) {
          throw usageError(
            `--size must be 64, 256 or 1024 (or a stage's own output size: ${stageSizes.filter(Boolean).join(', ')}), got ${sizeArg}`,
          );
        }
        stages = (own >= 0 ? own : canonical) + 1;
        if (stages >= 2 && !f.srModel) throw usageError(`--size ${sizeArg} runs stage II: give --sr-model`);
        if (stages >= 3 && !f.sr3Model)
          throw usageError(`--size ${sizeArg} runs stage III: give --sr3-model (an SD x4 upscaler folder)`);
      }
      const sr3Steps = parseNumber(f.sr3Steps, '--sr3-steps', 1, 1000);
      if (sr3Steps !== undefined && !Number.isInteger(sr3Steps))
        throw usageError('--sr3-steps must be an integer');
      const sr3Guidance = parseNumber(f.sr3Guidance, '--sr3-guidance', 0, 100);
      const sr3NoiseLevel = parseNumber(f.sr3NoiseLevel, '--sr3-noise-level', 0, 350)!;
      const sr3Tiled = parseTiling(f.tiled, f.tileSize);
      if (!Number.isInteger(sr3NoiseLevel)) throw usageError('--sr3-noise-level must be an integer');
      if (stages >= 3 && !sr3IsIf) {
        await checkSdx4Folder(f.sr3Model!);
        if (!(await isSdx4Folder(f.sr3Model!))) {
          throw new ImagenError(
            'CONFIG_INVALID',
            `--sr3-model ${f.sr3Model} is neither a Stable Diffusion x4 upscaler folder (model_index _class_name StableDiffusionUpscalePipeline, unet in_channels 7) nor an IF super-resolution pipeline`,
          );
        }
      }
      const sr = f.srModel && stages >= 2 ? await loadPipelineFolder(f.srModel, variant) : undefined;
      if (sr && sr.stage !== 'sr')
        throw new ImagenError('CONFIG_INVALID', `${f.srModel} is a stage-I pipeline, not super-resolution`);
      for (const p of [base, sr]) {
        if (p?.notApplied.length)
          say(`note: ${p.dir}: ${p.notApplied.join(', ')} present but not applied by imagen-ts`);
      }
      let embeddings = f.promptEmbeds ? await loadPromptEmbeds(f.promptEmbeds, false) : undefined;
      if (!embeddings && (!base.textEncoderDir || !base.tokenizer)) {
        throw new ImagenError(
          'NOT_FOUND',
          `${f.model}: no text_encoder/tokenizer; encode the prompt elsewhere with \`imagen encode\` and pass --prompt-embeds`,
        );
      }
      const previewEvery = Number(f.previewEvery);
      if (!Number.isInteger(previewEvery) || previewEvery < 1)
        throw usageError('--preview-every must be a positive integer');
      const rt = createRuntime();
      if (!embeddings) {
        // Encode, then release the encoder before any UNet runs: T5-XXL and IF-I-XL never share memory.
        const encoder = (await openTextEncoder(base, rt))!;
        try {
          const e = await encodePrompts(encoder, base.tokenizer!, [prompt], {
            maxLength: base.maxTextLength,
            cleanCaption: f.cleanCaption,
            negativePrompt: f.negativePrompt,
          });
          for (const t of e.truncated) {
            say(
              `warning: the ${t.negative ? 'negative prompt' : 'prompt'} is longer than ${base.maxTextLength} tokens; ${t.droppedTokens} token(s) were dropped`,
            );
          }
          embeddings = { promptEmbeds: e.promptEmbeds, negativePromptEmbeds: e.negativePromptEmbeds };
        } finally {
          await encoder.release();
        }
      }
      const bars = new Map<string, ProgressBar>();
      const t0 = performance.now();
      const onProgress = async (e: ProgressEvent) => {
        if (
          e.status === 'step' &&
          f.preview &&
          e.predOriginalSample &&
          (e.step % previewEvery === 0 || e.step === e.total)
        ) {
          // The predicted clean image x̂0 of the first sample: how the picture emerges while denoising.
          const slug = e.stage.replace(/\s+/g, '-').toLowerCase();
          const first = tensorToImages(e.predOriginalSample)[0]!;
          await writePng(join(f.preview, `${slug}-step${String(e.step).padStart(4, '0')}.png`), first);
        }
        if (e.status === 'step') {
          let bar = bars.get(e.stage);
          if (!bar) {
            bar = new ProgressBar(e.stage, 't={t}', { quiet: f.quiet || f.json });
            bar.start(e.total, 0, { t: e.t });
            bars.set(e.stage, bar);
          }
          bar.update(e.step, { t: e.t });
        } else if (e.status === 'done') bars.get(e.stage)?.stop();
      };
      let result: Awaited<ReturnType<typeof generateImages>>;
      try {
        result = await generateImages(rt, undefined, stageModels(base), sr && stageModels(sr, rt), {
          prompt,
          embeddings,
          negativePrompt: f.negativePrompt,
          numImagesPerPrompt: numImages,
          seed,
          cleanCaption: f.cleanCaption,
          base: {
            steps: parseSteps(f.steps),
            guidanceScale: parseNumber(f.guidance, '--guidance', 0, 100),
            thresholding: f.threshold as 'dynamic' | undefined,
            sampler,
          },
          sr: {
            steps: parseSteps(f.srSteps),
            guidanceScale: parseNumber(f.srGuidance, '--sr-guidance', 0, 100),
            thresholding: f.threshold as 'dynamic' | undefined,
            sampler: srSampler,
            noiseLevel,
            backProjection,
            tiles: srTiles,
          },
          ...(stages >= 3 && sr3IsIf
            ? {
                sr3Stage: {
                  models: stageModels(await loadPipelineFolder(f.sr3Model!, variant), rt),
                  options: {
                    steps: sr3Steps,
                    guidanceScale: sr3Guidance,
                    noiseLevel: sr3NoiseLevel,
                    thresholding: f.threshold as 'dynamic' | undefined,
                    sampler,
                  },
                },
              }
            : {}),
          ...(stages >= 3 && !sr3IsIf
            ? {
                sr3: {
                  load: async () => {
                    const p = await loadSdx4Folder(f.sr3Model!, { runtime: rt, tiled: sr3Tiled, ...variant });
                    try {
                      const e = await encodeSdx4Prompts(p, [prompt], f.negativePrompt);
                      return { components: p.components, ...e, release: p.release };
                    } catch (err) {
                      await p.release();
                      throw err;
                    }
                  },
                  steps: sr3Steps,
                  guidanceScale: sr3Guidance,
                  noiseLevel: sr3NoiseLevel,
                  onWarning: (m: string) => say(`warning: ${m}`),
                },
              }
            : {}),
          onProgress,
        });
      } finally {
        for (const b of bars.values()) b.stop();
      }
      const images = tensorToImages(result.sr3 ?? result.sr ?? result.base);
      const paths = outputPaths(f.out, images.length);
      for (const [i, img] of images.entries()) await writePng(paths[i]!, img);
      const seconds = (performance.now() - t0) / 1000;
      if (f.json) {
        process.stdout.write(
          `${JSON.stringify({ prompt, seed, images: paths, width: images[0]!.width, height: images[0]!.height, seconds })}\n`,
        );
      } else
        say(`wrote ${paths.join(', ')} (${images[0]!.width}×${images[0]!.height}, ${seconds.toFixed(1)} s)`);
    });
}
