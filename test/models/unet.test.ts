import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NDArray, Runtime } from '../../src/engine/index.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet.js';
import { openSafetensors } from '../../src/platform/node/files.js';
import { NodeBackend } from '../../src/platform/node/ort.js';
import { fixture } from '../helpers/fixtures.js';
import { maxAbsErr } from '../reference/fd.js';

const rt = new Runtime(new NodeBackend({ threads: 2 }));

async function parity(name: string, decompose: boolean) {
  const dir = fixture(name)!;
  const model = new UNet2DConditionModel(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const weights = await openSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'));
  await model.loadStateDict(weights);
  const inputs = await openSafetensors(join(dir, 'inputs.safetensors'));
  const outputs = await openSafetensors(join(dir, 'outputs.safetensors'));
  const feeds: Record<string, NDArray> = {};
  for (const k of inputs.keys()) feeds[k] = await inputs.get(k);
  const f = rt.compile(
    (i) =>
      model.forward({
        sample: i.sample!,
        timestep: i.timestep!,
        encoderHiddenStates: i.encoder_hidden_states!,
        classLabels: i.class_labels,
      }),
    { decompose },
  );
  const got = (await f.run(feeds)).output!;
  const want = await outputs.get('sample');
  await Promise.all([weights.close(), inputs.close(), outputs.close(), f.release()]);
  expect(got.shape).toEqual(want.shape);
  const scale = Math.max(...Array.from(want.data as Float32Array, Math.abs));
  const err = maxAbsErr(got.data as Float32Array, want) / scale;
  console.log(
    `${name} (${decompose ? 'decomposed' : 'fused'}): max abs err relative to scale = ${err.toExponential(2)}`,
  );
  expect(err).toBeLessThan(1e-4);
}

describe.skipIf(!fixture('if-stage1-unet'))('IF UNet parity with diffusers', () => {
  it('stage I fixture, fused ORT kernels', () => parity('if-stage1-unet', false));
  it('stage I fixture, decomposed (training graph)', () => parity('if-stage1-unet', true));
  it('stage II fixture, fused', () => parity('if-stage2-unet', false));
  it('stage II fixture, decomposed', () => parity('if-stage2-unet', true));
});

describe.skipIf(!fixture('if-stage1-unet'))('UNet encoder_attention_mask', () => {
  it('an all-ones mask changes nothing; masking tokens changes the output (regression: fused MHA bias shape)', async () => {
    const dir = fixture('if-stage1-unet')!;
    const model = new UNet2DConditionModel(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    const weights = await openSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'));
    await model.loadStateDict(weights);
    await weights.close();
    const inputs = await openSafetensors(join(dir, 'inputs.safetensors'));
    const feeds: Record<string, NDArray> = {};
    for (const k of inputs.keys()) feeds[k] = await inputs.get(k);
    await inputs.close();
    const f = rt.compile((i) =>
      model.forward({
        sample: i.sample!,
        timestep: i.timestep!,
        encoderHiddenStates: i.encoder_hidden_states!,
        encoderAttentionMask: i.encoder_attention_mask,
      }),
    );
    const plain = rt.compile((i) =>
      model.forward({
        sample: i.sample!,
        timestep: i.timestep!,
        encoderHiddenStates: i.encoder_hidden_states!,
      }),
    );
    const ones = NDArray.i64([2, 77], new Array(154).fill(1));
    const half = NDArray.i64(
      [2, 77],
      Array.from({ length: 154 }, (_, i) => (i % 77 < 20 ? 1 : 0)),
    );
    const base = (await plain.run(feeds)).output!.data as Float32Array;
    const all = (await f.run({ ...feeds, encoder_attention_mask: ones })).output!.data as Float32Array;
    const masked = (await f.run({ ...feeds, encoder_attention_mask: half })).output!.data as Float32Array;
    expect(maxAbsErr(all, base)).toBeLessThan(1e-5);
    expect(maxAbsErr(masked, base)).toBeGreaterThan(1e-3);
  });
});

describe.skipIf(!fixture('if-stage1-unet'))('UNet with fp16-stored weights', () => {
  // spec §9: fp16 reference runs differ from fp32 by ~1e-3–1e-2 relative; rounding only the
  // weights to fp16 (compute stays float32) measured 1.3e-3 (stage I) and 2.9e-3 (stage II).
  for (const name of ['if-stage1-unet', 'if-stage2-unet']) {
    it(`${name}: within 1e-2 of the fp32 reference`, async () => {
      const dir = fixture(name)!;
      const model = new UNet2DConditionModel(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
      const weights = await openSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'));
      await model.loadStateDict(weights);
      await weights.close();
      for (const p of model.parameters()) p.set(p.value!.cast('float16'));
      const inputs = await openSafetensors(join(dir, 'inputs.safetensors'));
      const feeds: Record<string, NDArray> = {};
      for (const k of inputs.keys()) feeds[k] = await inputs.get(k);
      await inputs.close();
      const outputs = await openSafetensors(join(dir, 'outputs.safetensors'));
      const want = await outputs.get('sample');
      await outputs.close();
      const f = rt.compile((i) =>
        model.forward({
          sample: i.sample!,
          timestep: i.timestep!,
          encoderHiddenStates: i.encoder_hidden_states!,
          classLabels: i.class_labels,
        }),
      );
      const got = (await f.run(feeds)).output!.data as Float32Array;
      await f.release();
      const scale = Math.max(...Array.from(want.data as Float32Array, Math.abs));
      const err = maxAbsErr(got, want) / scale;
      expect(err).toBeGreaterThan(1e-5); // the weights really were rounded
      expect(err).toBeLessThan(1e-2);
    });
  }
});
