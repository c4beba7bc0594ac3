import { ImagenError } from '../../engine/errors.js';
import type { Tensor } from '../../engine/graph.js';
import * as F from '../../engine/ops/index.js';
import { Conv2d, GroupNorm, Linear, Module } from '../../nn/index.js';
import {
  type AttnShared,
  type BlockContext,
  DownBlock,
  MidBlock,
  type ResnetShared,
  UpBlock,
} from './blocks.js';
import { parseUNetConfig, textWidth, timeEmbedDim, type UNetConfig } from './config.js';
import { activation, TextTimeEmbedding, TimestepEmbedding, timestepEmbedding } from './embeddings.js';

export interface UNetInputs {
  /** [B, in_channels, H, W] */
  sample: Tensor;
  /** [B] or [] integer (or float) timesteps. */
  timestep: Tensor;
  /** [B, L, encoder_hid_dim] raw text-encoder states (T5). */
  encoderHiddenStates: Tensor;
  /** [B] noise level of the low-res conditioning image (class_embed_type "timestep"). */
  classLabels?: Tensor;
  /** [B, L] 1 = attend, 0 = padding. IF's pipelines pass none (padding is attended to). */
  encoderAttentionMask?: Tensor;
}

/**
 * diffusers `UNet2DConditionModel` for the DeepFloyd IF block family, built from config.json with
 * diffusers' parameter names (Imagen's text-conditioned UNet: pooled text added to the time
 * embedding, text tokens as extra keys/values in every attention layer).
 */
export class UNet2DConditionModel extends Module {
  readonly config: UNetConfig;
  convIn: Conv2d;
  timeEmbedding: TimestepEmbedding;
  classEmbedding: TimestepEmbedding | undefined;
  addEmbedding: TextTimeEmbedding | undefined;
  encoderHidProj: Linear | undefined;
  downBlocks: DownBlock[] = [];
  midBlock: MidBlock;
  upBlocks: UpBlock[] = [];
  convNormOut: GroupNorm;
  convOut: Conv2d;

  constructor(config: unknown) {
    super('');
    const cfg = parseUNetConfig(config);
    this.config = cfg;
    const boc = cfg.block_out_channels;
    const n = boc.length;
    const temb = timeEmbedDim(cfg);
    const text = textWidth(cfg);

    this.convIn = this.child(new Conv2d('conv_in', cfg.in_channels, boc[0]!, 3, { padding: 1 }));
    this.timeEmbedding = this.child(new TimestepEmbedding('time_embedding', boc[0]!, temb, cfg.act_fn));
    if (cfg.class_embed_type === 'timestep') {
      this.classEmbedding = this.child(new TimestepEmbedding('class_embedding', boc[0]!, temb, cfg.act_fn));
    }
    if (cfg.encoder_hid_dim_type === 'text_proj') {
      this.encoderHidProj = this.child(
        new Linear('encoder_hid_proj', cfg.encoder_hid_dim!, cfg.cross_attention_dim),
      );
    }
    if (cfg.addition_embed_type === 'text') {
      this.addEmbedding = this.child(
        new TextTimeEmbedding('add_embedding', text, temb, cfg.addition_embed_type_num_heads),
      );
    }

    const res = (scale: number): ResnetShared => ({
      tembChannels: temb,
      groups: cfg.norm_num_groups,
      eps: cfg.norm_eps,
      act: cfg.act_fn,
      scaleShift: cfg.resnet_time_scale_shift === 'scale_shift',
      skipTimeAct: cfg.resnet_skip_time_act,
      outputScaleFactor: scale,
    });
    const attn = (i: number, onlyCross: boolean): AttnShared => ({
      headDim: cfg.attention_head_dim[i]!,
      crossDim: cfg.cross_attention_dim,
      groups: cfg.norm_num_groups,
      onlyCross,
    });

    for (let i = 0; i < n; i++) {
      const hasAttn = cfg.down_block_types[i] === 'SimpleCrossAttnDownBlock2D';
      this.downBlocks.push(
        this.child(
          new DownBlock(
            `down_blocks.${i}`,
            i === 0 ? boc[0]! : boc[i - 1]!,
            boc[i]!,
            cfg.layers_per_block[i]!,
            res(cfg.resnet_out_scale_factor),
            hasAttn ? attn(i, cfg.only_cross_attention[i]!) : undefined,
            i < n - 1,
          ),
        ),
      );
    }
    this.midBlock = this.child(
      new MidBlock(
        'mid_block',
        boc[n - 1]!,
        res(cfg.mid_block_scale_factor),
        attn(n - 1, cfg.mid_block_only_cross_attention ?? cfg.only_cross_attention[n - 1]!),
      ),
    );
    const rev = [...boc].reverse();
    const revHeads = [...cfg.attention_head_dim].reverse();
    const revLayers = [...cfg.layers_per_block].reverse();
    const revOnlyCross = [...cfg.only_cross_attention].reverse();
    let prev = rev[0]!;
    for (let i = 0; i < n; i++) {
      const hasAttn = cfg.up_block_types[i] === 'SimpleCrossAttnUpBlock2D';
      const out = rev[i]!;
      const skipIn = rev[Math.min(i + 1, n - 1)]!;
      this.upBlocks.push(
        this.child(
          new UpBlock(
            `up_blocks.${i}`,
            prev,
            out,
            skipIn,
            revLayers[i]! + 1,
            res(cfg.resnet_out_scale_factor),
            hasAttn
              ? {
                  headDim: revHeads[i]!,
                  crossDim: cfg.cross_attention_dim,
                  groups: cfg.norm_num_groups,
                  onlyCross: revOnlyCross[i]!,
                }
              : undefined,
            i < n - 1,
          ),
        ),
      );
      prev = out;
    }
    this.convNormOut = this.child(new GroupNorm('conv_norm_out', cfg.norm_num_groups, boc[0]!, cfg.norm_eps));
    this.convOut = this.child(new Conv2d('conv_out', boc[0]!, cfg.out_channels, 3, { padding: 1 }));
  }

