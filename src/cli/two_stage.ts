/**
 * The run `vary` and `inpaint` share: stage I and an optional stage II from pipeline folders, the
 * prompt encoded by stage I's text encoder, progress bars, and the images written.
 */
import type { NDArray } from '../engine/ndarray.js';
import type { Runtime } from '../engine/runtime.js';
import type { ImagePipelineOptions } from '../pipelines/img2img.js';
import type { StageModels } from '../pipelines/text_to_image.js';
import { type LoadedPipeline, stageModels } from '../platform/node/pipeline_folder.js';
import { createRuntime } from '../platform/node/runtime.js';
import type { CommonOptions } from './image_flags.js';
import { runWithProgress } from './image_output.js';
import { loadStage } from './load_stage.js';
import { folderText, promptConditioning } from './prompt_conditioning.js';
import { needsNegative, type StageFlags, type StageOptions, type TwoStageDefaults } from './stage_options.js';

export interface LoadedStages {
  base: LoadedPipeline;
  sr?: LoadedPipeline;
}

/** The `--model` and `--sr-model` folders, each checked for its role. */
export async function loadStages(f: StageFlags, say: (m: string) => void): Promise<LoadedStages> {
  const base = await loadStage(f.model, 'base', '--model', f.fp16, say);
  const sr = f.srModel ? await loadStage(f.srModel, 'sr', '--sr-model', f.fp16, say) : undefined;
  return { base, sr };
}

/** What the pipeline gets besides its input image (and mask). */
export type StagePipelineOptions = ImagePipelineOptions & Pick<StageOptions, 'base' | 'sr'>;

export type StagePipeline = (
  rt: Runtime,
  base: StageModels,
  sr: StageModels | undefined,
  o: StagePipelineOptions,
) => Promise<{ base: NDArray; sr?: NDArray }>;

export async function runStages(
  r: {
    flags: StageFlags;
    common: CommonOptions;
    prompt: string;
    options: StageOptions;
    /** The pipeline's published defaults (`IF_IMG2IMG_DEFAULTS`, `IF_INPAINT_DEFAULTS`). */
    defaults: TwoStageDefaults;
    stages: LoadedStages;
    say: (m: string) => void;
    /** More fields of the `--json` result. */
    extra?: Record<string, unknown>;
  },
  pipeline: StagePipeline,
): Promise<void> {
  const { flags: f, common: c, options, stages, say } = r;
  const rt = createRuntime({ device: c.device });
  const embeddings = await promptConditioning(f, {
    needNegative: needsNegative(options, r.defaults, stages.base, stages.sr),
    text: async () => folderText(stages.base, rt),
    missing: `--model ${f.model} has no text_encoder/ and tokenizer/: pass --prompt-embeds FILE (from \`imagen encode\`)`,
    say,
  });
  stages.base.textEncoder = undefined; // let the T5 weights be collected before the UNets run
  await runWithProgress(
    f,
    say,
    async (onProgress) => {
      const result = await pipeline(rt, stageModels(stages.base), stages.sr && stageModels(stages.sr, rt), {
        prompt: r.prompt,
        embeddings,
        negativePrompt: f.negativePrompt,
        numImagesPerPrompt: c.numImages,
        seed: c.seed,
        cleanCaption: f.cleanCaption,
        base: options.base,
        sr: options.sr,
        onProgress,
        onWarning: (m) => say(`warning: ${m}`),
      });
      return result.sr ?? result.base;
    },
    r.extra,
  );
}
