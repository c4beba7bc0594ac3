import { describe, expect, it } from 'vitest';
import { concatBatch, repeatBatch, repeatRows } from '../../src/diffusion/guidance.js';
import { NDArray } from '../../src/engine/ndarray.js';

const rows = NDArray.f32([2, 1, 2], [1, 2, 3, 4]);

describe('batch helpers', () => {
  it('repeatRows repeats each row in place (a a b b), like repeat_interleave', () => {
    const r = repeatRows(rows, 3);
    expect(r.shape).toEqual([6, 1, 2]);
    expect(Array.from(r.data as Float32Array)).toEqual([1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4]);
    expect(repeatRows(rows, 1)).toBe(rows);
    const ids = repeatRows(NDArray.i64([2], [7, 8]), 2);
    expect(ids.dtype).toBe('int64');
    expect(Array.from(ids.data as BigInt64Array, Number)).toEqual([7, 7, 8, 8]);
  });

  it('repeatBatch repeats the whole batch (a b a b); concatBatch stacks batches', () => {
    expect(Array.from(repeatBatch(rows, 2).data as Float32Array)).toEqual([1, 2, 3, 4, 1, 2, 3, 4]);
    const c = concatBatch([rows, NDArray.f32([1, 1, 2], [5, 6])]);
    expect(c.shape).toEqual([3, 1, 2]);
    expect(Array.from(c.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
