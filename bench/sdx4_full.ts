/**
 * Full-size Stable Diffusion ×4 upscaler on CPU, 256 → 1024 (not part of CI):
 *
 *   npx tsx bench/sdx4_full.ts [--dir /tmp/sdx4-full] [--steps 2] [--threads 2] [--tile-size 144] [--untiled] [--keep]
 *
 * Writes a random-weight folder with the architecture of stabilityai/stable-diffusion-x4-upscaler
 * (unet 473 M, vae 55 M, OpenCLIP-H text encoder 354 M parameters, fp16 safetensors written tensor by
 * tensor, a byte-level CLIP vocabulary of the real size), then in a fresh child process (so the peak
 * RSS, VmHWM, is the run's alone) loads it as `imagen upscale --model DIR --tiled` does and upscales a
 * 256×256 image with classifier-free guidance: load time, seconds per denoising step, VAE decode time
 * and peak RSS, as JSON. `--untiled` runs one untiled UNet call instead, killed if its RSS passes
 * `--rss-limit-gib` (default 17). The folder is deleted unless `--keep`; a complete one is reused.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { freemem, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { duplicateBatch } from '../src/diffusion/guidance.js';
import { Generator } from '../src/diffusion/noise.js';
import { f32ToF16Bits } from '../src/engine/dtype.js';
import { NDArray } from '../src/engine/ndarray.js';
import { safetensorsHeader } from '../src/io/safetensors.js';
import { ClipTextModel } from '../src/models/clip/clip_text.js';
import { UNet2DConditionModel } from '../src/models/unet/unet.js';
import { AutoencoderKL } from '../src/models/vae/autoencoder_kl.js';
import { concatChannels, prepareSdUpscale, sdUpscale } from '../src/pipelines/sd_upscale.js';
import { planTiles, type TiledUNet } from '../src/pipelines/tiled_unet.js';
import { atomicWriteChunks } from '../src/platform/node/files.js';
import { createRuntime } from '../src/platform/node/runtime.js';
import { encodeSdx4Prompts, loadSdx4Folder } from '../src/platform/node/sdx4_folder.js';
import { bytesToUnicode } from '../src/text/clip_tokenizer.js';

const GiB = 2 ** 30;
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
};
const flag = (name: string) => process.argv.includes(`--${name}`);
const gib = (x: number) => Math.round((x / GiB) * 1000) / 1000;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

function procStatus(key: 'VmRSS' | 'VmHWM'): number {
  const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

// ---------------------------------------------------------------- configs
// The published config.json files could not be fetched here (no hub access); these are rebuilt from
// diffusers' StableDiffusionUpscalePipeline docs/tests and the model card's architecture, keeping
// every key that changes the network: channels, blocks, heads, attention kinds, class embedding.

const UNET = {
  _class_name: 'UNet2DConditionModel',
  _name_or_path: 'random-weights stable-diffusion-x4-upscaler architecture (bench/sdx4_full.ts)',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [256, 512, 512, 1024],
  center_input_sample: false,
  cross_attention_dim: 1024,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  downsample_padding: 1,
  dual_cross_attention: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 7,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  num_class_embeds: 1000,
  only_cross_attention: [true, true, true, false],
  out_channels: 4,
  sample_size: 128,
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  use_linear_projection: true,
};

const VAE = {
  _class_name: 'AutoencoderKL',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 256,
  scaling_factor: 0.08333,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
};

/** OpenCLIP ViT-H/14's text tower (as in stable-diffusion-2 and the x4 upscaler). */
const TEXT = {
  architectures: ['CLIPTextModel'],
  attention_dropout: 0,
  bos_token_id: 0,
  dropout: 0,
  eos_token_id: 2,
  hidden_act: 'gelu',
  hidden_size: 1024,
  initializer_factor: 1,
  initializer_range: 0.02,
  intermediate_size: 4096,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  model_type: 'clip_text_model',
  num_attention_heads: 16,
  num_hidden_layers: 23,
  pad_token_id: 1,
  projection_dim: 512,
  torch_dtype: 'float16',
  vocab_size: 49408,
};

const SCHEDULER = {
  _class_name: 'DDIMScheduler',
  beta_end: 0.02,
  beta_schedule: 'scaled_linear',
  beta_start: 0.0001,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: 'v_prediction',
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
};

const LOW_RES_SCHEDULER = {
  _class_name: 'DDPMScheduler',
  beta_end: 0.02,
  beta_schedule: 'scaled_linear',
  beta_start: 0.0001,
  clip_sample: true,
  num_train_timesteps: 1000,
  trained_betas: null,
  variance_type: 'fixed_small',
};

