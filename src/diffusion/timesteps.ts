import { ImagenError } from '../engine/errors.js';
import type { SchedulerConfig, TimestepSpacing } from './schedule.js';

/**
 * Which training timesteps a sampler visits (descending integers), following diffusers'
 * `DDPMScheduler.set_timesteps` and DeepFloyd IF's respacing presets.
 */

/**
 * IF's respacing presets as section counts (`IFBaseModule.respacing_modes` of deep-floyd/IF).
 * Expanded with `spaceTimesteps`, they equal diffusers' `pipelines/deepfloyd_if/timesteps.py` lists.
 * `fast27`: the original IF code then replaces 999 by 997 (see `FAST27_ORIGINAL`); diffusers keeps 999
 * and diffusers is our parity target, so the preset starts at 999.
 */
export const IF_RESPACING_MODES = {
  fast27: '10,10,3,2,2',
  smart27: '7,4,2,1,2,4,7',
  smart50: '10,6,4,3,2,2,3,4,6,10',
  smart100: '1,1,1,1,2,2,2,2,2,2,3,3,4,4,5,5,6,7,7,8,9,10,13',
  smart185: '1,1,2,2,2,3,3,3,4,5,6,7,8,9,10,11,12,13,14,15,16,18,20',
  super27: '1,1,1,1,1,1,1,2,5,13',
  super40: '2,2,2,2,2,2,3,4,6,15',
  super100: '4,4,6,6,8,8,10,10,14,30',
} as const;

export type PresetName = keyof typeof IF_RESPACING_MODES;
export const PRESET_NAMES = Object.keys(IF_RESPACING_MODES) as PresetName[];

/** An IF preset expanded to its descending timestep list (1000 training steps). */
export function presetTimesteps(name: PresetName): number[] {
  return spaceTimesteps(1000, IF_RESPACING_MODES[name]);
}

/** The original deep-floyd/IF `fast27` list (997 instead of diffusers' 999). */
export const FAST27_ORIGINAL: readonly number[] = Object.freeze(
  presetTimesteps('fast27').map((t) => (t === 999 ? 997 : t)),
);

/**
 * `space_timesteps` of improved-diffusion (Nichol & Dhariwal 2021, respace.py), as used by IF:
 * split [0, T) into len(counts) sections (the first T mod k one longer), take `c` evenly spaced
 * indices per section with Python's round-half-to-even on a float64 running index, union them.
 * `"ddimN"` picks the integer stride giving exactly N steps. Returns the set in descending order.
 */
export function spaceTimesteps(numTimesteps: number, sectionCounts: string | readonly number[]): number[] {
  if (typeof sectionCounts === 'string') {
    if (sectionCounts.startsWith('ddim')) return ddimStride(numTimesteps, parseCount(sectionCounts.slice(4)));
    sectionCounts = sectionCounts.split(',').map(parseCount);
  }
  const k = sectionCounts.length;
  const sizePer = Math.floor(numTimesteps / k);
  const extra = numTimesteps % k;
  const steps = new Set<number>();
  let start = 0;
  sectionCounts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count) {
      throw new ImagenError(
        'CONFIG_INVALID',
        `respacing: cannot take ${count} steps from a section of ${size}`,
      );
    }
    const stride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let j = 0; j < count; j++) {
      steps.add(start + roundHalfEven(cur));
      cur += stride;
    }
    start += size;
  });
  return [...steps].sort((a, b) => b - a);
}

function ddimStride(numTimesteps: number, count: number): number[] {
  for (let stride = 1; stride < numTimesteps; stride++) {
    if (Math.ceil(numTimesteps / stride) === count) {
      const out: number[] = [];
      for (let t = 0; t < numTimesteps; t += stride) out.push(t);
      return out.reverse();
    }
  }
  throw new ImagenError(
    'CONFIG_INVALID',
    `respacing: cannot create exactly ${count} steps with an integer stride`,
  );
}

function parseCount(s: string): number {
  const t = s.trim();
  if (!/^\d+$/.test(t)) {
    throw new ImagenError('CONFIG_INVALID', `respacing: "${s}" is not a non-negative integer section count`);
  }
  return Number(t);
}

/** Python 3 `round(x)`: nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const fl = Math.floor(x);
  const d = x - fl;
  if (d < 0.5) return fl;
  if (d > 0.5) return fl + 1;
  return fl % 2 === 0 ? fl : fl + 1;
}

/**
 * A timestep request: a step count (diffusers spacing), an IF preset name, a numeric string
 * ("27" = 27 steps with the configured spacing, as diffusers' `num_inference_steps`), a comma list of
 * section counts ("10,10,3,2,2", the original IF respacing syntax), `"ddimN"`, or an explicit list.
 */
