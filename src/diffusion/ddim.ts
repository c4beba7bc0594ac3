import { ImagenError } from '../engine/errors.js';
import { NDArray, sizeOf } from '../engine/ndarray.js';
import { layout, type StepResult, splitModelOutput } from './ddpm.js';
import type { Generator } from './noise.js';
import type { PredictionType, Schedule } from './schedule.js';
import { applyThresholding, type Thresholding, thresholdingFromConfig } from './thresholding.js';

/**
 * One DDIM step (Song et al. 2021, eq. 12), following diffusers' `DDIMScheduler.step` in float32.
 */

const f = Math.fround;

export interface DdimStepArgs {
  /** [B, C, …]; a [B, 2C, …] output (IF's learned variance) has its variance half ignored. */
  modelOutput: NDArray;
  timestep: number;
  /** Next timestep of the chain; negative after the last step (then `setAlphaToOne` applies). */
  prevTimestep: number;
  sample: NDArray;
  schedule: Schedule;
  /** η: 0 = deterministic DDIM, 1 = DDPM-like ancestral noise (eq. 16). */
  eta?: number;
  predictionType?: PredictionType;
  thresholding?: Thresholding;
  /** ᾱ after the final step: 1 (diffusers' default, true) or ᾱ[0] (false). */
  setAlphaToOne?: boolean;
  /** Re-derive ε from the clipped x̂0 (GLIDE; diffusers' `use_clipped_model_output`; default false as there, the sampling loop turns it on). */
  useClippedModelOutput?: boolean;
  /** z for η > 0; drawn from `generator` when absent. */
  varianceNoise?: NDArray;
  generator?: Generator;
}

/**
 * DDIM eq. 12: x_{t−1} = √ᾱ_prev·x̂0 + √(1 − ᾱ_prev − σ²)·ε̂ + σ·z,
 * with σ = η·√((1 − ᾱ_prev)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev) (eq. 16).
 */
export function ddimStep(args: DdimStepArgs): StepResult {
  const { schedule, timestep: t, prevTimestep } = args;
  const cfg = schedule.config;
  const eta = args.eta ?? 0;
  const predictionType = args.predictionType ?? cfg.predictionType;
  const setAlphaToOne = args.setAlphaToOne ?? cfg.setAlphaToOne;
  const sample = args.sample.toFloat32();
  const x = sample.data as Float32Array;
  const { batch } = layout(sample.shape);
  const { eps: modelOut } = splitModelOutput(args.modelOutput.toFloat32(), sample.shape, true);
  if (!Number.isInteger(t) || t < 0 || t >= schedule.numTrainTimesteps || prevTimestep >= t) {
    throw new ImagenError(
      'BAD_INPUT',
      `ddimStep: need 0 ≤ prevTimestep < timestep < ${schedule.numTrainTimesteps}, got ${prevTimestep} → ${t}`,
    );
  }

  // 2. alphas, betas
  const ap = schedule.alphasCumprod[t]!;
  const apPrev =
    prevTimestep >= 0
      ? schedule.alphasCumprod[prevTimestep]!
      : setAlphaToOne
        ? 1
        : schedule.alphasCumprod[0]!;
  const bp = f(1 - ap);
  const sqrtAp = f(Math.sqrt(ap));
  const sqrtBp = f(Math.sqrt(bp));

  // 3. x̂0 and ε̂ ("predicted x0" of eq. 12)
  const x0 = new Float32Array(x.length);
  let epsHat = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const m = modelOut[i]!;
    switch (predictionType) {
      case 'epsilon':
        x0[i] = f(f(x[i]! - f(sqrtBp * m)) / sqrtAp);
        epsHat[i] = m;
        break;
      case 'sample':
        x0[i] = m;
        epsHat[i] = f(f(x[i]! - f(sqrtAp * m)) / sqrtBp);
        break;
      case 'v_prediction':
        x0[i] = f(f(sqrtAp * x[i]!) - f(sqrtBp * m));
        epsHat[i] = f(f(sqrtAp * m) + f(sqrtBp * x[i]!));
        break;
    }
  }

  // 4. clip or threshold x̂0
  const thresholding = args.thresholding ?? thresholdingFromConfig(cfg);
  const x0c = applyThresholding(x0, batch, thresholding);

  // 5. σ_t(η), eq. 16
  const variance = f(f(f(1 - apPrev) / bp) * f(1 - f(ap / apPrev)));
  const std = f(f(eta) * f(Math.sqrt(variance)));
  // Without thresholding x̂0 is unchanged and ε̂ already agrees with it: skip the recomputation,
  // which divides by √(1 − ᾱ_t) and would only add rounding at the last steps.
  if (args.useClippedModelOutput && thresholding.kind !== 'none') {
    epsHat = x.map((xi, i) => f(f(xi - f(sqrtAp * x0c[i]!)) / sqrtBp));
  }

  // 6–7. "direction pointing to x_t" and x_{t−1} without noise
  const dirCoeff = f(Math.sqrt(f(f(1 - apPrev) - f(std * std))));
  const x0Coeff = f(Math.sqrt(apPrev));
  const prev = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) prev[i] = f(f(x0Coeff * x0c[i]!) + f(dirCoeff * epsHat[i]!));

  if (eta > 0) {
    const z = args.varianceNoise?.toFloat32().data ?? args.generator?.randn(sizeOf(sample.shape));
    if (!z || z.length !== x.length) {
      throw new ImagenError(
        'BAD_INPUT',
        'ddimStep with eta > 0 needs varianceNoise (sample-shaped) or a generator',
      );
    }
    for (let i = 0; i < x.length; i++) prev[i] = f(prev[i]! + f(std * (z[i] as number)));
  }
  return {
    prevSample: new NDArray('float32', sample.shape, prev),
    predOriginalSample: new NDArray('float32', sample.shape, x0c),
  };
}
