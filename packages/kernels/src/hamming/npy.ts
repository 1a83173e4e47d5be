/**
 * A minimal, strict reader and writer of NumPy's .npy format (versions 1, 2 and 3; little-endian,
 * C order) for the dtypes the tool exchanges: uint8, int8, int32, uint32, int64, float32, float64.
 */
import { HammingError } from './errors.ts';
import { fileSystem, writeFileAtomic } from './file.ts';
import { PyLiteralError, type PyValue, parsePyLiteral } from './pyliteral.ts';

export type NpyDtype = 'uint8' | 'int8' | 'int32' | 'uint32' | 'int64' | 'float32' | 'float64';
export type NpyData =
  | Uint8Array
  | Int8Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: NpyData;
}

const DESCR: Record<NpyDtype, string> = {
  uint8: '|u1',
  int8: '|i1',
  int32: '<i4',
  uint32: '<u4',
  int64: '<i8',
  float32: '<f4',
  float64: '<f8',
};
const ITEM: Record<NpyDtype, number> = {
  uint8: 1,
  int8: 1,
  int32: 4,
  uint32: 4,
  int64: 8,
  float32: 4,
  float64: 8,
};
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

function bad(what: string, found: string, name: string, todo = SAVE_AGAIN): HammingError {
  return new HammingError('BAD_NPY', `${name}: expected ${what}, found ${found}; ${todo}.`);
}

const SAVE_AGAIN = 'write it with numpy.save from a C-ordered, little-endian array';

/** numpy.load's default max_header_size: longer headers are refused (they may not be safe to evaluate). */
export const NPY_MAX_HEADER_CHARS = 10_000;
/** The most dimensions a NumPy array has (NPY_MAXDIMS in numpy 2). */
export const NPY_MAX_DIMS = 64;
/** NumPy refuses an array whose byte size (zero dimensions left out) exceeds the largest intp. */
const NPY_MAX_BYTES = 2n ** 63n - 1n;

/**
 * The dtypes read, by numpy descr: the type code with an optional byte-order character that numpy reads
 * as little-endian on this (little-endian) host: '<', '=' (native), '|' (not applicable) or none; 1-byte
 * types with '>' too. Big-endian multi-byte types are refused.
 */
function dtypeOf(descr: string): NpyDtype | null {
  const m = /^([<>=|]?)([uif][1248])$/.exec(descr);
  if (!m) return null;
  const dtype = (Object.keys(DESCR) as NpyDtype[]).find((k) => DESCR[k].slice(1) === m[2]);
  if (!dtype) return null;
  if (m[1] === '>' && ITEM[dtype] > 1) return null;
  return dtype;
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 4096) s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  return s;
}

