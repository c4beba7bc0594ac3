/**
 * The training objective against an independent float64 re-implementation of improved-diffusion's
 * hybrid loss (openai/improved-diffusion, gaussian_diffusion.py `training_losses` with
 * LossType.RESCALED_MSE + ModelVarType.LEARNED_RANGE, `_vb_terms_bpd`; losses.py `normal_kl`,
 * `discretized_gaussian_log_likelihood`):
 *
 *   loss = mean_b [ w_b · mean(‖pred − target‖²) + vb_b · T/1000 ]
 *   vb_b = t_b = 0 ? −log p(x0 | x1) (discretised Gaussian decoder) : KL(q(x_{t−1}|x_t,x0) ‖ p(x_{t−1}|x_t)),
 *          in bits per dim, with the model mean computed from a stop-gradient copy of the prediction.
 *
 * The reference derives everything its own way (tables from the betas, x̂0 from ε with
 * improved-diffusion's sqrt_recip/sqrt_recipm1 form and from v directly) and runs in float64;
 * our loss is traced and executed by ONNX Runtime in float32.
 */
import { describe, expect, it } from 'vitest';
import { makeSchedule, parseSchedulerConfig, type Schedule } from '../../src/diffusion/schedule.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { Parameter } from '../../src/engine/parameter.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { diffusionLoss, diffusionTables, qSample } from '../../src/train/diffusion_loss.js';
import { rng } from '../helpers/random.js';

const rt = createRuntime({ threads: 1 });

// ------------------------------------------------------------------ float64 reference

/** improved-diffusion's GaussianDiffusion.__init__ tables, float64 from the (float32) betas. */
function refTables(betas: Float32Array) {
  const n = betas.length;
  const b = Array.from(betas, Number);
  const ab: number[] = [];
  let p = 1;
  for (const x of b) {
    p *= 1 - x;
    ab.push(p);
  }
  const abPrev = [1, ...ab.slice(0, -1)];
  const postVar = b.map((x, t) => (x * (1 - abPrev[t]!)) / (1 - ab[t]!));
  return {
    n,
    betas: b,
    ab,
    sqrtAb: ab.map(Math.sqrt),
    sqrt1mAb: ab.map((a) => Math.sqrt(1 - a)),
    sqrtRecipAb: ab.map((a) => Math.sqrt(1 / a)),
    sqrtRecipm1Ab: ab.map((a) => Math.sqrt(1 / a - 1)),
    // np.log(np.append(posterior_variance[1], posterior_variance[1:]))
    postLogVarClipped: postVar.map((v, t) => Math.log(t === 0 ? postVar[1]! : v)),
    coef1: b.map((x, t) => (x * Math.sqrt(abPrev[t]!)) / (1 - ab[t]!)),
    coef2: b.map((x, t) => ((1 - abPrev[t]!) * Math.sqrt(1 - x)) / (1 - ab[t]!)),
  };
}
type RefTables = ReturnType<typeof refTables>;

function normalKl(m1: number, lv1: number, m2: number, lv2: number): number {
  return 0.5 * (-1 + lv2 - lv1 + Math.exp(lv1 - lv2) + (m1 - m2) ** 2 * Math.exp(-lv2));
}

