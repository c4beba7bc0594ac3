/**
 * First-order optimizers with PyTorch semantics (`torch.optim.SGD`, `torch.optim.AdamW`) and
 * `torch.nn.utils.clip_grad_norm_`. Pure TypeScript over float32 typed arrays; no Node imports.
 *
 * Gradients are passed to `step()` as a `Map<Parameter, Float32Array>` (keyed by the parameter
 * object, each array flat row-major with `param.size` elements). A parameter that is frozen
 * (`requiresGrad === false`) or has no entry in the map is skipped, exactly as torch skips
 * parameters whose `.grad` is `None`: its value and its optimizer state are left untouched, and
 * (for AdamW) its own step counter does not advance.
 *
 * Arithmetic: state and parameters are float32; every intermediate that torch materialises as a
 * float32 tensor is rounded with `Math.fround`, so results agree with torch's CPU single-tensor
 * (`foreach=False`) path to within an ulp or two (torch's vectorised kernels may fuse
 * multiply-adds, so bit-identity with torch is not promised; bit-identity with ourselves is).
 */
import { ImagenError } from '../engine/errors.js';
import { NDArray, shapeStr } from '../engine/ndarray.js';
import type { Parameter } from '../engine/parameter.js';
import { AdamWArena } from './wasm/adamw_kernel.js';

/** Gradients keyed by parameter; each array has `param.size` float32 elements. */
export type Gradients = ReadonlyMap<Parameter, Float32Array>;

/** Key of the global step counter in every optimizer state dict. */
export const STEP_KEY = 'step';

export interface Optimizer {
  /** The parameters this optimizer updates, in construction order. */
  readonly params: readonly Parameter[];
  /** Learning rate used by the next `step()`; assign to it to apply a schedule. */
  lr: number;
  /** Number of `step()` calls so far (including calls where every parameter was skipped). */
  readonly stepCount: number;
  /** Apply one update in place to `param.data` of every parameter that has a gradient. */
  step(grads: Gradients): void;
  /**
   * Optimizer state as float32 buffers keyed `"<paramName>.<field>"`, plus `"step"` (int64
   * scalar). Arrays are copies, so the result can be serialised (e.g. to safetensors) while
   * training continues. Hyperparameters (lr, betas, …) are not included: they come from the
   * constructor, as in a torch training script.
   */
  stateDict(): Record<string, NDArray>;
  /** Restore state produced by `stateDict()` (validates names, dtypes and shapes; copies). */
  loadStateDict(state: Readonly<Record<string, NDArray>>): void;
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing
// ---------------------------------------------------------------------------------------------

function checkNumber(
  what: string,
  value: number,
  min: number,
  maxExclusive = Number.POSITIVE_INFINITY,
): void {
  if (!Number.isFinite(value) || value < min || value >= maxExclusive) {
    const range = Number.isFinite(maxExclusive) ? `[${min}, ${maxExclusive})` : `>= ${min}`;
    throw new ImagenError('CONFIG_INVALID', `${what} must be a finite number ${range}, got ${value}`);
  }
}

function indexParams(owner: string, params: readonly Parameter[]): Map<string, Parameter> {
  const byName = new Map<string, Parameter>();
  for (const p of params) {
    if (byName.has(p.name)) {
      throw new ImagenError(
        'CONFIG_INVALID',
        `${owner}: parameter name "${p.name}" appears twice; optimizer state is keyed by name, so names must be unique`,
      );
    }
    byName.set(p.name, p);
  }
  return byName;
}

/** The gradient for `p`, or undefined when `p` is skipped; validates the length. */
function gradFor(owner: string, p: Parameter, grads: Gradients): Float32Array | undefined {
  if (!p.requiresGrad) return undefined;
  const g = grads.get(p);
  if (g === undefined) return undefined;
  if (g.length !== p.size) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `${owner}.step: gradient for ${p.name} has ${g.length} elements but the parameter has shape ${shapeStr(p.shape)} (${p.size} elements)`,
    );
  }
  return g;
}

function stepScalar(n: number): NDArray {
  return NDArray.i64([], [n]);
}

