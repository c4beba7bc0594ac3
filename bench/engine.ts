/**
 * Measurements for `npm run bench`. Each function builds its graph with the engine, runs it
 * through the given Runtime (onnxruntime-node), times it and releases its sessions. Printing
 * lives in bench/run.ts; later figures (UNet, T5) are added here as further functions.
 */
import { performance } from 'node:perf_hooks';
import {
  add,
  conv2d,
  matmul,
  mul,
  NDArray,
  Parameter,
  type Runtime,
  reduceSum,
} from '../src/engine/index.js';

// ---------------------------------------------------------------- timing

export interface Stats {
  /** Median of the timed runs, milliseconds. */
  medianMs: number;
  /** Fastest timed run, milliseconds. */
  bestMs: number;
  meanMs: number;
  runs: number;
}

export interface TimingOptions {
  /** Untimed runs first (session warm-up, allocator, caches). */
  warmup: number;
  /** Keep timing until both minRuns runs and minTimeMs milliseconds are reached... */
  minRuns: number;
  minTimeMs: number;
  /** ...or until maxRuns runs, whichever comes first. */
  maxRuns: number;
}

export const FULL: TimingOptions = { warmup: 3, minRuns: 10, minTimeMs: 2000, maxRuns: 500 };
export const QUICK: TimingOptions = { warmup: 1, minRuns: 3, minTimeMs: 200, maxRuns: 50 };

/** Runs `fn` sequentially (never overlapping) and returns statistics of the timed runs. */
export async function timeAsync(fn: () => Promise<unknown>, opts: TimingOptions): Promise<Stats> {
  for (let i = 0; i < opts.warmup; i++) await fn();
  const times: number[] = [];
  const start = performance.now();
  while (
    times.length < opts.maxRuns &&
    (times.length < opts.minRuns || performance.now() - start < opts.minTimeMs)
  ) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return summarize(times);
}

export function summarize(times: readonly number[]): Stats {
  const s = [...times].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const medianMs = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return {
    medianMs,
    bestMs: s[0]!,
    meanMs: s.reduce((a, b) => a + b, 0) / s.length,
    runs: s.length,
  };
}

/** Deterministic uniform [-1, 1) data (xorshift32), so runs are comparable. */
export function randomF32(shape: readonly number[], seed = 1): NDArray {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    data[i] = (s / 4294967296) * 2 - 1;
  }
  return NDArray.f32(shape, data);
}

const gflops = (flops: number, ms: number) => flops / (ms * 1e6);

// ---------------------------------------------------------------- figures

export interface MatmulResult {
  n: number;
  stats: Stats;
  /** GFLOP/s of the best run (2·n³ / best time). */
  gflops: number;
  medianGflops: number;
}

/** MatMul n×n×n fp32 with both operands as graph inputs (no weight prepacking). */
export async function benchMatmul(rt: Runtime, opts: TimingOptions, n = 1024): Promise<MatmulResult> {
  const fn = rt.compile(({ a, b }) => matmul(a!, b!), { name: 'bench_matmul' });
  const feeds = { a: randomF32([n, n], 1), b: randomF32([n, n], 2) };
  try {
    const stats = await timeAsync(() => fn.run(feeds), opts);
    const flops = 2 * n ** 3;
    return { n, stats, gflops: gflops(flops, stats.bestMs), medianGflops: gflops(flops, stats.medianMs) };
  } finally {
    await fn.release();
  }
}

export interface ConvShape {
  batch: number;
  channels: number;
  size: number;
}

export const CONV_64: ConvShape = { batch: 8, channels: 64, size: 64 };

export interface ConvResult {
  shape: ConvShape;
  /** FLOPs of one forward conv: 2·N·Co·Ci·9·H·W. */
  fwdFlops: number;
  fwd: Stats;
  /** Forward + backward (grads of input, weight, bias) in one session: 3× the forward FLOPs. */
  fwdBwd: Stats;
  fwdGflops: number;
  fwdBwdGflops: number;
  /** Max |loss| sanity value, to make sure the graph computed something. */
  loss: number;
}

/**
 * Conv 3×3, padding 1, bias, fp32, weights as graph inputs (as in training). Forward alone,
 * then forward+backward from `rt.compileGrad` with loss = sum(y·R): one ONNX session that
 * returns the loss and the gradients w.r.t. input, weight and bias.
 */
export async function benchConv3x3(rt: Runtime, opts: TimingOptions, shape = CONV_64): Promise<ConvResult> {
  const { batch: n, channels: c, size: s } = shape;
  const px = new Parameter('x', [n, c, s, s], { value: randomF32([n, c, s, s], 3) });
  const pw = new Parameter('weight', [c, c, 3, 3], {
    value: NDArray.f32(
      [c, c, 3, 3],
      scaled(randomF32([c, c, 3, 3], 4).data as Float32Array, 1 / Math.sqrt(c * 9)),
    ),
  });
  const pb = new Parameter('bias', [c], { value: randomF32([c], 5) });
  const r = randomF32([n, c, s, s], 6);
  const fwdFlops = 2 * n * c * c * 9 * s * s;

  const fwdFn = rt.compile(({ x }, trace) => conv2d(x!, trace.param(pw), trace.param(pb), { padding: 1 }), {
    params: 'input',
    name: 'bench_conv_fwd',
  });
  let fwd: Stats;
  try {
    fwd = await timeAsync(() => fwdFn.run({ x: px.value! }), opts);
  } finally {
    await fwdFn.release();
  }

  const gradFn = rt.compileGrad(
    ({ r: rr }, trace) =>
      reduceSum(mul(conv2d(trace.param(px), trace.param(pw), trace.param(pb), { padding: 1 }), rr!)),
    [px, pw, pb],
    { name: 'bench_conv_fwd_bwd' },
  );
  let fwdBwd: Stats;
  let loss = 0;
  try {
    fwdBwd = await timeAsync(async () => {
      const res = await gradFn.run({ r });
      if (res.grads.size !== 3) throw new Error(`expected 3 gradients, got ${res.grads.size}`);
      loss = res.loss;
    }, opts);
  } finally {
    await gradFn.release();
  }

  return {
    shape,
    fwdFlops,
    fwd,
    fwdBwd,
    fwdGflops: gflops(fwdFlops, fwd.medianMs),
    fwdBwdGflops: gflops(3 * fwdFlops, fwdBwd.medianMs),
    loss,
  };
}

function scaled(a: Float32Array, k: number): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! * k;
  return a;
}

export interface TinyResult {
  stats: Stats;
  medianUs: number;
  bestUs: number;
}

/** Per-run overhead: a 1-element Add graph through the full CompiledFunction.run path. */
export async function benchTiny(rt: Runtime, opts: TimingOptions): Promise<TinyResult> {
  const fn = rt.compile(({ a, b }) => add(a!, b!), { name: 'bench_tiny' });
  const feeds = { a: NDArray.f32([1], [1]), b: NDArray.f32([1], [2]) };
  const tinyOpts: TimingOptions = {
    warmup: opts.warmup * 100,
    minRuns: opts.minRuns * 100,
    minTimeMs: opts.minTimeMs / 2,
    maxRuns: 200_000,
  };
  try {
    const stats = await timeAsync(() => fn.run(feeds), tinyOpts);
    return { stats, medianUs: stats.medianMs * 1000, bestUs: stats.bestMs * 1000 };
  } finally {
    await fn.release();
  }
}
