/**
 * Proof that the engine learns: small models trained end-to-end through traced
 * forward+backward graphs and AdamW reach losses that an untrained or wrongly
 * differentiated model cannot.
 */
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/engine/graph.js';
import { NDArray, Runtime } from '../../src/engine/index.js';
import * as F from '../../src/engine/ops/index.js';
import { Conv2d, crossEntropy, GroupNorm, Linear, Module, mseLoss } from '../../src/nn/index.js';
import { NodeBackend } from '../../src/platform/node/ort.js';
import { AdamW } from '../../src/train/optim.js';
import { rng } from '../helpers/random.js';

const rt = new Runtime(new NodeBackend({ threads: 2 }));

class MLP extends Module {
  l1 = this.child(new Linear('l1', 2, 32));
  l2 = this.child(new Linear('l2', 32, 32));
  l3 = this.child(new Linear('l3', 32, 1));
  forward(x: Tensor): Tensor {
    return this.l3.forward(F.tanh(this.l2.forward(F.tanh(this.l1.forward(x)))));
  }
}

/** Spatial self-attention over H·W tokens, like a diffusers attention block (norm, q/k/v, out, residual). */
class SelfAttention extends Module {
  norm: GroupNorm;
  q: Linear;
  k: Linear;
  v: Linear;
  out: Linear;
  constructor(
    prefix: string,
    readonly ch: number,
    readonly heads: number,
  ) {
    super(prefix);
    this.norm = this.child(new GroupNorm(`${prefix}.norm`, 2, ch));
    this.q = this.child(new Linear(`${prefix}.to_q`, ch, ch));
    this.k = this.child(new Linear(`${prefix}.to_k`, ch, ch));
    this.v = this.child(new Linear(`${prefix}.to_v`, ch, ch));
    this.out = this.child(new Linear(`${prefix}.to_out`, ch, ch));
  }
  forward(x: Tensor): Tensor {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const t = F.transpose(F.reshape(this.norm.forward(x), [b, c, h * w]), 1, 2);
    const a = F.attention(this.q.forward(t), this.k.forward(t), this.v.forward(t), { numHeads: this.heads });
    const o = F.reshape(F.transpose(this.out.forward(a), 1, 2), [b, c, h, w]);
    return F.add(x, o);
  }
}

class ConvNet extends Module {
  conv1 = this.child(new Conv2d('conv1', 1, 8, 3, { padding: 1 }));
  norm1 = this.child(new GroupNorm('norm1', 2, 8));
  attn = this.child(new SelfAttention('attn', 8, 2));
  conv2 = this.child(new Conv2d('conv2', 8, 16, 3, { stride: 2, padding: 1 }));
  head = this.child(new Linear('head', 16, 4));
  forward(x: Tensor): Tensor {
    let h = F.silu(this.norm1.forward(this.conv1.forward(x)));
    h = this.attn.forward(h);
    h = F.silu(this.conv2.forward(h));
    return this.head.forward(F.reduceMean(h, [2, 3]));
  }
}

function regressionData(n: number, seed: number) {
  const r = rng(seed);
  const x = new Float32Array(n * 2);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = r() * 2 - 1;
    const b = r() * 2 - 1;
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = Math.sin(3 * a) * b;
  }
  return { x: NDArray.f32([n, 2], x), y: NDArray.f32([n, 1], y) };
}

/** 8×8 noisy images with a bright 3×3 blob in one quadrant; the label is the quadrant. */
function quadrantData(n: number, seed: number) {
  const r = rng(seed);
  const img = new Float32Array(n * 64);
  const onehot = new Float32Array(n * 4);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const q = Math.floor(r() * 4);
    labels.push(q);
    onehot[i * 4 + q] = 1;
    for (let p = 0; p < 64; p++) img[i * 64 + p] = (r() - 0.5) * 0.6;
    const oy = (q >> 1) * 4 + Math.floor(r() * 2);
    const ox = (q & 1) * 4 + Math.floor(r() * 2);
    for (let dy = 0; dy < 3; dy++) for (let dx = 0; dx < 3; dx++) img[i * 64 + (oy + dy) * 8 + ox + dx]! += 1;
  }
  return { x: NDArray.f32([n, 1, 8, 8], img), y: NDArray.f32([n, 4], onehot), labels };
}

describe('learning', () => {
  it('an MLP fits a nonlinear regression', async () => {
    const model = new MLP('').initialize(1);
    const data = regressionData(256, 7);
    const step = rt.compileGrad(({ x, y }) => mseLoss(model.forward(x!), y!), model.parameters());
    const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
    const first = (await step.run(data)).loss;
    let loss = first;
    for (let i = 0; i < 400; i++) {
      const r = await step.run(data);
      loss = r.loss;
      opt.step(r.grads);
    }
    // Var(y) ≈ 0.16: predicting the mean scores that; a learnt fit is far below.
    expect(first).toBeGreaterThan(0.05);
    expect(loss).toBeLessThan(0.005);
    expect(step.sessionCount).toBe(1); // one traced graph for the whole run
  });

  it('the same MLP with wrong (random) gradients does not reach that loss', async () => {
    const model = new MLP('').initialize(1);
    const data = regressionData(256, 7);
    const step = rt.compileGrad(({ x, y }) => mseLoss(model.forward(x!), y!), model.parameters());
    const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
    const r = rng(5);
    let loss = 0;
    for (let i = 0; i < 400; i++) {
      const res = await step.run(data);
      loss = res.loss;
      for (const g of res.grads.values()) for (let k = 0; k < g.length; k++) g[k] = r() - 0.5;
      opt.step(res.grads);
    }
    expect(loss).toBeGreaterThan(0.02);
  });

  it('a conv net with group norm and attention classifies quadrants', async () => {
    const model = new ConvNet('').initialize(2);
    const step = rt.compileGrad(({ x, y }) => crossEntropy(model.forward(x!), y!), model.parameters());
    const opt = new AdamW(model.parameters(), { lr: 5e-3, weightDecay: 0 });
    const losses: number[] = [];
    for (let i = 0; i < 150; i++) {
      const batch = quadrantData(32, 100 + i);
      const r = await step.run({ x: batch.x, y: batch.y });
      losses.push(r.loss);
      opt.step(r.grads);
    }
    const test = quadrantData(200, 9999);
    const predict = rt.compile(({ x }) => model.forward(x!));
    const logits = (await predict.run({ x: test.x })).output!.data as Float32Array;
    let correct = 0;
    test.labels.forEach((q, i) => {
      const row = Array.from(logits.subarray(i * 4, i * 4 + 4));
      if (row.indexOf(Math.max(...row)) === q) correct++;
    });
    const tail = losses.slice(-10).reduce((a, b) => a + b, 0) / 10;
    // Chance is 25% accuracy and loss ln 4 ≈ 1.39.
    expect(losses[0]).toBeGreaterThan(1.2);
    expect(tail).toBeLessThan(0.3);
    expect(correct / test.labels.length).toBeGreaterThan(0.9);
  });
});
