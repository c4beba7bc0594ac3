import { ImagenError } from '../engine/errors.js';

/**
 * Discrete-time noise schedules, bit-exact with diffusers' `DDPMScheduler.__init__`
 * (float32 tensors, as PyTorch on CPU computes them).
 */

export const BETA_SCHEDULES = ['linear', 'scaled_linear', 'squaredcos_cap_v2'] as const;
export const VARIANCE_TYPES = [
  'fixed_small',
  'fixed_small_log',
  'fixed_large',
  'fixed_large_log',
  'learned',
  'learned_range',
] as const;
export const PREDICTION_TYPES = ['epsilon', 'sample', 'v_prediction'] as const;
export const TIMESTEP_SPACINGS = ['leading', 'trailing', 'linspace'] as const;

export type BetaSchedule = (typeof BETA_SCHEDULES)[number];
export type VarianceType = (typeof VARIANCE_TYPES)[number];
export type PredictionType = (typeof PREDICTION_TYPES)[number];
export type TimestepSpacing = (typeof TIMESTEP_SPACINGS)[number];

/** diffusers' `DDPMScheduler` constructor arguments (scheduler_config.json keys, camelCased). */
export interface SchedulerConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  /** Explicit betas; when set, `betaSchedule`/`betaStart`/`betaEnd` are ignored. */
  trainedBetas: number[] | null;
  varianceType: VarianceType;
  /** Static clip of x̂0 to ±clipSampleRange (only when `thresholding` is false). */
  clipSample: boolean;
  clipSampleRange: number;
  predictionType: PredictionType;
  /** Imagen dynamic thresholding of x̂0 (wins over `clipSample`). */
  thresholding: boolean;
  dynamicThresholdingRatio: number;
  sampleMaxValue: number;
  timestepSpacing: TimestepSpacing;
  stepsOffset: number;
  rescaleBetasZeroSnr: boolean;
  /** DDIMScheduler only: ᾱ used after the last step is 1 (true) or ᾱ[0] (false). */
  setAlphaToOne: boolean;
}

/** diffusers' defaults for every field (DDPMScheduler signature; DDIM's `set_alpha_to_one`). */
export const DEFAULT_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({
  numTrainTimesteps: 1000,
  betaStart: 0.0001,
  betaEnd: 0.02,
  betaSchedule: 'linear',
  trainedBetas: null,
  varianceType: 'fixed_small',
  clipSample: true,
  clipSampleRange: 1.0,
  predictionType: 'epsilon',
  thresholding: false,
  dynamicThresholdingRatio: 0.995,
  sampleMaxValue: 1.0,
  timestepSpacing: 'leading',
  stepsOffset: 0,
  rescaleBetasZeroSnr: false,
  setAlphaToOne: true,
});

/** A schedule: float32 βₜ, αₜ = 1 − βₜ and ᾱₜ = Π αₖ, exactly as diffusers holds them. */
export interface Schedule {
  betas: Float32Array;
  alphas: Float32Array;
  alphasCumprod: Float32Array;
  numTrainTimesteps: number;
  config: SchedulerConfig;
}

const f = Math.fround;

/**
 * Betas of a named schedule as float32.
 * - `squaredcos_cap_v2`: Improved DDPM (Nichol & Dhariwal 2021) eq. 17 cosine ᾱ(t), discretised as
 *   βᵢ = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999) in float64 (`betas_for_alpha_bar`), then rounded to float32.
 * - `linear`: `torch.linspace(betaStart, betaEnd, T, dtype=float32)`.
 * - `scaled_linear`: `torch.linspace(√betaStart, √betaEnd, T, dtype=float32) ** 2`.
 * linspace follows torch's scalar formula (first half from the start, second half from the end);
 * torch's SIMD path may differ by an ulp for the linear schedules (not covered by a fixture).
 */
export function betasFor(
  schedule: BetaSchedule,
  numTrainTimesteps: number,
  betaStart: number,
  betaEnd: number,
): Float32Array {
  switch (schedule) {
    case 'squaredcos_cap_v2':
      return betasForAlphaBar(numTrainTimesteps);
    case 'linear':
      return linspaceF32(betaStart, betaEnd, numTrainTimesteps);
    case 'scaled_linear':
      return linspaceF32(betaStart ** 0.5, betaEnd ** 0.5, numTrainTimesteps).map((b) => f(b * b));
  }
}

