import type { Tensor } from '../engine/graph.js';
import * as F from '../engine/ops/index.js';

/** log-softmax with the max subtracted first (the max carries no gradient, as in torch). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const m = F.detach(F.reduceMax(x, [axis], true));
  const z = F.sub(x, m);
  return F.sub(z, F.log(F.reduceSum(F.exp(z), [axis], true)));
}

/** Mean cross-entropy of logits [B, K] against one-hot targets [B, K]. */
export function crossEntropy(logits: Tensor, oneHot: Tensor): Tensor {
  return F.neg(F.reduceMean(F.reduceSum(F.mul(logSoftmax(logits, -1), oneHot), [-1])));
}

export function mseLoss(a: Tensor, b: Tensor): Tensor {
  const d = F.sub(a, b);
  return F.reduceMean(F.mul(d, d));
}
