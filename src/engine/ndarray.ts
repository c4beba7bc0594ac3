import { type AnyTypedArray, allocate, type DType, float32ToHalf, halfToFloat32 } from './dtype.js';
import { ImagenError } from './errors.js';

/**
 * Concrete tensor data: a dtype, a shape and a flat row-major typed array.
 * This is what crosses the boundary to ONNX Runtime and to safetensors files;
 * symbolic (traced) tensors live in `tensor.ts`.
 */
export class NDArray {
  constructor(
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly data: AnyTypedArray,
  ) {
    const n = sizeOf(shape);
    if (data.length !== n) {
      throw new ImagenError(
        'SHAPE_MISMATCH',
        `NDArray: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${n}`,
      );
    }
  }

  get size(): number {
    return this.data.length;
  }

  static zeros(dtype: DType, shape: readonly number[]): NDArray {
    return new NDArray(dtype, [...shape], allocate(dtype, sizeOf(shape)));
  }

  static f32(shape: readonly number[], data?: ArrayLike<number>): NDArray {
    const arr = data ? Float32Array.from(data) : new Float32Array(sizeOf(shape));
    return new NDArray('float32', [...shape], arr);
  }

  static i64(shape: readonly number[], data: ArrayLike<number | bigint>): NDArray {
    const arr = new BigInt64Array(data.length);
    for (let i = 0; i < data.length; i++) arr[i] = BigInt(data[i]!);
    return new NDArray('int64', [...shape], arr);
  }

  static scalar(x: number): NDArray {
    return new NDArray('float32', [], Float32Array.of(x));
  }

  /** float32 view of any float dtype (copies for 16-bit storage and float64). */
  toFloat32(): NDArray {
    switch (this.dtype) {
      case 'float32':
        return this;
      case 'float16':
      case 'bfloat16':
        return new NDArray('float32', this.shape, halfToFloat32(this.data as Uint16Array, this.dtype));
      case 'float64':
        return new NDArray('float32', this.shape, Float32Array.from(this.data as Float64Array));
      case 'int64':
        return new NDArray(
          'float32',
          this.shape,
          Float32Array.from(this.data as BigInt64Array, (v) => Number(v)),
        );
      default:
        return new NDArray('float32', this.shape, Float32Array.from(this.data as ArrayLike<number>));
    }
  }

  /** Convert between float storage types. */
  cast(dtype: DType): NDArray {
    if (dtype === this.dtype) return this;
    if (dtype === 'float32') return this.toFloat32();
    const f = this.toFloat32().data as Float32Array;
    switch (dtype) {
      case 'float16':
      case 'bfloat16':
        return new NDArray(dtype, this.shape, float32ToHalf(f, dtype));
      case 'float64':
        return new NDArray(dtype, this.shape, Float64Array.from(f));
      case 'int64':
        return new NDArray(
          dtype,
          this.shape,
          BigInt64Array.from(f, (v) => BigInt(Math.trunc(v))),
        );
      case 'int32':
        return new NDArray(dtype, this.shape, Int32Array.from(f));
      case 'uint8':
      case 'bool':
        return new NDArray(
          dtype,
          this.shape,
          Uint8Array.from(f, (v) => (dtype === 'bool' ? (v ? 1 : 0) : v)),
        );
    }
    throw new ImagenError('CONFIG_INVALID', `cannot cast ${this.dtype} to ${dtype}`);
  }

  /** Numbers as a plain JS array (int64 converted with Number()). */
  toArray(): number[] {
    if (this.data instanceof BigInt64Array) return Array.from(this.data, (v) => Number(v));
    if (this.dtype === 'float16' || this.dtype === 'bfloat16')
      return Array.from(this.toFloat32().data as Float32Array);
    return Array.from(this.data as ArrayLike<number>);
  }

  reshape(shape: readonly number[]): NDArray {
    return new NDArray(this.dtype, [...shape], this.data);
  }
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
