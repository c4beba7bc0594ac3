import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Job, Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { atomicWriteFile } from '../platform/node/files.js';
import { type Generator, isAbort, type Preview } from './generator.js';
import { type JobQueue, QueueFullError, Subscribers, type Unsubscribe } from './queue.js';
import {
  type GenerateParams,
  imageUrls,
  type JobEvent,
  type JobInfo,
  type JobProgress,
  type JobStatus,
  type ModelInfo,
} from './types.js';

/** BullMQ queue name; every key lives under the `imagen` prefix. */
const QUEUE = 'generate';
const PREFIX = 'imagen';
const CANCEL_CHANNEL = `${PREFIX}:cancel`;
const MODELS_KEY = `${PREFIX}:models`;
/** Results and cancellation marks outlive jobs by a day, like BullMQ's own job records below. */
const KEEP_SECONDS = 24 * 3600;
/** The reason a cancelled job fails with; `get` turns it back into status `cancelled`. */
const CANCELLED = 'cancelled';

const resultKey = (id: string, i: number) => `${PREFIX}:result:${id}:${i}`;
const cancelKey = (id: string) => `${PREFIX}:cancelled:${id}`;
const resultFile = (dir: string, id: string, i: number) => join(dir, id, `${i}.png`);

/** What workers report through BullMQ job progress (the server relays it as SSE). */
interface WireProgress extends JobProgress {
  preview?: Preview;
}

interface JobResult {
  images: number;
}

/**
 * The ioredis commands used here. BullMQ types its client abstractly; its runtime object is
 * ioredis, which this project does not depend on directly, so the few methods are declared here.
 */
interface Redis {
  get(key: string): Promise<string | null>;
  getBuffer(key: string): Promise<Buffer | null>;
  set(key: string, value: string | Buffer, ex: 'EX', seconds: number): Promise<unknown>;
  exists(key: string): Promise<number>;
  publish(channel: string, message: string): Promise<number>;
  subscribe(channel: string): Promise<unknown>;
  on(event: 'message', fn: (channel: string, message: string) => void): unknown;
  multi(): { set(key: string, value: Buffer, ex: 'EX', seconds: number): unknown; exec(): Promise<unknown> };
  duplicate(): Redis;
  disconnect(): void;
}

function redisConnection(url: string) {
  // BullMQ needs maxRetriesPerRequest: null on blocking connections; the queue side accepts it too.
  return { url, maxRetriesPerRequest: null };
}

function iso(ms: number | undefined): string | null {
  return ms ? new Date(ms).toISOString() : null;
}

export interface RedisQueueOptions {
  maxQueued?: number;
  /** Result PNGs in this shared folder instead of Redis. */
  resultsDir?: string;
}

/** The server side of the scale-out queue: submits to BullMQ and relays job events. */
export class RedisQueue implements JobQueue {
  private readonly subs = new Subscribers();
  /** Submissions of this node are serialized so that "count, then add" respects the bound here. */
  private submitting: Promise<unknown> = Promise.resolve();
  readonly maxQueued: number;

  private constructor(
    private readonly queue: Queue<GenerateParams, JobResult>,
    private readonly events: QueueEvents,
    private readonly redis: Redis,
    private readonly o: RedisQueueOptions,
  ) {
    this.maxQueued = o.maxQueued ?? 16;
    const status = ({ jobId }: { jobId: string }) => this.relayStatus(jobId);
    events.on('waiting', status);
    events.on('active', status);
    events.on('completed', status);
    events.on('failed', status);
    events.on('stalled', status);
    events.on('progress', ({ jobId, data }) => {
      if (!this.subs.has(jobId) || typeof data !== 'object' || data === null) return;
      const { preview, ...progress } = data as unknown as WireProgress;
      this.subs.emit(jobId, { type: 'progress', progress });
      if (preview) this.subs.emit(jobId, { type: 'preview', ...preview });
    });
  }

  static async connect(url: string, o: RedisQueueOptions = {}): Promise<RedisQueue> {
    const connection = redisConnection(url);
    const queue = new Queue<GenerateParams, JobResult>(QUEUE, { connection, prefix: PREFIX });
    const events = new QueueEvents(QUEUE, { connection, prefix: PREFIX });
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    return new RedisQueue(queue, events, (await queue.client) as unknown as Redis, o);
  }

