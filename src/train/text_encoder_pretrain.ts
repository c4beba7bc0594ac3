import {
  captionParseTargets,
  PARSE_HEAD_NAMES,
  PARSE_HEADS,
  type ParseHead,
} from '../data/synth/parse_targets.js';
import type { Scene } from '../data/synth/scene.js';
import { ImagenError } from '../engine/errors.js';
import type { Tensor } from '../engine/graph.js';
import { NDArray } from '../engine/ndarray.js';
import * as F from '../engine/ops/index.js';
import type { Parameter } from '../engine/parameter.js';
import type { GradFunction, Runtime } from '../engine/runtime.js';
import type { T5Encoder } from '../models/t5/t5_encoder.js';
import { Linear } from '../nn/layers.js';
import { logSoftmax } from '../nn/losses.js';
import { textPreprocessing } from '../text/clean_caption.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { cosineWithWarmup } from './lr.js';
import { AdamW, clipGradNorm } from './optim.js';

/** One caption with its scene, tokenised and labelled per token (see parse_targets.ts). */
export interface ParsedCaption {
  ids: number[];
  /** Per token: class per head, or undefined outside noun phrases. */
  targets: (Record<ParseHead, number> | undefined)[];
}

/**
 * Tokenise a caption the way the diffusion trainer does (IF caption cleaning, then the tokenizer)
 * and carry each word's labels onto its tokens. Words are encoded one at a time; when that does
 * not reproduce the tokenizer's encoding of the whole caption (a tokenizer that merges across
 * spaces) the caption is skipped: undefined.
 */
export function parseCaption(
  tokenizer: TextTokenizer,
  caption: string,
  scene: Scene,
  maxLength: number,
): ParsedCaption | undefined {
  const clean = textPreprocessing(caption, true);
  const parsed = captionParseTargets(clean, scene);
  if (!parsed) return undefined;
  const ids: number[] = [];
  const targets: ParsedCaption['targets'] = [];
  for (const [w, word] of parsed.words.entries()) {
    for (const id of tokenizer.encode(word, false)) {
      ids.push(id);
      targets.push(parsed.targets[w]);
    }
  }
  const whole = tokenizer.encode(clean, true);
  const eos = whole[whole.length - 1] === tokenizer.eosId;
  if (whole.length - (eos ? 1 : 0) !== ids.length || ids.some((id, k) => whole[k] !== id)) return undefined;
  if (eos) {
    ids.push(tokenizer.eosId);
    targets.push(undefined);
  }
  if (ids.length > maxLength) return undefined;
  return { ids, targets };
}

export interface TextPretrainHyperparameters {
  batchSize: number;
  learningRate: number;
  warmupSteps: number;
  maxSteps: number;
  maxTextLength: number;
  maxGradNorm: number;
}

export interface ParseAccuracy {
  /** Share of labelled tokens whose class each head predicts right. */
  perHead: Record<ParseHead, number>;
  /** Share of all real tokens whose own id the identity head predicts. */
  identity: number;
  tokens: number;
}

/**
 * Pretrains a T5 encoder on captions alone: from each token's output vector, linear heads predict
 * the attributes of the noun phrase it belongs to (place, colour, shape, count, size), and one more
 * head predicts the token itself, so what the encoder already carries (a sign's word, say) stays
 * readable. The heads are thrown away afterwards; the encoder is then used frozen, as Imagen uses T5.
 */
export class TextEncoderPretrainer {
  readonly heads: Record<ParseHead | 'identity', Linear>;
  readonly optimizer: AdamW;
  readonly params: Parameter[];
  step = 0;
  private readonly gradFn: GradFunction;
  private evalFn: GradFunction | undefined;

  constructor(
    private readonly rt: Runtime,
    readonly encoder: T5Encoder,
    readonly tokenizer: TextTokenizer,
    readonly hp: TextPretrainHyperparameters,
    seed = 0,
  ) {
    const d = encoder.config.dModel;
    const heads = {} as Record<ParseHead | 'identity', Linear>;
    for (const h of PARSE_HEAD_NAMES) heads[h] = new Linear(`parse_heads.${h}`, d, PARSE_HEADS[h]);
    heads.identity = new Linear('parse_heads.identity', d, tokenizer.vocabSize);
    for (const h of Object.values(heads)) h.initialize(seed);
    this.heads = heads;
    for (const p of encoder.parameters()) p.requiresGrad = true;
    this.params = [...encoder.parameters(), ...Object.values(heads).flatMap((h) => h.parameters())];
    this.optimizer = new AdamW(this.params, { lr: hp.learningRate, weightDecay: 0 });
    this.gradFn = rt.compileGrad((i) => this.lossGraph(i).loss, this.params, { name: 'text_pretrain_step' });
  }

  /** Σ over heads of the weighted token cross-entropies; weights already hold the 1/N. */
  private lossGraph(i: Record<string, Tensor>): { loss: Tensor; logits: Record<string, Tensor> } {
    const h = this.encoder.forward(i.input_ids!, i.attention_mask!);
    let loss: Tensor | undefined;
    const logits: Record<string, Tensor> = {};
    for (const [name, head] of Object.entries(this.heads)) {
      const z = head.forward(h);
      logits[name] = z;
      const nll = F.neg(F.reduceSum(F.mul(logSoftmax(z, -1), i[`${name}_target`]!), [-1]));
      const term = F.reduceSum(F.mul(nll, i[`${name}_weight`]!));
      loss = loss ? F.add(loss, term) : term;
    }
    return { loss: loss!, logits };
  }

