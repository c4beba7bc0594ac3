/**
 * Tiny random IF-shaped pipeline folders for end-to-end tests: a 16×16 stage I (text_encoder,
 * tokenizer, unet, scheduler) and a 32×32 stage II (unet, scheduler, image_noising_scheduler; no
 * text encoder, as DeepFloyd's IF-II folders). Written with `savePipelineFolder`, so the tests load
 * them through the same code path as real checkpoints.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { T5Encoder } from '../../src/models/t5/t5_encoder.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet.js';
import { savePipelineFolder } from '../../src/platform/node/pipeline_folder.js';
import { ifSchedulerConfig, tinyTextEncoderConfig, tinyUNetConfig } from '../../src/train/config.js';
import { perturb } from './random.js';

export const TINY_BASE_SIZE = 16;
export const TINY_SR_SIZE = 32;
export const TINY_TEXT_LENGTH = 16;

export interface TinyIfFolders {
  root: string;
  base: string;
  sr: string;
  /** Stage II with its own text_encoder/ + tokenizer/ (what `imagen upscale` can use alone). */
  srWithText: string;
  /** An Imagen-style third stage: an IF super-resolution UNet 32 → 64 (`--sr3-model`). */
  sr3: string;
  cleanup(): void;
}

function textEncoder(seed: number) {
  const configJson = tinyTextEncoderConfig(64, 1);
  const module = new T5Encoder(configJson).initialize(seed);
  perturb(module, seed + 100);
  return { module, configJson };
}

/** Build the three folders in a fresh temp dir (about a second). */
export async function buildTinyIfFolders(): Promise<TinyIfFolders> {
  const root = mkdtempSync(join(tmpdir(), 'tiny-if-'));
  const textDim = 64;
  const baseUNet = new UNet2DConditionModel(
    tinyUNetConfig({ stage: 'base', size: TINY_BASE_SIZE, channels: [32, 32], textDim }),
  ).initialize(1);
  perturb(baseUNet, 11);
  const srUNet = new UNet2DConditionModel(
    tinyUNetConfig({ stage: 'sr', size: TINY_SR_SIZE, channels: [32, 32], textDim }),
  ).initialize(2);
  perturb(srUNet, 12);
  const tokenizer = { type: 'byt5' as const, maxLength: TINY_TEXT_LENGTH };
  const text = textEncoder(3);
  const base = join(root, 'if-i');
  const sr = join(root, 'if-ii');
  const srWithText = join(root, 'if-ii-text');
  await savePipelineFolder(base, {
    stage: 'base',
    unet: baseUNet,
    textEncoder: text,
    tokenizer,
    scheduler: ifSchedulerConfig(1.5),
  });
  const noising = { _class_name: 'DDPMScheduler', beta_schedule: 'squaredcos_cap_v2' };
  await savePipelineFolder(sr, {
    stage: 'sr',
    unet: srUNet,
    scheduler: ifSchedulerConfig(1.0),
    imageNoisingScheduler: noising,
  });
  await savePipelineFolder(srWithText, {
    stage: 'sr',
    unet: srUNet,
    textEncoder: text,
    tokenizer,
    scheduler: ifSchedulerConfig(1.0),
    imageNoisingScheduler: noising,
  });
  const sr3UNet = new UNet2DConditionModel(
    tinyUNetConfig({ stage: 'sr', size: 2 * TINY_SR_SIZE, channels: [32, 32], textDim }),
  ).initialize(4);
  perturb(sr3UNet, 13);
  const sr3 = join(root, 'if-iii');
  await savePipelineFolder(sr3, {
    stage: 'sr',
    unet: sr3UNet,
    scheduler: ifSchedulerConfig(1.0),
    imageNoisingScheduler: noising,
  });
  return { root, base, sr, srWithText, sr3, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** A deterministic test picture: smooth gradients plus a square, so resizes are visible. */
export function testPicture(
  width: number,
  height: number,
): { width: number; height: number; data: Uint8Array } {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      const inSquare = x > width / 4 && x < (3 * width) / 4 && y > height / 4 && y < (3 * height) / 4;
      data[o] = Math.round((255 * x) / Math.max(1, width - 1));
      data[o + 1] = Math.round((255 * y) / Math.max(1, height - 1));
      data[o + 2] = inSquare ? 230 : 40;
    }
  }
  return { width, height, data };
}
