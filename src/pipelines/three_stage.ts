/**
 * Stage III of the DeepFloyd IF cascade: the Stable Diffusion ×4 upscaler on stage II's output.
 * As the IF docs' third stage: the stage-II tensor in [−1, 1] goes to the upscaler unchanged
 * (diffusers' deprecated tensor path: negative values skip 2x − 1), the prompt goes through the
 * upscaler's own CLIP encoder, noise level 100. No Node imports.
 */
import { Generator } from '../diffusion/noise.js';
import { NDArray } from '../engine/ndarray.js';
import type { ProgressEvent } from './events.js';
import { type SdUpscaleComponents, sdUpscale } from './sd_upscale.js';

/** What the IF model cards use for stage III. */
export const STAGE3_DEFAULTS = Object.freeze({ noiseLevel: 100, steps: 75, guidanceScale: 9.0 });

export interface Stage3Options {
  promptEmbeds: NDArray;
  negativePromptEmbeds: NDArray;
  steps?: number;
  guidanceScale?: number;
  noiseLevel?: number;
  seed?: number;
  generator?: Generator;
  onProgress?: (e: ProgressEvent) => void | Promise<void>;
  onWarning?: (m: string) => void;
  signal?: AbortSignal;
}

/**
 * stage-II images [B, 3, h, w] in [−1, 1] → [B, 3, 4h, 4w] in [−1, 1] (the same space as the
 * other stages' outputs). Prompt embeddings are repeated to the image batch when given once.
 */
export async function runStage3(c: SdUpscaleComponents, image: NDArray, o: Stage3Options): Promise<NDArray> {
  const b = image.shape[0]!;
  const rep = (e: NDArray) => {
    const eb = e.shape[0]!;
    if (eb === b) return e.toFloat32();
    const per = e.shape.slice(1).reduce((x, y) => x * y, 1);
    const src = e.toFloat32().data as Float32Array;
    const out = new Float32Array(b * per);
    const times = b / eb;
    for (let i = 0; i < b; i++)
      out.set(src.subarray(Math.floor(i / times) * per, (Math.floor(i / times) + 1) * per), i * per);
    return new NDArray('float32', [b, ...e.shape.slice(1)], out);
  };
  // Keep the tensor path: a stage-II output that happens to be all ≥ 0 must not be re-normalised.
  const d = image.toFloat32().data as Float32Array;
  let min = Number.POSITIVE_INFINITY;
  for (const v of d) if (v < min) min = v;
  let x = image.toFloat32();
  if (min >= 0) {
    // [−1, 1] input with no negatives: hand over the equivalent [0, 1] picture instead.
    x = new NDArray(
      'float32',
      x.shape,
      d.map((v) => Math.fround(Math.fround(v / 2) + 0.5)),
    );
  }
  const stage = 'stage III';
  try {
    const r = await sdUpscale(c, {
      image: x,
      promptEmbeds: rep(o.promptEmbeds),
      negativePromptEmbeds: rep(o.negativePromptEmbeds),
      steps: o.steps ?? STAGE3_DEFAULTS.steps,
      guidanceScale: o.guidanceScale ?? STAGE3_DEFAULTS.guidanceScale,
      noiseLevel: o.noiseLevel ?? STAGE3_DEFAULTS.noiseLevel,
      generator: o.generator ?? new Generator(o.seed ?? 0),
      onWarning: o.onWarning,
      signal: o.signal,
      onStep: (s) =>
        o.onProgress?.({
          status: 'step',
          stage,
          step: s.i + 1,
          total: s.total,
          t: s.t,
        }),
    });
    const img = r.image!.data as Float32Array;
    return new NDArray(
      'float32',
      r.image!.shape,
      img.map((v) => Math.fround(Math.fround(v * 2) - 1)),
    );
  } finally {
    await o.onProgress?.({ status: 'done', stage });
  }
}
