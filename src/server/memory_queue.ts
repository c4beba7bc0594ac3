import { randomUUID } from 'node:crypto';
import { type Generator, isAbort } from './generator.js';
import { type JobQueue, QueueFullError, Subscribers, type Unsubscribe } from './queue.js';
import { type GenerateParams, imageUrls, type JobEvent, type JobInfo, type ModelInfo } from './types.js';

interface Job {
  info: JobInfo;
  images: Uint8Array[];
  abort: AbortController;
}

export interface InProcessQueueOptions {
  /** Jobs that may wait (the running one not counted); more → 429. */
  maxQueued?: number;
  /** Finished jobs kept (with their PNGs) before the oldest are dropped, so memory stays bounded. */
  keepFinished?: number;
}

/** Runs jobs in this process, one at a time, in submission order. */
export class InProcessQueue implements JobQueue {
  private readonly jobs = new Map<string, Job>();
  private readonly waiting: string[] = [];
  private readonly finished: string[] = [];
  private readonly subs = new Subscribers();
  private running: Promise<void> | undefined;
  private closed = false;
  readonly maxQueued: number;
  private readonly keepFinished: number;

  constructor(
    private readonly generator: Generator,
    o: InProcessQueueOptions = {},
  ) {
    this.maxQueued = o.maxQueued ?? 16;
    this.keepFinished = o.keepFinished ?? 200;
  }

  async submit(params: GenerateParams): Promise<JobInfo> {
    if (this.closed) throw new Error('the queue is closed');
    if (this.waiting.length >= this.maxQueued) throw new QueueFullError(this.maxQueued);
    const id = randomUUID();
    const info: JobInfo = {
      id,
      status: 'queued',
      params,
      progress: null,
      images: [],
      error: null,
      created_at: new Date().toISOString(),
      started_at: null,
      finished_at: null,
      worker: null,
    };
    this.jobs.set(id, { info, images: [], abort: new AbortController() });
    this.waiting.push(id);
    // The answer says `queued` even when the job starts right away (it does, synchronously, below).
    const answer = structuredClone(info);
    this.pump();
    return answer;
  }

  async get(id: string): Promise<JobInfo | undefined> {
    const j = this.jobs.get(id);
    return j && structuredClone(j.info);
  }

  async cancel(id: string): Promise<JobInfo | undefined> {
    const j = this.jobs.get(id);
    if (!j) return undefined;
    if (j.info.status === 'queued') {
      this.waiting.splice(this.waiting.indexOf(id), 1);
      this.finish(j, 'cancelled', null);
    } else if (j.info.status === 'running') {
      // The sampler checks the signal before every step; the job ends as `cancelled` there.
      j.abort.abort();
    }
    return structuredClone(j.info);
  }

  async image(id: string, index: number): Promise<Uint8Array | undefined> {
    return this.jobs.get(id)?.images[index];
  }

  subscribe(id: string, listener: (e: JobEvent) => void): Unsubscribe {
    return this.subs.add(id, listener);
  }

  subscriberCount(): number {
    return this.subs.count();
  }

  async models(): Promise<ModelInfo[]> {
    return this.generator.models();
  }

  /** Stop taking jobs, cancel the running one and wait for it. */
  async close(): Promise<void> {
    this.closed = true;
    for (const id of this.waiting.splice(0)) this.finish(this.jobs.get(id)!, 'cancelled', 'server shut down');
    for (const j of this.jobs.values()) if (j.info.status === 'running') j.abort.abort();
    await this.running;
  }

  private pump(): void {
    if (this.running || this.closed) return;
    const id = this.waiting.shift();
    if (id === undefined) return;
    this.running = this.run(this.jobs.get(id)!).finally(() => {
      this.running = undefined;
      this.pump();
    });
  }

  private async run(j: Job): Promise<void> {
    j.info.status = 'running';
    j.info.started_at = new Date().toISOString();
    j.info.worker = 'local';
    this.emitStatus(j);
    try {
      const pngs = await this.generator.generate(j.info.params, {
        signal: j.abort.signal,
        onProgress: (p) => {
          j.info.progress = p;
          this.subs.emit(j.info.id, { type: 'progress', progress: p });
        },
        onPreview: (p) => this.subs.emit(j.info.id, { type: 'preview', ...p }),
      });
      j.images = pngs;
      j.info.images = imageUrls(j.info.id, pngs.length);
      this.finish(j, 'done', null);
    } catch (e) {
      if (isAbort(e) || j.abort.signal.aborted) this.finish(j, 'cancelled', null);
      else this.finish(j, 'failed', (e as Error)?.message ?? String(e));
    }
  }

  private finish(j: Job, status: 'done' | 'failed' | 'cancelled', error: string | null): void {
    j.info.status = status;
    j.info.error = error;
    j.info.finished_at = new Date().toISOString();
    this.emitStatus(j);
    this.finished.push(j.info.id);
    while (this.finished.length > this.keepFinished) this.jobs.delete(this.finished.shift()!);
  }

  private emitStatus(j: Job): void {
    this.subs.emit(j.info.id, { type: 'status', job: structuredClone(j.info) });
  }
}
