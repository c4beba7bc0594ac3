import type { Command } from 'commander';
import { ImagenError } from '../../engine/errors.js';
import { createRuntime } from '../../platform/node/runtime.js';
import { runTextPretraining } from '../../platform/node/text_pretrain_run.js';
import { readTrainConfig } from '../../platform/node/train_config_file.js';
import { runTraining } from '../../platform/node/train_run.js';
import { tinyTrainConfig } from '../../train/config.js';
import { usageError } from '../errors.js';
import { parseNumber } from '../image_flags.js';
import { logger, ProgressBar } from '../progress.js';
import { installStopSignals } from '../stop_signals.js';

interface TrainFlags {
  data: string[];
  out: string;
  config?: string;
  stage: string;
  resolution?: string;
  lowResolution?: string;
  steps?: string;
  batch?: string;
  lr?: string;
  seed?: string;
  resume: boolean;
  cropSize?: string;
  highNoiseWeightCap?: string;
  textLossWeight?: string;
  colorAugment?: string;
  initFrom?: string;
  checkpointEvery: string;
  quiet: boolean;
  json: boolean;
}

function posInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw usageError(`${flag} must be a positive integer, got "${v}"`);
  return n;
}

/** --lr and --seed mean the same on both training paths; each path has its own default. */
function learningRateFlag(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const lr = Number(v);
  if (!(lr > 0 && lr < 1)) throw usageError(`--lr must be a number in (0, 1), got "${v}"`);
  return lr;
}

