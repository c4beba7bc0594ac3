/**
 * The stage-I / stage-II flags of `vary` and `inpaint`: one set of names, parsers and defaults so
 * the two commands cannot drift apart; only the wording of some help lines is the command's own.
 */
import type { Command } from 'commander';
import type { ImageSrStageOptions, ImageStageDefaults, ImageStageOptions } from '../pipelines/img2img.js';
import { type PipelineStageDefaults, stageGuidance } from '../pipelines/stage_run.js';
import type { StageModels } from '../pipelines/text_to_image.js';
import {
  BACK_PROJECTION_HELP,
  type CommonFlags,
  type CommonOptions,
  folderDefault,
  parseNoiseLevel,
  parseNumber,
  parseOnOff,
  parseSteps,
  parseStrength,
} from './image_flags.js';

export interface StageFlags extends CommonFlags {
  model: string;
  srModel?: string;
  strength?: string;
  srStrength?: string;
  steps?: string;
  srSteps?: string;
  guidance?: string;
  srGuidance?: string;
  noiseLevel?: string;
  srBackProjection?: string;
}

/** A pipeline's defaults for both stages (`IF_IMG2IMG_DEFAULTS`, `IF_INPAINT_DEFAULTS`). */
export interface TwoStageDefaults {
  base: ImageStageDefaults;
  sr: ImageStageDefaults & { noiseLevel: number };
}

/** Help lines whose meaning differs by command; `[default: …]` is appended from the defaults. */
export interface StageHelp {
  srModel: string;
  strength: string;
  steps: string;
  srSteps: string;
  noiseLevel: string;
}

/** Register the flags of `StageFlags` after `--model` (and whatever the command adds between). */
export function addStageOptions(cmd: Command, d: TwoStageDefaults, help: StageHelp): Command {
  return cmd
    .option('--sr-model <dir>', help.srModel)
    .option('--strength <f>', `${help.strength} [default: ${d.base.strength}]`)
    .option('--sr-strength <f>', `stage-II strength [default: ${d.sr.strength}]`)
    .option('--steps <n|preset>', `${help.steps} ${folderDefault(d.base.steps)}`)
    .option('--sr-steps <n|preset>', `${help.srSteps} ${folderDefault(d.sr.steps)}`)
    .option('--guidance <f>', `stage-I classifier-free guidance scale ${folderDefault(d.base.guidanceScale)}`)
    .option('--sr-guidance <f>', `stage-II guidance scale ${folderDefault(d.sr.guidanceScale)}`)
    .option('--noise-level <n>', `${help.noiseLevel} ${folderDefault(d.sr.noiseLevel)}`)
    .option('--sr-back-projection <on|off>', `stage II: ${BACK_PROJECTION_HELP}`);
}

export interface StageOptions {
  base: ImageStageOptions;
  sr: ImageSrStageOptions;
}

/** Parse every stage flag, so that a typo fails before gigabytes of weights load. */
export function parseStageOptions(f: StageFlags, c: CommonOptions): StageOptions {
  const base = {
    steps: parseSteps(f.steps),
    guidanceScale: parseNumber(f.guidance, '--guidance', 0, 100),
    strength: parseStrength(f.strength, '--strength'),
    thresholding: c.thresholding,
    sampler: c.sampler,
  };
  const sr = {
    steps: parseSteps(f.srSteps, '--sr-steps'),
    guidanceScale: parseNumber(f.srGuidance, '--sr-guidance', 0, 100),
    strength: parseStrength(f.srStrength, '--sr-strength'),
    thresholding: c.thresholding,
    sampler: c.sampler,
    noiseLevel: parseNoiseLevel(f.noiseLevel),
    backProjection: parseOnOff(f.srBackProjection, '--sr-back-projection'),
  };
  return { base, sr };
}

/**
 * Whether either stage guides (scale > 1), which needs the negative prompt's embeddings; known
 * only once the folders are read, since their generation_config.json may set the scale.
 */
export function needsNegative(
  o: StageOptions,
  d: { base: PipelineStageDefaults; sr: PipelineStageDefaults },
  base: Pick<StageModels, 'defaults'>,
  sr: Pick<StageModels, 'defaults'> | undefined,
): boolean {
  return stageGuidance(o.base, base, d.base) > 1 || (!!sr && stageGuidance(o.sr, sr, d.sr) > 1);
}
