import { ImagenError } from '../engine/errors.js';
import { NDArray, shapeStr, sizeOf } from '../engine/ndarray.js';
import type { Generator } from './noise.js';
import { alphaProd, type Schedule, type SchedulerConfig } from './schedule.js';
import { applyThresholding, type Thresholding, thresholdingFromConfig } from './thresholding.js';
import { previousTimestep } from './timesteps.js';

/**
 * One ancestral DDPM step (Ho et al. 2020), identical to diffusers' `DDPMScheduler.step`
 * including its float32 rounding: every scalar and elementwise op below is rounded to float32
 * (`f`) in the same order as PyTorch evaluates it.
 */

const f = Math.fround;

export interface DdpmStepArgs {
  /** [B, C, …] or, for learned variance types, [B, 2C, …] (ε-or-x0-or-v ++ variance channels). */
  modelOutput: NDArray;
  timestep: number;
  /** x_t, [B, C, …]. */
  sample: NDArray;
  /** The active timestep list (defines prev_t); omitted = full chain (prev_t = t − 1). */
  timesteps?: readonly number[];
  schedule: Schedule;
  /** Overrides of `schedule.config` (prediction/variance type, thresholding flags). */
  config?: Partial<SchedulerConfig>;
  /** Overrides the thresholding derived from the config (e.g. a CLI choice). */
  thresholding?: Thresholding;
  /** z ~ N(0, I) of shape [B, C, …]; drawn from `generator` when absent (needed only when t > 0). */
  varianceNoise?: NDArray;
  generator?: Generator;
}

export interface StepResult {
  /** x_{prev_t}. */
  prevSample: NDArray;
  /** x̂0 after thresholding/clipping. */
  predOriginalSample: NDArray;
}

/**
 * x_t → x_{prev_t} through the posterior q(x_{prev} | x_t, x̂0) of DDPM eq. 6–7, on an arbitrary
 * (respaced) chain: the one-step values are ᾱ-ratios between t and prev_t
 * (αₜ' = ᾱ_t/ᾱ_prev, βₜ' = 1 − αₜ'), the "current_beta_t" of diffusers.
 */
export function ddpmStep(args: DdpmStepArgs): StepResult {
  const { timestep: t, schedule } = args;
  const cfg: SchedulerConfig = { ...schedule.config, ...args.config };
  const sample = args.sample.toFloat32();
  const { batch, channels } = layout(sample.shape);
  const { eps: modelOut, variance: predictedVariance } = splitModelOutput(
    args.modelOutput.toFloat32(),
    sample.shape,
    cfg.varianceType === 'learned' || cfg.varianceType === 'learned_range',
  );
  checkTimestep(t, schedule);
  const prevT = previousTimestep(args.timesteps, t);
  const x = sample.data as Float32Array;

  // 1. alphas, betas (float32 scalars)
  const ap = alphaProd(schedule, t);
  const apPrev = alphaProd(schedule, prevT);
  const bp = f(1 - ap);
  const bpPrev = f(1 - apPrev);
  const curAlpha = f(ap / apPrev);
  const curBeta = f(1 - curAlpha);

  // 2. x̂0 from the model output (DDPM eq. 15 for ε)
  const x0Raw = predictOriginal(cfg.predictionType, modelOut, x, ap, bp);

  // 3. clip or threshold x̂0
  const x0 = applyThresholding(x0Raw, batch, args.thresholding ?? thresholdingFromConfig(cfg));

  // 4–5. posterior mean μ̃(x_t, x̂0), DDPM eq. 7
  const x0Coeff = f(f(f(Math.sqrt(apPrev)) * curBeta) / bp);
  const xCoeff = f(f(f(Math.sqrt(curAlpha)) * bpPrev) / bp);
  const prev = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) prev[i] = f(f(x0Coeff * x0[i]!) + f(xCoeff * x[i]!));

  // 6. add noise σ·z (no noise at t == 0)
  if (t > 0) {
    const z = noiseFor(args, sample.shape);
    // DDPM eq. 7 posterior variance β̃ = (1 − ᾱ_prev)/(1 − ᾱ_t)·β_t, clamped for the log
    const posteriorVar = Math.max(f(f(bpPrev / bp) * curBeta), f(1e-20));
    addVarianceNoise(prev, z, cfg.varianceType, posteriorVar, curBeta, predictedVariance, channels);
  }

  return {
    prevSample: new NDArray('float32', sample.shape, prev),
    predOriginalSample: new NDArray('float32', sample.shape, x0),
  };
}

