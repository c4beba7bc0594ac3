import { appendFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Generator } from '../../diffusion/noise.js';
import { makeSchedule, parseSchedulerConfig } from '../../diffusion/schedule.js';
import { ImagenError } from '../../engine/errors.js';
import { NDArray } from '../../engine/ndarray.js';
import type { Parameter } from '../../engine/parameter.js';
import type { Runtime } from '../../engine/runtime.js';
import { T5Encoder } from '../../models/t5/t5_encoder.js';
import { UNet2DConditionModel } from '../../models/unet/unet.js';
import type { Module } from '../../nn/module.js';
import { ByT5Tokenizer } from '../../text/byt5.js';
import type { TextTokenizer } from '../../text/tokenizer.js';
import { hyperparameters, parseTrainConfig, type TrainConfig } from '../../train/config.js';
import { DataOrder } from '../../train/data_order.js';
import { EMA_STEP_KEY } from '../../train/ema.js';
import { DiffusionTrainer, type StepStats, type TrainHyperparameters } from '../../train/trainer.js';
import { readJson } from './config.js';
import { ImageDataset } from './dataset.js';
import { atomicWriteFile, openCheckpoint, openSafetensors, writeSafetensors } from './files.js';
import { savePipelineFolder } from './pipeline_folder.js';
import { loadT5EncoderModule } from './t5_loader.js';
import { loadTokenizer } from './tokenizer_files.js';

export interface TrainRunOptions {
  /** Captioned image folders, concatenated in this order (one folder or several). */
  dataDir: string | readonly string[];
  outDir: string;
  config: TrainConfig;
  /** Overrides of the config's hyperparameters (CLI flags). */
  overrides?: Partial<TrainHyperparameters>;
  resume?: boolean;
  /**
   * Super-resolution: the crop side, over the config's (or, resuming, the run's) — e.g. to go on
   * training a stage on bigger crops. Kept in the checkpoint, so a later resume keeps it.
   */
  cropSize?: number;
  /**
   * DiffusionLossOptions.highNoiseWeightCap over the config's (or the run's); 0 turns it off.
   * Kept in the checkpoint like `cropSize`: the objective is part of what the run is.
   */
  highNoiseWeightCap?: number;
  /** Share of super-resolution examples with rotated hues (color_augment.ts); kept like `cropSize`. */
  colorAugmentProb?: number;
  /** How many times text-box pixels count in the loss (text_region.ts; 1 = off); kept like `cropSize`. */
  textLossWeight?: number;
  /**
   * A new run starts from this pipeline folder's weights (fine-tuning) instead of random ones: its
   * UNet (config and weights) and its text encoder (trained on with the UNet, or the frozen encoder
   * of a stage whose config names `text_encoder_from`). AdamW and EMA start fresh.
   */
  initFrom?: string;
  checkpointEvery?: number;
  runtime: Runtime;
  onStep?: (s: StepStats & { imagesPerSecond: number; maxSteps: number }) => void;
  onMessage?: (msg: string) => void;
  /** Images decoded so far while the data loads (minutes for a few hundred thousand files). */
  onLoadProgress?: (done: number, total: number) => void;
  /** Set to request a clean stop (SIGINT/SIGTERM): the current step finishes, a checkpoint is written. */
  stopSignal?: { stop: boolean };
}

export interface TrainRunResult {
  step: number;
  stoppedEarly: boolean;
  lastLoss: number | undefined;
}

const CKPT = 'checkpoint';
const CKPT_TMP = '.checkpoint-tmp';
const CKPT_OLD = '.checkpoint-old';

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function buildTokenizer(cfg: TrainConfig): Promise<TextTokenizer> {
  return 'type' in cfg.tokenizer ? new ByT5Tokenizer() : loadTokenizer(cfg.tokenizer.path);
}

/**
 * Everything needed to continue training exactly where it stopped, written to a staging folder;
 * `promoteCheckpoint` makes it the current one.
 */
