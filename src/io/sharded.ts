/**
 * Checkpoints split over several safetensors files, as `save_pretrained(max_shard_size=…)`
 * writes them: `*.safetensors.index.json` = `{metadata?, weight_map: {tensor: shardFile}}`.
 * Platform-neutral: opening a shard is the caller's callback (file, URL, browser File).
 */
import { ImagenError } from '../engine/errors.js';
import type { NDArray } from '../engine/ndarray.js';
import type { SafetensorsFile, TensorInfo } from './safetensors.js';

/** What model loaders consume; a single `SafetensorsFile` satisfies it as well. */
export interface CheckpointReader {
  keys(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  get(name: string): Promise<NDArray>;
  getFloat32(name: string): Promise<NDArray>;
  close?(): Promise<void>;
}

export interface ShardIndex {
  /** transformers/diffusers write `{total_size: number}` here, so values are not only strings. */
  metadata?: Record<string, unknown>;
  weight_map: Record<string, string>;
}

export type OpenShard = (fileName: string) => Promise<SafetensorsFile>;

export class ShardedCheckpoint implements CheckpointReader {
  private constructor(
    /** Index path or URL, for error messages. */
    readonly name: string,
    readonly metadata: Record<string, unknown>,
    private readonly weightMap: Map<string, string>,
    private readonly shards: Map<string, SafetensorsFile>,
  ) {}

  /**
   * Validates `index` and opens every shard it names, once each. Opening a shard reads only
   * its header (KBs), so checking up front that every mapped tensor really is in its shard
   * costs little and lets `info` stay synchronous; tensor bytes are still read only by `get`.
   */
  static async open(
    index: unknown,
    openShard: OpenShard,
    name = 'checkpoint index',
  ): Promise<ShardedCheckpoint> {
    const fail: (problem: string) => never = (problem) => {
      throw new ImagenError('FILE_INVALID', `${name}: ${problem}`);
    };
    if (typeof index !== 'object' || index === null || Array.isArray(index))
      fail('index must be a JSON object');
    const idx = index as Record<string, unknown>;
    const meta = idx.metadata;
    if (meta !== undefined && (typeof meta !== 'object' || meta === null || Array.isArray(meta))) {
      fail('"metadata" must be an object');
    }
    const wm = idx.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
      fail('missing "weight_map" object (tensor name → shard file name)');
    }
    const weightMap = new Map<string, string>();
    for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof file !== 'string' || file === '') {
        fail(`weight_map entry for "${tensor}" must be a shard file name, got ${JSON.stringify(file)}`);
      }
      weightMap.set(tensor, file as string);
    }

    const files = [...new Set(weightMap.values())];
    const settled = await Promise.allSettled(files.map((f) => openShard(f)));
    const shards = new Map<string, SafetensorsFile>();
    settled.forEach((r, i) => {
      if (r.status === 'fulfilled') shards.set(files[i]!, r.value);
    });
    const closeAll = () => Promise.allSettled([...shards.values()].map((s) => s.close()));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await closeAll();
      throw failed.reason;
    }
    for (const [tensor, file] of weightMap) {
      if (!shards.get(file)!.has(tensor)) {
        await closeAll();
        fail(
          `weight_map maps tensor "${tensor}" to shard "${file}", but that shard has no tensor "${tensor}"`,
        );
      }
    }
    return new ShardedCheckpoint(
      name,
      { ...(meta as Record<string, unknown> | undefined) },
      weightMap,
      shards,
    );
  }

  keys(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** The shard file a tensor lives in. */
  shardOf(name: string): string {
    return this.lookup(name)[0];
  }

  info(name: string): TensorInfo {
    const [, shard] = this.lookup(name);
    return shard.info(name);
  }

  async get(name: string): Promise<NDArray> {
    const [, shard] = this.lookup(name);
    return shard.get(name);
  }

  async getFloat32(name: string): Promise<NDArray> {
    const [, shard] = this.lookup(name);
    return shard.getFloat32(name);
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled([...this.shards.values()].map((s) => s.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private lookup(name: string): [string, SafetensorsFile] {
    const file = this.weightMap.get(name);
    if (file === undefined) {
      throw new ImagenError(
        'NOT_FOUND',
        `${this.name}: no tensor named "${name}" in the weight_map (${this.weightMap.size} tensors)`,
      );
    }
    return [file, this.shards.get(file)!];
  }
}
