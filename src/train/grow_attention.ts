/**
 * Grow a trained UNet: turn resnet-only down/up blocks into SimpleCrossAttn blocks without
 * losing what it learned. diffusers names the resnets and resamplers of both block kinds the
 * same, so they keep their weights; each new attention adds its output to the residual stream
 * through `to_out.0`, which starts at zero, so the grown model computes exactly what the old one
 * did until training moves it (the "zero module" of ControlNet and of IF's own attention inits).
 */
import { ImagenError } from '../engine/errors.js';
import { NDArray } from '../engine/ndarray.js';
import { UNet2DConditionModel } from '../models/unet/unet.js';

export interface GrowAttentionOptions {
  /** Indices into down_block_types to become SimpleCrossAttnDownBlock2D. */
  down?: readonly number[];
  /** Indices into up_block_types to become SimpleCrossAttnUpBlock2D (up blocks run coarse → fine). */
  up?: readonly number[];
  /** Seed of the new attentions' other weights. */
  seed?: number;
}

const SWAP: Record<'down' | 'up', [string, string]> = {
  down: ['ResnetDownsampleBlock2D', 'SimpleCrossAttnDownBlock2D'],
  up: ['ResnetUpsampleBlock2D', 'SimpleCrossAttnUpBlock2D'],
};

/** The UNet config with the named blocks given attention. */
export function growAttentionConfig(
  config: Record<string, unknown>,
  o: GrowAttentionOptions,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  for (const side of ['down', 'up'] as const) {
    const key = `${side}_block_types`;
    const types = [...((config[key] as string[] | undefined) ?? [])];
    const [from, to] = SWAP[side];
    for (const i of o[side] ?? []) {
      if (types[i] !== from)
        throw new ImagenError('BAD_INPUT', `${side} block ${i} is ${types[i] ?? 'absent'}, not ${from}`);
      types[i] = to;
    }
    out[key] = types;
  }
  return out;
}

/**
 * Build the grown UNet with the old weights in place. `old` is any checkpoint reader (a
 * safetensors file, or `memorySource` of a state dict); every one of its tensors must be used.
 */
export async function growAttention(
  config: Record<string, unknown>,
  old: { keys(): string[]; get(name: string): Promise<NDArray> },
  o: GrowAttentionOptions,
): Promise<{ unet: UNet2DConditionModel; config: Record<string, unknown>; added: string[] }> {
  const grown = growAttentionConfig(config, o);
  const unet = new UNet2DConditionModel(grown).initialize(o.seed ?? 0);
  const unused = new Set(old.keys());
  const added: string[] = [];
  for (const [name, p] of unet.namedParameters()) {
    if (unused.delete(name)) {
      p.set((await old.get(name)).toFloat32());
      continue;
    }
    if (!/\.attentions\.\d+\./.test(name))
      throw new ImagenError('WEIGHTS_MISMATCH', `${name} is missing from the old weights`);
    if (name.includes('.to_out.0.')) p.set(NDArray.zeros('float32', p.shape));
    added.push(name);
  }
  if (unused.size)
    throw new ImagenError(
      'WEIGHTS_MISMATCH',
      `the grown UNet lacks ${unused.size} old weights: ${[...unused].slice(0, 4).join(', ')}`,
    );
  return { unet, config: grown, added };
}