function seedFlag(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const seed = Number(v);
  if (!Number.isInteger(seed) || seed < 0) throw usageError('--seed must be a non-negative integer');
  return seed;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description(
      'Train a cascade stage (base text→image, or super-resolution) on a folder of captioned images.\n' +
        'The folder holds images plus metadata.jsonl (file_name, text; optionally text_boxes, a list of\n' +
        '[x0, y0, x1, y1] fractions of the image where words are written) — the Hugging Face imagefolder layout —\n' +
        'or image.png + image.txt pairs. OUT becomes a diffusers pipeline folder; OUT/checkpoint holds the exact\n' +
        'resume state (weights, AdamW moments, EMA, RNG, data order), written every --checkpoint-every steps and\n' +
        'on Ctrl-C / SIGTERM. OUT/loss.jsonl logs every step.',
    )
    .requiredOption(
      '--data <dir>',
      'captioned image folder; repeat to train on several (concatenated in the order given, e.g. a mix)',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    )
    .requiredOption('--out <dir>', 'output pipeline folder')
    .option(
      '--config <file>',
      'training config JSON (model configs + hyperparameters); default: a tiny model',
    )
    .option(
      '--stage <stage>',
      'base | sr (used when no --config is given) | text-encoder (pretrain a text encoder on the captions of synth folders, see below)',
      'base',
    )
    .option('--resolution <px>', 'training resolution when no --config is given (default 32 base, 64 sr)')
    .option(
      '--low-resolution <px>',
      'super-resolution input size when no --config is given (default resolution/4)',
    )
    .option('--steps <n>', 'total optimisation steps (overrides the config)')
    .option('--batch <n>', 'batch size (overrides the config)')
    .option('--lr <f>', 'learning rate (overrides the config)')
    .option('--seed <n>', 'random seed (overrides the config)')
    .option(
      '--crop-size <px>',
      'super-resolution: train on random crops of this side (overrides the config; with --resume the run goes on with crops of this size, and keeps them)',
    )
    .option(
      '--high-noise-weight-cap <f>',
      'weigh each example so its x0 error counts as in v-prediction (SNR + 1), at most F times its plain weight: ε-prediction otherwise all but ignores the high-noise steps where layout is decided; 0 = off (overrides the config; kept by --resume)',
    )
    .option(
      '--color-augment <p>',
      'super-resolution: rotate the hue of this share of examples (image and low-res alike, caption dropped), so the stage carries colours it never saw through from its input; 0 = off (overrides the config; kept by --resume)',
    )
    .option(
      '--text-loss-weight <f>',
      "count the pixels inside the data's text boxes (metadata.jsonl text_boxes, written by imagen dataset synth for signs) F times in the loss, so a word's few pixels of strokes weigh more; 1 = off (overrides the config; kept by --resume)",
    )
    .option(
      '--init-from <dir>',
      "start a new run from this pipeline folder's weights (fine-tuning: its UNet and text encoder, and its tokenizer where the config's has the same vocabulary; optimizer and EMA start fresh) instead of random ones",
    )
    .option('--resume', 'continue from OUT/checkpoint, bit-identical to an uninterrupted run', false)
    .option('--checkpoint-every <n>', 'steps between checkpoints', '500')
    .option('--quiet', 'no progress bar or messages', false)
    .option('--json', 'print a JSON summary on stdout at the end', false)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen train --data shapes/ --out my-model --steps 2000\n' +
        '  imagen train --data shapes/ --out my-sr --stage sr --steps 1000\n  imagen train --data shapes/ --out my-model --resume\n' +
        '  imagen train --data shapes/ --data more-relations/ --out my-model --resume   # continue on a mix\n' +
        '  imagen train --data pairs/ --config sr.json --init-from my-sr --out my-sr-ft --color-augment 0.5   # fine-tune\n' +
        '\nText-encoder pretraining (--stage text-encoder): learns, from captions alone, to tell from every word\n' +
        'of a noun phrase what the phrase asks for and where it goes ("a red circle left of a blue square": the\n' +
        "circle's words → left). Reads the scenes in metadata.jsonl of `imagen dataset synth` folders, starts from\n" +
        "--init-from's encoder (or --config's text_encoder and tokenizer), and writes OUT: the --init-from folder\n" +
        'with the encoder replaced. A base stage whose config names text_encoder_from then trains on it frozen:\n' +
        '  imagen train --stage text-encoder --data synth/ --init-from my-model --out my-model-te --steps 3000\n' +
        '  imagen train --data synth/ --config base-frozen-te.json --init-from my-model-te --out my-model-2',
    )
    .action(async (f: TrainFlags) => {
      if (f.stage !== 'base' && f.stage !== 'sr' && f.stage !== 'text-encoder')
        throw usageError(`--stage must be base, sr or text-encoder, got "${f.stage}"`);
      if (f.stage === 'text-encoder') return pretrainTextEncoder(f);
      if (f.initFrom && f.resume)
        throw usageError('--init-from starts a new run from a model; --resume continues a run: give one');
      const say = logger(f.quiet);
      const config = f.config
        ? await readTrainConfig(f.config)
        : tinyTrainConfig(
            f.stage,
            posInt(f.resolution, '--resolution') ?? (f.stage === 'base' ? 32 : 64),
            posInt(f.lowResolution, '--low-resolution'),
          );
      const overrides: Record<string, number> = {};
      const steps = posInt(f.steps, '--steps');
      const batch = posInt(f.batch, '--batch');
      const seed = seedFlag(f.seed);
      const lr = learningRateFlag(f.lr);
      if (steps) overrides.maxSteps = steps;
      if (batch) overrides.batchSize = batch;
      if (seed !== undefined) overrides.seed = seed;
      if (lr !== undefined) overrides.learningRate = lr;
      const signals = installStopSignals(
        say,
        'finishing the current step and writing a checkpoint (press again to abort)',
      );
      const loading = new ProgressBar('load', 'images', { quiet: f.quiet });
      const bar = new ProgressBar('train', 'loss {loss} | {ips} img/s', { quiet: f.quiet });
      let started = false;
      try {
        const r = await runTraining({
          dataDir: f.data,
          outDir: f.out,
          config,
          overrides,
          resume: f.resume,
          cropSize: posInt(f.cropSize, '--crop-size'),
          highNoiseWeightCap: weightCap(f.highNoiseWeightCap),
          colorAugmentProb: parseNumber(f.colorAugment, '--color-augment', 0, 1),
          textLossWeight: parseNumber(f.textLossWeight, '--text-loss-weight', 1, 1000),
          initFrom: f.initFrom,
          checkpointEvery: posInt(f.checkpointEvery, '--checkpoint-every'),
          runtime: createRuntime(),
          stopSignal: signals.stop,
          onMessage: say,
          onLoadProgress: (done, total) => {
            if (done === 1) loading.start(total);
            loading.update(done);
            if (done === total) loading.stop();
          },
          onStep: (s) => {
            if (!started) {
              bar.start(s.maxSteps, s.step - 1, { loss: '-', ips: '-' });
              started = true;
            }
            bar.update(s.step, { loss: s.loss.toFixed(4), ips: s.imagesPerSecond.toFixed(1) });
          },
        });
        bar.stop();
        if (f.json) process.stdout.write(`${JSON.stringify({ out: f.out, ...r })}\n`);
        say(`${r.stoppedEarly ? 'stopped' : 'finished'} at step ${r.step}; pipeline written to ${f.out}`);
        if (r.stoppedEarly) {
          say(
            `resume with: imagen train ${f.data.map((d) => `--data ${d}`).join(' ')} --out ${f.out} --resume`,
          );
          throw Object.assign(new ImagenError('ABORTED', 'training interrupted (checkpoint saved)'), {
            exitCode: 130,
          });
        }
      } finally {
        loading.stop();
        bar.stop();
        signals.dispose();
      }
    });
}

