import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { NDArray, Runtime } from '../../src/engine/index.js';
import { encodePrompts, T5Encoder } from '../../src/models/t5/t5_encoder.js';
import { openSafetensors, writeSafetensors } from '../../src/platform/node/files.js';
import { NodeBackend } from '../../src/platform/node/ort.js';
import { loadT5Encoder } from '../../src/platform/node/t5_loader.js';
import { loadTokenizer } from '../../src/platform/node/tokenizer_files.js';
import { fixture } from '../helpers/fixtures.js';
import { rng } from '../helpers/random.js';

const tokDir = fixture('t5-tokenizer');
const tmp = mkdtempSync(join(tmpdir(), 'encode-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The fixture tokenizer has 1200 ids; the embedding must have at least as many rows. */
const CONFIG = {
  architectures: ['T5EncoderModel'],
  model_type: 't5',
  d_model: 32,
  d_kv: 8,
  num_heads: 4,
  d_ff: 48,
  num_layers: 2,
  vocab_size: 1216,
  feed_forward_proj: 'gated-gelu',
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  layer_norm_epsilon: 1e-6,
};

async function readAll(path: string): Promise<Record<string, NDArray>> {
  const f = await openSafetensors(path);
  const out: Record<string, NDArray> = {};
  for (const k of f.keys()) out[k] = await f.get(k);
  await f.close();
  return out;
}

/** Runs the CLI, capturing stderr. */
async function run(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'imagen', 'encode', ...args]);
    return { code, stderr };
  } finally {
    spy.mockRestore();
  }
}

