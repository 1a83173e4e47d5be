/** Error codes of the models package. */
export type ModelErrorCode =
  /** model.json is not valid JSON or not a dhta-model/1 description. */
  | 'BAD_SPEC'
  /** A layer type this runtime does not know. */
  | 'UNKNOWN_LAYER'
  /** A tensor's or an input's shape differs from what the model implies. */
  | 'SHAPE_MISMATCH'
  /** A weight the model needs is not in the weights file. */
  | 'MISSING_TENSOR'
  /** The weights file holds a tensor the model does not use. */
  | 'UNEXPECTED_TENSOR'
  /** A tensor's dtype cannot be used (weights are float32; F16, BF16 and F64 are converted). */
  | 'BAD_DTYPE'
  /** A .safetensors file whose header or layout is invalid. */
  | 'BAD_SAFETENSORS'
  /** A file or folder that cannot be read or written. */
  | 'BAD_FILE'
  /** Bad input data or arguments (values outside [0, 1], a wrong size, an unknown preset...). */
  | 'BAD_INPUT';

/**
 * The one error class of @dhta/models. `code` is stable and machine-readable; the message says what was
 * expected, what was found (naming the layer or tensor) and what to do.
 */
export class ModelError extends Error {
  readonly code: ModelErrorCode;
  constructor(code: ModelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelError';
    this.code = code;
  }
}