/** Read a scalar step counter (int64, int32, float64 or float32 accepted — torch stores float32). */
function readStep(owner: string, key: string, a: NDArray): number {
  if (a.size !== 1) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `${owner}.loadStateDict: "${key}" must be a scalar, got shape ${shapeStr(a.shape)}`,
    );
  }
  if (a.dtype !== 'int64' && a.dtype !== 'int32' && a.dtype !== 'float64' && a.dtype !== 'float32') {
    throw new ImagenError(
      'DTYPE_MISMATCH',
      `${owner}.loadStateDict: "${key}" must be int64 or float, got ${a.dtype}`,
    );
  }
  const v = a.toArray()[0]!;
  if (!Number.isInteger(v) || v < 0) {
    throw new ImagenError(
      'BAD_INPUT',
      `${owner}.loadStateDict: "${key}" must be a non-negative integer, got ${v}`,
    );
  }
  return v;
}

/**
 * Parses and validates a state dict against `params`: returns, per parameter name, the
 * fields present. Unknown keys, unknown parameters, wrong dtypes and wrong shapes throw.
 */
function parseState(
  owner: string,
  byName: ReadonlyMap<string, Parameter>,
  state: Readonly<Record<string, NDArray>>,
  bufferFields: readonly string[],
  scalarFields: readonly string[],
): { step: number; perParam: Map<string, Map<string, NDArray>> } {
  const stepArr = state[STEP_KEY];
  if (stepArr === undefined) {
    throw new ImagenError('WEIGHTS_MISMATCH', `${owner}.loadStateDict: missing "${STEP_KEY}" entry`);
  }
  const step = readStep(owner, STEP_KEY, stepArr);
  const perParam = new Map<string, Map<string, NDArray>>();
  for (const [key, arr] of Object.entries(state)) {
    if (key === STEP_KEY) continue;
    const dot = key.lastIndexOf('.');
    const name = dot > 0 ? key.slice(0, dot) : '';
    const field = key.slice(dot + 1);
    const isBuffer = bufferFields.includes(field);
    if (dot <= 0 || (!isBuffer && !scalarFields.includes(field))) {
      throw new ImagenError(
        'WEIGHTS_MISMATCH',
        `${owner}.loadStateDict: unexpected key "${key}"; expected "${STEP_KEY}" or "<paramName>.{${[...bufferFields, ...scalarFields].join(',')}}"`,
      );
    }
    const p = byName.get(name);
    if (!p) {
      throw new ImagenError(
        'WEIGHTS_MISMATCH',
        `${owner}.loadStateDict: key "${key}" refers to parameter "${name}", which this optimizer does not hold`,
      );
    }
    if (isBuffer) {
      if (arr.dtype !== 'float32') {
        throw new ImagenError(
          'DTYPE_MISMATCH',
          `${owner}.loadStateDict: "${key}" must be float32, got ${arr.dtype}`,
        );
      }
      if (arr.shape.length !== p.shape.length || arr.shape.some((d, i) => d !== p.shape[i])) {
        throw new ImagenError(
          'SHAPE_MISMATCH',
          `${owner}.loadStateDict: "${key}" has shape ${shapeStr(arr.shape)} but parameter ${name} has shape ${shapeStr(p.shape)}`,
        );
      }
    } else {
      readStep(owner, key, arr);
    }
    let fields = perParam.get(name);
    if (!fields) {
      fields = new Map();
      perParam.set(name, fields);
    }
    fields.set(field, arr);
  }
  return { step, perParam };
}

// ---------------------------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------------------------

export interface SGDOptions {
  /** Learning rate (torch `lr`). Required. */
  lr: number;
  /** Momentum factor μ (torch `momentum`); default 0 (plain SGD, no state). */
  momentum?: number;
  /** L2 penalty added to the gradient, g ← g + wd·p (torch `weight_decay`, coupled); default 0. */
  weightDecay?: number;
  /** Nesterov momentum (torch `nesterov`); default false. Requires momentum > 0. */
  nesterov?: boolean;
}

