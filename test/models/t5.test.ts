import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { ImagenError, NDArray, Runtime } from '../../src/engine/index.js';
import { isT5Config, parseT5Config, type T5Config, t5EncoderParamCount } from '../../src/models/t5/config.js';
import { StreamingT5Encoder } from '../../src/models/t5/streaming.js';
import {
  encodePrompts,
  InMemoryT5Encoder,
  relativePositionBucket,
  T5Encoder,
  type T5TextEncoder,
} from '../../src/models/t5/t5_encoder.js';
import { openCheckpoint, openSafetensors, writeSafetensors } from '../../src/platform/node/files.js';
import { NodeBackend } from '../../src/platform/node/ort.js';
import { loadT5Encoder, loadT5EncoderModule } from '../../src/platform/node/t5_loader.js';
import { fixture } from '../helpers/fixtures.js';
import { rng } from '../helpers/random.js';

const rt = new Runtime(new NodeBackend({ threads: 2 }));
const dir = fixture('t5-encoder');
const tmp = mkdtempSync(join(tmpdir(), 't5-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function relErr(got: NDArray, want: NDArray): number {
  expect(got.shape).toEqual(want.shape);
  const g = got.data as Float32Array;
  const w = want.data as Float32Array;
  let err = 0;
  let scale = 0;
  for (let i = 0; i < w.length; i++) {
    err = Math.max(err, Math.abs(g[i]! - w[i]!));
    scale = Math.max(scale, Math.abs(w[i]!));
  }
  return err / scale;
}

async function readAll(path: string): Promise<Record<string, NDArray>> {
  const f = await openSafetensors(path);
  const out: Record<string, NDArray> = {};
  for (const k of f.keys()) out[k] = await f.get(k);
  await f.close();
  return out;
}

async function expectCode(p: Promise<unknown>, code: string, text?: RegExp): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ImagenError);
  expect((e as ImagenError).code).toBe(code);
  if (text) expect((e as ImagenError).message).toMatch(text);
}

async function writeFolder(path: string, config: Record<string, unknown>, weights?: Record<string, NDArray>) {
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, 'config.json'), JSON.stringify(config));
  if (weights) await writeSafetensors(join(path, 'model.safetensors'), weights);
}

// ---------------------------------------------------------------- plain-JS reference