  submit(params: GenerateParams): Promise<JobInfo> {
    const run = this.submitting.then(async () => {
      const c = await this.queue.getJobCounts('wait', 'paused', 'prioritized', 'delayed');
      const waiting = Object.values(c).reduce((a, b) => a + b, 0);
      if (waiting >= this.maxQueued) throw new QueueFullError(this.maxQueued);
      const job = await this.queue.add('generate', params, {
        jobId: randomUUID(),
        // Generation errors are deterministic: no retry. A worker that dies is a different case:
        // BullMQ's stalled-job check puts its job back in the queue (once) for another worker.
        attempts: 1,
        removeOnComplete: { age: KEEP_SECONDS },
        removeOnFail: { age: KEEP_SECONDS },
      });
      return this.info(job, 'queued');
    });
    this.submitting = run.catch(() => undefined);
    return run;
  }

  /**
   * The job with its status. The state is read before the job's data, so the data is at least as
   * new as the state: a job that completes in between is never reported `done` without its result.
   */
  private async load(
    id: string,
  ): Promise<{ job: Job<GenerateParams, JobResult>; status: JobStatus } | undefined> {
    const state = await this.queue.getJobState(id);
    const job = state === 'unknown' ? undefined : await Job.fromId<GenerateParams, JobResult>(this.queue, id);
    if (!job) return undefined;
    let status: JobStatus;
    if (state === 'active') status = 'running';
    else if (state === 'completed') status = 'done';
    else if (state === 'failed') status = job.failedReason === CANCELLED ? 'cancelled' : 'failed';
    else status = (await this.redis.exists(cancelKey(id))) ? 'cancelled' : 'queued';
    return { job, status };
  }

  async get(id: string): Promise<JobInfo | undefined> {
    const found = await this.load(id);
    if (!found) {
      // A job cancelled while waiting is removed from BullMQ; its record stays here.
      const tomb = await this.redis.get(cancelKey(id));
      return tomb && tomb !== '1' ? (JSON.parse(tomb) as JobInfo) : undefined;
    }
    return this.info(found.job, found.status);
  }

  async cancel(id: string): Promise<JobInfo | undefined> {
    const found = await this.load(id);
    if (!found) return this.get(id);
    const { job, status } = found;
    if (status === 'done' || status === 'failed' || status === 'cancelled') return this.info(job, status);
    // The mark first: a worker that takes the job from now on sees it and stops at once.
    await this.redis.set(cancelKey(id), '1', 'EX', KEEP_SECONDS);
    if (status === 'queued') {
      try {
        await job.remove();
        const info: JobInfo = { ...this.info(job, 'cancelled'), finished_at: new Date().toISOString() };
        await this.redis.set(cancelKey(id), JSON.stringify(info), 'EX', KEEP_SECONDS);
        this.subs.emit(id, { type: 'status', job: info });
        return info;
      } catch {
        // Locked: a worker took it in between; it is cancelled through the channel below.
      }
    }
    await this.redis.publish(CANCEL_CHANNEL, id);
    return this.get(id);
  }

  async image(id: string, index: number): Promise<Uint8Array | undefined> {
    if (this.o.resultsDir) {
      try {
        return new Uint8Array(await readFile(resultFile(this.o.resultsDir, id, index)));
      } catch {
        return undefined;
      }
    }
    const buf = await this.redis.getBuffer(resultKey(id, index));
    return buf ? new Uint8Array(buf) : undefined;
  }

  subscribe(id: string, listener: (e: JobEvent) => void): Unsubscribe {
    return this.subs.add(id, listener);
  }

  subscriberCount(): number {
    return this.subs.count();
  }

  async models(): Promise<ModelInfo[]> {
    const s = await this.redis.get(MODELS_KEY);
    return s ? (JSON.parse(s) as ModelInfo[]) : [];
  }

  async close(): Promise<void> {
    await this.events.close();
    await this.queue.close();
  }

  private async relayStatus(id: string): Promise<void> {
    if (!this.subs.has(id)) return;
    try {
      const job = await this.get(id);
      if (job) this.subs.emit(id, { type: 'status', job });
    } catch {
      // Redis hiccup: the client still sees the next event or polls GET /v1/jobs/:id.
    }
  }

  private info(job: Job<GenerateParams, JobResult>, status: JobStatus): JobInfo {
    const p = job.progress as WireProgress | number;
    const progress = typeof p === 'object' && p ? { stage: p.stage, step: p.step, total: p.total } : null;
    let error: string | null = null;
    if (status === 'failed') {
      error = job.failedReason ?? 'failed';
      // BullMQ's wording for "the worker died twice while running it".
      if (/stalled/i.test(error)) error = `the worker running this job stopped responding (${error})`;
    }
    const done = status === 'done' || status === 'failed' || status === 'cancelled';
    return {
      id: job.id!,
      status,
      params: job.data,
      progress,
      images: status === 'done' ? imageUrls(job.id!, job.returnvalue?.images ?? 0) : [],
      error,
      created_at: new Date(job.timestamp).toISOString(),
      started_at: status === 'queued' ? null : iso(job.processedOn),
      finished_at: done ? iso(job.finishedOn) : null,
      worker: job.processedBy ?? null,
    };
  }
}

