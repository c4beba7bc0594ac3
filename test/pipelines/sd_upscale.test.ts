import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSchedule, parseSchedulerConfig, type Schedule } from '../../src/diffusion/schedule.js';
import { NDArray } from '../../src/engine/index.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet.js';
import {
  decodeUpscaledLatents,
  postprocessImage,
  prepareSdUpscale,
  preprocessImage,
  resizeNearest,
  type SdUpscaleComponents,
  sdUpscale,
  sdUpscaleStep,
  upscaleVae,
} from '../../src/pipelines/sd_upscale.js';
import { InMemoryUNetRunner } from '../../src/pipelines/unet_runner.js';
import { openSafetensors } from '../../src/platform/node/files.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { loadVae } from '../../src/platform/node/vae_loader.js';
import { fixture } from '../helpers/fixtures.js';
import { loadAll } from '../helpers/safetensors.js';
import { maxAbsErr } from '../reference/fd.js';

const rt = createRuntime({ threads: 2 });
const LOOP = fixture('sd-x4-upscaler/pipeline-loop');
const UNET = fixture('sd-x4-upscaler/unet');
const VAE = fixture('sd-x4-upscaler/vae');
const VAE_SCALING_FACTOR = 0.08333; // ../vae/config.json; the README's vae_decode_input divisor

function relToScale(got: NDArray, want: NDArray): number {
  expect(got.shape).toEqual(want.shape);
  const w = want.toFloat32();
  const scale = Math.max(1e-12, ...Array.from(w.data as Float32Array, Math.abs));
  return maxAbsErr(got.toFloat32().data as Float32Array, w) / scale;
}

function schedule(dir: string): Schedule {
  return makeSchedule(
    parseSchedulerConfig(JSON.parse(readFileSync(join(dir, 'scheduler_config.json'), 'utf8'))),
  );
}

describe.skipIf(!LOOP || !UNET || !VAE)('SD x4 upscaler loop parity (StableDiffusionUpscalePipeline)', () => {
  let inp: Record<string, NDArray>;
  let rec: Record<string, NDArray>;
  let comps: SdUpscaleComponents;
  let runner: InMemoryUNetRunner;

  beforeAll(async () => {
    inp = await loadAll(join(LOOP!, 'inputs.safetensors'));
    rec = await loadAll(join(LOOP!, 'outputs.safetensors'));
    const unet = new UNet2DConditionModel(JSON.parse(readFileSync(join(UNET!, 'config.json'), 'utf8')));
    const w = await openSafetensors(join(UNET!, 'diffusion_pytorch_model.safetensors'));
    await unet.loadStateDict(w);
    await w.close();
    runner = new InMemoryUNetRunner(rt, unet);
    const index = JSON.parse(readFileSync(join(LOOP!, 'model_index.json'), 'utf8'));
    comps = {
      unet: runner,
      schedule: schedule(join(LOOP!, 'scheduler')),
      lowResSchedule: schedule(join(LOOP!, 'low_res_scheduler')),
      maxNoiseLevel: index.max_noise_level,
    };
  });
  afterAll(() => runner?.release());

  const options = () => ({
    image: inp.image!,
    promptEmbeds: inp.prompt_embeds!,
    negativePromptEmbeds: inp.negative_prompt_embeds!,
    steps: 5,
    guidanceScale: 9.0,
    noiseLevel: inp.noise_level!.toArray()[0]!,
    imageNoise: inp.image_noise!,
    initialLatents: inp.init_latents_noise!,
  });

  it('prepares timesteps, the preprocessed and noise-augmented image, class labels and x_T', () => {
    const { state, latents } = prepareSdUpscale(comps, options());
    // DDIM "leading" spacing with steps_offset 1: 801, 601, 401, 201, 1.
    expect(state.timesteps).toEqual(rec.timesteps!.toArray());
    expect(relToScale(state.imagePreprocessed, rec.image_preprocessed!)).toBe(0);
    expect(relToScale(state.noisyImage, rec.noisy_image!)).toBeLessThan(1e-6);
    expect(state.classLabels.toArray()).toEqual(rec['step0.class_labels']!.toArray());
    expect(relToScale(latents, rec['step0.latents_in']!)).toBe(0);
  });

  it('reproduces every step from the recorded latents_in (UNet input, raw and guided prediction, DDIM)', async () => {
    const { state } = prepareSdUpscale(comps, options());
    const errs: string[] = [];
    for (let i = 0; i < state.timesteps.length; i++) {
      expect(state.timesteps[i]).toBe(rec[`step${i}.timestep`]!.toArray()[0]);
      const s = await sdUpscaleStep(comps, state, rec[`step${i}.latents_in`]!, i);
      const e = {
        unet_input: relToScale(s.unetInput, rec[`step${i}.unet_input`]!),
        noise_pred_raw: relToScale(s.noisePredRaw, rec[`step${i}.noise_pred_raw`]!),
        noise_pred_guided: relToScale(s.noisePredGuided, rec[`step${i}.noise_pred_guided`]!),
        latents_out: relToScale(s.latentsOut, rec[`step${i}.latents_out`]!),
      };
      errs.push(
        `${i}: ${Object.values(e)
          .map((x) => x.toExponential(1))
          .join('/')}`,
      );
      for (const [k, v] of Object.entries(e)) expect(v, `step ${i} ${k}`).toBeLessThan(1e-4);
    }
    console.log('x4 upscaler per step (unet_input/raw/guided/latents_out):', errs.join('  '));
  });

  it('runs the whole loop free, then decodes with the VAE: final latents, decoder input, decoded and image', async () => {
    const vae = await loadVae(VAE!, { runtime: rt });
    const fromVae = upscaleVae(vae);
    expect(fromVae.vae.scalingFactor).toBe(VAE_SCALING_FACTOR);
    expect([fromVae.latentChannels, fromVae.vaeScaleFactor]).toEqual([4, 4]);
    const errs: number[] = [];
    let decoderInput: NDArray | undefined;
    const res = await sdUpscale(
      {
        ...comps,
        ...fromVae,
        vae: {
          ...fromVae.vae,
          decode: (z) => {
            decoderInput = z;
            return fromVae.vae.decode(z);
          },
        },
      },
      {
        ...options(),
        onStep: ({ i, latentsOut }) => {
          errs.push(relToScale(latentsOut, rec[`step${i}.latents_out`]!));
        },
      },
    );
    await vae.release();
    const e = {
      final_latents: relToScale(res.latents, rec.final_latents!),
      vae_decode_input: relToScale(decoderInput!, rec.vae_decode_input!),
      decoded_raw: relToScale(res.decodedRaw!, rec.decoded_raw!),
      image: relToScale(res.image!, rec.image!),
    };
    console.log(
      'x4 upscaler free-running latents_out error:',
      errs.map((x) => x.toExponential(1)).join(' '),
      '| end:',
      Object.entries(e)
        .map(([k, v]) => `${k} ${v.toExponential(1)}`)
        .join(', '),
    );
    expect(errs).toHaveLength(5);
    for (const x of errs) expect(x).toBeLessThan(1e-4);
    for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(1e-4);
  });

  it('postprocesses the reference decode exactly (clamp(x/2 + 0.5, 0, 1))', () => {
    expect(relToScale(postprocessImage(rec.decoded_raw!), rec.image!)).toBe(0);
  });

  it('refuses what upstream refuses: noise level above max_noise_level, CFG without negative embeddings', () => {
    expect(() => prepareSdUpscale(comps, { ...options(), noiseLevel: 351 })).toThrow(/max_noise_level/);
    expect(() => prepareSdUpscale(comps, { ...options(), negativePromptEmbeds: undefined })).toThrow(
      /negative prompt/,
    );
  });

  it('without guidance (scale ≤ 1) runs only the positive prompts, one image copy, one class label', async () => {
    const { state } = prepareSdUpscale(comps, { ...options(), guidanceScale: 1 });
    expect(state.cfg).toBe(false);
    expect(state.context.shape).toEqual([1, 77, 32]);
    const s = await sdUpscaleStep(comps, state, rec['step0.latents_in']!, 0);
    expect(s.unetInput.shape).toEqual([1, 7, 8, 8]);
    // The positive half of the recorded CFG batch is the same UNet call.
    const pos = new NDArray(
      'float32',
      [1, 4, 8, 8],
      (rec['step0.noise_pred_raw']!.data as Float32Array).slice(256),
    );
    expect(relToScale(s.noisePredRaw, pos)).toBeLessThan(1e-4);
  });

  it('decodeUpscaledLatents divides by the scaling factor in float32', async () => {
    let seen: NDArray | undefined;
    await decodeUpscaledLatents(
      {
        scalingFactor: VAE_SCALING_FACTOR,
        decode: async (z) => {
          seen = z;
          return rec.decoded_raw!;
        },
      },
      rec.final_latents!,
    );
    expect(relToScale(seen!, rec.vae_decode_input!)).toBe(0);
  });
});

