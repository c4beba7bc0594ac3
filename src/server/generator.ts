import { basename } from 'node:path';
import sharp from 'sharp';
import { ImagenError } from '../engine/errors.js';
import { NDArray } from '../engine/ndarray.js';
import type { Runtime } from '../engine/runtime.js';
import { tensorToImages } from '../io/image.js';
import type { T5TextEncoder } from '../models/t5/t5_encoder.js';
import type { ProgressEvent } from '../pipelines/events.js';
import { generateImages } from '../pipelines/text_to_image.js';
import { encodePng } from '../platform/node/image.js';
import {
  type LoadedPipeline,
  loadPipelineFolder,
  openTextEncoder,
  stageModels,
} from '../platform/node/pipeline_folder.js';
import { createRuntime } from '../platform/node/runtime.js';
import type { GenerateParams, JobProgress, ModelInfo } from './types.js';

export interface Preview {
  stage: string;
  step: number;
  total: number;
  /** `data:image/png;base64,…` of the first image's predicted clean sample x̂0. */
  image: string;
}

export interface GenerateHooks {
  signal?: AbortSignal;
  onProgress?: (p: JobProgress) => void;
  onPreview?: (p: Preview) => void;
}

/**
 * What the job queues run. The server and workers use `PipelineGenerator`; tests may plug in
 * anything that honours the contract: PNG bytes out, `signal` stops it between steps with an
 * `ImagenError('ABORTED')`.
 */
export interface Generator {
  /** The cascade: each stage's output side (what it can produce) and sampling defaults. */
  models(): ModelInfo[];
  generate(params: GenerateParams, hooks: GenerateHooks): Promise<Uint8Array[]>;
  close(): Promise<void>;
}

/** The cancelled error every generator throws (the queues map it to status `cancelled`). */
export function isAbort(e: unknown): boolean {
  return e instanceof ImagenError && e.code === 'ABORTED';
}

/** A small PNG data URL of the first image in a batch; previews are for eyes, so ≤ 64 px. */
export async function previewDataUrl(x: NDArray, maxSide = 64): Promise<string> {
  const [, c, h, w] = x.shape as [number, number, number, number];
  const first = new NDArray(
    'float32',
    [1, c, h, w],
    (x.toFloat32().data as Float32Array).subarray(0, c * h * w),
  );
  const img = tensorToImages(first)[0]!;
  let png: Uint8Array;
  if (Math.max(img.width, img.height) > maxSide) {
    const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize(maxSide, maxSide, { fit: 'inside' })
      .png()
      .toBuffer();
    png = new Uint8Array(buf);
  } else png = await encodePng(img);
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

/** Send about ten previews per stage plus the last step (x̂0 changes slowly between neighbours). */
export function previewDue(step: number, total: number, every?: number): boolean {
  const k = every ?? Math.max(1, Math.ceil(total / 10));
  return step === total || step % k === 0;
}

/** A diffusers IF cascade loaded once and kept in memory (stage I, optional stage II). */
export class PipelineGenerator implements Generator {
  private constructor(
    private readonly rt: Runtime,
    private readonly base: LoadedPipeline,
    private readonly sr: LoadedPipeline | undefined,
    private readonly encoder: T5TextEncoder,
    private readonly previewEvery: number | undefined,
  ) {}

  static async load(
    model: string,
    o: { srModel?: string; previewEvery?: number } = {},
  ): Promise<PipelineGenerator> {
    const base = await loadPipelineFolder(model);
    if (base.stage !== 'base')
      throw new ImagenError(
        'CONFIG_INVALID',
        `${model} is a super-resolution pipeline; give a stage-I model`,
      );
    if (!base.textEncoderDir || !base.tokenizer)
      throw new ImagenError(
        'NOT_FOUND',
        `${model}: the server needs a model folder with text_encoder/ and tokenizer/`,
      );
    const sr = o.srModel ? await loadPipelineFolder(o.srModel) : undefined;
    if (sr && sr.stage !== 'sr')
      throw new ImagenError('CONFIG_INVALID', `${o.srModel} is a stage-I pipeline, not super-resolution`);
    const rt = createRuntime();
    return new PipelineGenerator(rt, base, sr, (await openTextEncoder(base, rt))!, o.previewEvery);
  }

  models(): ModelInfo[] {
    const info = (p: LoadedPipeline): ModelInfo => ({
      id: basename(p.dir),
      stage: p.stage,
      size: p.unet.config.sample_size,
      text_encoder: p.textEncoderDir !== undefined,
      // a preset name (`smart50`) is not an API step count: such a folder gets the API's default
      ...(typeof p.defaults?.steps === 'number' ? { steps: p.defaults.steps } : {}),
      ...(p.defaults?.guidanceScale !== undefined ? { guidance_scale: p.defaults.guidanceScale } : {}),
    });
    return this.sr ? [info(this.base), info(this.sr)] : [info(this.base)];
  }

  /** Output sides this cascade can produce (stage I alone, or through stage II). */
  private sizes(): number[] {
    return this.models().map((m) => m.size);
  }

  async generate(p: GenerateParams, hooks: GenerateHooks): Promise<Uint8Array[]> {
    // A server without a model of its own (Redis mode) may not have known the sizes when it took the job.
    if (p.size !== undefined && !this.sizes().includes(p.size))
      throw new ImagenError(
        'BAD_INPUT',
        `size ${p.size} is not produced by this model; use ${this.sizes().join(' or ')}`,
      );
    const withSr =
      this.sr !== undefined && (p.size === undefined || p.size === this.sr.unet.config.sample_size);
    // Previews are encoded while the sampler waits (onProgress is awaited): it costs a PNG every
    // ~total/10 steps, which keeps the event order exact without a second queue.
    const onProgress = async (e: ProgressEvent) => {
      if (e.status !== 'step') return;
      hooks.onProgress?.({ stage: e.stage, step: e.step, total: e.total });
      if (hooks.onPreview && e.predOriginalSample && previewDue(e.step, e.total, this.previewEvery)) {
        hooks.onPreview({
          stage: e.stage,
          step: e.step,
          total: e.total,
          image: await previewDataUrl(e.predOriginalSample),
        });
      }
    };
    if (hooks.signal?.aborted) throw new ImagenError('ABORTED', 'cancelled before it started');
    const result = await generateImages(
      this.rt,
      { encoder: this.encoder, tokenizer: this.base.tokenizer!, maxLength: this.base.maxTextLength },
      stageModels(this.base),
      withSr ? stageModels(this.sr!, this.rt) : undefined,
      {
        prompt: p.prompt,
        negativePrompt: p.negative_prompt,
        numImagesPerPrompt: p.num_images,
        seed: p.seed,
        base: { steps: p.steps, guidanceScale: p.guidance_scale, thresholding: p.thresholding },
        // The API's steps/guidance describe stage I; stage II samples with its folder's defaults.
        sr: { thresholding: p.thresholding },
        onProgress,
        signal: hooks.signal,
      },
    );
    const images = tensorToImages(result.sr ?? result.base);
    return Promise.all(images.map((img) => encodePng(img)));
  }

  async close(): Promise<void> {
    await this.encoder.release();
  }
}
