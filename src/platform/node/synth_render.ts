import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { TrueTypeFont } from '../../data/synth/font.js';
import { renderScene, signTextBox } from '../../data/synth/render.js';
import type { SceneKind } from '../../data/synth/scene.js';
import { type Split, synthExamplesOfKinds, withSignColourDropped } from '../../data/synth/splits.js';
import { ImagenError } from '../../engine/errors.js';
import { atomicWriteFile } from './files.js';
import { encodePng } from './image.js';

let cachedFont: TrueTypeFont | undefined;

/**
 * DejaVu Sans Bold from the `dejavu-fonts-ttf` npm package: a font that comes with the package
 * install, never from the system, so renders match on every machine.
 */
export function loadDejaVu(): TrueTypeFont {
  if (!cachedFont) {
    const require = createRequire(import.meta.url);
    let path: string;
    try {
      path = join(dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf', 'DejaVuSans-Bold.ttf');
    } catch {
      throw new ImagenError('NOT_FOUND', 'the dejavu-fonts-ttf package is not installed (npm ci)');
    }
    cachedFont = new TrueTypeFont(new Uint8Array(readFileSync(path)));
  }
  return cachedFont;
}

export interface SynthDatasetOptions {
  out: string;
  count: number;
  seed: number;
  size: number;
  split: Split;
  /**
   * Keep only scenes of these kinds (a mix that stresses, say, relations): the seeded stream is read
   * in order and other scenes are skipped, so the kept ones are exactly those a full dataset of the
   * same seed would hold at the indices drawn.
   */
  kinds?: readonly SceneKind[];
  /** Keep only scenes that draw at least this many objects (a sign is one), read the same way. */
  minObjects?: number;
  /** Fraction of sign captions that leave the sign's colour unsaid (see withSignColourDropped). */
  signColourDrop?: number;
  onProgress?: (done: number, total: number) => void;
}

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

/**
 * Write the imagefolder layout the trainer reads: NNNNNN.png plus metadata.jsonl rows
 * {file_name, text, text_boxes (signs only), scene}. The trainer reads file_name, text and
 * text_boxes (where words are written, for `text_loss_weight`); `scene` is the structured
 * description the checker verifies. dataset.json records how the folder was made.
 */
export async function writeSynthDataset(o: SynthDatasetOptions): Promise<{ files: number }> {
  const font = loadDejaVu();
  await mkdir(o.out, { recursive: true });
  const lines: string[] = [];
  const digits = Math.max(6, String(o.count - 1).length);
  const { examples, drawn } = synthExamplesOfKinds(o.seed, o.split, o.count, o.kinds, o.minObjects);
  const drop = o.signColourDrop ?? 0;
  for (const [i, plain] of examples.entries()) {
    const ex = withSignColourDropped(plain, o.seed, drop);
    const file = `${String(i).padStart(digits, '0')}.png`;
    await writeFile(join(o.out, file), await encodePng(renderScene(ex.scene, o.size, font)));
    const textBoxes = ex.scene.sign ? { text_boxes: [signTextBox(ex.scene.sign, font).map(round4)] } : {};
    lines.push(JSON.stringify({ file_name: file, text: ex.caption, ...textBoxes, scene: ex.scene }));
    o.onProgress?.(i + 1, o.count);
  }
  await atomicWriteFile(join(o.out, 'metadata.jsonl'), `${lines.join('\n')}\n`);
  await atomicWriteFile(
    join(o.out, 'dataset.json'),
    `${JSON.stringify({ generator: 'imagen-ts synth v1', seed: o.seed, count: o.count, size: o.size, split: o.split, ...(o.kinds ? { kinds: o.kinds } : {}), ...((o.minObjects ?? 1) > 1 ? { minObjects: o.minObjects } : {}), ...(drawn !== o.count ? { drawn } : {}), ...(drop > 0 ? { signColourDrop: drop } : {}) }, null, 2)}\n`,
  );
  return { files: o.count };
}
