/** Error codes of @dhta/eval. */
export type EvaluationErrorCode =
  | 'BAD_BITS'
  | 'BAD_CODES'
  | 'BAD_LABELS'
  | 'SHAPE_MISMATCH'
  | 'EMPTY_DATABASE'
  | 'BAD_OPTION'
  | 'OUT_OF_RANGE';

/**
 * The one error class of @dhta/eval. `code` is stable and machine-readable; the message says what was
 * expected, what was found and what to do.
 */
export class EvaluationError extends Error {
  readonly code: EvaluationErrorCode;
  constructor(code: EvaluationErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EvaluationError';
    this.code = code;
  }
}
