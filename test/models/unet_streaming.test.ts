import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeSchedule, parseSchedulerConfig } from '../../src/diffusion/schedule.js';
import { NDArray } from '../../src/engine/index.js';
import { StreamingUNetRunner } from '../../src/models/unet/streaming.js';
import { guidedDenoiser } from '../../src/pipelines/if_pipeline.js';
import { InMemoryUNetRunner, type UNetCall, UNetRunner } from '../../src/pipelines/unet_runner.js';
import { openSafetensors, writeSafetensors } from '../../src/platform/node/files.js';
import { cudaAvailable, NodeBackend } from '../../src/platform/node/ort.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { loadUNet, loadUNetRunner } from '../../src/platform/node/unet_loader.js';
import { fixture } from '../helpers/fixtures.js';
import { loadAll } from '../helpers/safetensors.js';
import { maxAbsErr } from '../reference/fd.js';

const rt = createRuntime({ threads: 2 });
const tmp = mkdtempSync(join(tmpdir(), 'unet-streaming-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function rel(got: NDArray, want: NDArray): number {
  const scale = Math.max(1e-12, ...Array.from(want.toFloat32().data as Float32Array, Math.abs));
  return maxAbsErr(got.data as Float32Array, want.toFloat32()) / scale;
}

/**
 * The fixture's inputs as a pipeline call. The fixture has one timestep per sample and a call takes
 * one for the batch, so this is not the diffusers output's call: diffusers parity of the in-memory
 * UNet is test/models/unet.test.ts; here streaming must equal in-memory.
 */
async function fixtureCall(dir: string): Promise<UNetCall> {
  const i = await loadAll(join(dir, 'inputs.safetensors'));
  return {
    sample: i.sample!,
    timestep: i.timestep!.toArray()[0]!,
    encoderHiddenStates: i.encoder_hidden_states!,
    classLabels: i.class_labels,
  };
}

/** The fixture UNet with its weights stored as fp16 (how IF's big checkpoints are published). */
async function fp16Copy(dir: string, name: string): Promise<string> {
  const out = join(tmp, name);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(out, { recursive: true });
  copyFileSync(join(dir, 'config.json'), join(out, 'config.json'));
  const w = await loadAll(join(dir, 'diffusion_pytorch_model.safetensors'));
  const half: Record<string, NDArray> = {};
  for (const [k, v] of Object.entries(w)) half[k] = v.cast('float16');
  await writeSafetensors(join(out, 'diffusion_pytorch_model.fp16.safetensors'), half);
  return out;
}

describe.skipIf(!fixture('if-stage1-unet'))('streaming UNet = in-memory UNet', () => {
  for (const name of ['if-stage1-unet', 'if-stage2-unet']) {
    it(`${name}: float32 weights, forced streaming via a tiny threshold`, async () => {
      const dir = fixture(name)!;
      const call = await fixtureCall(dir);
      const mem = await loadUNetRunner(dir, { runtime: rt, streaming: false });
      const pieces: string[] = [];
      const str = await loadUNetRunner(dir, {
        runtime: rt,
        streamingThresholdBytes: 1,
        threads: 2,
        onPiece: (p) => pieces.push(p),
      });
      expect(mem).toBeInstanceOf(InMemoryUNetRunner);
      expect(str).toBeInstanceOf(StreamingUNetRunner);
      const a = await mem.run(call);
      const b = await str.run(call);
      const again = await str.run(call); // second call reuses the compiled pieces
      const s = str as StreamingUNetRunner;
      expect(pieces.length).toBe(2 * s.pieceCount);
      expect(pieces[0]).toBe('embeddings');
      expect(pieces[s.pieceCount - 1]).toBe('conv_out');
      expect(s.graphCount).toBeLessThan(s.pieceCount); // identical layers share one graph
      expect(b.shape).toEqual(a.shape);
      const errMem = rel(b, a);
      console.log(
        `${name}: ${s.pieceCount} pieces, ${s.graphCount} graphs; streaming vs in-memory ${errMem.toExponential(2)}`,
      );
      expect(errMem).toBeLessThanOrEqual(1e-5);
      expect(rel(again, b)).toBe(0);
      await mem.release();
      await str.release();
      await expect(str.run(call)).rejects.toThrow(/after release/);
    });

    it(`${name}: fp16 checkpoint, cast in the piece graphs or widened in JS = in-memory`, async () => {
      const dir = await fp16Copy(fixture(name)!, name);
      const call = await fixtureCall(fixture(name)!);
      const memUnet = await loadUNet(dir, { variant: 'fp16', streaming: false });
      const mem = new UNetRunner(rt, memUnet);
      const want = await mem.run(call);
      await mem.release();
      for (const widen of ['graph', 'js'] as const) {
        // The pipelines' `new UNetRunner(rt, unet)` picks the streaming runner the loader registered.
        const strUnet = await loadUNet(dir, { variant: 'fp16', streaming: true, prefetch: false, widen });
        expect(strUnet.parameters().every((p) => p.value === undefined)).toBe(true);
        const str = new UNetRunner(rt, strUnet);
        expect(str).toBeInstanceOf(StreamingUNetRunner);
        const err = rel(await str.run(call), want);
        console.log(`${name} fp16, widened in ${widen}: streaming vs in-memory ${err.toExponential(2)}`);
        expect(err).toBeLessThanOrEqual(1e-5);
        await str.release();
      }
    });
  }

  it('rejects a checkpoint that does not match the config, naming the tensors', async () => {
    const dir = fixture('if-stage1-unet')!;
    const bad = join(tmp, 'bad');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(bad, { recursive: true });
    copyFileSync(join(dir, 'config.json'), join(bad, 'config.json'));
    const w = await loadAll(join(dir, 'diffusion_pytorch_model.safetensors'));
    delete w['conv_out.bias'];
    await writeSafetensors(join(bad, 'diffusion_pytorch_model.safetensors'), w);
    await expect(loadUNet(bad, { streaming: true })).rejects.toThrow(/missing conv_out\.bias/);
  });

  it('refuses a module with loaded weights (they would be used as scratch slots)', async () => {
    const dir = fixture('if-stage1-unet')!;
    const loaded = await loadUNet(dir, { streaming: false });
    const ckpt = await openSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'));
    expect(() => new StreamingUNetRunner(rt, loaded, ckpt)).toThrow(/without loaded weights/);
    await ckpt.close();
  });

  it('checks the call like UNet.forward (stage-I input given to a stage-II UNet)', async () => {
    const dir = fixture('if-stage2-unet')!;
    const call = await fixtureCall(dir);
    const str = await loadUNetRunner(dir, { runtime: rt, streaming: true });
    const [b, , h, w] = call.sample.shape as number[];
    const three = { ...call, sample: call.sample.reshape([b!, 6, h!, w!]) };
    await expect(str.run({ ...three, classLabels: undefined })).rejects.toThrow(/class_labels/);
    await str.release();
  });
});

describe('--device cuda', () => {
  it('falls back to CPU with a clear message when the CUDA provider is not available', async () => {
    const warnings: string[] = [];
    const backend = new NodeBackend({ device: 'cuda', threads: 1, onWarning: (m) => warnings.push(m) });
    if (cudaAvailable()) {
      // A machine with the CUDA provider installed: nothing to fall back from (unless the session fails).
      expect(['cuda', 'cpu']).toContain(backend.device);
      return;
    }
    expect(backend.device).toBe('cpu');
    expect(backend.name).toBe('onnxruntime-node:cpu');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /--device cuda: ONNX Runtime's CUDA execution provider is not available .*running on CPU/,
    );
    // And it still runs: the fallback is a working CPU backend.
    const { Runtime } = await import('../../src/engine/index.js');
    const F = await import('../../src/engine/ops/index.js');
    const { NDArray } = await import('../../src/engine/index.js');
    const f = new Runtime(backend).compile((i) => F.add(i.a!, 1));
    const out = (await f.run({ a: NDArray.f32([2], [1, 2]) })).output!;
    expect(Array.from(out.data as Float32Array)).toEqual([2, 3]);
    await f.release();
  });
});