/**
 * Stochastic gradient descent, as `torch.optim.SGD` with `dampening=0`, `maximize=False`:
 * g ← g + wd·p; with momentum, buf ← g on a parameter's first update, else buf ← μ·buf + g,
 * and g ← g + μ·buf (Nesterov) or g ← buf; finally p ← p − lr·g.
 *
 * State dict: `"<name>.momentum_buffer"` for every parameter updated at least once with
 * momentum > 0, plus `"step"`.
 */
export class SGD implements Optimizer {
  readonly params: readonly Parameter[];
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private steps = 0;
  private readonly byName: Map<string, Parameter>;
  private readonly buffers = new Map<Parameter, Float32Array>();

  constructor(params: readonly Parameter[], opts: SGDOptions) {
    this.params = [...params];
    this.byName = indexParams('SGD', this.params);
    checkNumber('SGD lr', opts.lr, 0);
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    checkNumber('SGD momentum', this.momentum, 0);
    checkNumber('SGD weightDecay', this.weightDecay, 0);
    if (this.nesterov && this.momentum <= 0) {
      throw new ImagenError('CONFIG_INVALID', 'SGD: nesterov momentum requires momentum > 0');
    }
  }

  get stepCount(): number {
    return this.steps;
  }

  step(grads: Gradients): void {
    checkNumber('SGD lr', this.lr, 0);
    const fr = Math.fround;
    const lr = fr(this.lr);
    const wd = fr(this.weightDecay);
    const mu = fr(this.momentum);
    const useWd = this.weightDecay !== 0;
    const useMomentum = this.momentum !== 0;
    const nesterov = this.nesterov;
    for (const p of this.params) {
      const g = gradFor('SGD', p, grads);
      if (!g) continue;
      const x = p.data;
      const n = x.length;
      if (!useMomentum) {
        for (let i = 0; i < n; i++) {
          const gi = useWd ? fr(g[i]! + wd * x[i]!) : g[i]!;
          x[i] = x[i]! - lr * gi;
        }
        continue;
      }
      let buf = this.buffers.get(p);
      if (!buf) {
        // First update of this parameter: buf = g (after weight decay), as torch clones the grad.
        buf = new Float32Array(n);
        this.buffers.set(p, buf);
        for (let i = 0; i < n; i++) {
          const gi = useWd ? fr(g[i]! + wd * x[i]!) : g[i]!;
          buf[i] = gi;
          x[i] = x[i]! - lr * (nesterov ? fr(gi + mu * gi) : gi);
        }
        continue;
      }
      for (let i = 0; i < n; i++) {
        const gi = useWd ? fr(g[i]! + wd * x[i]!) : g[i]!;
        const b = fr(fr(mu * buf[i]!) + gi);
        buf[i] = b;
        x[i] = x[i]! - lr * (nesterov ? fr(gi + mu * b) : b);
      }
    }
    this.steps++;
  }

  stateDict(): Record<string, NDArray> {
    const out: Record<string, NDArray> = { [STEP_KEY]: stepScalar(this.steps) };
    for (const p of this.params) {
      const buf = this.buffers.get(p);
      if (buf) out[`${p.name}.momentum_buffer`] = new NDArray('float32', [...p.shape], buf.slice());
    }
    return out;
  }

  loadStateDict(state: Readonly<Record<string, NDArray>>): void {
    const { step, perParam } = parseState('SGD', this.byName, state, ['momentum_buffer'], []);
    this.buffers.clear();
    for (const [name, fields] of perParam) {
      const buf = fields.get('momentum_buffer')!;
      this.buffers.set(this.byName.get(name)!, (buf.data as Float32Array).slice());
    }
    this.steps = step;
  }
}

// ---------------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------------

export interface AdamWOptions {
  /** Learning rate (torch `lr`). Required. */
  lr: number;
  /** Coefficients (β1, β2) of the running averages of g and g² (torch `betas`); default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Added to the denominator for numerical stability (torch `eps`); default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, p ← p·(1 − lr·wd) before the Adam update (torch `weight_decay`); default 1e-2. */
  weightDecay?: number;
  /**
   * The element loop: WebAssembly SIMD where it runs (the default), or plain JS. Both give the
   * same bits; 'js' is for tests and comparisons.
   */
  kernel?: 'wasm' | 'js';
}

