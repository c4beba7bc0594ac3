import { Generator } from '../diffusion/noise.js';
import type { Schedule } from '../diffusion/schedule.js';
import { ImagenError } from '../engine/errors.js';
import type { Tensor } from '../engine/graph.js';
import { NDArray } from '../engine/ndarray.js';
import * as F from '../engine/ops/index.js';
import type { Parameter } from '../engine/parameter.js';
import type { GradFunction, Runtime } from '../engine/runtime.js';
import type { UNet2DConditionModel } from '../models/unet/unet.js';
import { textPreprocessing } from '../text/clean_caption.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { colorAugment } from './color_augment.js';
import { diffusionLoss, diffusionTables, qSample } from './diffusion_loss.js';
import { EMA } from './ema.js';
import { constantWithWarmup, cosineWithWarmup } from './lr.js';
import { AdamW, clipGradNorm } from './optim.js';
import { type TextBox, textRegionWeights } from './text_region.js';

/** A text encoder usable inside the training graph (T5Encoder, or any module with this shape). */
export interface TrainableTextEncoder {
  parameters(): Parameter[];
  forward(inputIds: Tensor, attentionMask?: Tensor): Tensor;
}

export interface TrainHyperparameters {
  batchSize: number;
  learningRate: number;
  warmupSteps: number;
  lrSchedule: 'constant' | 'cosine';
  /** Total steps (for the cosine schedule and the progress bar). */
  maxSteps: number;
  maxGradNorm: number;
  weightDecay: number;
  emaDecay: number;
  /** Probability of replacing a caption by "" (the unconditional input CFG needs; Imagen used 10 %). */
  captionDropout: number;
  snrGamma: number | null;
  /** See DiffusionLossOptions.highNoiseWeightCap; null = off. */
  highNoiseWeightCap: number | null;
  /** How many times a pixel inside a text box counts in the loss (text_region.ts); 1 = off. */
  textLossWeight: number;
  /** Super-resolution stages: augmentation levels are drawn uniformly from [0, maxAugLevel). */
  maxAugLevel: number;
  /** Super-resolution stages: share of examples whose hue is rotated (color_augment.ts); 0 = off. */
  colorAugmentProb: number;
  maxTextLength: number;
  trainTextEncoder: boolean;
  seed: number;
}

export const DEFAULT_HYPERPARAMETERS: TrainHyperparameters = {
  batchSize: 16,
  learningRate: 1e-4,
  warmupSteps: 100,
  lrSchedule: 'constant',
  maxSteps: 1000,
  maxGradNorm: 1.0,
  weightDecay: 0.0,
  emaDecay: 0.999,
  captionDropout: 0.1,
  snrGamma: null,
  highNoiseWeightCap: null,
  textLossWeight: 1,
  maxAugLevel: 500,
  colorAugmentProb: 0,
  maxTextLength: 77,
  trainTextEncoder: true,
  seed: 0,
};

export interface Batch {
  /** Target images [B, 3, H, W] in [−1, 1]. */
  images: NDArray;
  /** Super-resolution stages: the same images at low resolution [B, 3, h, w]. */
  lowRes?: NDArray;
  captions: string[];
  /** Per example, where words are written (none: no boxes); read when `textLossWeight` ≠ 1. */
  textBoxes?: (readonly TextBox[])[];
}

export interface StepStats {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
}

export interface TrainerParts {
  unet: UNet2DConditionModel;
  textEncoder: TrainableTextEncoder;
  tokenizer: TextTokenizer;
  schedule: Schedule;
  /** Super-resolution stages: the schedule that noises the low-res conditioning image. */
  imageNoisingSchedule?: Schedule;
}

/**
 * One training step = one ONNX session run (forward + backward of UNet and text encoder) plus
 * the optimizer update in JS. All randomness comes from one seeded Generator whose state is
 * part of the checkpoint, so a resumed run continues bit for bit.
 */
export class DiffusionTrainer {
  readonly optimizer: AdamW;
  readonly ema: EMA;
  generator: Generator;
  step = 0;
  readonly params: Parameter[];
  private readonly gradFn: GradFunction;
  private readonly sr: boolean;
  /** The graph takes a `loss_weight` input (text_loss_weight ≠ 1), so every step must feed one. */
  private readonly weighted: boolean;
  private readonly cleaned = new Map<string, string>();