export interface WorkerOptions {
  name?: string;
  resultsDir?: string;
  /** How long a job's lock lives without renewal: a dead worker's job is retried after about this. */
  lockDurationMs?: number;
  log?: (msg: string) => void;
}

export interface RunningWorker {
  name: string;
  /** Finish the running job (if any), then stop. */
  close(): Promise<void>;
}

/**
 * Take jobs from the Redis queue and run them on `generator`, one at a time; store the PNGs in
 * Redis (or the shared results folder) and report progress + previews through BullMQ.
 */
export async function startWorker(
  url: string,
  generator: Generator,
  o: WorkerOptions = {},
): Promise<RunningWorker> {
  const name = o.name ?? `${hostname()}:${process.pid}`;
  const log = o.log ?? (() => {});
  const connection = redisConnection(url);
  const running = new Map<string, AbortController>();

  const worker = new Worker<GenerateParams, JobResult>(
    QUEUE,
    async (job) => {
      const id = job.id!;
      if (await redis.exists(cancelKey(id))) throw new UnrecoverableError(CANCELLED);
      const abort = new AbortController();
      running.set(id, abort);
      log(`job ${id}: ${job.data.steps} steps, "${job.data.prompt.slice(0, 60)}"`);
      try {
        let last: WireProgress | undefined;
        // Progress writes are not awaited per step (the sampler must not wait on Redis); the
        // connection keeps their order and the last one is awaited before the job completes.
        let pending: Promise<unknown> = Promise.resolve();
        const report = (p: WireProgress) => {
          last = p;
          pending = job.updateProgress(p as unknown as object).catch(() => undefined);
        };
        const pngs = await generator.generate(job.data, {
          signal: abort.signal,
          onProgress: (p) => report({ ...p }),
          // A preview goes out with the progress of its step.
          onPreview: (pv) =>
            report({ ...(last ?? { stage: pv.stage, step: pv.step, total: pv.total }), preview: pv }),
        });
        await pending;
        await storeResults(id, pngs);
        log(`job ${id}: done`);
        return { images: pngs.length };
      } catch (e) {
        if (isAbort(e) || abort.signal.aborted) {
          log(`job ${id}: cancelled`);
          throw new UnrecoverableError(CANCELLED);
        }
        log(`job ${id}: failed: ${(e as Error).message}`);
        throw new UnrecoverableError((e as Error)?.message ?? String(e));
      } finally {
        running.delete(id);
      }
    },
    {
      connection,
      prefix: PREFIX,
      name,
      // One generation at a time per worker: a model saturates the machine's cores by itself.
      concurrency: 1,
      lockDuration: o.lockDurationMs ?? 30_000,
      stalledInterval: Math.max(1000, Math.round((o.lockDurationMs ?? 30_000) / 2)),
      // A job whose worker died is put back once; dying a second time fails it with a clear reason.
      maxStalledCount: 1,
      autorun: false,
    },
  );
  worker.on('error', (e) => log(`worker error: ${e.message}`));
  const redis = (await worker.client) as unknown as Redis;

  const storeResults = async (id: string, pngs: Uint8Array[]) => {
    if (o.resultsDir) {
      await mkdir(join(o.resultsDir, id), { recursive: true });
      for (const [i, png] of pngs.entries()) await atomicWriteFile(resultFile(o.resultsDir, id, i), png);
      return;
    }
    const m = redis.multi();
    for (const [i, png] of pngs.entries()) m.set(resultKey(id, i), Buffer.from(png), 'EX', KEEP_SECONDS);
    await m.exec();
  };

  // Cancellation of running jobs arrives on a pub/sub channel (a subscribed connection can do
  // nothing else, hence its own).
  const sub = redis.duplicate();
  await sub.subscribe(CANCEL_CHANNEL);
  sub.on('message', (_channel: string, id: string) => running.get(id)?.abort());

  // Advertise the model so that servers without one can list it and validate `size`.
  const advertise = () =>
    redis.set(MODELS_KEY, JSON.stringify(generator.models()), 'EX', 60).catch(() => undefined);
  await advertise();
  const heartbeat = setInterval(advertise, 20_000);
  heartbeat.unref();

  void worker.run().catch((e) => log(`worker stopped: ${(e as Error).message}`));
  await worker.waitUntilReady();
  log(`worker ${name} waiting for jobs`);
  return {
    name,
    async close() {
      clearInterval(heartbeat);
      await worker.close();
      sub.disconnect();
    },
  };
}