describe.skipIf(!tokDir)('imagen encode', () => {
  const pipeline = join(tmp, 'pipeline');
  const encoderDir = join(pipeline, 'text_encoder');
  const combined = join(tmp, 'combined');

  beforeAll(async () => {
    const model = new T5Encoder(CONFIG).initialize(1);
    // Norm weights like a trained model (not all ones).
    const r = rng(5);
    for (const p of model.parameters()) {
      if (p.name.endsWith('layer_norm.weight')) {
        p.set(
          NDArray.f32(
            p.shape,
            Array.from({ length: p.size }, () => 1 + 0.2 * (r() - 0.5)),
          ),
        );
      }
    }
    for (const d of [encoderDir, join(pipeline, 'tokenizer'), combined]) mkdirSync(d, { recursive: true });
    for (const d of [encoderDir, combined]) {
      writeFileSync(join(d, 'config.json'), JSON.stringify(CONFIG));
      await writeSafetensors(join(d, 'model.safetensors'), model.stateDict());
    }
    for (const f of readdirSync(tokDir!)) {
      if (f.endsWith('.json') && f !== 'cases.json') {
        copyFileSync(join(tokDir!, f), join(pipeline, 'tokenizer', f));
        copyFileSync(join(tokDir!, f), join(combined, f));
      }
      if (f === 'spiece.model') {
        copyFileSync(join(tokDir!, f), join(pipeline, 'tokenizer', f));
        copyFileSync(join(tokDir!, f), join(combined, f));
      }
    }
  });

  it('writes prompt_embeds [1,77,D] and the tokenizer mask; deterministic; same from every folder layout', async () => {
    const outs: Record<string, NDArray>[] = [];
    for (const [i, dir] of [pipeline, encoderDir, combined, pipeline].entries()) {
      const f = join(tmp, `emb-${i}.safetensors`);
      const { code, stderr } = await run(['a red circle', '--text-encoder', dir, '--out', f]);
      expect(code, stderr).toBe(0);
      outs.push(await readAll(f));
    }
    const o = outs[0]!;
    expect(Object.keys(o).sort()).toEqual(['attention_mask', 'prompt_embeds']);
    expect(o.prompt_embeds!.dtype).toBe('float32');
    expect(o.prompt_embeds!.shape).toEqual([1, 77, 32]);
    expect(o.attention_mask!.dtype).toBe('int64');
    expect(o.attention_mask!.shape).toEqual([1, 77]);
    const tok = await loadTokenizer(join(pipeline, 'tokenizer'));
    const n = tok.encode('a red circle').length;
    expect(o.attention_mask!.toArray()).toEqual(Array.from({ length: 77 }, (_, t) => (t < n ? 1 : 0)));
    const emb = o.prompt_embeds!.data as Float32Array;
    expect(emb.every(Number.isFinite)).toBe(true);
    // Padding rows are real encoder outputs, not zeros (IF keeps them).
    expect(Math.max(...Array.from(emb.subarray(76 * 32), Math.abs))).toBeGreaterThan(0);
    for (const other of outs.slice(1)) {
      expect(
        Buffer.from((other.prompt_embeds!.data as Float32Array).buffer).equals(Buffer.from(emb.buffer)),
      ).toBe(true);
    }
  });

  it('matches encodePrompts and a direct encoder call on the tokenizer ids; negative "" is </s> then padding', async () => {
    const f = join(tmp, 'neg.safetensors');
    const { code } = await run([
      'A Red Circle',
      'two cats',
      '--text-encoder',
      pipeline,
      '--negative-prompt',
      '',
      '--out',
      f,
    ]);
    expect(code).toBe(0);
    const o = await readAll(f);
    expect(o.prompt_embeds!.shape).toEqual([2, 77, 32]);
    expect(o.negative_prompt_embeds!.shape).toEqual([2, 77, 32]);
    expect(o.negative_attention_mask!.toArray().slice(0, 78)).toEqual([1, ...Array(76).fill(0), 1]);

    const rt = new Runtime(new NodeBackend({ threads: 2 }));
    const enc = await loadT5Encoder(encoderDir, { runtime: rt });
    const tok = await loadTokenizer(join(pipeline, 'tokenizer'));
    const uncond = await enc.encode(
      NDArray.i64([1, 77], [1, ...Array(76).fill(0)]),
      NDArray.i64([1, 77], [1, ...Array(76).fill(0)]),
    );
    const neg = o.negative_prompt_embeds!.data as Float32Array;
    const u = uncond.data as Float32Array;
    let err = 0;
    for (let i = 0; i < u.length; i++)
      err = Math.max(err, Math.abs(neg[i]! - u[i]!), Math.abs(neg[u.length + i]! - u[i]!));
    expect(err).toBeLessThan(1e-5);

    const api = await encodePrompts(enc, tok, ['A Red Circle', 'two cats'], { negativePrompt: '' });
    expect(api.texts).toEqual(['a red circle', 'two cats']);
    const a = api.promptEmbeds.data as Float32Array;
    const c = o.prompt_embeds!.data as Float32Array;
    let e2 = 0;
    for (let i = 0; i < a.length; i++) e2 = Math.max(e2, Math.abs(a[i]! - c[i]!));
    expect(e2).toBeLessThan(1e-5);
    // Streaming gives the same embeddings.
    const str = await loadT5Encoder(encoderDir, { runtime: rt, streaming: true });
    const s = (await encodePrompts(str, tok, ['A Red Circle', 'two cats'], { negativePrompt: '' }))
      .promptEmbeds.data as Float32Array;
    let e3 = 0;
    for (let i = 0; i < a.length; i++) e3 = Math.max(e3, Math.abs(a[i]! - s[i]!));
    expect(e3).toBeLessThan(1e-5);
    await enc.release();
    await str.release();
  });

  it('truncates long prompts to --max-length with a warning naming the dropped tokens; empty prompt allowed', async () => {
    const long = Array.from({ length: 60 }, () => 'red circle').join(' ');
    const tok = await loadTokenizer(join(pipeline, 'tokenizer'));
    const full = tok.encode(long).length;
    const f = join(tmp, 'long.safetensors');
    const { code, stderr } = await run([
      long,
      '',
      '--text-encoder',
      pipeline,
      '--out',
      f,
      '--no-clean-caption',
    ]);
    expect(code).toBe(0);
    expect(stderr).toContain(
      `warning: prompt 1 is longer than 77 tokens; ${full - 77} token(s) were dropped`,
    );
    expect(stderr).not.toContain('prompt 2');
    const o = await readAll(f);
    expect(
      o
        .attention_mask!.toArray()
        .slice(0, 77)
        .every((v) => v === 1),
    ).toBe(true);
    expect(o.attention_mask!.toArray().slice(77, 79)).toEqual([1, 0]);

    const short = join(tmp, 'short.safetensors');
    const r2 = await run(['a red circle', '--text-encoder', pipeline, '--out', short, '--max-length', '16']);
    expect(r2.code).toBe(0);
    expect((await readAll(short)).prompt_embeds!.shape).toEqual([1, 16, 32]);
  });

  it('exit code 2 for a missing folder, empty --out, bad --max-length, and a tokenizer larger than the embedding', async () => {
    const out = join(tmp, 'never.safetensors');
    const missing = await run(['x', '--text-encoder', join(tmp, 'nope'), '--out', out]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope/);
    expect((await run(['x', '--text-encoder', pipeline, '--out', ''])).code).toBe(2);
    expect((await run(['x', '--text-encoder', pipeline, '--out', out, '--max-length', 'abc'])).code).toBe(2);
    expect((await run(['x', '--out', out])).code).toBe(2);

    const small = join(tmp, 'small-vocab');
    mkdirSync(small, { recursive: true });
    const cfg = { ...CONFIG, vocab_size: 100 };
    writeFileSync(join(small, 'config.json'), JSON.stringify(cfg));
    await writeSafetensors(join(small, 'model.safetensors'), new T5Encoder(cfg).initialize(2).stateDict());
    const mismatch = await run([
      'x',
      '--text-encoder',
      small,
      '--tokenizer',
      join(pipeline, 'tokenizer'),
      '--out',
      out,
    ]);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/tokenizer has 1200 ids.*100 rows/);

    const noTok = join(tmp, 'no-tokenizer');
    mkdirSync(noTok, { recursive: true });
    copyFileSync(join(encoderDir, 'config.json'), join(noTok, 'config.json'));
    copyFileSync(join(encoderDir, 'model.safetensors'), join(noTok, 'model.safetensors'));
    const nt = await run(['x', '--text-encoder', noTok, '--out', out]);
    expect(nt.code).toBe(2);
    expect(nt.stderr).toMatch(/tokenizer/);
    expect(() => readFileSync(out)).toThrow();
  });
});
