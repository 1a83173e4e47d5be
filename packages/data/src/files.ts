import { closeSync, openSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DataError, messageOf } from './errors.js';

/** Stats a path, or throws MISSING_FILE naming it and what it should have been. */
export function statOrThrow(path: string, what: string, hint?: string) {
  try {
    return statSync(path);
  } catch (e) {
    throw new DataError('MISSING_FILE', `expected ${what}, found nothing there (${messageOf(e)})`, {
      file: path,
      hint,
      cause: e,
    });
  }
}

/** Reads `length` bytes at `position` of an open file, all of them or a TRUNCATED error. */
export function readExactly(
  fd: number,
  file: string,
  buf: Uint8Array,
  length: number,
  position: number,
): void {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = readSync(fd, buf, done, length - done, position + done);
    } catch (e) {
      throw new DataError('IO', `read failed at byte ${position + done}: ${messageOf(e)}`, {
        file,
        cause: e,
      });
    }
    if (n === 0)
      throw new DataError(
        'TRUNCATED',
        `expected ${length} bytes at byte ${position}, the file ends after ${done}`,
        {
          file,
        },
      );
    done += n;
  }
}

/** Opens a file for reading, runs fn, closes it. */
export function withFile<T>(file: string, fn: (fd: number) => T): T {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new DataError('MISSING_FILE', `cannot open for reading: ${messageOf(e)}`, { file, cause: e });
  }
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a file atomically: a temporary name in the same folder, then a rename. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new DataError('IO', `cannot write: ${messageOf(e)}`, { file: path, cause: e });
  }
}
