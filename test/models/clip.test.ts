import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ImagenError, NDArray, Runtime } from '../../src/engine/index.js';
import {
  ClipTextModel,
  clipPoolIndices,
  encodeClipPrompts,
  InMemoryClipTextEncoder,
} from '../../src/models/clip/clip_text.js';
import { type ClipTextConfig, parseClipTextConfig } from '../../src/models/clip/config.js';
import { memorySource } from '../../src/nn/index.js';
import { loadClipTextEncoder } from '../../src/platform/node/clip_loader.js';
import { openSafetensors, writeSafetensors } from '../../src/platform/node/files.js';
import { NodeBackend } from '../../src/platform/node/ort.js';
import { bytesToUnicode, ClipTokenizer } from '../../src/text/clip_tokenizer.js';
import { fixture } from '../helpers/fixtures.js';

const rt = new Runtime(new NodeBackend({ threads: 2 }));
const dir = fixture('sd-x4-upscaler/text_encoder');
const tmp = mkdtempSync(join(tmpdir(), 'clip-test-'));
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

describe.skipIf(!dir)('CLIPTextModel parity with transformers (sd-x4-upscaler/text_encoder)', () => {
  for (const decompose of [false, true]) {
    it(`${decompose ? 'decomposed' : 'fused (MHA)'} graph: masked and unmasked last_hidden_state and pooler_output`, async () => {
      const model = new ClipTextModel(JSON.parse(readFileSync(join(dir!, 'config.json'), 'utf8')));
      const ckpt = await openSafetensors(join(dir!, 'model.safetensors'));
      await model.loadStateDict(ckpt);
      await ckpt.close();
      const inputs = await readAll(join(dir!, 'inputs.safetensors'));
      const want = await readAll(join(dir!, 'outputs.safetensors'));
      const enc = new InMemoryClipTextEncoder(model, rt, { decompose });
      const masked = await enc.encode(inputs.input_ids!, inputs.attention_mask!);
      const plain = await enc.encode(inputs.input_ids!);
      await enc.release();
      const errs = {
        last_hidden_state: relErr(masked.lastHiddenState, want.last_hidden_state!),
        pooler_output: relErr(masked.poolerOutput, want.pooler_output!),
        'nomask.last_hidden_state': relErr(plain.lastHiddenState, want['nomask.last_hidden_state']!),
        'nomask.pooler_output': relErr(plain.poolerOutput, want['nomask.pooler_output']!),
      };
      console.log(
        `clip-text ${decompose ? 'decomposed' : 'fused'}: ${Object.entries(errs)
          .map(([k, v]) => `${k} ${v.toExponential(2)}`)
          .join(', ')}`,
      );
      for (const e of Object.values(errs)) expect(e).toBeLessThanOrEqual(1e-4);
      // The padding mask must matter at the padded positions, or the masked test proves nothing.
      expect(relErr(masked.lastHiddenState, want['nomask.last_hidden_state']!)).toBeGreaterThan(1e-3);
    });
  }
});

describe.skipIf(!dir)(
  'CLIP text encoder folder + tokenizer → prompt embeddings (sd-x4-upscaler/text_encoder)',
  () => {
    it('encodeClipPrompts = tokenise (pad "!", 77) then encode without a mask, prompts and negatives in one batch', async () => {
      const enc = await loadClipTextEncoder(dir!, { runtime: rt });
      // Byte-level base vocabulary (no merges) with the specials where the fixture put them (998, 999).
      // CLIP's order: printable bytes first, then the remapped ones (= ascending code points).
      const chars = [...bytesToUnicode()].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
      const vocab: Record<string, number> = {};
      chars.forEach((c, i) => {
        vocab[c] = i;
        vocab[`${c}</w>`] = 256 + i;
      });
      vocab['<|startoftext|>'] = 998;
      vocab['<|endoftext|>'] = 999;
      const tok = new ClipTokenizer(vocab, '#version: 0.2\n', { padToken: '!' });
      const out = await encodeClipPrompts(enc, tok, ['a cat', 'hi'], { negativePrompt: '' });
      expect(out.promptEmbeds.shape).toEqual([2, 77, 32]);
      expect(out.negativePromptEmbeds!.shape).toEqual([2, 77, 32]);
      // 'a</w>' = 256 + 64; 'c', 'a', 't</w>' unmerged; then EOS and '!' (0) padding.
      expect(out.inputIds.toArray().slice(0, 7)).toEqual([998, 320, 66, 64, 339, 999, 0]);
      expect(out.negativeInputIds!.toArray().slice(0, 3)).toEqual([998, 999, 0]);
      const direct = await enc.encode(NDArray.i64([2, 77], out.inputIds.toArray()));
      expect(relErr(out.promptEmbeds, direct.lastHiddenState)).toBe(0);
      await enc.release();
    });
  },
);

// ---------------------------------------------------------------- plain-JS reference

