/**
 * A tiny random `stable-diffusion-x4-upscaler`-shaped folder for end-to-end tests: the fixture
 * set's tiny unet/, vae/, text_encoder/ and scheduler configs (../shared/fixtures/sd-x4-upscaler,
 * copied into a temp dir at test time, never into the repo) plus a byte-level CLIP tokenizer
 * (vocab.json + merges.txt) whose specials sit inside the tiny encoder's 1000-token embedding.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesToUnicode } from '../../src/text/clip_tokenizer.js';
import { fixture } from './fixtures.js';

export const SDX4_FIXTURE = fixture('sd-x4-upscaler');

export interface TinySdx4Folder {
  root: string;
  /** The complete folder. */
  dir: string;
  /** The same folder without vae/. */
  noVae: string;
  cleanup(): void;
}

function copyComponent(from: string, to: string, files: string[]): void {
  mkdirSync(to, { recursive: true });
  for (const f of files) copyFileSync(join(from, f), join(to, f));
}

function writeTinySdx4(src: string, dir: string, withVae: boolean): void {
  copyComponent(join(src, 'unet'), join(dir, 'unet'), ['config.json', 'diffusion_pytorch_model.safetensors']);
  if (withVae)
    copyComponent(join(src, 'vae'), join(dir, 'vae'), ['config.json', 'diffusion_pytorch_model.safetensors']);
  copyComponent(join(src, 'text_encoder'), join(dir, 'text_encoder'), ['config.json', 'model.safetensors']);
  const loop = join(src, 'pipeline-loop');
  copyComponent(join(loop, 'scheduler'), join(dir, 'scheduler'), ['scheduler_config.json']);
  copyComponent(join(loop, 'low_res_scheduler'), join(dir, 'low_res_scheduler'), ['scheduler_config.json']);
  copyFileSync(join(loop, 'model_index.json'), join(dir, 'model_index.json'));
  // Byte-level base vocabulary (no merges), CLIP's order, specials at 998/999 (< vocab_size 1000).
  const chars = [...bytesToUnicode()].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => {
    vocab[c] = i;
    vocab[`${c}</w>`] = 256 + i;
  });
  vocab['<|startoftext|>'] = 998;
  vocab['<|endoftext|>'] = 999;
  const tok = join(dir, 'tokenizer');
  mkdirSync(tok, { recursive: true });
  writeFileSync(join(tok, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(tok, 'merges.txt'), '#version: 0.2\n');
  writeFileSync(
    join(tok, 'tokenizer_config.json'),
    JSON.stringify({
      tokenizer_class: 'CLIPTokenizer',
      model_max_length: 77,
      bos_token: '<|startoftext|>',
      eos_token: '<|endoftext|>',
      unk_token: '<|endoftext|>',
      pad_token: '!',
    }),
  );
}

/** Build the folders in a fresh temp dir; undefined when the fixtures are absent. */
export function buildTinySdx4Folder(): TinySdx4Folder | undefined {
  if (!SDX4_FIXTURE) return undefined;
  const root = mkdtempSync(join(tmpdir(), 'tiny-sdx4-'));
  const dir = join(root, 'sdx4');
  const noVae = join(root, 'sdx4-no-vae');
  writeTinySdx4(SDX4_FIXTURE, dir, true);
  writeTinySdx4(SDX4_FIXTURE, noVae, false);
  return { root, dir, noVae, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
