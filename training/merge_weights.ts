/**
 * Interpolate two pipeline folders of the same architecture, weight by weight:
 * out = (1 − alpha)·A + alpha·B, for every safetensors file the two share (WiSE-FT, Wortsman et
 * al. 2022: between a model and its fine-tune, the linear path often keeps most of what each is
 * good at). Configs, tokenizer and scheduler come from B. Used to trade the letters a sign
 * fine-tune learnt against the attributes the weights it started from hold (training/README.md,
 * twenty-sixth chunk).
 *
 *   npx tsx training/merge_weights.ts A_DIR B_DIR ALPHA OUT_DIR
 */
import { cp, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { NDArray } from '../src/engine/ndarray.js';
import { openSafetensors, writeSafetensors } from '../src/platform/node/files.js';

const [a, b, alphaArg, out] = process.argv.slice(2);
const alpha = Number(alphaArg);
if (!a || !b || !out || !Number.isFinite(alpha)) {
  console.error('usage: merge_weights.ts A_DIR B_DIR ALPHA OUT_DIR');
  process.exit(2);
}

async function tensors(path: string): Promise<Record<string, NDArray>> {
  const st = await openSafetensors(path);
  const all: Record<string, NDArray> = {};
  try {
    for (const k of st.keys()) all[k] = (await st.get(k)).cast('float32');
  } finally {
    await st.close();
  }
  return all;
}

const tmp = `${out}.tmp`;
await rm(tmp, { recursive: true, force: true });
await mkdir(tmp, { recursive: true });
const index = JSON.parse(await readFile(join(b, 'model_index.json'), 'utf8')) as Record<string, unknown>;
await cp(join(b, 'model_index.json'), join(tmp, 'model_index.json'));
let merged = 0;
for (const entry of await readdir(b, { withFileTypes: true })) {
  if (!entry.isDirectory() || !Array.isArray(index[entry.name])) continue;
  await mkdir(join(tmp, entry.name), { recursive: true });
  for (const f of await readdir(join(b, entry.name))) {
    const fromB = join(b, entry.name, f);
    if (!f.endsWith('.safetensors')) {
      await cp(fromB, join(tmp, entry.name, f));
      continue;
    }
    const [ta, tb] = [await tensors(join(a, entry.name, f)), await tensors(fromB)];
    const keysA = Object.keys(ta).sort().join();
    if (keysA !== Object.keys(tb).sort().join()) throw new Error(`${entry.name}/${f}: the two folders hold different tensors`);
    const mix: Record<string, NDArray> = {};
    for (const [k, x] of Object.entries(tb)) {
      const y = ta[k]!;
      if (y.shape.join() !== x.shape.join()) throw new Error(`${entry.name}/${f}: ${k} has shape ${y.shape} in A, ${x.shape} in B`);
      const d = new Float32Array(x.data.length);
      for (let i = 0; i < d.length; i++) d[i] = (1 - alpha) * (y.data[i] as number) + alpha * (x.data[i] as number);
      mix[k] = NDArray.f32(x.shape, d);
      merged++;
    }
    await writeSafetensors(join(tmp, entry.name, f), mix, { format: 'pt' });
  }
}
await rm(out, { recursive: true, force: true });
await rename(tmp, out);
console.log(JSON.stringify({ a, b, alpha, out, tensors: merged }));
