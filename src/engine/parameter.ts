import { ImagenError } from './errors.js';
import { type NDArray, shapeStr } from './ndarray.js';

/**
 * A named, trainable or frozen weight. `name` is the state-dict key (diffusers /
 * transformers spelling), so checkpoints move to and from PyTorch without renaming.
 *
 * The value may be absent until loaded (big checkpoints are materialised lazily, one
 * block at a time), and may be held in a 16-bit storage dtype; compute is float32.
 */
/** How a fresh parameter is initialised (torch's defaults are expressed with these). */
export type InitSpec =
  | { kind: 'uniform'; bound: number }
  | { kind: 'normal'; std: number }
  | { kind: 'constant'; value: number };

export class Parameter {
  value: NDArray | undefined;
  requiresGrad: boolean;
  readonly init: InitSpec | undefined;

  constructor(
    readonly name: string,
    readonly shape: readonly number[],
    options: { value?: NDArray; requiresGrad?: boolean; init?: InitSpec } = {},
  ) {
    this.requiresGrad = options.requiresGrad ?? true;
    this.init = options.init;
    if (options.value) this.set(options.value);
  }

  /** Replace the value; the shape must match exactly. */
  set(value: NDArray): void {
    if (value.shape.length !== this.shape.length || value.shape.some((d, i) => d !== this.shape[i])) {
      throw new ImagenError(
        'WEIGHTS_MISMATCH',
        `parameter ${this.name}: expected shape ${shapeStr(this.shape)}, got ${shapeStr(value.shape)}`,
      );
    }
    this.value = value;
  }

  /** The float32 data (converting 16-bit storage on first use for training). */
  get data(): Float32Array {
    if (!this.value) throw new ImagenError('WEIGHTS_MISMATCH', `parameter ${this.name} has no value loaded`);
    if (this.value.dtype !== 'float32') this.value = this.value.toFloat32();
    return this.value.data as Float32Array;
  }

  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }
}
