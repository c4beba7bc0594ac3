/**
 * Scale-out through BullMQ on a real redis-server (started here on a free loopback port) with two
 * `imagen worker` processes. Skipped, with a message, where redis-server is not installed;
 * scripts/test-integration.sh installs it and runs this file.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server/app.js';
import { PipelineGenerator } from '../../src/server/generator.js';
import { RedisQueue, startWorker as startInProcessWorker } from '../../src/server/redis_queue.js';
import { writeTinyModel } from '../../src/server/tiny_model.js';
import type { JobInfo } from '../../src/server/types.js';

// biome-ignore lint/suspicious/noExplicitAny: JSON off the wire; the assertions check its shape.
type Json = any;

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
// scripts/test-integration.sh sets IMAGEN_INTEGRATION=1: there a missing redis-server is a failure, not a skip.
if (!hasRedis && process.env.IMAGEN_INTEGRATION === '1')
  throw new Error('redis-server is required here (scripts/test-integration.sh installs it)');
if (!hasRedis)
  console.warn(
    'SKIPPED test/server/redis.test.ts: redis-server is not installed (run scripts/test-integration.sh)',
  );

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Start a process and resolve once `ready` appears in its output (rejects if it exits first). */
function start(cmd: string, args: string[], ready: RegExp, log: string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      log.push(d.toString());
      if (ready.test(out)) resolve(p);
    };
    p.stdout!.on('data', onData);
    p.stderr!.on('data', onData);
    p.on('exit', (code) => reject(new Error(`${cmd} exited (${code}) before ready:\n${out}`)));
  });
}

