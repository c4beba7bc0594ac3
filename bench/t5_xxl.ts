/**
 * T5 v1.1 XXL streaming memory benchmark (not part of CI):
 *
 *   npx tsx bench/t5_xxl.ts [--dir /tmp/t5xxl] [--keep] [--batch 2] [--length 77] [--runs 2] [--no-prefetch]
 *
 * Writes a random-weight, full-size T5 v1.1 XXL encoder checkpoint (spec §7.1: 4.76 B parameters)
 * as bf16 shards tensor by tensor (≈9.5 GB on disk, never the whole model in memory), encodes a
 * batch of prompts with the streaming encoder picked by `loadT5Encoder`, and prints JSON: seconds
 * per prompt, total seconds, peak RSS (VmHWM, reset after the build via /proc/self/clear_refs) and
 * the RSS sampled during the run. The checkpoint is deleted unless `--keep`; an existing complete
 * one in `--dir` is reused.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { f32ToBf16Bits } from '../src/engine/dtype.js';
import { NDArray } from '../src/engine/ndarray.js';
import { safetensorsHeader } from '../src/io/safetensors.js';
import { T5_V1_1_XXL, type T5Config, t5EncoderParamCount } from '../src/models/t5/config.js';
import { StreamingT5Encoder } from '../src/models/t5/streaming.js';
import { T5Encoder } from '../src/models/t5/t5_encoder.js';
import { atomicWriteChunks } from '../src/platform/node/files.js';
import { loadT5Encoder } from '../src/platform/node/t5_loader.js';

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

/** Make VmHWM start again from the current RSS, so the build phase does not count. */
function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- random bf16 checkpoint

/** transformers `T5PreTrainedModel._init_weights` standard deviations (factor 1.0). */
function initStd(name: string, cfg: T5Config): number | 'norm' {
  if (name.endsWith('layer_norm.weight')) return 'norm';
  if (name === 'shared.weight') return 1;
  if (name.includes('relative_attention_bias')) return cfg.dModel ** -0.5;
  if (name.endsWith('.q.weight')) return (cfg.dModel * cfg.dKv) ** -0.5;
  if (name.endsWith('.o.weight')) return (cfg.numHeads * cfg.dKv) ** -0.5;
  if (name.endsWith('.wo.weight')) return cfg.dFf ** -0.5;
  return cfg.dModel ** -0.5;
}

const POOL = 1 << 22;

/** A pool of N(0, std²) bf16 values; tensors are filled with pool slices at random offsets (fast, not i.i.d.). */
function bf16Pool(std: number, seed: number, shift = 0): Uint16Array {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Uint16Array(POOL);
  for (let i = 0; i < POOL; i++) {
    const z = Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
    out[i] = f32ToBf16Bits(shift + std * z);
  }
  return out;
}

/** Every tensor of these files is stored as bfloat16. */
type TensorSpec = { name: string; shape: number[] };

function shardHeader(tensors: TensorSpec[]): { header: Uint8Array; dataBytes: number } {
  return safetensorsHeader(
    tensors.map((t) => ({ ...t, dtype: 'bfloat16' as const })),
    { format: 'pt' },
  );
}

