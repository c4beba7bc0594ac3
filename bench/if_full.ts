/**
 * Full-size DeepFloyd IF UNet benchmark on CPU (not part of CI):
 *
 *   npx tsx bench/if_full.ts [--stage I|II|both] [--dir /tmp/if-full] [--steps 1] [--keep] [--no-prefetch] [--threads N]
 *
 * Writes random-weight, full-size IF-I-XL and IF-II-L UNet folders from the published configs (spec
 * §2.1: 4.30 B and 1.24 B parameters) as `unet/diffusion_pytorch_model.fp16.safetensors`, tensor by
 * tensor (never the whole model in memory), then runs classifier-free-guided denoising steps — one
 * UNet call on batch 2 = [uncond; cond] with 77×4096 random text states — for stage I at 64×64 and
 * stage II at 256×256 (class_labels = noise level 250), each stage in a fresh child process so the
 * peak RSS (VmHWM) is that stage's alone. Prints JSON. Checkpoints are deleted unless `--keep`; a
 * complete folder already in `--dir` is reused.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, statfs, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { classifierFreeGuidance } from '../src/diffusion/guidance.js';
import { f32ToF16Bits } from '../src/engine/dtype.js';
import { countFlops } from '../src/engine/flops.js';
import { Trace } from '../src/engine/graph.js';
import { NDArray } from '../src/engine/ndarray.js';
import { safetensorsHeader } from '../src/io/safetensors.js';
import { StreamingUNetRunner } from '../src/models/unet/streaming.js';
import { UNet2DConditionModel } from '../src/models/unet/unet.js';
import { atomicWriteChunks } from '../src/platform/node/files.js';
import { cudaUnavailableReason } from '../src/platform/node/ort.js';
import { createRuntime } from '../src/platform/node/runtime.js';
import { loadUNetRunner } from '../src/platform/node/unet_loader.js';

const GiB = 2 ** 30;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

function procStatus(key: 'VmRSS' | 'VmHWM'): number {
  const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

const gib = (x: number) => Math.round((x / GiB) * 1000) / 1000;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

// ---------------------------------------------------------------- published configs (spec §2.1)

const IF_I_XL = {
  _class_name: 'UNet2DConditionModel',
  _name_or_path: 'random-weights IF-I-XL-v1.0 architecture (bench/if_full.ts)',
  sample_size: 64,
  in_channels: 3,
  out_channels: 6,
  block_out_channels: [704, 1408, 2112, 2816],
  layers_per_block: 3,
  down_block_types: [
    'ResnetDownsampleBlock2D',
    'SimpleCrossAttnDownBlock2D',
    'SimpleCrossAttnDownBlock2D',
    'SimpleCrossAttnDownBlock2D',
  ],
  up_block_types: [
    'SimpleCrossAttnUpBlock2D',
    'SimpleCrossAttnUpBlock2D',
    'SimpleCrossAttnUpBlock2D',
    'ResnetUpsampleBlock2D',
  ],
  mid_block_type: 'UNetMidBlock2DSimpleCrossAttn',
  attention_head_dim: 64,
  num_attention_heads: null,
  cross_attention_dim: 2816,
  encoder_hid_dim: 4096,
  encoder_hid_dim_type: 'text_proj',
  addition_embed_type: 'text',
  addition_embed_type_num_heads: 64,
  addition_time_embed_dim: null,
  class_embed_type: null,
  act_fn: 'gelu',
  norm_num_groups: 32,
  norm_eps: 1e-5,
  resnet_time_scale_shift: 'scale_shift',
  resnet_skip_time_act: false,
  resnet_out_scale_factor: 1.0,
  mid_block_scale_factor: 1,
  time_embedding_type: 'positional',
  time_embedding_dim: null,
  time_embedding_act_fn: null,
  flip_sin_to_cos: true,
  freq_shift: 0,
  only_cross_attention: false,
  mid_block_only_cross_attention: null,
  cross_attention_norm: 'group_norm',
};

const IF_II_L = {
  ...IF_I_XL,
  _name_or_path: 'random-weights IF-II-L-v1.0 architecture (bench/if_full.ts)',
  sample_size: 256,
  in_channels: 6,
  block_out_channels: [160, 320, 640, 960, 1280],
  layers_per_block: [2, 2, 3, 5, 5],
  down_block_types: [
    'ResnetDownsampleBlock2D',
    'ResnetDownsampleBlock2D',
    'ResnetDownsampleBlock2D',
    'SimpleCrossAttnDownBlock2D',
    'SimpleCrossAttnDownBlock2D',
  ],
  up_block_types: [
    'SimpleCrossAttnUpBlock2D',
    'SimpleCrossAttnUpBlock2D',
    'ResnetUpsampleBlock2D',
    'ResnetUpsampleBlock2D',
    'ResnetUpsampleBlock2D',
  ],
  cross_attention_dim: 1280,
  class_embed_type: 'timestep',
  resnet_skip_time_act: true,
  resnet_out_scale_factor: 1.4142271248762552,
  mid_block_scale_factor: 1.4142271248762552,
  time_embedding_dim: 1280,
  time_embedding_act_fn: 'gelu',
};

interface StageSpec {
  name: 'I' | 'II';
  model: string;
  config: Record<string, unknown>;
  /** Parameter count the spec derives for the published model (§2.1 / §4.11). */
  params: number;
  size: number;
  classLabel?: number;
}

