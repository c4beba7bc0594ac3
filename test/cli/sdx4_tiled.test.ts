import { beforeAll, describe, expect, it } from 'vitest';
import { readImage, writePng } from '../../src/platform/node/image.js';
import { runCli } from '../helpers/cli.js';
import { useTinyIfFolders, useTinySdx4Folder, useTmpDir } from '../helpers/test_dirs.js';
import { TINY_SR_SIZE, testPicture } from '../helpers/tiny_if.js';
import { SDX4_FIXTURE } from '../helpers/tiny_sdx4.js';

const folder = useTinySdx4Folder();
const ifs = useTinyIfFolders();
const tmp = useTmpDir('sdx4-tiled-');

beforeAll(async () => {
  await writePng(tmp.file('in.png'), testPicture(32, 24));
});

const run = runCli;

describe.skipIf(!SDX4_FIXTURE)('imagen upscale --model SD_X4_FOLDER --tiled --tile-size', () => {
  const up = (out: string, ...extra: string[]) => [
    'upscale',
    tmp.file('in.png'),
    '--model',
    folder.dir,
    '--prompt',
    'a red square',
    '--steps',
    '2',
    '--seed',
    '1',
    '--quiet',
    '--out',
    out,
    ...extra,
  ];

  it('denoises in UNet tiles: 4× output, the same twice, different from the untiled run', async () => {
    const files = ['t1.png', 't2.png', 'plain.png'].map((f) => tmp.file(f));
    for (const [out, extra] of [
      [files[0]!, ['--tile-size', '16']],
      [files[1]!, ['--tile-size', '16']],
      [files[2]!, []],
    ] as const) {
      const r = await run(up(out, ...extra));
      expect(r.code, r.stderr).toBe(0);
    }
    const [a, b, plain] = await Promise.all(files.map((f) => readImage(f)));
    expect([a!.width, a!.height]).toEqual([128, 96]);
    expect(Buffer.from(a!.data).equals(Buffer.from(b!.data))).toBe(true);
    expect(Buffer.from(a!.data).equals(Buffer.from(plain!.data))).toBe(false);
  });

  it('bad --tile-size values are usage errors (exit 2)', async () => {
    for (const v of ['12', 'abc', '0']) {
      const r = await run(up(tmp.file('x.png'), '--tiled', '--tile-size', v));
      expect(r.code, v).toBe(2);
      expect(r.stderr).toMatch(/--tile-size must be a multiple of 8/);
    }
  });

  it('help of upscale and generate says --tiled tiles the UNet and the VAE', async () => {
    for (const cmd of ['upscale', 'generate']) {
      const r = await run([cmd, '--help']);
      const help = r.stdout.replace(/\s+/g, ' ');
      expect(help).toMatch(/--tiled .*overlapping UNet tiles and decode in overlapping VAE tiles/);
      expect(help).toMatch(/--tile-size <px> .*UNet tile side in latent pixels/);
    }
  });

  it('generate --size 1024 --tile-size runs stage III in UNet tiles; a bad size is exit 2', async () => {
    const gen = (out: string, tileSize: string) => [
      'generate',
      'a red square',
      ...['--model', ifs.base, '--sr-model', ifs.sr, '--sr3-model', folder.dir, '--size', '1024'],
      ...['--steps', '2', '--sr-steps', '2', '--sr3-steps', '2', '--quiet', '--out', out],
      ...['--tile-size', tileSize],
    ];
    const out = tmp.file('g.png');
    let r = await run(gen(out, '16'));
    expect(r.code, r.stderr).toBe(0);
    expect((await readImage(out)).width).toBe(4 * TINY_SR_SIZE);
    r = await run(gen(tmp.file('bad.png'), '20'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--tile-size must be a multiple of 8/);
  });
});
