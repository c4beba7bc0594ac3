import { describe, expect, it } from 'vitest';
import { maxTextLengthOf } from '../../src/text/tokenizer.js';

describe('maxTextLengthOf', () => {
  it("takes a small model's own length; IF's 77 for the 512 / sentinel of published T5 tokenizers", () => {
    expect(maxTextLengthOf({ model_max_length: 24 })).toBe(24);
    expect(maxTextLengthOf({ model_max_length: 512 })).toBe(77);
    expect(maxTextLengthOf({ model_max_length: 1e30 })).toBe(77);
    expect(maxTextLengthOf({ model_max_length: 4 })).toBe(77);
    expect(maxTextLengthOf({ model_max_length: '24' })).toBe(77);
    expect(maxTextLengthOf({})).toBe(77);
    expect(maxTextLengthOf(undefined)).toBe(77);
  });
});