async function writeCheckpoint(
  dir: string,
  trainer: DiffusionTrainer,
  order: DataOrder,
  cfg: TrainConfig,
): Promise<void> {
  const tmp = join(dir, CKPT_TMP);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const params: Record<string, NDArray> = {};
  for (const p of trainer.params) params[p.name] = p.value!;
  const meta = { step: String(trainer.step) };
  await writeSafetensors(join(tmp, 'model.safetensors'), params, meta);
  await writeSafetensors(join(tmp, 'optimizer.safetensors'), trainer.optimizer.stateDict(), meta);
  await writeSafetensors(join(tmp, 'ema.safetensors'), trainer.ema.stateDict(), meta);
  await atomicWriteFile(
    join(tmp, 'state.json'),
    JSON.stringify(
      { step: trainer.step, generator: trainer.generator.state(), data_order: order.state, config: cfg },
      null,
      2,
    ),
  );
}

/** Swap the staged checkpoint in, so that some complete checkpoint exists at every instant. */
async function promoteCheckpoint(dir: string): Promise<void> {
  const tmp = join(dir, CKPT_TMP);
  const cur = join(dir, CKPT);
  const old = join(dir, CKPT_OLD);
  await rm(old, { recursive: true, force: true });
  if (await exists(cur)) await rename(cur, old);
  await rename(tmp, cur);
  await rm(old, { recursive: true, force: true });
}

async function saveCheckpoint(
  dir: string,
  trainer: DiffusionTrainer,
  order: DataOrder,
  cfg: TrainConfig,
): Promise<void> {
  await writeCheckpoint(dir, trainer, order, cfg);
  await promoteCheckpoint(dir);
}

async function findCheckpoint(dir: string): Promise<string | undefined> {
  for (const name of [CKPT, CKPT_OLD]) {
    const p = join(dir, name);
    if (await exists(join(p, 'state.json'))) return p;
  }
  return undefined;
}

async function loadAll(path: string): Promise<Record<string, NDArray>> {
  const st = await openSafetensors(path);
  try {
    const out: Record<string, NDArray> = {};
    for (const k of st.keys()) out[k] = await st.get(k);
    return out;
  } finally {
    await st.close();
  }
}

/** Keep only log lines up to `step` (a resumed run rewrites the steps after its checkpoint). */
async function truncateLog(path: string, step: number): Promise<void> {
  if (!(await exists(path))) return;
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => {
    if (!l.trim()) return false;
    try {
      return (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false;
    }
  });
  await atomicWriteFile(path, lines.map((l) => `${l}\n`).join(''));
}