/** A header value as Python would print it, cut short for error messages. */
function describe(v: PyValue): string {
  const text = show(v);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

function show(v: PyValue): string {
  switch (v.t) {
    case 'str':
      return JSON.stringify(v.v);
    case 'int':
      return v.v.toString();
    case 'bool':
      return v.v ? 'True' : 'False';
    case 'none':
      return 'None';
    case 'other':
      return `a ${v.what}`;
    case 'tuple':
      return `(${v.items.map(show).join(', ')}${v.items.length === 1 ? ',' : ''})`;
    case 'list':
      return `[${v.items.map(show).join(', ')}]`;
    case 'dict':
      return `{${v.entries.map(([k, x]) => `${show(k)}: ${show(x)}`).join(', ')}}`;
  }
}

/**
 * The header dict, read as numpy's `_read_array_header` reads it: a Python literal (ast.literal_eval; for
 * format 1.0 and 2.0 Python 2 long suffixes are dropped), a dict whose keys (the last of repeated keys
 * wins) are exactly 'descr', 'fortran_order' and 'shape'; shape a tuple of ints, fortran_order a bool.
 */
function parseHeader(
  header: string,
  major: number,
  name: string,
): { descr: PyValue; fortran: boolean; shape: bigint[] } {
  let value: PyValue;
  try {
    value = parsePyLiteral(header, { py2Longs: major <= 2 });
  } catch (e) {
    if (!(e instanceof PyLiteralError)) throw e;
    throw bad(
      'a header that is a Python dict literal',
      `${e.message} in ${JSON.stringify(header.length > 300 ? `${header.slice(0, 300)}...` : header)}`,
      name,
    );
  }
  if (value.t !== 'dict') throw bad('a header that is a Python dict', describe(value), name);
  const fields = new Map<string, PyValue>();
  const keys: string[] = [];
  for (const [k, v] of value.entries) {
    if (k.t !== 'str') {
      throw bad(
        "a header with only the keys 'descr', 'fortran_order' and 'shape'",
        `the key ${describe(k)}`,
        name,
      );
    }
    if (!fields.has(k.v)) keys.push(k.v);
    fields.set(k.v, v);
  }
  const expected = ['descr', 'fortran_order', 'shape'];
  if (keys.length !== 3 || !expected.every((k) => fields.has(k))) {
    throw bad(
      "a header with exactly the keys 'descr', 'fortran_order' and 'shape'",
      `the keys ${keys.length ? keys.map((k) => JSON.stringify(k)).join(', ') : '(none)'}`,
      name,
    );
  }
  const shape = fields.get('shape') as PyValue;
  if (shape.t !== 'tuple' || shape.items.some((d) => d.t !== 'int')) {
    throw bad("a 'shape' that is a tuple of integers", describe(shape), name);
  }
  const fortran = fields.get('fortran_order') as PyValue;
  if (fortran.t !== 'bool') throw bad("a 'fortran_order' of True or False", describe(fortran), name);
  return {
    descr: fields.get('descr') as PyValue,
    fortran: fortran.v,
    shape: shape.items.map((d) => (d as { v: bigint }).v),
  };
}

/**
 * Parses .npy bytes as numpy.load does, and refuses (HammingError BAD_NPY, or TRUNCATED when the bytes end
 * early) everything numpy refuses: a wrong magic, a format other than 1.0, 2.0 or 3.0, a header that is not
 * the dict numpy writes (see parseHeader), more than 64 or negative dimensions. Stricter than numpy: the
 * data must be exactly as long as the shape says (numpy ignores trailing bytes), and only the dtypes listed
 * in NpyDtype, little-endian, in C order are read. `name` (a path, say) goes into error messages.
 */
export function readNpy(bytes: Uint8Array, name = '.npy data'): NpyArray {
  const head = Math.min(6, bytes.length);
  if (MAGIC.slice(0, head).some((b, i) => bytes[i] !== b)) {
    const found = Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw bad('the .npy magic \\x93NUMPY (93 4e 55 4d 50 59)', `the bytes ${found}`, name);
  }
  if (bytes.length < 8) throw truncated(name, 'the magic and format version', bytes.length);
  const major = bytes[6];
  const minor = bytes[7];
  if (major < 1 || major > 3 || minor !== 0) {
    throw bad('format version 1.0, 2.0 or 3.0', `version ${major}.${minor}`, name);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenSize = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenSize) throw truncated(name, 'the header length', bytes.length);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = 8 + lenSize;
  if (bytes.length < start + headerLen) throw truncated(name, `the ${headerLen}-byte header`, bytes.length);
  // numpy counts characters after decoding; a UTF-8 character takes at most 4 bytes.
  const limit = major === 3 ? 4 * NPY_MAX_HEADER_CHARS : NPY_MAX_HEADER_CHARS;
  const tooLong = () =>
    bad(
      `a header of at most ${NPY_MAX_HEADER_CHARS} characters (numpy.load's limit)`,
      `${headerLen} bytes`,
      name,
    );
  if (headerLen > limit) throw tooLong();
  const headerBytes = bytes.subarray(start, start + headerLen);
  let header: string;
  if (major === 3) {
    try {
      header = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
    } catch {
      throw bad('a UTF-8 header (format 3.0)', 'bytes that are not UTF-8', name);
    }
    let chars = 0;
    for (const _ of header) chars++;
    if (chars > NPY_MAX_HEADER_CHARS) throw tooLong();
  } else {
    header = latin1(headerBytes);
  }
  const h = parseHeader(header, major, name);
  const shapeText = `(${h.shape.join(', ')}${h.shape.length === 1 ? ',' : ''})`;
  if (h.shape.length > NPY_MAX_DIMS) {
    throw bad(`at most ${NPY_MAX_DIMS} dimensions`, `${h.shape.length}`, name);
  }
  if (h.shape.some((d) => d < 0n)) throw bad('a shape of non-negative integers', shapeText, name);
  if (h.descr.t !== 'str') {
    throw bad(
      `a descr that is one of the dtypes ${Object.values(DESCR).join(', ')}`,
      `descr ${describe(h.descr)} (a structured or sub-array dtype)`,
      name,
    );
  }
  const dtype = dtypeOf(h.descr.v);
  if (!dtype) {
    throw bad(
      `one of the dtypes ${Object.values(DESCR).join(', ')} (little-endian)`,
      `descr ${JSON.stringify(h.descr.v)}`,
      name,
    );
  }
  if (h.fortran) {
    throw bad(
      'C order (fortran_order False)',
      'Fortran order',
      name,
      'save numpy.ascontiguousarray(a) instead of a',
    );
  }
  const nonzero = h.shape.filter((d) => d !== 0n).reduce((a, b) => a * b, 1n);
  if (nonzero * BigInt(ITEM[dtype]) > NPY_MAX_BYTES) {
    throw bad(`a shape of at most 2^63-1 bytes`, `${shapeText} of ${dtype}`, name);
  }
  if (h.shape.some((d) => d > BigInt(Number.MAX_SAFE_INTEGER))) {
    throw bad(`dimensions of at most 2^53-1`, shapeText, name, 'this reader holds sizes as doubles');
  }
  const shape = h.shape.map(Number);
  const count = h.shape.reduce((a, b) => a * b, 1n);
  const dataStart = start + headerLen;
  const byteCount = count * BigInt(ITEM[dtype]);
  const available = BigInt(bytes.length - dataStart);
  if (available < byteCount) {
    throw new HammingError(
      'TRUNCATED',
      `${name}: expected ${byteCount} data bytes for shape ${shapeText} ${dtype}, found ` +
        `${available}; the file is truncated: write it again.`,
    );
  }
  if (available > byteCount) {
    throw bad(
      `${byteCount} data bytes for shape ${shapeText} ${dtype}`,
      `${available} (${available - byteCount} trailing bytes)`,
      name,
      'the file is corrupt or its header was edited: write it again',
    );
  }
  const byteLength = Number(byteCount);
  // Copy (into a fresh buffer: a Node Buffer's slice() is a view of a shared pool): the data offset need
  // not be aligned for the element type.
  const copy = new Uint8Array(byteLength);
  copy.set(bytes.subarray(dataStart, dataStart + byteLength));
  const buf = copy.buffer;
  const data: NpyData =
    dtype === 'uint8'
      ? new Uint8Array(buf)
      : dtype === 'int8'
        ? new Int8Array(buf)
        : dtype === 'int32'
          ? new Int32Array(buf)
          : dtype === 'uint32'
            ? new Uint32Array(buf)
            : dtype === 'int64'
              ? new BigInt64Array(buf)
              : dtype === 'float32'
                ? new Float32Array(buf)
                : new Float64Array(buf);
  return { dtype, shape, data };
}

/**
 * The index of the first NaN or infinity in `data`, or -1 when every value is finite (always -1 for
 * integer arrays). For refusing non-finite inputs with a message that names the file and the index.
 */
export function firstNonFinite(data: ArrayLike<number> | BigInt64Array | BigUint64Array): number {
  // Integer typed arrays (bigint ones included) hold only finite values.
  if (ArrayBuffer.isView(data) && !(data instanceof Float32Array || data instanceof Float64Array)) return -1;
  const values = data as ArrayLike<number>;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN; a finite v gives 0
  }
  return -1;
}