function approxCdf(x: number): number {
  return 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

function discretizedGaussianLogLikelihood(x: number, mean: number, logScale: number): number {
  const c = x - mean;
  const inv = Math.exp(-logScale);
  const cdfPlus = approxCdf(inv * (c + 1 / 255));
  const cdfMin = approxCdf(inv * (c - 1 / 255));
  if (x < -0.999) return Math.log(Math.max(cdfPlus, 1e-12));
  if (x > 0.999) return Math.log(Math.max(1 - cdfMin, 1e-12));
  return Math.log(Math.max(cdfPlus - cdfMin, 1e-12));
}

type Pred = 'epsilon' | 'v_prediction' | 'sample';

interface Case {
  b: number;
  c: number;
  hw: number;
  modelOut: Float64Array; // [B, 2C, H, W]
  x0: Float64Array; // [B, C, H, W]
  noise: Float64Array;
  xt: Float64Array; // float32-rounded, fed to both implementations
  t: number[];
}

/** Per-item (mse·w, vb) and the total, exactly as improved-diffusion composes them. */
function referenceLoss(
  tb: RefTables,
  k: Case,
  pred: Pred,
  snrGamma?: number,
  klAtZero = false,
  highNoiseCap?: number,
) {
  const { b, c, hw } = k;
  const per = c * hw;
  const mse: number[] = [];
  const vb: number[] = [];
  for (let i = 0; i < b; i++) {
    const t = k.t[i]!;
    const sa = tb.sqrtAb[t]!;
    const sb = tb.sqrt1mAb[t]!;
    const maxLog = Math.log(tb.betas[t]!);
    const minLog = tb.postLogVarClipped[t]!;
    let sq = 0;
    let kl = 0;
    let nll = 0;
    for (let j = 0; j < per; j++) {
      const e = i * per + j;
      const ch = Math.floor(j / hw);
      const out = k.modelOut[(i * 2 * c + ch) * hw + (j % hw)]!;
      const v = k.modelOut[(i * 2 * c + c + ch) * hw + (j % hw)]!;
      const x0 = k.x0[e]!;
      const xt = k.xt[e]!;
      const noise = k.noise[e]!;
      const target = pred === 'epsilon' ? noise : pred === 'sample' ? x0 : sa * noise - sb * x0;
      sq += (out - target) ** 2;
      // p_mean_variance with clip_denoised=False on the frozen (detached) mean output.
      const x0Hat =
        pred === 'epsilon'
          ? tb.sqrtRecipAb[t]! * xt - tb.sqrtRecipm1Ab[t]! * out // _predict_xstart_from_eps
          : pred === 'sample'
            ? out
            : sa * xt - sb * out; // x0 from v directly
      const modelMean = tb.coef1[t]! * x0Hat + tb.coef2[t]! * xt;
      const frac = (v + 1) / 2;
      const modelLogVar = frac * maxLog + (1 - frac) * minLog;
      const trueMean = tb.coef1[t]! * x0 + tb.coef2[t]! * xt;
      kl += normalKl(trueMean, minLog, modelMean, modelLogVar);
      nll -= discretizedGaussianLogLikelihood(x0, modelMean, 0.5 * modelLogVar);
    }
    let w = 1;
    if (snrGamma !== undefined) {
      // Min-SNR-γ (Hang et al. 2023, as in diffusers' train_text_to_image): min(SNR, γ) divided
      // by the weight each parameterisation already carries (ε: SNR, v: SNR + 1, x0: 1).
      const snr = tb.ab[t]! / (1 - tb.ab[t]!);
      const m = Math.min(snr, snrGamma);
      w = pred === 'epsilon' ? m / snr : pred === 'v_prediction' ? m / (snr + 1) : m;
    }
    if (highNoiseCap !== undefined) {
      // x0 errors weighted as in v-prediction (SNR + 1): for ε that is 1/ᾱ_t times ε's own weight.
      const toV = pred === 'epsilon' ? 1 / tb.ab[t]! : pred === 'sample' ? 1 / (1 - tb.ab[t]!) : 1;
      w *= Math.min(toV, highNoiseCap);
    }
    mse.push((sq / per) * w);
    vb.push(((t === 0 && !klAtZero ? nll : kl) / per / Math.LN2) * (tb.n / 1000)); // RESCALED_MSE: ×T/1000
  }
  const loss = mse.reduce((s, x, i) => s + x + vb[i]!, 0) / b;
  return { loss, mse, vb };
}

// ------------------------------------------------------------------ test data

function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/**
 * A small batch with a t = 0 row. x0 is 8-bit data in [−1, 1] including both edge values (the
 * decoder's special cases). At t = 0 the prediction is kept near the truth, as a trained model's
 * is there, so the decoder likelihood sits in its informative range rather than in the far tails
 * (where Φ(a) − Φ(b) cancels in float32 for any implementation, PyTorch's included).
 */
function makeCase(tb: RefTables, pred: Pred, seed: number): Case {
  const r = rng(seed);
  const b = 4;
  const c = 3;
  const hw = 4 * 4;
  const t = [0, 1, 437, tb.n - 1];
  const n = b * c * hw;
  const x0 = new Float64Array(n);
  const noise = new Float64Array(n);
  const xt = new Float64Array(n);
  for (let e = 0; e < n; e++) {
    x0[e] = e % 17 === 0 ? -1 : e % 19 === 0 ? 1 : Math.round(r() * 255) / 127.5 - 1;
    noise[e] = Math.fround(gauss(r));
    const i = Math.floor(e / (c * hw));
    xt[e] = Math.fround(tb.sqrtAb[t[i]!]! * x0[e]! + tb.sqrt1mAb[t[i]!]! * noise[e]!);
  }
  const modelOut = new Float64Array(b * 2 * c * hw);
  for (let i = 0; i < b; i++) {
    const ti = t[i]!;
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < hw; p++) {
        const e = (i * c + ch) * hw + p;
        const sa = tb.sqrtAb[ti]!;
        const sb = tb.sqrt1mAb[ti]!;
        const truth =
          pred === 'epsilon' ? noise[e]! : pred === 'sample' ? x0[e]! : sa * noise[e]! - sb * x0[e]!;
        // An x0 prediction at t = 0 is in image units: 0.1 in ε units is (√(1−ᾱ)/√ᾱ)·0.1 there.
        const near = pred === 'sample' ? (0.1 * sb) / sa : 0.1;
        const guess = ti === 0 ? truth + near * gauss(r) : gauss(r);
        modelOut[(i * 2 * c + ch) * hw + p] = Math.fround(guess);
        modelOut[(i * 2 * c + c + ch) * hw + p] = Math.fround(2 * r() - 1); // variance interpolation
      }
    }
  }
  return { b, c, hw, modelOut, x0, noise, xt, t };
}