describe('SD upscale image processing (VaeImageProcessor)', () => {
  it('maps [0, 1] to [−1, 1] but leaves a tensor with negative values as it is', () => {
    const pos = NDArray.f32(
      [1, 3, 4, 4],
      new Array(48).fill(0).map((_, k) => k / 47),
    );
    const out = preprocessImage(pos).data as Float32Array;
    expect(out[0]).toBe(-1);
    expect(out[47]).toBe(1);
    const neg = NDArray.f32(
      [1, 3, 4, 4],
      new Array(48).fill(0).map((_, k) => k / 47 - 0.01),
    );
    expect(preprocessImage(neg).data).toEqual(neg.data);
  });

  it('cuts sides to multiples of the VAE scale factor with torch nearest, and says so', () => {
    const x = NDArray.f32(
      [1, 3, 6, 9],
      new Array(162).fill(0).map((_, k) => k),
    );
    const warnings: string[] = [];
    const out = preprocessImage(x, 4, (m) => warnings.push(m));
    expect(out.shape).toEqual([1, 3, 4, 8]);
    expect(warnings[0]).toMatch(/6×9 .* 4×8/);
    // nearest 6 → 4 reads rows ⌊i·1.5⌋ = 0, 1, 3, 4; 9 → 8 reads columns ⌊j·1.125⌋ = 0..5, 6, 7.
    const r = resizeNearest(x, 4, 8).data as Float32Array;
    expect(Array.from(r.slice(0, 8))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(r[8]).toBe(9);
    expect(r[16]).toBe(27);
    expect(r[24]).toBe(36);
  });

  it('denormalises with clamp(x/2 + 0.5, 0, 1)', () => {
    const out = postprocessImage(NDArray.f32([1, 1, 1, 4], [-3, -1, 0.5, 3])).data as Float32Array;
    expect(Array.from(out)).toEqual([0, 0, 0.75, 1]);
  });
});