const MODEL_INDEX = {
  _class_name: 'StableDiffusionUpscalePipeline',
  low_res_scheduler: ['diffusers', 'DDPMScheduler'],
  max_noise_level: 350,
  scheduler: ['diffusers', 'DDIMScheduler'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  unet: ['diffusers', 'UNet2DConditionModel'],
  vae: ['diffusers', 'AutoencoderKL'],
};

// ---------------------------------------------------------------- random fp16 weights

/** Deterministic uniform [0, 1) (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POOL = 1 << 20;

/** fp16 N(mean, std²) samples; tensors take pool slices at random offsets (fast; only sane values matter). */
function pool(mean: number, std: number, seed: number): Uint16Array {
  const r = rng(seed);
  const out = new Uint16Array(POOL);
  for (let i = 0; i < POOL; i++) {
    const z = Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
    out[i] = f32ToF16Bits(mean + std * z);
  }
  return out;
}

/** 1/√fan_in for matrices and kernels keeps activations O(1) through hundreds of random layers. */
function initOf(name: string, shape: readonly number[]): { mean: number; std: number } {
  if (/norm[^.]*\.weight$/.test(name)) return { mean: 1, std: 0.05 };
  if (shape.length === 1) return { mean: 0, std: 0.02 };
  return { mean: 0, std: 1 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1)) };
}

async function writeRandomWeights(file: string, params: { name: string; shape: readonly number[] }[]) {
  const specs = params.map((p) => ({ name: p.name, shape: [...p.shape], dtype: 'float16' as const }));
  const { header } = safetensorsHeader(specs, { format: 'pt' });
  const pools = new Map<string, Uint16Array>();
  const offsets = rng(777);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    yield header;
    for (const t of specs) {
      const { mean, std } = initOf(t.name, t.shape);
      const key = `${mean}/${std}`;
      if (!pools.has(key)) pools.set(key, pool(mean, std, pools.size + 1));
      const src = pools.get(key)!;
      const n = t.shape.reduce((a, b) => a * b, 1);
      const buf = new Uint16Array(n);
      for (let at = 0; at < n; at += 1 << 14) {
        const len = Math.min(1 << 14, n - at);
        const off = Math.floor(offsets() * (POOL - len));
        buf.set(src.subarray(off, off + len), at);
      }
      yield new Uint8Array(buf.buffer);
    }
  }
  await atomicWriteChunks(file, chunks());
  return params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

async function buildFolder(dir: string): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const json = (p: string, v: unknown) => writeFile(join(dir, p), JSON.stringify(v, null, 2));
  for (const d of ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler', 'low_res_scheduler'])
    await mkdir(join(dir, d), { recursive: true });
  const counts = {
    unet: await writeRandomWeights(
      join(dir, 'unet', 'diffusion_pytorch_model.fp16.safetensors'),
      new UNet2DConditionModel(UNET).parameters(),
    ),
    vae: await writeRandomWeights(
      join(dir, 'vae', 'diffusion_pytorch_model.fp16.safetensors'),
      new AutoencoderKL(VAE).parameters(),
    ),
    text_encoder: await writeRandomWeights(
      join(dir, 'text_encoder', 'model.fp16.safetensors'),
      new ClipTextModel(TEXT).parameters(),
    ),
  };
  await json('unet/config.json', UNET);
  await json('vae/config.json', VAE);
  await json('text_encoder/config.json', TEXT);
  await json('scheduler/scheduler_config.json', SCHEDULER);
  await json('low_res_scheduler/scheduler_config.json', LOW_RES_SCHEDULER);
  // Byte-level CLIP vocabulary (no merges) of the real size, specials at 49406/49407.
  const chars = [...bytesToUnicode()].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => {
    vocab[c] = i;
    vocab[`${c}</w>`] = 256 + i;
  });
  vocab['<|startoftext|>'] = 49406;
  vocab['<|endoftext|>'] = 49407;
  await json('tokenizer/vocab.json', vocab);
  await writeFile(join(dir, 'tokenizer', 'merges.txt'), '#version: 0.2\n');
  await json('tokenizer/tokenizer_config.json', {
    tokenizer_class: 'CLIPTokenizer',
    model_max_length: 77,
    bos_token: '<|startoftext|>',
    eos_token: '<|endoftext|>',
    unk_token: '<|endoftext|>',
    pad_token: '!',
  });
  // Written last: marks a complete folder a later run may reuse.
  await json('model_index.json', MODEL_INDEX);
  return { parameters: counts, build_seconds: round((performance.now() - t0) / 1000, 1) };
}

// ---------------------------------------------------------------- child: the measured run

