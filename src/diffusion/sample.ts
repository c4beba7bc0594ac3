import { ImagenError } from '../engine/errors.js';
import type { NDArray } from '../engine/ndarray.js';
import { ddimStep } from './ddim.js';
import { ddpmStep } from './ddpm.js';
import type { Generator } from './noise.js';
import type { Schedule, SchedulerConfig } from './schedule.js';
import type { Thresholding } from './thresholding.js';
import { previousTimestep } from './timesteps.js';

/** The model as the sampler sees it: x_t and t → model output (guidance already applied). */
export type Denoiser = (sample: NDArray, t: number, i: number) => Promise<NDArray>;

/** What every step reports (k-diffusion style): for progress bars, previews and tests. */
export interface StepInfo {
  i: number;
  total: number;
  t: number;
  /** x_{t-1} after the step. */
  sample: NDArray;
  /** The (thresholded) prediction of the clean image x̂0. */
  predOriginalSample: NDArray;
}

export type SamplerName = 'ddpm' | 'ddim';

export interface SampleOptions {
  denoise: Denoiser;
  /** x_T. */
  sample: NDArray;
  timesteps: readonly number[];
  schedule: Schedule;
  config?: Partial<SchedulerConfig>;
  thresholding?: Thresholding;
  sampler?: SamplerName;
  /** DDIM η (0 = deterministic). */
  eta?: number;
  /**
   * DDIM: re-derive ε̂ from the thresholded x̂0 (GLIDE; diffusers' `use_clipped_model_output`).
   * Default true. Under classifier-free guidance x̂0 overshoots (|x̂0| up to 3–4 at guidance 5);
   * thresholding pulls x̂0 back but the unclipped ε̂ still carries the overshoot into x_{t−1}, and
   * a stage-I model sampled that way ends in noise. DDPM's posterior mean has no such term.
   */
  useClippedModelOutput?: boolean;
  generator?: Generator;
  /** Injected per-step noise (replaying a reference run); falls back to `generator`. */
  varianceNoise?: (i: number, t: number) => NDArray | undefined;
  onStep?: (info: StepInfo) => void | Promise<void>;
  signal?: AbortSignal;
  /** Applied to x after every scheduler step (inpainting blends the kept region back in). */
  afterStep?: (x: NDArray, i: number, t: number) => NDArray;
}

/** Ancestral DDPM (diffusers DDPMScheduler.step over a respaced chain) or DDIM sampling loop. */
export async function sample(o: SampleOptions): Promise<NDArray> {
  let x = o.sample;
  const total = o.timesteps.length;
  for (let i = 0; i < total; i++) {
    if (o.signal?.aborted) throw new ImagenError('ABORTED', 'sampling cancelled');
    const t = o.timesteps[i]!;
    const modelOutput = await o.denoise(x, t, i);
    const varianceNoise = o.varianceNoise?.(i, t);
    const r =
      (o.sampler ?? 'ddpm') === 'ddpm'
        ? ddpmStep({
            modelOutput,
            timestep: t,
            sample: x,
            timesteps: o.timesteps,
            schedule: o.schedule,
            config: o.config,
            thresholding: o.thresholding,
            varianceNoise,
            generator: o.generator,
          })
        : ddimStep({
            modelOutput,
            timestep: t,
            prevTimestep: previousTimestep(o.timesteps, t),
            sample: x,
            schedule: o.schedule,
            eta: o.eta ?? 0,
            useClippedModelOutput: o.useClippedModelOutput ?? true,
            predictionType: o.config?.predictionType ?? o.schedule.config.predictionType,
            thresholding: o.thresholding,
            varianceNoise,
            generator: o.generator,
          });
    x = o.afterStep ? o.afterStep(r.prevSample, i, t) : r.prevSample;
    await o.onStep?.({ i, total, t, sample: x, predOriginalSample: r.predOriginalSample });
  }
  return x;
}
