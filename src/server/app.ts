import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { registerBrowserMode } from './browser_mode.js';
import { openApiDocument } from './openapi.js';
import { type JobQueue, QueueFullError } from './queue.js';
import { SseStream } from './sse.js';
import { FINAL_STATUSES, type JobEvent } from './types.js';
import { LIMITS, requestDefaults, ValidationError, validateGenerate } from './validation.js';
import { webAssets } from './web_assets.js';

export interface AppOptions {
  queue: JobQueue;
  /** Fastify's logger (off in tests). */
  logger?: boolean;
  bodyLimit?: number;
  sseHeartbeatMs?: number;
  /** The local stage-I model folder, offered to the page for browser mode (absent: no browser mode). */
  browserModelDir?: string;
  /** The local stage-II folder of the same cascade: browser mode then runs both stages. */
  browserSrModelDir?: string;
}

/** Job ids are UUIDs; anything else is refused before it reaches Redis keys or maps. */
const ID = /^[A-Za-z0-9-]{1,64}$/;

function badRequest(reply: FastifyReply, field: string | null, message: string) {
  return reply.code(400).send({ error: 'bad_request', field, message });
}

function notFound(reply: FastifyReply, what = 'no such job') {
  return reply.code(404).send({ error: 'not_found', field: null, message: what });
}

/** The HTTP API, the OpenAPI document and the web page over a job queue. */
export function buildApp(o: AppOptions): FastifyInstance {
  const { queue } = o;
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: o.bodyLimit ?? LIMITS.bodyBytes,
    // The one JSON route takes a flat object; prototype keys are refused outright.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  });

  // Every client error answers 400 with a message (malformed JSON, too large a body, …); the issue
  // asks for one status for "the request is wrong" so that clients need one branch.
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return badRequest(
        reply,
        null,
        `the request body is larger than ${o.bodyLimit ?? LIMITS.bodyBytes} bytes`,
      );
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.code(415).send({ error: 'unsupported_media_type', field: null, message: err.message });
    if (status >= 400 && status < 500) return badRequest(reply, null, `invalid request: ${err.message}`);
    app.log.error(err);
    return reply.code(500).send({ error: 'internal', field: null, message: 'internal server error' });
  });

  app.post('/v1/generate', async (req, reply) => {
    let params: ReturnType<typeof validateGenerate>;
    try {
      const models = await queue.models();
      params = validateGenerate(req.body, {
        sizes: models.map((m) => m.size),
        defaults: requestDefaults(models),
      });
    } catch (e) {
      if (e instanceof ValidationError) return badRequest(reply, e.field, e.message);
      throw e;
    }
    try {
      const job = await queue.submit(params);
      return reply
        .code(202)
        .header('location', `/v1/jobs/${job.id}`)
        .send({ id: job.id, status: job.status, url: `/v1/jobs/${job.id}` });
    } catch (e) {
      if (e instanceof QueueFullError)
        return reply
          .code(429)
          .header('retry-after', '5')
          .send({ error: 'queue_full', field: null, message: e.message });
      throw e;
    }
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (req, reply) => {
    const job = ID.test(req.params.id) ? await queue.get(req.params.id) : undefined;
    return job ? job : notFound(reply);
  });

  app.delete<{ Params: { id: string } }>('/v1/jobs/:id', async (req, reply) => {
    const job = ID.test(req.params.id) ? await queue.cancel(req.params.id) : undefined;
    return job ? job : notFound(reply);
  });

  app.get<{ Params: { id: string; name: string } }>('/v1/jobs/:id/images/:name', async (req, reply) => {
    const m = /^(\d{1,3})\.png$/.exec(req.params.name);
    if (!m || !ID.test(req.params.id)) return notFound(reply, 'no such image');
    const png = await queue.image(req.params.id, Number(m[1]));
    if (!png) return notFound(reply, 'no such image (the job may not be done yet)');
    return reply
      .type('image/png')
      .header('cache-control', 'public, max-age=86400, immutable')
      .header('content-disposition', `inline; filename="imagen-${req.params.id.slice(0, 8)}-${m[1]}.png"`)
      .send(Buffer.from(png.buffer, png.byteOffset, png.byteLength));
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id/events', async (req, reply) => {
    const id = req.params.id;
    if (!ID.test(id) || !(await queue.get(id))) return notFound(reply);
    // The socket is ours from here: fastify must not try to send a reply of its own.
    reply.hijack();
    const sse = new SseStream(reply.raw, o.sseHeartbeatMs);
    const onEvent = (e: JobEvent) => {
      if (e.type === 'status') {
        sse.send('status', e.job);
        if (FINAL_STATUSES.has(e.job.status)) {
          sse.send('done', e.job);
          sse.close();
        }
      } else if (e.type === 'progress') sse.send('progress', e.progress);
      else sse.send('preview', { stage: e.stage, step: e.step, total: e.total, image: e.image }, true);
    };
    // Subscribe before reading the snapshot so that no transition falls between the two.
    const unsubscribe = queue.subscribe(id, onEvent);
    sse.onClose(unsubscribe);
    const job = await queue.get(id);
    if (job && !sse.isClosed) onEvent({ type: 'status', job });
  });

  app.get('/v1/models', async () => ({ models: await queue.models() }));

  app.get('/openapi.json', async () => openApiDocument());

  const assets = webAssets();
  for (const a of assets) {
    app.get(a.route, async (_req, reply) =>
      reply.type(a.type).header('cache-control', 'no-cache').send(a.body),
    );
  }
  app.register(async (scope) => registerBrowserMode(scope, o.browserModelDir, o.browserSrModelDir));
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());

  return app;
}