/** Straightforward float64 T5 encoder forward (transformers semantics) to check configs with no fixture. */
function referenceForward(
  cfg: T5Config,
  sd: Record<string, NDArray>,
  ids: number[][],
  mask: number[][],
): Float32Array {
  const w = (k: string) => sd[k]!.toFloat32().data as Float32Array;
  const B = ids.length;
  const L = ids[0]!.length;
  const D = cfg.dModel;
  const H = cfg.numHeads;
  const dk = cfg.dKv;
  const inner = H * dk;
  const linear = (x: Float64Array, rows: number, wt: Float32Array, nIn: number, nOut: number) => {
    const y = new Float64Array(rows * nOut);
    for (let r = 0; r < rows; r++)
      for (let o = 0; o < nOut; o++) {
        let s = 0;
        for (let i = 0; i < nIn; i++) s += x[r * nIn + i]! * wt[o * nIn + i]!;
        y[r * nOut + o] = s;
      }
    return y;
  };
  const rms = (x: Float64Array, wt: Float32Array) => {
    const y = new Float64Array(x.length);
    for (let r = 0; r < x.length / D; r++) {
      let v = 0;
      for (let i = 0; i < D; i++) v += x[r * D + i]! ** 2;
      const inv = 1 / Math.sqrt(v / D + cfg.layerNormEpsilon);
      for (let i = 0; i < D; i++) y[r * D + i] = x[r * D + i]! * inv * wt[i]!;
    }
    return y;
  };
  const act = (v: number) => {
    switch (cfg.denseActFn) {
      case 'relu':
        return Math.max(v, 0);
      case 'silu':
        return v / (1 + Math.exp(-v));
      default:
        return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    }
  };
  const emb = w('shared.weight');
  const rel = w('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight');
  const out = new Float32Array(B * L * D);
  for (let b = 0; b < B; b++) {
    let x = new Float64Array(L * D);
    for (let t = 0; t < L; t++) for (let i = 0; i < D; i++) x[t * D + i] = emb[ids[b]![t]! * D + i]!;
    for (let layer = 0; layer < cfg.numLayers; layer++) {
      const p = `encoder.block.${layer}.layer`;
      const n = rms(x, w(`${p}.0.layer_norm.weight`));
      const q = linear(n, L, w(`${p}.0.SelfAttention.q.weight`), D, inner);
      const k = linear(n, L, w(`${p}.0.SelfAttention.k.weight`), D, inner);
      const v = linear(n, L, w(`${p}.0.SelfAttention.v.weight`), D, inner);
      const a = new Float64Array(L * inner);
      for (let h = 0; h < H; h++)
        for (let i = 0; i < L; i++) {
          const s = new Float64Array(L);
          let mx = -Infinity;
          for (let j = 0; j < L; j++) {
            let dot = 0;
            for (let c = 0; c < dk; c++) dot += q[i * inner + h * dk + c]! * k[j * inner + h * dk + c]!;
            const bucket = relativePositionBucket(
              j - i,
              true,
              cfg.relativeAttentionNumBuckets,
              cfg.relativeAttentionMaxDistance,
            );
            s[j] = mask[b]![j] ? dot + rel[bucket * H + h]! : -Infinity;
            mx = Math.max(mx, s[j]!);
          }
          let z = 0;
          for (let j = 0; j < L; j++) z += Math.exp(s[j]! - mx);
          for (let j = 0; j < L; j++) {
            const pj = Math.exp(s[j]! - mx) / z;
            for (let c = 0; c < dk; c++) a[i * inner + h * dk + c]! += pj * v[j * inner + h * dk + c]!;
          }
        }
      const o = linear(a, L, w(`${p}.0.SelfAttention.o.weight`), inner, D);
      x = x.map((val, idx) => val + o[idx]!);
      const n2 = rms(x, w(`${p}.1.layer_norm.weight`));
      let hdn: Float64Array;
      if (cfg.isGatedAct) {
        const g = linear(n2, L, w(`${p}.1.DenseReluDense.wi_0.weight`), D, cfg.dFf);
        const lin = linear(n2, L, w(`${p}.1.DenseReluDense.wi_1.weight`), D, cfg.dFf);
        hdn = g.map((val, idx) => act(val) * lin[idx]!);
      } else {
        hdn = linear(n2, L, w(`${p}.1.DenseReluDense.wi.weight`), D, cfg.dFf).map(act);
      }
      const f = linear(hdn, L, w(`${p}.1.DenseReluDense.wo.weight`), cfg.dFf, D);
      x = x.map((val, idx) => val + f[idx]!);
    }
    const y = rms(x, w('encoder.final_layer_norm.weight'));
    out.set(Float32Array.from(y), b * L * D);
  }
  return out;
}

function idsAndMask(r: () => number, vocab: number, lengths: number[], L: number) {
  const ids = lengths.map((n) =>
    Array.from({ length: L }, (_, t) =>
      t < n - 1 ? 2 + Math.floor(r() * (vocab - 2)) : t === n - 1 ? 1 : 0,
    ),
  );
  const mask = lengths.map((n) => Array.from({ length: L }, (_, t) => (t < n ? 1 : 0)));
  return {
    ids,
    mask,
    inputIds: NDArray.i64([lengths.length, L], ids.flat()),
    attentionMask: NDArray.i64([lengths.length, L], mask.flat()),
  };
}

// ---------------------------------------------------------------- config and buckets