/** Straightforward float64 CLIPTextModel forward (transformers semantics) for configs with no fixture. */
function referenceForward(
  cfg: ClipTextConfig,
  sd: Record<string, NDArray>,
  ids: number[][],
  mask?: number[][],
): { hidden: Float32Array; pooled: Float32Array } {
  const w = (k: string) => sd[`text_model.${k}`]!.data as Float32Array;
  const D = cfg.hidden_size;
  const H = cfg.num_attention_heads;
  const dh = D / H;
  const L = ids[0]!.length;
  const linear = (x: Float64Array, name: string, nIn: number, nOut: number) => {
    const wt = w(`${name}.weight`);
    const bias = w(`${name}.bias`);
    const y = new Float64Array((x.length / nIn) * nOut);
    for (let r = 0; r < x.length / nIn; r++)
      for (let o = 0; o < nOut; o++) {
        let s = bias[o]!;
        for (let i = 0; i < nIn; i++) s += x[r * nIn + i]! * wt[o * nIn + i]!;
        y[r * nOut + o] = s;
      }
    return y;
  };
  const ln = (x: Float64Array, name: string) => {
    const g = w(`${name}.weight`);
    const b = w(`${name}.bias`);
    const y = new Float64Array(x.length);
    for (let r = 0; r < x.length / D; r++) {
      let mu = 0;
      for (let i = 0; i < D; i++) mu += x[r * D + i]!;
      mu /= D;
      let v = 0;
      for (let i = 0; i < D; i++) v += (x[r * D + i]! - mu) ** 2;
      const inv = 1 / Math.sqrt(v / D + cfg.layer_norm_eps);
      for (let i = 0; i < D; i++) y[r * D + i] = (x[r * D + i]! - mu) * inv * g[i]! + b[i]!;
    }
    return y;
  };
  const act = (v: number) => (cfg.hidden_act === 'quick_gelu' ? v / (1 + Math.exp(-1.702 * v)) : NaN);
  const hidden = new Float32Array(ids.length * L * D);
  const pooled = new Float32Array(ids.length * D);
  ids.forEach((row, b) => {
    let x = new Float64Array(L * D);
    for (let t = 0; t < L; t++)
      for (let i = 0; i < D; i++)
        x[t * D + i] =
          w('embeddings.token_embedding.weight')[row[t]! * D + i]! +
          w('embeddings.position_embedding.weight')[t * D + i]!;
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const p = `encoder.layers.${l}`;
      const n = ln(x, `${p}.layer_norm1`);
      const q = linear(n, `${p}.self_attn.q_proj`, D, D);
      const k = linear(n, `${p}.self_attn.k_proj`, D, D);
      const v = linear(n, `${p}.self_attn.v_proj`, D, D);
      const a = new Float64Array(L * D);
      for (let h = 0; h < H; h++)
        for (let i = 0; i < L; i++) {
          const keys = [...Array(L).keys()].filter((j) => j <= i && (!mask || mask[b]![j]));
          const s = keys.map((j) => {
            let dot = 0;
            for (let c = 0; c < dh; c++) dot += q[i * D + h * dh + c]! * k[j * D + h * dh + c]!;
            return dot / Math.sqrt(dh);
          });
          const mx = Math.max(...s);
          const e = s.map((z) => Math.exp(z - mx));
          const z = e.reduce((u, t) => u + t, 0);
          keys.forEach((j, n2) => {
            for (let c = 0; c < dh; c++) a[i * D + h * dh + c]! += (e[n2]! / z) * v[j * D + h * dh + c]!;
          });
        }
      const o = linear(a, `${p}.self_attn.out_proj`, D, D);
      x = x.map((val, i) => val + o[i]!);
      const m = linear(
        linear(ln(x, `${p}.layer_norm2`), `${p}.mlp.fc1`, D, cfg.intermediate_size).map(act),
        `${p}.mlp.fc2`,
        cfg.intermediate_size,
        D,
      );
      x = x.map((val, i) => val + m[i]!);
    }
    const y = ln(x, 'final_layer_norm');
    hidden.set(Float32Array.from(y), b * L * D);
    const pos =
      cfg.eos_token_id === 2 ? row.indexOf(Math.max(...row)) : Math.max(0, row.indexOf(cfg.eos_token_id));
    pooled.set(Float32Array.from(y.subarray(pos * D, (pos + 1) * D)), b * D);
  });
  return { hidden, pooled };
}