/** x̂0 for each prediction type (float32, torch evaluation order). */
function predictOriginal(
  predictionType: SchedulerConfig['predictionType'],
  modelOut: Float32Array,
  x: Float32Array,
  ap: number,
  bp: number,
): Float32Array {
  const sqrtAp = f(Math.sqrt(ap));
  const sqrtBp = f(Math.sqrt(bp));
  const out = new Float32Array(x.length);
  switch (predictionType) {
    case 'epsilon': // x̂0 = (x_t − √(1−ᾱ)·ε) / √ᾱ
      for (let i = 0; i < x.length; i++) out[i] = f(f(x[i]! - f(sqrtBp * modelOut[i]!)) / sqrtAp);
      return out;
    case 'sample':
      out.set(modelOut);
      return out;
    case 'v_prediction': // x̂0 = √ᾱ·x_t − √(1−ᾱ)·v (Salimans & Ho 2022)
      for (let i = 0; i < x.length; i++) out[i] = f(f(sqrtAp * x[i]!) - f(sqrtBp * modelOut[i]!));
      return out;
  }
}

/** prev += σ·z for each variance type, as diffusers' `_get_variance` + step's step 6. */
function addVarianceNoise(
  prev: Float32Array,
  z: Float32Array,
  varianceType: SchedulerConfig['varianceType'],
  posteriorVar: number,
  curBeta: number,
  predictedVariance: Float32Array | undefined,
  channels: number,
): void {
  const addScaled = (std: number) => {
    for (let i = 0; i < prev.length; i++) prev[i] = f(prev[i]! + f(std * z[i]!));
  };
  switch (varianceType) {
    case 'fixed_small':
      addScaled(f(Math.sqrt(posteriorVar)));
      return;
    case 'fixed_small_log':
      addScaled(f(Math.exp(f(0.5 * f(Math.log(posteriorVar))))));
      return;
    case 'fixed_large':
      addScaled(f(Math.sqrt(curBeta)));
      return;
    case 'fixed_large_log':
      throw new ImagenError(
        'UNSUPPORTED',
        "variance_type 'fixed_large_log': diffusers' DDPMScheduler.step takes the square root of a log-variance " +
          '(NaN); use fixed_large or learned_range',
      );
    case 'learned': {
      const v = requireVariance(predictedVariance, varianceType, channels);
      for (let i = 0; i < prev.length; i++) prev[i] = f(prev[i]! + f(f(Math.sqrt(v[i]!)) * z[i]!));
      return;
    }
    case 'learned_range': {
      // Improved DDPM (Nichol & Dhariwal 2021) eq. 15: Σ = exp(v·log β + (1−v)·log β̃), v = (out+1)/2
      const v = requireVariance(predictedVariance, varianceType, channels);
      const minLog = f(Math.log(posteriorVar));
      const maxLog = f(Math.log(curBeta));
      for (let i = 0; i < prev.length; i++) {
        const frac = f(f(v[i]! + 1) / 2);
        const logVar = f(f(frac * maxLog) + f(f(1 - frac) * minLog));
        prev[i] = f(prev[i]! + f(expf(f(0.5 * logVar)) * z[i]!));
      }
      return;
    }
  }
}

function requireVariance(v: Float32Array | undefined, varianceType: string, channels: number): Float32Array {
  if (!v) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `variance_type '${varianceType}' needs a model output with ${2 * channels} channels (ε ++ variance), got ${channels}`,
    );
  }
  return v;
}

/** The variance noise z: injected, or drawn from the generator (shape of x_t). */
function noiseFor(
  args: Pick<DdpmStepArgs, 'varianceNoise' | 'generator'>,
  shape: readonly number[],
): Float32Array {
  if (args.varianceNoise) {
    const z = args.varianceNoise.toFloat32();
    if (z.size !== sizeOf(shape)) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `varianceNoise has shape ${shapeStr(z.shape)}, expected ${shapeStr(shape)} (the sample's shape)`,
      );
    }
    return z.data as Float32Array;
  }
  if (args.generator) return args.generator.randn(sizeOf(shape));
  throw new ImagenError('BAD_INPUT', 'a stochastic step needs varianceNoise or a generator');
}

/** Batch, channel and per-channel element counts of a [B, C, …] tensor. */
export function layout(shape: readonly number[]): { batch: number; channels: number; inner: number } {
  if (shape.length < 2) throw new ImagenError('SHAPE_MISMATCH', `expected [B, C, …], got ${shapeStr(shape)}`);
  const [batch, channels, ...rest] = shape as [number, number, ...number[]];
  return { batch, channels, inner: sizeOf(rest) };
}

/**
 * Split a [B, 2C, …] model output into its first C channels (ε / x0 / v) and the variance channels
 * when `learned` is set (diffusers' `torch.split(model_output, C, dim=1)`); [B, C, …] passes through.
 */
