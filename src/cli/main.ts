import { Command, CommanderError } from 'commander';
import { ImagenError } from '../engine/errors.js';
import { registerCompare } from './commands/compare.js';
import { registerDataset } from './commands/dataset.js';
import { registerEncode } from './commands/encode.js';
import { registerEval } from './commands/eval.js';
import { registerForward } from './commands/forward.js';
import { registerGenerate } from './commands/generate.js';
import { registerInfo } from './commands/info.js';
import { registerInpaint } from './commands/inpaint.js';
import { registerServe } from './commands/serve.js';
import { registerTrain } from './commands/train.js';
import { registerUpscale } from './commands/upscale.js';
import { registerVary } from './commands/vary.js';
import { registerWorker } from './commands/worker.js';
import { EXIT_OK, EXIT_USAGE, exitCodeFor } from './errors.js';
import { VERSION } from './version.js';

export function buildProgram(): Command {
  const program = new Command('imagen')
    .description(
      'imagen-ts: Imagen / DeepFloyd IF text-to-image diffusion in TypeScript, executed by ONNX Runtime.',
    )
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride();
  registerInfo(program);
  registerForward(program);
  registerEncode(program);
  registerTrain(program);
  registerGenerate(program);
  registerCompare(program);
  registerServe(program);
  registerWorker(program);
  registerDataset(program);
  registerEval(program);
  registerVary(program);
  registerInpaint(program);
  registerUpscale(program);
  // The command list shows one line each; `imagen CMD --help` shows the full description.
  for (const c of program.commands) {
    if (!c.summary()) c.summary(firstSentence(c.description()));
  }
  return program;
}

function firstSentence(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  let depth = 0;
  for (let i = 0; i < flat.length; i++) {
    const ch = flat[i]!;
    if (ch === '(') depth++;
    else if (ch === ')') depth = Math.max(0, depth - 1);
    else if (depth === 0 && (ch === '.' || ch === ':') && (i + 1 === flat.length || flat[i + 1] === ' ')) {
      return flat.slice(0, i);
    }
  }
  return flat;
}

/** Run the CLI; returns the process exit code (0 ok, 2 bad usage/input, 1 other failure). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through exitOverride with exit code 0.
      return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    const msg = e instanceof ImagenError ? `error: ${e.message}` : `error: ${(e as Error)?.stack ?? e}`;
    process.stderr.write(`${msg}\n`);
    const explicit = (e as { exitCode?: unknown }).exitCode;
    return typeof explicit === 'number' ? explicit : exitCodeFor(e);
  }
}
