/** Error codes of the kernels package. */
export type KernelErrorCode =
  | 'NO_WEBGPU'
  | 'NO_ADAPTER'
  | 'DEVICE_LOST'
  | 'VALIDATION'
  | 'SHADER_COMPILE'
  | 'OUT_OF_MEMORY'
  | 'SHAPE_MISMATCH'
  | 'BAD_ARGUMENT'
  | 'DESTROYED';

/**
 * The one error class of @dhta/kernels. `code` is stable and machine-readable; the message says what was
 * expected, what was found and what to do.
 */
export class KernelError extends Error {
  readonly code: KernelErrorCode;
  constructor(code: KernelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KernelError';
    this.code = code;
  }
}

export function shapeError(op: string, expected: string, found: string): KernelError {
  return new KernelError('SHAPE_MISMATCH', `${op}: expected ${expected}, found ${found}`);
}

export function argError(op: string, message: string): KernelError {
  return new KernelError('BAD_ARGUMENT', `${op}: ${message}`);
}
