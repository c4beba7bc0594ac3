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
import { join } from 'node:path';
import { NDArray } from '../src/engine/ndarray.js';
import { readTensors, replacePipeline, type Tensors } from './pipeline_weights.js';

const [a, b, alphaArg, out] = process.argv.slice(2);
const alpha = Number(alphaArg);
if (!a || !b || !out || !Number.isFinite(alpha)) {
  console.error('usage: merge_weights.ts A_DIR B_DIR ALPHA OUT_DIR');
  process.exit(2);
}

let merged = 0;
await replacePipeline(b, out, async (file, tb) => {
  const ta = await readTensors(join(a, file));
  if (Object.keys(ta).sort().join() !== Object.keys(tb).sort().join())
    throw new Error(`${file}: the two folders hold different tensors`);
  const mix: Tensors = {};
  for (const [k, t] of Object.entries(tb)) {
    const x = t.cast('float32');
    const y = ta[k]!.cast('float32');
    if (y.shape.join() !== x.shape.join()) throw new Error(`${file}: ${k} has shape ${y.shape} in A, ${x.shape} in B`);
    const d = new Float32Array(x.data.length);
    for (let i = 0; i < d.length; i++) d[i] = (1 - alpha) * (y.data[i] as number) + alpha * (x.data[i] as number);
    mix[k] = NDArray.f32(x.shape, d);
    merged++;
  }
  return mix;
});
console.log(JSON.stringify({ a, b, alpha, out, tensors: merged }));
