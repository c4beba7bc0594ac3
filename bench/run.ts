/**
 * `npm run bench [-- --json] [--quick] [--threads N] [--only conv|matmul|tiny] [--no-torch]`
 *
 * Times the engine on onnxruntime-node (bench/engine.ts), then, in the same run and only
 * after every ORT session has been released, the PyTorch twin (bench/torch_conv.py) as a
 * child process. With --json exactly one JSON object goes to stdout; notes go to stderr.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Runtime } from '../src/engine/index.js';
import { NodeBackend } from '../src/platform/node/ort.js';
import { benchConv3x3, benchMatmul, benchTiny, FULL, QUICK } from './engine.js';
import { benchGenerate } from './generate.js';
import { benchModels, defaultT5Config, defaultUNetConfig } from './models.js';

const ONLY = ['conv', 'matmul', 'tiny', 'models', 'generate'] as const;
type Only = (typeof ONLY)[number];

const CONV = 'conv3x3_64ch_64px_b8';

interface Args {
  json: boolean;
  quick: boolean;
  threads: number;
  only: Only | undefined;
  torch: boolean;
  unetConfig: string | undefined;
  t5Config: string | undefined;
  batch: number;
  size: number;
  compareTorch: boolean;
}

function parse(): Args {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      threads: { type: 'string' },
      only: { type: 'string' },
      'no-torch': { type: 'boolean', default: false },
      'compare-torch': { type: 'boolean', default: false },
      'unet-config': { type: 'string' },
      't5-config': { type: 'string' },
      batch: { type: 'string', default: '4' },
      size: { type: 'string', default: '64' },
      steps: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stderr.write(
      'usage: npm run bench -- [--json] [--quick] [--threads N] [--only conv|matmul|tiny|models|generate] [--no-torch]\n' +
        '       [--unet-config FILE] [--t5-config FILE] [--batch N] [--size S] [--compare-torch]\n' +
        'Model figures (unet_forward_ms, sample_step_ms, unet_train_step_ms, t5_encode_ms) run with --only models\n' +
        'or --compare-torch (which also runs bench/torch_models.py: diffusers + transformers on PyTorch).\n',
    );
    process.exit(0);
  }
  const threads = values.threads === undefined ? availableParallelism() : Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads must be a positive integer`);
  const only = values.only as Only | undefined;
  if (only !== undefined && !ONLY.includes(only)) throw new Error(`--only must be one of ${ONLY.join(', ')}`);
  const batch = Number(values.batch);
  const size = Number(values.size);
  if (!Number.isInteger(batch) || batch < 1) throw new Error('--batch must be a positive integer');
  if (!Number.isInteger(size) || size < 8) throw new Error('--size must be an integer ≥ 8');
  return {
    json: values.json,
    quick: values.quick,
    threads,
    only,
    torch: !values['no-torch'],
    unetConfig: values['unet-config'],
    t5Config: values['t5-config'],
    batch,
    size,
    compareTorch: values['compare-torch'],
  };
}

const note = (s: string) => process.stderr.write(`${s}\n`);
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

function ortVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    return (require('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

interface TorchOutcome {
  torch: Record<string, unknown> | null;
  note?: string;
}

/** Runs the twin synchronously: nothing else (no ORT session) is running meanwhile. */
function runTorch(threads: number, quick: boolean): TorchOutcome {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'torch_conv.py');
  const python = process.env.PYTHON ?? 'python3';
  const args = [script, '--json', '--threads', String(threads), ...(quick ? ['--quick'] : [])];
  const res = spawnSync(python, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 600_000,
  });
  if (res.error) return { torch: null, note: `${python} not runnable: ${res.error.message}` };
  if (res.status !== 0) {
    return { torch: null, note: `${python} bench/torch_conv.py exited ${res.status}: ${res.stderr.trim()}` };
  }
  const line = res.stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    if (typeof parsed.error === 'string') return { torch: null, note: parsed.error };
    return { torch: parsed };
  } catch {
    return { torch: null, note: `unparseable output from bench/torch_conv.py: ${line.slice(0, 200)}` };
  }
}

