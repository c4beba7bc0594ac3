import type { Command } from 'commander';
import { ImagenError } from '../../engine/errors.js';
import { contactSheet, type SheetItem } from '../../eval/contact_sheet.js';
import { tensorToImages } from '../../io/image.js';
import { encodePrompts } from '../../models/t5/t5_encoder.js';
import { generateImages, type StageModels } from '../../pipelines/text_to_image.js';
import { writePng } from '../../platform/node/image.js';
import { loadPipelineFolder, openTextEncoder } from '../../platform/node/pipeline_folder.js';
import { createRuntime } from '../../platform/node/runtime.js';
import { loadDejaVu } from '../../platform/node/synth_render.js';
import { usageError } from '../errors.js';
import { logger, ProgressBar } from '../progress.js';

const KINDS = ['none', 'static', 'dynamic'] as const;
type Kind = (typeof KINDS)[number];

interface CompareFlags {
  model: string;
  thresholds: string;
  guidance: string;
  seed: string;
  steps?: string;
  out: string;
  quiet: boolean;
  json: boolean;
}

function parseList<T>(v: string, flag: string, parse: (s: string) => T): T[] {
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!items.length) throw usageError(`${flag} needs a comma-separated list`);
  return items.map(parse);
}

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description(
      'Generate one prompt under several thresholding methods and guidance scales (same seed) and write one labelled\n' +
        'grid image: rows are thresholds, columns guidance scales. Imagen §2.3 shows why dynamic thresholding matters at\n' +
        'high guidance: static clipping saturates, no thresholding diverges.',
    )
    .argument('<prompt>', 'the text prompt')
    .requiredOption('--model <dir>', 'stage-I pipeline folder')
    .option('--thresholds <list>', 'comma-separated: none, static, dynamic', 'none,static,dynamic')
    .option('--guidance <list>', 'comma-separated guidance scales', '3,7,15')
    .option('--seed <n>', 'random seed (the same for every cell)', '0')
    .option('--steps <n|preset>', 'sampling steps or an IF preset [default: 100]')
    .option('--out <file>', 'output grid PNG', 'compare.png')
    .option('--quiet', 'no progress output', false)
    .option('--json', 'print a JSON result on stdout', false)
    .addHelpText(
      'after',
      '\nExample:\n  imagen compare "a red circle" --model my-model --thresholds none,static,dynamic --guidance 3,7,15 --out grid.png',
    )
    .action(async (prompt: string, f: CompareFlags) => {
      const say = logger(f.quiet || f.json);
      const thresholds = parseList(f.thresholds, '--thresholds', (s) => {
        if (!(KINDS as readonly string[]).includes(s))
          throw usageError(`--thresholds: "${s}" is not one of ${KINDS.join(', ')}`);
        return s as Kind;
      });
      const guidances = parseList(f.guidance, '--guidance', (s) => {
        const g = Number(s);
        if (!Number.isFinite(g) || g < 0 || g > 100)
          throw usageError(`--guidance: "${s}" is not a number in [0, 100]`);
        return g;
      });
      const seed = Number(f.seed);
      if (!Number.isSafeInteger(seed) || seed < 0) throw usageError('--seed must be a non-negative integer');
      const steps =
        f.steps === undefined ? undefined : Number.isInteger(Number(f.steps)) ? Number(f.steps) : f.steps;
      const base = await loadPipelineFolder(f.model);
      if (base.stage !== 'base')
        throw new ImagenError('CONFIG_INVALID', `${f.model} is not a stage-I pipeline`);
      if (!base.tokenizer) throw new ImagenError('NOT_FOUND', `${f.model}: no tokenizer`);
      const rt = createRuntime();
      const encoder = await openTextEncoder(base, rt);
      if (!encoder) throw new ImagenError('NOT_FOUND', `${f.model}: no text_encoder`);
      let emb: Awaited<ReturnType<typeof encodePrompts>>;
      try {
        emb = await encodePrompts(encoder, base.tokenizer, [prompt], {
          maxLength: base.maxTextLength,
          negativePrompt: '',
        });
      } finally {
        await encoder.release();
      }
      const stage: StageModels = { unet: base.unet, schedule: base.schedule };
      const items: SheetItem[] = [];
      const bar = new ProgressBar('compare', '{cell}', { quiet: f.quiet || f.json });
      bar.start(thresholds.length * guidances.length, 0, { cell: '' });
      for (const th of thresholds) {
        for (const g of guidances) {
          const r = await generateImages(rt, undefined, stage, undefined, {
            prompt,
            seed,
            embeddings: { promptEmbeds: emb.promptEmbeds, negativePromptEmbeds: emb.negativePromptEmbeds },
            base: { steps, guidanceScale: g, thresholding: th },
          });
          items.push({ image: tensorToImages(r.base)[0]!, caption: `${th} thresholding, guidance ${g}` });
          bar.update(items.length, { cell: `${th} / ${g}` });
        }
      }
      bar.stop();
      await writePng(f.out, contactSheet(items, loadDejaVu(), guidances.length));
      if (f.json) {
        process.stdout.write(
          `${JSON.stringify({ prompt, seed, out: f.out, thresholds, guidance: guidances })}\n`,
        );
      } else say(`wrote ${f.out} (${thresholds.length} × ${guidances.length} grid)`);
    });
}