export type TimestepRequest = number | string | readonly number[];

type TimestepConfig = Pick<SchedulerConfig, 'numTrainTimesteps' | 'timestepSpacing' | 'stepsOffset'>;

/** Descending integer timesteps for a request, as diffusers' `DDPMScheduler.set_timesteps`. */
export function setTimesteps(request: TimestepRequest, config: TimestepConfig): number[] {
  if (typeof request === 'number') return spacedTimesteps(request, config);
  if (typeof request !== 'string') return validateTimesteps(request, config.numTrainTimesteps);
  const s = request.trim();
  if (s in IF_RESPACING_MODES) {
    return validateTimesteps(presetTimesteps(s as PresetName), config.numTrainTimesteps);
  }
  if (/^\d+$/.test(s)) return spacedTimesteps(Number(s), config);
  if (/^(\d+\s*,\s*)+\d+$/.test(s) || /^ddim\d+$/.test(s)) {
    return validateTimesteps(spaceTimesteps(config.numTrainTimesteps, s), config.numTrainTimesteps);
  }
  throw new ImagenError(
    'CONFIG_INVALID',
    `unknown timesteps "${request}"; expected a step count, one of ${PRESET_NAMES.join(', ')}, ` +
      'a comma list of section counts, "ddimN", or an explicit descending list',
  );
}

/** `set_timesteps(num_inference_steps)` with "leading" | "trailing" | "linspace" spacing. */
export function spacedTimesteps(numInferenceSteps: number, config: TimestepConfig): number[] {
  const T = config.numTrainTimesteps;
  const n = numInferenceSteps;
  if (!Number.isInteger(n) || n < 1 || n > T) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `num_inference_steps must be an integer in [1, ${T}] (num_train_timesteps), got ${numInferenceSteps}`,
    );
  }
  const spacing: TimestepSpacing = config.timestepSpacing;
  const out: number[] = [];
  switch (spacing) {
    case 'leading': {
      // np.arange(0, n) * (T // n), reversed, + steps_offset
      const ratio = Math.floor(T / n);
      for (let i = n - 1; i >= 0; i--) out.push(i * ratio + config.stepsOffset);
      break;
    }
    case 'trailing': {
      // np.round(np.arange(T, 0, -T/n)) - 1; numpy's arange uses delta = (start + step) − start
      const step = -(T / n);
      const delta = T + step - T;
      const len = Math.ceil((0 - T) / step);
      for (let i = 0; i < len; i++) out.push(roundHalfEven(T + i * delta) - 1);
      // For 62 values of n ≤ 1000 (61, 103, …) numpy's float arange yields one extra element that
      // becomes timestep −1 (diffusers would then index ᾱ[−1] = ᾱ[T−1]); we drop it.
      if (out.length > n) out.length = n;
      break;
    }
    case 'linspace': {
      // np.linspace(0, T − 1, n).round()[::-1]
      if (n === 1) return [0];
      const step = (T - 1) / (n - 1);
      for (let i = n - 1; i >= 0; i--) out.push(i === n - 1 && n > 1 ? T - 1 : roundHalfEven(i * step));
      break;
    }
  }
  return out;
}

/** Check an explicit list as diffusers does: strictly descending, first < T; also integers ≥ 0. */
export function validateTimesteps(timesteps: readonly number[], numTrainTimesteps: number): number[] {
  if (timesteps.length === 0) throw new ImagenError('CONFIG_INVALID', 'timesteps list is empty');
  timesteps.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0) {
      throw new ImagenError('CONFIG_INVALID', `timesteps[${i}] = ${t} is not a non-negative integer`);
    }
    if (i > 0 && t >= timesteps[i - 1]!) {
      throw new ImagenError(
        'CONFIG_INVALID',
        `timesteps must be strictly descending: timesteps[${i}] = ${t} follows ${timesteps[i - 1]}`,
      );
    }
  });
  if (timesteps[0]! >= numTrainTimesteps) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `timesteps must start below num_train_timesteps (${numTrainTimesteps}), got ${timesteps[0]}`,
    );
  }
  return [...timesteps];
}

/**
 * diffusers' `previous_timestep`: the next entry of the active list, −1 after the last one.
 * Without a list (no `set_timesteps`, the full training chain) it is t − 1.
 */
export function previousTimestep(timesteps: readonly number[] | undefined, t: number): number {
  if (!timesteps) return t - 1;
  const i = timesteps.indexOf(t);
  if (i < 0) {
    throw new ImagenError(
      'BAD_INPUT',
      `timestep ${t} is not in the active timesteps [${timesteps.join(', ')}]`,
    );
  }
  return i === timesteps.length - 1 ? -1 : timesteps[i + 1]!;
}