/** The diffusers/transformers twin for the model figures (same configs, same batch). */
function runTorchModels(
  args: Args,
  cfgs: { unet: Record<string, unknown>; t5: Record<string, unknown> },
): TorchOutcome {
  const dir = mkdtempSync(join(tmpdir(), 'imagen-bench-'));
  const unetPath = join(dir, 'unet.json');
  const t5Path = join(dir, 't5.json');
  writeFileSync(unetPath, JSON.stringify({ ...cfgs.unet, sample_size: args.size }));
  writeFileSync(t5Path, JSON.stringify(cfgs.t5));
  const script = join(dirname(fileURLToPath(import.meta.url)), 'torch_models.py');
  const python = process.env.PYTHON ?? 'python3';
  const res = spawnSync(
    python,
    [
      script,
      '--json',
      '--threads',
      String(args.threads),
      '--unet-config',
      unetPath,
      '--t5-config',
      t5Path,
      '--batch',
      String(args.batch),
      '--size',
      String(args.size),
      ...(args.quick ? ['--quick'] : []),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 1_800_000 },
  );
  rmSync(dir, { recursive: true, force: true });
  if (res.error) return { torch: null, note: `${python} not runnable: ${res.error.message}` };
  const line = res.stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    if (typeof parsed.error === 'string') return { torch: null, note: parsed.error };
    return { torch: parsed };
  } catch {
    return {
      torch: null,
      note: `bench/torch_models.py exited ${res.status}: ${res.stderr.trim().slice(-400)}`,
    };
  }
}

async function main(): Promise<void> {
  const args = parse();
  const opts = args.quick ? QUICK : FULL;
  const want = (k: Only) => (args.only === undefined && k !== 'models') || args.only === k;
  const rt = new Runtime(new NodeBackend({ threads: args.threads }));

  const out: Record<string, unknown> = {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    threads: args.threads,
    node: process.version,
    onnxruntime: ortVersion(),
    date: new Date().toISOString(),
    quick: args.quick,
  };

  if (want('generate')) {
    note('text → 256×256 with the shipped model (cold, then warm) ...');
    const g = await benchGenerate(args.threads, args.quick ? 1 : 3);
    if ('error' in g) out.generate_note = g.error;
    else Object.assign(out, g);
  }
  if (want('matmul')) {
    note('matmul 1024³ ...');
    const m = await benchMatmul(rt, opts);
    out.matmul_1024_gflops = round(m.gflops, 1);
    out.matmul_1024_median_gflops = round(m.medianGflops, 1);
    out.matmul_1024_best_ms = round(m.stats.bestMs);
    out.matmul_1024_median_ms = round(m.stats.medianMs);
  }
  if (want('conv')) {
    note('conv 3×3 64ch 64² b8 forward, forward+backward ...');
    const c = await benchConv3x3(rt, opts);
    out[`${CONV}_fwd_ms`] = round(c.fwd.medianMs);
    out[`${CONV}_fwd_best_ms`] = round(c.fwd.bestMs);
    out[`${CONV}_fwd_gflops`] = round(c.fwdGflops, 1);
    out[`${CONV}_fwd_bwd_ms`] = round(c.fwdBwd.medianMs);
    out[`${CONV}_fwd_bwd_best_ms`] = round(c.fwdBwd.bestMs);
    out[`${CONV}_fwd_bwd_gflops`] = round(c.fwdBwdGflops, 1);
    out.runs_conv = { fwd: c.fwd.runs, fwd_bwd: c.fwdBwd.runs };
  }
  const wantModels = args.only === 'models' || args.compareTorch;
  let modelConfigs: { unet: Record<string, unknown>; t5: Record<string, unknown> } | undefined;
  if (wantModels) {
    const unet = args.unetConfig
      ? JSON.parse(readFileSync(args.unetConfig, 'utf8'))
      : defaultUNetConfig(args.size);
    const t5 = args.t5Config ? JSON.parse(readFileSync(args.t5Config, 'utf8')) : defaultT5Config();
    modelConfigs = { unet, t5 };
    note(`models: UNet forward / CFG step / train step (batch ${args.batch}, ${args.size}²), T5 encode ...`);
    const m = await benchModels(rt, opts, {
      unetConfig: unet,
      t5Config: t5,
      batch: args.batch,
      size: args.size,
    });
    out.unet_params = m.params;
    out.unet_forward_ms = round(m.unetForward.medianMs);
    out.unet_forward_gflops = round(m.unetForwardGflop / (m.unetForward.medianMs / 1000), 1);
    out.sample_step_ms = round(m.sampleStep.medianMs);
    out.sample_step_gflops = round((2 * m.unetForwardGflop) / (m.sampleStep.medianMs / 1000), 1);
    out.unet_train_step_ms = round(m.trainStep.medianMs);
    out.unet_train_step_gflops = round(m.trainStepGflop / (m.trainStep.medianMs / 1000), 1);
    out.trainer_step_ms = round(m.trainerStep.medianMs);
    out.t5_encode_ms = round(m.t5Encode.medianMs);
    out.t5_encode_gflops = round(m.t5Gflop / (m.t5Encode.medianMs / 1000), 1);
    out.peak_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);
    out.batch = args.batch;
    out.size = args.size;
  }
  if (want('tiny')) {
    note('tiny graph (1-element Add) ...');
    const t = await benchTiny(rt, opts);
    out.tiny_graph_run_us = round(t.medianUs, 1);
    out.tiny_graph_run_best_us = round(t.bestUs, 1);
  }

  // The twin only after every ORT session above has been released.
  if (!args.torch) {
    out.torch = null;
    out.torch_note = 'skipped (--no-torch)';
  } else if (want('conv') || want('matmul')) {
    note('PyTorch twin (python3 bench/torch_conv.py) ...');
    const t = runTorch(args.threads, args.quick);
    out.torch = t.torch;
    if (t.note) {
      out.torch_note = t.note;
      note(`torch comparison skipped: ${t.note}`);
    }
    if (t.torch && want('conv')) {
      const ratio = (k: string) => {
        const tm = t.torch![`${CONV}_${k}_ms`];
        const im = out[`${CONV}_${k}_ms`];
        return typeof tm === 'number' && typeof im === 'number' ? round(tm / im) : null;
      };
      out.ratio_conv_fwd = ratio('fwd');
      out.ratio_conv_fwd_bwd = ratio('fwd_bwd');
    }
  }

  if (args.compareTorch && modelConfigs) {
    note(
      'PyTorch twin (python3 bench/torch_models.py: diffusers UNet2DConditionModel + transformers T5EncoderModel) ...',
    );
    const t = runTorchModels(args, modelConfigs);
    out.torch_models = t.torch;
    if (t.note) out.torch_models_note = t.note;
    if (t.torch) {
      for (const k of ['unet_forward_ms', 'sample_step_ms', 'unet_train_step_ms', 't5_encode_ms']) {
        const tm = t.torch[k];
        const im = out[k];
        out[`ratio_${k.replace(/_ms$/, '')}`] =
          typeof tm === 'number' && typeof im === 'number' ? round(tm / im) : null;
      }
    }
  }

  if (args.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else printTable(out);
}

