import type { Tensor } from '../graph.js';
import { defineOp } from '../op.js';
import { cast, div, equal, mul, sumTo } from './elementwise.js';
import { normAxis, prod } from './util.js';

// ---------------------------------------------------------------- reductions

interface ReduceAttrs {
  axes: number[];
  keepdims: boolean;
}

function reducedShape(shape: readonly number[], axes: readonly number[], keepdims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (axes.includes(i)) {
      if (keepdims) out.push(1);
    } else out.push(d);
  });
  return out;
}

function normAxes(axes: readonly number[] | undefined, rank: number): number[] {
  const all = axes ?? [...Array(rank).keys()];
  const out = [...new Set(all.map((a) => normAxis(a, rank)))].sort((a, b) => a - b);
  return out;
}

/** Broadcast a reduced gradient back over the reduced axes. */
function unreduce(dy: Tensor, x: Tensor, axes: readonly number[], keepdims: boolean): Tensor {
  const kept = keepdims ? dy : reshape(dy, reducedShape(x.shape, axes, true));
  return expand(kept, x.shape);
}

function reduceOp(name: string, onnx: string) {
  return defineOp<ReduceAttrs>({
    name,
    infer: ([x], { axes, keepdims }) => ({ shape: reducedShape(x!.shape, axes, keepdims), dtype: x!.dtype }),
    emit: (e, [x], { axes, keepdims }) =>
      axes.length === 0
        ? e.node('Identity', [x!])
        : e.node(onnx, [x!, e.constI64(axes)], { keepdims: e.int(keepdims ? 1 : 0) }),
  });
}

export const reduceSumOp = {
  ...reduceOp('reduceSum', 'ReduceSum'),
  vjp: (dy: Tensor, _y: Tensor, [x]: readonly Tensor[], a: ReduceAttrs) => [
    unreduce(dy, x!, a.axes, a.keepdims),
  ],
};
export const reduceMeanOp = {
  ...reduceOp('reduceMean', 'ReduceMean'),
  vjp: (dy: Tensor, _y: Tensor, [x]: readonly Tensor[], a: ReduceAttrs) => {
    const n = a.axes.reduce((s, ax) => s * x!.shape[ax]!, 1);
    return [div(unreduce(dy, x!, a.axes, a.keepdims), n)];
  },
};
// The gradient is shared equally among tied maxima (as torch.amax does).
export const reduceMaxOp = {
  ...reduceOp('reduceMax', 'ReduceMax'),
  vjp: (dy: Tensor, y: Tensor, [x]: readonly Tensor[], a: ReduceAttrs) => {
    const ymax = unreduce(y, x!, a.axes, a.keepdims);
    const mask = cast(equal(x!, ymax), x!.dtype);
    const count = reduceSum(mask, a.axes, true);
    return [div(mul(unreduce(dy, x!, a.axes, a.keepdims), mask), expand(count, x!.shape))];
  },
};
export const reduceMinOp = {
  ...reduceOp('reduceMin', 'ReduceMin'),
  vjp: reduceMaxOp.vjp,
};

