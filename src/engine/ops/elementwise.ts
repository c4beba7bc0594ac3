import type { DType } from '../dtype.js';
import { isFloat } from '../dtype.js';
import { registerCast, type Tensor } from '../graph.js';
import { defineOp, type OpDef } from '../op.js';
import { reduceSum, reshape } from './reduce_shape.js';
import { broadcastShapes, sameDtype, type TensorLike } from './util.js';

// ---------------------------------------------------------------- unary

interface UnarySpec {
  name: string;
  onnx: string;
  /** Gradient given dy, y = f(x), x; 'none' for ops with no gradient (sign, stop-gradient). */
  grad?: ((dy: Tensor, y: Tensor, x: Tensor) => Tensor) | 'none';
  float?: boolean;
}

function unaryOp(spec: UnarySpec): OpDef {
  return defineOp({
    name: spec.name,
    infer: ([x]) => {
      if (spec.float !== false && !isFloat(x!.dtype))
        throw new Error(`needs a float tensor, got ${x!.dtype}`);
      return { shape: [...x!.shape], dtype: x!.dtype };
    },
    emit: (e, [x]) => e.node(spec.onnx, [x!]),
    vjp:
      spec.grad === 'none'
        ? () => [null]
        : spec.grad
          ? (dy, y, [x]) => [(spec.grad as (dy: Tensor, y: Tensor, x: Tensor) => Tensor)(dy, y, x!)]
          : undefined,
  });
}

const ops = {
  neg: unaryOp({ name: 'neg', onnx: 'Neg', float: false, grad: (dy) => neg(dy) }),
  exp: unaryOp({ name: 'exp', onnx: 'Exp', grad: (dy, y) => mul(dy, y) }), // d/dx e^x = e^x
  log: unaryOp({ name: 'log', onnx: 'Log', grad: (dy, _y, x) => div(dy, x) }),
  sqrt: unaryOp({ name: 'sqrt', onnx: 'Sqrt', grad: (dy, y) => div(mul(dy, 0.5), y) }),
  reciprocal: unaryOp({ name: 'reciprocal', onnx: 'Reciprocal', grad: (dy, y) => neg(mul(dy, mul(y, y))) }),
  tanh: unaryOp({ name: 'tanh', onnx: 'Tanh', grad: (dy, y) => mul(dy, sub(1, mul(y, y))) }),
  // d/dx erf(x) = 2/√π · e^{−x²}
  erf: unaryOp({
    name: 'erf',
    onnx: 'Erf',
    grad: (dy, _y, x) => mul(dy, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI))),
  }),
  sigmoid: unaryOp({ name: 'sigmoid', onnx: 'Sigmoid', grad: (dy, y) => mul(dy, mul(y, sub(1, y))) }),
  relu: unaryOp({ name: 'relu', onnx: 'Relu', grad: (dy, _y, x) => where(greater(x, 0), dy, 0) }),
  abs: unaryOp({ name: 'abs', onnx: 'Abs', float: false, grad: (dy, _y, x) => mul(dy, sign(x)) }),
  sign: unaryOp({ name: 'sign', onnx: 'Sign', float: false, grad: 'none' }),
  sin: unaryOp({ name: 'sin', onnx: 'Sin', grad: (dy, _y, x) => mul(dy, cos(x)) }),
  cos: unaryOp({ name: 'cos', onnx: 'Cos', grad: (dy, _y, x) => neg(mul(dy, sin(x))) }),
  floor: unaryOp({ name: 'floor', onnx: 'Floor' }),
  detach: unaryOp({ name: 'detach', onnx: 'Identity', float: false, grad: 'none' }),
};

export const unaryOps = ops;

const u = (op: OpDef) => (x: Tensor) => x.trace.apply(op, [x], {});
export const neg = u(ops.neg);
export const exp = u(ops.exp);
export const log = u(ops.log);
export const sqrt = u(ops.sqrt);
export const reciprocal = u(ops.reciprocal);
export const tanh = u(ops.tanh);
export const erf = u(ops.erf);
export const sigmoid = u(ops.sigmoid);
export const relu = u(ops.relu);
export const abs = u(ops.abs);
export const sign = u(ops.sign);
export const sin = u(ops.sin);
export const cos = u(ops.cos);
export const floor = u(ops.floor);
/** Stop gradient. */
export const detach = u(ops.detach);

export const rsqrt = (x: Tensor) => reciprocal(sqrt(x));
export const square = (x: Tensor) => mul(x, x);
export const silu = (x: Tensor) => mul(x, sigmoid(x));

// ---------------------------------------------------------------- cast

export const castOp = defineOp<{ to: DType }>({
  name: 'cast',
  infer: ([x], { to }) => ({ shape: [...x!.shape], dtype: to }),
  emit: (e, [x], { to }) => e.node('Cast', [x!], { to: e.dtypeAttr(to) }),
  vjp: (dy, _y, [x]) => [isFloat(x!.dtype) ? cast(dy, x!.dtype) : null],
});

export function cast(x: Tensor, to: DType): Tensor {
  if (x.dtype === to) return x;
  return x.trace.apply(castOp, [x], { to });
}
registerCast(cast);

// ---------------------------------------------------------------- binary (NumPy broadcasting)

