import { describe, expect, it } from 'vitest';
import { NDArray } from '../../src/engine/ndarray.js';
import { prepareSdUpscale } from '../../src/pipelines/sd_upscale.js';
import { runStage3 } from '../../src/pipelines/three_stage.js';
import { readImage } from '../../src/platform/node/image.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { encodeSdx4Prompts, loadSdx4Folder } from '../../src/platform/node/sdx4_folder.js';
import { runCli } from '../helpers/cli.js';
import { useTinyIfFolders, useTinySdx4Folder, useTmpDir } from '../helpers/test_dirs.js';
import { TINY_BASE_SIZE, TINY_SR_SIZE } from '../helpers/tiny_if.js';
import { SDX4_FIXTURE } from '../helpers/tiny_sdx4.js';

const ifs = useTinyIfFolders();
const sdx4 = useTinySdx4Folder();
const tmp = useTmpDir('three-stage-');

const run = runCli;

describe.skipIf(!SDX4_FIXTURE)('three-stage cascade: IF stage I → IF stage II → SD x4 upscaler', () => {
  const gen = (out: string, size: string, seed = '5') => [
    'generate',
    'a red square',
    '--model',
    ifs.base,
    '--sr-model',
    ifs.sr,
    '--sr3-model',
    sdx4.dir,
    '--size',
    size,
    '--steps',
    '2',
    '--sr-steps',
    '2',
    '--sr3-steps',
    '2',
    '--seed',
    seed,
    '--out',
    out,
    '--quiet',
  ];

  it('--size 1024 runs all three stages (16 → 32 → 128 px for the tiny models), deterministic per seed', async () => {
    const a = tmp.file('a.png');
    const b = tmp.file('b.png');
    const c = tmp.file('c.png');
    for (const [out, seed] of [
      [a, '5'],
      [b, '5'],
      [c, '6'],
    ] as const) {
      const r = await run(gen(out, '1024', seed));
      expect(r.code, r.stderr).toBe(0);
    }
    const [ia, ib, ic] = await Promise.all([readImage(a), readImage(b), readImage(c)]);
    expect([ia.width, ia.height]).toEqual([4 * TINY_SR_SIZE, 4 * TINY_SR_SIZE]);
    expect(Buffer.from(ia.data).equals(Buffer.from(ib.data))).toBe(true);
    expect(Buffer.from(ia.data).equals(Buffer.from(ic.data))).toBe(false);
    // the stage's own output size picks the same stages; --tiled decodes in tiles
    const d = tmp.file('d.png');
    const r = await run([
      ...gen(d, String(4 * TINY_SR_SIZE)),
      '--tiled',
      '--sr3-noise-level',
      '20',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ width: 4 * TINY_SR_SIZE, height: 4 * TINY_SR_SIZE });
  });

  it('--size picks how many stages run; missing models and bad sizes are exit 2', async () => {
    const o = tmp.file('s.png');
    let r = await run(gen(o, '64'));
    expect(r.code, r.stderr).toBe(0);
    expect((await readImage(o)).width).toBe(TINY_BASE_SIZE);
    r = await run(gen(o, '256'));
    expect(r.code, r.stderr).toBe(0);
    expect((await readImage(o)).width).toBe(TINY_SR_SIZE);
    r = await run(gen(o, '512'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--size must be 64, 256 or 1024/);
    r = await run(['generate', 'x', '--model', ifs.base, '--sr-model', ifs.sr, '--size', '1024', '--quiet']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/runs stage III: give --sr3-model/);
    r = await run(['generate', 'x', '--model', ifs.base, '--sr3-model', sdx4.dir, '--quiet']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/give --sr-model too/);
    r = await run([
      ...gen(o, '1024').filter((v) => v !== sdx4.dir && v !== '--sr3-model'),
      '--sr3-model',
      sdx4.noVae,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/missing vae/);
  });

  it('stage III takes the stage-II tensor in [−1, 1] unchanged (deprecated tensor path) and returns [−1, 1]', async () => {
    const rt = createRuntime({ threads: 2 });
    const p = await loadSdx4Folder(sdx4.dir, { runtime: rt });
    try {
      const e = await encodeSdx4Prompts(p, ['a red square']);
      const x = new NDArray(
        'float32',
        [2, 3, 8, 8],
        Float32Array.from({ length: 2 * 3 * 64 }, (_, i) => Math.sin(i) * 0.9),
      );
      const { state } = prepareSdUpscale(p.components, {
        ...e,
        image: new NDArray('float32', [1, 3, 8, 8], x.data.slice(0, 192)),
        steps: 2,
      });
      expect(Array.from(state.imagePreprocessed.data as Float32Array)).toEqual(
        Array.from((x.data as Float32Array).slice(0, 192)),
      );
      const y = await runStage3(p.components, x, { ...e, steps: 2, seed: 1 });
      expect(y.shape).toEqual([2, 3, 32, 32]);
      const d = y.data as Float32Array;
      expect(Math.min(...d)).toBeGreaterThanOrEqual(-1);
      expect(Math.max(...d)).toBeLessThanOrEqual(1);
      const y2 = await runStage3(p.components, x, { ...e, steps: 2, seed: 1 });
      expect(Array.from(y2.data as Float32Array)).toEqual(Array.from(d));
    } finally {
      await p.release();
    }
  });
});