/** The files of a tokenizer folder, copied into the pipeline so that it loads on its own. */
async function tokenizerFiles(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const name of await readdir(dir)) {
    if (['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'spiece.model'].includes(name))
      out[name] = new Uint8Array(await readFile(join(dir, name)));
  }
  return out;
}

/** Every parameter takes its checkpointed value; a missing one is an error naming it. */
function setFromCheckpoint(params: readonly Parameter[], values: Record<string, NDArray>): void {
  for (const p of params) {
    const v = values[p.name];
    if (!v) throw new ImagenError('WEIGHTS_MISMATCH', `checkpoint lacks ${p.name}`);
    p.set(v);
  }
}

/** The pipeline folder of a training run: the EMA weights where tracked, current values elsewhere. */
async function writeTrainedPipeline(
  dir: string,
  cfg: TrainConfig,
  maxTextLength: number,
  unet: UNet2DConditionModel,
  textEncoder: T5Encoder,
  weights: Map<string, NDArray>,
): Promise<void> {
  await savePipelineFolder(dir, {
    stage: cfg.stage,
    unet,
    weights,
    textEncoder: { module: textEncoder, configJson: cfg.text_encoder },
    tokenizer:
      'type' in cfg.tokenizer
        ? { type: 'byt5', maxLength: maxTextLength }
        : { files: await tokenizerFiles(cfg.tokenizer.path) },
    scheduler: cfg.scheduler,
    imageNoisingScheduler: cfg.image_noising_scheduler,
  });
}

/**
 * Write the pipeline folder of `runDir`'s latest checkpoint to `dest` while the run goes on (for
 * evaluating a learning curve). The checkpoint is read file by file; a checkpoint promoted in the
 * middle is detected by its step and the read retried.
 */
export async function exportCheckpoint(runDir: string, dest: string): Promise<{ step: number }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const dir = await findCheckpoint(runDir);
      if (!dir) throw new ImagenError('NOT_FOUND', `${runDir}: no checkpoint`);
      const state = (await readJson(join(dir, 'state.json'))) as { step: number; config: TrainConfig };
      const model = await loadAll(join(dir, 'model.safetensors'));
      const ema = await loadAll(join(dir, 'ema.safetensors'));
      const after = (await readJson(join(dir, 'state.json'))) as { step: number };
      if (after.step !== state.step)
        throw new ImagenError('FILE_INVALID', 'checkpoint replaced while reading');
      const cfg = state.config;
      const unet = new UNet2DConditionModel(cfg.unet);
      const textEncoder = new T5Encoder(cfg.text_encoder);
      setFromCheckpoint([...unet.parameters(), ...textEncoder.parameters()], model);
      const weights = new Map<string, NDArray>();
      for (const [k, v] of Object.entries(ema)) if (k !== EMA_STEP_KEY) weights.set(k, v);
      const hp = hyperparameters(cfg);
      await writeTrainedPipeline(dest, cfg, hp.maxTextLength, unet, textEncoder, weights);
      return { step: state.step };
    } catch (e) {
      // A promotion renames folders under our feet: files vanish (ENOENT) or change; try again.
      if (e instanceof ImagenError && e.code !== 'NOT_FOUND' && e.code !== 'FILE_INVALID') throw e;
      if (attempt === 4) throw e;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  throw new ImagenError('NOT_FOUND', `${runDir}: no readable checkpoint`);
}

/** The trained text encoder of `cfg.text_encoder_from`, checked against the config's tokenizer. */
async function loadFrozenEncoder(
  cfg: TrainConfig,
): Promise<T5Encoder & { configJson: Record<string, unknown> }> {
  const dir = cfg.text_encoder_from!;
  const encoder = await loadEncoderForTraining(dir, 'text_encoder_from');
  const folderTokenizer = await loadTokenizer(join(dir, 'tokenizer')).catch(() => undefined);
  const own = await buildTokenizer(cfg);
  if (
    !folderTokenizer ||
    folderTokenizer.constructor !== own.constructor ||
    folderTokenizer.vocabSize !== own.vocabSize
  ) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `text_encoder_from: ${dir}/tokenizer is missing or differs from this config's tokenizer`,
    );
  }
  return encoder;
}

/**
 * `dir`'s text encoder as float32 training values, with its config.json; `label` names the flag or
 * key that pointed there, for the error when the folder has none.
 */
export async function loadEncoderForTraining(
  dir: string,
  label: string,
): Promise<T5Encoder & { configJson: Record<string, unknown> }> {
  const teDir = join(dir, 'text_encoder');
  if (!(await exists(join(teDir, 'config.json'))))
    throw new ImagenError('NOT_FOUND', `${label}: ${dir} has no text_encoder/config.json`);
  const module = await loadT5EncoderModule(teDir);
  toFloat32(module.parameters());
  return Object.assign(module, {
    configJson: (await readJson(join(teDir, 'config.json'))) as Record<string, unknown>,
  });
}

/**
 * `cfg` reading captions with the tokenizer in `dir` where that is the config's tokenizer (the same
 * vocabulary model) with its own pre- or post-processing, such as a normalizer: the folder's encoder
 * was trained on captions read that way. A config naming a tokenizer with another vocabulary swaps
 * it on purpose (the twentieth chunk's spelled recipe), so that one stays.
 */
