import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import type { DType } from '../../engine/dtype.js';
import { ImagenError } from '../../engine/errors.js';
import { NDArray } from '../../engine/ndarray.js';
import type { Backend, BackendSession, SessionOptions } from '../../engine/runtime.js';

const ORT_TYPE: Partial<Record<DType, ort.Tensor.Type>> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  int64: 'int64',
  int32: 'int32',
  uint8: 'uint8',
  bool: 'bool',
};

function toOrt(name: string, a: NDArray): ort.Tensor {
  const type = ORT_TYPE[a.dtype];
  if (!type) {
    throw new ImagenError(
      'DTYPE_MISMATCH',
      `input ${name}: ONNX Runtime has no ${a.dtype} tensors; cast to float32 first`,
    );
  }
  return new ort.Tensor(type, a.data as never, [...a.shape]);
}

function fromOrt(t: ort.Tensor): NDArray {
  const dtype = t.type as DType;
  return new NDArray(dtype, [...t.dims], t.data as never);
}

export type ExecutionProvider = 'cpu' | 'cuda';

export interface NodeBackendOptions {
  device?: ExecutionProvider;
  threads?: number;
}

/** ONNX Runtime for Node (CPU, or CUDA where the provider is installed). */
export class NodeBackend implements Backend {
  readonly name: string;
  private readonly threads: number;

  constructor(private readonly options: NodeBackendOptions = {}) {
    this.name = `onnxruntime-node:${options.device ?? 'cpu'}`;
    this.threads = options.threads ?? (Number(process.env.IMAGEN_THREADS ?? 0) || availableParallelism());
  }

  async createSession(model: Uint8Array, options: SessionOptions = {}): Promise<BackendSession> {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: [this.options.device ?? 'cpu'],
      intraOpNumThreads: options.threads ?? this.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      // Idle ORT threads spin and steal the cores from JS and from the next session (notes §3).
      extra: {
        session: {
          intra_op: { allow_spinning: '0' },
          ...(options.lowMemory ? { disable_prepacking: '1' } : {}),
        },
      },
    });
    return {
      async run(feeds, outputNames) {
        const ortFeeds: Record<string, ort.Tensor> = {};
        for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(k, v);
        const out = await session.run(ortFeeds, outputNames as string[]);
        const res: Record<string, NDArray> = {};
        for (const k of outputNames) res[k] = fromOrt(out[k]!);
        return res;
      },
      release: () => session.release(),
    };
  }
}