describe.skipIf(!fixture('if-pipeline-loop'))('streaming UNet inside the IF pipelines = diffusers', () => {
  // The recorded IFPipeline / IFSuperResolutionPipeline loops: the pipelines' guided denoiser takes the
  // streaming runner as it takes the in-memory one, and every guided model output matches diffusers.
  for (const [loop, unetName, guidance] of [
    ['if-pipeline-loop', 'if-stage1-unet', 7.0],
    ['if-superres-loop', 'if-stage2-unet', 4.0],
  ] as const) {
    it(`${loop}: every step's guided model output ≤ 1e-4`, async () => {
      const dir = fixture(loop)!;
      const rec = await loadAll(join(dir, 'loop.safetensors'));
      const schedule = makeSchedule(
        parseSchedulerConfig(JSON.parse(readFileSync(join(dir, 'scheduler_config.json'), 'utf8'))),
      );
      const runner = await loadUNetRunner(fixture(unetName)!, { runtime: rt, streaming: true });
      expect(runner).toBeInstanceOf(StreamingUNetRunner);
      const cond = { promptEmbeds: rec.prompt_embeds!, negativePromptEmbeds: rec.negative_prompt_embeds! };
      const extra = rec.upscaled_noised && { image: rec.upscaled_noised, classLabels: rec.noise_level! };
      const denoise = guidedDenoiser(runner, cond, guidance, schedule, extra);
      const timesteps = rec.timesteps!.toArray();
      const errs: number[] = [];
      for (let i = 0; i < timesteps.length; i++) {
        const out = await denoise(rec[`step${i}.sample_in`]!, timesteps[i]!, i);
        errs.push(rel(out, rec[`step${i}.guided_model_output`]!));
      }
      console.log(`${loop} via streaming: per-step error ${errs.map((e) => e.toExponential(1)).join(' ')}`);
      for (const [i, e] of errs.entries()) expect(e, `step ${i}`).toBeLessThan(1e-4);
      await runner.release();
    });
  }
});

