import { writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { readImage, writePng } from '../../src/platform/node/image.js';
import { runCli } from '../helpers/cli.js';
import { useTinySdx4Folder, useTmpDir } from '../helpers/test_dirs.js';
import { testPicture } from '../helpers/tiny_if.js';
import { SDX4_FIXTURE } from '../helpers/tiny_sdx4.js';

const folder = useTinySdx4Folder();
const tmp = useTmpDir('sdx4-cli-');

beforeAll(async () => {
  await writePng(tmp.file('in.png'), testPicture(8, 8));
  await writePng(tmp.file('odd.png'), testPicture(10, 9));
  writeFileSync(tmp.file('not-an-image.png'), 'hello, I am text');
});

const run = runCli;

const flags = ['--prompt', 'a red square', '--steps', '3', '--quiet'];
const up = (...extra: string[]) =>
  run(['upscale', tmp.file('in.png'), '--model', folder.dir, ...flags, ...extra]);

describe.skipIf(!SDX4_FIXTURE)('imagen upscale --model SD_X4_FOLDER', () => {
  it('gives a 4× larger PNG, the same for the same seed, different for another', async () => {
    const a = tmp.file('a.png');
    const b = tmp.file('b.png');
    const c = tmp.file('c.png');
    let r = await up('--seed', '3', '--out', a);
    expect(r.code, r.stderr).toBe(0);
    r = await up('--seed', '3', '--out', b);
    expect(r.code, r.stderr).toBe(0);
    r = await up('--seed', '4', '--out', c);
    expect(r.code, r.stderr).toBe(0);
    const [ia, ib, ic] = await Promise.all([readImage(a), readImage(b), readImage(c)]);
    expect([ia.width, ia.height]).toEqual([32, 32]);
    expect(Buffer.from(ia.data).equals(Buffer.from(ib.data))).toBe(true);
    expect(Buffer.from(ia.data).equals(Buffer.from(ic.data))).toBe(false);
  });

  it('--tiled, --noise-level, --guidance and --json; odd sizes are cut to multiples of 4 with a warning', async () => {
    const t1 = tmp.file('t1.png');
    const t2 = tmp.file('t2.png');
    const args = ['--noise-level', '50', '--guidance', '5', '--tiled', '--seed', '1'];
    let r = await up(...args, '--out', t1);
    expect(r.code, r.stderr).toBe(0);
    r = await up(...args, '--out', t2, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect([j.width, j.height]).toEqual([32, 32]);
    const [i1, i2] = await Promise.all([readImage(t1), readImage(t2)]);
    expect(Buffer.from(i1.data).equals(Buffer.from(i2.data))).toBe(true);
    const odd = tmp.file('odd-out.png');
    r = await run([
      'upscale',
      tmp.file('odd.png'),
      '--model',
      folder.dir,
      '--prompt',
      'x',
      '--steps',
      '2',
      '--out',
      odd,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: the 9×10 image was resized \(nearest\) to 8×8/);
    const io = await readImage(odd);
    expect([io.width, io.height]).toEqual([32, 32]);
  });

  it('exit 2: a folder missing vae/ (named), a non-image, a noise level above max_noise_level', async () => {
    let r = await run(['upscale', tmp.file('in.png'), '--model', folder.noVae, ...flags]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/SD x4 upscaler folder is missing vae/);
    r = await run(['upscale', tmp.file('not-an-image.png'), '--model', folder.dir, ...flags]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot decode image/);
    r = await up('--noise-level', '400');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--noise-level must be in 0\.\.350/);
  });
});
