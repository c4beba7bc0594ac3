import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { renderScene, signTextBox } from '../../src/data/synth/render.js';
import { Rng } from '../../src/data/synth/rng.js';
import { objectExtent, relationHolds, signLetterColour } from '../../src/data/synth/scene.js';
import {
  HELDOUT_COLOUR_SHAPE,
  HELDOUT_WORD_COLOUR,
  isHeldout,
  sceneObjectCount,
  synthExample,
  synthExamples,
  synthExamplesOfKinds,
  withSignColourDropped,
} from '../../src/data/synth/splits.js';
import {
  BACKGROUNDS,
  COLOUR_NAMES,
  COLOURS,
  MIN_BG_DISTANCE,
  rgbDistance,
  SHAPES,
  SIZES,
  WORDS,
} from '../../src/data/synth/vocab.js';
import { scanImageFolder } from '../../src/platform/node/dataset.js';
import { loadDejaVu, writeSynthDataset } from '../../src/platform/node/synth_render.js';

const tmp = mkdtempSync(join(tmpdir(), 'synth-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);

describe('vocabulary', () => {
  it('has the breadth the issue asks for', () => {
    expect(SHAPES.length).toBeGreaterThanOrEqual(6);
    expect(COLOUR_NAMES.length).toBeGreaterThanOrEqual(8);
    expect(SIZES.length).toBeGreaterThanOrEqual(3);
    expect(new Set(WORDS).size).toBe(WORDS.length);
    expect(WORDS.length).toBeGreaterThanOrEqual(50);
    for (const w of WORDS) expect(w).toMatch(/^[A-Z]{3,5}$/);
  });

  it('keeps named colours well apart', () => {
    for (const a of COLOUR_NAMES)
      for (const b of COLOUR_NAMES)
        if (a < b) expect(rgbDistance(COLOURS[a], COLOURS[b])).toBeGreaterThan(75);
  });
});

describe('PRNG', () => {
  it('is deterministic and order-sensitive in its seeds', () => {
    const a = new Rng(3, 1, 7);
    const b = new Rng(3, 1, 7);
    expect(Array.from({ length: 5 }, () => a.nextU32())).toEqual(
      Array.from({ length: 5 }, () => b.nextU32()),
    );
    expect(new Rng(0, 1, 1).nextU32()).not.toBe(new Rng(1, 1, 0).nextU32());
    expect(new Rng(2 ** 40).nextU32()).not.toBe(new Rng(0).nextU32());
  });
});

describe('scene grammar', () => {
  const examples = synthExamples(11, 'train', 1500);

  it('draws 1–4 objects inside the frame, apart, on a background far from every colour', () => {
    for (const { scene } of examples) {
      if (scene.kind === 'sign') {
        expect(scene.objects).toHaveLength(0);
        expect(scene.sign).toBeDefined();
        continue;
      }
      expect(scene.objects.length).toBeGreaterThanOrEqual(1);
      expect(scene.objects.length).toBeLessThanOrEqual(4);
      expect(scene.objects.length).toBe(scene.groups.reduce((s, g) => s + g.count, 0));
      for (const o of scene.objects) {
        const e = objectExtent(scene.groups[o.group]!.size);
        expect(o.cx - e / 2).toBeGreaterThan(0);
        expect(o.cx + e / 2).toBeLessThan(1);
        expect(o.cy - e / 2).toBeGreaterThan(0);
        expect(o.cy + e / 2).toBeLessThan(1);
      }
      for (const g of scene.groups) {
        for (const end of [scene.background.from, scene.background.to]) {
          expect(rgbDistance(end, COLOURS[g.colour])).toBeGreaterThanOrEqual(MIN_BG_DISTANCE);
        }
      }
      if (scene.relation) expect(relationHolds(scene.relation, scene.objects, true)).toBe(true);
    }
  });

  it('covers every shape, colour, size, relation, position and many words, with varied captions', () => {
    const shapes = new Set<string>();
    const colours = new Set<string>();
    const sizes = new Set<string>();
    const rels = new Set<string>();
    const words = new Set<string>();
    const kinds = new Set<string>();
    for (const { scene } of examples) {
      kinds.add(scene.kind);
      for (const g of scene.groups) {
        shapes.add(g.shape);
        colours.add(g.colour);
        sizes.add(g.size);
      }
      if (scene.relation) rels.add(scene.relation);
      if (scene.position) rels.add(scene.position);
      if (scene.sign) words.add(scene.sign.word);
    }
    expect(shapes.size).toBe(SHAPES.length);
    expect(colours.size).toBe(COLOUR_NAMES.length);
    expect(sizes.size).toBe(3);
    expect(rels.size).toBe(9);
    expect(words.size).toBeGreaterThanOrEqual(50);
    expect(kinds).toEqual(new Set(['objects', 'relation', 'sign']));
    const captions = examples.map((e) => e.caption);
    expect(new Set(captions).size).toBeGreaterThan(1000);
    expect(captions.some((c) => / to the left of (two|three) /.test(c))).toBe(true);
    expect(captions.some((c) => /^an? \w+ sign that says [A-Z]+$/.test(c))).toBe(true);
    expect(captions.some((c) => /^three \w+ \w+$/.test(c))).toBe(true);
    expect(captions.some((c) => / in the top left corner$/.test(c))).toBe(true);
    for (const c of captions) expect(c).not.toMatch(/\ba [aeiou]/);
  });

  it('captions name what the scene holds', () => {
    for (const { scene, caption } of examples.slice(0, 300)) {
      for (const g of scene.groups) {
        expect(caption).toContain(g.colour);
        if (g.sizeStated) expect(caption).toContain(g.size);
      }
      if (scene.sign) expect(caption).toContain(scene.sign.word);
    }
  });

  it('is a pure function of (seed, split, index)', () => {
    expect(synthExample(11, 'train', 700)).toEqual(examples[700]);
    expect(synthExample(12, 'train', 700)).not.toEqual(examples[700]);
  });
});

describe('sign captions without the colour', () => {
  const signs = synthExamplesOfKinds(21, 'train', 400, ['sign']).examples;
  const objects = synthExamplesOfKinds(21, 'train', 20, ['objects', 'relation']).examples;
  const names = (c: string) => c.split(' ').filter((w) => (COLOUR_NAMES as readonly string[]).includes(w));

  it('drops the colour of about that fraction of sign captions, keeping the word and the scene', () => {
    const out = signs.map((ex) => withSignColourDropped(ex, 21, 0.3));
    const dropped = out.filter((ex, i) => ex.caption !== signs[i]!.caption);
    expect(dropped.length).toBeGreaterThan(0.3 * 400 - 40);
    expect(dropped.length).toBeLessThan(0.3 * 400 + 40);
    for (const [i, ex] of out.entries()) {
      expect(ex.scene).toBe(signs[i]!.scene);
      expect(ex.caption).toContain(ex.scene.sign!.word);
      expect(ex.caption).toMatch(/\bsign\b/);
      if (ex.caption === signs[i]!.caption) expect(names(ex.caption)).toEqual([ex.scene.sign!.colour]);
      else expect(names(ex.caption)).toEqual([]);
    }
    for (const ex of dropped) {
      expect(ex.caption).not.toMatch(/ {2}|^an /);
      expect(ex.caption).toMatch(/\b(a sign|on a sign)\b/);
    }
  });

  it('is deterministic per (seed, index), never touches object scenes, and does nothing at 0', () => {
    expect(signs.map((ex) => withSignColourDropped(ex, 21, 0.3))).toEqual(
      signs.map((ex) => withSignColourDropped(ex, 21, 0.3)),
    );
    expect(signs.map((ex) => withSignColourDropped(ex, 22, 0.3).caption)).not.toEqual(
      signs.map((ex) => withSignColourDropped(ex, 21, 0.3).caption),
    );
    for (const ex of signs) expect(withSignColourDropped(ex, 21, 0)).toBe(ex);
    for (const ex of objects) expect(withSignColourDropped(ex, 21, 1)).toBe(ex);
    for (const ex of signs) expect(names(withSignColourDropped(ex, 21, 1).caption)).toEqual([]);
  });
});

describe('held-out split', () => {
  it('never puts a held-out pair in training; every held-out example has one; all pairs occur', () => {
    for (const e of synthExamples(5, 'train', 3000)) expect(isHeldout(e.scene)).toBe(false);
    const held = synthExamples(5, 'heldout', 400);
    const seen = new Set<string>();
    for (const e of held) {
      expect(isHeldout(e.scene)).toBe(true);
      for (const g of e.scene.groups) seen.add(`${g.colour}/${g.shape}`);
      if (e.scene.sign) seen.add(`${e.scene.sign.word}/${e.scene.sign.colour}`);
    }
    for (const [c, s] of HELDOUT_COLOUR_SHAPE) expect(seen).toContain(`${c}/${s}`);
    for (const [w, c] of HELDOUT_WORD_COLOUR) expect(seen).toContain(`${w}/${c}`);
  });
});

describe('rendering', () => {
  const font = loadDejaVu();

  it('reads glyphs from the packaged DejaVu font', () => {
    const g = font.glyph(font.glyphIndex('A'.codePointAt(0)!));
    expect(g.contours.length).toBeGreaterThan(0);
    expect(font.measure('HELLO', 100)).toBeGreaterThan(font.measure('CAT', 100));
  });

  it('is byte-stable: pinned pixel hashes (pure-JS rasteriser, no system fonts)', () => {
    const hashes = [0, 1, 2, 3].map((i) =>
      sha(renderScene(synthExample(0, 'train', i).scene, 64, font).data),
    );
    // Pinned on first run of this suite; a change means the dataset itself changed.
    expect(hashes).toMatchInlineSnapshot(`
      [
        "fe90e4ad9a9f78c6",
        "b065f8d421ba1850",
        "e4cfbde4ed76b42c",
        "40ede8fbfaf6f351",
      ]
    `);
  });

  it('signTextBox holds every letter pixel of a sign, and little else', () => {
    const size = 128;
    for (const ex of synthExamplesOfKinds(3, 'train', 6, ['sign']).examples) {
      const sign = ex.scene.sign!;
      const img = renderScene(ex.scene, size, font);
      const letter = signLetterColour(sign);
      const board = COLOURS[sign.colour];
      const [bx0, by0, bx1, by1] = signTextBox(sign, font).map((v) => v * size) as [
        number,
        number,
        number,
        number,
      ];
      let [lx0, ly0, lx1, ly1] = [size, size, 0, 0];
      for (let y = Math.ceil((sign.cy - sign.h / 2) * size); y < (sign.cy + sign.h / 2) * size - 1; y++)
        for (let x = Math.ceil((sign.cx - sign.w / 2) * size); x < (sign.cx + sign.w / 2) * size - 1; x++) {
          const p = (y * size + x) * 3;
          const px: [number, number, number] = [img.data[p]!, img.data[p + 1]!, img.data[p + 2]!];
          if (rgbDistance(px, letter) >= rgbDistance(px, board)) continue;
          expect(
            x + 0.5 > bx0 && x + 0.5 < bx1 && y + 0.5 > by0 && y + 0.5 < by1,
            `${sign.word} (${x}, ${y})`,
          ).toBe(true);
          [lx0, ly0, lx1, ly1] = [
            Math.min(lx0, x),
            Math.min(ly0, y),
            Math.max(lx1, x + 1),
            Math.max(ly1, y + 1),
          ];
        }
      // Tight: the letters span nearly all of the box.
      expect((lx1 - lx0) / (bx1 - bx0)).toBeGreaterThan(0.85);
      expect((ly1 - ly0) / (by1 - by0)).toBeGreaterThan(0.75);
    }
  });

  it('uses the background and colours it was asked for', () => {
    const ex = examples0();
    const img = renderScene(ex.scene, 64, font);
    const bg = ex.scene.background.from;
    const p = 0;
    expect(rgbDistance([img.data[p]!, img.data[p + 1]!, img.data[p + 2]!], bg)).toBeLessThan(20);
    expect(BACKGROUNDS).toContainEqual(bg);
  });
});

function examples0() {
  return synthExample(0, 'train', 0);
}

const synth = (args: string[]) => main(['node', 'imagen', 'dataset', 'synth', ...args]);

describe('imagefolder output and CLI', () => {
  it('writes identical files for the same seed, readable by the trainer', async () => {
    const a = join(tmp, 'a');
    const b = join(tmp, 'b');
    await writeSynthDataset({ out: a, count: 12, seed: 4, size: 64, split: 'train' });
    await writeSynthDataset({ out: b, count: 12, seed: 4, size: 64, split: 'train' });
    const files = readdirSync(a).sort();
    expect(files).toContain('metadata.jsonl');
    for (const f of files) expect(sha(readFileSync(join(a, f)))).toBe(sha(readFileSync(join(b, f))));
    const entries = await scanImageFolder(a);
    expect(entries).toHaveLength(12);
    const row = JSON.parse(readFileSync(join(a, 'metadata.jsonl'), 'utf8').split('\n')[0]!);
    expect(row.scene.kind).toBeDefined();
    expect(row.text).toBe(synthExample(4, 'train', 0).caption);
  });

  it('writes text_boxes for signs only, and the trainer reads them', async () => {
    const dir = join(tmp, 'boxes');
    await writeSynthDataset({ out: dir, count: 30, seed: 9, size: 32, split: 'train' });
    const rows = readFileSync(join(dir, 'metadata.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const entries = await scanImageFolder(dir);
    expect(rows.some((r) => r.scene.sign)).toBe(true);
    expect(rows.some((r) => !r.scene.sign)).toBe(true);
    rows.forEach((r, i) => {
      if (!r.scene.sign) {
        expect(r.text_boxes).toBeUndefined();
        expect(entries[i]!.textBoxes).toBeUndefined();
        return;
      }
      const want = signTextBox(r.scene.sign, loadDejaVu());
      expect(r.text_boxes).toHaveLength(1);
      for (const [k, v] of (r.text_boxes[0] as number[]).entries()) expect(v).toBeCloseTo(want[k]!, 4);
      expect(entries[i]!.textBoxes).toEqual(r.text_boxes);
    });
  });

  it('--kinds keeps only those scenes, exactly as they stand in the full stream of the same seed', async () => {
    const full = join(tmp, 'kinds-full');
    const rel = join(tmp, 'kinds-rel');
    await writeSynthDataset({ out: full, count: 30, seed: 9, size: 32, split: 'train' });
    await writeSynthDataset({ out: rel, count: 4, seed: 9, size: 32, split: 'train', kinds: ['relation'] });
    const rows = (dir: string) =>
      readFileSync(join(dir, 'metadata.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { file_name: string; text: string; scene: { kind: string } });
    const want = rows(full)
      .filter((r) => r.scene.kind === 'relation')
      .slice(0, 4);
    expect(want).toHaveLength(4); // about a third of scenes are relations
    const got = rows(rel);
    expect(got.map((r) => r.file_name)).toEqual(['000000.png', '000001.png', '000002.png', '000003.png']);
    expect(got.map((r) => r.text)).toEqual(want.map((r) => r.text));
    for (const [i, r] of got.entries())
      expect(sha(readFileSync(join(rel, r.file_name)))).toBe(
        sha(readFileSync(join(full, want[i]!.file_name))),
      );
    const info = JSON.parse(readFileSync(join(rel, 'dataset.json'), 'utf8'));
    expect(info).toMatchObject({ count: 4, kinds: ['relation'] });
    expect(info.drawn).toBeGreaterThan(4);
  });

  it('--min-objects keeps only scenes of that many objects, with --kinds, as they stand in the full stream', async () => {
    const full = join(tmp, 'min-full');
    const many = join(tmp, 'min-many');
    await writeSynthDataset({ out: full, count: 40, seed: 9, size: 32, split: 'train' });
    await writeSynthDataset({
      out: many,
      count: 3,
      seed: 9,
      size: 32,
      split: 'train',
      kinds: ['objects'],
      minObjects: 3,
    });
    type Row = { file_name: string; text: string; scene: Parameters<typeof sceneObjectCount>[0] };
    const rows = (dir: string) =>
      readFileSync(join(dir, 'metadata.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Row);
    const want = rows(full)
      .filter((r) => r.scene.kind === 'objects' && sceneObjectCount(r.scene) >= 3)
      .slice(0, 3);
    expect(want).toHaveLength(3);
    const got = rows(many);
    expect(got.map((r) => r.text)).toEqual(want.map((r) => r.text));
    for (const r of got) expect(r.scene.groups.reduce((n, g) => n + g.count, 0)).toBeGreaterThanOrEqual(3);
    for (const [i, r] of got.entries())
      expect(sha(readFileSync(join(many, r.file_name)))).toBe(
        sha(readFileSync(join(full, want[i]!.file_name))),
      );
    const info = JSON.parse(readFileSync(join(many, 'dataset.json'), 'utf8'));
    expect(info).toMatchObject({ count: 3, kinds: ['objects'], minObjects: 3 });
    expect(info.drawn).toBeGreaterThan(3);
  });

  it('--sign-colour-drop rewrites only captions: same pixels, and dataset.json says so', async () => {
    const plain = join(tmp, 'drop-plain');
    const drop = join(tmp, 'drop-some');
    await writeSynthDataset({ out: plain, count: 12, seed: 9, size: 32, split: 'train', kinds: ['sign'] });
    await writeSynthDataset({
      out: drop,
      count: 12,
      seed: 9,
      size: 32,
      split: 'train',
      kinds: ['sign'],
      signColourDrop: 0.5,
    });
    const rows = (dir: string) =>
      readFileSync(join(dir, 'metadata.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { file_name: string; text: string; scene: unknown });
    const [a, b] = [rows(plain), rows(drop)];
    const changed = b.filter((r, i) => r.text !== a[i]!.text);
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.length).toBeLessThan(12);
    for (const [i, r] of b.entries()) {
      expect(r.scene).toEqual(a[i]!.scene);
      expect(sha(readFileSync(join(drop, r.file_name)))).toBe(sha(readFileSync(join(plain, r.file_name))));
    }
    expect(JSON.parse(readFileSync(join(drop, 'dataset.json'), 'utf8')).signColourDrop).toBe(0.5);
    expect(JSON.parse(readFileSync(join(plain, 'dataset.json'), 'utf8')).signColourDrop).toBeUndefined();
  });

  it('counts a sign as one object', () => {
    const signs = synthExamplesOfKinds(5, 'train', 3, ['sign']).examples;
    for (const { scene } of signs) expect(sceneObjectCount(scene)).toBe(1);
    expect(() => synthExamplesOfKinds(5, 'train', 1, ['sign'], 2)).toThrow(
      /no sign scenes of at least 2 objects/,
    );
  });

  it('imagen dataset synth', async () => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const out = join(tmp, 'cli');
      expect(
        await synth(['--out', out, '--count', '3', '--split', 'heldout', '--size', '96', '--quiet']),
      ).toBe(0);
      expect(readdirSync(out).filter((f) => f.endsWith('.png'))).toHaveLength(3);
      expect(JSON.parse(readFileSync(join(out, 'dataset.json'), 'utf8'))).toMatchObject({
        split: 'heldout',
        size: 96,
      });
      expect(await synth(['--out', out, '--count', '3', '--split', 'test'])).toBe(2);
      expect(await synth(['--out', out, '--count', '0'])).toBe(2);
      expect(await synth(['--out', out, '--count', '2', '--kinds', 'sign,relation'])).toBe(0);
      expect(
        readFileSync(join(out, 'metadata.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l).scene.kind)
          .every((k: string) => k === 'sign' || k === 'relation'),
      ).toBe(true);
      expect(await synth(['--out', out, '--count', '2', '--kinds', 'relations'])).toBe(2);
      expect(await synth(['--out', out, '--count', '2', '--sign-colour-drop', '1.5'])).toBe(2);
      expect(await synth(['--out', out, '--count', '2', '--sign-colour-drop', 'x'])).toBe(2);
    } finally {
      spy.mockRestore();
    }
  });
});
