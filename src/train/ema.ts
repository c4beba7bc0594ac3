/**
 * Exponential moving average of model weights, with the semantics of diffusers'
 * `training_utils.EMAModel` (non-`foreach` path). Pure TypeScript; no Node imports.
 */
import { ImagenError } from '../engine/errors.js';
import { NDArray, shapeStr } from '../engine/ndarray.js';
import type { Parameter } from '../engine/parameter.js';

/** Key of the update counter in `EMA.stateDict()`; every other key is a parameter name. */
export const EMA_STEP_KEY = 'optimization_step';

export interface EMAOptions {
  /** Upper bound on the decay factor (diffusers `decay`); default 0.9999. */
  decay?: number;
  /** Lower bound on the decay factor once updates have started (diffusers `min_decay`); default 0. */
  minDecay?: number;
  /**
   * Number of `update()` calls that just copy the weights before averaging starts
   * (diffusers `update_after_step`); default 0.
   */
  updateAfterStep?: number;
  /**
   * Use the warmup schedule 1 − (1 + step/invGamma)^−power instead of (1 + step)/(10 + step)
   * (diffusers `use_ema_warmup`); default false.
   */
  useWarmup?: boolean;
  /** Inverse multiplicative factor of the warmup (diffusers `inv_gamma`); default 1. */
  invGamma?: number;
  /** Exponent of the warmup (diffusers `power`); default 2/3 (3/4 suits shorter runs). */
  power?: number;
}

/**
 * Shadow copies of a parameter list, updated after each optimizer step:
 * `shadow ← shadow − (1 − decay)·(shadow − param)` for trainable parameters, and a plain copy
 * for frozen ones (`requiresGrad === false`), as diffusers does.
 *
 * The decay for update number k (1-based, counted by `optimizationStep`) is `getDecay(k)`:
 * with s = max(0, k − updateAfterStep − 1), it is 0 when s = 0 (the shadow becomes a copy of
 * the weights), else `1 − (1 + s/invGamma)^−power` (warmup) or `(1 + s)/(10 + s)`, clamped to
 * [minDecay, decay] (the upper clamp applied first).
 *
 * Note: some diffusers releases (around v0.29–0.31) returned `decay` itself when warmup was
 * off; this follows the current one, `(1 + s)/(10 + s)`.
 */
export class EMA {
  readonly params: readonly Parameter[];
  readonly decay: number;
  readonly minDecay: number;
  readonly updateAfterStep: number;
  readonly useWarmup: boolean;
  readonly invGamma: number;
  readonly power: number;
  /** Number of `update()` calls so far (diffusers `optimization_step`). */
  optimizationStep = 0;
  /** The decay used by the last `update()` (diffusers `cur_decay_value`); undefined before the first. */
  curDecay: number | undefined;
  private readonly shadows = new Map<Parameter, Float32Array>();
  private readonly byName = new Map<string, Parameter>();
  private stored: Map<Parameter, Float32Array> | undefined;

  constructor(params: readonly Parameter[], opts: EMAOptions = {}) {
    this.params = [...params];
    this.decay = opts.decay ?? 0.9999;
    this.minDecay = opts.minDecay ?? 0;
    this.updateAfterStep = opts.updateAfterStep ?? 0;
    this.useWarmup = opts.useWarmup ?? false;
    this.invGamma = opts.invGamma ?? 1;
    this.power = opts.power ?? 2 / 3;
    if (!(this.decay >= 0 && this.decay <= 1)) {
      throw new ImagenError('CONFIG_INVALID', `EMA decay must be in [0, 1], got ${this.decay}`);
    }
    if (!(this.minDecay >= 0 && this.minDecay <= 1)) {
      throw new ImagenError('CONFIG_INVALID', `EMA minDecay must be in [0, 1], got ${this.minDecay}`);
    }
    if (!Number.isInteger(this.updateAfterStep) || this.updateAfterStep < 0) {
      throw new ImagenError(
        'CONFIG_INVALID',
        `EMA updateAfterStep must be a non-negative integer, got ${this.updateAfterStep}`,
      );
    }
    if (!(this.invGamma > 0) || !Number.isFinite(this.invGamma)) {
      throw new ImagenError('CONFIG_INVALID', `EMA invGamma must be a positive number, got ${this.invGamma}`);
    }
    if (!(this.power > 0) || !Number.isFinite(this.power)) {
      throw new ImagenError('CONFIG_INVALID', `EMA power must be a positive number, got ${this.power}`);
    }
    for (const p of this.params) {
      if (p.name === EMA_STEP_KEY || this.byName.has(p.name)) {
        throw new ImagenError(
          'CONFIG_INVALID',
          `EMA: parameter name "${p.name}" is ${p.name === EMA_STEP_KEY ? 'reserved' : 'duplicated'}; EMA state is keyed by unique parameter names`,
        );
      }
      this.byName.set(p.name, p);
      this.shadows.set(p, p.data.slice());
    }
  }

  /** diffusers `EMAModel.get_decay`: the decay factor used by update number `optimizationStep`. */
  getDecay(optimizationStep: number): number {
    const step = Math.max(0, optimizationStep - this.updateAfterStep - 1);
    if (step <= 0) return 0;
    let d = this.useWarmup ? 1 - (1 + step / this.invGamma) ** -this.power : (1 + step) / (10 + step);
    d = Math.min(d, this.decay);
    return Math.max(d, this.minDecay);
  }

