import type { Schedule } from '../diffusion/schedule.js';
import type { Tensor } from '../engine/graph.js';
import { NDArray } from '../engine/ndarray.js';
import * as F from '../engine/ops/index.js';

/**
 * Per-timestep constants of the forward process and the DDPM posterior q(x_{t−1} | x_t, x0),
 * in float64 then rounded once (improved-diffusion keeps them in float64).
 */
export function diffusionTables(s: Schedule) {
  const n = s.numTrainTimesteps;
  // ᾱ is re-accumulated in float64 from the betas, as improved-diffusion does: the schedule's
  // float32 ᾱ (diffusers' sampling arithmetic) leaves 1 − ᾱ_t with ~5e-4 relative error at
  // small t, and every posterior constant divides by it.
  const ab = new Float64Array(n);
  for (let t = 0, p = 1; t < n; t++) {
    p *= 1 - s.betas[t]!;
    ab[t] = p;
  }
  const f32 = (fn: (t: number) => number) =>
    NDArray.f32(
      [n],
      Array.from({ length: n }, (_, t) => fn(t)),
    );
  const abPrev = (t: number) => (t === 0 ? 1 : ab[t - 1]!);
  const beta = (t: number) => s.betas[t]!;
  const postVar = (t: number) => (beta(t) * (1 - abPrev(t))) / (1 - ab[t]!);
  return {
    sqrtAlphasCumprod: f32((t) => Math.sqrt(ab[t]!)),
    sqrtOneMinusAlphasCumprod: f32((t) => Math.sqrt(1 - ab[t]!)),
    // log of the posterior variance, clipped at t = 0 (where it is 0) to the value at t = 1.
    posteriorLogVarianceClipped: f32((t) => Math.log(t === 0 ? postVar(1) : postVar(t))),
    logBetas: f32((t) => Math.log(beta(t))),
    posteriorMeanCoef1: f32((t) => (beta(t) * Math.sqrt(abPrev(t))) / (1 - ab[t]!)),
    posteriorMeanCoef2: f32((t) => ((1 - abPrev(t)) * Math.sqrt(1 - beta(t))) / (1 - ab[t]!)),
    snr: f32((t) => ab[t]! / (1 - ab[t]!)),
  };
}

export type DiffusionTables = ReturnType<typeof diffusionTables>;

/** table[t] per batch item, shaped [B, 1, 1, 1] for broadcasting over images. */
export function extract(table: NDArray, t: Tensor): Tensor {
  const v = F.gather(t.trace.constant(table.reshape([table.size, 1])), t);
  return F.reshape(v, [t.shape[0]!, 1, 1, 1]);
}

/** x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε (the forward process q(x_t | x0), DDPM eq. 4). */
export function qSample(tables: DiffusionTables, x0: Tensor, noise: Tensor, t: Tensor): Tensor {
  return F.add(
    F.mul(extract(tables.sqrtAlphasCumprod, t), x0),
    F.mul(extract(tables.sqrtOneMinusAlphasCumprod, t), noise),
  );
}

const LN2 = Math.LN2;

function meanOverNonBatch(x: Tensor): Tensor {
  return F.reduceMean(x, [...Array(x.rank).keys()].slice(1));
}

/** KL(N(m1, e^lv1) ‖ N(m2, e^lv2)) elementwise, in nats. */
function normalKl(m1: Tensor, lv1: Tensor, m2: Tensor, lv2: Tensor): Tensor {
  const d = F.sub(m1, m2);
  return F.mul(
    F.add(F.sub(F.add(F.sub(lv2, lv1), F.exp(F.sub(lv1, lv2))), 1), F.mul(F.mul(d, d), F.exp(F.neg(lv2)))),
    0.5,
  );
}

