/**
 * Stable Diffusion ×4 upscaler (`StableDiffusionUpscalePipeline.__call__` of diffusers v0.25), the
 * latent-space stage III of the DeepFloyd IF cascade. No Node imports.
 *
 * The low-res image is noise-augmented with the `low_res_scheduler` (DDPM q-sample at
 * `noise_level`) and concatenated, channel-wise, to the latents at every step; the noise level is
 * the UNet's class label. The pipeline's `scheduler` (DDIM, v-prediction in the published folder)
 * denoises the latents, which the VAE decodes at 4× the resolution.
 */
import { ddimStep } from '../diffusion/ddim.js';
import { addNoise } from '../diffusion/ddpm.js';
import { classifierFreeGuidance, concatBatch, duplicateBatch } from '../diffusion/guidance.js';
import { Generator } from '../diffusion/noise.js';
import type { Schedule } from '../diffusion/schedule.js';
import { spacedTimesteps } from '../diffusion/timesteps.js';
import { ImagenError } from '../engine/errors.js';
import { NDArray, shapeStr } from '../engine/ndarray.js';
import type { TiledDecodeOptions, VaeRunner } from '../models/vae/autoencoder_kl.js';
import { vaeScaleFactor } from '../models/vae/config.js';
import type { UNetLike } from './unet_runner.js';

const f = Math.fround;

/** diffusers' defaults for this pipeline (`__call__` signature and the published model_index.json). */
export const SD_UPSCALE_DEFAULTS = Object.freeze({
  steps: 75,
  guidanceScale: 9.0,
  noiseLevel: 20,
  maxNoiseLevel: 350,
  eta: 0,
  /** 2^(len(vae.block_out_channels) − 1) of the published VAE: the image is cut to multiples of it. */
  vaeScaleFactor: 4,
});

export interface SdUpscaleVae {
  /** `vae.config.scaling_factor` (0.08333 for the published x4 upscaler). */
  scalingFactor: number;
  /** AutoencoderKL.decode: [B, latent_channels, h, w] → [B, 3, 4h, 4w] in about [−1, 1]. */
  decode(latents: NDArray): Promise<NDArray>;
}

export interface SdUpscaleComponents {
  unet: UNetLike;
  /** The pipeline's `scheduler` (DDIMScheduler in the published folder). */
  schedule: Schedule;
  /** The `low_res_scheduler` (DDPMScheduler): only its ᾱ table is used, for the augmentation noise. */
  lowResSchedule: Schedule;
  /** model_index.json `max_noise_level` (350): larger noise levels are refused, as upstream. */
  maxNoiseLevel?: number;
  /** `vae.config.latent_channels`; default: UNet in_channels minus the image's channels. */
  latentChannels?: number;
  /** See SD_UPSCALE_DEFAULTS.vaeScaleFactor. */
  vaeScaleFactor?: number;
  /** Without a VAE the pipeline stops at the final latents (output_type "latent"). */
  vae?: SdUpscaleVae;
}

export interface SdUpscaleStepInfo {
  i: number;
  total: number;
  t: number;
  latentsIn: NDArray;
  /** [latents; latents] ++ [noisy image; noisy image] along channels (one copy of each without CFG). */
  unetInput: NDArray;
  /** The UNet's output for the CFG batch [negative; positive]. */
  noisePredRaw: NDArray;
  noisePredGuided: NDArray;
  latentsOut: NDArray;
  predOriginalSample: NDArray;
}

