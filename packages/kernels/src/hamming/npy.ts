/**
 * A minimal, strict reader and writer of NumPy's .npy format (versions 1, 2 and 3; little-endian,
 * C order) for the dtypes the tool exchanges: uint8, int8, int32, uint32, int64, float32, float64.
 */
import { readFile } from 'node:fs/promises';
import { HammingError } from './errors.ts';
import { writeFileAtomic } from './file.ts';

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

function bad(what: string, found: string, name: string): HammingError {
  return new HammingError(
    'BAD_NPY',
    `${name}: expected ${what}, found ${found}; write it with numpy.save from a C-ordered, little-endian array.`,
  );
}

function dtypeOf(descr: string): NpyDtype | null {
  for (const [k, v] of Object.entries(DESCR) as [NpyDtype, string][]) {
    if (v === descr || (k === 'uint8' && descr === '<u1') || (k === 'int8' && descr === '<i1')) return k;
  }
  return null;
}

/** Parses .npy bytes. `name` (a path, say) goes into error messages. */
export function readNpy(bytes: Uint8Array, name = '.npy data'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw bad(
      'the .npy magic \\x93NUMPY',
      bytes.length < 10 ? `only ${bytes.length} bytes` : 'other bytes',
      name,
    );
  }
  const major = bytes[6];
  if (major < 1 || major > 3) throw bad('format version 1, 2 or 3', `version ${major}.${bytes[7]}`, name);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenSize = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenSize) throw truncated(name, 'the header length');
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = 8 + lenSize;
  if (bytes.length < start + headerLen) throw truncated(name, 'the header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(
    bytes.subarray(start, start + headerLen),
  );
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw bad("a header with 'descr', 'fortran_order' and 'shape'", JSON.stringify(header.trim()), name);
  }
  const dtype = dtypeOf(descr);
  if (!dtype) {
    throw bad(
      `one of the dtypes ${Object.values(DESCR).join(', ')} (little-endian)`,
      `descr '${descr}'`,
      name,
    );
  }
  if (fortran !== 'False') throw bad('C order (fortran_order False)', 'Fortran order', name);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      if (!/^\d+$/.test(s)) throw bad('a shape of non-negative integers', `(${shapeText})`, name);
      return Number(s);
    });
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  const byteLength = count * ITEM[dtype];
  if (bytes.length < dataStart + byteLength) {
    throw new HammingError(
      'TRUNCATED',
      `${name}: expected ${byteLength} data bytes for shape (${shape.join(', ')}) ${dtype}, found ` +
        `${bytes.length - dataStart}; the file is truncated: write it again.`,
    );
  }
  if (bytes.length > dataStart + byteLength) {
    throw bad(`${byteLength} data bytes`, `${bytes.length - dataStart} (trailing bytes)`, name);
  }
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

function truncated(name: string, what: string): HammingError {
  return new HammingError(
    'TRUNCATED',
    `${name}: the file ends inside ${what}; it is truncated: write it again.`,
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
  if (count !== data.length || shape.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new HammingError(
      'BAD_NPY',
      `writeNpy: expected a shape of non-negative integers whose product is the data length ${data.length}, ` +
        `found (${shape.join(', ')}).`,
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

export async function readNpyFile(path: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
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