function truncated(name: string, what: string, length: number): HammingError {
  return new HammingError(
    'TRUNCATED',
    `${name}: expected ${what}, found the end of the file after ${length} bytes; it is truncated: write it again.`,
  );
}

function dtypeOfData(data: NpyData): NpyDtype {
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint32Array) return 'uint32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Float32Array) return 'float32';
  return 'float64';
}

/** Serialises a typed array with the given shape (version 1 header, or 2 when the header is huge). */
export function writeNpy(data: NpyData, shape: number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (
    count !== data.length ||
    shape.length > NPY_MAX_DIMS ||
    shape.some((s) => !Number.isInteger(s) || s < 0)
  ) {
    throw new HammingError(
      'BAD_NPY',
      `writeNpy: expected a shape of at most ${NPY_MAX_DIMS} non-negative integers whose product is the data ` +
        `length ${data.length}, found (${shape.join(', ')}).`,
    );
  }
  const dtype = dtypeOfData(data);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  let major = 1;
  let prefix = 10;
  // Pad with spaces so that the data starts on a 64-byte boundary; the header ends with '\n'.
  let total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  if (total - prefix > 0xffff) {
    major = 2;
    prefix = 12;
    total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  }
  dict = dict.padEnd(total - prefix - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, dict.length, true);
  else view.setUint32(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[prefix + i] = dict.charCodeAt(i);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  return out;
}

/** Reads a .npy file (Node; elsewhere NO_FILE_SYSTEM). */
export async function readNpyFile(path: string): Promise<NpyArray> {
  const fs = fileSystem(`reading ${path}`);
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (e) {
    throw new HammingError(
      'BAD_FILE',
      `${path}: expected a readable .npy file, found: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  return readNpy(bytes, path);
}

/** Writes a .npy file atomically (temporary name, then rename). */
export async function writeNpyFile(path: string, data: NpyData, shape: number[]): Promise<void> {
  await writeFileAtomic(path, writeNpy(data, shape));
}