export interface SdUpscaleOptions {
  /** [B, 3, h, w] low-res image in [0, 1]; a tensor with negative values is taken as already in [−1, 1]. */
  image: NDArray;
  /** [B, L, D] text-encoder states of the prompts. */
  promptEmbeds: NDArray;
  /** [B, L, D]; required with guidance (> 1): the states of the negative (or empty) prompts. */
  negativePromptEmbeds?: NDArray;
  /** num_inference_steps (default 75). */
  steps?: number;
  /** Classifier-free guidance weight (default 9); ≤ 1 runs the positive prompts only, as diffusers. */
  guidanceScale?: number;
  /** Augmentation noise level in [0, max_noise_level] (default 20): also the UNet's class label. */
  noiseLevel?: number;
  /** DDIM η (default 0). */
  eta?: number;
  /** Draws what is not injected, in upstream's order: image noise, initial latents, then step noise. */
  generator?: Generator;
  /** Injected augmentation noise (image-shaped), e.g. a reference run's. */
  imageNoise?: NDArray;
  /** Injected x_T ([B, latent_channels, h, w]); DDIM's init_noise_sigma is 1. */
  initialLatents?: NDArray;
  /** Injected DDIM noise per step (only used with η > 0). */
  varianceNoise?: (i: number, t: number) => NDArray | undefined;
  onStep?: (info: SdUpscaleStepInfo) => void | Promise<void>;
  /** Called when the image had to be cut to multiples of the VAE scale factor. */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

/** Everything fixed for one run: what each step feeds the UNet besides the latents. */
export interface SdUpscaleState {
  timesteps: number[];
  /** diffusers' DDIM steps from t to t − T // n (equal to the next listed timestep for "leading"). */
  stepRatio: number;
  /** The image after resize/normalisation (before noise). */
  imagePreprocessed: NDArray;
  /** low_res_scheduler.add_noise(image, noise, noise_level). */
  noisyImage: NDArray;
  /** The noisy image once per UNet batch row ([noisy; noisy] with CFG). */
  imageBatch: NDArray;
  /** Text states per UNet batch row ([negative; positive] with CFG). */
  context: NDArray;
  /** int64 [rows]: the noise level for every UNet batch row. */
  classLabels: NDArray;
  guidanceScale: number;
  cfg: boolean;
  latentChannels: number;
  eta: number;
}

export interface SdUpscaleResult {
  /** Final latents (before the division by the VAE scaling factor). */
  latents: NDArray;
  /** clamp(decoded/2 + 0.5, 0, 1), [B, 3, 4h, 4w]; only with a VAE. */
  image?: NDArray;
  /** vae.decode output before denormalisation; only with a VAE. */
  decodedRaw?: NDArray;
  state: SdUpscaleState;
}

function bad(msg: string): never {
  throw new ImagenError('BAD_INPUT', `SD upscale: ${msg}`);
}

/**
 * The pipeline's view of a loaded AutoencoderKL: scaling factor, latent channels and scale factor
 * from its config; `tiled` decodes with diffusers' overlapping tiles (bounded memory for 1024² output,
 * not bit-equal to one-piece decoding).
 */
export function upscaleVae(
  vae: VaeRunner,
  options: { tiled?: boolean | TiledDecodeOptions } = {},
): Required<Pick<SdUpscaleComponents, 'vae' | 'latentChannels' | 'vaeScaleFactor'>> {
  const tiled = options.tiled;
  return {
    vae: {
      scalingFactor: vae.config.scaling_factor,
      decode: (z) => (tiled ? vae.decodeTiled(z, tiled === true ? {} : tiled) : vae.decode(z)),
    },
    latentChannels: vae.config.latent_channels,
    vaeScaleFactor: vaeScaleFactor(vae.config),
  };
}

/**
 * `VaeImageProcessor.preprocess` for a tensor: cut to multiples of the VAE scale factor with torch's
 * nearest resize, then 2x − 1 only when the whole batch is ≥ 0 (a tensor with negative values, as
 * IF stage II hands over, is used unchanged — upstream's deprecated path).
 */
export function preprocessImage(
  image: NDArray,
  vaeScaleFactor: number = SD_UPSCALE_DEFAULTS.vaeScaleFactor,
  onWarning?: (message: string) => void,
): NDArray {
  if (image.shape.length !== 4 || image.shape[1] !== 3)
    bad(`image must be [B, 3, H, W], got ${shapeStr(image.shape)}`);
  let x = image.toFloat32();
  const [, , h, w] = x.shape as [number, number, number, number];
  const th = h - (h % vaeScaleFactor);
  const tw = w - (w % vaeScaleFactor);
  if (th < 1 || tw < 1) bad(`image ${h}×${w} is smaller than the VAE scale factor ${vaeScaleFactor}`);
  if (th !== h || tw !== w) {
    onWarning?.(
      `the ${h}×${w} image was resized (nearest) to ${th}×${tw}, a multiple of ${vaeScaleFactor}, as diffusers does`,
    );
    x = resizeNearest(x, th, tw);
  }
  const d = x.data as Float32Array;
  let min = Number.POSITIVE_INFINITY;
  for (const v of d) if (v < min) min = v;
  if (min < 0) return x;
  return new NDArray(
    'float32',
    x.shape,
    d.map((v) => f(f(2 * v) - 1)),
  );
}

/** torch `F.interpolate(x, size, mode="nearest")` on [B, C, H, W]: source ⌊i·(in/out)⌋ with a float32 scale. */
export function resizeNearest(x: NDArray, oh: number, ow: number): NDArray {
  const [b, c, h, w] = x.shape as [number, number, number, number];
  const src = x.toFloat32().data as Float32Array;
  const out = new Float32Array(b * c * oh * ow);
  const sh = f(h / oh);
  const sw = f(w / ow);
  const rows = Array.from({ length: oh }, (_, i) => Math.min(Math.floor(f(i * sh)), h - 1));
  const cols = Array.from({ length: ow }, (_, j) => Math.min(Math.floor(f(j * sw)), w - 1));
  for (let p = 0; p < b * c; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) out[(p * oh + i) * ow + j] = src[(p * h + rows[i]!) * w + cols[j]!]!;
    }
  }
  return new NDArray('float32', [b, c, oh, ow], out);
}