export function splitModelOutput(
  modelOutput: NDArray,
  sampleShape: readonly number[],
  learned: boolean,
): { eps: Float32Array; variance?: Float32Array } {
  const { batch, channels, inner } = layout(sampleShape);
  const data = modelOutput.data as Float32Array;
  const sameRest =
    modelOutput.shape.length === sampleShape.length &&
    modelOutput.shape.every((d, i) => i === 1 || d === sampleShape[i]);
  const outChannels = modelOutput.shape[1];
  if (sameRest && outChannels === channels) return { eps: data };
  if (sameRest && outChannels === 2 * channels && learned) {
    const n = channels * inner;
    const eps = new Float32Array(batch * n);
    const variance = new Float32Array(batch * n);
    for (let b = 0; b < batch; b++) {
      eps.set(data.subarray(2 * b * n, (2 * b + 1) * n), b * n);
      variance.set(data.subarray((2 * b + 1) * n, (2 * b + 2) * n), b * n);
    }
    return { eps, variance };
  }
  throw new ImagenError(
    'SHAPE_MISMATCH',
    `model output ${shapeStr(modelOutput.shape)} does not match sample ${shapeStr(sampleShape)}: expected ` +
      `${channels} channels${learned ? ` or ${2 * channels} (learned variance)` : ''}`,
  );
}

function checkTimestep(t: number, schedule: Schedule): void {
  if (!Number.isInteger(t) || t < 0 || t >= schedule.numTrainTimesteps) {
    throw new ImagenError('BAD_INPUT', `timestep ${t} is outside [0, ${schedule.numTrainTimesteps})`);
  }
}

/**
 * Forward process q(x_t | x_0) (DDPM eq. 4): √ᾱ_t·x0 + √(1−ᾱ_t)·ε with one t per batch element,
 * as diffusers' `add_noise` (float32 ᾱ).
 */
export function addNoise(
  original: NDArray,
  noise: NDArray,
  timesteps: readonly number[],
  schedule: Schedule,
): NDArray {
  return perBatchCombine(original, noise, timesteps, schedule, (sa, sb, x, n) => f(f(sa * x) + f(sb * n)));
}

/** v-prediction target (Salimans & Ho 2022): v = √ᾱ_t·ε − √(1−ᾱ_t)·x0, as diffusers' `get_velocity`. */
export function getVelocity(
  sample: NDArray,
  noise: NDArray,
  timesteps: readonly number[],
  schedule: Schedule,
): NDArray {
  return perBatchCombine(sample, noise, timesteps, schedule, (sa, sb, x, n) => f(f(sa * n) - f(sb * x)));
}

function perBatchCombine(
  x: NDArray,
  noise: NDArray,
  timesteps: readonly number[],
  schedule: Schedule,
  op: (sqrtAp: number, sqrtBp: number, x: number, n: number) => number,
): NDArray {
  const xs = x.toFloat32().data as Float32Array;
  const ns = noise.toFloat32().data as Float32Array;
  if (ns.length !== xs.length) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `noise ${shapeStr(noise.shape)} does not match ${shapeStr(x.shape)}`,
    );
  }
  const batch = x.shape[0] ?? 1;
  if (timesteps.length !== batch) {
    throw new ImagenError('SHAPE_MISMATCH', `${timesteps.length} timesteps for a batch of ${batch}`);
  }
  const per = xs.length / batch;
  const out = new Float32Array(xs.length);
  for (let b = 0; b < batch; b++) {
    checkTimestep(timesteps[b]!, schedule);
    const ap = schedule.alphasCumprod[timesteps[b]!]!;
    const sa = f(Math.sqrt(ap));
    const sb = f(Math.sqrt(f(1 - ap)));
    for (let i = b * per; i < (b + 1) * per; i++) out[i] = op(sa, sb, xs[i]!, ns[i]!);
  }
  return new NDArray('float32', x.shape, out);
}

/**
 * float32 exp as PyTorch's CPU kernel computes it for vectorised tensors: SLEEF `expf_u10`
 * (AVX2/AVX-512 build, FMA). Correctly rounded exp differs from it by 1 ulp on ~1% of inputs.
 */
export function expf(d: number): number {
  const fma = (x: number, y: number, z: number) => f(x * y + z); // x·y is exact in float64
  // SLEEF's float32 constants (log2 e, ln 2 split in two, minimax coefficients), written exactly
  const q = roundHalfEvenF(f(d * f(Math.LOG2E)));
  let s = fma(q, -0.693145751953125, d);
  s = fma(q, -0.000001428606765330187, s);
  let u = 0.00019852761761285365;
  u = fma(u, s, 0.0013930435525253415);
  u = fma(u, s, 0.008333360776305199);
  u = fma(u, s, 0.041666485369205475);
  u = fma(u, s, 0.1666666716337204);
  u = fma(u, s, 0.5);
  u = f(1 + fma(f(s * s), u, s));
  const h = q >> 1;
  u = f(f(u * 2 ** h) * 2 ** (q - h));
  if (d < -104) return 0;
  if (d > 100) return Number.POSITIVE_INFINITY;
  return u;
}

function roundHalfEvenF(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
