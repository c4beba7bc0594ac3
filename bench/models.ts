/**
 * Model-level figures for `npm run bench`: UNet forward, one CFG sampling step, a training step
 * (forward + backward + AdamW), and the T5 encoder — with achieved GFLOP/s counted from the
 * traced graphs (src/engine/flops.ts). bench/torch_models.py times the same configs in diffusers.
 */

import { makeSchedule, parseSchedulerConfig } from '../src/diffusion/schedule.js';
import { countFlops, NDArray, type Runtime, Trace } from '../src/engine/index.js';
import * as F from '../src/engine/ops/index.js';
import { T5Encoder } from '../src/models/t5/t5_encoder.js';
import { UNet2DConditionModel } from '../src/models/unet/unet.js';
import { ByT5Tokenizer } from '../src/text/byt5.js';
import { ifSchedulerConfig, tinyTextEncoderConfig, tinyUNetConfig } from '../src/train/config.js';
import { AdamW, clipGradNorm } from '../src/train/optim.js';
import { DEFAULT_HYPERPARAMETERS, DiffusionTrainer } from '../src/train/trainer.js';
import { randomF32, type Stats, type TimingOptions, timeAsync } from './engine.js';

/** Default stage-I UNet: the IF recipe at the size of training-feasibility.md's baseline (64, 128, 192). */
export function defaultUNetConfig(size: number): Record<string, unknown> {
  return tinyUNetConfig({ stage: 'base', size, channels: [64, 128, 192], textDim: 128, layers: 1 });
}

export function defaultT5Config(): Record<string, unknown> {
  return { ...tinyTextEncoderConfig(512, 8), d_kv: 64, num_heads: 8, d_ff: 1024, vocab_size: 32128 };
}

export interface ModelFigures {
  unetForward: Stats;
  unetForwardGflop: number;
  sampleStep: Stats;
  /** UNet forward + backward + clip + AdamW: the twin's step. */
  trainStep: Stats;
  trainStepGflop: number;
  /** One `imagen train` step (DiffusionTrainer) of the same UNet. */
  trainerStep: Stats;
  t5Encode: Stats;
  t5Gflop: number;
  params: number;
}

export async function benchModels(
  rt: Runtime,
  opts: TimingOptions,
  o: { unetConfig: Record<string, unknown>; t5Config: Record<string, unknown>; batch: number; size: number },
): Promise<ModelFigures> {
  const unet = new UNet2DConditionModel({ ...o.unetConfig, sample_size: o.size }).initialize(1);
  const cfg = unet.config;
  const text = cfg.encoder_hid_dim ?? cfg.cross_attention_dim;
  const b = o.batch;
  const sample = randomF32([b, cfg.in_channels, o.size, o.size], 2);
  const enc = randomF32([b, 77, text], 3);
  const call = (x: NDArray, e: NDArray) => ({
    sample: x,
    timestep: NDArray.i64([1], [500]),
    encoder_hidden_states: e,
  });
  const fwd = rt.compile((i) =>
    unet.forward({ sample: i.sample!, timestep: i.timestep!, encoderHiddenStates: i.encoder_hidden_states! }),
  );
  const unetForward = await timeAsync(() => fwd.run(call(sample, enc)), opts);
  const tr = new Trace();
  const flops = countFlops([
    unet.forward({
      sample: tr.input('s', sample.shape),
      timestep: tr.input('t', [1], 'int64'),
      encoderHiddenStates: tr.input('e', enc.shape),
    }),
  ]);
  // One CFG step: the batch doubles ([uncond; cond]) in a single call.
  const sample2 = randomF32([2 * b, cfg.in_channels, o.size, o.size], 4);
  const enc2 = randomF32([2 * b, 77, text], 5);
  const sampleStep = await timeAsync(() => fwd.run(call(sample2, enc2)), opts);
  await fwd.release();

  // Training step, the twin's work exactly: UNet forward on given embeddings, ε-MSE on the first
  // three output channels, backward, clip_grad_norm, AdamW.
  const params = unet.parameters();
  const gradFn = rt.compileGrad(
    (i) => {
      const out = unet.forward({ sample: i.sample!, timestep: i.timestep!, encoderHiddenStates: i.e! });
      const d = F.sub(F.narrow(out, 1, 0, 3), i.noise!);
      return F.reduceMean(F.mul(d, d));
    },
    params,
    { name: 'bench_train_step' },
  );
  const opt = new AdamW(params, { lr: 1e-4 });
  const noise = randomF32([b, 3, o.size, o.size], 9);
  let tick = 0;
  const trainStep = await timeAsync(
    async () => {
      const timestep = NDArray.i64(
        [b],
        Array.from({ length: b }, (_, i) => (tick * 7919 + i * 331) % 1000),
      );
      tick++;
      const r = await gradFn.run({ sample, timestep, e: enc, noise });
      clipGradNorm(r.grads, 1);
      opt.step(r.grads);
    },
    { ...opts, minRuns: Math.min(opts.minRuns, 5) },
  );
  await gradFn.release();

  // What `imagen train` does per step on top: a jointly trained text encoder (1 layer), the
  // learned-variance VLB term, EMA, caption tokenisation and noise drawn in JS.
  const te = new T5Encoder(tinyTextEncoderConfig(text, 1)).initialize(6);
  const trainer = new DiffusionTrainer(
    rt,
    {
      unet,
      textEncoder: te,
      tokenizer: new ByT5Tokenizer(),
      schedule: makeSchedule(parseSchedulerConfig(ifSchedulerConfig(1.5))),
    },
    { ...DEFAULT_HYPERPARAMETERS, batchSize: b, maxTextLength: 77, warmupSteps: 0 },
  );
  const images = randomF32([b, 3, o.size, o.size], 7);
  const captions = Array.from({ length: b }, (_, i) => `a caption number ${i}`);
  const trainerStep = await timeAsync(() => trainer.trainStep({ images, captions }), {
    ...opts,
    minRuns: Math.min(opts.minRuns, 5),
  });
  await trainer.release();

  const t5 = new T5Encoder(o.t5Config).initialize(8);
  const t5fn = rt.compile((i) => t5.forward(i.ids!, i.mask!));
  const ids = NDArray.i64(
    [2, 77],
    Array.from({ length: 154 }, (_, i) => (i * 37) % 1000),
  );
  const mask = NDArray.i64([2, 77], new Array(154).fill(1));
  const t5Encode = await timeAsync(() => t5fn.run({ ids, mask }), opts);
  const tt = new Trace();
  const t5Flops = countFlops([
    t5.forward(tt.input('ids', [2, 77], 'int64'), tt.input('mask', [2, 77], 'int64')),
  ]);
  await t5fn.release();
  return {
    unetForward,
    unetForwardGflop: flops / 1e9,
    sampleStep,
    trainStep,
    trainerStep,
    // forward + backward ≈ 3× the forward's matrix work
    trainStepGflop: (3 * flops) / 1e9,
    t5Encode,
    t5Gflop: t5Flops / 1e9,
    params: unet.parameters().reduce((s, p) => s + p.size, 0),
  };
}
