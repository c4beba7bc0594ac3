import { appendFile, cp, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Scene } from '../../data/synth/scene.js';
import { ImagenError } from '../../engine/errors.js';
import type { Runtime } from '../../engine/runtime.js';
import { T5Encoder } from '../../models/t5/t5_encoder.js';
import type { TextTokenizer } from '../../text/tokenizer.js';
import { DataOrder } from '../../train/data_order.js';
import {
  type ParseAccuracy,
  type ParsedCaption,
  parseCaption,
  TextEncoderPretrainer,
  type TextPretrainHyperparameters,
} from '../../train/text_encoder_pretrain.js';
import { atomicWriteFile, writeSafetensors } from './files.js';
import { loadTokenizer } from './tokenizer_files.js';
import { loadEncoderForTraining } from './train_run.js';

export interface TextPretrainOptions {
  /** Folders written by `imagen dataset synth` (metadata.jsonl rows carry the scene). */
  dataDir: readonly string[];
  outDir: string;
  /**
   * A pipeline folder: its text encoder is the starting point and its tokenizer is used; the
   * output is a copy of the folder with the encoder replaced, ready for `imagen train --init-from`.
   * Without it, `textEncoderConfig` and `tokenizerDir` describe a fresh encoder.
   */
  initFrom?: string;
  textEncoderConfig?: Record<string, unknown>;
  tokenizerDir?: string;
  hp: TextPretrainHyperparameters;
  seed: number;
  runtime: Runtime;
  stopSignal?: { stop: boolean };
  onMessage?: (m: string) => void;
  onStep?: (s: { step: number; maxSteps: number; loss: number }) => void;
}

export interface TextPretrainResult {
  step: number;
  stoppedEarly: boolean;
  captions: number;
  validation: number;
  before: ParseAccuracy;
  after: ParseAccuracy;
}

/** Every 20th caption is kept aside to measure what the heads learned. */
const VALIDATION_EVERY = 20;

async function readScenes(dir: string): Promise<{ text: string; scene: Scene }[]> {
  const meta = join(dir, 'metadata.jsonl');
  const text = await readFile(meta, 'utf8').catch(() => {
    throw new ImagenError(
      'NOT_FOUND',
      `${dir}: no metadata.jsonl (text-encoder pretraining reads synth folders)`,
    );
  });
  const rows: { text: string; scene: Scene }[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    let r: { text?: unknown; scene?: unknown };
    try {
      r = JSON.parse(line) as typeof r;
    } catch {
      throw new ImagenError('FILE_INVALID', `${meta}:${i + 1}: not valid JSON`);
    }
    if (typeof r.text === 'string' && typeof r.scene === 'object' && r.scene !== null)
      rows.push({ text: r.text, scene: r.scene as Scene });
  }
  if (rows.length === 0)
    throw new ImagenError(
      'FILE_INVALID',
      `${meta}: no rows with a "scene" (text-encoder pretraining needs folders from imagen dataset synth)`,
    );
  return rows;
}

async function openEncoder(o: TextPretrainOptions): Promise<{
  encoder: T5Encoder;
  tokenizer: TextTokenizer;
  configJson: Record<string, unknown>;
  tokenizerDir: string;
}> {
  if (o.initFrom) {
    const encoder = await loadEncoderForTraining(o.initFrom, 'init-from');
    return {
      encoder,
      tokenizer: await loadTokenizer(join(o.initFrom, 'tokenizer')),
      configJson: encoder.configJson,
      tokenizerDir: join(o.initFrom, 'tokenizer'),
    };
  }
  if (!o.textEncoderConfig || !o.tokenizerDir)
    throw new ImagenError(
      'CONFIG_INVALID',
      'text-encoder pretraining needs --init-from or a config with a tokenizer path',
    );
  return {
    encoder: new T5Encoder(o.textEncoderConfig).initialize(o.seed),
    tokenizer: await loadTokenizer(o.tokenizerDir),
    configJson: o.textEncoderConfig,
    tokenizerDir: o.tokenizerDir,
  };
}

/**
 * Pretrain a text encoder on the captions of synth folders (text_encoder_pretrain.ts) and write
 * it as a pipeline folder. Minutes of work, so no resumable checkpoint: an interrupt writes the
 * encoder as it stands, and a rerun starts over.
 */