/** GLIDE / Improved-DDPM cosine schedule, ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), capped at maxBeta. */
export function betasForAlphaBar(numTrainTimesteps: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number) => {
    const c = Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2);
    return c * c;
  };
  const betas = new Float32Array(numTrainTimesteps);
  for (let i = 0; i < numTrainTimesteps; i++) {
    const t1 = i / numTrainTimesteps;
    const t2 = (i + 1) / numTrainTimesteps;
    betas[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
  }
  return betas;
}

/** `torch.linspace(start, end, steps, dtype=float32)` (scalar kernel formula). */
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f(start);
  const e = f(end);
  const step = f((e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1)));
  }
  return out;
}

/**
 * `torch.cumprod` of a CPU float32 tensor: the kernel accumulates in double (`acc_type<float>`)
 * and rounds each output to float32. This reproduces the fixture's `alphas_cumprod` bit for bit;
 * a float32 running product would drift by up to ~1e-6 relative.
 */
export function cumprodF32(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  let acc = 1;
  for (let i = 0; i < x.length; i++) {
    acc *= x[i]!;
    out[i] = acc;
  }
  return out;
}

/**
 * Zero-terminal-SNR rescaling (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps
 * are Flawed", Algorithm 1), in float32 like diffusers' `rescale_zero_terminal_snr`.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const alphasBarSqrt = cumprodF32(betas.map((b) => f(1 - b))).map((a) => f(Math.sqrt(a)));
  const a0 = alphasBarSqrt[0]!;
  const aT = alphasBarSqrt[n - 1]!;
  const scale = f(a0 / f(a0 - aT));
  const alphasBar = alphasBarSqrt.map((a) => {
    const shifted = f(f(a - aT) * scale);
    return f(shifted * shifted);
  });
  const out = new Float32Array(n);
  out[0] = f(1 - alphasBar[0]!);
  for (let i = 1; i < n; i++) out[i] = f(1 - f(alphasBar[i]! / alphasBar[i - 1]!));
  return out;
}

/** Build the schedule of a (parsed) scheduler config, as `DDPMScheduler.__init__` does. */
export function makeSchedule(config: Partial<SchedulerConfig> = {}): Schedule {
  const cfg: SchedulerConfig = { ...DEFAULT_SCHEDULER_CONFIG, ...config };
  let betas = cfg.trainedBetas
    ? Float32Array.from(cfg.trainedBetas)
    : betasFor(cfg.betaSchedule, cfg.numTrainTimesteps, cfg.betaStart, cfg.betaEnd);
  if (betas.length !== cfg.numTrainTimesteps) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `trained_betas has ${betas.length} values but num_train_timesteps is ${cfg.numTrainTimesteps}`,
    );
  }
  if (cfg.rescaleBetasZeroSnr) betas = rescaleZeroTerminalSnr(betas);
  const alphas = betas.map((b) => f(1 - b));
  return {
    betas,
    alphas,
    alphasCumprod: cumprodF32(alphas),
    numTrainTimesteps: cfg.numTrainTimesteps,
    config: cfg,
  };
}

/** ᾱ at a timestep; negative timesteps (past the end of the chain) give `final` (diffusers' `self.one`). */
export function alphaProd(schedule: Schedule, t: number, final = 1): number {
  return t >= 0 ? schedule.alphasCumprod[t]! : final;
}

type FieldKind = 'int' | 'number' | 'bool' | 'betas' | readonly string[];

/** scheduler_config.json key → [our field, expected kind]. */
const CONFIG_FIELDS: Record<string, [keyof SchedulerConfig, FieldKind]> = {
  num_train_timesteps: ['numTrainTimesteps', 'int'],
  beta_start: ['betaStart', 'number'],
  beta_end: ['betaEnd', 'number'],
  beta_schedule: ['betaSchedule', BETA_SCHEDULES],
  trained_betas: ['trainedBetas', 'betas'],
  variance_type: ['varianceType', VARIANCE_TYPES],
  clip_sample: ['clipSample', 'bool'],
  clip_sample_range: ['clipSampleRange', 'number'],
  prediction_type: ['predictionType', PREDICTION_TYPES],
  thresholding: ['thresholding', 'bool'],
  dynamic_thresholding_ratio: ['dynamicThresholdingRatio', 'number'],
  sample_max_value: ['sampleMaxValue', 'number'],
  timestep_spacing: ['timestepSpacing', TIMESTEP_SPACINGS],
  steps_offset: ['stepsOffset', 'int'],
  rescale_betas_zero_snr: ['rescaleBetasZeroSnr', 'bool'],
  set_alpha_to_one: ['setAlphaToOne', 'bool'],
};

