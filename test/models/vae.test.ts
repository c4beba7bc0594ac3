import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ImagenError, NDArray, Runtime } from '../../src/engine/index.js';
import { AutoencoderKL, VaeRunner, vaeCheckpointView } from '../../src/models/vae/autoencoder_kl.js';
import { parseVaeConfig, vaeScaleFactor } from '../../src/models/vae/config.js';
import { openSafetensors, writeSafetensors } from '../../src/platform/node/files.js';
import { NodeBackend } from '../../src/platform/node/ort.js';
import { loadVae } from '../../src/platform/node/vae_loader.js';
import { fixture } from '../helpers/fixtures.js';

const rt = new Runtime(new NodeBackend({ threads: 2 }));
const dir = fixture('sd-x4-upscaler/vae');
const tmp = mkdtempSync(join(tmpdir(), 'vae-test-'));
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

/** A smooth latent with some noise, [1, 4, h, w]. */
function latent(h: number, w: number, seed = 1): NDArray {
  let s = seed;
  const r = () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647 - 0.5;
  };
  const d = new Float32Array(4 * h * w);
  for (let c = 0; c < 4; c++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        d[(c * h + y) * w + x] = Math.sin(0.3 * x + c) * Math.cos(0.2 * y - c) + 0.3 * r();
  return new NDArray('float32', [1, 4, h, w], d);
}

const CONFIG = {
  _class_name: 'AutoencoderKL',
  act_fn: 'silu',
  block_out_channels: [16, 32, 32],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  in_channels: 3,
  out_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 8,
  sample_size: 32,
  scaling_factor: 0.08333,
  force_upcast: true,
};

describe('AutoencoderKL config', () => {
  it('parses the published keys and rejects what it cannot run', () => {
    const cfg = parseVaeConfig(CONFIG);
    expect(vaeScaleFactor(cfg)).toBe(4);
    expect(cfg.scaling_factor).toBe(0.08333);
    const bad = (patch: Record<string, unknown>, re: RegExp) => {
      let err: unknown;
      try {
        parseVaeConfig({ ...CONFIG, ...patch });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ImagenError);
      expect((err as ImagenError).code).toBe('CONFIG_INVALID');
      expect((err as ImagenError).message).toMatch(re);
    };
    bad(
      { down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'AttnDownEncoderBlock2D'] },
      /DownEncoderBlock2D/,
    );
    bad({ act_fn: 'gelu' }, /act_fn/);
    bad({ norm_num_groups: 5 }, /divisible/);
    bad({ fancy: 1 }, /unknown key "fancy"/);
    bad({ use_quant_conv: false }, /use_quant_conv/);
    bad({ _class_name: 'UNet2DConditionModel' }, /AutoencoderKL/);
    bad({ up_block_types: ['UpDecoderBlock2D'] }, /3 blocks/);
  });
});

describe('AutoencoderKL latent distribution', () => {
  it('clamps logvar to [−30, 20] and returns std = exp(logvar / 2)', async () => {
    const model = new AutoencoderKL(CONFIG).initialize(1);
    // quant_conv reduced to its bias: the moments are constants we choose.
    model.quantConv.weight.set(NDArray.f32([8, 8, 1, 1]));
    model.quantConv.bias!.set(NDArray.f32([8], [0.5, -1, 2, 0, 100, -100, 5, -0.25]));
    const vae = new VaeRunner(model, rt);
    const d = await vae.encode(NDArray.f32([1, 3, 8, 8]));
    await vae.release();
    expect(d.mean.shape).toEqual([1, 4, 2, 2]);
    const at = (a: NDArray, c: number) => (a.data as Float32Array)[c * 4]!;
    expect([0, 1, 2, 3].map((c) => at(d.mean, c))).toEqual([0.5, -1, 2, 0]);
    expect([0, 1, 2, 3].map((c) => at(d.logvar, c))).toEqual([20, -30, 5, -0.25]);
    for (const [c, lv] of [20, -30, 5, -0.25].entries())
      expect(Math.abs(at(d.std, c) / Math.exp(lv / 2) - 1)).toBeLessThan(1e-6);
  });
});