export async function runTextPretraining(o: TextPretrainOptions): Promise<TextPretrainResult> {
  const say = o.onMessage ?? (() => {});
  await checkOutDir(o.outDir);
  const { encoder, tokenizer, configJson, tokenizerDir } = await openEncoder(o);
  const train: ParsedCaption[] = [];
  const validation: ParsedCaption[] = [];
  let rows = 0;
  for (const dir of o.dataDir) {
    for (const r of await readScenes(dir)) {
      const p = parseCaption(tokenizer, r.text, r.scene, o.hp.maxTextLength);
      if (p) (rows++ % VALIDATION_EVERY === VALIDATION_EVERY - 1 ? validation : train).push(p);
    }
  }
  if (train.length < o.hp.batchSize || validation.length < o.hp.batchSize)
    throw new ImagenError(
      'BAD_INPUT',
      `only ${rows} captions could be labelled word by word (need ≥ ${o.hp.batchSize * VALIDATION_EVERY}); a tokenizer that merges across spaces cannot be pretrained this way`,
    );
  say(`${train.length} captions to train on, ${validation.length} kept aside`);
  const trainer = new TextEncoderPretrainer(o.runtime, encoder, tokenizer, o.hp, o.seed);
  const order = new DataOrder(train.length, o.seed);
  try {
    const before = await trainer.accuracy(validation);
    say(`before: ${formatAccuracy(before)}`);
    await mkdir(o.outDir, { recursive: true });
    const log = join(o.outDir, 'text_pretrain_loss.jsonl');
    await rm(log, { force: true });
    let lines: string[] = [];
    while (trainer.step < o.hp.maxSteps && !o.stopSignal?.stop) {
      const batch = order.next(o.hp.batchSize).map((i) => train[i]!);
      const s = await trainer.trainStep(batch);
      lines.push(JSON.stringify(s));
      if (lines.length >= 100) {
        await appendFile(log, `${lines.join('\n')}\n`);
        lines = [];
      }
      o.onStep?.({ step: s.step, maxSteps: o.hp.maxSteps, loss: s.loss });
    }
    if (lines.length) await appendFile(log, `${lines.join('\n')}\n`);
    const after = await trainer.accuracy(validation);
    say(`after ${trainer.step} steps: ${formatAccuracy(after)}`);
    const result = {
      step: trainer.step,
      stoppedEarly: trainer.step < o.hp.maxSteps,
      captions: train.length,
      validation: validation.length,
      before,
      after,
    };
    await writeEncoderFolder(o, encoder, configJson, tokenizerDir, result);
    return result;
  } finally {
    await trainer.release();
  }
}

export function formatAccuracy(a: ParseAccuracy): string {
  const heads = Object.entries(a.perHead).map(([k, v]) => `${k} ${v.toFixed(3)}`);
  return `${heads.join(', ')}, identity ${a.identity.toFixed(3)}`;
}

/** OUT is replaced at the end: refuse a folder that holds anything but an earlier output of this. */
async function checkOutDir(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => undefined);
  if (!entries || entries.length === 0) return;
  if (
    entries.includes('text_encoder_pretrain.json') ||
    (entries.length === 1 && entries[0] === 'text_pretrain_loss.jsonl')
  )
    return;
  throw new ImagenError(
    'BAD_INPUT',
    `${dir} exists and is not the output of an earlier text-encoder pretraining: give a new --out folder`,
  );
}

/** Staged in a sibling folder and renamed in, so OUT is either the old folder or the whole new one. */
async function writeEncoderFolder(
  o: TextPretrainOptions,
  encoder: T5Encoder,
  configJson: Record<string, unknown>,
  tokenizerDir: string,
  result: TextPretrainResult,
): Promise<void> {
  const tmp = `${o.outDir.replace(/\/+$/, '')}.tmp-text-encoder`;
  await rm(tmp, { recursive: true, force: true });
  if (o.initFrom) {
    await cp(o.initFrom, tmp, { recursive: true });
    await rm(join(tmp, 'text_encoder'), { recursive: true, force: true });
  }
  await mkdir(join(tmp, 'text_encoder'), { recursive: true });
  await atomicWriteFile(join(tmp, 'text_encoder', 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);
  await writeSafetensors(join(tmp, 'text_encoder', 'model.safetensors'), encoder.stateDict(), {
    format: 'pt',
  });
  if (!o.initFrom) await cp(tokenizerDir, join(tmp, 'tokenizer'), { recursive: true });
  await atomicWriteFile(join(tmp, 'text_encoder_pretrain.json'), `${JSON.stringify(result, null, 2)}\n`);
  for (const f of await readdir(o.outDir).catch(() => [] as string[]))
    if (f === 'text_pretrain_loss.jsonl') await rename(join(o.outDir, f), join(tmp, f));
  await rm(o.outDir, { recursive: true, force: true });
  await rename(tmp, o.outDir);
}
