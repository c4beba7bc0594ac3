import type { NDArray } from '../../src/engine/ndarray.js';
import { openSafetensors } from '../../src/platform/node/files.js';

/** Every tensor of a safetensors file (fixture inputs, recorded outputs), by name. */
export async function loadAll(file: string): Promise<Record<string, NDArray>> {
  const st = await openSafetensors(file);
  const out: Record<string, NDArray> = {};
  for (const k of st.keys()) out[k] = await st.get(k);
  await st.close();
  return out;
}

/** Every tensor of a safetensors file as float32 data (16-bit storage widened), for comparing weights. */
export async function float32Tensors(file: string): Promise<Map<string, Float32Array>> {
  const all = await loadAll(file);
  return new Map(Object.entries(all).map(([k, v]) => [k, v.toFloat32().data as Float32Array]));
}