describe.skipIf(!dir)('AutoencoderKL parity with diffusers (sd-x4-upscaler/vae)', () => {
  for (const decompose of [false, true]) {
    it(`${decompose ? 'decomposed' : 'fused'} graph: decode and encode (mean, clamped logvar, std)`, async () => {
      const model = new AutoencoderKL(JSON.parse(readFileSync(join(dir!, 'config.json'), 'utf8')));
      const ckpt = await openSafetensors(join(dir!, 'diffusion_pytorch_model.safetensors'));
      await model.loadStateDict(ckpt);
      await ckpt.close();
      const inputs = await readAll(join(dir!, 'inputs.safetensors'));
      const want = await readAll(join(dir!, 'outputs.safetensors'));
      const vae = new VaeRunner(model, rt, { decompose });
      const dec = await vae.decode(inputs.latents!);
      const enc = await vae.encode(inputs.image!);
      await vae.release();
      const errs = {
        'decode.sample': relErr(dec, want['decode.sample']!),
        mean: relErr(enc.mean, want['encode.latent_dist.mean']!),
        logvar: relErr(enc.logvar, want['encode.latent_dist.logvar']!),
        std: relErr(enc.std, want['encode.latent_dist.std']!),
      };
      console.log(
        `vae ${decompose ? 'decomposed' : 'fused'}: ${Object.entries(errs)
          .map(([k, v]) => `${k} ${v.toExponential(2)}`)
          .join(', ')}`,
      );
      for (const e of Object.values(errs)) expect(e).toBeLessThanOrEqual(1e-4);
    });
  }

  it('loads a folder whose mid-block attention uses the pre-0.14 names (query/key/value/proj_attn, 1×1 conv shapes)', async () => {
    const sd = await readAll(join(dir!, 'diffusion_pytorch_model.safetensors'));
    const old: Record<string, NDArray> = {};
    const renames: [string, string][] = [
      ['to_q', 'query'],
      ['to_k', 'key'],
      ['to_v', 'value'],
      ['to_out.0', 'proj_attn'],
    ];
    for (const [k, v] of Object.entries(sd)) {
      const hit = renames.find(([n]) => k.includes(`.attentions.0.${n}.`));
      if (!hit) old[k] = v;
      else {
        const name = k.replace(`.${hit[0]}.`, `.${hit[1]}.`);
        old[name] = k.endsWith('weight') && k.includes('to_q') ? v.reshape([...v.shape, 1, 1]) : v;
      }
    }
    const d = join(tmp, 'old-names');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'config.json'), readFileSync(join(dir!, 'config.json')));
    await writeSafetensors(join(d, 'diffusion_pytorch_model.safetensors'), old);
    const vae = await loadVae(d, { runtime: rt });
    const inputs = await readAll(join(dir!, 'inputs.safetensors'));
    const want = await readAll(join(dir!, 'outputs.safetensors'));
    expect(relErr(await vae.decode(inputs.latents!), want['decode.sample']!)).toBeLessThanOrEqual(1e-4);
    await vae.release();
    // The renaming view alone: new names only, and the conv-shaped weight shown as a linear one.
    const view = vaeCheckpointView({
      keys: () => Object.keys(old),
      get: async (k) => old[k]!,
      info: (k) => ({ shape: old[k]!.shape }),
    });
    expect(view.keys().some((k) => k.includes('.query.'))).toBe(false);
    expect(view.info('decoder.mid_block.attentions.0.to_q.weight').shape).toEqual([32, 32]);
  });

  it('clear errors: missing tensors, wrong shapes, wrong input channels', async () => {
    const sd = await readAll(join(dir!, 'diffusion_pytorch_model.safetensors'));
    const { 'decoder.conv_out.bias': _drop, ...rest } = sd;
    const d = join(tmp, 'missing');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'config.json'), JSON.stringify(CONFIG));
    await writeSafetensors(join(d, 'diffusion_pytorch_model.safetensors'), rest);
    await expect(loadVae(d, { runtime: rt })).rejects.toThrow(/missing 1: decoder\.conv_out\.bias/);
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...CONFIG, latent_channels: 8 }));
    await writeSafetensors(join(d, 'diffusion_pytorch_model.safetensors'), sd);
    await expect(loadVae(d, { runtime: rt })).rejects.toThrow(/wrong shape/);
    const vae = await loadVae(dir!, { runtime: rt });
    await expect(vae.decode(NDArray.f32([1, 3, 8, 8]))).rejects.toThrow(/\[B, 4, H, W\]/);
    await expect(vae.encode(NDArray.f32([1, 3, 30, 30]))).rejects.toThrow(/multiple of 4/);
    await vae.release();
  });
});

// ---------------------------------------------------------------- tiled decoding

/** A VaeRunner whose "decoder" is nearest ×4 upsampling of latent channels 0–2: local, so tiling must be exact. */
class LocalStubRunner extends VaeRunner {
  calls: number[][] = [];
  override async decode(latents: NDArray): Promise<NDArray> {
    const [n, , h, w] = latents.shape as [number, number, number, number];
    this.calls.push([h, w]);
    const src = latents.data as Float32Array;
    const out = new Float32Array(n * 3 * 16 * h * w);
    for (let b = 0; b < n; b++)
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < 4 * h; y++)
          for (let x = 0; x < 4 * w; x++) {
            out[((b * 3 + c) * 4 * h + y) * 4 * w + x] = src[((b * 4 + c) * h + (y >> 2)) * w + (x >> 2)]!;
          }
    return new NDArray('float32', [n, 3, 4 * h, 4 * w], out);
  }
}

