import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { renderScene } from '../../src/data/synth/render.js';
import type { Scene } from '../../src/data/synth/scene.js';
import { synthExample, synthExamples } from '../../src/data/synth/splits.js';
import type { Relation } from '../../src/data/synth/vocab.js';
import { checkImage } from '../../src/eval/checker.js';
import { contactSheet } from '../../src/eval/contact_sheet.js';
import { type EvalItem, scoreItems, shuffleCaptions } from '../../src/eval/evaluate.js';
import { createWordOcr, type WordOcr } from '../../src/platform/node/ocr.js';
import { loadDejaVu } from '../../src/platform/node/synth_render.js';
import { runCli } from '../helpers/cli.js';

// One Tesseract worker for the whole file: its start-up dominates otherwise.
let ocr: WordOcr;
beforeAll(async () => {
  ocr = await createWordOcr();
});
afterAll(async () => {
  await ocr.terminate();
  rmSync(tmp, { recursive: true, force: true });
});
const tmp = mkdtempSync(join(tmpdir(), 'eval-test-'));
const font = loadDejaVu();

function items(seed: number, split: 'train' | 'heldout', n: number, size = 64): EvalItem[] {
  return synthExamples(seed, split, n).map((e) => ({
    index: e.index,
    prompt: e.caption,
    scene: e.scene,
    image: renderScene(e.scene, size, font),
  }));
}

describe('checker self-accuracy', () => {
  it('≥ 98 % whole-prompt on ground-truth renders, < 20 % with shuffled captions (64 px)', async () => {
    const gt = [...items(21, 'train', 60), ...items(21, 'heldout', 30)];
    const { summary } = await scoreItems(gt, ocr.read);
    expect(summary.wholePrompt).toBeGreaterThanOrEqual(0.98);
    for (const a of Object.values(summary.perAttribute)) expect(a.accuracy).toBeGreaterThanOrEqual(0.98);
    expect(summary.perAttribute.word!.total).toBeGreaterThan(10);
    const shuffled = await scoreItems(shuffleCaptions(gt), ocr.read);
    expect(shuffled.summary.wholePrompt).toBeLessThan(0.2);
  });

  it('reads words on 256 px signs', async () => {
    const signs = synthExamples(8, 'heldout', 40)
      .filter((e) => e.scene.sign)
      .slice(0, 8)
      .map((e) => ({
        index: e.index,
        prompt: e.caption,
        scene: e.scene,
        image: renderScene(e.scene, 256, font),
      }));
    const { summary } = await scoreItems(signs, ocr.read);
    expect(summary.wholePrompt).toBe(1);
  });
});

/** The first example of a split whose scene satisfies `pred`. */
function find(pred: (s: Scene) => boolean): Scene {
  for (let i = 0; ; i++) {
    const e = synthExample(3, 'train', i);
    if (pred(e.scene)) return e.scene;
  }
}

describe('checker verdicts on altered prompts', () => {
  it('flags the wrong colour, shape, count, relation and word', async () => {
    const rel = find((s) => s.kind === 'relation' && s.groups[1]!.count === 1);
    const img = renderScene(rel, 64, font);
    expect((await checkImage(rel, img)).pass).toBe(true);
    const flip: Record<Relation, Relation> = {
      'left-of': 'right-of',
      'right-of': 'left-of',
      above: 'below',
      below: 'above',
    };
    const v1 = await checkImage({ ...rel, relation: flip[rel.relation!] }, img);
    expect(v1.verdicts).toMatchObject({ relation: false, colour: true, shape: true });
    const other = rel.groups[0]!.colour === 'red' ? 'blue' : 'red';
    const recoloured = { ...rel, groups: [{ ...rel.groups[0]!, colour: other }, rel.groups[1]!] } as Scene;
    expect((await checkImage(recoloured, img)).verdicts.colour).toBe(false);
    const reshaped = {
      ...rel,
      groups: [
        { ...rel.groups[0]!, shape: rel.groups[0]!.shape === 'star' ? 'circle' : 'star' },
        rel.groups[1]!,
      ],
    } as Scene;
    expect((await checkImage(reshaped, img)).verdicts.shape).toBe(false);
    const more = { ...rel, groups: [rel.groups[0]!, { ...rel.groups[1]!, count: 2 }] } as Scene;
    expect((await checkImage(more, img)).verdicts.count).toBe(false);

    const sign = find((s) => s.kind === 'sign');
    const simg = renderScene(sign, 64, font);
    const ok = await checkImage(sign, simg, ocr.read);
    expect(ok.pass).toBe(true);
    expect(ok.ocrText).toBe(sign.sign!.word);
    const wrong = await checkImage(
      { ...sign, sign: { ...sign.sign!, word: sign.sign!.word === 'CAT' ? 'DOG' : 'CAT' } },
      simg,
      ocr.read,
    );
    expect(wrong.verdicts.word).toBe(false);
  });

  it('fails a blank image', async () => {
    const s = find((x) => x.kind === 'objects');
    const blank = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(200) };
    const r = await checkImage(s, blank);
    expect(r.pass).toBe(false);
    expect(r.verdicts.count).toBe(false);
  });

  it('draws a contact sheet with a caption strip under each image', () => {
    const sheet = contactSheet(
      items(2, 'train', 3).map((it) => ({ image: it.image, caption: it.prompt, pass: true })),
      font,
    );
    expect(sheet.width).toBeGreaterThan(3 * 160);
    // Some dark caption pixels exist below the first image.
    let dark = 0;
    for (let y = 175; y < sheet.height; y++)
      for (let x = 8; x < 168; x++) if (sheet.data[(y * sheet.width + x) * 3]! < 80) dark++;
    expect(dark).toBeGreaterThan(50);
  });
});