  /** diffusers `EMAModel.step`: fold the current parameter values into the shadows. */
  update(): void {
    this.optimizationStep++;
    const decay = this.getDecay(this.optimizationStep);
    this.curDecay = decay;
    const fr = Math.fround;
    const oneMinusDecay = fr(1 - decay);
    for (const p of this.params) {
      const s = this.shadows.get(p)!;
      const x = p.data;
      if (!p.requiresGrad) {
        s.set(x);
        continue;
      }
      for (let i = 0; i < s.length; i++) {
        const si = s[i]!;
        s[i] = si - fr(oneMinusDecay * fr(si - x[i]!));
      }
    }
  }

  /** The live shadow buffer of a tracked parameter (matched by object, then by name). */
  shadow(p: Parameter): Float32Array {
    const tracked = this.shadows.has(p) ? p : this.byName.get(p.name);
    const s = tracked && this.shadows.get(tracked);
    if (!s) throw new ImagenError('NOT_FOUND', `EMA: parameter ${p.name} is not tracked`);
    return s;
  }

  /**
   * diffusers `EMAModel.copy_to`: write the averaged weights into `params` (default: the
   * tracked parameters). Targets are matched by name, so a separate copy of the model works.
   */
  copyTo(params: readonly Parameter[] = this.params): void {
    for (const p of params) {
      const src = this.byName.get(p.name);
      if (!src)
        throw new ImagenError('NOT_FOUND', `EMA.copyTo: parameter ${p.name} is not tracked by this EMA`);
      if (
        p.size !== src.size ||
        p.shape.length !== src.shape.length ||
        p.shape.some((d, i) => d !== src.shape[i])
      ) {
        throw new ImagenError(
          'SHAPE_MISMATCH',
          `EMA.copyTo: ${p.name} has shape ${shapeStr(p.shape)} but the EMA holds ${shapeStr(src.shape)}`,
        );
      }
      const s = this.shadows.get(src)!;
      if (p.value === undefined) p.set(new NDArray('float32', [...p.shape], s.slice()));
      else p.data.set(s);
    }
  }

  /** diffusers `EMAModel.store`: remember the current values of the tracked parameters. */
  store(): void {
    this.stored = new Map(this.params.map((p) => [p, p.data.slice()]));
  }

  /** diffusers `EMAModel.restore`: put back the values saved by `store()` (e.g. after evaluating with `copyTo`). */
  restore(): void {
    if (!this.stored) throw new ImagenError('BAD_INPUT', 'EMA.restore: nothing stored; call store() first');
    for (const [p, v] of this.stored) p.data.set(v);
    this.stored = undefined;
  }

  /**
   * Shadows keyed by parameter name (float32 copies, so the dict doubles as a model
   * checkpoint of the averaged weights) plus `"optimization_step"` (int64 scalar).
   * Hyperparameters come from the constructor.
   */
  stateDict(): Record<string, NDArray> {
    const out: Record<string, NDArray> = { [EMA_STEP_KEY]: NDArray.i64([], [this.optimizationStep]) };
    for (const p of this.params)
      out[p.name] = new NDArray('float32', [...p.shape], this.shadows.get(p)!.slice());
    return out;
  }

  /** Restore `stateDict()` output: every tracked parameter must be present with its shape; no extra keys. */
  loadStateDict(state: Readonly<Record<string, NDArray>>): void {
    const stepArr = state[EMA_STEP_KEY];
    if (!stepArr) throw new ImagenError('WEIGHTS_MISMATCH', `EMA.loadStateDict: missing "${EMA_STEP_KEY}"`);
    if (stepArr.size !== 1 || !['int64', 'int32', 'float64', 'float32'].includes(stepArr.dtype)) {
      throw new ImagenError(
        'DTYPE_MISMATCH',
        `EMA.loadStateDict: "${EMA_STEP_KEY}" must be an integer scalar, got ${stepArr.dtype} ${shapeStr(stepArr.shape)}`,
      );
    }
    const step = stepArr.toArray()[0]!;
    if (!Number.isInteger(step) || step < 0) {
      throw new ImagenError(
        'BAD_INPUT',
        `EMA.loadStateDict: "${EMA_STEP_KEY}" must be a non-negative integer, got ${step}`,
      );
    }
    for (const key of Object.keys(state)) {
      if (key !== EMA_STEP_KEY && !this.byName.has(key)) {
        throw new ImagenError(
          'WEIGHTS_MISMATCH',
          `EMA.loadStateDict: unexpected key "${key}" (not a tracked parameter)`,
        );
      }
    }
    for (const p of this.params) {
      const a = state[p.name];
      if (!a)
        throw new ImagenError(
          'WEIGHTS_MISMATCH',
          `EMA.loadStateDict: missing shadow for parameter ${p.name}`,
        );
      if (a.dtype !== 'float32') {
        throw new ImagenError(
          'DTYPE_MISMATCH',
          `EMA.loadStateDict: "${p.name}" must be float32, got ${a.dtype}`,
        );
      }
      if (a.shape.length !== p.shape.length || a.shape.some((d, i) => d !== p.shape[i])) {
        throw new ImagenError(
          'SHAPE_MISMATCH',
          `EMA.loadStateDict: "${p.name}" has shape ${shapeStr(a.shape)} but the parameter has shape ${shapeStr(p.shape)}`,
        );
      }
    }
    for (const p of this.params) this.shadows.get(p)!.set(state[p.name]!.data as Float32Array);
    this.optimizationStep = step;
  }
}
