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
 * A UNet compiled once per input shape. Weights are baked in as initializers (inference), so a
 * denoising step is one ONNX Runtime call with no re-tracing.
 */
export class UNetRunner {
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