const red =
  (op: typeof reduceSumOp) =>
  (x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor =>
    x.trace.apply(op, [x], {
      axes: normAxes(typeof axes === 'number' ? [axes] : axes, x.rank),
      keepdims,
    });
export const reduceSum = red(reduceSumOp);
export const reduceMean = red(reduceMeanOp);
export const reduceMax = red(reduceMaxOp);
export const reduceMin = red(reduceMinOp);

// ---------------------------------------------------------------- reshape / permute / expand

export const reshapeOp = defineOp<{ shape: number[] }>({
  name: 'reshape',
  infer: ([x], { shape }) => {
    if (prod(shape) !== x!.size)
      throw new Error(`cannot reshape ${x!.size} elements to [${shape.join(', ')}]`);
    return { shape: [...shape], dtype: x!.dtype };
  },
  emit: (e, [x], { shape }) => e.node('Reshape', [x!, e.constI64(shape)]),
  vjp: (dy, _y, [x]) => [reshape(dy, x!.shape)],
});

/** Reshape; one dimension may be −1 (inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.reduce((s, d) => (d === -1 ? s : s * d), 1);
  const full = shape.map((d) => (d === -1 ? x.size / known : d));
  if (full.length === x.rank && full.every((d, i) => d === x.shape[i])) return x;
  return x.trace.apply(reshapeOp, [x], { shape: full });
}

export const permuteOp = defineOp<{ perm: number[] }>({
  name: 'permute',
  infer: ([x], { perm }) => {
    if (perm.length !== x!.rank || [...perm].sort().some((p, i) => p !== i)) {
      throw new Error(`perm [${perm.join(', ')}] is not a permutation of ${x!.rank} axes`);
    }
    return { shape: perm.map((p) => x!.shape[p]!), dtype: x!.dtype };
  },
  emit: (e, [x], { perm }) => e.node('Transpose', [x!], { perm: e.ints(perm) }),
  vjp: (dy, _y, _x, { perm }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => {
      inv[p] = i;
    });
    return [permute(dy, inv)];
  },
});

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.every((p, i) => p === i)) return x;
  return x.trace.apply(permuteOp, [x], { perm: [...perm] });
}

/** Swap two axes (negative indices allowed). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = [...Array(x.rank).keys()];
  const ia = normAxis(a, x.rank);
  const ib = normAxis(b, x.rank);
  perm[ia] = ib;
  perm[ib] = ia;
  return permute(x, perm);
}

export const expandOp = defineOp<{ shape: number[] }>({
  name: 'expand',
  infer: ([x], { shape }) => {
    const lead = shape.length - x!.rank;
    if (lead < 0) throw new Error(`cannot expand rank ${x!.rank} to rank ${shape.length}`);
    x!.shape.forEach((d, i) => {
      if (d !== 1 && d !== shape[lead + i]) throw new Error(`cannot expand to [${shape.join(', ')}]`);
    });
    return { shape: [...shape], dtype: x!.dtype };
  },
  emit: (e, [x], { shape }) => e.node('Expand', [x!, e.constI64(shape)]),
  vjp: (dy, _y, [x]) => [sumTo(dy, x!.shape)],
});

export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length === x.rank && shape.every((d, i) => d === x.shape[i])) return x;
  return x.trace.apply(expandOp, [x], { shape: [...shape] });
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? axis + x.rank + 1 : axis;
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

export function squeeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.rank);
  if (x.shape[a] !== 1) throw new Error(`squeeze: axis ${axis} has size ${x.shape[a]}`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== a),
  );
}

// ---------------------------------------------------------------- slice / concat / pad

interface SliceAttrs {
  starts: number[];
  ends: number[];
  axes: number[];
  steps: number[];
}

/** Clamp like ONNX Slice and return the number of selected elements per axis. */
function sliceLen(dim: number, start: number, end: number, step: number): [number, number] {
  if (step === 0) throw new Error('slice step must not be 0');
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), dim);
    e = Math.min(Math.max(e, 0), dim);
    return [s, Math.max(0, Math.ceil((e - s) / step))];
  }
  s = Math.min(Math.max(s, -1), dim - 1);
  e = Math.min(Math.max(e, -1), dim - 1);
  return [s, Math.max(0, Math.ceil((s - e) / -step))];
}

export const sliceOp = defineOp<SliceAttrs>({
  name: 'slice',
  infer: ([x], a) => {
    const shape = [...x!.shape];
    a.axes.forEach((ax, i) => {
      shape[ax] = sliceLen(x!.shape[ax]!, a.starts[i]!, a.ends[i]!, a.steps[i]!)[1];
    });
    return { shape, dtype: x!.dtype };
  },
  emit: (e, [x], a) =>
    e.node('Slice', [x!, e.constI64(a.starts), e.constI64(a.ends), e.constI64(a.axes), e.constI64(a.steps)]),
  // Adjoint of a unit-step slice: zero-pad back to the input; step −1 (a flip) is flipped back first.
  vjp: (dy, _y, [x], a) => {
    let g = dy;
    const pads: [number, number][] = x!.shape.map(() => [0, 0]);
    a.axes.forEach((ax, i) => {
      const dim = x!.shape[ax]!;
      const [s, n] = sliceLen(dim, a.starts[i]!, a.ends[i]!, a.steps[i]!);
      const step = a.steps[i]!;
      if (step === 1) pads[ax] = [s, dim - s - n];
      else if (step === -1) {
        g = flip(g, ax);
        pads[ax] = [s - n + 1, dim - 1 - s];
      } else throw new Error(`no gradient for slice with step ${step}`);
    });
    return [pad(g, pads)];
  },
});

/** ONNX-style slice over the given axes. */
export function slice(
  x: Tensor,
  starts: readonly number[],
  ends: readonly number[],
  axes?: readonly number[],
  steps?: readonly number[],
): Tensor {
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(a, x.rank));
  return x.trace.apply(sliceOp, [x], {
    starts: [...starts],
    ends: [...ends],
    axes: ax,
    steps: steps ? [...steps] : starts.map(() => 1),
  });
}

/** x[..., start:end, ...] along one axis. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normAxis(axis, x.rank);
  if (start === 0 && length === x.shape[a]) return x;
  return slice(x, [start], [start + length], [a]);
}

export function flip(x: Tensor, axis: number): Tensor {
  return slice(x, [-1], [Number.MIN_SAFE_INTEGER], [axis], [-1]);
}

export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const a = normAxis(axis, x.rank);
  let off = 0;
  return sizes.map((n) => {
    const t = narrow(x, a, off, n);
    off += n;
    return t;
  });
}

/** Split into `n` equal chunks (torch.chunk for divisible sizes). */
export function chunk(x: Tensor, n: number, axis: number): Tensor[] {
  const a = normAxis(axis, x.rank);
  const d = x.shape[a]!;
  if (d % n !== 0) throw new Error(`chunk: dim ${d} is not divisible by ${n}`);
  return split(x, new Array(n).fill(d / n), a);
}

