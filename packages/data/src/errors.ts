/** Every failure of this package is a DataError with a code, naming the file (and line) when there is one. */
export type DataErrorCode =
  | 'BAD_NAME' // a data-set name or parameter that does not parse
  | 'BAD_OPTION' // an option out of range
  | 'BAD_INDEX' // an item index outside the data set
  | 'MISSING_FILE' // a file or folder that does not exist
  | 'MISSING_DATA' // a built-in data set that is not installed
  | 'BAD_IDX' // an IDX file with a wrong magic number, shape or values
  | 'TRUNCATED' // a file shorter than its header says
  | 'TOO_LARGE' // a file whose header declares more data than allowed
  | 'BAD_LIST' // a list-file line that does not parse
  | 'BAD_IMAGE' // an image that does not decode
  | 'NO_CLASSES' // a folder without class subfolders, or a class without items
  | 'NO_FRAMES' // a clip folder without frames
  | 'BAD_CIFAR' // a CIFAR-10 batch with a wrong size or label
  | 'IO'; // any other read or write failure

export interface DataErrorDetails {
  file?: string;
  line?: number;
  hint?: string;
  cause?: unknown;
}

export class DataError extends Error {
  readonly code: DataErrorCode;
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly hint: string | undefined;

  constructor(code: DataErrorCode, message: string, details: DataErrorDetails = {}) {
    const where = details.file
      ? `${details.file}${details.line !== undefined ? `:${details.line}` : ''}: `
      : '';
    super(where + message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'DataError';
    this.code = code;
    this.file = details.file;
    this.line = details.line;
    this.hint = details.hint;
  }
}

/** The message of an unknown thrown value, for wrapping it into a DataError. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