async function withFolderTokenizer(cfg: TrainConfig, dir: string): Promise<TrainConfig> {
  if ('type' in cfg.tokenizer) return cfg;
  const own = join(dir, 'tokenizer.json');
  const configured = join(cfg.tokenizer.path, 'tokenizer.json');
  if (!(await exists(own)) || !(await exists(configured))) return cfg;
  const [a, b] = await Promise.all([readJson(own), readJson(configured)]);
  const sameModel =
    JSON.stringify((a as { model?: unknown }).model) === JSON.stringify((b as { model?: unknown }).model);
  return sameModel ? { ...cfg, tokenizer: { path: dir } } : cfg;
}

/**
 * The run's config with `dir`'s UNet config, text encoder and tokenizer in place of the file's: the weights
 * loaded next must fit. A stage with a frozen encoder takes the folder's own encoder as that.
 */
async function configFromPipeline(cfg: TrainConfig, dir: string): Promise<TrainConfig> {
  if (!(await exists(join(dir, 'unet', 'config.json'))))
    throw new ImagenError('NOT_FOUND', `init-from: ${dir} has no unet/config.json (not a pipeline folder)`);
  const unet = (await readJson(join(dir, 'unet', 'config.json'))) as Record<string, unknown>;
  cfg = await withFolderTokenizer(cfg, join(dir, 'tokenizer'));
  if (cfg.text_encoder_from) return { ...cfg, unet, text_encoder_from: dir };
  const te = join(dir, 'text_encoder', 'config.json');
  if (!(await exists(te)))
    throw new ImagenError('NOT_FOUND', `init-from: ${dir} has no text_encoder/config.json`);
  return { ...cfg, unet, text_encoder: (await readJson(te)) as Record<string, unknown> };
}

/** Load a model folder's weights (fp32 or fp16 file) into `module` as float32 training values. */
async function loadTrainableWeights(module: Module, dir: string): Promise<void> {
  const open = async () => {
    try {
      return await openCheckpoint(dir);
    } catch (e) {
      if (e instanceof ImagenError && e.code === 'NOT_FOUND') return openCheckpoint(dir, { variant: 'fp16' });
      throw e;
    }
  };
  const ckpt = await open();
  try {
    await module.loadStateDict(ckpt);
  } catch (e) {
    throw new ImagenError('WEIGHTS_MISMATCH', `init-from ${dir}: ${(e as Error).message}`, { cause: e });
  } finally {
    await ckpt.close();
  }
  toFloat32(module.parameters());
}

/** Training keeps float32 values: AdamW updates them in place, and the graph feeds them as float32. */
function toFloat32(params: readonly Parameter[]): void {
  for (const p of params) if (p.value && p.value.dtype !== 'float32') p.set(p.value.toFloat32());
}

/**
 * Train one cascade stage on a captioned image folder, writing a diffusers pipeline folder to
 * `outDir` plus `outDir/checkpoint` (exact resume state) every `checkpointEvery` steps, on stop
 * requests, and at the end. A non-finite loss stops the run with the last good checkpoint kept.
 */
