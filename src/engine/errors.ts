/** Machine-readable error categories; the message names the op/key, the shapes and the fix. */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'WEIGHTS_MISMATCH'
  | 'SHAPE_MISMATCH'
  | 'DTYPE_MISMATCH'
  | 'RUNTIME_FAILED'
  | 'FILE_INVALID'
  | 'NOT_FOUND'
  | 'BAD_INPUT'
  | 'NO_GRADIENT'
  | 'ABORTED'
  | 'UNSUPPORTED';

export class ImagenError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ImagenError';
  }
}
