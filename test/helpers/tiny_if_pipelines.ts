/** The tiny IF folders loaded for pipeline tests that call the stages directly. */
import { afterAll, beforeAll } from 'vitest';
import type { Runtime } from '../../src/engine/runtime.js';
import { InMemoryT5Encoder } from '../../src/models/t5/t5_encoder.js';
import type { StageModels, TextModels } from '../../src/pipelines/text_to_image.js';
import { type LoadedPipeline, loadPipelineFolder } from '../../src/platform/node/pipeline_folder.js';
import { useTinyIfFolders } from './test_dirs.js';
import type { TinyIfFolders } from './tiny_if.js';

export interface TinyIfPipelines {
  folders: TinyIfFolders;
  base: LoadedPipeline;
  sr: LoadedPipeline;
  /** Stage I's T5, ready to encode on the runtime given. */
  text: TextModels;
}

/** Built and loaded before the file's tests, released after; read the fields inside tests only. */
export function useTinyIfPipelines(rt: Runtime): TinyIfPipelines {
  const folders = useTinyIfFolders();
  const p = { folders } as TinyIfPipelines;
  beforeAll(async () => {
    p.base = await loadPipelineFolder(folders.base);
    p.sr = await loadPipelineFolder(folders.sr);
    p.text = {
      encoder: new InMemoryT5Encoder(p.base.textEncoder!, rt),
      tokenizer: p.base.tokenizer!,
      maxLength: p.base.maxTextLength,
    };
  });
  afterAll(async () => {
    await p.text?.encoder.release();
  });
  return p;
}

/** A loaded folder as the stage functions take it: UNet and schedules only, the text passed apart. */
export function stage(p: LoadedPipeline): StageModels {
  return {
    unet: p.unet,
    schedule: p.schedule,
    imageNoisingSchedule: p.imageNoisingSchedule,
  };
}
