import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { IF_INPAINT_DEFAULTS, inpaintImages, parseExtend } from '../../pipelines/inpaint.js';
import { encodeMaskPng, loadInpaintInputs } from '../../platform/node/mask.js';
import { usageError } from '../errors.js';
import { addCommonOptions, parseCommon, requirePrompt } from '../image_flags.js';
import { logger } from '../progress.js';
import { addStageOptions, parseStageOptions, type StageFlags } from '../stage_options.js';
import { loadStages, runStages } from '../two_stage.js';

interface InpaintFlags extends StageFlags {
  mask?: string;
  extend?: string;
  fill: string;
  saveMask?: string;
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
    .option('--save-mask <file>', 'also write the mask that was used (handy with --extend) as PNG');
  addStageOptions(cmd, d, {
    srModel: 'stage-II pipeline folder (inpainting super-resolution)',
    strength:
      'stage-I strength in (0, 1]: the share of the schedule that runs; below 1 the repainted region keeps more of IMAGE',
    steps: 'stage-I steps',
    srSteps: 'stage-II steps',
    noiseLevel: 'stage-II noise-conditioning augmentation level 0..999 (diffusers IF inpainting SR: 0)',
  });
  addCommonOptions(cmd)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen inpaint room.png --mask sofa-mask.png --model IF-I-XL-v1.0 --prompt "a red sofa" --out room2.png\n  imagen inpaint room.png --mask m.png --model IF-I-XL-v1.0 --sr-model IF-II-L-v1.0 --prompt "a red sofa"\n  imagen inpaint beach.png --extend left=64,right=64 --model IF-I-XL-v1.0 --prompt "a wide beach" --save-mask m.png',
    )
    .action(async (imagePath: string, f: InpaintFlags) => {
      const say = logger(f.quiet || f.json);
      const common = parseCommon(f);
      const prompt = requirePrompt(f);
      if (!f.mask && !f.extend)
        throw usageError('inpaint needs --mask MASK (white = repaint), or --extend for outpainting');
      if (f.fill !== 'edge' && f.fill !== 'grey')
        throw usageError(`--fill must be edge or grey, got "${f.fill}"`);
      const extend = f.extend ? parseExtend(f.extend) : undefined;
      const options = parseStageOptions(f, common);
      const inputs = await loadInpaintInputs({ image: imagePath, mask: f.mask, extend, fill: f.fill });
      if (inputs.extended) say(`outpainting canvas ${inputs.image.width}×${inputs.image.height}`);
      if (f.saveMask) await writeFile(f.saveMask, await encodeMaskPng(inputs.mask));
      const stages = await loadStages(f, say);
      const { image, mask } = inputs;
      await runStages(
        {
          flags: f,
          common,
          prompt,
          options,
          defaults: d,
          stages,
          say,
          extra: { canvas: { width: image.width, height: image.height } },
        },
        (rt, base, sr, o) => inpaintImages(rt, undefined, base, sr, { ...o, image, mask }),
      );
    });
}
