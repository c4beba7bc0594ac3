/**
 * Keep a training line's weights in the repository: a float16 copy of a pipeline folder (a stopped
 * run, or a `snapshot.ts` export) under training/lines/, so that the next chunk can `--init-from` it
 * on a fresh machine. The working folders (runs/, datasets, eval reports) do not outlive a session's
 * machine, and the twenty-seventh chunk found the twenty-sixth's runs gone; a line's fp16 EMA
 * weights are 8 MB, its resumable checkpoint (fp32 weights and Adam moments) about seven times that.
 * `--init-from` starts a fresh optimiser and schedule, which the warm cycles do anyway.
 *
 *   npx tsx training/keep_line.ts PIPELINE_DIR training/lines/NAME "what it is"
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { replacePipeline, toFloat16 } from './pipeline_weights.js';

const [src, out, about] = process.argv.slice(2);
if (!src || !out || !about) {
  console.error('usage: keep_line.ts PIPELINE_DIR OUT_DIR "what it is (recipe, steps, where it came from)"');
  process.exit(2);
}

/** The run's last logged step, where `src` is a run folder (a snapshot has no loss log). */
async function lastStep(dir: string): Promise<number | null> {
  const log = await readFile(join(dir, 'loss.jsonl'), 'utf8').catch(() => '');
  const last = log.trimEnd().split('\n').pop();
  return last ? (JSON.parse(last) as { step: number }).step : null;
}

const kept = { about, source: src, step: await lastStep(src), dtype: 'float16' };
await replacePipeline(
  src,
  out,
  (_file, tensors) => toFloat16(tensors),
  (dir) => writeFile(join(dir, 'kept.json'), `${JSON.stringify(kept, null, 2)}\n`),
);
console.log(JSON.stringify({ out, ...kept }));
