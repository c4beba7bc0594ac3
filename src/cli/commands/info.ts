import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, totalmem } from 'node:os';
import type { Command } from 'commander';
import { shapeStr } from '../../engine/ndarray.js';
import { openSafetensors } from '../../platform/node/files.js';
import { shippedModel } from '../../platform/node/shipped_model.js';
import { VERSION } from '../version.js';

function ortVersion(): string {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description(
      "Print the versions, the machine and the shipped model's card; given a .safetensors file, the tensors it holds.",
    )
    .argument('[file]', 'a .safetensors file to list')
    .option('--json', 'machine-readable output', false)
    .addHelpText(
      'after',
      '\nExamples:\n  imagen info\n  imagen info unet/diffusion_pytorch_model.safetensors --json',
    )
    .action(async (file: string | undefined, opts: { json: boolean }) => {
      const shipped = shippedModel();
      const card = shipped && !file ? await readFile(shipped.card, 'utf8').catch(() => undefined) : undefined;
      const info: Record<string, unknown> = {
        imagen_ts: VERSION,
        onnxruntime_node: ortVersion(),
        node: process.version,
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: availableParallelism(),
        memory_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
        shipped_model: shipped ? shipped.root : 'none in this copy',
      };
      if (file) {
        const st = await openSafetensors(file);
        try {
          const tensors = st.keys().map((k) => {
            const i = st.info(k);
            return { name: k, dtype: i.dtype, shape: i.shape };
          });
          info.file = file;
          info.metadata = st.metadata;
          info.tensors = tensors;
          info.parameters = tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
        } finally {
          await st.close();
        }
      }
      if (card) info.model_card = card;
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
        return;
      }
      for (const [k, v] of Object.entries(info)) {
        if (k === 'tensors' || k === 'metadata' || k === 'model_card') continue;
        process.stdout.write(`${k.padEnd(18)}${v}\n`);
      }
      for (const t of (info.tensors as { name: string; dtype: string; shape: number[] }[] | undefined) ??
        []) {
        process.stdout.write(`  ${t.name}  ${t.dtype}  ${shapeStr(t.shape)}\n`);
      }
      if (card) process.stdout.write(`\n${card.trimEnd()}\n`);
    });
}
