/**
 * Bad input to `imagen train` / `imagen forward` ends with one clear line on stderr and exit
 * code 2 (a usage/input error), never a stack trace; a loss that becomes non-finite stops the
 * run with exit code 1 and keeps a checkpoint whose weights still train.
 * Everything runs in-process through `main`, as the `imagen` binary does.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { DOWN_BLOCK_TYPES } from '../../src/models/unet/config.js';
import { openSafetensors, writeSafetensors } from '../../src/platform/node/files.js';
import { tinyTrainConfig } from '../../src/train/config.js';
import { tinyTrainArgs } from '../helpers/cli.js';
import { writeShapesDataset } from '../helpers/shapes.js';

let root: string;
let data: string;

/** Run the CLI in-process; stderr is captured (and kept off the test output). */
async function run(...args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'imagen', ...args]);
    return { code, stderr };
  } finally {
    spy.mockRestore();
  }
}

/** The fast tiny training invocation every case starts from. */
const train = (dataDir: string, out: string, ...extra: string[]) =>
  run(...tinyTrainArgs(dataDir, out, { batch: 2 }), ...extra);

/** A clean failure: the expected exit code, one `error:` line naming the problem, no stack trace. */
function expectCleanError(r: { code: number; stderr: string }, code: number, pattern: RegExp): void {
  expect(r.stderr, r.stderr).toMatch(/^error: /m);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  expect(r.code, r.stderr).toBe(code);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-train-errors-'));
  data = join(root, 'data');
  await writeShapesDataset(data, 8, 16);
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('imagen train: bad data folders exit 2 with a clear message', () => {
  it('a missing data folder', async () => {
    const r = await train(join(root, 'no-such-folder'), join(root, 'o-missing'));
    expectCleanError(r, 2, /no-such-folder: no such data folder/);
  });

  it('a missing folder among several --data folders (and none missing: it trains on both)', async () => {
    let r = await train(data, join(root, 'o-two-missing'), '--data', join(root, 'no-such-second'));
    expectCleanError(r, 2, /no-such-second: no such data folder/);
    r = await train(data, join(root, 'o-two'), '--data', data);
    expect(r.code, r.stderr).toBe(0);
  });

  it('a folder without captions', async () => {
    const dir = join(root, 'uncaptioned');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'notes.md'), 'nothing to train on');
    const r = await train(dir, join(root, 'o-uncaptioned'));
    expectCleanError(r, 2, /no captioned images/);
  });

  it('an image without its caption file', async () => {
    const dir = join(root, 'orphan');
    await mkdir(dir, { recursive: true });
    await copyFile(join(data, 'img_0.png'), join(dir, 'a.png'));
    const r = await train(dir, join(root, 'o-orphan'));
    expectCleanError(r, 2, /a\.png has no caption file/);
  });

  it('an image that does not decode', async () => {
    const dir = join(root, 'garbage');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'x.png'), Buffer.from('definitely not a PNG \x00\x01\x02'));
    await writeFile(join(dir, 'x.txt'), 'a red square');
    const r = await train(dir, join(root, 'o-garbage'));
    expectCleanError(r, 2, /x\.png: cannot decode image/);
  });

  it('an empty caption file', async () => {
    const dir = join(root, 'empty-caption');
    await mkdir(dir, { recursive: true });
    await copyFile(join(data, 'img_0.png'), join(dir, 'x.png'));
    await writeFile(join(dir, 'x.txt'), '  \n');
    const r = await train(dir, join(root, 'o-empty-caption'));
    expectCleanError(r, 2, /x\.txt: empty caption file/);
  });

  it('a metadata.jsonl line that is not JSON (with its line number)', async () => {
    const dir = join(root, 'bad-jsonl');
    await mkdir(dir, { recursive: true });
    await copyFile(join(data, 'img_0.png'), join(dir, 'img_0.png'));
    await writeFile(
      join(dir, 'metadata.jsonl'),
      `${JSON.stringify({ file_name: 'img_0.png', text: 'a red square' })}\n{"file_name": "img_1.png", text\n`,
    );
    const r = await train(dir, join(root, 'o-bad-jsonl'));
    expectCleanError(r, 2, /metadata\.jsonl:2: not valid JSON/);
  });

  it('a metadata.jsonl line that is JSON but not an object (null)', async () => {
    const dir = join(root, 'null-jsonl');
    await mkdir(dir, { recursive: true });
    await copyFile(join(data, 'img_0.png'), join(dir, 'img_0.png'));
    await writeFile(join(dir, 'metadata.jsonl'), 'null\n');
    const r = await train(dir, join(root, 'o-null-jsonl'));
    expectCleanError(r, 2, /metadata\.jsonl:1: needs string fields "file_name" and "text"/);
  });

  it('a metadata.jsonl row with an empty caption', async () => {
    const dir = join(root, 'empty-jsonl-caption');
    await mkdir(dir, { recursive: true });
    await copyFile(join(data, 'img_0.png'), join(dir, 'img_0.png'));
    await writeFile(
      join(dir, 'metadata.jsonl'),
      `${JSON.stringify({ file_name: 'img_0.png', text: ' ' })}\n`,
    );
    const r = await train(dir, join(root, 'o-empty-jsonl'));
    expectCleanError(r, 2, /metadata\.jsonl:1: empty caption for img_0\.png/);
  });
});