async function post(base: string, body: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${base}/v1/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function waitFor(
  base: string,
  id: string,
  until: (j: JobInfo) => boolean,
  ms = 60_000,
): Promise<JobInfo> {
  const end = Date.now() + ms;
  for (;;) {
    const j = (await (await fetch(`${base}/v1/jobs/${id}`)).json()) as JobInfo;
    if (until(j)) return j;
    if (Date.now() > end) throw new Error(`timed out; job is ${JSON.stringify(j)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const finished = (j: JobInfo) => ['done', 'failed', 'cancelled'].includes(j.status);

function sseEvents(url: string): Promise<{ event: string; data: Json }[]> {
  return new Promise((resolve, reject) => {
    const events: { event: string; data: Json }[] = [];
    let buf = '';
    httpRequest(url, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
        }
      });
      res.on('end', () => resolve(events));
    })
      .on('error', reject)
      .end();
  });
}

describe.skipIf(!hasRedis)('scale-out: BullMQ on redis-server with 2 worker processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'serve-redis-'));
  const model = join(dir, 'tiny');
  const log: string[] = [];
  let redis: ChildProcess | undefined;
  const workers = new Map<string, ChildProcess>();
  let queue: RedisQueue;
  let app: FastifyInstance;
  let base = '';
  let url = '';

  const startWorker = (name: string) =>
    start(
      process.execPath,
      [
        'bin/imagen.js',
        'worker',
        '--redis',
        url,
        '--model',
        model,
        '--name',
        name,
        '--lock-duration',
        '2000',
      ],
      /waiting for jobs/,
      log,
    ).then((p) => workers.set(name, p));

  beforeAll(async () => {
    await writeTinyModel(model);
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    redis = await start(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      /Ready to accept connections/,
      log,
    );
    await Promise.all([startWorker('worker-a'), startWorker('worker-b')]);
    queue = await RedisQueue.connect(url, { maxQueued: 4 });
    app = buildApp({ queue });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    await app?.close();
    await queue?.close();
    for (const w of workers.values()) w.kill('SIGKILL');
    redis?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs jobs on both workers; every node can serve the PNGs stored in Redis', async () => {
    expect(await (await fetch(`${base}/v1/models`)).json()).toEqual({
      models: [{ id: 'tiny', stage: 'base', size: 16, text_encoder: true }],
    });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await post(base, { prompt: `job ${i}`, steps: 150, seed: i });
      expect(r.status).toBe(202);
      ids.push(r.json.id);
    }
    const jobs = await Promise.all(ids.map((id) => waitFor(base, id, finished)));
    expect(jobs.map((j) => j.status)).toEqual(['done', 'done', 'done', 'done']);
    expect(new Set(jobs.map((j) => j.worker))).toEqual(new Set(['worker-a', 'worker-b']));
    for (const j of jobs) {
      const png = Buffer.from(await (await fetch(`${base}${j.images[0]}`)).arrayBuffer());
      expect((await sharp(png).metadata()).width).toBe(16);
    }
    // A second server node (no model of its own) serves the same jobs and images.
    const other = await RedisQueue.connect(url);
    try {
      expect((await other.get(ids[0]!))?.status).toBe('done');
      expect((await other.image(ids[0]!, 0))?.length).toBeGreaterThan(0);
    } finally {
      await other.close();
    }
  });

  it('relays progress and previews from the workers as server-sent events', async () => {
    const r = await post(base, { prompt: 'events', steps: 40 });
    const events = await sseEvents(`${base}/v1/jobs/${r.json.id}/events`);
    const kinds = new Set(events.map((e) => e.event));
    expect([...kinds]).toEqual(expect.arrayContaining(['status', 'progress', 'preview', 'done']));
    expect(events.at(-1)!.data.status).toBe('done');
    expect(events.find((e) => e.event === 'preview')!.data.image).toMatch(/^data:image\/png;base64,/);
    expect(queue.subscriberCount()).toBe(0);
  });

  it('cancels queued and running jobs, and answers 429 beyond the queue bound', async () => {
    const long = await Promise.all([0, 1].map((i) => post(base, { prompt: `busy ${i}`, steps: 1000 })));
    for (const l of long) await waitFor(base, l.json.id, (j) => j.status === 'running');
    const waiting = [];
    for (let i = 0; i < 4; i++) waiting.push(await post(base, { prompt: `wait ${i}`, steps: 5 }));
    expect(waiting.map((w) => w.status)).toEqual([202, 202, 202, 202]);
    expect((await post(base, { prompt: 'too many', steps: 5 })).status).toBe(429);

    const del = await fetch(`${base}/v1/jobs/${waiting[0]!.json.id}`, { method: 'DELETE' });
    const cancelledQueued = (await del.json()) as JobInfo;
    expect(cancelledQueued.status).toBe('cancelled');
    expect((await waitFor(base, waiting[0]!.json.id, () => true)).status).toBe('cancelled');
    for (const l of long) await fetch(`${base}/v1/jobs/${l.json.id}`, { method: 'DELETE' });
    for (const l of long) {
      const j = await waitFor(base, l.json.id, finished);
      expect(j.status).toBe('cancelled');
      expect(j.progress!.step).toBeLessThan(1000);
    }
    for (const w of waiting.slice(1)) expect((await waitFor(base, w.json.id, finished)).status).toBe('done');
  });

  it('--results DIR: PNGs go to a shared folder that every server node reads', async () => {
    // Redis database 1: a queue of its own, which the two CLI workers (database 0) do not see.
    const url1 = `${url}/1`;
    const shared = join(dir, 'results');
    const gen = await PipelineGenerator.load(model);
    const worker = await startInProcessWorker(url1, gen, { name: 'in-process', resultsDir: shared });
    const q = await RedisQueue.connect(url1, { resultsDir: shared });
    try {
      const job = await q.submit({
        prompt: 'shared',
        negative_prompt: '',
        seed: 1,
        steps: 5,
        guidance_scale: 7,
        num_images: 2,
      });
      let info = await q.get(job.id);
      for (let i = 0; i < 600 && info?.status !== 'done'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        info = await q.get(job.id);
      }
      expect(info).toMatchObject({ status: 'done', worker: 'in-process' });
      expect(readdirSync(join(shared, job.id)).sort()).toEqual(['0.png', '1.png']);
      expect(await q.image(job.id, 1)).toEqual(new Uint8Array(readFileSync(join(shared, job.id, '1.png'))));
    } finally {
      await q.close();
      await worker.close();
      await gen.close();
    }
  });

  it('a worker killed mid-job (SIGKILL): the other worker retries the job; it is never lost', async () => {
    const r = await post(base, { prompt: 'survive a crash', steps: 1000, seed: 3 });
    const running = await waitFor(
      base,
      r.json.id,
      (j) => j.status === 'running' && (j.progress?.step ?? 0) >= 5,
    );
    const victim = running.worker!;
    expect(workers.has(victim)).toBe(true);
    workers.get(victim)!.kill('SIGKILL');
    workers.delete(victim);
    const job = await waitFor(base, r.json.id, finished, 90_000);
    // Retried by the survivor once its lock expired (--lock-duration): never stuck in `running`
    // and never gone. (A second death would fail it with "the worker … stopped responding".)
    expect(job.status, job.error ?? '').toBe('done');
    expect(job.worker).not.toBe(victim);
    expect(job.images).toHaveLength(1);
  });
});
