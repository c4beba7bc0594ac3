/**
 * Per-op kernel-time profile of one UNet training step (the bench's default config): a backend that
 * creates ORT sessions with `enableProfiling`, a few warm-up + profiled train steps, then the
 * `*_kernel_time` events of the profiled steps summed by op_name. Development tool; not a test.
 *
 *   npx tsx bench/profile_train.ts [--batch 4] [--size 64] [--steps 3]
 */
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { makeSchedule, parseSchedulerConfig } from '../src/diffusion/schedule.js';
import type { DType } from '../src/engine/dtype.js';
import { type Backend, type BackendSession, NDArray, Runtime } from '../src/engine/index.js';
import { T5Encoder } from '../src/models/t5/t5_encoder.js';
import { UNet2DConditionModel } from '../src/models/unet/unet.js';
import { ByT5Tokenizer } from '../src/text/byt5.js';
import { ifSchedulerConfig, tinyTextEncoderConfig } from '../src/train/config.js';
import { DEFAULT_HYPERPARAMETERS, DiffusionTrainer } from '../src/train/trainer.js';
import { randomF32 } from './engine.js';
import { defaultUNetConfig } from './models.js';

const arg = (k: string, d: number) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const batch = arg('batch', 4);
const size = arg('size', 64);
const steps = arg('steps', 3);
const warm = arg('warmup', 2);
const threads = Number(process.env.IMAGEN_THREADS ?? 0) || availableParallelism();

// Same session options as NodeBackend (CPU), plus profiling; the session object is kept for endProfiling.
const sessions: ort.InferenceSession[] = [];
const backend: Backend = {
  name: 'ort-profile',
  async createSession(model) {
    const s = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      enableProfiling: true,
      profileFilePrefix: join(tmpdir(), `imagen-prof-${process.pid}`),
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    sessions.push(s);
    const session: BackendSession = {
      async run(feeds, names) {
        const f: Record<string, ort.Tensor> = {};
        for (const [k, v] of Object.entries(feeds))
          f[k] = new ort.Tensor(v.dtype as ort.Tensor.Type, v.data as never, [...v.shape]);
        const out = await s.run(f, names as string[]);
        const r: Record<string, NDArray> = {};
        for (const k of names)
          r[k] = new NDArray(out[k]!.type as DType, [...out[k]!.dims], out[k]!.data as never);
        return r;
      },
      release: async () => {},
    };
    return session;
  },
};

const unet = new UNet2DConditionModel({ ...defaultUNetConfig(size), sample_size: size }).initialize(1);
const text = unet.config.encoder_hid_dim ?? unet.config.cross_attention_dim;
const trainer = new DiffusionTrainer(
  new Runtime(backend),
  {
    unet,
    textEncoder: new T5Encoder(tinyTextEncoderConfig(text, 1)).initialize(6),
    tokenizer: new ByT5Tokenizer(),
    schedule: makeSchedule(parseSchedulerConfig(ifSchedulerConfig(1.5))),
  },
  { ...DEFAULT_HYPERPARAMETERS, batchSize: batch, maxTextLength: 77, warmupSteps: 0 },
);
const images = randomF32([batch, 3, size, size], 7);
const captions = Array.from({ length: batch }, (_, i) => `a caption number ${i}`);
const times: number[] = [];
// CPU time (user + system, all threads) per step: less sensitive than wall time to other jobs
// taking the cores, so before/after comparisons on a busy machine use it alongside the wall time.
const cpu: number[] = [];
for (let i = 0; i < warm + steps; i++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await trainer.trainStep({ images, captions });
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1000);
  times.push(performance.now() - t0);
}
const byOp = new Map<string, number>();
let runs = 0;
const byNode = new Map<string, number>();
for (const s of sessions) s.endProfiling();
const prefix = `imagen-prof-${process.pid}`;
for (const f of readdirSync(tmpdir()).filter((n) => n.startsWith(prefix))) {
  const file = join(tmpdir(), f);
  const events = JSON.parse(readFileSync(file, 'utf8')) as {
    name: string;
    cat: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  // Only the last `steps` runs: drop the warm-up runs (model_run events mark each run).
  const runStarts = events
    .filter((e) => e.name === 'model_run')
    .map((e) => (e as unknown as { ts: number }).ts);
  runs = Math.max(runs, runStarts.length);
  const from = runStarts.length > steps ? runStarts[runStarts.length - steps]! : 0;
  for (const e of events) {
    if (!e.name.endsWith('_kernel_time') || (e as unknown as { ts: number }).ts < from) continue;
    const op = e.args?.op_name ?? '?';
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    // The engine's node name (op + counter) after the scope: which traced op produced the kernel.
    const node = `${op} <- ${(e.name.split('/').pop() ?? '').replace(/_\d+_kernel_time$/, '').replace(/_kernel_time$/, '')}${e.name.includes('backward') ? ' (bwd)' : ''}`;
    byNode.set(node, (byNode.get(node) ?? 0) + e.dur);
  }
  if (process.env.KEEP_PROFILE) console.log(`profile kept: ${file}`);
  else unlinkSync(file);
}
const total = [...byOp.values()].reduce((a, b) => a + b, 0);
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
console.log(
  `train step ms: ${times.map((t) => t.toFixed(0)).join(' ')}  median(profiled) ${med(times.slice(warm)).toFixed(0)}`,
);
console.log(
  `train step cpu ms: ${cpu.map((t) => t.toFixed(0)).join(' ')}  median(profiled) ${med(cpu.slice(warm)).toFixed(0)}`,
);
console.log(
  `kernel time per step: ${(total / 1000 / steps).toFixed(0)} ms (${runs} runs in the biggest session)`,
);
for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 25))
  console.log(
    `${op.padEnd(28)} ${(us / 1000 / steps).toFixed(1).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %`,
  );
console.log('--- by ORT op <- engine node name');
for (const [op, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, 40))
  console.log(
    `${op.padEnd(48)} ${(us / 1000 / steps).toFixed(1).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %`,
  );
await trainer.release();
