/**
 * `imagen generate` end to end on tiny pipeline folders written by `imagen train` (2 steps at
 * 16×16: the weights are barely trained, which is all determinism and plumbing need):
 * bad input exits 2 with a clear message; the same seed gives byte-identical PNGs; seeds,
 * thresholding modes and the images of one batch all differ; the cascade writes the SR size.
 */
import { cp, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { writeShapesDataset } from '../helpers/shapes.js';

let root: string;
let base: string;
let sr: string;

const run = (...args: string[]) => runCli(args);

/** A few sampling steps keep each generation well under a second at 16×16. */
async function generate(out: string, ...extra: string[]): Promise<Buffer> {
  const r = await run(
    'generate',
    'a red square',
    '--model',
    base,
    '--steps',
    '6',
    '--out',
    out,
    '--quiet',
    ...extra,
  );
  expect(r.code, r.stderr).toBe(0);
  return readFile(out);
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): [number, number] {
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  return [png.readUInt32BE(16), png.readUInt32BE(20)];
}

function expectCleanError(r: { code: number; stderr: string }, pattern: RegExp): void {
  expect(r.stderr).toMatch(/^error: /m);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  expect(r.code, r.stderr).toBe(2);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-generate-'));
  const data = join(root, 'data');
  await writeShapesDataset(data, 8, 32);
  base = join(root, 'base');
  sr = join(root, 'sr');
  const common = ['--data', data, '--steps', '2', '--batch', '2', '--quiet'];
  for (const [out, extra] of [
    [base, ['--resolution', '16']],
    [sr, ['--stage', 'sr', '--resolution', '32', '--low-resolution', '16']],
  ] as const) {
    const r = await run('train', '--out', out, ...common, ...extra);
    expect(r.code, r.stderr).toBe(0);
  }
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('imagen generate: bad input exits 2 with a clear message', () => {
  const gen = (...args: string[]) =>
    run('generate', 'a red square', '--out', join(root, 'never.png'), '--quiet', ...args);

  it('a missing --model folder', async () => {
    expectCleanError(await gen('--model', join(root, 'nope')), /nope: no such model folder/);
  });

  it('a folder that is not a checkpoint (no model_index.json)', async () => {
    expectCleanError(
      await gen('--model', join(root, 'data')),
      /not a pipeline folder: model_index\.json is missing/,
    );
  });

  it('a pipeline folder missing a component', async () => {
    const broken = join(root, 'broken');
    await cp(base, broken, { recursive: true });
    await rm(join(broken, 'unet'), { recursive: true });
    expectCleanError(await gen('--model', broken), /broken: pipeline folder is missing unet/);
  });

  it('a super-resolution folder given as --model', async () => {
    expectCleanError(await gen('--model', sr), /is a super-resolution pipeline; pass it as --sr-model/);
  });

  it('a stage-I folder given as --sr-model', async () => {
    expectCleanError(
      await gen('--model', base, '--sr-model', base),
      /is a stage-I pipeline, not super-resolution/,
    );
  });

  it('--threshold bogus', async () => {
    expectCleanError(
      await gen('--model', base, '--threshold', 'bogus'),
      /--threshold must be dynamic, static or none/,
    );
  });

  it('--num-images 0', async () => {
    expectCleanError(
      await gen('--model', base, '--num-images', '0'),
      /--num-images must be an integer in 1\.\.64/,
    );
  });

  it('an unknown --steps preset', async () => {
    expectCleanError(await gen('--model', base, '--steps', 'smart999'), /unknown timesteps "smart999"/);
  });

  it('a negative --seed and a non-numeric --guidance', async () => {
    expectCleanError(await gen('--model', base, '--seed', '-1'), /--seed must be a non-negative integer/);
    expectCleanError(await gen('--model', base, '--guidance', 'lots'), /--guidance must be a number/);
  });

  it('a blank --guidance is an error, not guidance 0', async () => {
    expectCleanError(
      await gen('--model', base, '--guidance', ''),
      /--guidance must be a number in \[0, 100\], got ""/,
    );
  });

  it('writes nothing when it fails', async () => {
    await expect(stat(join(root, 'never.png'))).rejects.toThrow();
  });
});

describe('imagen generate: determinism and options', () => {
  it('the same seed gives byte-identical PNGs; another seed gives different bytes', async () => {
    const a = await generate(join(root, 'seed7-a.png'), '--seed', '7');
    const b = await generate(join(root, 'seed7-b.png'), '--seed', '7');
    const c = await generate(join(root, 'seed8.png'), '--seed', '8');
    expect(pngSize(a)).toEqual([16, 16]);
    expect(b.equals(a)).toBe(true);
    expect(c.equals(a)).toBe(false);
  });

  it('--num-images 3 writes out-0/1/2.png, three different images', async () => {
    const dir = join(root, 'many');
    await mkdir(dir);
    const r = await run(
      'generate',
      'a blue square',
      '--model',
      base,
      '--steps',
      '6',
      '--num-images',
      '3',
      '--out',
      join(dir, 'out.png'),
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const names = ['out-0.png', 'out-1.png', 'out-2.png'];
    expect(JSON.parse(r.stdout)).toMatchObject({
      images: names.map((n) => join(dir, n)),
      width: 16,
      height: 16,
    });
    const pngs = await Promise.all(names.map((n) => readFile(join(dir, n))));
    await expect(stat(join(dir, 'out.png'))).rejects.toThrow();
    // Each image draws its own noise from the one seeded generator.
    expect(pngs[0]!.equals(pngs[1]!)).toBe(false);
    expect(pngs[1]!.equals(pngs[2]!)).toBe(false);
  });

  it('--threshold none, static and dynamic all run and give different images', async () => {
    const kinds = ['none', 'static', 'dynamic'];
    const pngs: Buffer[] = [];
    for (const k of kinds)
      pngs.push(await generate(join(root, `th-${k}.png`), '--threshold', k, '--seed', '3'));
    // A 2-step model predicts x̂0 far outside [−1, 1], so each rule changes the trajectory.
    for (let i = 0; i < kinds.length; i++) {
      for (let j = i + 1; j < kinds.length; j++)
        expect(pngs[i]!.equals(pngs[j]!), `${kinds[i]} vs ${kinds[j]}`).toBe(false);
    }
    // The default is the scheduler config's choice (IF: dynamic).
    const dflt = await generate(join(root, 'th-default.png'), '--seed', '3');
    expect(dflt.equals(pngs[2]!)).toBe(true);
  });

  it('the cascade (--sr-model) writes the super-resolution size, deterministically', async () => {
    const cascade = (out: string) =>
      run(
        'generate',
        'a green square',
        '--model',
        base,
        '--sr-model',
        sr,
        '--steps',
        '4',
        '--sr-steps',
        '4',
        '--seed',
        '5',
        '--out',
        out,
        '--quiet',
      );
    for (const name of ['c1.png', 'c2.png']) {
      const r = await cascade(join(root, name));
      expect(r.code, r.stderr).toBe(0);
    }
    const a = await readFile(join(root, 'c1.png'));
    const b = await readFile(join(root, 'c2.png'));
    expect(pngSize(a)).toEqual([32, 32]);
    expect(b.equals(a)).toBe(true);
  });
});
