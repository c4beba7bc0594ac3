import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImagenError } from '../../src/engine/errors.js';
import { NDArray } from '../../src/engine/ndarray.js';
import { bytesSource, encodeSafetensors, SafetensorsFile } from '../../src/io/safetensors.js';
import { ShardedCheckpoint } from '../../src/io/sharded.js';
import { atomicWriteFile, openCheckpoint, writeSafetensors } from '../../src/platform/node/files.js';

const w1 = NDArray.f32([2, 3], [1, 2, 3, 4, 5, 6]);
const b1 = NDArray.f32([3], [0.5, -0.5, 0.25]);
const w2 = NDArray.f32([3, 2], [6, 5, 4, 3, 2, 1]);
const steps = NDArray.i64([1], [7]);

const shard1 = 'diffusion_pytorch_model-00001-of-00002.safetensors';
const shard2 = 'diffusion_pytorch_model-00002-of-00002.safetensors';
const index = {
  metadata: { total_size: 64 },
  weight_map: { 'l1.weight': shard1, 'l1.bias': shard1, 'l2.weight': shard2, steps: shard2 },
};

async function rejection(p: Promise<unknown>): Promise<ImagenError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImagenError);
  return err as ImagenError;
}

describe('ShardedCheckpoint (in memory)', () => {
  const files: Record<string, Uint8Array> = {
    [shard1]: encodeSafetensors({ 'l1.weight': w1, 'l1.bias': b1 }),
    [shard2]: encodeSafetensors({ 'l2.weight': w2, steps }),
  };
  const opener = () => {
    const opened: string[] = [];
    let closed = 0;
    const open = async (name: string) => {
      opened.push(name);
      const bytes = files[name];
      if (!bytes) throw new ImagenError('NOT_FOUND', `no shard ${name}`);
      return SafetensorsFile.open({
        ...bytesSource(name, bytes),
        close: async () => {
          closed++;
        },
      });
    };
    return { open, opened, closed: () => closed };
  };

  it('opens each shard once and serves every tensor from its shard', async () => {
    const o = opener();
    const ck = await ShardedCheckpoint.open(index, o.open, 'model.safetensors.index.json');
    expect(o.opened.sort()).toEqual([shard1, shard2]);
    expect(ck.keys()).toEqual(['l1.weight', 'l1.bias', 'l2.weight', 'steps']);
    expect(ck.metadata).toEqual({ total_size: 64 });
    expect(ck.has('l2.weight')).toBe(true);
    expect(ck.has('nope')).toBe(false);
    expect(ck.shardOf('steps')).toBe(shard2);
    expect(ck.info('l2.weight')).toMatchObject({ dtype: 'float32', shape: [3, 2] });
    expect((await ck.get('l1.weight')).toArray()).toEqual(w1.toArray());
    expect((await ck.getFloat32('steps')).toArray()).toEqual([7]);
    expect(o.opened).toHaveLength(2);
    const err = await rejection(ck.get('nope'));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain('"nope"');
    await ck.close();
    expect(o.closed()).toBe(2);
  });

  it('names the tensor and the shard when a mapped tensor is missing, and closes what it opened', async () => {
    const o = opener();
    const bad = { weight_map: { ...index.weight_map, 'l3.weight': shard2 } };
    const err = await rejection(ShardedCheckpoint.open(bad, o.open, 'idx.json'));
    expect(err.code).toBe('FILE_INVALID');
    expect(err.message).toContain('idx.json');
    expect(err.message).toContain('"l3.weight"');
    expect(err.message).toContain(shard2);
    expect(o.closed()).toBe(2);
  });

  it('passes on a shard that cannot be opened, closing the others', async () => {
    const o = opener();
    const bad = { weight_map: { 'l1.weight': shard1, x: 'missing.safetensors' } };
    const err = await rejection(ShardedCheckpoint.open(bad, o.open));
    expect(err.message).toContain('missing.safetensors');
    expect(o.closed()).toBe(1);
  });

  it.each([
    ['not an object', [1, 2], 'index must be a JSON object'],
    ['no weight_map', { metadata: {} }, 'missing "weight_map"'],
    ['weight_map array', { weight_map: [] }, 'missing "weight_map"'],
    ['bad shard name', { weight_map: { a: 3 } }, 'weight_map entry for "a" must be a shard file name'],
    ['bad metadata', { metadata: 'x', weight_map: {} }, '"metadata" must be an object'],
  ])('rejects an invalid index (%s)', async (_label, idx, phrase) => {
    const err = await rejection(ShardedCheckpoint.open(idx, opener().open, 'bad.index.json'));
    expect(err.code).toBe('FILE_INVALID');
    expect(err.message).toContain('bad.index.json');
    expect(err.message).toContain(phrase);
  });
});

