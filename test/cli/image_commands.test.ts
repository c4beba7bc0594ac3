import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readImage, writePng } from '../../src/platform/node/image.js';
import { readMask } from '../../src/platform/node/mask.js';
import { runCli } from '../helpers/cli.js';
import { useTinyIfFolders, useTmpDir } from '../helpers/test_dirs.js';
import { TINY_BASE_SIZE, TINY_SR_SIZE, testPicture } from '../helpers/tiny_if.js';

const folders = useTinyIfFolders();
const tmp = useTmpDir('image-cmds-');
const picture = testPicture(TINY_BASE_SIZE, TINY_BASE_SIZE);

beforeAll(async () => {
  await writePng(tmp.file('in.png'), picture);
  await writePng(tmp.file('big.png'), testPicture(48, 48));
  // left half white (repaint), right half black (keep)
  const m = new Uint8Array(TINY_BASE_SIZE * TINY_BASE_SIZE * 3);
  for (let p = 0; p < TINY_BASE_SIZE * TINY_BASE_SIZE; p++)
    if (p % TINY_BASE_SIZE < TINY_BASE_SIZE / 2) m.fill(255, p * 3, p * 3 + 3);
  await writePng(tmp.file('mask.png'), { width: TINY_BASE_SIZE, height: TINY_BASE_SIZE, data: m });
  await writePng(tmp.file('small-mask.png'), { width: 8, height: 8, data: new Uint8Array(8 * 8 * 3) });
});

/** Runs the CLI, capturing stdout and stderr. */
const run = runCli;

const common = ['--prompt', 'a red square', '--seed', '7', '--quiet'];
const vary = (...extra: string[]) =>
  run(['vary', tmp.file('in.png'), '--model', folders.base, ...common, ...extra]);

