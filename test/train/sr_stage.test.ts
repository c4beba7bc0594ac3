/**
 * Training a super-resolution stage the way the shipped cascade does: on random crops, with the
 * base model's text encoder frozen; and sampling it with that encoder's embeddings.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { T5TextEncoder } from '../../src/models/t5/t5_encoder.js';
import { varyImages } from '../../src/pipelines/img2img.js';
import { inpaintImages } from '../../src/pipelines/inpaint.js';
import { generateImages } from '../../src/pipelines/text_to_image.js';
import { loadPipelineFolder, openTextEncoder, stageModels } from '../../src/platform/node/pipeline_folder.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { loadTokenizer } from '../../src/platform/node/tokenizer_files.js';
import { parseTrainConfig, tinyTrainConfig } from '../../src/train/config.js';
import { float32Tensors } from '../helpers/safetensors.js';
import { writeShapesDataset } from '../helpers/shapes.js';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-sr-stage-'));
  await writeShapesDataset(join(root, 'data'), 12, 32);
});
afterAll(() => rm(root, { recursive: true, force: true }));

const train = (args: string[]) =>
  main([
    'node',
    'imagen',
    'train',
    '--data',
    join(root, 'data'),
    '--quiet',
    '--checkpoint-every',
    '2',
    ...args,
  ]);

const tensors = float32Tensors;

describe('super-resolution stage on crops with a frozen text encoder', () => {
  it('keeps the base encoder bit for bit, trains on crops, resumes exactly, and samples with its own encoder', async () => {
    const base = join(root, 'base');
    expect(await train(['--out', base, '--resolution', '16', '--steps', '3', '--batch', '4'])).toBe(0);

    const cfg = { ...tinyTrainConfig('sr', 32, 8), crop_size: 16, text_encoder_from: base } as Record<
      string,
      unknown
    >;
    delete cfg.text_encoder;
    parseTrainConfig(cfg); // a config without its own text_encoder section is valid with text_encoder_from
    const cfgFile = join(root, 'sr.json');
    await writeFile(cfgFile, JSON.stringify(cfg));
    const straight = join(root, 'sr-straight');
    const resumed = join(root, 'sr-resumed');
    expect(await train(['--out', straight, '--config', cfgFile, '--steps', '4', '--batch', '3'])).toBe(0);
    expect(await train(['--out', resumed, '--config', cfgFile, '--steps', '2', '--batch', '3'])).toBe(0);
    expect(
      await train(['--out', resumed, '--config', cfgFile, '--steps', '4', '--batch', '3', '--resume']),
    ).toBe(0);

    // The frozen encoder is saved unchanged; the UNet trained (and identically after resuming).
    const baseText = await tensors(join(base, 'text_encoder', 'model.safetensors'));
    const srText = await tensors(join(straight, 'text_encoder', 'model.safetensors'));
    expect([...srText.keys()].sort()).toEqual([...baseText.keys()].sort());
    for (const [k, v] of baseText) expect(srText.get(k)).toEqual(v);
    const a = await tensors(join(straight, 'unet', 'diffusion_pytorch_model.safetensors'));
    const b = await tensors(join(resumed, 'unet', 'diffusion_pytorch_model.safetensors'));
    for (const [k, v] of a) expect(b.get(k), k).toEqual(v);

    // Sampling: the stage's own encoder is the one that encodes the prompt for stage II.
    const rt = createRuntime({ threads: 1 });
    const basePipe = await loadPipelineFolder(base);
    const srPipe = await loadPipelineFolder(straight);
    const srStage = stageModels(srPipe, rt);
    expect(srStage.text).toBeDefined();
    expect(stageModels(srPipe).text).toBeUndefined();
    let srCalls = 0;
    const inner = srStage.text!.encoder;
    const spy: T5TextEncoder = {
      config: inner.config,
      encode: (ids, mask) => {
        srCalls++;
        return inner.encode(ids, mask);
      },
      release: () => inner.release(),
    };
    srStage.text = { ...srStage.text!, encoder: spy };
    const baseEncoder = (await openTextEncoder(basePipe, rt))!;
    const r = await generateImages(
      rt,
      { encoder: baseEncoder, tokenizer: basePipe.tokenizer!, maxLength: basePipe.maxTextLength },
      stageModels(basePipe),
      srStage,
      { prompt: 'a red square', base: { steps: 2 }, sr: { steps: 2 } },
    );
    expect(srCalls).toBeGreaterThan(0);
    // Trained on 16×16 crops, sampled at the full 32×32.
    expect(r.sr!.shape).toEqual([1, 3, 32, 32]);

    // Variations and inpainting read the prompt with stage II's own encoder too (they used to
    // hand stage II the stage-I embeddings, which have the same width here, so nothing failed).
    const text = { encoder: baseEncoder, tokenizer: basePipe.tokenizer!, maxLength: basePipe.maxTextLength };
    const image = { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3).fill(128) };
    const stages = { base: { steps: 2 }, sr: { steps: 2 } };
    srCalls = 0;
    const v = await varyImages(rt, text, stageModels(basePipe), srStage, {
      prompt: 'a red square',
      image,
      ...stages,
    });
    expect(srCalls).toBeGreaterThan(0);
    expect(v.sr!.shape).toEqual([1, 3, 32, 32]);
    srCalls = 0;
    const mask = { width: 32, height: 32, data: new Uint8Array(32 * 32).fill(255) };
    const ip = await inpaintImages(rt, text, stageModels(basePipe), srStage, {
      prompt: 'a red square',
      image,
      mask,
      ...stages,
    });
    expect(srCalls).toBeGreaterThan(0);
    expect(ip.sr!.shape).toEqual([1, 3, 32, 32]);
    await baseEncoder.release();
    await spy.release();
  }, 120_000);

  it('--crop-size goes on training a run on crops of another size, and the checkpoint keeps it', async () => {
    const cfgFile = join(root, 'sr-crops.json');
    await writeFile(cfgFile, JSON.stringify({ ...tinyTrainConfig('sr', 32, 8), crop_size: 16 }));
    const out = join(root, 'sr-crops');
    const cropOf = async () =>
      (
        JSON.parse(await readFile(join(out, 'checkpoint', 'state.json'), 'utf8')) as {
          config: { crop_size: number };
        }
      ).config.crop_size;
    expect(await train(['--out', out, '--config', cfgFile, '--steps', '2', '--batch', '2'])).toBe(0);
    expect(await cropOf()).toBe(16);
    expect(await train(['--out', out, '--steps', '3', '--batch', '2', '--resume', '--crop-size', '24'])).toBe(
      0,
    );
    expect(await cropOf()).toBe(24);
    expect(await train(['--out', out, '--steps', '4', '--batch', '2', '--resume'])).toBe(0);
    expect(await cropOf()).toBe(24);
    const log = (await readFile(join(out, 'loss.jsonl'), 'utf8')).trim().split('\n');
    expect(log).toHaveLength(4);
    // Crops larger than the image, and crops of a base stage, are refused before training.
    expect(await train(['--out', out, '--steps', '5', '--resume', '--crop-size', '40'])).toBe(2);
    expect(await cropOf()).toBe(24);
    expect(
      await train([
        '--out',
        join(root, 'base-crops'),
        '--resolution',
        '16',
        '--steps',
        '1',
        '--crop-size',
        '8',
      ]),
    ).toBe(2);
    expect(await train(['--out', out, '--steps', '5', '--resume', '--crop-size', '0'])).toBe(2);
  }, 60_000);

  it('a config naming a tokenizer folder (relative to the config file) trains with it and ships it in the pipeline', async () => {
    const dir = join(root, 'recipe');
    await mkdir(join(dir, 'tok'), { recursive: true });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'])
      await copyFile(join(__dirname, '..', '..', 'training', 'word-tokenizer', f), join(dir, 'tok', f));
    const cfg = tinyTrainConfig('base', 16);
    const words = {
      ...cfg,
      tokenizer: { path: 'tok' },
      text_encoder: { ...cfg.text_encoder, vocab_size: 137 },
    };
    await writeFile(join(dir, 'cfg.json'), JSON.stringify(words));
    const out = join(root, 'words');
    expect(
      await train(['--out', out, '--config', join(dir, 'cfg.json'), '--steps', '2', '--batch', '2']),
    ).toBe(0);
    const p = await loadPipelineFolder(out);
    expect(p.tokenizer!.vocabSize).toBe(137);
    // model_index.json names the class transformers loads a word-level tokenizer.json with (it
    // said T5Tokenizer, which fails on a WordLevel vocabulary in diffusers' from_pretrained).
    const index = JSON.parse(await readFile(join(out, 'model_index.json'), 'utf8'));
    expect(index.tokenizer).toEqual(['transformers', 'PreTrainedTokenizerFast']);
    expect(p.tokenizer!.encode('a red circle')).toEqual(
      (await loadTokenizer(join(dir, 'tok'))).encode('a red circle'),
    );
    // A vocabulary larger than the encoder's embedding table is refused before training.
    await writeFile(
      join(dir, 'small.json'),
      JSON.stringify({ ...words, text_encoder: { ...cfg.text_encoder, vocab_size: 100 } }),
    );
    expect(
      await train(['--out', join(root, 'bad'), '--config', join(dir, 'small.json'), '--steps', '1']),
    ).not.toBe(0);
  }, 60_000);

  it('--high-noise-weight-cap changes the objective and the checkpoint keeps it; 0 turns it off', async () => {
    const state = async (out: string) =>
      JSON.parse(await readFile(join(out, 'checkpoint', 'state.json'), 'utf8')) as {
        config: { train: Record<string, unknown> };
      };
    const losses = async (out: string) =>
      (await readFile(join(out, 'loss.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).loss as number);
    const plain = join(root, 'hn-plain');
    const capped = join(root, 'hn-capped');
    const args = ['--resolution', '16', '--steps', '2', '--batch', '2'];
    expect(await train(['--out', plain, ...args])).toBe(0);
    expect(await train(['--out', capped, ...args, '--high-noise-weight-cap', '20'])).toBe(0);
    // Same data, noise and weights at step 1: only the weighting differs.
    expect((await losses(capped))[0]).not.toBeCloseTo((await losses(plain))[0]!, 6);
    expect((await state(capped)).config.train.high_noise_weight_cap).toBe(20);
    expect(await train(['--out', capped, '--steps', '3', '--resume'])).toBe(0);
    expect((await state(capped)).config.train.high_noise_weight_cap).toBe(20);
    expect(await train(['--out', capped, '--steps', '4', '--resume', '--high-noise-weight-cap', '0'])).toBe(
      0,
    );
    expect((await state(capped)).config.train.high_noise_weight_cap).toBeNull();
    for (const bad of ['0.5', 'x', ''])
      expect(await train(['--out', join(root, 'hn-bad'), ...args, '--high-noise-weight-cap', bad])).toBe(2);
  }, 60_000);
});
