import type { Command } from 'commander';
import { ImagenError } from '../../engine/errors.js';
import { PipelineGenerator } from '../../server/generator.js';
import { startWorker } from '../../server/redis_queue.js';
import { logger } from '../progress.js';
import { modelFolders, parseIntFlag, untilSignal } from './serve.js';

interface WorkerFlags {
  redis: string;
  model?: string;
  srModel?: string;
  results?: string;
  name?: string;
  lockDuration: string;
  quiet: boolean;
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description(
      'Take generation jobs from the Redis queue that `imagen serve --redis` fills, one at a time. ' +
        'Start any number, on this or other machines; all must load the same model.',
    )
    .requiredOption('--redis <url>', 'Redis URL, e.g. redis://10.0.0.5:6379')
    .option('--model <dir>', 'stage-I pipeline folder [default: the shipped model]')
    .option('--sr-model <dir>', 'super-resolution pipeline folder (stage II)')
    .option('--results <dir>', 'write result PNGs to this folder shared with the servers [default: in Redis]')
    .option('--name <name>', 'worker name shown in jobs [default: host:pid]')
    .option(
      '--lock-duration <ms>',
      'job lock lifetime: if this worker dies, another retries its job after about this long',
      '30000',
    )
    .option('--quiet', 'no log lines', false)
    .addHelpText('after', '\nExample:\n  imagen worker --redis redis://127.0.0.1:6379 --model my-model')
    .action(async (f: WorkerFlags) => {
      const say = logger(f.quiet);
      const lockDurationMs = parseIntFlag(f.lockDuration, '--lock-duration', 1000, 3_600_000);
      const { model, srModel } = modelFolders(f);
      if (!model)
        throw new ImagenError(
          'NOT_FOUND',
          'no model: pass --model DIR (a stage-I pipeline folder); this copy of imagen-ts has no shipped model',
        );
      const generator = await PipelineGenerator.load(model, { srModel });
      const worker = await startWorker(f.redis, generator, {
        name: f.name,
        resultsDir: f.results,
        lockDurationMs,
        log: say,
      });
      await untilSignal();
      say(`worker ${worker.name}: finishing the running job, then stopping …`);
      await worker.close();
      await generator.close();
    });
}
