import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImagenError } from '../../src/engine/errors.js';
import { buildApp } from '../../src/server/app.js';
import { type GenerateHooks, type Generator, PipelineGenerator } from '../../src/server/generator.js';
import { InProcessQueue } from '../../src/server/memory_queue.js';
import { writeTinyModel, writeTinySrModel } from '../../src/server/tiny_model.js';
import type { GenerateParams, JobInfo, ModelInfo } from '../../src/server/types.js';

// biome-ignore lint/suspicious/noExplicitAny: JSON off the wire; the assertions check its shape.
type Json = any;

/** A 1×1-pixel PNG (what the fake generator returns). */
const PNG_1PX = Uint8Array.from(
  Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC',
    'base64',
  ),
);

/**
 * A stand-in for the model: `msPerStep` per step, honours the abort signal between steps like the
 * sampler, and can be held at its first step (`hold`) so that tests control what is running.
 */
class FakeGenerator implements Generator {
  holding: Promise<void> | undefined;
  private release: (() => void) | undefined;
  started = 0;

  constructor(private readonly msPerStep = 1) {}

  hold(): void {
    this.holding = new Promise((r) => {
      this.release = r;
    });
  }

  unhold(): void {
    this.release?.();
    this.holding = undefined;
  }

  models(): ModelInfo[] {
    return [{ id: 'fake', stage: 'base', size: 16, text_encoder: true }];
  }

  async generate(p: GenerateParams, h: GenerateHooks): Promise<Uint8Array[]> {
    this.started++;
    for (let step = 1; step <= p.steps; step++) {
      if (step === 1) await this.holding;
      if (h.signal?.aborted) throw new ImagenError('ABORTED', 'sampling cancelled');
      await new Promise((r) => setTimeout(r, this.msPerStep));
      h.onProgress?.({ stage: 'stage I', step, total: p.steps });
      if (step % 2 === 0)
        h.onPreview?.({ stage: 'stage I', step, total: p.steps, image: 'data:image/png;base64,AAAA' });
    }
    return Array.from({ length: p.num_images }, () => PNG_1PX);
  }

  async close(): Promise<void> {}
}

async function listen(app: FastifyInstance): Promise<string> {
  return app.listen({ host: '127.0.0.1', port: 0 });
}