  /** Checks that fail early with a message a user can act on (a stage-II folder given as stage I, etc.). */
  private validate(i: UNetInputs): void {
    const cfg = this.config;
    const [b, c, h, w] = i.sample.shape;
    const bad = (msg: string): never => {
      throw new ImagenError('SHAPE_MISMATCH', `UNet: ${msg}`);
    };
    if (i.sample.rank !== 4) bad(`sample must be [B, C, H, W], got rank ${i.sample.rank}`);
    if (c !== cfg.in_channels) {
      bad(
        `sample has ${c} channels but this UNet takes ${cfg.in_channels}` +
          (cfg.in_channels === 2 * c!
            ? ' (a super-resolution UNet: it also needs the upscaled low-res image)'
            : ''),
      );
    }
    const div = 2 ** (cfg.block_out_channels.length - 1);
    if (h! % div || w! % div) bad(`height and width must be multiples of ${div}, got ${h}×${w}`);
    const e = i.encoderHiddenStates;
    if (e.rank !== 3 || e.shape[0] !== b || e.shape[2] !== textWidth(cfg)) {
      bad(`encoder_hidden_states must be [${b}, L, ${textWidth(cfg)}], got [${e.shape.join(', ')}]`);
    }
    if (cfg.class_embed_type === 'timestep' && !i.classLabels) {
      bad(
        'this UNet has class_embed_type "timestep" (a super-resolution stage): class_labels (the noise level) are required',
      );
    }
    if (cfg.class_embed_type === null && i.classLabels) {
      bad('class_labels given but this UNet has no class embedding (is this a stage-I model?)');
    }
  }

  forward(inputs: UNetInputs): Tensor {
    this.validate(inputs);
    const cfg = this.config;
    const { sample, encoderHiddenStates: enc } = inputs;
    const b = sample.shape[0]!;
    const boc0 = cfg.block_out_channels[0]!;
    const tr = sample.trace;

    const t = F.expand(F.reshape(inputs.timestep, [-1]), [b]);
    let emb = this.timeEmbedding.forward(timestepEmbedding(t, boc0, cfg.flip_sin_to_cos, cfg.freq_shift));
    if (this.classEmbedding && inputs.classLabels) {
      const cl = F.expand(F.reshape(inputs.classLabels, [-1]), [b]);
      emb = F.add(
        emb,
        this.classEmbedding.forward(timestepEmbedding(cl, boc0, cfg.flip_sin_to_cos, cfg.freq_shift)),
      );
    }
    if (this.addEmbedding) emb = F.add(emb, this.addEmbedding.forward(enc));
    if (cfg.time_embedding_act_fn) emb = activation(cfg.time_embedding_act_fn, emb);
    const ctx = this.encoderHidProj ? this.encoderHidProj.forward(enc) : enc;

    let textBias: Tensor | undefined;
    if (inputs.encoderAttentionMask) {
      // (1 − mask)·−10000 on text keys, as diffusers converts encoder_attention_mask.
      const m = F.cast(inputs.encoderAttentionMask, 'float32');
      textBias = F.reshape(F.mul(F.sub(1, m), -10000), [b, 1, 1, m.shape[1]!]);
    }
    const c: BlockContext = { temb: emb, ctx, textBias };

    let x = this.convIn.forward(sample);
    const skips: Tensor[] = [x];
    for (const blk of this.downBlocks) {
      const r = blk.forward(x, c);
      x = r.x;
      skips.push(...r.skips);
    }
    x = this.midBlock.forward(x, c);
    for (const blk of this.upBlocks) x = blk.forward(x, skips, c);
    return tr.atScope('conv_out', () =>
      this.convOut.forward(activation(cfg.act_fn, this.convNormOut.forward(x))),
    );
  }
}
