import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { renderScene } from '../../data/synth/render.js';
import { SCENE_KINDS } from '../../data/synth/scene.js';
import { type Split, synthExamplesOfKinds } from '../../data/synth/splits.js';
import { ImagenError } from '../../engine/errors.js';
import type { Summary } from '../../eval/checker.js';
import { contactSheet } from '../../eval/contact_sheet.js';
import { addNoise, gaussianBlur } from '../../eval/degrade.js';
import {
  type EvalItem,
  type EvalRecord,
  failureNote,
  formatSummary,
  scoreItems,
  shuffleCaptions,
} from '../../eval/evaluate.js';
import { tensorToImages } from '../../io/image.js';
import { generateImages } from '../../pipelines/text_to_image.js';
import { atomicWriteFile } from '../../platform/node/files.js';
import { encodePng, writePng } from '../../platform/node/image.js';
import { createWordOcr } from '../../platform/node/ocr.js';
import { loadPipelineFolder, openTextEncoder, stageModels } from '../../platform/node/pipeline_folder.js';
import { createRuntime } from '../../platform/node/runtime.js';
import { shippedModel } from '../../platform/node/shipped_model.js';
import { loadDejaVu } from '../../platform/node/synth_render.js';
import { usageError } from '../errors.js';
import {
  BACK_PROJECTION_HELP,
  intFlag,
  parseOnOff,
  parseSampler,
  parseSrTiles,
  SR_TILE_OVERLAP_HELP,
  SR_TILE_SIZE_HELP,
} from '../image_flags.js';
import { logger, ProgressBar } from '../progress.js';
import { kindsFlag, minObjectsFlag, splitFlag } from './dataset.js';

interface EvalFlags {
  model?: string;
  srModel?: string;
  groundTruth: boolean;
  split: string;
  count: string;
  kinds?: string;
  minObjects: string;
  seed: string;
  size: string;
  blur: string;
  noise: string;
  report: string;
  sheetMax: string;
  steps?: string;
  srSteps?: string;
  srGuidance?: string;
  guidance?: string;
  threshold?: string;
  sampler?: string;
  srSampler?: string;
  srTileSize?: string;
  srTileOverlap?: string;
  noiseLevel?: string;
  srBackProjection?: string;
  batch: string;
  fp16: boolean;
  quiet: boolean;
  json: boolean;
}

function floatFlag(v: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw usageError(`${flag} must be a number in [${min}, ${max}], got "${v}"`);
  return n;
}

/** Generate one image per prompt with the stage-I model (and optional SR stage), in batches. */
async function generateForItems(
  f: EvalFlags,
  prompts: { index: number; prompt: string }[],
  seed: number,
  say: (m: string) => void,
): Promise<{ images: EvalItem['image'][]; settings: Record<string, unknown> }> {
  const variant = f.fp16 ? { variant: 'fp16' as const } : {};
  const base = await loadPipelineFolder(f.model!, variant);
  if (base.stage !== 'base')
    throw new ImagenError(
      'CONFIG_INVALID',
      `${f.model} is a super-resolution pipeline; pass a stage-I --model`,
    );
  const sr = f.srModel ? await loadPipelineFolder(f.srModel, variant) : undefined;
  if (sr && sr.stage !== 'sr')
    throw new ImagenError('CONFIG_INVALID', `${f.srModel} is a stage-I pipeline, not super-resolution`);
  if (!base.textEncoderDir || !base.tokenizer)
    throw new ImagenError('NOT_FOUND', `${f.model}: no text_encoder/tokenizer`);
  if (f.threshold && !['dynamic', 'static', 'none'].includes(f.threshold)) {
    throw usageError(`--threshold must be dynamic, static or none, got "${f.threshold}"`);
  }
  const sampler = parseSampler(f.sampler, '--sampler');
  const srSampler = parseSampler(f.srSampler, '--sr-sampler') ?? sampler;
  const srTiles = parseSrTiles(f.srTileSize, f.srTileOverlap);
  const noiseLevel = f.noiseLevel === undefined ? undefined : intFlag(f.noiseLevel, '--noise-level', 0, 999);
  const backProjection = parseOnOff(f.srBackProjection, '--sr-back-projection');
  const steps = f.steps === undefined ? undefined : intFlag(f.steps, '--steps', 1, 1000);
  const srSteps = f.srSteps === undefined ? undefined : intFlag(f.srSteps, '--sr-steps', 1, 1000);
  const srGuidance = floatFlag(f.srGuidance, '--sr-guidance', 0, 100);
  const guidance = floatFlag(f.guidance, '--guidance', 0, 100);
  const batch = intFlag(f.batch, '--batch', 1, 256);
  const rt = createRuntime();
  const encoder = (await openTextEncoder(base, rt))!;
  const images: EvalItem['image'][] = [];
  const bar = new ProgressBar('generate', '', { quiet: f.quiet || f.json });
  bar.start(prompts.length);
  try {
    for (let i = 0; i < prompts.length; i += batch) {
      const chunk = prompts.slice(i, i + batch);
      const threshold = f.threshold as 'dynamic' | 'static' | 'none' | undefined;
      const r = await generateImages(
        rt,
        { encoder, tokenizer: base.tokenizer, maxLength: base.maxTextLength },
        stageModels(base),
        sr && stageModels(sr, rt),
        {
          prompt: chunk.map((c) => c.prompt),
          // Each batch has its own seed, so results do not depend on what else is in flight.
          seed: seed + i,
          base: { steps, guidanceScale: guidance, thresholding: threshold, sampler },
          sr: {
            steps: srSteps,
            guidanceScale: srGuidance,
            thresholding: threshold,
            sampler: srSampler,
            noiseLevel,
            backProjection,
            tiles: srTiles,
          },
        },
      );
      images.push(...tensorToImages(r.sr ?? r.base));
      bar.update(images.length);
    }
  } finally {
    bar.stop();
    await encoder.release();
  }
  say(`generated ${images.length} images (${images[0]?.width}×${images[0]?.height})`);
  return {
    images,
    settings: {
      model: f.model,
      srModel: f.srModel,
      steps: steps ?? 'default',
      srSteps: srSteps ?? 'default',
      srGuidance: srGuidance ?? 'default',
      guidance: guidance ?? 'default',
      threshold: f.threshold ?? 'scheduler config',
      sampler: sampler ?? 'model default',
      srSampler: srSampler ?? 'model default',
      noiseLevel: noiseLevel ?? 'model default',
      backProjection: backProjection ?? 'model default',
      srTiles: srTiles === undefined ? 'model default' : srTiles,
      batch,
    },
  };
}