export const concatOp = defineOp<{ axis: number }>({
  name: 'concat',
  infer: (xs, { axis }) => {
    const first = xs[0]!;
    const shape = [...first.shape];
    shape[axis] = 0;
    for (const t of xs) {
      if (t.rank !== first.rank || t.shape.some((d, i) => i !== axis && d !== first.shape[i])) {
        throw new Error(`concat along axis ${axis} needs equal other dims`);
      }
      if (t.dtype !== first.dtype) throw new Error('concat needs equal dtypes');
      shape[axis]! += t.shape[axis]!;
    }
    return { shape, dtype: first.dtype };
  },
  emit: (e, xs, { axis }) => e.node('Concat', [...xs], { axis: e.int(axis) }),
  vjp: (dy, _y, xs, { axis }) =>
    split(
      dy,
      xs.map((t) => t.shape[axis]!),
      axis,
    ),
});

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error('concat of nothing');
  if (xs.length === 1) return xs[0]!;
  return xs[0]!.trace.apply(concatOp, xs, { axis: normAxis(axis, xs[0]!.rank) });
}

export function stack(xs: readonly Tensor[], axis: number): Tensor {
  return concat(
    xs.map((t) => unsqueeze(t, axis)),
    axis,
  );
}

export const padOp = defineOp<{ pads: [number, number][]; value: number }>({
  name: 'pad',
  infer: ([x], { pads }) => {
    if (pads.length !== x!.rank) throw new Error(`pad needs ${x!.rank} [before, after] pairs`);
    return { shape: x!.shape.map((d, i) => d + pads[i]![0] + pads[i]![1]), dtype: x!.dtype };
  },
  emit: (e, [x], { pads, value }, out) =>
    e.node('Pad', [
      x!,
      e.constI64([...pads.map((p) => p[0]), ...pads.map((p) => p[1])]),
      e.constScalar(value, out.dtype),
    ]),
  vjp: (dy, _y, [x], { pads }) => [
    slice(
      dy,
      pads.map((p) => p[0]),
      pads.map((p, i) => p[0] + x!.shape[i]!),
    ),
  ],
});

/** Constant padding; `pads[i] = [before, after]` for every axis (negative pads are not allowed). */
export function pad(x: Tensor, pads: readonly (readonly [number, number])[], value = 0): Tensor {
  if (pads.every((p) => p[0] === 0 && p[1] === 0)) return x;
  if (pads.some((p) => p[0] < 0 || p[1] < 0)) throw new Error('pad: negative padding');
  return x.trace.apply(padOp, [x], { pads: pads.map((p) => [p[0], p[1]] as [number, number]), value });
}

// ---------------------------------------------------------------- gather (embedding lookup)

export const scatterAddRowsOp = defineOp<{ rows: number }>({
  name: 'scatterAddRows',
  infer: ([ids, upd], { rows }) => {
    if (ids!.dtype !== 'int64' && ids!.dtype !== 'int32') throw new Error('ids must be int64/int32');
    return { shape: [rows, ...upd!.shape.slice(ids!.rank)], dtype: upd!.dtype };
  },
  // Duplicate ids must add up (ScatterND reduction=add), as an embedding gradient requires.
  emit: (e, [ids, upd], _attrs, out) => {
    const zeros = e.constZeros(out.shape, out.dtype);
    const idx = e.node('Unsqueeze', [ids!, e.constI64([-1])]);
    return e.node('ScatterND', [zeros, idx, upd!], { reduction: e.str('add') });
  },
});

export const gatherOp = defineOp({
  name: 'gather',
  infer: ([table, ids]) => {
    if (ids!.dtype !== 'int64' && ids!.dtype !== 'int32') {
      throw new Error(`ids must be int64 or int32, got ${ids!.dtype}`);
    }
    return { shape: [...ids!.shape, ...table!.shape.slice(1)], dtype: table!.dtype };
  },
  emit: (e, [table, ids]) => e.node('Gather', [table!, ids!], { axis: e.int(0) }),
  vjp: (dy, _y, [table, ids]) => [
    dy.trace.apply(scatterAddRowsOp, [ids!, dy], { rows: table!.shape[0]! }),
    null,
  ],
});

/** Rows of `table` selected by integer `ids` (embedding lookup, torch.nn.functional.embedding). */
export function gather(table: Tensor, ids: Tensor): Tensor {
  return table.trace.apply(gatherOp, [table, ids], {});
}
