import { ImagenError } from '../../engine/errors.js';
import type { Tensor } from '../../engine/graph.js';
import * as F from '../../engine/ops/index.js';
import { Conv2d, Embedding, GroupNorm, Linear, Module } from '../../nn/index.js';
import {
  type AttnShared,
  type BlockContext,
  DownBlock,
  MidBlock,
  type ResnetShared,
  UpBlock,
} from './blocks.js';
import { isIfFamily, parseUNetConfig, textWidth, timeEmbedDim, type UNetConfig } from './config.js';
import { activation, TextTimeEmbedding, TimestepEmbedding, timestepEmbedding } from './embeddings.js';
import { type SdAttnShared, SdDownBlock, SdMidBlock, SdUpBlock } from './sd_blocks.js';

/** What the forward pass needs of a block, whichever family built it. */
interface AnyDownBlock extends Module {
  forward(x: Tensor, c: BlockContext): { x: Tensor; skips: Tensor[] };
}
interface AnyMidBlock extends Module {
  forward(x: Tensor, c: BlockContext): Tensor;
}
interface AnyUpBlock extends Module {
  forward(x: Tensor, skips: Tensor[], c: BlockContext): Tensor;
}

export interface UNetInputs {
  /** [B, in_channels, H, W] */
  sample: Tensor;
  /** [B] or [] integer (or float) timesteps. */
  timestep: Tensor;
  /** [B, L, encoder_hid_dim] raw text-encoder states (T5). */
  encoderHiddenStates: Tensor;
  /**
   * [B] noise level of the low-res conditioning image: a (float or integer) timestep for
   * class_embed_type "timestep" (IF), an integer label for num_class_embeds (SD x4 upscaler).
   */
  classLabels?: Tensor;
  /** [B, L] 1 = attend, 0 = padding. IF's pipelines pass none (padding is attended to). */
  encoderAttentionMask?: Tensor;
}

/**
 * diffusers `UNet2DConditionModel` built from config.json with diffusers' parameter names, for two
 * block families: DeepFloyd IF (Imagen's text-conditioned UNet: pooled text added to the time
 * embedding, text tokens as extra keys/values in every attention layer) and Stable Diffusion
 * (CrossAttn blocks with Transformer2DModel, conv resamplers; the x4 upscaler). Blocks are built by
 * their type, so the families could even be mixed as diffusers allows.
 */
export class UNet2DConditionModel extends Module {
  readonly config: UNetConfig;
  convIn: Conv2d;
  timeEmbedding: TimestepEmbedding;
  /** class_embed_type "timestep": the noise level embedded like a timestep (IF stage II). */
  classEmbedding: TimestepEmbedding | undefined;
  /** class_embed_type null + num_class_embeds: a learned table of integer labels (SD x4 upscaler). */
  classEmbeddingTable: Embedding | undefined;
  addEmbedding: TextTimeEmbedding | undefined;
  encoderHidProj: Linear | undefined;
  /** Every block in order, whatever its family. */
  readonly down: AnyDownBlock[] = [];
  readonly mid: AnyMidBlock;
  readonly up: AnyUpBlock[] = [];
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