const STAGES: Record<'I' | 'II', StageSpec> = {
  I: { name: 'I', model: 'IF-I-XL', config: IF_I_XL, params: 4_304_695_110, size: 64 },
  II: { name: 'II', model: 'IF-II-L', config: IF_II_L, params: 1_243_277_190, size: 256, classLabel: 250 },
};

// ---------------------------------------------------------------- random fp16 checkpoint

const POOL = 1 << 22;

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

/** A pool of N(mean, std²) fp16 values; tensors are filled with pool slices at random offsets (fast, not i.i.d.). */
function f16Pool(mean: number, std: number, seed: number): Uint16Array {
  const rand = rng(seed);
  const out = new Uint16Array(POOL);
  for (let i = 0; i < POOL; i++) {
    const z = Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
    out[i] = f32ToF16Bits(mean + std * z);
  }
  return out;
}

/**
 * Scale of a random weight: 1/√fan_in for matrices and kernels (keeps activations O(1) through 4 B
 * random parameters), norms ≈ 1, biases small. Not upstream's init; only finite, sane outputs matter.
 */
function initOf(name: string, shape: readonly number[]): { mean: number; std: number } {
  if (/norm[^.]*\.weight$/.test(name) || name.endsWith('norm.weight')) return { mean: 1, std: 0.05 };
  if (shape.length === 1) return { mean: 0, std: 0.02 };
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return { mean: 0, std: 1 / Math.sqrt(fanIn) };
}

/** Every tensor of these files is stored as float16. */
type TensorSpec = { name: string; shape: number[] };

function header(tensors: TensorSpec[]): { header: Uint8Array; dataBytes: number } {
  return safetensorsHeader(
    tensors.map((t) => ({ ...t, dtype: 'float16' as const })),
    { format: 'pt' },
  );
}

async function buildUNetFolder(dir: string, stage: StageSpec): Promise<{ gb: number; seconds: number }> {
  const t0 = performance.now();
  const unetDir = join(dir, 'unet');
  await mkdir(unetDir, { recursive: true });
  const specs: TensorSpec[] = new UNet2DConditionModel(stage.config)
    .parameters()
    .map((p) => ({ name: p.name, shape: [...p.shape] }));
  const count = specs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  if (count !== stage.params) {
    throw new Error(`${stage.model}: config gives ${count} parameters, the spec says ${stage.params}`);
  }
  const pools = new Map<string, Uint16Array>();
  const pool = (name: string, shape: readonly number[]) => {
    const { mean, std } = initOf(name, shape);
    const key = `${mean}/${std}`;
    let p = pools.get(key);
    if (!p) {
      p = f16Pool(mean, std, pools.size + 1);
      pools.set(key, p);
    }
    return p;
  };
  const offsets = rng(12345);
  const { header: h, dataBytes } = header(specs);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    yield h;
    for (const t of specs) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const src = pool(t.name, t.shape);
      const buf = new Uint16Array(n);
      for (let at = 0; at < n; at += 1 << 16) {
        const len = Math.min(1 << 16, n - at);
        const off = Math.floor(offsets() * (POOL - len));
        buf.set(src.subarray(off, off + len), at);
      }
      yield new Uint8Array(buf.buffer);
    }
  }
  await atomicWriteChunks(join(unetDir, 'diffusion_pytorch_model.fp16.safetensors'), chunks());
  // Written last: its presence marks a complete folder that a later run may reuse.
  await writeFile(join(unetDir, 'config.json'), JSON.stringify(stage.config, null, 2));
  return { gb: dataBytes / 1e9, seconds: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------- child: one stage

function randn(shape: number[], seed: number, std = 1): NDArray {
  const rand = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = std * Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
  }
  return new NDArray('float32', shape, out);
}

