import type { DType } from './dtype.js';
import type { Emitter } from './emit.js';
import type { Tensor } from './graph.js';

export interface TypeInfo {
  shape: number[];
  dtype: DType;
}

/**
 * One primitive: how to infer its output type, how to lower it to ONNX, and (when it is
 * differentiable) its vector–Jacobian product written against the same tensor API — the
 * backward graph is traced like any model code and emitted in the same ONNX model.
 *
 * Composite ops (norms, GELU, attention) also give `decompose`: training traces expand them
 * into primitives so the backward pass reuses the forward intermediates, while inference
 * traces keep the node and lower it to ONNX Runtime's fused kernel via `emit`. A composite
 * that also has `vjp` (GELU) stays fused in training traces: its backward needs only its input.
 */
export interface OpDef<A = Record<string, unknown>> {
  readonly name: string;
  /** Throws a plain Error with a message naming the mismatch; the caller adds op and scope. */
  infer(inputs: readonly Tensor[], attrs: A): TypeInfo;
  emit(e: Emitter, inputs: readonly string[], attrs: A, out: Tensor): string;
  /**
   * Gradients w.r.t. each input (null: none). `y` is this node's output. `needed[i]` says whether
   * input i's gradient is used at all: a VJP whose gradients share work (attention's flat
   * accumulator) may skip an unneeded one, which graph pruning alone would keep alive.
   */
  vjp?(
    dy: Tensor,
    y: Tensor,
    inputs: readonly Tensor[],
    attrs: A,
    needed: readonly boolean[],
  ): (Tensor | null)[];
  decompose?(inputs: readonly Tensor[], attrs: A): Tensor;
}

export function defineOp<A = Record<string, unknown>>(def: OpDef<A>): OpDef<A> {
  return def;
}