    const kIn = cfg.conv_in_kernel;
    this.convIn = this.child(
      new Conv2d('conv_in', cfg.in_channels, boc[0]!, kIn, { padding: (kIn - 1) / 2 }),
    );
    this.timeEmbedding = this.child(new TimestepEmbedding('time_embedding', boc[0]!, temb, cfg.act_fn));
    if (cfg.class_embed_type === 'timestep') {
      this.classEmbedding = this.child(new TimestepEmbedding('class_embedding', boc[0]!, temb, cfg.act_fn));
    } else if (cfg.num_class_embeds !== null) {
      // diffusers: `class_embed_type is None and num_class_embeds is not None` → nn.Embedding.
      this.classEmbeddingTable = this.child(new Embedding('class_embedding', cfg.num_class_embeds, temb));
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

    // SD blocks: diffusers passes neither resnet_out_scale_factor nor resnet_skip_time_act to
    // them, so their resnets use 1 and the activated time embedding whatever the config says.
    const sdRes = (scale: number): ResnetShared => ({
      ...res(scale),
      skipTimeAct: false,
      outputScaleFactor: scale,
    });
    // attention_head_dim is the head COUNT for these blocks (diffusers' legacy naming).
    const sdAttn = (heads: number, layers: number, onlyCross: boolean): SdAttnShared => ({
      heads,
      crossDim: cfg.cross_attention_dim,
      groups: cfg.norm_num_groups,
      layers,
      linearProjection: cfg.use_linear_projection,
      onlyCross,
    });

    for (let i = 0; i < n; i++) {
      const type = cfg.down_block_types[i]!;
      const inCh = i === 0 ? boc[0]! : boc[i - 1]!;
      const last = i === n - 1;
      const prefix = `down_blocks.${i}`;
      if (type === 'DownBlock2D' || type === 'CrossAttnDownBlock2D') {
        const attnOpts =
          type === 'CrossAttnDownBlock2D'
            ? sdAttn(
                cfg.attention_head_dim[i]!,
                cfg.transformer_layers_per_block[i]!,
                cfg.only_cross_attention[i]!,
              )
            : undefined;
        this.down.push(
          this.child(
            new SdDownBlock(
              prefix,
              inCh,
              boc[i]!,
              cfg.layers_per_block[i]!,
              sdRes(1),
              attnOpts,
              last ? undefined : cfg.downsample_padding,
            ),
          ),
        );
        continue;
      }
      const hasAttn = type === 'SimpleCrossAttnDownBlock2D';
      this.down.push(
        this.child(
          new DownBlock(
            prefix,
            inCh,
            boc[i]!,
            cfg.layers_per_block[i]!,
            res(cfg.resnet_out_scale_factor),
            hasAttn ? attn(i, cfg.only_cross_attention[i]!) : undefined,
            !last,
          ),
        ),
      );
    }
    this.mid =
      cfg.mid_block_type === 'UNetMidBlock2DCrossAttn'
        ? this.child(
            new SdMidBlock(
              'mid_block',
              boc[n - 1]!,
              sdRes(cfg.mid_block_scale_factor),
              sdAttn(cfg.attention_head_dim[n - 1]!, cfg.transformer_layers_per_block[n - 1]!, false),
            ),
          )
        : this.child(
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
    const revTransformerLayers = [...cfg.transformer_layers_per_block].reverse();
    let prev = rev[0]!;
    for (let i = 0; i < n; i++) {
      const type = cfg.up_block_types[i]!;
      const out = rev[i]!;
      const skipIn = rev[Math.min(i + 1, n - 1)]!;
      const prefix = `up_blocks.${i}`;
      if (type === 'UpBlock2D' || type === 'CrossAttnUpBlock2D') {
        const attnOpts =
          type === 'CrossAttnUpBlock2D'
            ? sdAttn(revHeads[i]!, revTransformerLayers[i]!, revOnlyCross[i]!)
            : undefined;
        this.up.push(
          this.child(
            new SdUpBlock(prefix, prev, out, skipIn, revLayers[i]! + 1, sdRes(1), attnOpts, i < n - 1),
          ),
        );
        prev = out;
        continue;
      }
      const hasAttn = type === 'SimpleCrossAttnUpBlock2D';
      this.up.push(
        this.child(
          new UpBlock(
            prefix,
            prev,
            out,
            skipIn,
            revLayers[i]! + 1,
            res(cfg.resnet_out_scale_factor),
            hasAttn
              ? {
                  // diffusers indexes attention_head_dim[i] here WITHOUT reversing it (unlike every
                  // other per-block list); matching that keeps per-block head sizes loadable as-is.
                  headDim: cfg.attention_head_dim[i]!,
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
    const kOut = cfg.conv_out_kernel;
    this.convOut = this.child(
      new Conv2d('conv_out', boc[0]!, cfg.out_channels, kOut, { padding: (kOut - 1) / 2 }),
    );
  }

  /**
   * The IF-family blocks, for code that walks them by type (the weight-streaming runner).
   * A UNet with other block types has none to give: say so instead of a half-walked model.
   */
  get downBlocks(): DownBlock[] {
    return this.ifOnly(
      this.down.every((b) => b instanceof DownBlock) ? (this.down as DownBlock[]) : undefined,
    );
  }
  get midBlock(): MidBlock {
    return this.ifOnly(this.mid instanceof MidBlock ? this.mid : undefined);
  }
  get upBlocks(): UpBlock[] {
    return this.ifOnly(this.up.every((b) => b instanceof UpBlock) ? (this.up as UpBlock[]) : undefined);
  }

  private ifOnly<T>(blocks: T | undefined): T {
    if (blocks === undefined || !isIfFamily(this.config)) {
      throw new ImagenError(
        'UNSUPPORTED',
        `this UNet has ${[...new Set([...this.config.down_block_types, this.config.mid_block_type])].join(', ')} ` +
          'blocks; only DeepFloyd IF blocks can be walked block by block (e.g. weight streaming). Run it in memory.',
      );
    }
    return blocks;
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
    // SD blocks with padding-1 downsamplers handle any size (diffusers' upsample_size); IF's
    // avg-pool resnets and the asymmetric padding-0 conv need sides divisible by the total factor.
    const anySize = this.down.every((b) => b instanceof SdDownBlock) && cfg.downsample_padding === 1;
    if (!anySize && (h! % div || w! % div))
      bad(`height and width must be multiples of ${div}, got ${h}×${w}`);
    const e = i.encoderHiddenStates;
    if (e.rank !== 3 || e.shape[0] !== b || e.shape[2] !== textWidth(cfg)) {
      bad(`encoder_hidden_states must be [${b}, L, ${textWidth(cfg)}], got [${e.shape.join(', ')}]`);
    }
    if (cfg.class_embed_type === 'timestep' && !i.classLabels) {
      bad(
        'this UNet has class_embed_type "timestep" (a super-resolution stage): class_labels (the noise level) are required',
      );
    }
    if (this.classEmbeddingTable && !i.classLabels) {
      bad(
        `this UNet has a class embedding table (num_class_embeds ${cfg.num_class_embeds}): class_labels ` +
          '(the noise level of the low-res image, for the x4 upscaler) are required',
      );
    }
    if (cfg.class_embed_type === null && !this.classEmbeddingTable && i.classLabels) {
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
    if (this.classEmbeddingTable && inputs.classLabels) {
      let cl = F.expand(F.reshape(inputs.classLabels, [-1]), [b]);
      if (cl.dtype !== 'int64' && cl.dtype !== 'int32') cl = F.cast(cl, 'int64');
      emb = F.add(emb, this.classEmbeddingTable.forward(cl));
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
    for (const blk of this.down) {
      const r = blk.forward(x, c);
      x = r.x;
      skips.push(...r.skips);
    }
    x = this.mid.forward(x, c);
    for (const blk of this.up) x = blk.forward(x, skips, c);
    return tr.atScope('conv_out', () =>
      this.convOut.forward(activation(cfg.act_fn, this.convNormOut.forward(x))),
    );
  }
}