export async function runTraining(o: TrainRunOptions): Promise<TrainRunResult> {
  const say = o.onMessage ?? (() => {});
  let cfg = o.config;
  let state: { step: number; generator: string; data_order: { epoch: number; position: number } } | undefined;
  let ckptDir: string | undefined;
  if (o.resume) {
    ckptDir = await findCheckpoint(o.outDir);
    if (!ckptDir) throw new ImagenError('NOT_FOUND', `${o.outDir}: no checkpoint to resume from`);
    const s = (await readJson(join(ckptDir, 'state.json'))) as typeof state & { config: TrainConfig };
    state = s;
    cfg = s.config; // the run continues with the configuration it started with
  }
  if (o.cropSize !== undefined) cfg = parseTrainConfig({ ...cfg, crop_size: o.cropSize }, '--crop-size');
  if (o.highNoiseWeightCap !== undefined) {
    const cap = o.highNoiseWeightCap === 0 ? null : o.highNoiseWeightCap;
    cfg = { ...cfg, train: { ...cfg.train, high_noise_weight_cap: cap } };
  }
  if (o.colorAugmentProb !== undefined)
    cfg = { ...cfg, train: { ...cfg.train, color_augment_prob: o.colorAugmentProb } };
  if (o.textLossWeight !== undefined)
    cfg = { ...cfg, train: { ...cfg.train, text_loss_weight: o.textLossWeight } };
  if (o.initFrom) {
    if (state)
      throw new ImagenError('BAD_INPUT', 'init-from starts a new run; a resumed run keeps its own weights');
    cfg = await configFromPipeline(cfg, o.initFrom);
  }
  let frozenEncoder: (T5Encoder & { configJson: Record<string, unknown> }) | undefined;
  if (cfg.text_encoder_from && !state) {
    frozenEncoder = await loadFrozenEncoder(cfg);
    cfg = { ...cfg, text_encoder: frozenEncoder.configJson };
  }
  const hp = { ...hyperparameters(cfg), ...o.overrides };
  if (cfg.text_encoder_from) hp.trainTextEncoder = false;
  const unet = new UNet2DConditionModel(cfg.unet);
  const textEncoder = frozenEncoder ?? new T5Encoder(cfg.text_encoder);
  const tokenizer = await buildTokenizer(cfg);
  if (tokenizer.vocabSize > textEncoder.config.vocabSize) {
    throw new ImagenError(
      'CONFIG_INVALID',
      `tokenizer has ${tokenizer.vocabSize} tokens but the text encoder embeds only ${textEncoder.config.vocabSize}`,
    );
  }
  const schedule = makeSchedule(parseSchedulerConfig(cfg.scheduler));
  const noising =
    cfg.stage === 'sr' ? makeSchedule(parseSchedulerConfig(cfg.image_noising_scheduler ?? {})) : undefined;
  unet.initialize(hp.seed);
  if (!frozenEncoder) textEncoder.initialize(hp.seed + 1);
  if (o.initFrom) {
    await loadTrainableWeights(unet, join(o.initFrom, 'unet'));
    if (!frozenEncoder) await loadTrainableWeights(textEncoder, join(o.initFrom, 'text_encoder'));
    say(`initialised from ${o.initFrom}`);
  }
  const data = await ImageDataset.load(
    o.dataDir,
    cfg.resolution,
    cfg.stage === 'sr' ? cfg.low_resolution : undefined,
    o.onLoadProgress,
    cfg.crop_size,
  );
  say(`loaded ${data.length} captioned images from ${[o.dataDir].flat().join(', ')}`);
  if (hp.textLossWeight !== 1) {
    const boxed = data.entries.filter((e) => e.textBoxes?.length).length;
    // Not an error: a mix may hold folders without words, but none at all is surely a mistake.
    if (boxed === 0)
      throw new ImagenError(
        'CONFIG_INVALID',
        'text_loss_weight needs images with text_boxes in metadata.jsonl (imagen dataset synth writes them for signs)',
      );
    say(`text_loss_weight ${hp.textLossWeight}: ${boxed} of ${data.length} images have text boxes`);
  }
  const trainer = new DiffusionTrainer(
    o.runtime,
    { unet, textEncoder, tokenizer, schedule, imageNoisingSchedule: noising },
    hp,
  );
  const order = new DataOrder(data.length, hp.seed);

  if (state && ckptDir) {
    setFromCheckpoint(trainer.params, await loadAll(join(ckptDir, 'model.safetensors')));
    trainer.optimizer.loadStateDict(await loadAll(join(ckptDir, 'optimizer.safetensors')));
    trainer.ema.loadStateDict(await loadAll(join(ckptDir, 'ema.safetensors')));
    trainer.generator = Generator.fromState(state.generator);
    trainer.step = state.step;
    order.restore(state.data_order);
    await truncateLog(join(o.outDir, 'loss.jsonl'), state.step);
    say(`resumed from step ${state.step}`);
  } else {
    await mkdir(o.outDir, { recursive: true });
    await atomicWriteFile(join(o.outDir, 'loss.jsonl'), '');
  }

  const savePipeline = async () => {
    const ema = new Map<string, NDArray>();
    for (const p of trainer.ema.params)
      ema.set(p.name, new NDArray('float32', p.shape, trainer.ema.shadow(p)));
    await writeTrainedPipeline(o.outDir, cfg, hp.maxTextLength, unet, textEncoder, ema);
  };
  const every = o.checkpointEvery ?? 500;
  let lastLoss: number | undefined;
  // Step of the checkpoint on disk (the one resumed from, if any).
  let lastGood: number | undefined = state ? trainer.step : undefined;
  // A periodic checkpoint is staged when written and promoted only once the next step's loss,
  // computed from exactly its weights, is finite: an update can leave finite but useless
  // weights (lr far too high), and the step that produced them still reported a finite loss.
  let staged: number | undefined;
  let stoppedEarly = false;
  const t0 = performance.now();
  const startStep = trainer.step;
  try {
    while (trainer.step < hp.maxSteps) {
      if (o.stopSignal?.stop) {
        stoppedEarly = true;
        break;
      }
      const indices = order.next(hp.batchSize);
      // Crop offsets come from the trainer's generator, whose state the checkpoint keeps.
      const offsets = cfg.crop_size
        ? indices.map(() => {
            const span = cfg.resolution - cfg.crop_size! + 1;
            const g = trainer.generator;
            return [Math.floor(g.uniform() * span), Math.floor(g.uniform() * span)] as const;
          })
        : undefined;
      const batch = data.batch(indices, offsets);
      const s = await trainer.trainStep(batch);
      if (staged !== undefined) {
        await promoteCheckpoint(o.outDir);
        lastGood = staged;
        staged = undefined;
      }
      lastLoss = s.loss;
      const elapsed = (performance.now() - t0) / 1000;
      const ips = ((trainer.step - startStep) * hp.batchSize) / Math.max(elapsed, 1e-9);
      await appendFile(
        join(o.outDir, 'loss.jsonl'),
        `${JSON.stringify({ step: s.step, loss: s.loss, grad_norm: s.gradNorm, lr: s.lr, images_per_s: ips })}\n`,
      );
      o.onStep?.({ ...s, imagesPerSecond: ips, maxSteps: hp.maxSteps });
      // The final step is checkpointed after the loop.
      if (trainer.step % every === 0 && trainer.step < hp.maxSteps) {
        await writeCheckpoint(o.outDir, trainer, order, cfg);
        staged = trainer.step;
      }
    }
  } catch (e) {
    if (e instanceof ImagenError && e.code === 'RUNTIME_FAILED') {
      await rm(join(o.outDir, CKPT_TMP), { recursive: true, force: true });
      const discarded =
        staged !== undefined ? ` (the one written at step ${staged} led to it and was discarded)` : '';
      const kept =
        lastGood !== undefined
          ? `The last good checkpoint (step ${lastGood}) is kept in ${join(o.outDir, CKPT)}${discarded}; ` +
            'resume from it with --resume and a lower --lr'
          : `No good checkpoint was written before it${discarded}; lower the learning rate and start again`;
      throw new ImagenError('RUNTIME_FAILED', `${e.message}; training stopped. ${kept}`);
    }
    throw e;
  } finally {
    await trainer.release();
  }
  await saveCheckpoint(o.outDir, trainer, order, cfg);
  await savePipeline();
  return { step: trainer.step, stoppedEarly, lastLoss };
}
