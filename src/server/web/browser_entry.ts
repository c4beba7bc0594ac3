/**
 * Browser mode: the page runs the model itself with onnxruntime-web (WebGPU where the browser has
 * it, else WebAssembly). The same engine, sampler and pipeline code as the server; only the
 * backend (onnxruntime-web) and file access (fetch) differ. Bundled for the page by
 * src/server/browser_bundle.ts; compiled by tsc without DOM types, so it touches no DOM.
 */
import * as ort from 'onnxruntime-web';
import { makeSchedule, parseSchedulerConfig, type Schedule } from '../../diffusion/schedule.js';
import type { DType } from '../../engine/dtype.js';
import { ImagenError } from '../../engine/errors.js';
import { NDArray } from '../../engine/ndarray.js';
import { type Backend, type BackendSession, Runtime } from '../../engine/runtime.js';
import { tensorToImages } from '../../io/image.js';
import { bytesSource, SafetensorsFile } from '../../io/safetensors.js';
import { parseT5Config } from '../../models/t5/config.js';
import { InMemoryT5Encoder, T5Encoder } from '../../models/t5/t5_encoder.js';
import { UNet2DConditionModel } from '../../models/unet/unet.js';
import { generateImages } from '../../pipelines/text_to_image.js';
import { createTokenizer, type TextTokenizer, type TokenizerFiles } from '../../text/tokenizer.js';

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
  unet: UNet2DConditionModel;
  schedule: Schedule;
  encoder: InMemoryT5Encoder;
  tokenizer: TextTokenizer;
  maxLength: number;
  size: number;
  backend: string;
}

export interface BrowserProgress {
  step: number;
  total: number;
  /** RGB bytes of x̂0 (first image), about ten times per run. */
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

/**
 * Download the server's stage-I model (`base`: the URL prefix of its files) and build it here.
 * `wasmPaths`: where onnxruntime-web finds its .wasm files.
 */
export async function loadModel(o: {
  base: string;
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

  const unet = new UNet2DConditionModel((await fetchJson(`${o.base}unet/config.json`))!);
  const unetWeights = await checkpoint(`${o.base}unet/diffusion_pytorch_model.safetensors`);
  await unet.loadStateDict(unetWeights);
  const schedule = makeSchedule(
    parseSchedulerConfig(await fetchJson(`${o.base}scheduler/scheduler_config.json`)),
  );

  const t5 = new T5Encoder(parseT5Config(await fetchJson(`${o.base}text_encoder/config.json`)));
  await t5.loadStateDict(await checkpoint(`${o.base}text_encoder/model.safetensors`), {
    aliases: T5Encoder.ALIASES,
  });

  const files: TokenizerFiles = { source: `${o.base}tokenizer` };
  const tc = await fetchJson(`${o.base}tokenizer/tokenizer_config.json`, true);
  if (tc) files.tokenizerConfig = tc;
  const sm = await fetchJson(`${o.base}tokenizer/special_tokens_map.json`, true);
  if (sm) files.specialTokensMap = sm;
  const tj = await fetchJson(`${o.base}tokenizer/tokenizer.json`, true);
  if (tj) files.tokenizerJson = tj;
  else {
    const res = await fetch(`${o.base}tokenizer/spiece.model`);
    if (res.ok) files.spieceModel = new Uint8Array(await res.arrayBuffer());
  }
  const m = tc?.model_max_length;
  return {
    rt,
    unet,
    schedule,
    encoder: new InMemoryT5Encoder(t5, rt),
    tokenizer: createTokenizer(files),
    // As the server's loader: published T5 tokenizers say 512 or a sentinel; IF pads to 77.
    maxLength: typeof m === 'number' && m >= 8 && m < 512 ? m : 77,
    size: unet.config.sample_size,
    backend: backend.name,
  };
}

/** Generate in the page; resolves to RGB images. */
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
  },
  hooks: { onProgress?: (e: BrowserProgress) => void; signal?: AbortSignal } = {},
): Promise<{ width: number; height: number; data: Uint8Array }[]> {
  const out = await generateImages(
    model.rt,
    { encoder: model.encoder, tokenizer: model.tokenizer, maxLength: model.maxLength },
    { unet: model.unet, schedule: model.schedule },
    undefined,
    {
      prompt: p.prompt,
      negativePrompt: p.negative_prompt ?? '',
      numImagesPerPrompt: p.num_images ?? 1,
      seed: p.seed,
      base: { steps: p.steps, guidanceScale: p.guidance_scale, thresholding: p.thresholding },
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
        hooks.onProgress?.({ step: e.step, total: e.total, preview });
        // The sampler awaits this: a macrotask break lets the page paint the progress and preview
        // between steps (wasm runs on the page's thread).
        return new Promise<void>((r) => setTimeout(r, 0));
      },
    },
  );
  return tensorToImages(out.base);
}
