/**
 * The corner scenes of a synth dataset ("a red circle in the top left corner", …) as a folder of
 * their own, for the positions-first phase of stage I (training/README.md, sixth chunk). Images are
 * hard-linked, the metadata rows kept in order.
 *
 *   npx tsx training/corner_scenes.ts data64 data64pos
 */
import { linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [from, to] = process.argv.slice(2);
if (!from || !to) {
  console.error('usage: corner_scenes.ts SYNTH_DIR OUT_DIR');
  process.exit(2);
}
mkdirSync(to);
const kept: string[] = [];
for (const line of readFileSync(join(from, 'metadata.jsonl'), 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const row = JSON.parse(line) as { file_name: string; scene?: { position?: string } };
  if (!row.scene?.position?.includes('-')) continue; // top-left … bottom-right; not "center"
  linkSync(join(from, row.file_name), join(to, row.file_name));
  kept.push(line);
}
writeFileSync(join(to, 'metadata.jsonl'), `${kept.join('\n')}\n`);
console.log(JSON.stringify({ from, to, images: kept.length }));