async function buildCheckpoint(dir: string, cfg: T5Config): Promise<{ bytes: number; seconds: number }> {
  const t0 = performance.now();
  await mkdir(dir, { recursive: true });
  const specs: TensorSpec[] = new T5Encoder(cfg)
    .parameters()
    .map((p) => ({ name: p.name, shape: [...p.shape] }));
  // transformers' shard size for this model is ~5 GB; 2 GB shards exercise more index lookups.
  const shards: TensorSpec[][] = [[]];
  let size = 0;
  for (const t of specs) {
    const n = t.shape.reduce((a, b) => a * b, 1) * 2;
    if (size + n > 2e9 && shards[shards.length - 1]!.length) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1]!.push(t);
    size += n;
  }
  const pools = new Map<string, Uint16Array>();
  const pool = (name: string) => {
    const std = initStd(name, cfg);
    const key = String(std);
    let p = pools.get(key);
    if (!p) {
      p = std === 'norm' ? bf16Pool(0.1, pools.size + 1, 1) : bf16Pool(std, pools.size + 1);
      pools.set(key, p);
    }
    return p;
  };
  let seed = 12345;
  const nextOffset = (max: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % max;
  };
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards.length; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const { header, dataBytes } = shardHeader(shards[s]!);
    total += dataBytes;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield header;
      for (const t of shards[s]!) {
        weightMap[t.name] = file;
        const n = t.shape.reduce((a, b) => a * b, 1);
        const src = pool(t.name);
        const buf = new Uint16Array(n);
        for (let at = 0; at < n; at += 1 << 16) {
          const len = Math.min(1 << 16, n - at);
          const off = nextOffset(POOL - len);
          buf.set(src.subarray(off, off + len), at);
        }
        yield new Uint8Array(buf.buffer);
      }
    }
    await atomicWriteChunks(join(dir, file), chunks());
    process.stderr.write(`wrote ${file} (${(dataBytes / 1e9).toFixed(2)} GB)\n`);
  }
  await writeFile(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
  );
  // Written last: its presence marks a complete checkpoint that a later run may reuse.
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify(
      {
        architectures: ['T5EncoderModel'],
        model_type: 't5',
        d_model: cfg.dModel,
        d_kv: cfg.dKv,
        num_heads: cfg.numHeads,
        d_ff: cfg.dFf,
        num_layers: cfg.numLayers,
        vocab_size: cfg.vocabSize,
        feed_forward_proj: 'gated-gelu',
        dense_act_fn: 'gelu_new',
        is_gated_act: true,
        relative_attention_num_buckets: cfg.relativeAttentionNumBuckets,
        relative_attention_max_distance: cfg.relativeAttentionMaxDistance,
        layer_norm_epsilon: cfg.layerNormEpsilon,
        torch_dtype: 'bfloat16',
        tie_word_embeddings: false,
      },
      null,
      2,
    ),
  );
  return { bytes: total, seconds: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const dir = arg('dir', '/tmp/t5xxl');
  const batch = Number(arg('batch', '2'));
  const length = Number(arg('length', '77'));
  const runs = Number(arg('runs', '2'));
  const cfg = T5_V1_1_XXL;
  const params = t5EncoderParamCount(cfg);
  const need = params * 2 + 0.5 * GiB;

  let build: { bytes: number; seconds: number } | 'reused';
  let complete = false;
  try {
    readFileSync(join(dir, 'config.json'));
    complete = true;
  } catch {}
  if (complete) build = 'reused';
  else {
    await mkdir(dir, { recursive: true });
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    if (free < need) {
      throw new Error(
        `${dir}: ${(free / GiB).toFixed(1)} GiB free, need ${(need / GiB).toFixed(1)} GiB; pass --dir`,
      );
    }
    build = await buildCheckpoint(dir, cfg);
  }
  const buildPeak = procStatus('VmHWM');
  const peakReset = resetPeakRss();

  const samples: number[] = [];
  const timer = setInterval(() => samples.push(procStatus('VmRSS')), 100);
  const tLoad = performance.now();
  const blockMs: number[] = [];
  const encoder = await loadT5Encoder(dir, {
    prefetch: !flag('no-prefetch'),
    onBlock: (_i, _n, ms) => blockMs.push(ms),
  });
  const loadSeconds = (performance.now() - tLoad) / 1000;
  if (!(encoder instanceof StreamingT5Encoder)) throw new Error('expected the streaming encoder for XXL');

  // Row 0 fills all positions; row 1 is a short prompt, then padding (mask 0), as in the pipeline.
  const ids = new BigInt64Array(batch * length);
  const mask = new BigInt64Array(batch * length);
  let s = 7;
  for (let b = 0; b < batch; b++) {
    const real = b % 2 === 0 ? length : Math.min(12, length);
    for (let t = 0; t < real; t++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      ids[b * length + t] = t === real - 1 ? 1n : BigInt(3 + (s % 32000));
      mask[b * length + t] = 1n;
    }
  }
  const inputIds = new NDArray('int64', [batch, length], ids);
  const attentionMask = new NDArray('int64', [batch, length], mask);
  const runSeconds: number[] = [];
  let out: NDArray | undefined;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    out = await encoder.encode(inputIds, attentionMask);
    runSeconds.push((performance.now() - t0) / 1000);
    process.stderr.write(`run ${r + 1}: ${runSeconds[r]!.toFixed(1)} s\n`);
  }
  await encoder.release();
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
  if (!flag('keep')) await rm(dir, { recursive: true, force: true });

  const gib = (x: number) => Math.round((x / GiB) * 1000) / 1000;
  const first = runSeconds[0]!;
  const best = Math.min(...runSeconds);
  process.stdout.write(
    `${JSON.stringify(
      {
        model: 'T5 v1.1 XXL encoder (random weights, bf16 shards)',
        parameters: params,
        checkpoint: build === 'reused' ? 'reused' : { gb: build.bytes / 1e9, build_seconds: build.seconds },
        batch,
        tokens: length,
        load_seconds: loadSeconds,
        run_seconds: runSeconds,
        total_seconds_first_run: first,
        seconds_per_prompt_first_run: first / batch,
        seconds_per_prompt_best: best / batch,
        block_ms_median: blockMs.sort((a, b) => a - b)[Math.floor(blockMs.length / 2)],
        peak_rss_gib: gib(peak),
        peak_rss_source: peakReset ? 'VmHWM after clear_refs (encode phase only)' : 'VmHWM (whole process)',
        build_phase_peak_rss_gib: gib(buildPeak),
        sampled_rss_max_gib: gib(Math.max(...samples)),
        sampled_rss_median_gib: gib(samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!),
        rss_samples: samples.length,
        output_shape: out!.shape,
        output_finite: finite,
        output_abs_max: absMax,
        checkpoint_deleted: !flag('keep'),
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
