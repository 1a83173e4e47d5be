import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
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

/** The largest IDX array opened unless the caller allows more (`maxBytes`): 4 GiB, header included. */
export const DEFAULT_MAX_IDX_BYTES = 2 ** 32;

export interface IdxOpenOptions {
  /** Where gzipped files are decompressed to (default: `defaultCacheDir()`). */
  cacheDir?: string;
  /** The largest array accepted, in bytes, header included (default DEFAULT_MAX_IDX_BYTES). */
  maxBytes?: number;
}

/** Refuses a header that declares more than `maxBytes` bytes, before any of its data is read. */
function checkDeclared(h: IdxHeader, maxBytes: number, file: string): number {
  const want = expectedBytes(h);
  if (want > maxBytes)
    throw new DataError(
      'TOO_LARGE',
      `expected an IDX array of at most ${maxBytes} bytes, the header declares ${h.dtype} ${h.dims.join(' x ')} (${want} bytes)`,
      { file, hint: 'a corrupt header, or a larger array than allowed: pass a larger maxBytes to open it' },
    );
  return want;
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

/** Where inflated bytes go: the cache file, or memory. A failure of the sink itself is a SinkError. */
interface Sink {
  write(chunk: Uint8Array): Promise<void>;
}
class SinkError extends Error {}

/**
 * Inflates a gzipped IDX file into `sink`, checking as it goes: the header is parsed from the first bytes,
 * its declared size is checked against `maxBytes`, and inflation stops (BAD_IDX) as soon as the stream
 * holds more than the header declares, so a small file that inflates to gigabytes costs no more than the
 * array it declares. A stream that ends early is TRUNCATED.
 */
async function inflateIdx(path: string, sink: Sink, maxBytes: number): Promise<IdxHeader> {
  let head = new Uint8Array(0);
  let header: IdxHeader | undefined;
  let declared = 0;
  let total = 0;
  // What stopped the consumer: pipeline() itself rejects with an AbortError when a consumer throws.
  let stop: DataError | SinkError | undefined;
  try {
    await pipeline(createReadStream(path), createGunzip(), async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) {
        if (!header) {
          const joined = new Uint8Array(head.length + chunk.length);
          joined.set(head);
          joined.set(chunk, head.length);
          head = joined.subarray(0, Math.min(joined.length, 20));
          if (head.length >= 4 && (head.length >= 4 + 4 * head[3] || head[3] < 1 || head[3] > 4)) {
            try {
              header = parseIdxHeader(head, path);
              declared = checkDeclared(header, maxBytes, path);
            } catch (e) {
              stop = e as DataError;
              throw e;
            }
          }
        }
        total += chunk.length;
        if (header && total > declared) {
          stop = new DataError(
            'BAD_IDX',
            `the IDX header declares ${header.dtype} ${header.dims.join(' x ')} (${declared} bytes), the gzip stream holds more; stopped inflating there`,
            { file: path, hint: 'the file is corrupt (or not what its header says): fetch it again' },
          );
          throw stop;
        }
        try {
          await sink.write(chunk);
        } catch (e) {
          stop = new SinkError(messageOf(e), { cause: e });
          throw stop;
        }
      }
    });
  } catch (e) {
    if (stop) throw stop;
    const code = (e as { code?: string }).code ?? '';
    if (code.startsWith('Z_') || /unexpected end|incorrect header|invalid/i.test(messageOf(e)))
      throw gzipError(path, e);
    throw new DataError('IO', `cannot read the gzipped IDX file: ${messageOf(e)}`, { file: path, cause: e });
  }
  if (!header) header = parseIdxHeader(head, path); // throws: the stream ended inside the header
  if (total < declared) checkLength(header, total, path); // throws TRUNCATED (naming the gzipped file)
  return header;
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

  static async open(path: string, options: IdxOpenOptions = {}): Promise<IdxFile> {
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_IDX_BYTES;
    const st = statOrThrow(path, 'an IDX file');
    if (!st.isFile())
      throw new DataError('MISSING_FILE', 'expected an IDX file, found a folder', { file: path });
    const head = new Uint8Array(Math.min(20, st.size));
    withFile(path, (fd) => readExactly(fd, path, head, head.length, 0));
    if (head[0] === 0x1f && head[1] === 0x8b)
      return IdxFile.openGzip(path, st.size, st.mtimeMs, options.cacheDir, maxBytes);
    const header = parseIdxHeader(head, path);
    checkDeclared(header, maxBytes, path);
    checkLength(header, st.size, path);
    return new IdxFile(path, header, path);
  }

  private static async openGzip(
    path: string,
    size: number,
    mtimeMs: number,
    cacheDir: string | undefined,
    maxBytes: number,
  ): Promise<IdxFile> {
    const dir = cacheDir ?? defaultCacheDir();
    const key = createHash('sha1')
      .update(`${realpathSync(path)}|${size}|${mtimeMs}`)
      .digest('hex')
      .slice(0, 20);
    const cached = join(dir, `idx-${key}.idx`);
    if (existsSync(cached)) {
      try {
        const f = await IdxFile.open(cached, { maxBytes });
        return new IdxFile(path, f.header, cached);
      } catch (e) {
        if (e instanceof DataError && e.code === 'TOO_LARGE') throw relabel(e, path);
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
      // A name of its own (two opens of one file at once must not write into each other's copy); the copy is
      // renamed into place only once complete and checked, and removed on any failure.
      const tmp = `${cached}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
      let handle: FileHandle | undefined;
      // The write in flight: a gzip error ends inflateIdx at once (pipeline() does not wait for its consumer),
      // possibly while this write is still opening tmp; the cleanup below waits for it, or it would create
      // tmp after the removal and leave it behind.
      let writing: Promise<unknown> = Promise.resolve();
      try {
        const header = await inflateIdx(
          path,
          {
            write: (chunk) => {
              const done = (async () => {
                handle ??= await open(tmp, 'wx');
                for (let at = 0; at < chunk.length; )
                  at += (await handle.write(chunk, at, chunk.length - at)).bytesWritten;
              })();
              writing = done.catch(() => {});
              return done;
            },
          },
          maxBytes,
        );
        try {
          handle ??= await open(tmp, 'wx'); // (an empty stream never reaches here: it has no header)
          await handle.close();
          handle = undefined;
          renameSync(tmp, cached);
        } catch (e) {
          throw new SinkError(messageOf(e), { cause: e });
        }
        return new IdxFile(path, header, cached);
      } catch (e) {
        if (!(e instanceof SinkError)) throw e;
        writable = false; // the cache folder is not usable: fall back to memory
      } finally {
        await writing;
        await handle?.close().catch(() => {});
        rmSync(tmp, { force: true });
      }
    }
    // In memory: the chunks as they come (never more than the header declares), joined at the end.
    const chunks: Uint8Array[] = [];
    const header = await inflateIdx(
      path,
      {
        write: async (chunk) => {
          chunks.push(chunk);
        },
      },
      maxBytes,
    );
    return new IdxFile(path, header, undefined, Buffer.concat(chunks));
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
  const message = e.file ? e.message.slice(e.file.length + 2) : e.message;
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
  options: IdxOpenOptions = {},
): Promise<{ dims: number[]; data: Uint8Array }> {
  const f = await IdxFile.open(path, options);
  if (f.header.dtype !== 'uint8')
    throw new DataError('BAD_IDX', `expected uint8 elements, found ${f.header.dtype}`, { file: path });
  return { dims: f.header.dims, data: f.readRecords(0, f.count) };
}
