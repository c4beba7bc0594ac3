/**
 * Denoising a cascade stage on UNet tiles, chosen per call or by the folder's generation_config.json
 * (the shipped stage II was trained on crops and samples at 256² in crop-sized tiles).
 */
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSrTiles } from '../../src/cli/image_flags.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet.js';
import { parseGenerationConfig, stageDefaultsFor } from '../../src/pipelines/generation_config.js';
import { generateImages, type StageOptions } from '../../src/pipelines/text_to_image.js';
import { stageTiles } from '../../src/pipelines/tiled_unet.js';
import { loadPipelineFolder, stageModels } from '../../src/platform/node/pipeline_folder.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { tinyUNetConfig } from '../../src/train/config.js';
import { useTmpDir } from '../helpers/test_dirs.js';
import { stage, useTinyIfPipelines } from '../helpers/tiny_if_pipelines.js';
import { maxAbsErr } from '../reference/fd.js';

const rt = createRuntime({ threads: 1 });
const p = useTinyIfPipelines(rt);
const tmp = useTmpDir('imagen-tiles-');

/** The tiny SR folder with a generation_config.json. */
function srFolderWith(name: string, generationConfig: Record<string, unknown>): string {
  const dir = tmp.file(name);
  cpSync(p.folders.sr, dir, { recursive: true });
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(generationConfig));
  return dir;
}

describe('generation_config tile keys', () => {
  it('parse into StageDefaults.tiles; bad values are named', () => {
    expect(parseGenerationConfig({ tile_size: 64, tile_overlap: 32, tiles_per_call: 49 }, 'g.json')).toEqual({
      tiles: { tileSize: 64, overlap: 32, tilesPerCall: 49 },
    });
    expect(parseGenerationConfig({ noise_level: 100 }, 'g.json')).toEqual({ noiseLevel: 100 });
    expect(() => parseGenerationConfig({ tile_size: 0 }, 'g.json')).toThrow(
      /g\.json: bad value for tile_size: 0/,
    );
    expect(() => parseGenerationConfig({ tile_size: 64, tile_overlap: 1.5 }, 'g.json')).toThrow(
      /tile_overlap/,
    );
    expect(() => parseGenerationConfig({ tile_overlap: 8 }, 'g.json')).toThrow(/need tile_size/);
    expect(() => parseGenerationConfig({ tile: 64 }, 'g.json')).toThrow(/unknown key "tile".*tile_size/);
  });

  it('checked against a UNet without a folder (what browser mode does with fetched files)', () => {
    // two levels: one downsampling, so tiles must be even
    const unet = new UNet2DConditionModel(
      tinyUNetConfig({ stage: 'sr', size: 32, channels: [32, 32], textDim: 64 }),
    );
    expect(stageDefaultsFor({ sampler: 'ddim', tile_size: 16, tile_overlap: 8 }, 'u/g.json', unet)).toEqual({
      sampler: 'ddim',
      tiles: { tileSize: 16, overlap: 8 },
    });
    expect(() => stageDefaultsFor({ tile_size: 15 }, 'u/g.json', unet)).toThrow(
      /^u\/g\.json: tiled UNet: tile size must be/,
    );
    expect(() => stageDefaultsFor({ steps: 4 }, 'u/g.json', unet)).toThrow(/u\/g\.json: unknown key "steps"/);
  });

  it('a folder whose tiles do not fit its UNet fails when loaded, naming the file', async () => {
    // the tiny stage II downsamples once: tiles must be multiples of 2
    const dir = srFolderWith('bad', { tile_size: 15 });
    await expect(loadPipelineFolder(dir)).rejects.toThrow(
      /generation_config\.json: tiled UNet: tile size must be/,
    );
  });
});

describe('stage II on tiles', () => {
  const run = async (sr: ReturnType<typeof stage>, opts: StageOptions = {}) =>
    (
      await generateImages(rt, p.text, stage(p.base), sr, {
        prompt: 'a red square',
        seed: 3,
        base: { steps: 2 },
        sr: { steps: 2, noiseLevel: 100, ...opts },
      })
    ).sr!;

  it('one tile over the whole image is the untiled result; smaller tiles change it; the folder default applies', async () => {
    const untiled = await run(stage(p.sr));
    expect(maxAbsErr(await run(stage(p.sr), { tiles: { tileSize: 32 } }), untiled)).toBe(0);

    const tiled = await run(stage(p.sr), { tiles: { tileSize: 16, overlap: 8 } });
    expect(tiled.shape).toEqual(untiled.shape);
    expect(maxAbsErr(tiled, untiled)).toBeGreaterThan(1e-3);
    // nine tiles in calls of four: the same result as one tile per call
    const batched = await run(stage(p.sr), { tiles: { tileSize: 16, overlap: 8, tilesPerCall: 4 } });
    expect(maxAbsErr(batched, tiled)).toBeLessThan(1e-5);

    const dir = srFolderWith('tiled', { tile_size: 16, tile_overlap: 8, tiles_per_call: 4 });
    const folder = stageModels(await loadPipelineFolder(dir));
    expect(folder.defaults?.tiles).toEqual({ tileSize: 16, overlap: 8, tilesPerCall: 4 });
    expect(maxAbsErr(await run(folder), batched)).toBe(0);
    // `tiles: false` turns the folder's default off
    expect(maxAbsErr(await run(folder, { tiles: false }), untiled)).toBe(0);
  }, 60_000);
});

describe('choosing the tiles', () => {
  it("the caller wins over the folder, false turns tiling off, tiles per call stay the folder's", () => {
    const folder = { tileSize: 64, overlap: 32, tilesPerCall: 49 };
    expect(stageTiles(undefined, folder)).toEqual(folder);
    expect(stageTiles(false, folder)).toBe(false);
    expect(stageTiles({ tileSize: 128 }, folder)).toEqual({ tileSize: 128, tilesPerCall: 49 });
    expect(stageTiles({ tileSize: 128, tilesPerCall: 1 }, folder)).toEqual({
      tileSize: 128,
      tilesPerCall: 1,
    });
    expect(stageTiles({ tileSize: 128 }, undefined)).toEqual({ tileSize: 128 });
    expect(stageTiles(undefined, undefined)).toBeUndefined();
  });

  it('--sr-tile-size / --sr-tile-overlap', () => {
    expect(parseSrTiles(undefined, undefined)).toBeUndefined();
    expect(parseSrTiles('0', undefined)).toBe(false);
    expect(parseSrTiles('64', undefined)).toEqual({ tileSize: 64 });
    expect(parseSrTiles('64', '16')).toEqual({ tileSize: 64, overlap: 16 });
    expect(() => parseSrTiles(undefined, '16')).toThrow(/--sr-tile-overlap needs --sr-tile-size/);
    expect(() => parseSrTiles('6.5', undefined)).toThrow(/--sr-tile-size must be an integer ≥ 0, got "6.5"/);
    expect(() => parseSrTiles('64', '-8')).toThrow(/--sr-tile-overlap must be an integer ≥ 0/);
  });
});