function feeds(k: Case) {
  const img = [k.b, k.c, 4, 4];
  return {
    out: NDArray.f32([k.b, 2 * k.c, 4, 4], k.modelOut),
    x0: NDArray.f32(img, k.x0),
    xt: NDArray.f32(img, k.xt),
    noise: NDArray.f32(img, k.noise),
    t: NDArray.i64([k.b], k.t),
  };
}

function schedule(betaSchedule: string): Schedule {
  return makeSchedule(parseSchedulerConfig({ beta_schedule: betaSchedule, num_train_timesteps: 1000 }));
}

// ------------------------------------------------------------------ tests

describe('diffusionTables', () => {
  for (const bs of ['squaredcos_cap_v2', 'linear']) {
    it(`${bs}: every table equals its float64 formula, rounded once to float32`, () => {
      const s = schedule(bs);
      const ref = refTables(s.betas);
      const tables = diffusionTables(s);
      const ab = ref.ab;
      const abPrev = (t: number) => (t === 0 ? 1 : ab[t - 1]!);
      const postVar = (t: number) => (ref.betas[t]! * (1 - abPrev(t))) / (1 - ab[t]!);
      const expected: Record<keyof typeof tables, (t: number) => number> = {
        sqrtAlphasCumprod: (t) => Math.sqrt(ab[t]!),
        sqrtOneMinusAlphasCumprod: (t) => Math.sqrt(1 - ab[t]!),
        posteriorLogVarianceClipped: (t) => Math.log(postVar(t === 0 ? 1 : t)),
        logBetas: (t) => Math.log(ref.betas[t]!),
        posteriorMeanCoef1: (t) => (ref.betas[t]! * Math.sqrt(abPrev(t))) / (1 - ab[t]!),
        posteriorMeanCoef2: (t) => ((1 - abPrev(t)) * Math.sqrt(1 - ref.betas[t]!)) / (1 - ab[t]!),
        snr: (t) => ab[t]! / (1 - ab[t]!),
      };
      for (const [name, f] of Object.entries(expected)) {
        const got = (tables as Record<string, NDArray>)[name]!.data as Float32Array;
        expect(got.length).toBe(1000);
        let worst = 0;
        let at = -1;
        for (let t = 0; t < 1000; t++) {
          const e = f(t);
          const rel = Math.abs(got[t]! - e) / Math.abs(e);
          if (rel > worst) [worst, at] = [rel, t];
        }
        // One float32 rounding is ≤ 6e-8 relative. (Accumulating ᾱ in float32 instead gave 5e-4
        // at t = 0, where 1 − ᾱ is tiny and every posterior constant divides by it.)
        expect(worst, `${name} at t=${at}`).toBeLessThan(1.2e-7);
      }
      // Closed forms that hold exactly: at t = 0 the posterior mean is x0 itself.
      expect(tables.posteriorMeanCoef1.data[0]).toBeCloseTo(1, 6);
      expect(tables.posteriorMeanCoef2.data[0]).toBe(0);
    });
  }

  it('squaredcos_cap_v2 betas follow the cosine ᾱ(t) of improved DDPM, capped at 0.999', () => {
    const s = schedule('squaredcos_cap_v2');
    const alphaBar = (x: number) => Math.cos(((x + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    const logBetas = diffusionTables(s).logBetas.data as Float32Array;
    let worst = 0;
    for (let t = 0; t < 1000; t++) {
      const beta = Math.min(1 - alphaBar((t + 1) / 1000) / alphaBar(t / 1000), 0.999);
      // β is stored in float32 (6e-8 relative) and its log rounded to float32 again.
      const lb = Math.log(beta);
      worst = Math.max(worst, Math.abs(logBetas[t]! - lb) / (1 + Math.abs(lb)));
    }
    expect(worst).toBeLessThan(1.5e-7);
  });

  it('qSample is √ᾱ·x0 + √(1−ᾱ)·ε per batch item', async () => {
    const s = schedule('squaredcos_cap_v2');
    const ref = refTables(s.betas);
    const tables = diffusionTables(s);
    const k = makeCase(ref, 'epsilon', 3);
    const f = rt.compile((i) => qSample(tables, i.x0!, i.noise!, i.t!));
    const { x0, noise, t } = feeds(k);
    const got = (await f.run({ x0, noise, t })).output!.data as Float32Array;
    await f.release();
    for (let e = 0; e < got.length; e++) expect(got[e]).toBeCloseTo(k.xt[e]!, 6);
  });
});

describe('diffusionLoss matches improved-diffusion’s hybrid loss (float64 reference)', () => {
  const s = schedule('squaredcos_cap_v2');
  const ref = refTables(s.betas);
  const tables = diffusionTables(s);

  const cases: { pred: Pred; snrGamma?: number; cap?: number }[] = [
    { pred: 'epsilon' },
    { pred: 'epsilon', snrGamma: 5 },
    { pred: 'epsilon', cap: 20 },
    { pred: 'v_prediction' },
    { pred: 'v_prediction', snrGamma: 5 },
    { pred: 'v_prediction', cap: 20 },
    { pred: 'sample' },
    { pred: 'sample', cap: 20 },
  ];
  for (const { pred, snrGamma, cap } of cases) {
    it(`${pred}${snrGamma ? `, Min-SNR γ=${snrGamma}` : ''}${cap ? `, high-noise weight cap ${cap}` : ''}`, async () => {
      const k = makeCase(ref, pred, pred.length + (snrGamma ?? 0));
      const want = referenceLoss(ref, k, pred, snrGamma, false, cap);
      if (cap && pred !== 'v_prediction') {
        // The weighting changes this case's loss well beyond the tolerance (so it is tested).
        const plain = referenceLoss(ref, k, pred, snrGamma).mse.reduce((a, x) => a + x, 0);
        expect(Math.abs(want.mse.reduce((a, x) => a + x, 0) - plain) / plain).toBeGreaterThan(0.05);
      }
      // Each part of the reference matters at this scale (so a dropped term cannot pass).
      // (At t = 999 the capped β makes the KL tiny whatever the model says, so rows 1 and 2 carry it.)
      expect(want.vb[0]).toBeGreaterThan(0.01); // decoder NLL row
      expect(want.vb[1]! + want.vb[2]!).toBeGreaterThan(1e-3); // KL rows

      const opts = { predictionType: pred, learnedVariance: true, snrGamma, highNoiseWeightCap: cap };
      const f = rt.compile(
        (i) => ({
          loss: diffusionLoss(tables, i.out!, i.x0!, i.xt!, i.noise!, i.t!, opts),
          mseOnly: diffusionLoss(tables, i.out!, i.x0!, i.xt!, i.noise!, i.t!, {
            ...opts,
            learnedVariance: false,
          }),
        }),
        { name: 'loss' },
      );
      const r = await f.run(feeds(k));
      await f.release();
      const loss = Number(r.loss!.data[0]);
      const mseOnly = Number(r.mseOnly!.data[0]);
      const wantMse = want.mse.reduce((a, x) => a + x, 0) / k.b;
      expect(Math.abs(mseOnly - wantMse) / wantMse).toBeLessThan(1e-5);
      expect(Math.abs(loss - want.loss) / want.loss, `loss ${loss} vs ${want.loss}`).toBeLessThan(2e-5);
    });
  }

  it('per-pixel weights (text_loss_weight) scale each pixel’s squared error, broadcast over channels', async () => {
    const k = makeCase(ref, 'epsilon', 31);
    // Weights vary per example and pixel; the epsilon target is the noise itself.
    const w = Float32Array.from({ length: k.b * 16 }, (_, e) => 1 + ((e * 7) % 5));
    let want = 0;
    let plain = 0;
    for (let i = 0; i < k.b; i++)
      for (let ch = 0; ch < k.c; ch++)
        for (let p = 0; p < 16; p++) {
          const d = k.modelOut[(i * 2 * k.c + ch) * 16 + p]! - k.noise[(i * k.c + ch) * 16 + p]!;
          want += w[i * 16 + p]! * d * d;
          plain += d * d;
        }
    want /= k.b * k.c * 16;
    plain /= k.b * k.c * 16;
    expect(Math.abs(want - plain) / plain).toBeGreaterThan(0.5);
    const f = rt.compile((i) =>
      diffusionLoss(tables, i.out!, i.x0!, i.xt!, i.noise!, i.t!, {
        predictionType: 'epsilon',
        learnedVariance: false,
        pixelWeight: i.w!,
      }),
    );
    const got = Number((await f.run({ ...feeds(k), w: NDArray.f32([k.b, 1, 4, 4], w) })).output!.data[0]);
    await f.release();
    expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
  });

  it('the variational term is per row: t = 0 uses the decoder NLL, t > 0 the KL', async () => {
    const k = makeCase(ref, 'epsilon', 11);
    const f = rt.compile((i) =>
      diffusionLoss(tables, i.out!, i.x0!, i.xt!, i.noise!, i.t!, {
        predictionType: 'epsilon',
        learnedVariance: true,
      }),
    );
    const got = Number((await f.run(feeds(k))).output!.data[0]);
    await f.release();
    const right = referenceLoss(ref, k, 'epsilon').loss;
    const klEverywhere = referenceLoss(ref, k, 'epsilon', undefined, true).loss;
    // The two readings differ by far more than the float32 error, and ours is the NLL one.
    expect(Math.abs(right - klEverywhere)).toBeGreaterThan(1e-2);
    expect(Math.abs(got - right)).toBeLessThan(1e-4);
  });

  it('gradients: the mean sees only the MSE (stop-gradient), the variance only L_vlb', async () => {
    for (const pred of ['epsilon', 'v_prediction'] as const) {
      const k = makeCase(ref, pred, 21);
      const snrGamma = 5;
      const p = new Parameter('model_out', [k.b, 2 * k.c, 4, 4], {
        value: NDArray.f32([k.b, 2 * k.c, 4, 4], k.modelOut),
      });
      const g = rt.compileGrad(
        (i, trace) =>
          diffusionLoss(tables, trace.param(p), i.x0!, i.xt!, i.noise!, i.t!, {
            predictionType: pred,
            learnedVariance: true,
            snrGamma,
          }),
        [p],
      );
      const { out: _unused, ...inputs } = feeds(k);
      const r = await g.run(inputs);
      await g.release();
      const grad = r.grads.get(p)!;
      expect(Math.abs(r.loss - referenceLoss(ref, k, pred, snrGamma).loss)).toBeLessThan(1e-4);

      // Central differences of the float64 reference, on a sample of elements of both halves.
      const h = 1e-4;
      const r2 = rng(99);
      for (let m = 0; m < 40; m++) {
        const idx = Math.floor(r2() * k.modelOut.length);
        const plus = { ...k, modelOut: Float64Array.from(k.modelOut) };
        const minus = { ...k, modelOut: Float64Array.from(k.modelOut) };
        plus.modelOut[idx] = k.modelOut[idx]! + h;
        minus.modelOut[idx] = k.modelOut[idx]! - h;
        const isMean = Math.floor(idx / (k.c * k.hw)) % 2 === 0;
        // Reference for the mean half: the MSE alone (what a stop-gradient leaves).
        const part = (c: Case) => {
          const o = referenceLoss(ref, c, pred, snrGamma);
          return isMean ? o.mse.reduce((a, x) => a + x, 0) / k.b : o.loss;
        };
        const fd = (part(plus) - part(minus)) / (2 * h);
        expect(
          Math.abs(grad[idx]! - fd),
          `${pred} element ${idx} (${isMean ? 'mean' : 'variance'})`,
        ).toBeLessThan(1e-4 + 2e-3 * Math.abs(fd));
      }
    }
  });
});
