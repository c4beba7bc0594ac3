export * from './conv.js';
export * from './elementwise.js';
export * from './linalg.js';
export * from './nn.js';
export * from './reduce_shape.js';
export * from './resample.js';
export type { TensorLike } from './util.js';
export { broadcastShapes } from './util.js';
