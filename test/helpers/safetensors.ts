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
