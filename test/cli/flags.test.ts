import { describe, expect, it } from 'vitest';
import { intFlag } from '../../src/cli/image_flags.js';

describe('intFlag', () => {
  it('accepts integers in range, names the flag and the range otherwise', () => {
    expect(intFlag('0', '--noise-level', 0, 999)).toBe(0);
    expect(intFlag('999', '--noise-level', 0, 999)).toBe(999);
    expect(intFlag('4096', '--sr-tile-size', 0)).toBe(4096);
    expect(() => intFlag('1000', '--noise-level', 0, 999)).toThrow(
      /--noise-level must be an integer in 0\.\.999, got "1000"/,
    );
    expect(() => intFlag('2.5', '--count', 1, 10)).toThrow(/--count must be an integer in 1\.\.10/);
    expect(() => intFlag('-1', '--sr-tile-overlap', 0)).toThrow(/--sr-tile-overlap must be an integer ≥ 0/);
  });

  it('a blank value is an error, not 0 (`--noise-level ""` used to mean 0)', () => {
    expect(() => intFlag('', '--noise-level', 0, 999)).toThrow(
      /--noise-level must be an integer in 0\.\.999, got ""/,
    );
    expect(() => intFlag('  ', '--seed', 0)).toThrow(/--seed must be an integer ≥ 0/);
  });
});