describe('CLIP text config, pooling and a quick_gelu model checked against a plain-JS reference', () => {
  const raw = {
    architectures: ['CLIPTextModel'],
    model_type: 'clip_text_model',
    hidden_size: 24,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 3,
    max_position_embeddings: 16,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    vocab_size: 50,
    bos_token_id: 48,
    eos_token_id: 49,
    pad_token_id: 0,
    projection_dim: 8,
    dropout: 0,
  };

  it('rejects configs it cannot run', () => {
    expect(() => parseClipTextConfig({ ...raw, hidden_act: 'relu' })).toThrow(
      /hidden_act "relu".*gelu, quick_gelu/,
    );
    expect(() => parseClipTextConfig({ ...raw, num_attention_heads: 5 })).toThrow(/not divisible/);
    expect(() => parseClipTextConfig({ ...raw, rope_theta: 1 })).toThrow(/unknown key "rope_theta"/);
    expect(() => parseClipTextConfig({ model_type: 't5', d_model: 8 })).toThrow(/not a CLIP text encoder/);
  });

  it('pools at argmax(ids) when eos_token_id is 2, else at the first eos', () => {
    // Row 0: max id 49 twice (ties → first); no 47. Row 1: 47 first, max id 49 later.
    const ids = NDArray.i64([2, 5], [48, 7, 49, 0, 49, 48, 47, 3, 49, 0]);
    expect(clipPoolIndices(ids, 2).toArray()).toEqual([2, 5 + 3]);
    expect(clipPoolIndices(ids, 47).toArray()).toEqual([0, 5 + 1]);
    expect(clipPoolIndices(NDArray.i64([1, 3], [1, 1, 1]), 7).toArray()).toEqual([0]);
  });

  it('quick_gelu, first-eos pooling, with and without a padding mask, fused and decomposed; loads from a folder with a position_ids buffer', async () => {
    const cfg = parseClipTextConfig(raw);
    const model = new ClipTextModel(cfg).initialize(3);
    // Norm weights away from 1 and non-zero biases, so a miswired norm cannot hide.
    let s = 7;
    const r = () => {
      s = (s * 16807) % 2147483647;
      return s / 2147483647 - 0.5;
    };
    for (const p of model.parameters()) {
      if (/layer_norm|final_layer_norm/.test(p.name))
        p.set(
          NDArray.f32(
            p.shape,
            Array.from({ length: p.size }, () => (p.name.endsWith('weight') ? 1 : 0) + 0.4 * r()),
          ),
        );
    }
    const sd = model.stateDict();
    const ids = [
      [48, 5, 17, 33, 49, 0, 0, 0, 0, 0],
      [48, 9, 49, 2, 40, 11, 3, 49, 0, 0],
    ];
    const mask = [
      [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
    ];
    const inputIds = NDArray.i64([2, 10], ids.flat());
    const attentionMask = NDArray.i64([2, 10], mask.flat());
    for (const withMask of [false, true]) {
      const ref = referenceForward(cfg, sd, ids, withMask ? mask : undefined);
      for (const decompose of [false, true]) {
        const enc = new InMemoryClipTextEncoder(model, rt, { decompose });
        const got = await enc.encode(inputIds, withMask ? attentionMask : undefined);
        expect(
          relErr(got.lastHiddenState, new NDArray('float32', [2, 10, 24], ref.hidden)),
        ).toBeLessThanOrEqual(1e-5);
        expect(relErr(got.poolerOutput, new NDArray('float32', [2, 24], ref.pooled))).toBeLessThanOrEqual(
          1e-5,
        );
        await enc.release();
      }
    }
    // clip_skip 1 = the first layer's output through final_layer_norm = a 1-layer model's output.
    const oneLayer = new ClipTextModel({ ...raw, num_hidden_layers: 1 });
    await oneLayer.loadStateDict(memorySource(sd), { strict: false });
    const skipped = new InMemoryClipTextEncoder(model, rt, { clipSkip: 1 });
    const short = new InMemoryClipTextEncoder(oneLayer, rt);
    expect(
      relErr(
        (await skipped.encode(inputIds)).lastHiddenState,
        (await short.encode(inputIds)).lastHiddenState,
      ),
    ).toBe(0);
    await skipped.release();
    await short.release();
    const tooMany = new InMemoryClipTextEncoder(model, rt, { clipSkip: 2 });
    await expect(tooMany.encode(inputIds)).rejects.toThrow(/clipSkip must be an integer in \[0, 1\], got 2/);
    // A transformers < 4.31 checkpoint also stores the position_ids buffer; the loader ignores it.
    const d = join(tmp, 'with-position-ids');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'config.json'), JSON.stringify(raw));
    await writeSafetensors(join(d, 'model.safetensors'), {
      ...sd,
      'text_model.embeddings.position_ids': NDArray.i64([1, 16], [...Array(16).keys()]),
    });
    const loaded = await loadClipTextEncoder(d, { runtime: rt });
    const ref = referenceForward(cfg, sd, ids);
    expect(
      relErr((await loaded.encode(inputIds)).poolerOutput, new NDArray('float32', [2, 24], ref.pooled)),
    ).toBeLessThanOrEqual(1e-5);
    const e = await loaded.encode(NDArray.i64([1, 2], [48, 50])).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ImagenError);
    expect((e as ImagenError).message).toMatch(/token id 50.*vocab_size 50/);
    await loaded.release();
    // Strict otherwise: a stray tensor is an error naming it.
    await writeSafetensors(join(d, 'model.safetensors'), {
      ...sd,
      'text_projection.weight': NDArray.f32([8, 24]),
    });
    await expect(loadClipTextEncoder(d, { runtime: rt })).rejects.toThrow(
      /unexpected 1: text_projection\.weight/,
    );
  });
});