describe('imagen vary / inpaint / upscale: help', () => {
  it.each(['vary', 'inpaint', 'upscale'])(
    '%s --help explains options with defaults and examples',
    async (cmd) => {
      const r = await run([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Examples:/);
      expect(r.stdout).toMatch(/--seed <n>/);
      expect(r.stdout).toMatch(/default/);
    },
  );
});

describe('imagen vary', () => {
  it('writes a stage-I image and reports JSON; the same seed gives the same PNG', async () => {
    const out = tmp.file('vary.png');
    const r = await vary('--steps', '6', '--strength', '0.5', '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect([j.width, j.height]).toEqual([TINY_BASE_SIZE, TINY_BASE_SIZE]);
    const a = await readImage(out);
    const out2 = tmp.file('vary2.png');
    expect((await vary('--steps', '6', '--strength', '0.5', '--out', out2)).code).toBe(0);
    expect(Buffer.from((await readImage(out2)).data).equals(Buffer.from(a.data))).toBe(true);
  });

  it('with --sr-model writes the stage-II size and warns about the resize', async () => {
    const out = tmp.file('vary-sr.png');
    const r = await run([
      'vary',
      tmp.file('big.png'),
      '--model',
      folders.base,
      '--sr-model',
      folders.sr,
      '--prompt',
      'x',
      '--steps',
      '3',
      '--sr-steps',
      '3',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: the input image is 48×48; resized to 16×16 for stage I/);
    const img = await readImage(out);
    expect([img.width, img.height]).toEqual([TINY_SR_SIZE, TINY_SR_SIZE]);
  });

  it('exit code 2 for swapped stages, bad flags and incomplete folders, with the reason', async () => {
    let r = await run(['vary', tmp.file('in.png'), '--model', folders.sr, ...common]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /super-resolution \(stage II\) model \(in_channels 6, class embedding 'timestep'\)/,
    );
    r = await run([
      'vary',
      tmp.file('in.png'),
      '--model',
      folders.base,
      '--sr-model',
      folders.base,
      ...common,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--sr-model .* is not a super-resolution \(stage II\) model \(in_channels 3/);
    r = await vary('--strength', '0');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--strength must be in \(0, 1\]/);
    r = await vary('--device', 'tpu');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--device must be cpu or cuda/);
    r = await run(['vary', tmp.file('in.png'), '--model', folders.base, '--seed', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/pass --prompt/);
    r = await run(['vary', tmp.file('nope.png'), '--model', folders.base, ...common]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nope.png: image file not found/);
    const broken = tmp.file('broken');
    cpSync(folders.base, broken, { recursive: true });
    rmSync(join(broken, 'scheduler'), { recursive: true });
    rmSync(join(broken, 'tokenizer'), { recursive: true });
    r = await run(['vary', tmp.file('in.png'), '--model', broken, ...common]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--model .*broken: pipeline folder is missing scheduler, tokenizer/);
  });
});

describe('imagen inpaint', () => {
  it('keeps the black-masked pixels of the input exactly', async () => {
    const out = tmp.file('inpaint.png');
    const r = await run([
      'inpaint',
      tmp.file('in.png'),
      '--mask',
      tmp.file('mask.png'),
      '--model',
      folders.base,
      ...common,
      '--steps',
      '4',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const img = await readImage(out);
    let changed = 0;
    for (let p = 0; p < TINY_BASE_SIZE * TINY_BASE_SIZE; p++) {
      for (let c = 0; c < 3; c++) {
        if (p % TINY_BASE_SIZE >= TINY_BASE_SIZE / 2)
          expect(img.data[p * 3 + c]).toBe(picture.data[p * 3 + c]);
        else if (img.data[p * 3 + c] !== picture.data[p * 3 + c]) changed++;
      }
    }
    expect(changed).toBeGreaterThan(100);
  });

  it('both stages give the stage-II size', async () => {
    const out = tmp.file('inpaint-sr.png');
    const r = await run([
      'inpaint',
      tmp.file('in.png'),
      '--mask',
      tmp.file('mask.png'),
      '--model',
      folders.base,
      '--sr-model',
      folders.sr,
      ...common,
      '--steps',
      '2',
      '--sr-steps',
      '3',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const img = await readImage(out);
    expect([img.width, img.height]).toEqual([TINY_SR_SIZE, TINY_SR_SIZE]);
  });

  it('--extend builds the padded canvas and a mask white on the new border', async () => {
    const out = tmp.file('outpaint.png');
    const maskOut = tmp.file('outpaint-mask.png');
    const r = await run([
      'inpaint',
      tmp.file('in.png'),
      '--extend',
      'left=16,right=0',
      '--model',
      folders.base,
      ...common,
      '--steps',
      '2',
      '--out',
      out,
      '--save-mask',
      maskOut,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).canvas).toEqual({ width: 32, height: 16 });
    const mask = await readMask(maskOut);
    expect([mask.width, mask.height]).toEqual([32, 16]);
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 32; x++) expect(mask.data[y * 32 + x]).toBe(x >= 16 ? 0 : 255);
    // 32×16 has its short side at the stage size already (IF's resize keeps the aspect ratio):
    // no resize, and the input survives on the right
    const img = await readImage(out);
    expect([img.width, img.height]).toEqual([32, 16]);
    for (let y = 0; y < 16; y++) {
      for (let x = 16; x < 32; x++) {
        const q = (y * 16 + (x - 16)) * 3;
        expect(Array.from(img.data.subarray((y * 32 + x) * 3, (y * 32 + x) * 3 + 3))).toEqual(
          Array.from(picture.data.subarray(q, q + 3)),
        );
      }
    }
  });

  it('exit code 2 for a mask of another size, no mask, a missing or undecodable mask file, or a bad --extend', async () => {
    const withMask = (mask: string) =>
      run(['inpaint', tmp.file('in.png'), '--mask', tmp.file(mask), '--model', folders.base, ...common]);
    let r = await withMask('small-mask.png');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is 8×8 but the image .* is 16×16/);
    r = await run(['inpaint', tmp.file('in.png'), '--model', folders.base, ...common]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs --mask/);
    r = await run([
      'inpaint',
      tmp.file('in.png'),
      '--extend',
      'sideways=3',
      '--model',
      folders.base,
      ...common,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--extend: "sideways=3" is not side=pixels/);
    r = await withMask('no-mask.png');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no-mask\.png: mask file not found/);
    writeFileSync(tmp.file('text-mask.png'), 'not a picture');
    r = await withMask('text-mask.png');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/text-mask\.png: cannot decode mask image/);
  });
});

describe('imagen upscale', () => {
  it('lifts a user PNG with the text encoder of the stage-I folder; warns when it resizes the input', async () => {
    const out = tmp.file('up.png');
    let r = await run([
      'upscale',
      tmp.file('in.png'),
      '--model',
      folders.sr,
      '--text-encoder',
      folders.base,
      '--prompt',
      'x',
      '--steps',
      '3',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    // default low-res size = sample_size / 4 = 8 for the tiny 32-px model
    expect(r.stderr).toMatch(/warning: the input image is 16×16; resized to 8×8/);
    expect([(await readImage(out)).width, (await readImage(out)).height]).toEqual([
      TINY_SR_SIZE,
      TINY_SR_SIZE,
    ]);
    r = await run([
      'upscale',
      tmp.file('in.png'),
      '--model',
      folders.sr,
      '--text-encoder',
      folders.base,
      '--prompt',
      'x',
      '--steps',
      '3',
      '--low-res-size',
      '16',
      '--out',
      out,
      '--noise-level',
      '100',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/warning/);
  });

  it("uses the folder's own text encoder, or --prompt-embeds written by imagen encode", async () => {
    const out = tmp.file('up2.png');
    let r = await run([
      'upscale',
      tmp.file('in.png'),
      '--model',
      folders.srWithText,
      '--prompt',
      'x',
      '--steps',
      '2',
      '--out',
      out,
      '--quiet',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const emb = tmp.file('emb.safetensors');
    r = await run([
      'encode',
      'x',
      '--text-encoder',
      folders.base,
      '--negative-prompt',
      '',
      '--max-length',
      '16',
      '--out',
      emb,
    ]);
    expect(r.code, r.stderr).toBe(0);
    r = await run([
      'upscale',
      tmp.file('in.png'),
      '--model',
      folders.sr,
      '--prompt-embeds',
      emb,
      '--steps',
      '2',
      '--out',
      out,
      '--quiet',
    ]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("takes the folder's generation_config: unguided there, so embeddings without a negative suffice", async () => {
    const dir = tmp.file('sr-with-generation-config');
    cpSync(folders.sr, dir, { recursive: true });
    writeFileSync(
      join(dir, 'generation_config.json'),
      JSON.stringify({ num_inference_steps: 2, guidance_scale: 1, sampler: 'ddim', noise_level: 100 }),
    );
    const emb = tmp.file('emb-no-negative.safetensors');
    let r = await run(['encode', 'x', '--text-encoder', folders.base, '--max-length', '16', '--out', emb]);
    expect(r.code, r.stderr).toBe(0);
    const upscale = (model: string, out: string, ...extra: string[]) =>
      run([
        'upscale',
        tmp.file('in.png'),
        '--model',
        model,
        '--prompt-embeds',
        emb,
        '--out',
        out,
        '--quiet',
        ...extra,
      ]);
    r = await upscale(dir, tmp.file('up-folder.png'));
    expect(r.code, r.stderr).toBe(0);
    r = await upscale(
      folders.sr,
      tmp.file('up-explicit.png'),
      ...['--steps', '2', '--guidance', '1', '--sampler', 'ddim', '--noise-level', '100'],
    );
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(tmp.file('up-folder.png')).equals(readFileSync(tmp.file('up-explicit.png')))).toBe(
      true,
    );
    // --back-projection on changes the picture (towards the input's colours); a bad value is a usage error
    const explicit = ['--steps', '2', '--guidance', '1', '--sampler', 'ddim', '--noise-level', '100'];
    r = await upscale(folders.sr, tmp.file('up-bp.png'), ...explicit, '--back-projection', 'on');
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(tmp.file('up-bp.png')).equals(readFileSync(tmp.file('up-explicit.png')))).toBe(false);
    r = await upscale(folders.sr, tmp.file('up-bad.png'), ...explicit, '--back-projection', 'yes');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--back-projection must be on or off, got "yes"/);
    // without the folder's guidance_scale 1, IF-II's guidance 4 needs the negative embeddings
    r = await upscale(folders.sr, tmp.file('up-guided.png'), '--steps', '2');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/negative/);
  });

  it('exit code 2 without any text encoder, or with a stage-I folder', async () => {
    let r = await run(['upscale', tmp.file('in.png'), '--model', folders.sr, ...common]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has no text encoder .* pass --text-encoder DIR .* or --prompt-embeds FILE/);
    r = await run(['upscale', tmp.file('in.png'), '--model', folders.base, ...common]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a super-resolution \(stage II\) model/);
    r = await run(['upscale', tmp.file('in.png'), '--model', folders.sr, ...common, '--noise-level', '1000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--noise-level must be a number in \[0, 999\]/);
  });
});