/** `--stage text-encoder`: minutes of work, so a plain loop with a final write (no resume). */
async function pretrainTextEncoder(f: TrainFlags): Promise<void> {
  if (f.resume) throw usageError('--stage text-encoder runs in minutes and has no --resume: run it again');
  const say = logger(f.quiet);
  let textEncoderConfig: Record<string, unknown> | undefined;
  let tokenizerDir: string | undefined;
  if (f.config && !f.initFrom) {
    const cfg = await readTrainConfig(f.config);
    if ('type' in cfg.tokenizer)
      throw usageError('--stage text-encoder needs a tokenizer folder (ByT5 bytes have no words to label)');
    textEncoderConfig = cfg.text_encoder;
    tokenizerDir = cfg.tokenizer.path;
  } else if (!f.initFrom) throw usageError('--stage text-encoder needs --init-from DIR or --config FILE');
  // At 1e-3 the shipped encoder sat on a plateau (loss 1.16 after 3 000 steps); 2e-3 broke through in 1 000.
  const lr = learningRateFlag(f.lr) ?? 2e-3;
  const seed = seedFlag(f.seed) ?? 0;
  const signals = installStopSignals(say, 'writing the encoder as it stands (press again to abort)');
  const bar = new ProgressBar('pretrain', 'loss {loss}', { quiet: f.quiet });
  let started = false;
  try {
    const r = await runTextPretraining({
      dataDir: f.data,
      outDir: f.out,
      initFrom: f.initFrom,
      textEncoderConfig,
      tokenizerDir,
      hp: {
        batchSize: posInt(f.batch, '--batch') ?? 64,
        learningRate: lr,
        warmupSteps: 100,
        maxSteps: posInt(f.steps, '--steps') ?? 3000,
        maxTextLength: 32,
        maxGradNorm: 1,
      },
      seed,
      runtime: createRuntime(),
      stopSignal: signals.stop,
      onMessage: say,
      onStep: (s) => {
        if (!started) bar.start(s.maxSteps, s.step - 1, { loss: '-' });
        started = true;
        bar.update(s.step, { loss: s.loss.toFixed(4) });
      },
    });
    bar.stop();
    if (f.json) process.stdout.write(`${JSON.stringify({ out: f.out, ...r })}\n`);
    say(`${r.stoppedEarly ? 'stopped' : 'finished'} at step ${r.step}; encoder written to ${f.out}`);
  } finally {
    bar.stop();
    signals.dispose();
  }
}

function weightCap(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const cap = Number(v);
  if (v.trim() === '' || !Number.isFinite(cap) || (cap !== 0 && cap < 1))
    throw usageError(`--high-noise-weight-cap must be 0 (off) or a number ≥ 1, got "${v}"`);
  return cap;
}