describe('openCheckpoint (node)', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'imagen-ck-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function folder(name: string): Promise<string> {
    const d = join(root, name);
    await mkdir(d, { recursive: true });
    return d;
  }

  async function writeSharded(dir: string, indexName = 'diffusion_pytorch_model.safetensors.index.json') {
    await writeSafetensors(join(dir, shard1), { 'l1.weight': w1, 'l1.bias': b1 });
    await writeSafetensors(join(dir, shard2), { 'l2.weight': w2, steps });
    await atomicWriteFile(join(dir, indexName), JSON.stringify(index));
  }

  it('reads a sharded checkpoint from its folder', async () => {
    const dir = await folder('sharded');
    await writeSharded(dir);
    const ck = await openCheckpoint(dir);
    try {
      expect(ck.keys().sort()).toEqual(['l1.bias', 'l1.weight', 'l2.weight', 'steps']);
      expect((await ck.get('l2.weight')).toArray()).toEqual(w2.toArray());
      expect((await ck.get('l1.bias')).toArray()).toEqual(b1.toArray());
      expect(ck.info('steps').dtype).toBe('int64');
    } finally {
      await ck.close();
    }
  });

  it('reads a sharded checkpoint from the index path, and a single file from its path', async () => {
    const dir = await folder('direct');
    await writeSharded(dir, 'custom.safetensors.index.json');
    const ck = await openCheckpoint(join(dir, 'custom.safetensors.index.json'));
    expect((await ck.get('l1.weight')).toArray()).toEqual(w1.toArray());
    await ck.close();
    const single = await openCheckpoint(join(dir, shard2));
    expect(single.keys().sort()).toEqual(['l2.weight', 'steps']);
    await single.close();
  });

  it('reports a tensor missing from its shard with both names', async () => {
    const dir = await folder('missing-tensor');
    await writeSharded(dir);
    const idx = { weight_map: { ...index.weight_map, 'extra.weight': shard1 } };
    await atomicWriteFile(join(dir, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify(idx));
    const err = await rejection(openCheckpoint(dir));
    expect(err.code).toBe('FILE_INVALID');
    expect(err.message).toContain('"extra.weight"');
    expect(err.message).toContain(shard1);
  });

  it('reports a missing shard file as NOT_FOUND naming it', async () => {
    const dir = await folder('missing-shard');
    await writeSharded(dir);
    await rm(join(dir, shard2));
    const err = await rejection(openCheckpoint(dir));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain(shard2);
  });

  it('keeps shard paths inside the checkpoint folder', async () => {
    const dir = await folder('traversal');
    await atomicWriteFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { a: '../x.safetensors' } }),
    );
    const err = await rejection(openCheckpoint(dir));
    expect(err.code).toBe('FILE_INVALID');
    expect(err.message).toContain('outside the checkpoint folder');
  });

  it('reports an index that is not JSON', async () => {
    const dir = await folder('bad-json');
    await writeFile(join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    const err = await rejection(openCheckpoint(dir));
    expect(err.code).toBe('FILE_INVALID');
    expect(err.message).toContain('index is not valid JSON');
  });

  it("variant 'fp16' picks *.fp16.safetensors; no variant picks the plain file", async () => {
    const dir = await folder('variant');
    await writeSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), { w: w1 });
    await writeSafetensors(join(dir, 'diffusion_pytorch_model.fp16.safetensors'), { w: w1.cast('float16') });
    const plain = await openCheckpoint(dir);
    expect(plain.info('w').dtype).toBe('float32');
    await plain.close();
    const half = await openCheckpoint(dir, { variant: 'fp16' });
    expect(half.info('w').dtype).toBe('float16');
    expect((await half.getFloat32('w')).toArray()).toEqual(w1.toArray());
    await half.close();
  });

  it("variant 'fp16' finds a sharded fp16 index as diffusers names it", async () => {
    const dir = await folder('variant-sharded');
    await writeSharded(dir, 'model.safetensors.index.fp16.json');
    const ck = await openCheckpoint(dir, { variant: 'fp16' });
    expect(ck.keys()).toHaveLength(4);
    await ck.close();
  });

  it('transformers-style model.safetensors is found too', async () => {
    const dir = await folder('transformers');
    await writeSafetensors(join(dir, 'model.safetensors'), { 'shared.weight': w2 });
    const ck = await openCheckpoint(dir);
    expect(ck.keys()).toEqual(['shared.weight']);
    await ck.close();
  });

  it('NOT_FOUND lists what was looked for, and hints at the variant', async () => {
    const dir = await folder('empty');
    let err = await rejection(openCheckpoint(dir));
    expect(err.code).toBe('NOT_FOUND');
    for (const name of [
      'diffusion_pytorch_model.safetensors',
      'diffusion_pytorch_model.safetensors.index.json',
      'model.safetensors',
      'model.safetensors.index.json',
    ]) {
      expect(err.message).toContain(name);
    }
    await writeSafetensors(join(dir, 'model.safetensors'), { w: w1 });
    err = await rejection(openCheckpoint(dir, { variant: 'fp16' }));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain('model.fp16.safetensors');
    expect(err.message).toContain('without the fp16 variant');
    err = await rejection(openCheckpoint(join(root, 'does-not-exist')));
    expect(err.code).toBe('NOT_FOUND');
  });

  it('refuses pickle-only folders and pickle files', async () => {
    const dir = await folder('pickles');
    await writeFile(join(dir, 'diffusion_pytorch_model.bin'), 'not really a pickle');
    let err = await rejection(openCheckpoint(dir));
    expect(err.message).toContain('pickle checkpoints are not loaded for safety; convert to safetensors');
    expect(err.message).toContain('diffusion_pytorch_model.bin');
    err = await rejection(openCheckpoint(join(dir, 'diffusion_pytorch_model.bin')));
    expect(err.message).toContain('pickle checkpoints are not loaded for safety');
  });
});
