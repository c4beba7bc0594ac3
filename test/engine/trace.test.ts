import { onnx } from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { emitModel, grad, ImagenError, NDArray, Parameter, Runtime, Trace } from '../../src/engine/index.js';
import * as F from '../../src/engine/ops/index.js';
import { Linear, Module } from '../../src/nn/index.js';
import { NodeBackend } from '../../src/platform/node/ort.js';

const rt = new Runtime(new NodeBackend({ threads: 1 }));

class Two extends Module {
  a = this.child(new Linear('encoder.a', 4, 8));
  b = this.child(new Linear('encoder.b', 6, 2));
  forward(x: ReturnType<Trace['input']>) {
    return this.b.forward(this.a.forward(x));
  }
}

describe('tracing', () => {
  it('shape errors name the op, the layer path and both shapes at trace time', () => {
    const m = new Two('').initialize();
    const t = new Trace();
    const x = t.input('x', [3, 4]);
    let err: unknown;
    try {
      m.forward(x);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ImagenError);
    const msg = (err as Error).message;
    expect(msg).toContain('matmul');
    expect(msg).toContain('encoder.b');
    expect(msg).toContain('[3, 8]');
    expect(msg).toContain('[6, 2]');
    expect((err as ImagenError).code).toBe('SHAPE_MISMATCH');
  });

  it('broadcast errors are caught before ONNX Runtime sees the graph', () => {
    const t = new Trace();
    expect(() => F.add(t.input('a', [2, 3]), t.input('b', [4]))).toThrow(/do not broadcast/);
    expect(() => F.reshape(t.input('c', [2, 3]), [4, 2])).toThrow(/cannot reshape 6 elements/);
    expect(() => F.conv2d(t.input('d', [1, 3, 8, 8]), t.input('w', [4, 2, 3, 3]))).toThrow(/3 channels/);
  });

  it('emits a valid ONNX model (opset 21 + com.microsoft, IR 10)', () => {
    const t = new Trace();
    const x = t.input('x', [2, 4]);
    const { model } = emitModel({ y: F.gelu(F.mul(x, 2)) }, { params: 'initializer' });
    const m = onnx.ModelProto.decode(model) as unknown as {
      irVersion: number;
      opsetImport: { domain: string; version: number }[];
      graph: { node: { opType: string }[]; input: { name: string }[]; output: { name: string }[] };
    };
    expect(Number(m.irVersion)).toBe(10);
    expect(m.opsetImport.map((o) => `${o.domain}:${Number(o.version)}`).sort()).toEqual([
      ':21',
      'com.microsoft:1',
    ]);
    expect(m.graph.node.map((n) => n.opType)).toEqual(['Mul', 'Gelu', 'Identity']);
    expect(m.graph.input.map((i) => i.name)).toEqual(['x']);
    expect(m.graph.output.map((o) => o.name)).toEqual(['y']);
  });

  it('caches one session per input signature and never re-traces', async () => {
    let traces = 0;
    const f = rt.compile(({ x }) => {
      traces++;
      return F.mul(x!, 3);
    });
    await f.run({ x: NDArray.f32([2], [1, 2]) });
    await f.run({ x: NDArray.f32([2], [5, 6]) });
    const out = await f.run({ x: NDArray.f32([3], [1, 2, 3]) });
    expect(Array.from(out.output!.data as Float32Array)).toEqual([3, 6, 9]);
    expect(traces).toBe(2);
    expect(f.sessionCount).toBe(2);
  });

  it('parameters as initializers and as inputs give the same result; inputs follow updates', async () => {
    const m = new Linear('l', 3, 2).initialize(3);
    const x = NDArray.f32([1, 3], [1, -2, 0.5]);
    const asInit = rt.compile(({ x }) => m.forward(x!), { params: 'initializer' });
    const asInput = rt.compile(({ x }) => m.forward(x!), { params: 'input' });
    const a = (await asInit.run({ x })).output!.data as Float32Array;
    const b = (await asInput.run({ x })).output!.data as Float32Array;
    expect(Array.from(b)).toEqual(Array.from(a));
    const oldBias = Array.from(m.bias!.data);
    m.bias!.data.fill(10);
    const c = (await asInput.run({ x })).output!.data as Float32Array;
    const d = (await asInit.run({ x })).output!.data as Float32Array;
    for (const [i, v] of c.entries()) expect(v).toBeCloseTo(a[i]! - oldBias[i]! + 10, 5);
    expect(Array.from(d)).toEqual(Array.from(a)); // baked weights did not change
    expect(asInput.sessionCount).toBe(1);
  });

  it('keeps parameters with identical values apart when baking them in (regression)', async () => {
    // Two norm weights that are both all-ones once shared one initializer under the first name.
    const a = new Parameter('a.weight', [4], { value: NDArray.f32([4], [1, 1, 1, 1]) });
    const b = new Parameter('b.weight', [4], { value: NDArray.f32([4], [1, 1, 1, 1]) });
    const f = rt.compile(({ x }, t) => F.add(F.mul(x!, t.param(a)), t.param(b)), { params: 'initializer' });
    const out = await f.run({ x: NDArray.f32([4], [1, 2, 3, 4]) });
    expect(Array.from(out.output!.data as Float32Array)).toEqual([2, 3, 4, 5]);
  });

  it('16-bit stored parameters are cast to float32 inside the graph', async () => {
    const w32 = NDArray.f32([2, 2], [0.1, 0.2, 0.3, 1 / 3]);
    const p = new Parameter('w', [2, 2], { value: w32.cast('float16') });
    const f = rt.compile(({ x }, t) => F.matmul(x!, t.param(p)), { params: 'input' });
    const out = await f.run({ x: NDArray.f32([1, 2], [1, 1]) });
    const w = w32.cast('float16').toFloat32().data as Float32Array;
    expect(Array.from(out.output!.data as Float32Array)).toEqual(
      [w[0]! + w[2]!, w[1]! + w[3]!].map(Math.fround),
    );
  });
});

describe('autodiff', () => {
  it('accumulates gradients of reused values: d(x·x + x)/dx = 2x + 1', async () => {
    const p = new Parameter('x', [3], { value: NDArray.f32([3], [1, -2, 0.5]) });
    const g = rt.compileGrad(
      (_, t) => {
        const x = t.param(p);
        return F.reduceSum(F.add(F.mul(x, x), x));
      },
      [p],
    );
    const r = await g.run({});
    expect(Array.from(r.grads.get(p)!)).toEqual([3, -3, 2]);
  });

  it('gives no gradient to integer inputs and to unused parameters', () => {
    const t = new Trace();
    const table = t.input('table', [5, 2]);
    const ids = t.input('ids', [3], 'int64');
    const other = t.input('other', [2]);
    const y = F.reduceSum(F.gather(table, ids));
    const [gt, gi, go] = grad(y, [table, ids, other]);
    expect(gt).not.toBeNull();
    expect(gi).toBeNull();
    expect(go).toBeNull();
  });

  it('reports ops without a gradient rule clearly', () => {
    const t = new Trace();
    const x = t.input('x', [6]);
    const y = t.withScope('blocks.3', () => F.reduceSum(F.slice(x, [0], [6], [0], [2])));
    expect(() => grad(y, [x])).toThrow(/slice in blocks\.3.*step 2/);
  });
});
