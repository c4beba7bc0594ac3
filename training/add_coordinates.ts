/**
 * Give a stopped `imagen train` run coordinate channels (unet config `coordinate_channels: 2`) and
 * write it as a new run that `imagen train --resume` continues. conv_in gets two more input
 * channels whose weights (and AdamW moments) start at zero, so the new run computes exactly what
 * the old one did until training moves them.
 *
 *   npx tsx training/add_coordinates.ts OLD_RUN NEW_RUN
 */
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NDArray } from '../src/engine/ndarray.js';
import { atomicWriteFile, openSafetensors, writeSafetensors } from '../src/platform/node/files.js';

const [from, to] = process.argv.slice(2);
if (!from || !to) {
  console.error('usage: add_coordinates.ts OLD_RUN NEW_RUN');
  process.exit(2);
}
const EXTRA = 2;

/** [O, I, kh, kw] → [O, I + EXTRA, kh, kw] with the new input channels zero. */
function widen(w: NDArray): NDArray {
  const [o, i, kh, kw] = w.shape as number[];
  const src = w.data as Float32Array;
  const k = kh! * kw!;
  const out = new Float32Array(o! * (i! + EXTRA) * k);
  for (let a = 0; a < o!; a++) out.set(src.subarray(a * i! * k, (a + 1) * i! * k), a * (i! + EXTRA) * k);
  return NDArray.f32([o!, i! + EXTRA, kh!, kw!], out);
}

async function rewrite(file: string, names: string[]): Promise<void> {
  const st = await openSafetensors(join(from!, 'checkpoint', file));
  const tensors: Record<string, NDArray> = {};
  for (const k of st.keys()) {
    const v = await st.get(k);
    tensors[k] = names.includes(k) ? widen(v) : v;
  }
  const metadata = { ...st.metadata };
  await st.close();
  await writeSafetensors(join(to!, 'checkpoint', file), tensors, metadata);
}

const state = JSON.parse(await readFile(join(from, 'checkpoint', 'state.json'), 'utf8'));
if (state.config.unet.coordinate_channels) throw new Error(`${from} already has coordinate channels`);
state.config.unet.coordinate_channels = EXTRA;
await mkdir(join(to, 'checkpoint'), { recursive: true });
await rewrite('model.safetensors', ['conv_in.weight']);
await rewrite('ema.safetensors', ['conv_in.weight']);
await rewrite('optimizer.safetensors', ['conv_in.weight.exp_avg', 'conv_in.weight.exp_avg_sq']);
await atomicWriteFile(join(to, 'checkpoint', 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
await copyFile(join(from, 'loss.jsonl'), join(to, 'loss.jsonl')).catch(() => undefined);
console.log(JSON.stringify({ from, to, step: state.step }));
