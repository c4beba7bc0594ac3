import type { Command } from 'commander';
import { ImagenError } from '../../engine/errors.js';
import type { NDArray } from '../../engine/ndarray.js';
import type { Runtime } from '../../engine/runtime.js';
import { createUNetRunner } from '../../pipelines/unet_runner.js';
import { readModelConfig } from '../../platform/node/config.js';
import { openSafetensors, writeSafetensors } from '../../platform/node/files.js';
import { createRuntime } from '../../platform/node/runtime.js';
import { loadUNet } from '../../platform/node/unet_loader.js';
import { t5ForwardRunner } from './encode.js';

/** One kind of model folder `imagen forward` can run: its config test, and the call itself. */
export interface ForwardRunner {
  name: string;
  matches(config: Record<string, unknown>): boolean;
  /** Input tensor names the call takes (required ones first). */
  inputs: { required: string[]; optional: string[] };
  run(
    rt: Runtime,
    dir: string,
    inputs: Record<string, NDArray>,
    options: { fp16: boolean; streamingThresholdBytes?: number },
  ): Promise<Record<string, NDArray>>;
}

const unetRunner: ForwardRunner = {
  name: 'UNet2DConditionModel',
  matches: (c) => c._class_name === 'UNet2DConditionModel',
  inputs: {
    required: ['sample', 'timestep', 'encoder_hidden_states'],
    optional: ['class_labels', 'encoder_attention_mask'],
  },
  async run(rt, dir, inputs, { fp16, streamingThresholdBytes }) {
    const model = await loadUNet(dir, {
      ...(fp16 ? { variant: 'fp16' as const } : {}),
      streamingThresholdBytes,
    });
    if (model.parameters().some((p) => !p.value)) {
      // A checkpoint too big to hold: the loader registered a weight-streaming runner, which takes one
      // timestep for the whole batch and no attention mask (what the IF pipelines pass).
      const ts = inputs.timestep!.toArray();
      if (inputs.encoder_attention_mask || ts.some((t) => t !== ts[0])) {
        throw new ImagenError(
          'UNSUPPORTED',
          `${dir}: this UNet is streamed from disk; streaming takes one timestep for the batch and no encoder_attention_mask`,
        );
      }
      const runner = createUNetRunner(rt, model);
      try {
        const sample = await runner.run({
          sample: inputs.sample!,
          timestep: ts[0]!,
          encoderHiddenStates: inputs.encoder_hidden_states!,
          classLabels: inputs.class_labels,
        });
        return { sample };
      } finally {
        await runner.release();
      }
    }
    const f = rt.compile((i) =>
      model.forward({
        sample: i.sample!,
        timestep: i.timestep!,
        encoderHiddenStates: i.encoder_hidden_states!,
        classLabels: i.class_labels,
        encoderAttentionMask: i.encoder_attention_mask,
      }),
    );
    const out = await f.run(inputs);
    await f.release();
    return { sample: out.output! };
  },
};

export const FORWARD_RUNNERS: ForwardRunner[] = [unetRunner, t5ForwardRunner];

export function registerForward(program: Command): void {
  program
    .command('forward')
    .description(
      'Run one forward pass of a model folder on tensors from a safetensors file (a debugging and parity tool).\n' +
        'UNet folders take sample, timestep, encoder_hidden_states [, class_labels, encoder_attention_mask] and write `sample`.',
    )
    .requiredOption(
      '--model <dir>',
      'a diffusers/transformers model folder (config.json + safetensors weights)',
    )
    .requiredOption(
      '--inputs <file>',
      'safetensors file with the input tensors, named as the forward arguments',
    )
    .requiredOption('--out <file>', 'safetensors file to write the outputs to')
    .option('--fp16', 'load the *.fp16.safetensors weight variant', false)
    .addHelpText(
      'after',
      '\nExample:\n  imagen forward --model IF-I-XL-v1.0/unet --inputs in.safetensors --out out.safetensors',
    )
    .action(async (opts: { model: string; inputs: string; out: string; fp16: boolean }) => {
      const cfg = await readModelConfig(opts.model);
      const runner = FORWARD_RUNNERS.find((r) => r.matches(cfg));
      if (!runner) {
        throw new ImagenError(
          'UNSUPPORTED',
          `${opts.model}: no forward runner for this folder (supported: ${FORWARD_RUNNERS.map((r) => r.name).join(', ')})`,
        );
      }
      const file = await openSafetensors(opts.inputs);
      const inputs: Record<string, NDArray> = {};
      try {
        const allowed = [...runner.inputs.required, ...runner.inputs.optional];
        for (const k of file.keys()) {
          if (!allowed.includes(k)) {
            throw new ImagenError(
              'BAD_INPUT',
              `${opts.inputs}: unexpected tensor "${k}" (a ${runner.name} takes ${allowed.join(', ')})`,
            );
          }
          inputs[k] = await file.get(k);
        }
      } finally {
        await file.close();
      }
      const missing = runner.inputs.required.filter((k) => !(k in inputs));
      if (missing.length)
        throw new ImagenError('BAD_INPUT', `${opts.inputs}: missing input tensor(s) ${missing.join(', ')}`);
      const rt = createRuntime();
      const out = await runner.run(rt, opts.model, inputs, { fp16: opts.fp16 });
      await writeSafetensors(opts.out, out);
      process.stderr.write(`wrote ${Object.keys(out).join(', ')} to ${opts.out}\n`);
    });
}
