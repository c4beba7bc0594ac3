/**
 * Give a trained stage-I pipeline's UNet attention blocks at more levels, keeping what it has
 * learned (src/train/grow_attention.ts; training/README.md, sixteenth chunk). Writes a whole
 * pipeline folder, for `imagen train --init-from`.
 *
 *   npx tsx training/grow_attention.ts SRC_PIPELINE DEST_PIPELINE --down 1 --up 2
 */
import { cp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openSafetensors, writeSafetensors } from '../src/platform/node/files.js';
import { growAttention } from '../src/train/grow_attention.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { down: { type: 'string', default: '' }, up: { type: 'string', default: '' } },
});
const [src, dest] = positionals;
if (!src || !dest) {
  console.error('usage: grow_attention.ts SRC DEST --down I[,I] --up J[,J]');
  process.exit(2);
}
const indices = (s: string) => (s ? s.split(',').map(Number) : []);

const WEIGHTS = 'diffusion_pytorch_model.safetensors';
const config = JSON.parse(await readFile(join(src, 'unet', 'config.json'), 'utf8')) as Record<string, unknown>;
const old = await openSafetensors(join(src, 'unet', WEIGHTS));
const grown = await growAttention(config, old, { down: indices(values.down), up: indices(values.up) }).finally(
  () => old.close(),
);

const tmp = `${dest}.tmp`;
await rm(tmp, { recursive: true, force: true });
await cp(src, tmp, { recursive: true });
await writeFile(join(tmp, 'unet', 'config.json'), `${JSON.stringify(grown.config, null, 2)}\n`);
await writeSafetensors(join(tmp, 'unet', WEIGHTS), grown.unet.stateDict(), { format: 'pt' });
await rm(dest, { recursive: true, force: true });
await rename(tmp, dest);
console.log(
  JSON.stringify({
    dest,
    added: grown.added.length,
    down: grown.config.down_block_types,
    up: grown.config.up_block_types,
  }),
);