/**
 * Keys of sibling diffusers schedulers that published DDPM configs carry (IF-I-XL's has
 * `lambda_min_clipped`, from DPMSolverMultistepScheduler); DDPM ignores them, and so do we.
 */
export const FOREIGN_SCHEDULER_KEYS: readonly string[] = [
  'lambda_min_clipped',
  'solver_order',
  'solver_type',
  'algorithm_type',
  'lower_order_final',
  'use_karras_sigmas',
  'skip_prk_steps',
];

/**
 * Parse a diffusers `scheduler_config.json` object: checks every value's type, fills diffusers'
 * defaults, rejects unknown keys and values (listing the allowed ones). Keys starting with `_`
 * (`_class_name`, `_diffusers_version`) are ignored.
 */
export function parseSchedulerConfig(json: unknown): SchedulerConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ImagenError('CONFIG_INVALID', 'scheduler config must be a JSON object');
  }
  const cfg: SchedulerConfig = { ...DEFAULT_SCHEDULER_CONFIG };
  const out = cfg as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(json)) {
    if (key.startsWith('_') || FOREIGN_SCHEDULER_KEYS.includes(key)) continue;
    const field = CONFIG_FIELDS[key];
    if (!field) {
      throw new ImagenError(
        'CONFIG_INVALID',
        `scheduler config: unknown key "${key}"; expected one of ${Object.keys(CONFIG_FIELDS).join(', ')}`,
      );
    }
    out[field[0]] = checkValue(key, value, field[1]);
  }
  validateRanges(cfg);
  return cfg;
}

function checkValue(key: string, value: unknown, kind: FieldKind): unknown {
  const bad = (expected: string) =>
    new ImagenError(
      'CONFIG_INVALID',
      `scheduler config: "${key}" must be ${expected}, got ${JSON.stringify(value)}`,
    );
  if (typeof kind !== 'string') {
    if (typeof value !== 'string' || !kind.includes(value)) throw bad(`one of ${kind.join(', ')}`);
    return value;
  }
  switch (kind) {
    case 'int':
      if (!Number.isInteger(value)) throw bad('an integer');
      return value;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw bad('a finite number');
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw bad('true or false');
      return value;
    case 'betas':
      if (value === null) return null;
      if (!Array.isArray(value) || !value.every((b) => typeof b === 'number' && Number.isFinite(b))) {
        throw bad('null or an array of numbers');
      }
      return value;
  }
}

function validateRanges(cfg: SchedulerConfig): void {
  const fail = (msg: string) => {
    throw new ImagenError('CONFIG_INVALID', `scheduler config: ${msg}`);
  };
  if (cfg.numTrainTimesteps < 1) fail(`num_train_timesteps must be ≥ 1, got ${cfg.numTrainTimesteps}`);
  if (cfg.stepsOffset < 0) fail(`steps_offset must be ≥ 0, got ${cfg.stepsOffset}`);
  if (!(cfg.dynamicThresholdingRatio > 0 && cfg.dynamicThresholdingRatio <= 1)) {
    fail(`dynamic_thresholding_ratio must be in (0, 1], got ${cfg.dynamicThresholdingRatio}`);
  }
  if (!(cfg.sampleMaxValue > 0)) fail(`sample_max_value must be > 0, got ${cfg.sampleMaxValue}`);
  if (!(cfg.clipSampleRange > 0)) fail(`clip_sample_range must be > 0, got ${cfg.clipSampleRange}`);
  if (cfg.trainedBetas && cfg.trainedBetas.length !== cfg.numTrainTimesteps) {
    fail(
      `trained_betas has ${cfg.trainedBetas.length} values, num_train_timesteps is ${cfg.numTrainTimesteps}`,
    );
  }
}

/** The diffusers `scheduler_config.json` form of a config (snake_case keys, DDPMScheduler class). */
export function schedulerConfigToJson(
  cfg: SchedulerConfig,
  className = 'DDPMScheduler',
): Record<string, unknown> {
  const out: Record<string, unknown> = { _class_name: className, _diffusers_version: '0.30.0' };
  for (const [key, [field]] of Object.entries(CONFIG_FIELDS)) {
    if (key === 'set_alpha_to_one' && className === 'DDPMScheduler') continue;
    out[key] = cfg[field];
  }
  return out;
}