describe('T5 config and relative position buckets', () => {
  it('matches the bucket table of spec §7.3 (bidirectional, 32 buckets, max distance 128)', () => {
    const magnitude = (n: number) => relativePositionBucket(-n);
    const expected: [number, number, number][] = [
      [0, 7, -1],
      [8, 11, 8],
      [12, 15, 9],
      [16, 22, 10],
      [23, 31, 11],
      [32, 45, 12],
      [46, 63, 13],
      [64, 90, 14],
      [91, 600, 15],
    ];
    for (const [lo, hi, b] of expected) {
      for (let n = lo; n <= hi; n++) {
        expect(magnitude(n)).toBe(b < 0 ? n : b);
        expect(relativePositionBucket(n)).toBe(n === 0 ? 0 : 16 + (b < 0 ? n : b));
      }
    }
  });

  it('agrees with a float64 evaluation for the default config and differs only through float32 rounding', () => {
    const f64 = (n: number, nb: number, md: number) => {
      const half = nb / 2;
      const me = half / 2;
      return n < me
        ? n
        : Math.min(me + Math.trunc((Math.log(n / me) / Math.log(md / me)) * (half - me)), half - 1);
    };
    for (let n = 0; n < 600; n++) expect(relativePositionBucket(-n)).toBe(f64(n, 32, 128));
    // Unidirectional (decoder) form: only non-positive offsets count.
    expect(relativePositionBucket(5, false)).toBe(0);
    expect(relativePositionBucket(-5, false)).toBe(5);
  });

  it('parses feed_forward_proj like transformers T5Config', () => {
    const base = {
      model_type: 't5',
      d_model: 8,
      d_kv: 4,
      num_heads: 2,
      d_ff: 16,
      num_layers: 1,
      vocab_size: 10,
    };
    expect(parseT5Config({ ...base, feed_forward_proj: 'gated-gelu' })).toMatchObject({
      isGatedAct: true,
      denseActFn: 'gelu_new',
    });
    expect(parseT5Config({ ...base, feed_forward_proj: 'relu' })).toMatchObject({
      isGatedAct: false,
      denseActFn: 'relu',
    });
    expect(parseT5Config({ ...base, feed_forward_proj: 'gated-silu' })).toMatchObject({
      isGatedAct: true,
      denseActFn: 'silu',
    });
    // Stored dense_act_fn / is_gated_act win (PretrainedConfig sets leftover kwargs last).
    expect(
      parseT5Config({ ...base, feed_forward_proj: 'relu', dense_act_fn: 'gelu_new', is_gated_act: true }),
    ).toMatchObject({
      isGatedAct: true,
      denseActFn: 'gelu_new',
    });
    expect(() => parseT5Config({ ...base, feed_forward_proj: 'fancy-gelu' })).toThrow(/gated-\{ACT_FN\}/);
    expect(() => parseT5Config({ _class_name: 'UNet2DConditionModel' })).toThrow(/not a T5 encoder config/);
    expect(() => parseT5Config({ ...base, d_model: -1 })).toThrow(/d_model/);
    expect(isT5Config({ architectures: ['T5EncoderModel'] })).toBe(true);
    expect(isT5Config({ _class_name: 'UNet2DConditionModel' })).toBe(false);
    // The IF text encoder, spec §7.2: ≈4.76 B parameters.
    const xxl = parseT5Config({
      model_type: 't5',
      d_model: 4096,
      d_kv: 64,
      num_heads: 64,
      d_ff: 10240,
      num_layers: 24,
      vocab_size: 32128,
      feed_forward_proj: 'gated-gelu',
    });
    expect(t5EncoderParamCount(xxl)).toBe(4762310656);
  });
});

// ---------------------------------------------------------------- fixture parity

