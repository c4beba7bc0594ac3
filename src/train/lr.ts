/**
 * Learning-rate schedules as pure multiplier functions, matching diffusers'
 * `optimization.get_*_schedule_with_warmup` lambdas (which torch's `LambdaLR` multiplies into
 * the base learning rate). Pure TypeScript; no Node imports.
 *
 * `step` is the number of scheduler steps taken so far, i.e. the number of optimizer updates
 * already completed: a diffusers training loop calls `optimizer.step()` then
 * `lr_scheduler.step()`, so update k (0-based) runs with `baseLr * multiplier(k)`. With warmup
 * this makes the very first update use lr 0, exactly as diffusers does.
 *
 * ```ts
 * for (let k = 0; k < total; k++) { opt.lr = baseLr * cosineWithWarmup(k, sched); opt.step(grads); }
 * ```
 */
import { ImagenError } from '../engine/errors.js';

function checkStep(fn: string, step: number): void {
  if (!Number.isFinite(step) || step < 0) {
    throw new ImagenError('BAD_INPUT', `${fn}: step must be a finite number >= 0, got ${step}`);
  }
}

function checkCount(fn: string, what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new ImagenError('CONFIG_INVALID', `${fn}: ${what} must be a non-negative integer, got ${n}`);
  }
}

export interface WarmupOptions {
  /** Linear warmup length in steps (diffusers `num_warmup_steps`); 0 disables warmup. */
  warmupSteps: number;
}

/** diffusers `get_constant_schedule_with_warmup`: step/max(1, warmupSteps) during warmup, then 1. */
export function constantWithWarmup(step: number, opts: WarmupOptions): number {
  checkStep('constantWithWarmup', step);
  checkCount('constantWithWarmup', 'warmupSteps', opts.warmupSteps);
  if (step < opts.warmupSteps) return step / Math.max(1, opts.warmupSteps);
  return 1;
}

export interface DecayScheduleOptions extends WarmupOptions {
  /** Total number of training steps (diffusers `num_training_steps`). */
  totalSteps: number;
}

/**
 * diffusers `get_linear_schedule_with_warmup`: linear warmup to 1, then linear decay to 0 at
 * `totalSteps` (and 0 after).
 */
export function linearWithWarmup(step: number, opts: DecayScheduleOptions): number {
  checkStep('linearWithWarmup', step);
  checkCount('linearWithWarmup', 'warmupSteps', opts.warmupSteps);
  checkCount('linearWithWarmup', 'totalSteps', opts.totalSteps);
  const { warmupSteps, totalSteps } = opts;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}

export interface CosineScheduleOptions extends DecayScheduleOptions {
  /**
   * Floor of the multiplier as a fraction of the base lr (transformers `min_lr_rate` of
   * `get_cosine_with_min_lr_schedule_with_warmup`); default 0, which is diffusers' schedule.
   */
  minRatio?: number;
  /** Number of cosine waves over the decay phase (diffusers `num_cycles`); default 0.5 (one half-cosine 1 → 0). */
  numCycles?: number;
}

/**
 * diffusers `get_cosine_schedule_with_warmup`: linear warmup to 1, then
 * `0.5·(1 + cos(π·numCycles·2·progress))` with progress = (step − warmup)/max(1, total − warmup),
 * rescaled to `minRatio + (1 − minRatio)·…` and floored at 0.
 *
 * As in diffusers, progress is not clamped: past `totalSteps` the default half-cosine climbs
 * back up (the multiplier at 1.5·total is 0.5). Stop training at `totalSteps`.
 */
export function cosineWithWarmup(step: number, opts: CosineScheduleOptions): number {
  checkStep('cosineWithWarmup', step);
  checkCount('cosineWithWarmup', 'warmupSteps', opts.warmupSteps);
  checkCount('cosineWithWarmup', 'totalSteps', opts.totalSteps);
  const minRatio = opts.minRatio ?? 0;
  const numCycles = opts.numCycles ?? 0.5;
  if (!(minRatio >= 0 && minRatio <= 1)) {
    throw new ImagenError('CONFIG_INVALID', `cosineWithWarmup: minRatio must be in [0, 1], got ${minRatio}`);
  }
  const { warmupSteps, totalSteps } = opts;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  const factor = 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress));
  return Math.max(0, minRatio === 0 ? factor : factor * (1 - minRatio) + minRatio);
}