/** Sum `g` down to `shape`, undoing broadcasting (the adjoint of broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.shape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const r = axes.length ? reduceSum(g, axes, true) : g;
  return reshape(r, shape);
}

interface BinarySpec {
  name: string;
  onnx: string;
  grad?: (dy: Tensor, y: Tensor, a: Tensor, b: Tensor) => [Tensor | null, Tensor | null];
  outDtype?: DType;
}

function binaryOp(spec: BinarySpec): OpDef {
  return defineOp({
    name: spec.name,
    infer: ([a, b]) => ({
      shape: broadcastShapes(a!.shape, b!.shape),
      dtype: spec.outDtype ?? sameDtype(spec.name, [a!, b!]),
    }),
    emit: (e, [a, b]) => e.node(spec.onnx, [a!, b!]),
    vjp: spec.grad
      ? (dy, y, [a, b]) => {
          const [ga, gb] = spec.grad!(dy, y, a!, b!);
          return [ga && sumTo(ga, a!.shape), gb && sumTo(gb, b!.shape)];
        }
      : (_dy, _y, ins) => ins.map(() => null),
  });
}

export const binaryOps = {
  add: binaryOp({ name: 'add', onnx: 'Add', grad: (dy) => [dy, dy] }),
  sub: binaryOp({ name: 'sub', onnx: 'Sub', grad: (dy) => [dy, neg(dy)] }),
  mul: binaryOp({ name: 'mul', onnx: 'Mul', grad: (dy, _y, a, b) => [mul(dy, b), mul(dy, a)] }),
  // d(a/b) = da/b − a·db/b²
  div: binaryOp({
    name: 'div',
    onnx: 'Div',
    grad: (dy, y, _a, b) => [div(dy, b), neg(div(mul(dy, y), b))],
  }),
  // d(a^b)/da = b·a^(b−1); d(a^b)/db = a^b·ln a
  pow: binaryOp({
    name: 'pow',
    onnx: 'Pow',
    grad: (dy, y, a, b) => [mul(dy, mul(b, pow(a, sub(b, 1)))), mul(dy, mul(y, log(a)))],
  }),
  // Ties send the gradient to `a`, like a mask from a ≥ b.
  maximum: binaryOp({
    name: 'maximum',
    onnx: 'Max',
    grad: (dy, _y, a, b) => {
      const m = greaterOrEqual(a, b);
      return [where(m, dy, 0), where(m, 0, dy)];
    },
  }),
  minimum: binaryOp({
    name: 'minimum',
    onnx: 'Min',
    grad: (dy, _y, a, b) => {
      const m = lessOrEqual(a, b);
      return [where(m, dy, 0), where(m, 0, dy)];
    },
  }),
  equal: binaryOp({ name: 'equal', onnx: 'Equal', outDtype: 'bool' }),
  less: binaryOp({ name: 'less', onnx: 'Less', outDtype: 'bool' }),
  greater: binaryOp({ name: 'greater', onnx: 'Greater', outDtype: 'bool' }),
  lessOrEqual: binaryOp({ name: 'lessOrEqual', onnx: 'LessOrEqual', outDtype: 'bool' }),
  greaterOrEqual: binaryOp({ name: 'greaterOrEqual', onnx: 'GreaterOrEqual', outDtype: 'bool' }),
  and: binaryOp({ name: 'and', onnx: 'And', outDtype: 'bool' }),
  or: binaryOp({ name: 'or', onnx: 'Or', outDtype: 'bool' }),
};

/** Lift numbers to scalar constants of the other operand's dtype. */
function lift(a: TensorLike, b: TensorLike): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number')
    throw new Error('at least one operand must be a tensor');
  const ta = typeof a === 'number' ? (b as Tensor).trace.scalar(a, (b as Tensor).dtype) : a;
  const tb = typeof b === 'number' ? ta.trace.scalar(b, ta.dtype) : b;
  return [ta, tb];
}

const bin = (op: OpDef) => (a: TensorLike, b: TensorLike) => {
  const [ta, tb] = lift(a, b);
  return ta.trace.apply(op, [ta, tb], {});
};
export const add = bin(binaryOps.add);
export const sub = bin(binaryOps.sub);
export const mul = bin(binaryOps.mul);
export const div = bin(binaryOps.div);
export const pow = bin(binaryOps.pow);
export const maximum = bin(binaryOps.maximum);
export const minimum = bin(binaryOps.minimum);
export const equal = bin(binaryOps.equal);
export const less = bin(binaryOps.less);
export const greater = bin(binaryOps.greater);
export const lessOrEqual = bin(binaryOps.lessOrEqual);
export const greaterOrEqual = bin(binaryOps.greaterOrEqual);
export const logicalAnd = bin(binaryOps.and);
export const logicalOr = bin(binaryOps.or);

export const whereOp = defineOp({
  name: 'where',
  infer: ([c, a, b]) => {
    if (c!.dtype !== 'bool') throw new Error(`condition must be bool, got ${c!.dtype}`);
    return {
      shape: broadcastShapes(c!.shape, broadcastShapes(a!.shape, b!.shape)),
      dtype: sameDtype('where', [a!, b!]),
    };
  },
  emit: (e, [c, a, b]) => e.node('Where', [c!, a!, b!]),
  vjp: (dy, _y, [c, a, b]) => [null, sumTo(where(c!, dy, 0), a!.shape), sumTo(where(c!, 0, dy), b!.shape)],
});

export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const ref = typeof a === 'number' ? (typeof b === 'number' ? undefined : b) : a;
  const dtype = ref?.dtype ?? 'float32';
  const ta = typeof a === 'number' ? cond.trace.scalar(a, dtype) : a;
  const tb = typeof b === 'number' ? cond.trace.scalar(b, dtype) : b;
  return cond.trace.apply(whereOp, [cond, ta, tb], {});
}