async function post(base: string, body: unknown, raw?: string): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${base}/v1/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ?? JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function waitFor(
  base: string,
  id: string,
  until: (j: JobInfo) => boolean,
  ms = 30_000,
): Promise<JobInfo> {
  const end = Date.now() + ms;
  for (;;) {
    const j = (await (await fetch(`${base}/v1/jobs/${id}`)).json()) as JobInfo;
    if (until(j)) return j;
    if (Date.now() > end) throw new Error(`timed out; job is ${JSON.stringify(j)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const finished = (j: JobInfo) => ['done', 'failed', 'cancelled'].includes(j.status);

/** Read an SSE stream until `stop` says so; returns the events seen and the socket-closing function. */
function readEvents(
  url: string,
  stop: (events: { event: string; data: Json }[]) => boolean,
): Promise<{ events: { event: string; data: Json }[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const events: { event: string; data: Json }[] = [];
    let buf = '';
    const req = httpRequest(url, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i = buf.indexOf('\n\n');
        while (i >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
          i = buf.indexOf('\n\n');
        }
        if (stop(events)) {
          req.destroy();
          resolve({ events, ended: false });
        }
      });
      res.on('end', () => resolve({ events, ended: true }));
    });
    req.on('error', (e) =>
      e.message.includes('aborted') || e.message.includes('socket hang up') ? undefined : reject(e),
    );
    req.end();
  });
}

describe('imagen serve API (in-process queue)', () => {
  const gen = new FakeGenerator(2);
  const queue = new InProcessQueue(gen, { maxQueued: 3 });
  const app = buildApp({ queue });
  let base = '';
  beforeAll(async () => {
    base = await listen(app);
  });
  afterAll(async () => {
    gen.unhold();
    await app.close();
    await queue.close();
  });

  it('accepts a job (202), runs it, serves its PNG and the job record', async () => {
    const r = await post(base, { prompt: 'a red circle', steps: 5, seed: 7, num_images: 2 });
    expect(r.status).toBe(202);
    expect(r.json.status).toBe('queued');
    const job = await waitFor(base, r.json.id, finished);
    expect(job.status).toBe('done');
    expect(job.params).toMatchObject({
      prompt: 'a red circle',
      steps: 5,
      seed: 7,
      guidance_scale: 7,
      num_images: 2,
    });
    expect(job.progress).toEqual({ stage: 'stage I', step: 5, total: 5 });
    expect(job.images).toEqual([`/v1/jobs/${job.id}/images/0.png`, `/v1/jobs/${job.id}/images/1.png`]);
    const img = await fetch(`${base}${job.images[1]}`);
    expect(img.status).toBe(200);
    expect(img.headers.get('content-type')).toBe('image/png');
    expect(new Uint8Array(await img.arrayBuffer())).toEqual(PNG_1PX);
    expect((await fetch(`${base}/v1/jobs/${job.id}/images/2.png`)).status).toBe(404);
    expect((await fetch(`${base}/v1/jobs/nope`)).status).toBe(404);
    expect((await fetch(`${base}/v1/jobs/${'x'.repeat(100)}`)).status).toBe(404);
  });

  it.each([
    ['prompt', {}, /required/],
    ['prompt', { prompt: 3 }, /string/],
    ['prompt', { prompt: '   ' }, /empty/],
    ['prompt', { prompt: 'x'.repeat(1001) }, /1000/],
    ['negative_prompt', { prompt: 'a', negative_prompt: 'x'.repeat(1001) }, /1000/],
    ['steps', { prompt: 'a', steps: -5 }, /1\.\.1000/],
    ['steps', { prompt: 'a', steps: 0 }, /1\.\.1000/],
    ['steps', { prompt: 'a', steps: 2.5 }, /integer/],
    ['steps', { prompt: 'a', steps: '10' }, /integer/],
    ['guidance_scale', { prompt: 'a', guidance_scale: 'NaN' }, /finite/],
    ['guidance_scale', { prompt: 'a', guidance_scale: -1 }, /\[0, 100\]/],
    ['guidance_scale', { prompt: 'a', guidance_scale: 1e308 }, /\[0, 100\]/],
    ['thresholding', { prompt: 'a', thresholding: 'max' }, /dynamic, static, none/],
    ['seed', { prompt: 'a', seed: -1 }, /0\.\./],
    ['seed', { prompt: 'a', seed: 2 ** 40 }, /0\.\./],
    ['size', { prompt: 'a', size: 32 }, /not produced/],
    ['size', { prompt: 'a', size: 4 }, /8\.\.1024/],
    ['num_images', { prompt: 'a', num_images: 0 }, /1\.\.8/],
    ['num_images', { prompt: 'a', num_images: 100 }, /1\.\.8/],
    ['width', { prompt: 'a', width: 64 }, /unknown field/],
  ])('400 naming %s for %j', async (field, body, msg) => {
    const r = await post(base, body);
    expect(r.status).toBe(400);
    expect(r.json.field).toBe(field);
    expect(r.json.message).toMatch(msg);
  });

  it('400 for malformed JSON, NaN literals, non-objects, huge bodies; 415 for unknown media types', async () => {
    for (const raw of ['{"prompt": "a",', '{"prompt": "a", "guidance_scale": NaN}', '[1,2]', '"a"', 'null']) {
      const r = await post(base, undefined, raw);
      expect(r.status, raw).toBe(400);
      expect(r.json.error).toBe('bad_request');
    }
    const huge = await post(base, { prompt: 'a', negative_prompt: 'x'.repeat(200_000) });
    expect(huge.status).toBe(400);
    expect(huge.json.message).toMatch(/larger than 65536 bytes/);
    const poisoned = await post(base, undefined, '{"prompt":"a","__proto__":{"x":1}}');
    expect(poisoned.status).toBe(400);
    // fastify parses text/plain to a string: refused as "not a JSON object".
    const text = await fetch(`${base}/v1/generate`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'a',
    });
    expect(text.status).toBe(400);
    const xml = await fetch(`${base}/v1/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: '<a/>',
    });
    expect(xml.status).toBe(415);
  });

  it('answers 429 when the bounded queue is full, and cancels queued and running jobs', async () => {
    gen.hold();
    const running = await post(base, { prompt: 'r', steps: 50 });
    await waitFor(base, running.json.id, (j) => j.status === 'running');
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await post(base, { prompt: `q${i}`, steps: 2 }));
    expect(queued.map((q) => q.status)).toEqual([202, 202, 202]);
    const full = await post(base, { prompt: 'over', steps: 2 });
    expect(full.status).toBe(429);
    expect(full.json.error).toBe('queue_full');

    // A queued job is cancelled at once and frees its place.
    const del = await fetch(`${base}/v1/jobs/${queued[0]!.json.id}`, { method: 'DELETE' });
    expect(((await del.json()) as JobInfo).status).toBe('cancelled');
    expect((await post(base, { prompt: 'fits again', steps: 2 })).status).toBe(202);

    // A running job stops at its next step.
    const delRunning = await fetch(`${base}/v1/jobs/${running.json.id}`, { method: 'DELETE' });
    expect(delRunning.status).toBe(200);
    gen.unhold();
    const stopped = await waitFor(base, running.json.id, finished);
    expect(stopped.status).toBe('cancelled');
    expect(stopped.progress?.step ?? 0).toBeLessThan(50);
    for (const q of queued.slice(1)) expect((await waitFor(base, q.json.id, finished)).status).toBe('done');
    expect((await fetch(`${base}/v1/jobs/unknown-id`, { method: 'DELETE' })).status).toBe(404);
  });

  it('streams status, progress, previews and done as server-sent events', async () => {
    const r = await post(base, { prompt: 'sse', steps: 10 });
    const { events, ended } = await readEvents(`${base}/v1/jobs/${r.json.id}/events`, () => false);
    expect(ended).toBe(true);
    const kinds = events.map((e) => e.event);
    expect(kinds[0]).toBe('status');
    expect(kinds).toContain('progress');
    expect(kinds).toContain('preview');
    expect(kinds.at(-1)).toBe('done');
    expect(events.at(-1)!.data.status).toBe('done');
    // A finished job's stream says so at once and ends.
    const again = await readEvents(`${base}/v1/jobs/${r.json.id}/events`, () => false);
    expect(again.events.map((e) => e.event)).toEqual(['status', 'done']);
    expect(queue.subscriberCount()).toBe(0);
  });

  it('removes the subscription when a client disconnects mid-job (no leak)', async () => {
    gen.hold();
    const r = await post(base, { prompt: 'leave early', steps: 40 });
    const clients = await Promise.all(
      Array.from({ length: 20 }, () =>
        readEvents(`${base}/v1/jobs/${r.json.id}/events`, (ev) => ev.some((e) => e.event === 'status')),
      ),
    );
    expect(clients.every((c) => !c.ended)).toBe(true);
    gen.unhold();
    // The server notices closed sockets asynchronously.
    for (let i = 0; i < 100 && queue.subscriberCount() > 0; i++)
      await new Promise((res) => setTimeout(res, 10));
    expect(queue.subscriberCount()).toBe(0);
    expect((await waitFor(base, r.json.id, finished)).status).toBe('done');
  });

  it('serves /v1/models, an OpenAPI 3.1 document of every route, and the page without external assets', async () => {
    expect(await (await fetch(`${base}/v1/models`)).json()).toEqual({ models: gen.models() });
    expect(await (await fetch(`${base}/v1/browser`)).json()).toEqual({
      available: false,
      reason: 'this server has no local model (--model)',
    });
    expect((await fetch(`${base}/browser.js`)).status).toBe(404);
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as Json;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/',
        '/openapi.json',
        '/v1/generate',
        '/v1/jobs/{id}',
        '/v1/jobs/{id}/events',
        '/v1/jobs/{id}/images/{name}',
        '/v1/models',
        '/v1/browser',
        '/v1/browser/model/{path}',
        '/v1/browser/sr/{path}',
        '/browser.js',
        '/ort/{file}',
      ].sort(),
    );
    expect(Object.keys(doc.paths['/v1/jobs/{id}'])).toEqual(expect.arrayContaining(['get', 'delete']));
    expect(doc.components.schemas.GenerateRequest.properties.prompt.maxLength).toBe(1000);
    for (const [path, type] of [
      ['/', 'text/html'],
      ['/app.js', 'text/javascript'],
      ['/style.css', 'text/css'],
    ] as const) {
      const res = await fetch(`${base}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      // No CDN: nothing the page loads comes from another host.
      expect(await res.text()).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
    }
  });
});

describe('load and faults (loopback, bounded)', () => {
  it('100 concurrent POSTs are all answered 202 or 429; the server survives and memory is stable', async () => {
    const gen = new FakeGenerator(0);
    const queue = new InProcessQueue(gen, { maxQueued: 16, keepFinished: 50 });
    const app = buildApp({ queue });
    const base = await listen(app);
    try {
      const burst = async () => {
        const answers = await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            i % 10 === 9
              ? post(base, undefined, '{"prompt": ') // a malformed one in every ten
              : post(base, { prompt: `p${i}`, steps: 3 }),
          ),
        );
        const bad = answers.filter((_, i) => i % 10 === 9);
        const good = answers.filter((_, i) => i % 10 !== 9);
        expect(bad.every((a) => a.status === 400)).toBe(true);
        expect(good.every((a) => a.status === 202 || a.status === 429)).toBe(true);
        const accepted = good.filter((a) => a.status === 202).length;
        // At least the queue bound gets in; the rest may be refused, never dropped silently.
        expect(accepted).toBeGreaterThanOrEqual(16);
        for (const a of good.filter((x) => x.status === 202))
          expect((await waitFor(base, a.json.id, finished)).status).toBe('done');
        return accepted;
      };
      gen.hold();
      // Held at the first job: exactly 1 running + 16 queued are accepted.
      const heldBurst = Promise.all(
        Array.from({ length: 100 }, (_, i) => post(base, { prompt: `h${i}`, steps: 2 })),
      );
      const held = await heldBurst;
      expect(held.filter((a) => a.status === 202).length).toBe(17);
      expect(held.filter((a) => a.status === 429).length).toBe(83);
      gen.unhold();
      for (const a of held.filter((x) => x.status === 202))
        expect((await waitFor(base, a.json.id, finished)).status).toBe('done');

      await burst(); // warm-up: JIT, sockets, buffers
      global.gc?.();
      const before = process.memoryUsage().rss;
      for (let round = 0; round < 5; round++) await burst();
      global.gc?.();
      const growth = (process.memoryUsage().rss - before) / 2 ** 20;
      // Finished jobs beyond keepFinished are dropped; RSS may wobble but must not climb per job.
      expect(growth).toBeLessThan(64);
      expect((await fetch(`${base}/v1/models`)).status).toBe(200);
      expect(queue.subscriberCount()).toBe(0);
    } finally {
      gen.unhold();
      await app.close();
      await queue.close();
    }
  });
});

describe('with a real (tiny, untrained) pipeline folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'serve-model-'));
  let gen: PipelineGenerator;
  let queue: InProcessQueue;
  let app: FastifyInstance;
  let base = '';
  beforeAll(async () => {
    await writeTinyModel(join(dir, 'tiny'));
    gen = await PipelineGenerator.load(join(dir, 'tiny'));
    queue = new InProcessQueue(gen);
    app = buildApp({ queue, browserModelDir: join(dir, 'tiny') });
    base = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await queue?.close();
    await gen?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('generates a PNG of the model size with x̂0 previews; the same seed gives the same image', async () => {
    expect(await (await fetch(`${base}/v1/models`)).json()).toEqual({
      models: [{ id: 'tiny', stage: 'base', size: 16, text_encoder: true }],
    });
    const r = await post(base, { prompt: 'a blue square', steps: 12, seed: 5, thresholding: 'static' });
    const { events } = await readEvents(`${base}/v1/jobs/${r.json.id}/events`, () => false);
    const previews = events.filter((e) => e.event === 'preview');
    expect(previews.length).toBeGreaterThanOrEqual(5);
    const pv = await sharp(Buffer.from(previews[0]!.data.image.split(',')[1], 'base64')).metadata();
    expect([pv.format, pv.width, pv.height]).toEqual(['png', 16, 16]);
    const job = events.at(-1)!.data as JobInfo;
    expect(job.status).toBe('done');
    const png = Buffer.from(await (await fetch(`${base}${job.images[0]}`)).arrayBuffer());
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([16, 16, 3]);
    const mean = data.reduce((a, b) => a + b, 0) / data.length;
    expect(data.reduce((a, b) => a + (b - mean) ** 2, 0) / data.length).toBeGreaterThan(0);
    const again = await post(base, { prompt: 'a blue square', steps: 12, seed: 5, thresholding: 'static' });
    const job2 = await waitFor(base, again.json.id, finished);
    expect(Buffer.from(await (await fetch(`${base}${job2.images[0]}`)).arrayBuffer())).toEqual(png);
  });

  it("a request without steps / guidance gets the model's generation_config.json values", async () => {
    const own = join(dir, 'with-defaults');
    cpSync(join(dir, 'tiny'), own, { recursive: true });
    writeFileSync(
      join(own, 'generation_config.json'),
      JSON.stringify({ num_inference_steps: 3, guidance_scale: 2 }),
    );
    const g2 = await PipelineGenerator.load(own);
    const q2 = new InProcessQueue(g2);
    const app2 = buildApp({ queue: q2 });
    try {
      const b2 = await listen(app2);
      expect(await (await fetch(`${b2}/v1/models`)).json()).toEqual({
        models: [
          { id: 'with-defaults', stage: 'base', size: 16, text_encoder: true, steps: 3, guidance_scale: 2 },
        ],
      });
      const job = await waitFor(b2, (await post(b2, { prompt: 'a blue square', seed: 1 })).json.id, finished);
      expect(job.status).toBe('done');
      expect(job.params).toMatchObject({ steps: 3, guidance_scale: 2 });
      expect(job.progress).toMatchObject({ step: 3, total: 3 });
      // the caller still wins; a folder without generation_config keeps the API's defaults
      const mine = await waitFor(
        b2,
        (await post(b2, { prompt: 'x', steps: 2, guidance_scale: 1 })).json.id,
        finished,
      );
      expect(mine.params).toMatchObject({ steps: 2, guidance_scale: 1 });
      const plain = await post(base, { prompt: 'x', seed: 1 });
      expect((await waitFor(base, plain.json.id, finished)).params).toMatchObject({
        steps: 50,
        guidance_scale: 7,
      });
    } finally {
      await app2.close();
      await q2.close();
      await g2.close();
    }
  });

  it('browser mode: serves the bundled pipeline, onnxruntime-web and a fixed list of model files', async () => {
    expect(await (await fetch(`${base}/v1/browser`)).json()).toMatchObject({ available: true });
    const js = await fetch(`${base}/browser.js`);
    expect(js.status).toBe(200);
    expect(await js.text()).toMatch(/from ?"onnxruntime-web"/);
    const wasm = await fetch(`${base}/ort/ort-wasm-simd-threaded.jsep.wasm`);
    expect([wasm.status, wasm.headers.get('content-type')]).toEqual([200, 'application/wasm']);
    const weights = await fetch(`${base}/v1/browser/model/unet/diffusion_pytorch_model.safetensors`);
    expect(weights.status).toBe(200);
    expect((await weights.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    for (const path of [
      '/v1/browser/model/model_index.json',
      '/v1/browser/model/..%2F..%2Fetc%2Fpasswd',
      '/v1/browser/model/unet/../../x',
      '/ort/..%2Fpackage.json',
      '/ort/evil.js',
      // stage I alone: no stage II files, and the page is not told of one
      '/v1/browser/sr/unet/config.json',
    ])
      expect((await fetch(`${base}${path}`)).status, path).toBe(404);
    expect(await (await fetch(`${base}/v1/browser`)).json()).not.toHaveProperty('sr_model_files');
  });

  it('browser mode with a stage II: serves its files under their own prefix; the size cap counts both stages', async () => {
    await writeTinySrModel(join(dir, 'tiny-sr'));
    const with2 = buildApp({
      queue,
      browserModelDir: join(dir, 'tiny'),
      browserSrModelDir: join(dir, 'tiny-sr'),
    });
    // Sparse copies: each stage under the 1.5 GB cap, the two together over it.
    const big = join(dir, 'big');
    for (const s of ['tiny', 'tiny-sr']) {
      cpSync(join(dir, s), join(big, s), { recursive: true });
      truncateSync(join(big, s, 'unet', 'diffusion_pytorch_model.safetensors'), 0.8e9);
    }
    const tooBig = buildApp({
      queue,
      browserModelDir: join(big, 'tiny'),
      browserSrModelDir: join(big, 'tiny-sr'),
    });
    const bigBase = buildApp({ queue, browserModelDir: join(big, 'tiny') });
    try {
      const b2 = await listen(with2);
      expect(await (await fetch(`${b2}/v1/browser`)).json()).toMatchObject({
        available: true,
        model_files: '/v1/browser/model/',
        sr_model_files: '/v1/browser/sr/',
      });
      for (const [path, type] of [
        ['/v1/browser/sr/image_noising_scheduler/scheduler_config.json', 'application/json'],
        ['/v1/browser/sr/generation_config.json', 'application/json'],
        ['/v1/browser/sr/text_encoder/model.safetensors', 'application/octet-stream'],
        ['/v1/browser/model/unet/config.json', 'application/json'],
      ] as const) {
        const res = await fetch(`${b2}${path}`);
        expect([res.status, res.headers.get('content-type')], path).toEqual([200, type]);
      }
      // the stage-II route serves the stage-II folder, not stage I's
      const srUnet = (await (await fetch(`${b2}/v1/browser/sr/unet/config.json`)).json()) as Json;
      expect([srUnet.sample_size, srUnet.in_channels]).toEqual([32, 6]);
      for (const path of [
        '/v1/browser/sr/model_index.json',
        '/v1/browser/sr/..%2F..%2Ftiny%2Funet%2Fconfig.json',
        '/v1/browser/sr/unet/../../tiny/unet/config.json',
      ])
        expect((await fetch(`${b2}${path}`)).status, path).toBe(404);

      expect(await (await fetch(`${await listen(bigBase)}/v1/browser`)).json()).toMatchObject({
        available: true,
      });
      expect(await (await fetch(`${await listen(tooBig)}/v1/browser`)).json()).toEqual({
        available: false,
        reason: 'the model is too large to run in a browser tab',
      });
    } finally {
      await with2.close();
      await tooBig.close();
      await bigBase.close();
    }
  });

  it('cancels a running generation at its next step', async () => {
    const r = await post(base, { prompt: 'long', steps: 1000 });
    await waitFor(base, r.json.id, (j) => (j.progress?.step ?? 0) >= 3);
    await fetch(`${base}/v1/jobs/${r.json.id}`, { method: 'DELETE' });
    const job = await waitFor(base, r.json.id, finished);
    expect(job.status).toBe('cancelled');
    expect(job.progress!.step).toBeLessThan(1000);
    expect(job.images).toEqual([]);
  });
});

describe('imagen serve / worker commands', () => {
  it('refuse to start with a missing model or bad flags (exit 2, clear message)', async () => {
    const { main } = await import('../../src/cli/main.js');
    const errs: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => errs.push(String(s)) > 0) as typeof process.stderr.write;
    try {
      // (Without --model both serve the shipped model.)
      expect(await main(['node', 'imagen', 'serve', '--model', '/nonexistent/model'])).toBe(2);
      expect(await main(['node', 'imagen', 'serve', '--model', 'x', '--port', '70000'])).toBe(2);
      expect(await main(['node', 'imagen', 'worker'])).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    const text = errs.join('');
    expect(text).toMatch(/\/nonexistent\/model: no such model folder/);
    expect(text).toMatch(/--port must be an integer in 0\.\.65535/);
    expect(text).toMatch(/required option '--redis <url>'/);
  });

  it('`imagen serve` binds 127.0.0.1 by default, serves, and stops on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'serve-cli-'));
    try {
      await writeTinyModel(join(dir, 'tiny'));
      const child = spawn(
        process.execPath,
        ['bin/imagen.js', 'serve', '--model', join(dir, 'tiny'), '--port', '0'],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      const address = await new Promise<string>((resolve, reject) => {
        let err = '';
        child.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          const m = /imagen serve: (http:\/\/[^/\s]+)\//.exec(err);
          if (m) resolve(m[1]!);
        });
        child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
      });
      expect(address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const r = await post(address, { prompt: 'cli', steps: 4 });
      expect(r.status).toBe(202);
      expect((await waitFor(address, r.json.id, finished)).status).toBe('done');
      const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