async function writeReport(
  dir: string,
  name: string,
  items: readonly EvalItem[],
  records: readonly EvalRecord[],
  sheetMax: number,
  saveImages: boolean,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  if (saveImages) {
    await mkdir(join(dir, 'images'), { recursive: true });
    for (const it of items)
      await writePng(join(dir, 'images', `${String(it.index).padStart(5, '0')}.png`), it.image);
  }
  const sheet = contactSheet(
    items.slice(0, sheetMax).map((it, i) => {
      const note = failureNote(records[i]!);
      return { image: it.image, caption: it.prompt, pass: records[i]!.pass, ...(note ? { note } : {}) };
    }),
    loadDejaVu(),
  );
  const path = join(dir, `${name}.png`);
  await atomicWriteFile(path, await encodePng(sheet));
  return path;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description(
      'Faithfulness evaluation on the synthetic grammar: generate an image for each prompt of a split with ' +
        '--model, then check per attribute (count, colour, shape, size, relation/position, word) with classical ' +
        'image analysis and OCR. Writes REPORT/report.json (per-prompt verdicts, per-attribute accuracy) and ' +
        'REPORT/contact-sheet.png. --ground-truth instead scores the checker itself: on true renders (should be ' +
        '~100 %) and on the same renders paired with shuffled captions (should be near 0 %).',
    )
    .option('--model <dir>', 'stage-I pipeline folder to evaluate [default: the shipped model, both stages]')
    .option('--sr-model <dir>', 'super-resolution pipeline folder (stage II)')
    .option('--ground-truth', 'score the checker on true renders and on shuffled captions (no model)', false)
    .option('--split <name>', 'heldout | train: which compositions to prompt with', 'heldout')
    .option('--count <n>', 'number of prompts', '60')
    .option(
      '--kinds <list>',
      `only prompts of these scene kinds, comma-separated (${SCENE_KINDS.join(', ')}): e.g. relation, to measure relations on more prompts [default: all]`,
    )
    .option(
      '--min-objects <n>',
      'only prompts of at least this many objects (a sign is one): e.g. --kinds objects --min-objects 2, to measure counting',
      '1',
    )
    .option('--seed <n>', 'seed for the prompts and for generation', '1')
    .option('--size <px>', '--ground-truth render size', '64')
    .option(
      '--blur <sigma>',
      '--ground-truth: Gaussian blur (px) applied to renders, to probe robustness',
      '0',
    )
    .option('--noise <levels>', '--ground-truth: uniform noise amplitude added to renders', '0')
    .option('--report <dir>', 'report folder', './eval-report')
    .option('--sheet-max <n>', 'most images on a contact sheet', '60')
    .option('--steps <n>', 'stage-I sampling steps [default: the pipeline default]')
    .option('--sr-steps <n>', 'stage-II sampling steps')
    .option('--sr-guidance <f>', 'stage-II classifier-free guidance scale')
    .option('--guidance <f>', 'stage-I classifier-free guidance scale')
    .option('--threshold <kind>', 'dynamic | static | none [default: the scheduler config]')
    .option('--sampler <name>', "ddpm | ddim [default: ddpm, or the model's generation_config.json]")
    .option('--sr-sampler <name>', 'stage-II sampler: ddpm | ddim [default: --sampler, or the model default]')
    .option('--sr-tile-size <px>', SR_TILE_SIZE_HELP)
    .option('--sr-tile-overlap <px>', SR_TILE_OVERLAP_HELP)
    .option(
      '--noise-level <n>',
      'stage-II noise-conditioning augmentation level [default: the model default]',
    )
    .option('--sr-back-projection <on|off>', `stage II: ${BACK_PROJECTION_HELP}`)
    .option('--batch <n>', 'prompts generated together', '8')
    .option('--fp16', 'load *.fp16.safetensors weight variants', false)
    .option('--quiet', 'no progress output', false)
    .option('--json', 'print the summary as JSON on stdout', false)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen eval --model my-model --split heldout --count 100\n' +
        '  imagen eval --model my-model --sr-model my-sr --split train --json\n' +
        '  imagen eval --ground-truth --count 500 --size 256',
    )
    .action(async (f: EvalFlags) => {
      if (f.model && f.groundTruth) throw usageError('--model and --ground-truth exclude each other');
      if (!f.model && !f.groundTruth) {
        const shipped = shippedModel();
        if (!shipped)
          throw usageError(
            'give --model DIR, or --ground-truth (this copy of imagen-ts has no shipped model)',
          );
        f.model = shipped.base;
        f.srModel ??= shipped.sr;
      }
      const split: Split = splitFlag(f.split);
      const count = intFlag(f.count, '--count', 1, 100_000);
      const seed = intFlag(f.seed, '--seed', 0, Number.MAX_SAFE_INTEGER);
      const sheetMax = intFlag(f.sheetMax, '--sheet-max', 1, 10_000);
      const say = logger(f.quiet || f.json);
      const kinds = f.kinds === undefined ? undefined : kindsFlag(f.kinds);
      const minObjects = minObjectsFlag(f.minObjects);
      const { examples } = synthExamplesOfKinds(seed, split, count, kinds, minObjects);
      const t0 = performance.now();
      let items: EvalItem[];
      let settings: Record<string, unknown>;
      if (f.groundTruth) {
        const size = intFlag(f.size, '--size', 16, 2048);
        const blur = floatFlag(f.blur, '--blur', 0, 20)!;
        const noise = floatFlag(f.noise, '--noise', 0, 128)!;
        const font = loadDejaVu();
        items = examples.map((e) => ({
          index: e.index,
          prompt: e.caption,
          scene: e.scene,
          image: addNoise(
            gaussianBlur(renderScene(e.scene, size, font), blur),
            noise,
            seed * 1_000_003 + e.index,
          ),
        }));
        settings = { groundTruth: true, size, blur, noise };
      } else {
        const g = await generateForItems(
          f,
          examples.map((e) => ({ index: e.index, prompt: e.caption })),
          seed,
          say,
        );
        items = examples.map((e, i) => ({
          index: e.index,
          prompt: e.caption,
          scene: e.scene,
          image: g.images[i]!,
        }));
        settings = g.settings;
      }
      const ocr = examples.some((e) => e.scene.sign) ? await createWordOcr() : undefined;
      const report: Record<string, unknown> = {
        split,
        seed,
        count,
        ...(kinds ? { kinds } : {}),
        ...(minObjects > 1 ? { minObjects } : {}),
        settings,
      };
      let summary: Summary;
      let shuffledSummary: Summary | undefined;
      try {
        const bar = new ProgressBar('check', '', { quiet: f.quiet || f.json });
        bar.start(items.length);
        const scored = await scoreItems(items, ocr?.read, (d) => bar.update(d));
        bar.stop();
        summary = scored.summary;
        report.summary = summary;
        report.results = scored.records;
        const sheet = await writeReport(
          f.report,
          'contact-sheet',
          items,
          scored.records,
          sheetMax,
          !f.groundTruth,
        );
        say(`${f.groundTruth ? 'ground truth' : 'model'}: ${formatSummary(summary)}`);
        if (f.groundTruth) {
          const shuffled = shuffleCaptions(items);
          const s = await scoreItems(shuffled, ocr?.read);
          shuffledSummary = s.summary;
          report.shuffled = { summary: s.summary, results: s.records };
          await writeReport(f.report, 'contact-sheet-shuffled', shuffled, s.records, sheetMax, false);
          say(`shuffled captions: ${formatSummary(s.summary)}`);
        }
        report.seconds = (performance.now() - t0) / 1000;
        await atomicWriteFile(join(f.report, 'report.json'), `${JSON.stringify(report, null, 1)}\n`);
        say(`report: ${join(f.report, 'report.json')}, ${sheet}`);
      } finally {
        await ocr?.terminate();
      }
      if (f.json) {
        process.stdout.write(
          `${JSON.stringify({ split, count, seed, summary, ...(shuffledSummary ? { shuffled: shuffledSummary } : {}), report: f.report })}\n`,
        );
      }
    });
}