async function runStage(stage: StageSpec, dir: string, steps: number): Promise<Record<string, unknown>> {
  const load0 = loadavg();
  const samples: number[] = [];
  const timer = setInterval(() => samples.push(procStatus('VmRSS')), 200);
  const threads = Number(arg('threads', '0')) || undefined;
  const rt = createRuntime(threads ? { threads } : {});
  const perPiece = new Map<string, { ms: number; readMs: number; widenMs: number; runMs: number }>();
  const stepSplit = { readMs: 0, widenMs: 0, runMs: 0 };
  const tLoad = performance.now();
  const runner = await loadUNetRunner(join(dir, 'unet'), {
    runtime: rt,
    variant: 'fp16',
    prefetch: !flag('no-prefetch'),
    widen: arg('widen', 'graph') === 'js' ? 'js' : 'graph',
    onPiece: (name, _i, _n, ms, split) => {
      perPiece.set(name, { ms, ...split });
      stepSplit.readMs += split.readMs;
      stepSplit.widenMs += split.widenMs;
      stepSplit.runMs += split.runMs;
    },
  });
  const loadSeconds = (performance.now() - tLoad) / 1000;
  if (!(runner instanceof StreamingUNetRunner)) throw new Error('expected the streaming runner');
  const rssAfterLoad = procStatus('VmRSS');

  const cfg = runner.unet.config;
  const b = 2;
  const s = stage.size;
  // Stage II's input is [noisy x_t ; noised upscaled low-res] on channels, as the pipeline builds it.
  const sample = randn([b, cfg.in_channels, s, s], 1);
  const embeds = randn([b, 77, 4096], 2, 0.2);
  const classLabels =
    stage.classLabel !== undefined ? NDArray.i64([b], [stage.classLabel, stage.classLabel]) : undefined;
  // Matrix FLOPs of one call (convs, matmuls, attention), from the traced whole-UNet graph.
  const tr = new Trace();
  const gflop =
    countFlops([
      runner.unet.forward({
        sample: tr.input('sample', sample.shape),
        timestep: tr.input('timestep', [1], 'int64'),
        encoderHiddenStates: tr.input('encoder_hidden_states', embeds.shape),
        classLabels: classLabels && tr.input('class_labels', classLabels.shape, 'int64'),
      }),
    ]) / 1e9;
  const stepSeconds: number[] = [];
  const splits: (typeof stepSplit)[] = [];
  let out: NDArray | undefined;
  for (let i = 0; i < steps; i++) {
    stepSplit.readMs = stepSplit.widenMs = stepSplit.runMs = 0;
    const t0 = performance.now();
    const raw = await runner.run({
      sample,
      timestep: 999 - i * 10,
      encoderHiddenStates: embeds,
      classLabels,
    });
    out = classifierFreeGuidance(raw, 7, 3);
    stepSeconds.push((performance.now() - t0) / 1000);
    splits.push({ ...stepSplit });
    process.stderr.write(`stage ${stage.name} step ${i + 1}: ${stepSeconds[i]!.toFixed(1)} s\n`);
  }
  await runner.release();
  clearInterval(timer);
  samples.push(procStatus('VmRSS'));
  const peak = procStatus('VmHWM');
  const data = out!.data as Float32Array;
  let finite = true;
  let absMax = 0;
  for (const v of data) {
    if (!Number.isFinite(v)) finite = false;
    absMax = Math.max(absMax, Math.abs(v));
  }
  const slowest = [...perPiece.entries()]
    .sort((x, y) => y[1].ms - x[1].ms)
    .slice(0, 5)
    .map(([name, t]) => ({
      name,
      ms: Math.round(t.ms),
      run_ms: Math.round(t.runMs),
      widen_ms: Math.round(t.widenMs),
    }));
  return {
    stage: stage.name,
    model: `${stage.model} UNet (random fp16 weights, published config)`,
    parameters: runner.unet.parameters().reduce((n, p) => n + p.size, 0),
    resolution: `${s}x${s}`,
    batch: `${b} (CFG: uncond + cond)`,
    text_states: [b, 77, 4096],
    class_labels: stage.classLabel ?? null,
    pieces: runner.pieceCount,
    distinct_graphs: runner.graphCount,
    largest_piece_float32_gib: gib(runner.largestPieceSize * 4),
    load_seconds: round(loadSeconds, 3),
    step_seconds: stepSeconds.map((x) => round(x, 1)),
    seconds_per_step_first: round(stepSeconds[0]!, 1),
    seconds_per_step_best: round(Math.min(...stepSeconds), 1),
    gflop_per_step: Math.round(gflop),
    achieved_gflops_best_step: round(gflop / Math.min(...stepSeconds), 1),
    step_split_seconds: splits.map((x) => ({
      wait_for_bytes: round(x.readMs / 1000),
      widen_in_js: round(x.widenMs / 1000),
      run_incl_first_compile: round(x.runMs / 1000),
    })),
    slowest_pieces_last_step: slowest,
    peak_rss_gib: gib(peak),
    peak_rss_source: 'VmHWM of this stage’s own child process',
    rss_after_load_gib: gib(rssAfterLoad),
    sampled_rss_max_gib: gib(Math.max(...samples)),
    output_shape: out!.shape,
    output_finite: finite,
    output_abs_max: round(absMax, 4),
    loadavg_start: load0.map((x) => round(x)),
    loadavg_end: loadavg().map((x) => round(x)),
    threads: threads ?? 'default (all cores)',
    fp16_widened_in: arg('widen', 'graph'),
    prefetch: !flag('no-prefetch'),
  };
}

