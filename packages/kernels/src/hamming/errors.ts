/** Error codes of the Hamming search library (`@dhta/kernels/hamming`, and the `@dhta/hamming` package). */
export type HammingErrorCode =
  | 'BAD_BITS'
  | 'BITS_MISMATCH'
  | 'BAD_CODES'
  | 'BAD_K'
  | 'BAD_RADIUS'
  | 'NAN_CODE'
  | 'EMPTY_DATABASE'
  | 'NO_GPU_BACKEND'
  | 'BAD_OPTION'
  | 'BAD_FILE'
  | 'UNSUPPORTED_VERSION'
  | 'CHECKSUM'
  | 'TRUNCATED'
  | 'BAD_NPY'
  | 'TOO_LARGE'
  | 'WORKER_FAILED'
  | 'NO_FILE_SYSTEM'
  | 'DISPOSED';

/**
 * The one error class of the Hamming library. `code` is stable and machine-readable; the message says
 * what was expected, what was found and what to do.
 */
export class HammingError extends Error {
  readonly code: HammingErrorCode;
  constructor(code: HammingErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HammingError';
    this.code = code;
  }
}
