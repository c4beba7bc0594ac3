import type { Command } from 'commander';
import { SCENE_KINDS, type SceneKind } from '../../data/synth/scene.js';
import type { Split } from '../../data/synth/splits.js';
import { writeSynthDataset } from '../../platform/node/synth_render.js';
import { usageError } from '../errors.js';
import { intFlag, parseNumber } from '../image_flags.js';
import { logger, ProgressBar } from '../progress.js';

interface SynthFlags {
  out: string;
  count: string;
  seed: string;
  size: string;
  split: string;
  kinds?: string;
  minObjects: string;
  signColourDrop: string;
  quiet: boolean;
  json: boolean;
}

export function kindsFlag(v: string): SceneKind[] {
  const kinds = v.split(',').map((k) => k.trim());
  for (const k of kinds)
    if (!(SCENE_KINDS as readonly string[]).includes(k))
      throw usageError(`--kinds takes ${SCENE_KINDS.join(', ')} (comma-separated), got "${k}"`);
  return [...new Set(kinds)] as SceneKind[];
}

/** --min-objects of `dataset synth` and `eval`: scenes of at least this many objects. */
export function minObjectsFlag(v: string): number {
  return intFlag(v, '--min-objects', 1, 8);
}

export function splitFlag(v: string): Split {
  if (v !== 'train' && v !== 'heldout') throw usageError(`--split must be train or heldout, got "${v}"`);
  return v;
}

export function registerDataset(program: Command): void {
  const dataset = program.command('dataset').description('Build training data');
  dataset
    .command('synth')
    .description(
      'Render the procedural captioned dataset: scenes of 1–4 coloured shapes with sizes, positions and ' +
        'relations, or signs carrying a word, each with a natural caption. Writes the imagefolder layout that ' +
        '`imagen train` reads (NNNNNN.png + metadata.jsonl with file_name, text, the structured scene, and for signs text_boxes: where the word is written). ' +
        'Deterministic: the same seed gives identical pixels on every machine (and identical files with the same sharp). --split heldout renders only ' +
        'the held-out compositions (colour–shape and word–colour pairs that never occur in --split train).',
    )
    .requiredOption('--out <dir>', 'output folder')
    .requiredOption('--count <n>', 'number of images')
    .option('--seed <n>', 'random seed', '0')
    .option('--size <px>', 'image side in pixels (64 for the base model, 256 for word/OCR targets)', '64')
    .option('--split <name>', 'train | heldout', 'train')
    .option(
      '--kinds <list>',
      `keep only these scene kinds, comma-separated (${SCENE_KINDS.join(', ')}): the seed's stream is read in order and other scenes skipped [default: all]`,
    )
    .option(
      '--min-objects <n>',
      'keep only scenes that draw at least this many objects (a sign counts as one), read the same way as --kinds: e.g. 2 for a mix that stresses counting',
      '1',
    )
    .option(
      '--sign-colour-drop <p>',
      'fraction (0–1) of sign captions that leave the colour unsaid ("a sign that says MOON"); pixels and other captions stay as with 0',
      '0',
    )
    .option('--quiet', 'no progress output', false)
    .option('--json', 'print a JSON summary on stdout', false)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen dataset synth --out data/train --count 50000 --seed 0\n' +
        '  imagen dataset synth --out data/counts --count 20000 --seed 37 --kinds objects --min-objects 2\n' +
        '  imagen dataset synth --out data/heldout --count 500 --split heldout --size 256',
    )
    .action(async (f: SynthFlags) => {
      const count = intFlag(f.count, '--count', 1, 10_000_000);
      const seed = intFlag(f.seed, '--seed', 0, Number.MAX_SAFE_INTEGER);
      const size = intFlag(f.size, '--size', 16, 2048);
      const split = splitFlag(f.split);
      const kinds = f.kinds === undefined ? undefined : kindsFlag(f.kinds);
      const minObjects = minObjectsFlag(f.minObjects);
      const signColourDrop = parseNumber(f.signColourDrop, '--sign-colour-drop', 0, 1)!;
      const say = logger(f.quiet || f.json);
      const bar = new ProgressBar('synth', '', { quiet: f.quiet || f.json });
      bar.start(count);
      const t0 = performance.now();
      try {
        await writeSynthDataset({
          out: f.out,
          count,
          seed,
          size,
          split,
          kinds,
          minObjects,
          signColourDrop,
          onProgress: (d) => bar.update(d),
        });
      } finally {
        bar.stop();
      }
      const seconds = (performance.now() - t0) / 1000;
      if (f.json)
        process.stdout.write(
          `${JSON.stringify({ out: f.out, count, seed, size, split, kinds, minObjects, seconds })}\n`,
        );
      else
        say(
          `wrote ${count} ${size}×${size} images (${split}, seed ${seed}) to ${f.out} in ${seconds.toFixed(1)} s`,
        );
    });
}