// ---------------------------------------------------------------- main

function runChild(stage: 'I' | 'II', dir: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const args = [
      ...process.execArgv,
      process.argv[1]!,
      ...process.argv.slice(2),
      '--child',
      stage,
      '--dir',
      dir,
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`stage ${stage} child exited with ${code}`));
      else resolve(JSON.parse(stdout) as Record<string, unknown>);
    });
  });
}

async function main(): Promise<void> {
  const dir = arg('dir', '/tmp/if-full');
  const steps = Number(arg('steps', '1'));
  const child = arg('child', '');
  if (child === 'I' || child === 'II') {
    const result = await runStage(STAGES[child], join(dir, child === 'I' ? 'IF-I-XL' : 'IF-II-L'), steps);
    process.stdout.write(JSON.stringify(result));
    return;
  }
  const which = arg('stage', 'both');
  const stages: ('I' | 'II')[] = which === 'both' ? ['I', 'II'] : [which as 'I' | 'II'];
  if (!stages.every((s) => s === 'I' || s === 'II'))
    throw new Error(`--stage must be I, II or both, got ${which}`);
  const results: Record<string, unknown>[] = [];
  const builds: Record<string, unknown> = {};
  for (const s of stages) {
    const spec = STAGES[s];
    const folder = join(dir, s === 'I' ? 'IF-I-XL' : 'IF-II-L');
    if (existsSync(join(folder, 'unet', 'config.json'))) builds[spec.model] = 'reused';
    else {
      await mkdir(dir, { recursive: true });
      const fs = await statfs(dir);
      const free = fs.bavail * fs.bsize;
      const need = spec.params * 2 + 0.5 * GiB;
      if (free < need) {
        throw new Error(
          `${dir}: ${(free / GiB).toFixed(1)} GiB free, need ${(need / GiB).toFixed(1)} GiB; pass --dir`,
        );
      }
      process.stderr.write(
        `writing ${spec.model} (${((spec.params * 2) / 1e9).toFixed(2)} GB fp16) to ${folder}\n`,
      );
      builds[spec.model] = await buildUNetFolder(folder, spec);
    }
    try {
      results.push(await runChild(s, dir));
    } finally {
      if (!flag('keep')) await rm(folder, { recursive: true, force: true });
    }
  }
  process.stdout.write(
    `${JSON.stringify(
      {
        command: `npx tsx bench/if_full.ts ${process.argv.slice(2).join(' ')}`.trim(),
        date: new Date().toISOString(),
        cpu: readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1] ?? 'unknown',
        cuda: cudaUnavailableReason() ?? 'available',
        checkpoints: builds,
        checkpoints_deleted: !flag('keep'),
        stages: results,
      },
      null,
      2,
    )}\n`,
  );
}

main().catch((e) => {
  process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
  process.exitCode = 1;
});