describe.skipIf(!fixture('if-stage1-unet'))('imagen forward on a streamed UNet', () => {
  it('runs through the streaming runner (regression: it failed with "no value to embed")', async () => {
    const { FORWARD_RUNNERS } = await import('../../src/cli/commands/forward.js');
    const { createRuntime } = await import('../../src/platform/node/runtime.js');
    const { openSafetensors } = await import('../../src/platform/node/files.js');
    const dir = fixture('if-stage1-unet')!;
    const st = await openSafetensors(join(dir, 'inputs.safetensors'));
    const inputs: Record<string, NDArray> = {};
    for (const k of st.keys()) inputs[k] = await st.get(k);
    await st.close();
    // The fixture uses one timestep per row; streaming takes one for the batch.
    const t = inputs.timestep!.toArray()[0]!;
    inputs.timestep = NDArray.i64([2], [t, t]);
    const runner = FORWARD_RUNNERS.find((r) => r.name === 'UNet2DConditionModel')!;
    const rt = createRuntime({ threads: 1 });
    const streamed = await runner.run(rt, dir, inputs, { fp16: false, streamingThresholdBytes: 1 });
    const inMemory = await runner.run(rt, dir, inputs, { fp16: false });
    const a = streamed.sample!.data as Float32Array;
    const b = inMemory.sample!.data as Float32Array;
    let err = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      err = Math.max(err, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(b[i]!));
    }
    expect(err / scale).toBeLessThan(1e-5);
  });
});
