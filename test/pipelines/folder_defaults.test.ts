/**
 * A model folder's generation_config.json (steps, guidance, sampler, thresholding, noise level) is
 * honoured by every pipeline, not only text-to-image: the shipped stage II is meant to run 10 DDIM
 * steps unguided at noise level 100, and `imagen upscale` used to run IF's 50 guided steps at 250.
 */
import { describe, expect, it } from 'vitest';
import type { NDArray } from '../../src/engine/ndarray.js';
import type { ProgressEvent } from '../../src/pipelines/events.js';
import { IF_IMG2IMG_DEFAULTS, varyImages } from '../../src/pipelines/img2img.js';
import { inpaintImages } from '../../src/pipelines/inpaint.js';
import { stageGuidance, stageNoiseLevel } from '../../src/pipelines/stage_run.js';
import type { StageDefaults, StageModels } from '../../src/pipelines/text_to_image.js';
import { upscaleImage } from '../../src/pipelines/upscale.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { TINY_BASE_SIZE, TINY_SR_SIZE, testPicture } from '../helpers/tiny_if.js';
import { stage, useTinyIfPipelines } from '../helpers/tiny_if_pipelines.js';
import { maxAbsErr } from '../reference/fd.js';

const rt = createRuntime({ threads: 1 });
const tiny = useTinyIfPipelines(rt);

const baseDefaults: StageDefaults = { steps: 4, guidanceScale: 2, sampler: 'ddim', thresholding: 'static' };
const srDefaults: StageDefaults = { steps: 3, guidanceScale: 1, sampler: 'ddim', noiseLevel: 100 };
const withDefaults = (s: StageModels, defaults: StageDefaults): StageModels => ({ ...s, defaults });

/** Denoising steps reported per stage. */
function stepCounter() {
  const steps: Record<string, number> = {};
  return {
    steps,
    onProgress: (e: ProgressEvent) => {
      if (e.status === 'step') steps[e.stage] = (steps[e.stage] ?? 0) + 1;
    },
  };
}

describe('resolution order: caller, then the folder, then the pipeline', () => {
  it('guidance and noise level', () => {
    const d = IF_IMG2IMG_DEFAULTS.sr;
    expect(stageGuidance(undefined, {}, d)).toBe(4);
    expect(stageGuidance(undefined, { defaults: { guidanceScale: 1 } }, d)).toBe(1);
    expect(stageGuidance({ guidanceScale: 6 }, { defaults: { guidanceScale: 1 } }, d)).toBe(6);
    expect(stageNoiseLevel(undefined, {}, d)).toBe(250);
    expect(stageNoiseLevel({}, { defaults: { noiseLevel: 100 } }, d)).toBe(100);
    expect(stageNoiseLevel({ noiseLevel: 0 }, { defaults: { noiseLevel: 100 } }, d)).toBe(0);
  });
});

describe("vary, inpaint and upscale take the folder's generation_config", () => {
  const image = testPicture(TINY_SR_SIZE, TINY_SR_SIZE);
  const common = { image, prompt: 'a red square', seed: 5 };

  it('vary: folder defaults = the same values passed explicitly; strength still trims the steps', async () => {
    const fromFolder = stepCounter();
    const a = await varyImages(
      rt,
      tiny.text,
      withDefaults(stage(tiny.base), baseDefaults),
      withDefaults(stage(tiny.sr), srDefaults),
      { ...common, base: { strength: 0.5 }, onProgress: fromFolder.onProgress },
    );
    // 4 steps at strength 0.5 → 2; stage II: 3 steps at IF img2img's strength 0.8 → 2
    expect(fromFolder.steps).toEqual({ 'stage I': 2, 'stage II': 2 });

    const explicit = await varyImages(rt, tiny.text, stage(tiny.base), stage(tiny.sr), {
      ...common,
      base: { strength: 0.5, steps: 4, guidanceScale: 2, sampler: 'ddim', thresholding: 'static' },
      sr: { steps: 3, guidanceScale: 1, sampler: 'ddim', noiseLevel: 100 },
    });
    expect(maxAbsErr(a.base, explicit.base)).toBe(0);
    expect(maxAbsErr(a.sr!, explicit.sr!)).toBe(0);

    // the caller still wins over the folder
    const caller = stepCounter();
    const b = await varyImages(
      rt,
      tiny.text,
      withDefaults(stage(tiny.base), baseDefaults),
      withDefaults(stage(tiny.sr), srDefaults),
      { ...common, base: { strength: 0.5, steps: 6 }, sr: { noiseLevel: 0 }, onProgress: caller.onProgress },
    );
    expect(caller.steps).toEqual({ 'stage I': 3, 'stage II': 2 });
    expect(maxAbsErr(b.sr!, a.sr!)).toBeGreaterThan(1e-4);
  }, 60_000);

  it('inpaint: folder defaults = the same values passed explicitly', async () => {
    const mask = {
      width: TINY_SR_SIZE,
      height: TINY_SR_SIZE,
      data: new Uint8Array(TINY_SR_SIZE * TINY_SR_SIZE).map((_, p) => (p % TINY_SR_SIZE < 16 ? 255 : 0)),
    };
    const counted = stepCounter();
    const a = await inpaintImages(
      rt,
      tiny.text,
      withDefaults(stage(tiny.base), baseDefaults),
      withDefaults(stage(tiny.sr), srDefaults),
      { ...common, mask, onProgress: counted.onProgress },
    );
    // inpainting's strengths: stage I 1.0, stage II 0.8
    expect(counted.steps).toEqual({ 'stage I': 4, 'stage II': 2 });
    const explicit = await inpaintImages(rt, tiny.text, stage(tiny.base), stage(tiny.sr), {
      ...common,
      mask,
      base: { steps: 4, guidanceScale: 2, sampler: 'ddim', thresholding: 'static' },
      sr: { steps: 3, guidanceScale: 1, sampler: 'ddim', noiseLevel: 100 },
    });
    expect(maxAbsErr(a.base, explicit.base)).toBe(0);
    expect(maxAbsErr(a.sr!, explicit.sr!)).toBe(0);
  }, 60_000);

  it('upscale: folder defaults = the same values passed explicitly; without them IF-II defaults', async () => {
    const low = testPicture(TINY_BASE_SIZE, TINY_BASE_SIZE);
    const run = (sr: StageModels, extra: Parameters<typeof upscaleImage>[3] | object = {}) => {
      const counted = stepCounter();
      return upscaleImage(rt, tiny.text, sr, {
        image: low,
        prompt: 'a red square',
        seed: 2,
        onProgress: counted.onProgress,
        ...extra,
      }).then((out: NDArray) => ({ out, steps: counted.steps['stage II'] }));
    };
    const folder = await run(withDefaults(stage(tiny.sr), srDefaults));
    expect(folder.steps).toBe(3);
    const explicit = await run(stage(tiny.sr), {
      steps: 3,
      guidanceScale: 1,
      sampler: 'ddim',
      noiseLevel: 100,
    });
    expect(maxAbsErr(folder.out, explicit.out)).toBe(0);
    expect((await run(stage(tiny.sr), { steps: 3 })).steps).toBe(3);
    // no generation_config: IFSuperResolutionPipeline's 50 steps
    expect((await run(stage(tiny.sr))).steps).toBe(50);
  }, 60_000);
});
