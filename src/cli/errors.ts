import { ImagenError } from '../engine/errors.js';

/** Exit codes: 0 ok, 2 bad usage or input, 1 anything else. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const INPUT_CODES = new Set([
  'BAD_INPUT',
  'NOT_FOUND',
  'CONFIG_INVALID',
  'FILE_INVALID',
  'WEIGHTS_MISMATCH',
  'SHAPE_MISMATCH',
  'DTYPE_MISMATCH',
  'UNSUPPORTED',
]);

export function exitCodeFor(e: unknown): number {
  if (e instanceof ImagenError) return INPUT_CODES.has(e.code) ? EXIT_USAGE : EXIT_FAILURE;
  if (
    e &&
    typeof e === 'object' &&
    'code' in e &&
    String((e as { code: unknown }).code).startsWith('commander.')
  ) {
    return EXIT_USAGE;
  }
  return EXIT_FAILURE;
}

/** An error in what the user asked for (exit code 2). */
export function usageError(message: string): ImagenError {
  return new ImagenError('BAD_INPUT', message);
}