async function runChild(dir: string): Promise<Record<string, unknown>> {
  const threads = Number(arg('threads', '2'));
  const steps = Number(arg('steps', '2'));
  const size = Number(arg('size', '256'));
  const untiled = flag('untiled');
  const limit = Number(arg('rss-limit-gib', '17')) * GiB;
  // Highest sampled RSS per phase, to tell which part sets the peak.
  const phasePeak: Record<string, number> = {};
  let phase = 'load';
  const guard = setInterval(() => {
    const rss = procStatus('VmRSS');
    phasePeak[phase] = Math.max(phasePeak[phase] ?? 0, rss);
    if (rss > limit) {
      process.stdout.write(
        JSON.stringify({ aborted: `RSS ${gib(rss)} GiB passed the limit`, peak_rss_gib: gib(rss) }),
      );
      process.exit(3);
    }
  }, 200);
  const load0 = loadavg();
  const rt = createRuntime({ threads });
  const tileSize = Number(arg('tile-size', '0')) || undefined;
  const tLoad = performance.now();
  const p = await loadSdx4Folder(dir, {
    runtime: rt,
    variant: 'fp16',
    tiled: untiled ? false : tileSize ? { tileSize } : true,
  });
  const loadSeconds = (performance.now() - tLoad) / 1000;
  const rssAfterLoad = procStatus('VmRSS');
  phase = 'encode';
  const tEnc = performance.now();
  const e = await encodeSdx4Prompts(p, ['a photo of a red fox in the snow, highly detailed']);
  const encodeSeconds = (performance.now() - tEnc) / 1000;
  const g = new Generator(1);
  const image = new NDArray(
    'float32',
    [1, 3, size, size],
    Float32Array.from({ length: 3 * size * size }, () => g.uniform()),
  );
  const result: Record<string, unknown> = {
    threads,
    mode: untiled ? 'one untiled UNet call (CFG batch 2)' : 'tiled UNet + tiled VAE decode',
    low_res: `${size}x${size}`,
    output: `${4 * size}x${4 * size}`,
    latent: `${size}x${size}x4`,
    load_seconds: round(loadSeconds, 1),
    rss_after_load_gib: gib(rssAfterLoad),
    prompt_encode_seconds: round(encodeSeconds, 2),
  };
  if (untiled) {
    const { state, latents } = prepareSdUpscale(p.components, { image, ...e, steps: 1, noiseLevel: 20 });
    const t0 = performance.now();
    phase = 'unet';
    await p.components.unet.run({
      sample: concatChannels(duplicateBatch(latents), state.imageBatch),
      timestep: state.timesteps[0]!,
      encoderHiddenStates: state.context,
      classLabels: state.classLabels,
    });
    result.untiled_unet_call_seconds = round((performance.now() - t0) / 1000, 1);
  } else {
    const unet = p.components.unet as TiledUNet;
    const vae = p.components.vae!;
    let decodeSeconds = 0;
    const timedVae = {
      ...vae,
      decode: async (z: NDArray) => {
        phase = 'vae decode';
        const t = performance.now();
        const out = await vae.decode(z);
        decodeSeconds = (performance.now() - t) / 1000;
        return out;
      },
    };
    const stepSeconds: number[] = [];
    let tStep = performance.now();
    phase = 'unet';
    const tiles = planTiles(size, size, unet.options, 8).tiles.length;
    const r = await sdUpscale(
      { ...p.components, vae: timedVae },
      {
        image,
        ...e,
        steps,
        noiseLevel: 20,
        generator: new Generator(2),
        onStep: (s) => {
          stepSeconds.push((performance.now() - tStep) / 1000);
          process.stderr.write(`step ${s.i + 1}/${s.total}: ${stepSeconds.at(-1)!.toFixed(1)} s\n`);
          tStep = performance.now();
        },
      },
    );
    const img = r.image!.data as Float32Array;
    let finite = true;
    for (const v of img) if (!Number.isFinite(v)) finite = false;
    Object.assign(result, {
      unet_tiles_per_step: tiles,
      unet_tile: unet.options,
      step_seconds: stepSeconds.map((x) => round(x, 1)),
      vae_decode_seconds: round(decodeSeconds, 1),
      image_shape: r.image!.shape,
      image_finite: finite,
    });
  }
  await p.release();
  clearInterval(guard);
  Object.assign(result, {
    peak_rss_gib: gib(procStatus('VmHWM')),
    peak_rss_source: 'VmHWM of the child process that loaded and ran the pipeline',
    sampled_rss_peak_gib_by_phase: Object.fromEntries(Object.entries(phasePeak).map(([k, v]) => [k, gib(v)])),
    loadavg_start: load0.map((x) => round(x)),
    loadavg_end: loadavg().map((x) => round(x)),
  });
  return result;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const dir = arg('dir', '/tmp/sdx4-full');
  if (flag('child')) {
    process.stdout.write(JSON.stringify(await runChild(dir)));
    return;
  }
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    free_gib_before: gib(freemem()),
    total_gib: gib(totalmem()),
  };
  let built = false;
  try {
    readFileSync(join(dir, 'model_index.json'));
  } catch {
    await rm(dir, { recursive: true, force: true });
    report.build = await buildFolder(dir);
    built = true;
  }
  const child = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const c = spawn(
      process.execPath,
      [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '--child', '--dir', dir],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.on('error', reject);
    c.on('exit', (code) => {
      try {
        resolve({ exit_code: code, ...(JSON.parse(out) as Record<string, unknown>) });
      } catch {
        reject(new Error(`child exited with ${code} and no report`));
      }
    });
  });
  Object.assign(report, child);
  if (built && !flag('keep')) await rm(dir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
