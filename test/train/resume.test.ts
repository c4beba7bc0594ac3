/**
 * Kill a training process with SIGKILL mid-run, resume it, and check that the result is
 * bit-identical to an uninterrupted run: weights, AdamW moments, EMA and RNG all round-trip.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyTrainArgs } from '../helpers/cli.js';
import { writeShapesDataset } from '../helpers/shapes.js';

const BIN = resolve(__dirname, '..', '..', 'bin', 'imagen.js');
let root: string;

function run(args: string[]): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, IMAGEN_THREADS: '1' },
  });
}

function finish(p: ChildProcess): Promise<number | null> {
  return new Promise((res) => p.on('exit', (code) => res(code)));
}

async function lines(path: string): Promise<number> {
  try {
    return (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim()).length;
  } catch {
    return 0;
  }
}

const trainArgs = (data: string, out: string, steps = 24) => [
  ...tinyTrainArgs(data, out, { steps }),
  '--checkpoint-every',
  '6',
];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-resume-'));
  await writeShapesDataset(join(root, 'data'), 12, 16);
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('training survives SIGKILL', () => {
  it('resumes bit-identically after the process is killed mid-run', async () => {
    const data = join(root, 'data');
    const full = join(root, 'full');
    expect(await finish(run(trainArgs(data, full)))).toBe(0);

    const killed = join(root, 'killed');
    const child = run(trainArgs(data, killed));
    const exited = finish(child);
    // Wait until it is past the second checkpoint (step 12) but not done, then kill hard.
    for (;;) {
      const n = await lines(join(killed, 'loss.jsonl'));
      if (n >= 14) break;
      if (child.exitCode !== null) throw new Error('training ended before it could be killed');
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    expect(await exited).toBeNull();
    const state = JSON.parse(await readFile(join(killed, 'checkpoint', 'state.json'), 'utf8'));
    expect(state.step).toBeGreaterThanOrEqual(12);
    expect(state.step).toBeLessThan(24);

    const resumed = run([...trainArgs(data, killed), '--resume']);
    expect(await finish(resumed)).toBe(0);

    for (const f of [
      'checkpoint/model.safetensors',
      'checkpoint/optimizer.safetensors',
      'checkpoint/ema.safetensors',
    ]) {
      const a = await readFile(join(full, f));
      const b = await readFile(join(killed, f));
      expect(b.equals(a), `${f} differs after resume`).toBe(true);
    }
    const unetA = await readFile(join(full, 'unet', 'diffusion_pytorch_model.safetensors'));
    const unetB = await readFile(join(killed, 'unet', 'diffusion_pytorch_model.safetensors'));
    expect(unetB.equals(unetA)).toBe(true);
    // The loss log is continuous: one line per step, 1..24.
    const log = (await readFile(join(killed, 'loss.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    expect(log).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
  }, 180_000);

  /** Start a long run, let it log 3 steps, send SIGINT at the given delays (ms), expect a clean stop. */
  async function interruptAndCheck(name: string, delays: number[]): Promise<void> {
    const out = join(root, name);
    const child = run(trainArgs(join(root, 'data'), out, 100_000));
    const exited = finish(child);
    while ((await lines(join(out, 'loss.jsonl'))) < 3) await new Promise((r) => setTimeout(r, 20));
    for (const ms of delays) {
      await new Promise((r) => setTimeout(r, ms));
      child.kill('SIGINT');
    }
    expect(await exited).toBe(130);
    const state = JSON.parse(await readFile(join(out, 'checkpoint', 'state.json'), 'utf8'));
    expect(state.step).toBeGreaterThanOrEqual(3);
    await expect(stat(join(out, 'model_index.json'))).resolves.toBeTruthy();
  }

  it('writes a checkpoint and exits 130 on SIGINT', () => interruptAndCheck('interrupted', [0]), 120_000);

  it(
    'one Ctrl-C delivered twice (npx forwards it, the terminal sends it too) still checkpoints',
    () => interruptAndCheck('interrupted-twice', [0, 30]),
    120_000,
  );
});
