import type { Command } from 'commander';
import { IF_IMG2IMG_DEFAULTS, varyImages } from '../../pipelines/img2img.js';
import { readImage } from '../../platform/node/image.js';
import { addCommonOptions, parseCommon, requirePrompt } from '../image_flags.js';
import { logger } from '../progress.js';
import { addStageOptions, parseStageOptions, type StageFlags } from '../stage_options.js';
import { loadStages, runStages } from '../two_stage.js';

// generate.ts imports it from here, where it lived before the image commands' helpers moved out.
export { loadPromptEmbeds } from '../prompt_conditioning.js';

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
    );
  addStageOptions(cmd, d, {
    srModel: "stage-II pipeline folder; reuses stage I's text embeddings",
    strength: 'how far to move away from IMAGE, (0, 1]: 1 = ignore it',
    steps: 'stage-I steps before --strength trims them (e.g. 80 at 0.7 runs 56)',
    srSteps: 'stage-II steps before --sr-strength',
    noiseLevel: 'stage-II noise-conditioning augmentation level 0..999',
  });
  addCommonOptions(cmd)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen vary photo.png --model IF-I-XL-v1.0 --prompt "the same scene in winter" --strength 0.6\n  imagen vary photo.png --model IF-I-XL-v1.0 --sr-model IF-II-L-v1.0 --prompt "oil painting" --out v.png',
    )
    .action(async (imagePath: string, f: StageFlags) => {
      const say = logger(f.quiet || f.json);
      const common = parseCommon(f);
      const prompt = requirePrompt(f);
      const options = parseStageOptions(f, common);
      const stages = await loadStages(f, say);
      const image = await readImage(imagePath);
      await runStages({ flags: f, common, prompt, options, defaults: d, stages, say }, (rt, base, sr, o) =>
        varyImages(rt, undefined, base, sr, { ...o, image }),
      );
    });
}