interface AdamState {
  step: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

/**
 * AdamW, as `torch.optim.AdamW` with `amsgrad=False`, `maximize=False`. Per parameter, with its
 * own step count t (incremented only when it receives a gradient):
 * p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + eps).
 *
 * State dict: `"<name>.exp_avg"`, `"<name>.exp_avg_sq"` (float32, the parameter's shape) and
 * `"<name>.step"` (int64 scalar) for every parameter updated at least once, plus `"step"`.
 */
export class AdamW implements Optimizer {
  readonly params: readonly Parameter[];
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private steps = 0;
  private readonly byName: Map<string, Parameter>;
  private readonly state = new Map<Parameter, AdamState>();
  private readonly useWasm: boolean;
  /** Every parameter's moments in WebAssembly memory; null: the JS loop (see `arena()`). */
  private wasm: AdamWArena | null | undefined;
  /** Each parameter's slot in the arena (its position in `params`). */
  private readonly slot: Map<Parameter, number>;

  constructor(params: readonly Parameter[], opts: AdamWOptions) {
    this.params = [...params];
    this.useWasm = (opts.kernel ?? 'wasm') === 'wasm';
    this.slot = new Map(this.params.map((p, i) => [p, i]));
    this.byName = indexParams('AdamW', this.params);
    checkNumber('AdamW lr', opts.lr, 0);
    this.lr = opts.lr;
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    checkNumber('AdamW betas[0]', b1, 0, 1);
    checkNumber('AdamW betas[1]', b2, 0, 1);
    this.beta1 = b1;
    this.beta2 = b2;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 1e-2;
    checkNumber('AdamW eps', this.eps, 0);
    checkNumber('AdamW weightDecay', this.weightDecay, 0);
  }

  get stepCount(): number {
    return this.steps;
  }

  /** Which element loop runs: 'wasm', or 'js' where asked for or WebAssembly SIMD is missing. */
  get kernel(): 'wasm' | 'js' {
    return this.arena() ? 'wasm' : 'js';
  }

  private arena(): AdamWArena | null {
    if (this.wasm === undefined)
      this.wasm = (this.useWasm && AdamWArena.create(this.params.map((p) => p.data.length))) || null;
    return this.wasm;
  }

  /** A parameter's zeroed moments: views into the WebAssembly arena, or JS arrays. */
  private newState(p: Parameter): AdamState {
    const arena = this.arena();
    if (!arena)
      return { step: 0, expAvg: new Float32Array(p.data.length), expAvgSq: new Float32Array(p.data.length) };
    const st = { step: 0, ...arena.moments(this.slot.get(p)!) };
    st.expAvg.fill(0);
    st.expAvgSq.fill(0);
    return st;
  }

  step(grads: Gradients): void {
    checkNumber('AdamW lr', this.lr, 0);
    const arena = this.arena();
    const fr = Math.fround;
    const { lr, beta1, beta2 } = this;
    const useWd = this.weightDecay !== 0;
    const decayMul = fr(1 - lr * this.weightDecay);
    const w1 = fr(1 - beta1);
    const b2 = fr(beta2);
    const w2 = fr(1 - beta2);
    const eps = fr(this.eps);
    for (const p of this.params) {
      const g = gradFor('AdamW', p, grads);
      if (!g) continue;
      const x = p.data;
      const n = x.length;
      let st = this.state.get(p);
      if (!st) {
        st = this.newState(p);
        this.state.set(p, st);
      }
      st.step++;
      const t = st.step;
      const biasCorrection1 = 1 - beta1 ** t;
      const biasCorrection2 = 1 - beta2 ** t;
      const stepSize = fr(lr / biasCorrection1);
      const bc2Sqrt = fr(Math.sqrt(biasCorrection2));
      if (arena) {
        const decay = useWd ? decayMul : 1; // x·1 = x exactly: the same as skipping the decay
        arena.update(this.slot.get(p)!, x, g, { decay, w1, b2, w2, eps, stepSize, bc2Sqrt });
        continue;
      }
      const m = st.expAvg;
      const v = st.expAvgSq;
      for (let i = 0; i < n; i++) {
        const gi = g[i]!;
        const xi = useWd ? fr(x[i]! * decayMul) : x[i]!;
        const mi = fr(m[i]! + fr(w1 * fr(gi - m[i]!)));
        const vi = fr(fr(v[i]! * b2) + fr(fr(w2 * gi) * gi));
        m[i] = mi;
        v[i] = vi;
        const denom = fr(fr(fr(Math.sqrt(vi)) / bc2Sqrt) + eps);
        x[i] = xi - fr(fr(stepSize * mi) / denom);
      }
    }
    this.steps++;
  }

