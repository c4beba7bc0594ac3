import type { Command } from 'commander';
import { ImagenError } from '../../engine/errors.js';
import { SHIPPED_MODEL_NAME, shippedModel } from '../../platform/node/shipped_model.js';
import { buildApp } from '../../server/app.js';
import { type Generator, PipelineGenerator } from '../../server/generator.js';
import { InProcessQueue } from '../../server/memory_queue.js';
import type { JobQueue } from '../../server/queue.js';
import { RedisQueue, startWorker } from '../../server/redis_queue.js';
import { usageError } from '../errors.js';
import { logger } from '../progress.js';

interface ServeFlags {
  host: string;
  port: string;
  model?: string;
  srModel?: string;
  redis?: string;
  results?: string;
  queueSize: string;
  quiet: boolean;
}

/** --model / --sr-model, defaulting to the shipped model's two stages. */
export function modelFolders(f: { model?: string; srModel?: string }): { model?: string; srModel?: string } {
  if (f.model) return { model: f.model, srModel: f.srModel };
  const shipped = shippedModel();
  return shipped ? { model: shipped.base, srModel: f.srModel ?? shipped.sr } : { srModel: f.srModel };
}

export function parseIntFlag(v: string, flag: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw usageError(`${flag} must be an integer in ${min}..${max}, got "${v}"`);
  return n;
}

/** Resolve on SIGINT/SIGTERM (then a second signal exits at once). */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => {
      process.once(sig as NodeJS.Signals, () => process.exit(130));
      resolve(sig);
    };
    process.once('SIGINT', () => on('SIGINT'));
    process.once('SIGTERM', () => on('SIGTERM'));
  });
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'HTTP server: JSON API (POST /v1/generate, GET/DELETE /v1/jobs/:id, server-sent events, /v1/models, ' +
        '/openapi.json) and a web page at / (which can also run the model in the browser). Jobs run one at a ' +
        'time in this process, or with --redis through a BullMQ queue that `imagen worker` processes take jobs from.',
    )
    .option('--host <addr>', 'address to bind (0.0.0.0 exposes the server to the network)', '127.0.0.1')
    .option('--port <n>', 'TCP port (0: any free port)', '7860')
    .option('--model <dir>', `stage-I pipeline folder [default: the shipped model, ${SHIPPED_MODEL_NAME}]`)
    .option('--sr-model <dir>', 'super-resolution pipeline folder (stage II)')
    .option(
      '--redis <url>',
      'Redis URL (redis://host:port): queue jobs in BullMQ for `imagen worker` processes; with --model this process works too',
    )
    .option(
      '--results <dir>',
      'with --redis: a folder shared by all nodes for result PNGs [default: in Redis]',
    )
    .option('--queue-size <n>', 'jobs that may wait; more are answered 429', '16')
    .option('--quiet', 'no request log', false)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen serve --model my-model            # then open http://127.0.0.1:7860/\n' +
        '  imagen serve --redis redis://127.0.0.1:6379 --port 8080\n' +
        '  imagen worker --redis redis://127.0.0.1:6379 --model my-model   # on every GPU/CPU node',
    )
    .action(async (f: ServeFlags) => {
      const say = logger(f.quiet);
      const port = parseIntFlag(f.port, '--port', 0, 65535);
      const queueSize = parseIntFlag(f.queueSize, '--queue-size', 1, 100_000);
      // With --redis and no --model this process only queues (workers generate); otherwise it
      // serves the given model, or the shipped one.
      const { model, srModel } =
        f.redis && !f.model ? { model: undefined, srModel: undefined } : modelFolders(f);
      if (!model && !f.redis)
        throw new ImagenError(
          'NOT_FOUND',
          `no model: pass --model DIR (a stage-I pipeline folder, e.g. one written by \`imagen train\`); this copy of imagen-ts has no shipped model (models/${SHIPPED_MODEL_NAME})`,
        );
      if (f.results && !f.redis)
        throw usageError('--results needs --redis (in-process results stay in memory)');

      let generator: Generator | undefined;
      if (model) {
        say(`loading ${model}${srModel ? ` + ${srModel}` : ''} …`);
        generator = await PipelineGenerator.load(model, { srModel });
      }
      let queue: JobQueue;
      let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
      if (f.redis) {
        queue = await RedisQueue.connect(f.redis, { maxQueued: queueSize, resultsDir: f.results });
        // A serving node with a model also works: one command for a single machine.
        if (generator) worker = await startWorker(f.redis, generator, { resultsDir: f.results, log: say });
      } else queue = new InProcessQueue(generator!, { maxQueued: queueSize });

      const app = buildApp({ queue, logger: !f.quiet, browserModelDir: model, browserSrModelDir: srModel });
      const address = await app.listen({ host: f.host, port });
      say(`imagen serve: ${address}/ (API: ${address}/openapi.json)`);
      await untilSignal();
      say('shutting down …');
      await app.close();
      await worker?.close();
      await queue.close();
      await generator?.close();
    });
}