/** `VaeImageProcessor.denormalize`: clamp(x/2 + 0.5, 0, 1). */
export function postprocessImage(decoded: NDArray): NDArray {
  const d = decoded.toFloat32().data as Float32Array;
  return new NDArray(
    'float32',
    decoded.shape,
    d.map((v) => Math.min(1, Math.max(0, f(f(v / 2) + 0.5)))),
  );
}

/** [B, C1, …] ++ [B, C2, …] along channels (torch.cat(dim=1)) for float32 arrays. */
export function concatChannels(a: NDArray, b: NDArray): NDArray {
  const [n, ca, ...rest] = a.shape as number[];
  const [nb, cb, ...restB] = b.shape as number[];
  if (n !== nb || rest.join() !== restB.join()) {
    bad(`cannot concatenate ${shapeStr(a.shape)} and ${shapeStr(b.shape)} along channels`);
  }
  const inner = rest.reduce((s, d) => s * d, 1);
  const da = a.toFloat32().data as Float32Array;
  const db = b.toFloat32().data as Float32Array;
  const out = new Float32Array(da.length + db.length);
  const ra = ca! * inner;
  const rb = cb! * inner;
  for (let i = 0; i < n!; i++) {
    out.set(da.subarray(i * ra, (i + 1) * ra), i * (ra + rb));
    out.set(db.subarray(i * rb, (i + 1) * rb), i * (ra + rb) + ra);
  }
  return new NDArray('float32', [n!, ca! + cb!, ...rest], out);
}

/**
 * Everything before the loop: checks, timesteps, preprocessing, the noise augmentation and the
 * CFG batch; returns the state and x_T.
 */
export function prepareSdUpscale(
  c: SdUpscaleComponents,
  o: SdUpscaleOptions,
): { state: SdUpscaleState; latents: NDArray } {
  const ucfg = c.unet.unet.config;
  const steps = o.steps ?? SD_UPSCALE_DEFAULTS.steps;
  const guidanceScale = o.guidanceScale ?? SD_UPSCALE_DEFAULTS.guidanceScale;
  const noiseLevel = o.noiseLevel ?? SD_UPSCALE_DEFAULTS.noiseLevel;
  const maxNoiseLevel = c.maxNoiseLevel ?? SD_UPSCALE_DEFAULTS.maxNoiseLevel;
  const eta = o.eta ?? SD_UPSCALE_DEFAULTS.eta;
  const cfg = guidanceScale > 1;

  if (!Number.isInteger(noiseLevel) || noiseLevel < 0 || noiseLevel > maxNoiseLevel) {
    bad(`noise level must be an integer in [0, ${maxNoiseLevel}] (max_noise_level), got ${noiseLevel}`);
  }
  if (noiseLevel >= c.lowResSchedule.numTrainTimesteps) {
    bad(
      `noise level ${noiseLevel} is outside the low-res scheduler's ${c.lowResSchedule.numTrainTimesteps} steps`,
    );
  }
  if (ucfg.num_class_embeds !== null && noiseLevel >= ucfg.num_class_embeds) {
    bad(`noise level ${noiseLevel} has no class embedding (num_class_embeds ${ucfg.num_class_embeds})`);
  }
  const pe = o.promptEmbeds.toFloat32();
  if (pe.shape.length !== 3) bad(`prompt embeddings must be [B, L, D], got ${shapeStr(pe.shape)}`);
  const batch = pe.shape[0]!;
  if (cfg) {
    const ne = o.negativePromptEmbeds;
    if (!ne) bad(`guidance scale ${guidanceScale} > 1 needs negative prompt embeddings (encode "" for none)`);
    if (shapeStr(ne.shape) !== shapeStr(pe.shape)) {
      bad(`negative prompt embeddings ${shapeStr(ne.shape)} must match the prompt's ${shapeStr(pe.shape)}`);
    }
  }
  if (o.image.shape[0] !== batch) {
    bad(`the image batch (${o.image.shape[0]}) must match the prompt batch (${batch})`);
  }

  const timesteps = spacedTimesteps(steps, c.schedule.config);
  const imagePreprocessed = preprocessImage(
    o.image,
    c.vaeScaleFactor ?? SD_UPSCALE_DEFAULTS.vaeScaleFactor,
    o.onWarning,
  );
  const [, imgC, h, w] = imagePreprocessed.shape as [number, number, number, number];
  const latentChannels = c.latentChannels ?? ucfg.in_channels - imgC;
  if (latentChannels + imgC !== ucfg.in_channels || latentChannels < 1) {
    bad(
      `the UNet takes ${ucfg.in_channels} channels but latents (${latentChannels}) + image (${imgC}) give ` +
        `${latentChannels + imgC}: is this an x4-upscaler UNet?`,
    );
  }

  // Upstream's draw order: the image noise first, then the initial latents.
  const gen = o.generator ?? new Generator(0);
  const imageNoise = o.imageNoise ?? gen.randnNDArray(imagePreprocessed.shape);
  if (shapeStr(imageNoise.shape) !== shapeStr(imagePreprocessed.shape)) {
    bad(
      `image noise ${shapeStr(imageNoise.shape)} must match the image ${shapeStr(imagePreprocessed.shape)}`,
    );
  }
  const noisyImage = addNoise(
    imagePreprocessed,
    imageNoise,
    new Array(batch).fill(noiseLevel),
    c.lowResSchedule,
  );
  const latentShape = [batch, latentChannels, h, w];
  const latents = (o.initialLatents ?? gen.randnNDArray(latentShape)).toFloat32();
  if (shapeStr(latents.shape) !== shapeStr(latentShape)) {
    bad(`initial latents ${shapeStr(latents.shape)} must be ${shapeStr(latentShape)}`);
  }

  const rows = cfg ? 2 * batch : batch;
  return {
    latents,
    state: {
      timesteps,
      stepRatio: Math.floor(c.schedule.numTrainTimesteps / steps),
      imagePreprocessed,
      noisyImage,
      imageBatch: cfg ? duplicateBatch(noisyImage) : noisyImage,
      context: cfg ? concatBatch([o.negativePromptEmbeds!.toFloat32(), pe]) : pe,
      classLabels: NDArray.i64([rows], new Array(rows).fill(noiseLevel)),
      guidanceScale,
      cfg,
      latentChannels,
      eta,
    },
  };
}

