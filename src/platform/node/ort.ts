import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
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
  /** Where a fallback notice goes (default: console.warn). */
  onWarning?: (message: string) => void;
}

/** Folder of onnxruntime-node's native binding, where the optional CUDA provider library goes. */
function ortBinaryDir(): string | undefined {
  try {
    const main = createRequire(import.meta.url).resolve('onnxruntime-node');
    return join(dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/**
 * Why ORT's CUDA execution provider cannot run in this process, or undefined when it can be tried.
 * The npm package does not bundle the CUDA provider (it is a separate download at install time), and
 * it needs an NVIDIA driver; both are checked without loading anything.
 */
export function cudaUnavailableReason(): string | undefined {
  if (process.platform !== 'linux' && process.platform !== 'win32') {
    return `onnxruntime-node has no CUDA provider for ${process.platform}`;
  }
  const dir = ortBinaryDir();
  const lib =
    process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  if (!dir || !existsSync(join(dir, lib))) {
    return (
      `${lib} is not installed with onnxruntime-node (its CUDA binaries are an optional download: ` +
      'reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12, or npm install --onnxruntime-node-install=cuda12)'
    );
  }
  if (
    process.platform === 'linux' &&
    !existsSync('/proc/driver/nvidia/version') &&
    !existsSync('/dev/nvidiactl')
  ) {
    return 'no NVIDIA driver found (/proc/driver/nvidia/version and /dev/nvidiactl are absent)';
  }
  return undefined;
}

/** Whether `--device cuda` can be tried here (the session itself may still fail, and then falls back). */
export function cudaAvailable(): boolean {
  return cudaUnavailableReason() === undefined;
}

/** ONNX Runtime for Node (CPU, or CUDA where the provider is installed; otherwise CPU with a notice). */
export class NodeBackend implements Backend {
  private readonly threads: number;
  /** The provider sessions are created with: `cuda` falls back to `cpu` when it cannot run. */
  private current: ExecutionProvider;
  private readonly warn: (message: string) => void;

  constructor(options: NodeBackendOptions = {}) {
    this.threads = options.threads ?? (Number(process.env.IMAGEN_THREADS ?? 0) || availableParallelism());
    this.warn = options.onWarning ?? ((m) => console.warn(m));
    this.current = options.device ?? 'cpu';
    if (this.current === 'cuda') {
      const why = cudaUnavailableReason();
      if (why) this.fallBack(why);
    }
  }

  get name(): string {
    return `onnxruntime-node:${this.current}`;
  }

  /** The execution provider in use (after any fallback). */
  get device(): ExecutionProvider {
    return this.current;
  }

  private fallBack(why: string): void {
    this.current = 'cpu';
    this.warn(
      `[imagen] --device cuda: ONNX Runtime's CUDA execution provider is not available (${why}); running on CPU.`,
    );
  }

  async createSession(model: Uint8Array, options: SessionOptions = {}): Promise<BackendSession> {
    const create = (device: ExecutionProvider) =>
      ort.InferenceSession.create(model, {
        // CUDA lists CPU second: ORT places the nodes CUDA has no kernel for on the CPU.
        executionProviders: device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
        intraOpNumThreads: options.threads ?? this.threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        // lowMemory: no arena, so a session's workspace goes back to the allocator after each run
        // instead of staying at its high-water mark (many sessions alive at once: streaming UNet).
        ...(options.lowMemory ? { enableCpuMemArena: false, enableMemPattern: false } : {}),
        ...(options.memoryPattern === false ? { enableMemPattern: false } : {}),
        // Idle ORT threads spin and steal the cores from JS and from the next session (notes §3).
        extra: {
          session: {
            intra_op: { allow_spinning: '0' },
            ...(options.lowMemory ? { disable_prepacking: '1' } : {}),
          },
        },
      });
    let session: ort.InferenceSession;
    if (this.current === 'cuda') {
      try {
        session = await create('cuda');
      } catch (e) {
        // The provider library is there but cannot start (driver/CUDA/cuDNN version): say so once.
        this.fallBack(`session creation failed: ${(e as Error).message.split('\n')[0]}`);
        session = await create('cpu');
      }
    } else {
      session = await create('cpu');
    }
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