  /** Fixed-shape feeds: ids padded to maxTextLength, one-hot targets and per-token weights. */
  feeds(batch: readonly ParsedCaption[]): Record<string, NDArray> {
    const b = batch.length;
    const L = this.hp.maxTextLength;
    const ids = new Array<number>(b * L).fill(this.tokenizer.padId);
    const mask = new Array<number>(b * L).fill(0);
    const out: Record<string, NDArray> = {};
    const names = [...PARSE_HEAD_NAMES, 'identity'] as const;
    const sizes: Record<string, number> = { ...PARSE_HEADS, identity: this.tokenizer.vocabSize };
    const onehot: Record<string, Float32Array> = {};
    const weight: Record<string, Float32Array> = {};
    for (const n of names) {
      onehot[n] = new Float32Array(b * L * sizes[n]!);
      weight[n] = new Float32Array(b * L);
    }
    let labelled = 0;
    let real = 0;
    for (const c of batch) {
      real += c.ids.length;
      labelled += c.targets.filter(Boolean).length;
    }
    for (const [r, c] of batch.entries()) {
      for (const [k, id] of c.ids.entries()) {
        const at = r * L + k;
        ids[at] = id;
        mask[at] = 1;
        onehot.identity![at * sizes.identity! + id] = 1;
        weight.identity![at] = 1 / real;
        const t = c.targets[k];
        if (!t) continue;
        for (const n of PARSE_HEAD_NAMES) {
          onehot[n]![at * sizes[n]! + t[n]] = 1;
          weight[n]![at] = 1 / labelled;
        }
      }
    }
    out.input_ids = NDArray.i64([b, L], ids);
    out.attention_mask = NDArray.i64([b, L], mask);
    for (const n of names) {
      out[`${n}_target`] = new NDArray('float32', [b, L, sizes[n]!], onehot[n]!);
      out[`${n}_weight`] = new NDArray('float32', [b, L], weight[n]!);
    }
    return out;
  }

  async trainStep(batch: readonly ParsedCaption[]): Promise<{ step: number; loss: number; lr: number }> {
    if (batch.length !== this.hp.batchSize)
      throw new ImagenError('BAD_INPUT', `batch of ${batch.length}, expected ${this.hp.batchSize}`);
    const r = await this.gradFn.run(this.feeds(batch));
    const gradNorm = clipGradNorm(r.grads, this.hp.maxGradNorm);
    if (!Number.isFinite(r.loss) || !Number.isFinite(gradNorm))
      throw new ImagenError('RUNTIME_FAILED', `loss became non-finite at step ${this.step + 1}`);
    const lr =
      this.hp.learningRate *
      cosineWithWarmup(this.step, { warmupSteps: this.hp.warmupSteps, totalSteps: this.hp.maxSteps });
    this.optimizer.lr = lr;
    this.optimizer.step(r.grads);
    this.step++;
    return { step: this.step, loss: r.loss, lr };
  }

  /** Head accuracies on captions the encoder did not train on (batches of `batchSize`). */
  async accuracy(captions: readonly ParsedCaption[]): Promise<ParseAccuracy> {
    this.evalFn ??= this.rt.compileGrad(
      (i) => {
        const { loss, logits } = this.lossGraph(i);
        return { loss, ...logits };
      },
      [],
      { name: 'text_pretrain_eval' },
    );
    const right: Record<string, number> = {};
    let labelled = 0;
    let real = 0;
    const bs = this.hp.batchSize;
    for (let s = 0; s + bs <= captions.length; s += bs) {
      const batch = captions.slice(s, s + bs);
      const r = await this.evalFn.run(this.feeds(batch));
      for (const [row, c] of batch.entries()) {
        for (const [k, id] of c.ids.entries()) {
          const at = row * this.hp.maxTextLength + k;
          real++;
          if (argmaxAt(r.outputs.identity!, at) === id) right.identity = (right.identity ?? 0) + 1;
          const t = c.targets[k];
          if (!t) continue;
          labelled++;
          for (const n of PARSE_HEAD_NAMES)
            if (argmaxAt(r.outputs[n]!, at) === t[n]) right[n] = (right[n] ?? 0) + 1;
        }
      }
    }
    if (real === 0) throw new ImagenError('BAD_INPUT', `accuracy needs at least ${bs} captions`);
    const perHead = {} as Record<ParseHead, number>;
    for (const n of PARSE_HEAD_NAMES) perHead[n] = labelled ? (right[n] ?? 0) / labelled : 0;
    return { perHead, identity: (right.identity ?? 0) / real, tokens: labelled };
  }

  release(): Promise<void> {
    return Promise.all([this.gradFn.release(), this.evalFn?.release()]).then(() => undefined);
  }
}

/** Index of the largest logit of token `at` in logits [B, L, K]. */
function argmaxAt(logits: NDArray, at: number): number {
  const k = logits.shape[logits.shape.length - 1]!;
  const d = logits.toFloat32().data as Float32Array;
  let best = 0;
  for (let c = 1; c < k; c++) if (d[at * k + c]! > d[at * k + best]!) best = c;
  return best;
}
