import type { GenerateParams, JobEvent, JobInfo, ModelInfo } from './types.js';

/** The bounded queue is full: the route answers 429 and the client retries later. */
export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`the queue is full (${limit} jobs waiting); retry later`);
    this.name = 'QueueFullError';
  }
}

export type Unsubscribe = () => void;

/**
 * Where jobs wait and run. `InProcessQueue` runs them in the server process (one at a time);
 * `RedisQueue` hands them to `imagen worker` processes through BullMQ. The routes only see this.
 */
export interface JobQueue {
  /** Enqueue; throws `QueueFullError` when the bound is reached. */
  submit(params: GenerateParams): Promise<JobInfo>;
  get(id: string): Promise<JobInfo | undefined>;
  /** Cancel a queued or running job; returns the job after the request (undefined: unknown id). */
  cancel(id: string): Promise<JobInfo | undefined>;
  /** PNG bytes of a finished job's image. */
  image(id: string, index: number): Promise<Uint8Array | undefined>;
  /** Live events of one job; the caller must call the returned function when it stops listening. */
  subscribe(id: string, listener: (e: JobEvent) => void): Unsubscribe;
  /** Subscribers still registered (0 after every client left: the leak check). */
  subscriberCount(): number;
  /** The loaded cascade, when known: output sides (validation of `size`) and sampling defaults. */
  models(): Promise<ModelInfo[]>;
  close(): Promise<void>;
}

/** Subscriber bookkeeping shared by both queues. */
export class Subscribers {
  private readonly byJob = new Map<string, Set<(e: JobEvent) => void>>();

  add(id: string, listener: (e: JobEvent) => void): Unsubscribe {
    let set = this.byJob.get(id);
    if (!set) {
      set = new Set();
      this.byJob.set(id, set);
    }
    set.add(listener);
    return () => {
      const s = this.byJob.get(id);
      if (!s) return;
      s.delete(listener);
      if (s.size === 0) this.byJob.delete(id);
    };
  }

  has(id: string): boolean {
    return this.byJob.has(id);
  }

  emit(id: string, e: JobEvent): void {
    const set = this.byJob.get(id);
    if (!set) return;
    // A copy: listeners unsubscribe themselves on the final event.
    for (const l of [...set]) {
      try {
        l(e);
      } catch {
        // One broken subscriber (a closed socket) must not stop the job or the others.
      }
    }
  }

  count(): number {
    let n = 0;
    for (const s of this.byJob.values()) n += s.size;
    return n;
  }
}