function printTable(out: Record<string, unknown>): void {
  const torch = (out.torch ?? null) as Record<string, unknown> | null;
  const fmt = (v: unknown, unit: string) => (typeof v === 'number' ? `${v} ${unit}` : '—');
  const rows: [string, string, string][] = [];
  const add = (label: string, key: string, unit: string) => {
    if (out[key] === undefined) return;
    rows.push([label, fmt(out[key], unit), torch ? fmt(torch[key], unit) : '—']);
  };
  add('MatMul 1024³ (best)', 'matmul_1024_gflops', 'GFLOP/s');
  add('Conv3×3 64ch 64² b8 fwd (median)', `${CONV}_fwd_ms`, 'ms');
  add('Conv3×3 64ch 64² b8 fwd (best)', `${CONV}_fwd_best_ms`, 'ms');
  add('Conv3×3 64ch 64² b8 fwd', `${CONV}_fwd_gflops`, 'GFLOP/s');
  add('Conv3×3 64ch 64² b8 fwd+bwd (median)', `${CONV}_fwd_bwd_ms`, 'ms');
  add('Conv3×3 64ch 64² b8 fwd+bwd (best)', `${CONV}_fwd_bwd_best_ms`, 'ms');
  add('Conv3×3 64ch 64² b8 fwd+bwd', `${CONV}_fwd_bwd_gflops`, 'GFLOP/s');
  add('Tiny graph run (median)', 'tiny_graph_run_us', 'µs');
  const w0 = Math.max(...rows.map((r) => r[0].length), 6);
  const w1 = Math.max(...rows.map((r) => r[1].length), 9);
  const line = (a: string, b: string, c: string) => `${a.padEnd(w0)}  ${b.padStart(w1)}  ${c.padStart(14)}`;
  const lines = [
    `${out.cpu} — ${out.cores} cores, ${out.threads} threads; node ${out.node}, onnxruntime-node ${out.onnxruntime}` +
      (torch ? `, torch ${torch.version}` : ''),
    '',
    line('figure', 'imagen-ts', 'torch'),
    line('-'.repeat(w0), '-'.repeat(w1), '-'.repeat(14)),
    ...rows.map((r) => line(...r)),
  ];
  if (out.ratio_conv_fwd_bwd !== undefined) {
    lines.push(
      '',
      `ratio torch/imagen-ts (>1: imagen-ts faster): fwd ${out.ratio_conv_fwd}, fwd+bwd ${out.ratio_conv_fwd_bwd}`,
    );
  }
  if (out.torch_note) lines.push('', `torch: ${out.torch_note}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