  constructor(
    rt: Runtime,
    readonly parts: TrainerParts,
    readonly hp: TrainHyperparameters,
  ) {
    const { unet, textEncoder, schedule } = parts;
    this.sr = unet.config.class_embed_type === 'timestep';
    if (this.sr && !parts.imageNoisingSchedule) {
      throw new ImagenError('CONFIG_INVALID', 'a super-resolution UNet needs an image noising schedule');
    }
    if (!(hp.colorAugmentProb >= 0 && hp.colorAugmentProb <= 1))
      throw new ImagenError(
        'CONFIG_INVALID',
        `color_augment_prob must be in [0, 1], got ${hp.colorAugmentProb}`,
      );
    if (!this.sr && hp.colorAugmentProb > 0) {
      // A base stage learns colours from the captions; rotating hues would teach it wrong ones.
      throw new ImagenError('CONFIG_INVALID', 'color_augment_prob needs a super-resolution stage');
    }
    if (!(hp.textLossWeight >= 1))
      throw new ImagenError('CONFIG_INVALID', `text_loss_weight must be ≥ 1, got ${hp.textLossWeight}`);
    this.weighted = hp.textLossWeight !== 1;
    for (const p of textEncoder.parameters()) p.requiresGrad = hp.trainTextEncoder;
    this.params = [...unet.parameters(), ...textEncoder.parameters()];
    const trainable = this.params.filter((p) => p.requiresGrad);
    this.optimizer = new AdamW(trainable, { lr: hp.learningRate, weightDecay: hp.weightDecay });
    this.ema = new EMA(trainable, { decay: hp.emaDecay });
    this.generator = new Generator(hp.seed);
    const tables = diffusionTables(schedule);
    const noisingTables = parts.imageNoisingSchedule && diffusionTables(parts.imageNoisingSchedule);
    const learned =
      schedule.config.varianceType === 'learned_range' || schedule.config.varianceType === 'learned';
    this.gradFn = rt.compileGrad(
      (i) => {
        const ctx = textEncoder.forward(i.input_ids!, i.attention_mask!);
        const xt = qSample(tables, i.x0!, i.noise!, i.t!);
        let sample = xt;
        let classLabels: Tensor | undefined;
        if (this.sr) {
          const [, , h, w] = i.x0!.shape as number[];
          const [, , lh, lw] = i.low_res!.shape as number[];
          // Crop-trained stages get the low-res image already upsampled (and cropped) by the data.
          const up = lh === h && lw === w ? i.low_res! : F.resizeBilinear(i.low_res!, h!, w!, true);
          sample = F.concat([xt, qSample(noisingTables!, up, i.aug_noise!, i.aug_t!)], 1);
          classLabels = i.aug_t!;
        }
        const out = unet.forward({ sample, timestep: i.t!, encoderHiddenStates: ctx, classLabels });
        return diffusionLoss(tables, out, i.x0!, xt, i.noise!, i.t!, {
          // What the network predicts is the scheduler's choice, so sampling reads it from the same file.
          predictionType: schedule.config.predictionType,
          learnedVariance: learned,
          snrGamma: hp.snrGamma ?? undefined,
          highNoiseWeightCap: hp.highNoiseWeightCap ?? undefined,
          pixelWeight: this.weighted ? i.loss_weight : undefined,
        });
      },
      this.params,
      { name: 'train_step' },
    );
  }

  private clean(c: string): string {
    let v = this.cleaned.get(c);
    if (v === undefined) {
      v = textPreprocessing(c, true);
      this.cleaned.set(c, v);
    }
    return v;
  }

  lrAt(step: number): number {
    const o = { warmupSteps: this.hp.warmupSteps, totalSteps: this.hp.maxSteps };
    const m = this.hp.lrSchedule === 'cosine' ? cosineWithWarmup(step, o) : constantWithWarmup(step, o);
    return this.hp.learningRate * m;
  }

  private randInts(n: number, max: number): NDArray {
    const v: number[] = [];
    for (let i = 0; i < n; i++) v.push(Math.min(max - 1, Math.floor(this.generator.uniform() * max)));
    return NDArray.i64([n], v);
  }

  /** One optimisation step. Throws (leaving the weights untouched) when the loss is not finite. */
  async trainStep(input: Batch): Promise<StepStats> {
    const b = input.images.shape[0]!;
    const g = this.generator;
    const batch = colorAugment(input, this.hp.colorAugmentProb, g);
    // Draw order is fixed: it is part of what makes resumed runs bit-identical.
    // The same IF caption cleaning the generate path applies, so training and sampling see one text.
    const captions = batch.captions.map((c) => (g.uniform() < this.hp.captionDropout ? '' : this.clean(c)));
    const t = this.randInts(b, this.parts.schedule.numTrainTimesteps);
    const noise = g.randnNDArray(batch.images.shape);
    const enc = this.parts.tokenizer.encodeBatch(captions, {
      maxLength: this.hp.maxTextLength,
      padding: 'max_length',
      truncation: true,
    });
    const feeds: Record<string, NDArray> = {
      x0: batch.images,
      noise,
      t,
      input_ids: enc.inputIds,
      attention_mask: enc.attentionMask,
    };
    if (this.weighted) {
      const [, , h, w] = batch.images.shape as number[];
      const boxes = batch.textBoxes ?? batch.captions.map(() => []);
      feeds.loss_weight = textRegionWeights(boxes, h!, w!, this.hp.textLossWeight);
    }
    if (this.sr) {
      if (!batch.lowRes) throw new ImagenError('BAD_INPUT', 'super-resolution training needs low-res images');
      feeds.low_res = batch.lowRes;
      feeds.aug_t = this.randInts(b, Math.max(1, this.hp.maxAugLevel));
      feeds.aug_noise = g.randnNDArray(batch.images.shape);
    }
    const r = await this.gradFn.run(feeds);
    const gradNorm = clipGradNorm(r.grads, this.hp.maxGradNorm);
    if (!Number.isFinite(r.loss) || !Number.isFinite(gradNorm)) {
      throw new ImagenError(
        'RUNTIME_FAILED',
        `loss became non-finite (loss ${r.loss}, gradient norm ${gradNorm}) at step ${this.step + 1}`,
      );
    }
    const lr = this.lrAt(this.step);
    this.optimizer.lr = lr;
    this.optimizer.step(r.grads);
    this.ema.update();
    this.step++;
    return { step: this.step, loss: r.loss, gradNorm, lr };
  }

  release(): Promise<void> {
    return this.gradFn.release();
  }
}
