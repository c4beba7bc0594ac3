import { Runtime } from '../../engine/runtime.js';
import { type ExecutionProvider, NodeBackend } from './ort.js';

export interface RuntimeOptions {
  device?: ExecutionProvider;
  threads?: number;
}

/** The Node runtime (onnxruntime-node), one per process. */
export function createRuntime(options: RuntimeOptions = {}): Runtime {
  return new Runtime(new NodeBackend(options));
}