describe.skipIf(!dir)('T5EncoderModel parity with transformers (t5-encoder fixture)', () => {
  const config = () => JSON.parse(readFileSync(join(dir!, 'config.json'), 'utf8'));

  async function fixtureIO() {
    const inputs = await readAll(join(dir!, 'inputs.safetensors'));
    const outputs = await readAll(join(dir!, 'outputs.safetensors'));
    return { ids: inputs.input_ids!, mask: inputs.attention_mask!, outputs };
  }

  for (const decompose of [false, true]) {
    for (const variant of [undefined, 'fp16'] as const) {
      const key = variant ? 'last_hidden_state_fp16_weights' : 'last_hidden_state';
      it(`${decompose ? 'decomposed' : 'fused (MHA)'} graph, ${variant ?? 'fp32'} weights`, async () => {
        const model = new T5Encoder(config());
        const ckpt = await openCheckpoint(dir!, variant ? { variant } : {});
        await model.loadStateDict(ckpt, { aliases: T5Encoder.ALIASES });
        await ckpt.close();
        if (variant) expect(model.blocks[0]!.attn.q.weight.value!.dtype).toBe('float16');
        const { ids, mask, outputs } = await fixtureIO();
        const enc = new InMemoryT5Encoder(model, rt, { decompose });
        const got = await enc.encode(ids, mask);
        await enc.release();
        const err = relErr(got, outputs[key]!);
        console.log(
          `t5-encoder ${decompose ? 'decomposed' : 'fused'} ${variant ?? 'fp32'}: max abs err / max|ref| = ${err.toExponential(2)}`,
        );
        expect(err).toBeLessThanOrEqual(1e-4);
      });
    }
  }

  it('the plain-JS reference reproduces the fixture (so it can vouch for the ReLU config)', async () => {
    const cfg = parseT5Config(config());
    const sd = await readAll(join(dir!, 'model.safetensors'));
    const { ids, mask, outputs } = await fixtureIO();
    const toRows = (a: NDArray) =>
      Array.from({ length: a.shape[0]! }, (_, b) =>
        a.toArray().slice(b * a.shape[1]!, (b + 1) * a.shape[1]!),
      );
    const ref = referenceForward(cfg, sd, toRows(ids), toRows(mask));
    expect(
      relErr(new NDArray('float32', outputs.last_hidden_state!.shape, ref), outputs.last_hidden_state!),
    ).toBeLessThan(1e-5);
  });

  it('streaming encoder equals the in-memory one (threshold forced low), fp32 and fp16 files', async () => {
    const { ids, mask } = await fixtureIO();
    for (const variant of [undefined, 'fp16'] as const) {
      const opts = variant ? { variant, runtime: rt } : { runtime: rt };
      const mem = await loadT5Encoder(dir!, opts);
      const str = await loadT5Encoder(dir!, { ...opts, streamingThresholdBytes: 1000 });
      expect(mem).toBeInstanceOf(InMemoryT5Encoder);
      expect(str).toBeInstanceOf(StreamingT5Encoder);
      const err = relErr(await str.encode(ids, mask), await mem.encode(ids, mask));
      console.log(`t5-encoder streaming vs in-memory (${variant ?? 'fp32'}): ${err.toExponential(2)}`);
      expect(err).toBeLessThanOrEqual(1e-5);
      const noPrefetch = await loadT5Encoder(dir!, { ...opts, streaming: true, prefetch: false });
      expect(relErr(await noPrefetch.encode(ids, mask), await mem.encode(ids, mask))).toBeLessThanOrEqual(
        1e-5,
      );
      for (const e of [mem, str, noPrefetch]) await e.release();
    }
  });

  it('sharded checkpoint (2 shards + index) and bf16 storage round-trip, in memory and streaming', async () => {
    const sd = await readAll(join(dir!, 'model.safetensors'));
    const names = Object.keys(sd).sort();
    const half = Math.ceil(names.length / 2);
    const { ids, mask, outputs } = await fixtureIO();
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const shardDir = join(tmp, `sharded-${dtype}`);
      await writeFolder(shardDir, config());
      const weightMap: Record<string, string> = {};
      for (const [s, part] of [names.slice(0, half), names.slice(half)].entries()) {
        const file = `model-0000${s + 1}-of-00002.safetensors`;
        const tensors: Record<string, NDArray> = {};
        for (const k of part) {
          tensors[k] = sd[k]!.cast(dtype);
          weightMap[k] = file;
        }
        await writeSafetensors(join(shardDir, file), tensors);
      }
      writeFileSync(
        join(shardDir, 'model.safetensors.index.json'),
        JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
      );
      const mem = await loadT5Encoder(shardDir, { runtime: rt, streaming: false });
      const str = await loadT5Encoder(shardDir, { runtime: rt, streaming: true });
      const a = await mem.encode(ids, mask);
      const b = await str.encode(ids, mask);
      const errRef = relErr(a, outputs.last_hidden_state!);
      console.log(`t5-encoder sharded ${dtype}: vs transformers fp32 ${errRef.toExponential(2)}`);
      expect(relErr(b, a)).toBeLessThanOrEqual(1e-5);
      // bf16 keeps 8 mantissa bits: the output moves by ~1e-2 relative, fp32 shards must be exact.
      expect(errRef).toBeLessThanOrEqual(dtype === 'float32' ? 1e-4 : 5e-2);
      await mem.release();
      await str.release();
    }
  });

  it('loads a checkpoint that stores the embedding as encoder.embed_tokens.weight, and ignores decoder tensors', async () => {
    const sd = await readAll(join(dir!, 'model.safetensors'));
    const { 'shared.weight': emb, ...rest } = sd;
    const full = {
      ...rest,
      'encoder.embed_tokens.weight': emb!,
      'decoder.final_layer_norm.weight': NDArray.f32([64]),
      'lm_head.weight': NDArray.f32([2, 64]),
    };
    const d = join(tmp, 'embed-tokens');
    await writeFolder(d, { ...config(), architectures: ['T5ForConditionalGeneration'] }, full);
    const { ids, mask, outputs } = await fixtureIO();
    for (const streaming of [false, true]) {
      const enc = await loadT5Encoder(d, { runtime: rt, streaming });
      expect(relErr(await enc.encode(ids, mask), outputs.last_hidden_state!)).toBeLessThanOrEqual(1e-4);
      await enc.release();
    }
  });

  it('imagen forward --model T5DIR writes last_hidden_state', async () => {
    const out = join(tmp, 'forward-out.safetensors');
    const code = await main([
      'node',
      'imagen',
      'forward',
      '--model',
      dir!,
      '--inputs',
      join(dir!, 'inputs.safetensors'),
      '--out',
      out,
    ]);
    expect(code).toBe(0);
    const got = await readAll(out);
    const { outputs } = await fixtureIO();
    expect(relErr(got.last_hidden_state!, outputs.last_hidden_state!)).toBeLessThanOrEqual(1e-4);
  });

  it('clear errors: no weights, not T5, corrupt safetensors, wrong shapes, bad ids, tokenizer too large', async () => {
    const noWeights = join(tmp, 'no-weights');
    await writeFolder(noWeights, config());
    await expectCode(
      loadT5Encoder(noWeights, { runtime: rt }),
      'NOT_FOUND',
      /no safetensors checkpoint found/,
    );

    const unet = join(tmp, 'not-t5');
    await writeFolder(unet, { _class_name: 'UNet2DConditionModel' });
    copyFileSync(join(dir!, 'model.safetensors'), join(unet, 'model.safetensors'));
    await expectCode(loadT5Encoder(unet, { runtime: rt }), 'CONFIG_INVALID', /not a T5 encoder config/);

    const corrupt = join(tmp, 'corrupt');
    await writeFolder(corrupt, config());
    const bytes = readFileSync(join(dir!, 'model.safetensors'));
    writeFileSync(join(corrupt, 'model.safetensors'), bytes.subarray(0, 5000));
    await expectCode(loadT5Encoder(corrupt, { runtime: rt }), 'FILE_INVALID', /corrupt|past the end|header/);
    await expectCode(loadT5Encoder(corrupt, { runtime: rt, streaming: true }), 'FILE_INVALID');

    const wrong = join(tmp, 'wrong-shape');
    await writeFolder(wrong, { ...config(), d_ff: 80 });
    copyFileSync(join(dir!, 'model.safetensors'), join(wrong, 'model.safetensors'));
    await expectCode(loadT5Encoder(wrong, { runtime: rt }), 'WEIGHTS_MISMATCH', /wi_0/);
    await expectCode(loadT5Encoder(wrong, { runtime: rt, streaming: true }), 'WEIGHTS_MISMATCH', /wi_0/);

    await expectCode(loadT5Encoder(join(tmp, 'missing'), { runtime: rt }), 'NOT_FOUND');

    const enc = await loadT5Encoder(dir!, { runtime: rt });
    await expectCode(
      enc.encode(NDArray.i64([1, 3], [5, 128, 1]), NDArray.i64([1, 3], [1, 1, 1])),
      'BAD_INPUT',
      /token id 128/,
    );
    const bigTokenizer = {
      vocabSize: 1200,
      padId: 0,
      eosId: 1,
      encode: () => [1],
      encodeBatch: () => {
        throw new Error('unreachable');
      },
      decode: () => '',
    };
    await expectCode(encodePrompts(enc, bigTokenizer, 'a cat'), 'CONFIG_INVALID', /1200 ids.*128 rows/);
    await enc.release();
  });
});