  stateDict(): Record<string, NDArray> {
    const out: Record<string, NDArray> = { [STEP_KEY]: stepScalar(this.steps) };
    for (const p of this.params) {
      const st = this.state.get(p);
      if (!st) continue;
      out[`${p.name}.exp_avg`] = new NDArray('float32', [...p.shape], st.expAvg.slice());
      out[`${p.name}.exp_avg_sq`] = new NDArray('float32', [...p.shape], st.expAvgSq.slice());
      out[`${p.name}.step`] = stepScalar(st.step);
    }
    return out;
  }

  loadStateDict(state: Readonly<Record<string, NDArray>>): void {
    const fields = ['exp_avg', 'exp_avg_sq'] as const;
    const { step, perParam } = parseState('AdamW', this.byName, state, fields, ['step']);
    const next = new Map<Parameter, AdamState>();
    for (const [name, f] of perParam) {
      const m = f.get('exp_avg');
      const v = f.get('exp_avg_sq');
      const s = f.get('step');
      if (!m || !v || !s) {
        throw new ImagenError(
          'WEIGHTS_MISMATCH',
          `AdamW.loadStateDict: parameter ${name} needs all of "${name}.exp_avg", "${name}.exp_avg_sq" and "${name}.step"; got only ${[...f.keys()].map((k) => `"${name}.${k}"`).join(', ')}`,
        );
      }
      next.set(this.byName.get(name)!, {
        step: readStep('AdamW', `${name}.step`, s),
        expAvg: m.data as Float32Array,
        expAvgSq: v.data as Float32Array,
      });
    }
    this.state.clear();
    for (const [p, loaded] of next) {
      const st = this.newState(p);
      st.step = loaded.step;
      st.expAvg.set(loaded.expAvg);
      st.expAvgSq.set(loaded.expAvgSq);
      this.state.set(p, st);
    }
    this.steps = step;
  }
}

// ---------------------------------------------------------------------------------------------
// Gradient clipping
// ---------------------------------------------------------------------------------------------

/**
 * `torch.nn.utils.clip_grad_norm_` (L2 norm): the total norm is the L2 norm of all gradients
 * concatenated, accumulated in float64. If `maxNorm / (total + 1e-6) < 1`, every gradient is
 * multiplied in place by that coefficient (so the clipped norm is just below `maxNorm`).
 *
 * Returns the total norm before clipping. If it is not finite (NaN or ±Infinity — an overflowed
 * or poisoned gradient) the gradients are left unscaled and the non-finite value is returned:
 * the caller decides whether to skip the step (torch would multiply by NaN/0 instead).
 */
export function clipGradNorm(grads: Gradients, maxNorm: number): number {
  checkNumber('clipGradNorm maxNorm', maxNorm, 0);
  let sumSq = 0;
  for (const g of grads.values()) {
    for (let i = 0; i < g.length; i++) {
      const v = g[i]!;
      sumSq += v * v;
    }
  }
  const total = Math.sqrt(sumSq);
  if (!Number.isFinite(total)) return total;
  const coef = Math.fround(maxNorm / (total + 1e-6));
  if (coef < 1) {
    for (const g of grads.values()) {
      for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
    }
  }
  return total;
}
