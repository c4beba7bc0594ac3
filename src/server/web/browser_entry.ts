/**
 * Browser mode: the page runs the model itself with onnxruntime-web (WebGPU where the browser has
 * it, else WebAssembly): stage I, then stage II when the server has one. The same engine, sampler,
 * pipeline and folder-defaults code as the server; only the backend (onnxruntime-web) and file
 * access (fetch) differ. Bundled for the page by src/server/browser_mode.ts; compiled by tsc
 * without DOM types, so it touches no DOM.
 */
import * as ort from 'onnxruntime-web';
import { makeSchedule, parseSchedulerConfig } from '../../diffusion/schedule.js';
import type { DType } from '../../engine/dtype.js';
import { ImagenError } from '../../engine/errors.js';
import { NDArray } from '../../engine/ndarray.js';
import { type Backend, type BackendSession, Runtime } from '../../engine/runtime.js';
import { tensorToImages } from '../../io/image.js';
import { bytesSource, SafetensorsFile } from '../../io/safetensors.js';
import { parseT5Config } from '../../models/t5/config.js';
import { InMemoryT5Encoder, T5Encoder } from '../../models/t5/t5_encoder.js';
import { UNet2DConditionModel } from '../../models/unet/unet.js';
import { stageDefaultsFor } from '../../pipelines/generation_config.js';
import { generateImages, type StageModels, type TextModels } from '../../pipelines/text_to_image.js';
import { createTokenizer, maxTextLengthOf, type TokenizerFiles } from '../../text/tokenizer.js';

const ORT_TYPE: Partial<Record<DType, ort.Tensor.Type>> = {
  float32: 'float32',
  float16: 'float16',
  int64: 'int64',
  int32: 'int32',
  bool: 'bool',
  uint8: 'uint8',
};

/** onnxruntime-web behind the engine's Backend interface. */
class WebBackend implements Backend {
  constructor(readonly providers: string[]) {}

  get name(): string {
    // ORT falls back along the list per node and per session, so this names the preference.
    return `onnxruntime-web: ${this.providers.join(', else ')}`;
  }

  async createSession(model: Uint8Array): Promise<BackendSession> {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: this.providers,
      graphOptimizationLevel: 'all',
    });
    return {
      async run(feeds, outputNames) {
        const inputs: Record<string, ort.Tensor> = {};
        for (const [k, a] of Object.entries(feeds)) {
          const type = ORT_TYPE[a.dtype];
          if (!type)
            throw new ImagenError('DTYPE_MISMATCH', `input ${k}: no ${a.dtype} tensors in onnxruntime-web`);
          inputs[k] = new ort.Tensor(type, a.data as never, [...a.shape]);
        }
        const out = await session.run(inputs, [...outputNames]);
        const result: Record<string, NDArray> = {};
        for (const name of outputNames) {
          const t = out[name]!;
          // WebGPU outputs may live on the GPU; getData() brings them to the CPU.
          const data = t.location === 'cpu' ? t.data : await t.getData(true);
          result[name] = new NDArray(t.type as DType, [...t.dims], data as never);
        }
        return result;
      },
      release: () => session.release(),
    };
  }
}

export interface BrowserModel {
  rt: Runtime;
  /** Stage I's text encoder: every stage without one of its own uses these embeddings. */
  text: TextModels;
  base: StageModels;
  /** Stage II, with its folder's own text encoder when it has one (as the server's `stageModels`). */
  sr?: StageModels;
  /** The sides it can produce: stage I's, then stage II's (as the server's /v1/models). */
  sizes: number[];
  backend: string;
}