/** One denoising step i from `latentsIn`: UNet on the CFG batch, guidance, DDIM. */
export async function sdUpscaleStep(
  c: SdUpscaleComponents,
  s: SdUpscaleState,
  latentsIn: NDArray,
  i: number,
  o: Pick<SdUpscaleOptions, 'generator' | 'varianceNoise'> = {},
): Promise<SdUpscaleStepInfo> {
  const t = s.timesteps[i]!;
  // DDIM's scale_model_input is the identity.
  const unetInput = concatChannels(s.cfg ? duplicateBatch(latentsIn) : latentsIn, s.imageBatch);
  const noisePredRaw = (
    await c.unet.run({
      sample: unetInput,
      timestep: t,
      encoderHiddenStates: s.context,
      classLabels: s.classLabels,
    })
  ).toFloat32();
  const noisePredGuided = s.cfg
    ? classifierFreeGuidance(noisePredRaw, s.guidanceScale, s.latentChannels)
    : noisePredRaw;
  const r = ddimStep({
    modelOutput: noisePredGuided,
    timestep: t,
    prevTimestep: t - s.stepRatio,
    sample: latentsIn,
    schedule: c.schedule,
    eta: s.eta,
    varianceNoise: s.eta > 0 ? o.varianceNoise?.(i, t) : undefined,
    generator: o.generator,
  });
  return {
    i,
    total: s.timesteps.length,
    t,
    latentsIn,
    unetInput,
    noisePredRaw,
    noisePredGuided,
    latentsOut: r.prevSample,
    predOriginalSample: r.predOriginalSample,
  };
}

/** `latents / scaling_factor` → vae.decode → clamp(x/2 + 0.5, 0, 1). */
export async function decodeUpscaledLatents(
  vae: SdUpscaleVae,
  latents: NDArray,
): Promise<{ decodedRaw: NDArray; image: NDArray }> {
  const sf = f(vae.scalingFactor);
  const z = new NDArray(
    'float32',
    latents.shape,
    (latents.toFloat32().data as Float32Array).map((v) => f(v / sf)),
  );
  const decodedRaw = (await vae.decode(z)).toFloat32();
  return { decodedRaw, image: postprocessImage(decodedRaw) };
}

/** The whole pipeline: prepare, every DDIM step, and (with a VAE) decode. */
export async function sdUpscale(c: SdUpscaleComponents, o: SdUpscaleOptions): Promise<SdUpscaleResult> {
  const gen = o.generator ?? new Generator(0);
  const { state, latents: xT } = prepareSdUpscale(c, { ...o, generator: gen });
  let latents = xT;
  for (let i = 0; i < state.timesteps.length; i++) {
    if (o.signal?.aborted) throw new ImagenError('ABORTED', 'upscaling cancelled');
    const step = await sdUpscaleStep(c, state, latents, i, {
      generator: gen,
      varianceNoise: o.varianceNoise,
    });
    latents = step.latentsOut;
    await o.onStep?.(step);
  }
  if (!c.vae) return { latents, state };
  return { latents, state, ...(await decodeUpscaledLatents(c.vae, latents)) };
}