/** Φ(x) with GELU's tanh approximation (improved-diffusion `approx_standard_normal_cdf`). */
function approxStandardNormalCdf(x: Tensor): Tensor {
  return F.mul(
    F.add(F.tanh(F.mul(F.add(x, F.mul(F.mul(F.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI))), 1),
    0.5,
  );
}

/** log-likelihood of 8-bit data x ∈ [−1, 1] under a discretised Gaussian (the t = 0 decoder term). */
function discretizedGaussianLogLikelihood(x: Tensor, mean: Tensor, logScale: Tensor): Tensor {
  const c = F.sub(x, mean);
  const invStd = F.exp(F.neg(logScale));
  const cdfPlus = approxStandardNormalCdf(F.mul(invStd, F.add(c, 1 / 255)));
  const cdfMin = approxStandardNormalCdf(F.mul(invStd, F.sub(c, 1 / 255)));
  const logCdfPlus = F.log(F.maximum(cdfPlus, 1e-12));
  const logOneMinusCdfMin = F.log(F.maximum(F.sub(1, cdfMin), 1e-12));
  const logDelta = F.log(F.maximum(F.sub(cdfPlus, cdfMin), 1e-12));
  return F.where(F.less(x, -0.999), logCdfPlus, F.where(F.greater(x, 0.999), logOneMinusCdfMin, logDelta));
}

export interface DiffusionLossOptions {
  predictionType: 'epsilon' | 'v_prediction' | 'sample';
  /** Add the variational-bound term that trains learned-range variances (improved DDPM §3.1). */
  learnedVariance: boolean;
  /** Min-SNR-γ loss weighting (Hang et al. 2023); undefined = plain MSE. */
  snrGamma?: number;
  /**
   * Weight each example so its x0 error counts as in v-prediction's objective (SNR + 1), at most
   * this many times its plain weight. ε-prediction weighs x0 errors by SNR, which all but silences
   * the high-noise steps where layout is decided (SNR ≈ 0); v-prediction models are untouched.
   * undefined = plain MSE.
   */
  highNoiseWeightCap?: number;
  /** Per-pixel weights [B, 1, H, W] on the squared error (text_region.ts); undefined = uniform. */
  pixelWeight?: Tensor;
}

/**
 * The training objective on one batch: MSE on the predicted ε (or v / x0), plus, for
 * learned-range variance, L_vlb in bits/dim with a stop-gradient on the mean (the "hybrid"
 * loss of improved DDPM that IF was trained with). `modelOut` is the UNet output [B, C or 2C, H, W].
 */
export function diffusionLoss(
  tables: DiffusionTables,
  modelOut: Tensor,
  x0: Tensor,
  xt: Tensor,
  noise: Tensor,
  t: Tensor,
  o: DiffusionLossOptions,
): Tensor {
  const c = x0.shape[1]!;
  const pred = F.narrow(modelOut, 1, 0, c);
  const sa = extract(tables.sqrtAlphasCumprod, t);
  const sb = extract(tables.sqrtOneMinusAlphasCumprod, t);
  const target =
    o.predictionType === 'epsilon'
      ? noise
      : o.predictionType === 'sample'
        ? x0
        : F.sub(F.mul(sa, noise), F.mul(sb, x0));
  const d = F.sub(pred, target);
  const d2 = F.mul(d, d);
  let mse = meanOverNonBatch(o.pixelWeight ? F.mul(d2, o.pixelWeight) : d2); // [B]
  const cap = o.predictionType === 'v_prediction' ? undefined : o.highNoiseWeightCap;
  // One SNR lookup in the graph, shared by both weightings.
  const snr =
    o.snrGamma !== undefined || cap !== undefined ? F.reshape(extract(tables.snr, t), [-1]) : undefined;
  if (o.snrGamma !== undefined && snr) {
    const clipped = F.minimum(snr, o.snrGamma);
    // Min-SNR weights relative to each parameterisation's implicit weighting.
    const w =
      o.predictionType === 'epsilon'
        ? F.div(clipped, snr)
        : o.predictionType === 'v_prediction'
          ? F.div(clipped, F.add(snr, 1))
          : clipped;
    mse = F.mul(mse, w);
  }
  if (cap !== undefined && snr) {
    const toV = o.predictionType === 'epsilon' ? F.div(F.add(snr, 1), snr) : F.add(snr, 1);
    mse = F.mul(mse, F.minimum(toV, cap));
  }
  let loss = F.reduceMean(mse);
  if (o.learnedVariance) {
    const v = F.narrow(modelOut, 1, c, c);
    // Only the variance learns from L_vlb: the mean sees it through a stop-gradient.
    const eps = F.detach(
      o.predictionType === 'epsilon'
        ? pred
        : o.predictionType === 'v_prediction'
          ? F.add(F.mul(sa, pred), F.mul(sb, xt))
          : F.div(F.sub(xt, F.mul(sa, pred)), sb),
    );
    const x0Pred = F.div(F.sub(xt, F.mul(sb, eps)), sa);
    const coef1 = extract(tables.posteriorMeanCoef1, t);
    const coef2 = extract(tables.posteriorMeanCoef2, t);
    const modelMean = F.add(F.mul(coef1, x0Pred), F.mul(coef2, xt));
    const trueMean = F.add(F.mul(coef1, x0), F.mul(coef2, xt));
    const minLog = extract(tables.posteriorLogVarianceClipped, t);
    const maxLog = extract(tables.logBetas, t);
    const frac = F.mul(F.add(v, 1), 0.5);
    const modelLogVar = F.add(F.mul(frac, maxLog), F.mul(F.sub(1, frac), minLog));
    const kl = F.div(meanOverNonBatch(normalKl(trueMean, minLog, modelMean, modelLogVar)), LN2);
    const nll = F.div(
      meanOverNonBatch(F.neg(discretizedGaussianLogLikelihood(x0, modelMean, F.mul(modelLogVar, 0.5)))),
      LN2,
    );
    const vb = F.where(F.equal(t, t.trace.scalar(0, 'int64')), nll, kl);
    // improved-diffusion scales L_vlb by T/1000 in the hybrid loss.
    loss = F.add(loss, F.mul(F.reduceMean(vb), tables.sqrtAlphasCumprod.size / 1000));
  }
  return loss;
}