// ---------------------------------------------------------------- configs without a fixture

describe('T5 encoder configs checked against the plain-JS reference', () => {
  const base = {
    architectures: ['T5EncoderModel'],
    model_type: 't5',
    d_model: 24,
    d_kv: 8,
    num_heads: 3,
    d_ff: 40,
    num_layers: 2,
    vocab_size: 50,
    relative_attention_num_buckets: 32,
    relative_attention_max_distance: 128,
    layer_norm_epsilon: 1e-6,
  };
  for (const ffp of ['relu', 'gated-silu', 'gated-gelu']) {
    it(`feed_forward_proj "${ffp}" (fused and decomposed) matches the reference, and loads from a folder`, async () => {
      const cfg = parseT5Config({ ...base, feed_forward_proj: ffp });
      const model = new T5Encoder(cfg).initialize(7);
      // Distinct norm weights, as in the fixture (1 + 0.1·randn): all-ones norms would hide a
      // layer norm wired to the wrong weight.
      const r = rng(11);
      for (const p of model.parameters()) {
        if (p.name.endsWith('layer_norm.weight'))
          p.set(
            NDArray.f32(
              p.shape,
              Array.from({ length: p.size }, () => 1 + 0.2 * (r() - 0.5)),
            ),
          );
      }
      if (ffp === 'relu') {
        expect(model.namedParameters().has('encoder.block.1.layer.1.DenseReluDense.wi.weight')).toBe(true);
        expect(
          model.namedParameters().has('encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight'),
        ).toBe(false);
      }
      const sd = model.stateDict();
      // L = 40 reaches the log-spaced buckets (|i − j| ≥ 8).
      const { ids, mask, inputIds, attentionMask } = idsAndMask(rng(3), cfg.vocabSize, [40, 9], 40);
      const ref = new NDArray('float32', [2, 40, cfg.dModel], referenceForward(cfg, sd, ids, mask));
      for (const decompose of [false, true]) {
        const enc = new InMemoryT5Encoder(model, rt, { decompose });
        const err = relErr(await enc.encode(inputIds, attentionMask), ref);
        expect(err).toBeLessThanOrEqual(1e-5);
        await enc.release();
      }
      const d = join(tmp, `cfg-${ffp}`);
      await writeFolder(d, { ...base, feed_forward_proj: ffp }, sd);
      const loaded = await loadT5EncoderModule(d);
      expect(loaded.config.denseActFn).toBe(cfg.denseActFn);
      const streamed: T5TextEncoder = await loadT5Encoder(d, { runtime: rt, streaming: true });
      expect(relErr(await streamed.encode(inputIds, attentionMask), ref)).toBeLessThanOrEqual(1e-5);
      await streamed.release();
    });
  }
});
