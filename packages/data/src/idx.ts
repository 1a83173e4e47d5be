import { createHash } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  realpathSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gunzipSync } from 'node:zlib';
import { DataError, messageOf } from './errors.js';
import { readExactly, statOrThrow, withFile } from './files.js';

/** IDX element types (the third magic byte). */
const IDX_TYPES: Record<number, { dtype: IdxDtype; bytes: number }> = {
  8: { dtype: 'uint8', bytes: 1 },
  9: { dtype: 'int8', bytes: 1 },
  11: { dtype: 'int16', bytes: 2 },
  12: { dtype: 'int32', bytes: 4 },
  13: { dtype: 'float32', bytes: 4 },
  14: { dtype: 'float64', bytes: 8 },
};

export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

export interface IdxHeader {
  dtype: IdxDtype;
  elementBytes: number;
  dims: number[];
  /** Byte offset of the first element (4 + 4 * dims.length). */
  dataOffset: number;
}

/**
 * Parses and validates an IDX header: magic 0x00 0x00 <type> <ndims>, then ndims big-endian u32 sizes.
 * `bytes` must hold at least the header; `file` names the file in errors.
 */
export function parseIdxHeader(bytes: Uint8Array, file: string): IdxHeader {
  const what = 'an IDX file (magic 00 00 <type 08|09|0B|0C|0D|0E> <ndims 1..4>, then ndims big-endian sizes)';
  if (bytes.length < 4)
    throw new DataError('TRUNCATED', `expected ${what}, found only ${bytes.length} bytes`, { file });
  const magic = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  const type = IDX_TYPES[bytes[2]];
  if (bytes[0] !== 0 || bytes[1] !== 0 || !type || bytes[3] < 1 || bytes[3] > 4) {
    throw new DataError('BAD_IDX', `expected ${what}, found magic ${magic}`, {
      file,
      hint: 'a gzipped IDX file starts with 1f 8b; anything else is not an IDX file',
    });
  }
  const ndims = bytes[3];
  const dataOffset = 4 + 4 * ndims;
  if (bytes.length < dataOffset)
    throw new DataError('TRUNCATED', `the IDX header needs ${dataOffset} bytes, found ${bytes.length}`, {
      file,
    });
  const view = new DataView(bytes.buffer, bytes.byteOffset, dataOffset);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i, false));
  return { dtype: type.dtype, elementBytes: type.bytes, dims, dataOffset };
}

function expectedBytes(h: IdxHeader): number {
  return h.dataOffset + h.dims.reduce((a, b) => a * b, 1) * h.elementBytes;
}

/** Checks the file length against the header: shorter is TRUNCATED, longer is BAD_IDX. */
function checkLength(h: IdxHeader, size: number, file: string): void {
  const want = expectedBytes(h);
  const shape = h.dims.join(' x ');
  if (size < want)
    throw new DataError(
      'TRUNCATED',
      `the IDX header promises ${h.dtype} ${shape} (${want} bytes), the data ends after ${size} bytes`,
      { file, hint: 'the file was cut short (interrupted download?); fetch it again' },
    );
  if (size > want)
    throw new DataError(
      'BAD_IDX',
      `the IDX header promises ${want} bytes (${h.dtype} ${shape}), found ${size}`,
      {
        file,
      },
    );
}

/**
 * One IDX array, read lazily by record (a record is one slice along the first dimension). Gzipped files are
 * decompressed once into a cache file (atomically written), so later reads are positional reads too; when no
 * cache folder is writable they are decompressed into memory.
 */
export class IdxFile {
  /** The file the caller named. */
  readonly source: string;
  readonly header: IdxHeader;
  /** Records (first dimension). */
  readonly count: number;
  /** Bytes per record. */
  readonly recordBytes: number;
  private readonly dataPath: string | undefined;
  private readonly memory: Uint8Array | undefined;

  private constructor(source: string, header: IdxHeader, dataPath?: string, memory?: Uint8Array) {
    this.source = source;
    this.header = header;
    this.count = header.dims[0];
    this.recordBytes = header.dims.slice(1).reduce((a, b) => a * b, 1) * header.elementBytes;
    this.dataPath = dataPath;
    this.memory = memory;
  }

  static async open(path: string, options: { cacheDir?: string } = {}): Promise<IdxFile> {
    const st = statOrThrow(path, 'an IDX file');
    if (!st.isFile())
      throw new DataError('MISSING_FILE', 'expected an IDX file, found a folder', { file: path });
    const head = new Uint8Array(Math.min(20, st.size));
    withFile(path, (fd) => readExactly(fd, path, head, head.length, 0));
    if (head[0] === 0x1f && head[1] === 0x8b)
      return IdxFile.openGzip(path, st.size, st.mtimeMs, options.cacheDir);
    const header = parseIdxHeader(head, path);
    checkLength(header, st.size, path);
    return new IdxFile(path, header, path);
  }

