import { NDArray } from '../engine/ndarray.js';
import type { CompiledFunction, Runtime } from '../engine/runtime.js';
import type { UNet2DConditionModel } from '../models/unet/unet.js';

export interface UNetCall {
  sample: NDArray;
  timestep: number;
  encoderHiddenStates: NDArray;
  classLabels?: NDArray;
}

/**
 * Anything the IF pipelines can denoise with: the in-memory runner below or the weight-streaming
 * runner of big checkpoints (models/unet/streaming.ts). `unet` gives the config (channels, sample
 * size); a streaming runner's module holds no weights.
 */
export interface UNetLike {
  readonly unet: UNet2DConditionModel;
  run(c: UNetCall): Promise<NDArray>;
  release(): Promise<void>;
}

/**
 * A UNet compiled once per input shape. Weights are baked in as initializers (inference), so a
 * denoising step is one ONNX Runtime call with no re-tracing.
 */
export class InMemoryUNetRunner implements UNetLike {
  private readonly fn: CompiledFunction;

  constructor(
    rt: Runtime,
    readonly unet: UNet2DConditionModel,
  ) {
    this.fn = rt.compile(
      (i) =>
        unet.forward({
          sample: i.sample!,
          timestep: i.timestep!,
          encoderHiddenStates: i.encoder_hidden_states!,
          classLabels: i.class_labels,
        }),
      { name: 'unet' },
    );
  }

  async run(c: UNetCall): Promise<NDArray> {
    const feeds: Record<string, NDArray> = {
      sample: c.sample,
      timestep: NDArray.i64([1], [c.timestep]),
      encoder_hidden_states: c.encoderHiddenStates,
    };
    if (c.classLabels) feeds.class_labels = c.classLabels;
    return (await this.fn.run(feeds)).output!;
  }

  release(): Promise<void> {
    return this.fn.release();
  }
}

/** Builds the runner of one loaded UNet (a platform loader registers it for weight-streaming models). */
export type UNetRunnerFactory = (rt: Runtime) => UNetLike;

const factories = new WeakMap<UNet2DConditionModel, UNetRunnerFactory>();

/**
 * Make `createUNetRunner` / `new UNetRunner` build `factory(rt)` for this module: how a loader that
 * decided to stream a big checkpoint hands the pipelines a runner without them knowing.
 */
export function setUNetRunnerFactory(unet: UNet2DConditionModel, factory: UNetRunnerFactory): void {
  factories.set(unet, factory);
}

/** The runner registered for `unet` (streaming), or the in-memory one. */
export function createUNetRunner(rt: Runtime, unet: UNet2DConditionModel): UNetLike {
  return factories.get(unet)?.(rt) ?? new InMemoryUNetRunner(rt, unet);
}

/** Backward-compatible name: the type every pipeline accepts. */
export type UNetRunner = UNetLike;

/**
 * Backward-compatible constructor: `new UNetRunner(rt, unet)` gives `createUNetRunner(rt, unet)`
 * (a constructor returning an object yields that object), so existing callers pick up streaming.
 */
export const UNetRunner = function UNetRunner(rt: Runtime, unet: UNet2DConditionModel): UNetLike {
  return createUNetRunner(rt, unet);
} as unknown as new (
  rt: Runtime,
  unet: UNet2DConditionModel,
) => UNetLike;