export interface BrowserProgress {
  /** 'stage I' or 'stage II': each stage counts its own steps. */
  stage: string;
  step: number;
  total: number;
  /** RGB bytes of x̂0 (first image), about ten times per stage. */
  preview?: { width: number; height: number; data: Uint8Array };
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new ImagenError('NOT_FOUND', `${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function fetchJson(url: string, optional = false): Promise<Record<string, unknown> | undefined> {
  const res = await fetch(url);
  if (!res.ok) {
    if (optional) return undefined;
    throw new ImagenError('NOT_FOUND', `${url}: HTTP ${res.status}`);
  }
  return (await res.json()) as Record<string, unknown>;
}

async function checkpoint(url: string) {
  return SafetensorsFile.open(bytesSource(url, await fetchBytes(url)));
}

/** A folder's text_encoder/ and tokenizer/ (`prefix`: the folder's URL); undefined when it has none. */
async function loadText(prefix: string, rt: Runtime): Promise<TextModels | undefined> {
  const config = await fetchJson(`${prefix}text_encoder/config.json`, true);
  if (!config) return undefined;

  const files: TokenizerFiles = { source: `${prefix}tokenizer` };
  const tc = await fetchJson(`${prefix}tokenizer/tokenizer_config.json`, true);
  if (tc) files.tokenizerConfig = tc;
  const sm = await fetchJson(`${prefix}tokenizer/special_tokens_map.json`, true);
  if (sm) files.specialTokensMap = sm;
  const tj = await fetchJson(`${prefix}tokenizer/tokenizer.json`, true);
  if (tj) files.tokenizerJson = tj;
  else {
    const res = await fetch(`${prefix}tokenizer/spiece.model`);
    if (res.ok) files.spieceModel = new Uint8Array(await res.arrayBuffer());
  }
  // The server's loader needs a tokenizer/ folder to use a stage's own encoder; so does this.
  // Checked before the weights are downloaded, so a folder that cannot use them does not fetch them.
  if (!tc && !tj && !files.spieceModel) return undefined;
  const t5 = new T5Encoder(parseT5Config(config));
  await t5.loadStateDict(await checkpoint(`${prefix}text_encoder/model.safetensors`), {
    aliases: T5Encoder.ALIASES,
  });
  return {
    encoder: new InMemoryT5Encoder(t5, rt),
    tokenizer: createTokenizer(files),
    maxLength: maxTextLengthOf(tc),
  };
}

/** A stage's UNet, schedules and generation_config.json defaults (`prefix`: the folder's URL). */
async function loadStage(prefix: string, sr: boolean): Promise<StageModels> {
  const unet = new UNet2DConditionModel((await fetchJson(`${prefix}unet/config.json`))!);
  await unet.loadStateDict(await checkpoint(`${prefix}unet/diffusion_pytorch_model.safetensors`));
  const schedule = async (sub: string) =>
    makeSchedule(parseSchedulerConfig(await fetchJson(`${prefix}${sub}/scheduler_config.json`)));
  const stage: StageModels = { unet, schedule: await schedule('scheduler') };
  if (sr) stage.imageNoisingSchedule = await schedule('image_noising_scheduler');
  const generationConfig = await fetchJson(`${prefix}generation_config.json`, true);
  if (generationConfig)
    stage.defaults = stageDefaultsFor(generationConfig, `${prefix}generation_config.json`, unet);
  return stage;
}

/**
 * Download the server's model and build it here: stage I from `base` and, when given, stage II
 * from `sr` (the URL prefixes of their files). `wasmPaths`: where onnxruntime-web finds its .wasm
 * files.
 */
export async function loadModel(o: {
  base: string;
  sr?: string;
  wasmPaths: string;
  webgpu?: boolean;
}): Promise<BrowserModel> {
  ort.env.wasm.wasmPaths = o.wasmPaths;
  // Threads need cross-origin isolation, which a plain local page does not have.
  ort.env.wasm.numThreads = 1;
  const hasGpu =
    o.webgpu !== false &&
    typeof (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu === 'object';
  const backend = new WebBackend(hasGpu ? ['webgpu', 'wasm'] : ['wasm']);
  const rt = new Runtime(backend);

  const base = await loadStage(o.base, false);
  const text = await loadText(o.base, rt);
  if (!text) throw new ImagenError('NOT_FOUND', `${o.base}: stage I needs text_encoder/ and tokenizer/`);
  let sr: StageModels | undefined;
  if (o.sr) {
    sr = await loadStage(o.sr, true);
    const own = await loadText(o.sr, rt);
    if (own) sr.text = own;
  }
  return {
    rt,
    text,
    base,
    sr,
    sizes: [base, ...(sr ? [sr] : [])].map((s) => s.unet.config.sample_size),
    backend: backend.name,
  };
}

/**
 * Generate in the page; resolves to RGB images. `size` picks the stages as the server's API does:
 * stage II's side (or none) runs the whole cascade, stage I's side stops after stage I.
 */
export async function generate(
  model: BrowserModel,
  p: {
    prompt: string;
    negative_prompt?: string;
    seed: number;
    steps: number;
    guidance_scale: number;
    thresholding?: 'dynamic' | 'static' | 'none';
    num_images?: number;
    size?: number;
  },
  hooks: { onProgress?: (e: BrowserProgress) => void; signal?: AbortSignal } = {},
): Promise<{ width: number; height: number; data: Uint8Array }[]> {
  if (p.size !== undefined && !model.sizes.includes(p.size))
    throw new ImagenError(
      'BAD_INPUT',
      `size ${p.size} is not produced by this model; use ${model.sizes.join(' or ')}`,
    );
  const sr =
    model.sr && (p.size === undefined || p.size === model.sr.unet.config.sample_size) ? model.sr : undefined;
  const out = await generateImages(model.rt, model.text, model.base, sr, {
    prompt: p.prompt,
    negativePrompt: p.negative_prompt ?? '',
    numImagesPerPrompt: p.num_images ?? 1,
    seed: p.seed,
    base: { steps: p.steps, guidanceScale: p.guidance_scale, thresholding: p.thresholding },
    // As the server: the request's steps and guidance are stage I's; stage II samples with its
    // folder's defaults.
    sr: { thresholding: p.thresholding },
    signal: hooks.signal,
    onProgress: (e) => {
      if (e.status !== 'step') return;
      const k = Math.max(1, Math.ceil(e.total / 10));
      let preview: BrowserProgress['preview'];
      if (e.predOriginalSample && (e.step % k === 0 || e.step === e.total)) {
        const [, c, h, w] = e.predOriginalSample.shape as [number, number, number, number];
        const first = new NDArray(
          'float32',
          [1, c, h, w],
          (e.predOriginalSample.toFloat32().data as Float32Array).subarray(0, c * h * w),
        );
        preview = tensorToImages(first)[0];
      }
      hooks.onProgress?.({ stage: e.stage, step: e.step, total: e.total, preview });
      // The sampler awaits this: a macrotask break lets the page paint the progress and preview
      // between steps (wasm runs on the page's thread).
      return new Promise<void>((r) => setTimeout(r, 0));
    },
  });
  return tensorToImages(out.sr ?? out.base);
}