describe('imagen train: bad configs exit 2', () => {
  it('an unknown down block type lists the supported ones', async () => {
    const cfg = tinyTrainConfig('base', 16) as unknown as { unet: { down_block_types: string[] } };
    cfg.unet.down_block_types[1] = 'NoSuchDownBlock2D';
    const file = join(root, 'bad-block.json');
    await writeFile(file, JSON.stringify(cfg));
    const r = await train(data, join(root, 'o-bad-block'), '--config', file);
    expectCleanError(r, 2, /unsupported down block type "NoSuchDownBlock2D"/);
    // The list follows the model code, so it stays right as block families are added.
    expect(r.stderr).toContain(`(supported: ${DOWN_BLOCK_TYPES.join(', ')})`);
    expect(DOWN_BLOCK_TYPES).toContain('SimpleCrossAttnDownBlock2D');
  });

  it('a config file that is not JSON', async () => {
    const file = join(root, 'not-json.json');
    await writeFile(file, '{ "stage": "base", ');
    const r = await train(data, join(root, 'o-not-json'), '--config', file);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/not-json\.json/);
  });

  it('--resume with no checkpoint in --out', async () => {
    const r = await train(data, join(root, 'o-never-trained'), '--resume');
    expectCleanError(r, 2, /o-never-trained: no checkpoint to resume from/);
  });

  it('a bad flag value', async () => {
    const r = await train(data, join(root, 'o-bad-flag'), '--batch', 'many');
    expectCleanError(r, 2, /--batch must be a positive integer, got "many"/);
  });

  it('a bad --lr or --seed, on the diffusion and the text-encoder path alike', async () => {
    const enc = (...extra: string[]) =>
      run(
        'train',
        '--stage',
        'text-encoder',
        '--data',
        data,
        '--init-from',
        root,
        '--out',
        join(root, 'o-te'),
        ...extra,
      );
    expectCleanError(
      await train(data, join(root, 'o-lr'), '--lr', '2'),
      2,
      /--lr must be a number in \(0, 1\), got "2"/,
    );
    expectCleanError(await enc('--lr', 'fast'), 2, /--lr must be a number in \(0, 1\), got "fast"/);
    expectCleanError(
      await train(data, join(root, 'o-seed'), '--seed', '-1'),
      2,
      /--seed must be a non-negative integer/,
    );
    expectCleanError(await enc('--seed', '1.5'), 2, /--seed must be a non-negative integer/);
  });
});