describe('imagen eval', () => {
  it('--ground-truth writes a JSON report and contact sheets', async () => {
    const report = join(tmp, 'report');
    const { code, stdout } = await runCli([
      'eval',
      '--ground-truth',
      '--count',
      '12',
      '--seed',
      '4',
      '--report',
      report,
      '--json',
    ]);
    expect(code).toBe(0);
    const summary = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(summary.summary.wholePrompt).toBeGreaterThanOrEqual(0.98);
    expect(summary.shuffled.wholePrompt).toBeLessThan(0.2);
    const json = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8'));
    expect(json.results).toHaveLength(12);
    expect(existsSync(join(report, 'contact-sheet.png'))).toBe(true);
    expect(existsSync(join(report, 'contact-sheet-shuffled.png'))).toBe(true);
  });

  it('--kinds relation prompts only relations, the same ones the full stream holds', async () => {
    const report = join(tmp, 'report-relations');
    const { code } = await runCli([
      'eval',
      '--ground-truth',
      '--count',
      '6',
      '--kinds',
      'relation',
      '--report',
      report,
      '--json',
    ]);
    expect(code).toBe(0);
    const json = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8'));
    expect(json.kinds).toEqual(['relation']);
    const results = json.results as { index: number; prompt: string; verdicts: Record<string, boolean> }[];
    expect(results).toHaveLength(6);
    for (const r of results) {
      expect(r.verdicts.relation).toBe(true);
      expect(synthExample(json.seed, 'heldout', r.index).scene.kind).toBe('relation');
      expect(r.prompt).toBe(synthExample(json.seed, 'heldout', r.index).caption);
    }
    expect((await runCli(['eval', '--ground-truth', '--kinds', 'relations'])).code).toBe(2);
  });

  it('--min-objects prompts only scenes of that many objects', async () => {
    const report = join(tmp, 'report-counting');
    const args = ['eval', '--ground-truth', '--count', '6', '--kinds', 'objects', '--min-objects', '3'];
    const { code } = await runCli([...args, '--report', report, '--json']);
    expect(code).toBe(0);
    const json = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8'));
    expect(json).toMatchObject({ kinds: ['objects'], minObjects: 3 });
    const results = json.results as { index: number; verdicts: Record<string, boolean> }[];
    expect(results).toHaveLength(6);
    for (const r of results) {
      expect(r.verdicts.count).toBe(true);
      const scene = synthExample(json.seed, 'heldout', r.index).scene;
      expect(scene.kind).toBe('objects');
      expect(scene.groups.reduce((n, g) => n + g.count, 0)).toBeGreaterThanOrEqual(3);
    }
    expect((await runCli(['eval', '--ground-truth', '--min-objects', '0'])).code).toBe(2);
  });

  it('rejects --model with --ground-truth, and a bad split', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      // (With neither, eval scores the shipped model.)
      expect(await main(['node', 'imagen', 'eval', '--model', tmp, '--ground-truth'])).toBe(2);
      expect(await main(['node', 'imagen', 'eval', '--ground-truth', '--split', 'nope'])).toBe(2);
    } finally {
      err.mockRestore();
    }
  });

  it('--model generates, scores and reports (a 2-step toy model: the path, not the quality)', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const data = join(tmp, 'data');
      const model = join(tmp, 'model');
      const report = join(tmp, 'model-report');
      expect(
        await main(['node', 'imagen', 'dataset', 'synth', '--out', data, '--count', '8', '--quiet']),
      ).toBe(0);
      const train = [
        'train',
        '--data',
        data,
        '--out',
        model,
        '--resolution',
        '16',
        '--steps',
        '1',
        '--batch',
        '2',
        '--quiet',
      ];
      expect(await main(['node', 'imagen', ...train])).toBe(0);
      const args = [
        'eval',
        '--model',
        model,
        '--count',
        '3',
        '--steps',
        '2',
        '--split',
        'heldout',
        '--report',
        report,
        '--quiet',
      ];
      expect(await main(['node', 'imagen', ...args])).toBe(0);
      const json = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8'));
      expect(json.results).toHaveLength(3);
      expect(json.settings.model).toBe(model);
      expect(existsSync(join(report, 'images', '00000.png'))).toBe(true);
      expect(existsSync(join(report, 'contact-sheet.png'))).toBe(true);
    } finally {
      err.mockRestore();
    }
  });
});
