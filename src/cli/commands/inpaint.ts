import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { IF_INPAINT_DEFAULTS, inpaintImages, parseExtend } from '../../pipelines/inpaint.js';
import { encodeMaskPng, loadInpaintInputs } from '../../platform/node/mask.js';
import { stageModels } from '../../platform/node/pipeline_folder.js';
import { createRuntime } from '../../platform/node/runtime.js';
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
  parseStrength,
  progressBars,
  promptConditioning,
  requirePrompt,
  writeResults,
} from './vary.js';

interface InpaintFlags extends CommonFlags {
  model: string;
  mask?: string;
  extend?: string;
  fill: string;
  saveMask?: string;
  srModel?: string;
  strength?: string;
  srStrength?: string;
  steps?: string;
  srSteps?: string;
  guidance?: string;
  srGuidance?: string;
  noiseLevel: string;
}

export function registerInpaint(program: Command): void {
  const d = IF_INPAINT_DEFAULTS;
  const cmd = program
    .command('inpaint')
    .description(
      'Inpainting: repaint the white part of --mask (black = keep) to match the prompt, with stage I and optionally ' +
        'a stage-II model (--sr-model; the original and the mask are used again at its size). Kept pixels stay the ' +
        "input's. Outpainting: --extend pads the canvas and repaints the new border.",
    )
    .argument('<image>', 'input image (PNG, JPEG, WebP, …)')
    .requiredOption(
      '--model <dir>',
      'stage-I pipeline folder (model_index.json, unet/, scheduler/, text_encoder/, tokenizer/)',
    )
    .option(
      '--mask <file>',
      'mask image of the same size as IMAGE: white = repaint, black = keep (grey ≥ 50% counts as white)',
    )
    .option(
      '--extend <sides>',
      'outpaint: pad IMAGE, e.g. left=64,right=0,top=32,bottom=0 (pixels of IMAGE); the border is repainted',
    )
    .option(
      '--fill <kind>',
      'how --extend fills the new border before repainting: edge (repeat edge pixels) | grey',
      'edge',
    )
    .option('--save-mask <file>', 'also write the mask that was used (handy with --extend) as PNG')
    .option('--sr-model <dir>', 'stage-II pipeline folder (inpainting super-resolution)')
    .option(
      '--strength <f>',
      `stage-I strength in (0, 1]: the share of the schedule that runs; below 1 the repainted region keeps more of IMAGE [default: ${d.base.strength}]`,
    )
    .option('--sr-strength <f>', `stage-II strength [default: ${d.sr.strength}]`)
    .option('--steps <n|preset>', `stage-I steps [default: ${d.base.steps}]`)
    .option('--sr-steps <n|preset>', `stage-II steps [default: ${d.sr.steps}]`)
    .option('--guidance <f>', `stage-I classifier-free guidance scale [default: ${d.base.guidanceScale}]`)
    .option('--sr-guidance <f>', `stage-II guidance scale [default: ${d.sr.guidanceScale}]`)
    .option(
      '--noise-level <n>',
      'stage-II noise-conditioning augmentation level 0..999 (diffusers IF inpainting SR: 0)',
      String(d.sr.noiseLevel),
    );
  addCommonOptions(cmd)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen inpaint room.png --mask sofa-mask.png --model IF-I-XL-v1.0 --prompt "a red sofa" --out room2.png\n  imagen inpaint room.png --mask m.png --model IF-I-XL-v1.0 --sr-model IF-II-L-v1.0 --prompt "a red sofa"\n  imagen inpaint beach.png --extend left=64,right=64 --model IF-I-XL-v1.0 --prompt "a wide beach" --save-mask m.png',
    )
    .action(async (imagePath: string, f: InpaintFlags) => {
      const say = logger(f.quiet || f.json);
      const c = parseCommon(f);
      const prompt = requirePrompt(f);
      if (!f.mask && !f.extend)
        throw usageError('inpaint needs --mask MASK (white = repaint), or --extend for outpainting');
      if (f.fill !== 'edge' && f.fill !== 'grey')
        throw usageError(`--fill must be edge or grey, got "${f.fill}"`);
      const extend = f.extend ? parseExtend(f.extend) : undefined;
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
        noiseLevel: parseNoiseLevel(f.noiseLevel),
      };
      const inputs = await loadInpaintInputs({ image: imagePath, mask: f.mask, extend, fill: f.fill });
      if (inputs.extended) say(`outpainting canvas ${inputs.image.width}×${inputs.image.height}`);
      if (f.saveMask) await writeFile(f.saveMask, await encodeMaskPng(inputs.mask));
      const base = await loadStage(f.model, 'base', '--model', f.fp16, say);
      const sr = f.srModel ? await loadStage(f.srModel, 'sr', '--sr-model', f.fp16, say) : undefined;
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
      let result: Awaited<ReturnType<typeof inpaintImages>>;
      try {
        result = await inpaintImages(rt, undefined, stageModels(base), sr && stageModels(sr, rt), {
          image: inputs.image,
          mask: inputs.mask,
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
      await writeResults(f, result.sr ?? result.base, t0, say, {
        canvas: { width: inputs.image.width, height: inputs.image.height },
      });
    });
}