describe('imagen train: a non-finite loss', () => {
  it('stops with exit 1, names the last good checkpoint, and keeps it usable', async () => {
    // learning_rate 1e30 is a valid JSON config value; after the first warm-up step (lr 0) the
    // next update throws the weights to ~1e28, and the loss after it overflows.
    const cfg = tinyTrainConfig('base', 16) as unknown as { train: Record<string, unknown> };
    cfg.train.learning_rate = 1e30;
    const file = join(root, 'nan.json');
    await writeFile(file, JSON.stringify(cfg));
    const out = join(root, 'o-nan');
    const r = await run(
      'train',
      '--data',
      data,
      '--out',
      out,
      '--config',
      file,
      '--steps',
      '20',
      '--batch',
      '2',
      '--checkpoint-every',
      '1',
      '--quiet',
    );
    expectCleanError(r, 1, /loss became non-finite/);
    const failedAt = Number(/at step (\d+)/.exec(r.stderr)?.[1]);
    expect(failedAt).toBeGreaterThan(1);

    const ckpt = join(out, 'checkpoint');
    const state = JSON.parse(await readFile(join(ckpt, 'state.json'), 'utf8')) as { step: number };
    expect(state.step).toBeGreaterThanOrEqual(1);
    expect(state.step).toBeLessThan(failedAt);
    // The message names exactly the checkpoint that is on disk.
    expect(r.stderr).toContain(`step ${state.step}`);
    expect(r.stderr).toContain(ckpt);

    // "Good" means its weights give a finite loss, not merely that its own step finished: the
    // step that produced the ~1e28 weights had a finite loss, but every step after it fails.
    const st = await openSafetensors(join(ckpt, 'model.safetensors'));
    let maxAbs = 0; // NaN-propagating: a NaN weight makes it NaN and fails the check below
    try {
      for (const k of st.keys()) {
        for (const v of (await st.get(k)).toFloat32().data as Float32Array) {
          maxAbs = Number.isNaN(v) ? Number.NaN : Math.max(maxAbs, Math.abs(v));
        }
      }
    } finally {
      await st.close();
    }
    expect(maxAbs).toBeLessThan(1e3);

    // What the message recommends works: resume with a sane learning rate.
    const resumed = await run(
      'train',
      '--data',
      data,
      '--out',
      out,
      '--resume',
      '--lr',
      '1e-4',
      '--steps',
      String(state.step + 2),
      '--quiet',
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    const after = JSON.parse(await readFile(join(ckpt, 'state.json'), 'utf8')) as { step: number };
    expect(after.step).toBe(state.step + 2);
  });
});

describe('imagen forward: bad inputs exit 2', () => {
  const model = () => join(root, 'tiny');
  beforeAll(async () => {
    const r = await train(data, model());
    expect(r.code, r.stderr).toBe(0);
  });

  it('an inputs file without `sample`', async () => {
    const inputs = join(root, 'no-sample.safetensors');
    await writeSafetensors(inputs, {
      timestep: NDArray.f32([1], [10]),
      encoder_hidden_states: NDArray.f32([1, 4, 64], new Array(256).fill(0.1)),
    });
    const r = await run(
      'forward',
      '--model',
      join(model(), 'unet'),
      '--inputs',
      inputs,
      '--out',
      join(root, 'o.safetensors'),
    );
    expectCleanError(r, 2, /no-sample\.safetensors: missing input tensor\(s\) sample/);
  });

  it('an inputs file with a tensor the model does not take', async () => {
    const inputs = join(root, 'extra.safetensors');
    await writeSafetensors(inputs, {
      sample: NDArray.f32([1, 3, 16, 16], new Array(768).fill(0)),
      latents: NDArray.f32([1], [0]),
    });
    const r = await run(
      'forward',
      '--model',
      join(model(), 'unet'),
      '--inputs',
      inputs,
      '--out',
      join(root, 'o2.safetensors'),
    );
    expectCleanError(r, 2, /unexpected tensor "latents"/);
  });
});