describe('tiled decoding (diffusers tiled_decode)', () => {
  it('is exact for a local decoder: tile grid, cross-fade weights, crops and stitching line up', async () => {
    const stub = new LocalStubRunner(new AutoencoderKL(CONFIG), rt);
    for (const [h, w, tile, overlap] of [
      [16, 16, 32, 0.25], // 8-latent tiles every 6: 3 × 3 tiles, ragged last row/column
      [20, 13, 32, 0.25],
      [24, 24, 64, 0.25],
      [17, 9, 16, 0.5],
    ] as const) {
      stub.calls = [];
      const z = latent(h, w, h * 31 + w);
      const want = await stub.decode(z);
      stub.calls = [];
      const got = await stub.decodeTiled(z, { tileSampleSize: tile, overlapFactor: overlap });
      const stride = Math.trunc((tile / 4) * (1 - overlap));
      expect(stub.calls.length).toBe(Math.ceil(h / stride) * Math.ceil(w / stride));
      expect(stub.calls.every(([th, tw]) => th! <= tile / 4 && tw! <= tile / 4)).toBe(true);
      expect(got.shape).toEqual([1, 3, 4 * h, 4 * w]);
      expect(relErr(got, want)).toBeLessThanOrEqual(1e-6);
    }
  });

  it.skipIf(!dir)(
    'with the real VAE, equals decoding each latent crop and cross-fading them by hand',
    async () => {
      const model = new AutoencoderKL(JSON.parse(readFileSync(join(dir!, 'config.json'), 'utf8')));
      const ckpt = await openSafetensors(join(dir!, 'diffusion_pytorch_model.safetensors'));
      await model.loadStateDict(ckpt);
      await ckpt.close();
      const vae = new VaeRunner(model, rt);
      // sample_size 32 → 8-latent tiles, stride 6, 8-pixel cross-fades, 24 pixels kept per tile.
      const z = latent(14, 14, 5);
      const got = await vae.decodeTiled(z);
      expect(got.shape).toEqual([1, 3, 56, 56]);
      // Independent float64 reference: an output pixel in tile (ti, tj) at offset (y, x) is the
      // decoded tile value, vertically faded with the tile above over its first 8 rows, then
      // horizontally with the (already faded) tile to the left over its first 8 columns.
      const starts = [0, 6, 12];
      const tiles: Float64Array[][] = [];
      const size: [number, number][][] = [];
      for (const i of starts) {
        const row: Float64Array[] = [];
        const sz: [number, number][] = [];
        for (const j of starts) {
          const h = Math.min(8, 14 - i);
          const w = Math.min(8, 14 - j);
          const crop = new Float32Array(4 * h * w);
          for (let c = 0; c < 4; c++)
            for (let y = 0; y < h; y++)
              for (let x = 0; x < w; x++)
                crop[(c * h + y) * w + x] = (z.data as Float32Array)[(c * 14 + i + y) * 14 + j + x]!;
          const dec = await vae.decode(new NDArray('float32', [1, 4, h, w], crop));
          row.push(Float64Array.from(dec.data as Float32Array));
          sz.push([4 * h, 4 * w]);
        }
        tiles.push(row);
        size.push(sz);
      }
      for (let ti = 0; ti < 3; ti++)
        for (let tj = 0; tj < 3; tj++) {
          const [h, w] = size[ti]![tj]!;
          const t = tiles[ti]![tj]!;
          if (ti > 0) {
            const [ha] = size[ti - 1]![tj]!;
            const a = tiles[ti - 1]![tj]!;
            const e = Math.min(ha, h, 8);
            for (let c = 0; c < 3; c++)
              for (let y = 0; y < e; y++)
                for (let x = 0; x < w; x++)
                  t[(c * h + y) * w + x] =
                    a[(c * ha + ha - e + y) * w + x]! * (1 - y / e) + t[(c * h + y) * w + x]! * (y / e);
          }
          if (tj > 0) {
            const [, wa] = size[ti]![tj - 1]!;
            const a = tiles[ti]![tj - 1]!;
            const e = Math.min(wa, w, 8);
            for (let c = 0; c < 3; c++)
              for (let y = 0; y < h; y++)
                for (let x = 0; x < e; x++)
                  t[(c * h + y) * w + x] =
                    a[(c * h + y) * wa + wa - e + x]! * (1 - x / e) + t[(c * h + y) * w + x]! * (x / e);
          }
        }
      const ref = new Float32Array(3 * 56 * 56);
      for (let ti = 0; ti < 3; ti++)
        for (let tj = 0; tj < 3; tj++) {
          const [h, w] = size[ti]![tj]!;
          for (let c = 0; c < 3; c++)
            for (let y = 0; y < Math.min(h, 24); y++)
              for (let x = 0; x < Math.min(w, 24); x++)
                ref[(c * 56 + 24 * ti + y) * 56 + 24 * tj + x] = tiles[ti]![tj]![(c * h + y) * w + x]!;
        }
      const err = relErr(got, new NDArray('float32', [1, 3, 56, 56], ref));
      expect(err).toBeLessThanOrEqual(1e-6);
      // Not the untiled decode: each tile's group norms and mid-block attention see only that tile.
      const whole = await vae.decode(z);
      console.log(
        `vae tiled vs untiled (random-weight fixture VAE, 14×14 latent): ${relErr(got, whole).toExponential(2)}`,
      );
      await vae.release();
    },
  );
});
