/**
 * The dev scripts' shared walk over a pipeline folder: model_index.json and the component folders it
 * names are copied, every safetensors file passing through `rewrite` (a run folder also holds
 * checkpoint/, loss.jsonl and eval reports, which stay behind).
 */
import { cp, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NDArray } from '../src/engine/ndarray.js';
import { openSafetensors, writeSafetensors } from '../src/platform/node/files.js';

export type Tensors = Record<string, NDArray>;

/** Every tensor of one safetensors file, in its stored dtype. */
export async function readTensors(path: string): Promise<Tensors> {
  const st = await openSafetensors(path);
  const all: Tensors = {};
  try {
    for (const k of st.keys()) all[k] = await st.get(k);
  } finally {
    await st.close();
  }
  return all;
}

/** The same tensors stored as float16 (the runtime widens them to float32 inside the graph). */
export function toFloat16(tensors: Tensors): Tensors {
  const half: Tensors = {};
  for (const [k, t] of Object.entries(tensors)) half[k] = t.cast('float16');
  return half;
}

/** Copy pipeline `src` to `dst`; `file` is a weights file's path inside the pipeline (`unet/….safetensors`). */
export async function rewritePipeline(
  src: string,
  dst: string,
  rewrite: (file: string, tensors: Tensors) => Tensors | Promise<Tensors>,
): Promise<void> {
  await mkdir(dst, { recursive: true });
  const index = JSON.parse(await readFile(join(src, 'model_index.json'), 'utf8')) as Record<string, unknown>;
  await cp(join(src, 'model_index.json'), join(dst, 'model_index.json'));
  for (const entry of await readdir(src, { withFileTypes: true })) {
    if (!entry.isDirectory() || !Array.isArray(index[entry.name])) continue;
    await mkdir(join(dst, entry.name), { recursive: true });
    for (const f of await readdir(join(src, entry.name))) {
      const file = join(entry.name, f);
      if (!f.endsWith('.safetensors')) {
        await cp(join(src, file), join(dst, file));
        continue;
      }
      const out = await rewrite(file, await readTensors(join(src, file)));
      await writeSafetensors(join(dst, file), out, { format: 'pt' });
    }
  }
}

/**
 * `rewritePipeline` into `out`, built beside it as `out.tmp` and swapped in only when complete, so an
 * interrupted script leaves the old folder; `finish` may add files to the new folder first.
 */
export async function replacePipeline(
  src: string,
  out: string,
  rewrite: (file: string, tensors: Tensors) => Tensors | Promise<Tensors>,
  finish?: (dir: string) => Promise<void>,
): Promise<void> {
  const tmp = `${out}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await rewritePipeline(src, tmp, rewrite);
  await finish?.(tmp);
  await rm(out, { recursive: true, force: true });
  await rename(tmp, out);
}