  private static async openGzip(
    path: string,
    size: number,
    mtimeMs: number,
    cacheDir?: string,
  ): Promise<IdxFile> {
    const dir = cacheDir ?? defaultCacheDir();
    const key = createHash('sha1')
      .update(`${realpathSync(path)}|${size}|${mtimeMs}`)
      .digest('hex')
      .slice(0, 20);
    const cached = join(dir, `idx-${key}.idx`);
    if (existsSync(cached)) {
      try {
        return await IdxFile.open(cached);
      } catch {
        rmSync(cached, { force: true }); // a bad cache entry is rebuilt
      }
    }
    let writable = true;
    try {
      mkdirSync(dir, { recursive: true });
    } catch {
      writable = false;
    }
    if (writable) {
      const tmp = `${cached}.${process.pid}.tmp`;
      try {
        await pipeline(createReadStream(path), createGunzip(), createWriteStream(tmp));
      } catch (e) {
        rmSync(tmp, { force: true });
        const code = (e as { code?: string }).code ?? '';
        if (code.startsWith('Z_') || /unexpected end|incorrect header|invalid/i.test(messageOf(e)))
          throw gzipError(path, e);
        writable = false; // the cache folder is not usable: fall back to memory
      }
      if (writable) {
        let f: IdxFile;
        try {
          f = await IdxFile.open(tmp);
        } catch (e) {
          rmSync(tmp, { force: true });
          throw e instanceof DataError ? relabel(e, path) : e;
        }
        renameSync(tmp, cached);
        return new IdxFile(path, f.header, cached);
      }
    }
    let bytes: Uint8Array;
    try {
      bytes = gunzipSync(
        withFile(path, (fd) => {
          const b = new Uint8Array(size);
          readExactly(fd, path, b, size, 0);
          return b;
        }),
      );
    } catch (e) {
      if (e instanceof DataError) throw e;
      throw gzipError(path, e);
    }
    const header = parseIdxHeader(bytes.subarray(0, 20), path);
    checkLength(header, bytes.length, path);
    return new IdxFile(path, header, undefined, bytes);
  }

  /** `count` records from `start`, as raw bytes (big-endian for multi-byte types, as stored). */
  readRecords(start: number, count: number): Uint8Array {
    if (start < 0 || count < 0 || start + count > this.count)
      throw new DataError(
        'BAD_INDEX',
        `records ${start}..${start + count - 1} are outside 0..${this.count - 1}`,
        {
          file: this.source,
        },
      );
    const from = this.header.dataOffset + start * this.recordBytes;
    const length = count * this.recordBytes;
    if (this.memory) return this.memory.slice(from, from + length);
    const out = new Uint8Array(length);
    const path = this.dataPath as string;
    withFile(path, (fd) => readExactly(fd, this.source, out, length, from));
    return out;
  }

  /**
   * Calls fn(k, bytes, at) for each requested record k (bytes.subarray(at, at + recordBytes) is the record),
   * reading runs of neighbouring records with one read each.
   */
  forEachRecord(records: readonly number[], fn: (k: number, bytes: Uint8Array, at: number) => void): void {
    const order = Array.from(records.keys()).sort((a, b) => records[a] - records[b]);
    const maxRun = Math.max(1, Math.floor((8 << 20) / Math.max(1, this.recordBytes)));
    const read = (fd: number | undefined) => {
      let buf = new Uint8Array(0);
      for (let s = 0; s < order.length; ) {
        const first = records[order[s]];
        let e = s + 1;
        while (
          e < order.length &&
          records[order[e]] - records[order[e - 1]] <= 1 &&
          records[order[e]] - first < maxRun
        )
          e++;
        const last = records[order[e - 1]];
        const n = last - first + 1;
        const from = this.header.dataOffset + first * this.recordBytes;
        let bytes: Uint8Array;
        let base = 0;
        if (this.memory) {
          bytes = this.memory;
          base = from;
        } else {
          if (buf.length < n * this.recordBytes) buf = new Uint8Array(maxRun * this.recordBytes);
          readExactly(fd as number, this.source, buf, n * this.recordBytes, from);
          bytes = buf;
        }
        for (let q = s; q < e; q++)
          fn(order[q], bytes, base + (records[order[q]] - first) * this.recordBytes);
        s = e;
      }
    };
    for (const r of records) {
      if (!Number.isInteger(r) || r < 0 || r >= this.count)
        throw new DataError('BAD_INDEX', `record ${r} is outside 0..${this.count - 1}`, {
          file: this.source,
        });
    }
    if (this.memory) read(undefined);
    else withFile(this.dataPath as string, read);
  }
}

function gzipError(path: string, e: unknown): DataError {
  const truncated = /unexpected end/i.test(messageOf(e));
  return new DataError(
    truncated ? 'TRUNCATED' : 'BAD_IDX',
    truncated ? 'the gzip stream ends early (truncated file)' : `not a valid gzip stream: ${messageOf(e)}`,
    { file: path, cause: e, hint: 'fetch or reinstall the file' },
  );
}

/** Errors found in the decompressed cache copy name the gzipped file the user gave. */
function relabel(e: DataError, file: string): DataError {
  const message = e.message.replace(/^[^:]*\.tmp: /, '');
  return new DataError(e.code, `${message} (after gunzip)`, { file, hint: e.hint, cause: e });
}

/** Where decompressed copies are kept: $DHTA_CACHE, else $XDG_CACHE_HOME/dhta, else ~/.cache/dhta. */
export function defaultCacheDir(): string {
  const env = process.env;
  if (env.DHTA_CACHE) return env.DHTA_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'dhta');
}

/** Reads a whole (small) IDX array of uint8, e.g. a label file. */
export async function readIdxUint8(
  path: string,
  options: { cacheDir?: string } = {},
): Promise<{ dims: number[]; data: Uint8Array }> {
  const f = await IdxFile.open(path, options);
  if (f.header.dtype !== 'uint8')
    throw new DataError('BAD_IDX', `expected uint8 elements, found ${f.header.dtype}`, { file: path });
  return { dims: f.header.dims, data: f.readRecords(0, f.count) };
}
