// The .safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then
// the tensors' bytes; offsets are relative to the end of the header. The reader validates everything the
// reference implementation validates (header bounds, known dtypes, sizes matching shapes, offsets inside
// the data, no overlaps, no holes) and says which tensor is wrong.
import { ModelError } from './errors.js';
import type { Weights, WeightTensor } from './types.js';

export type SafetensorsDtype =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL';

const ITEM_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** Largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor of a .safetensors file: its dtype, shape and raw little-endian bytes (a view into the file). */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

function bad(name: string, message: string): ModelError {
  return new ModelError('BAD_SAFETENSORS', `${name}: ${message}`);
}

/** Parses and validates .safetensors bytes; `name` (a path, say) goes into error messages. */
export function parseSafetensors(bytes: Uint8Array, name = 'weights.safetensors'): SafetensorsFile {
  if (bytes.length < 8) {
    throw bad(
      name,
      `expected at least 8 bytes (the header length), found ${bytes.length}; the file is truncated`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES) || n > BigInt(bytes.length - 8)) {
    throw bad(
      name,
      `the header length ${n} is over ${n > BigInt(MAX_HEADER_BYTES) ? `the ${MAX_HEADER_BYTES}-byte limit` : `the ${bytes.length - 8} bytes that follow it`}; the file is truncated or not a .safetensors file`,
    );
  }
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw bad(name, `the header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw bad(name, 'the header must be a JSON object of tensors');
  }
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  const ranges: { begin: number; end: number; key: string }[] = [];
  for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw bad(name, '__metadata__ must be an object of strings');
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw bad(name, `__metadata__.${k} must be a string, found ${typeof v}`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== 'object' || info === null) throw bad(name, `tensor "${key}": expected an object`);
    const dtype = info.dtype;
    // Object.hasOwn, not `in`: "toString" or "constructor" must not pass for a dtype.
    if (typeof dtype !== 'string' || !Object.hasOwn(ITEM_BYTES, dtype)) {
      throw bad(
        name,
        `tensor "${key}": unknown dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(ITEM_BYTES).join(', ')}`,
      );
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw bad(
        name,
        `tensor "${key}": the shape must be a list of integers >= 0, found ${JSON.stringify(shape)}`,
      );
    }
    const offsets = info.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      offsets.some((o) => !Number.isSafeInteger(o) || o < 0) ||
      offsets[1] < offsets[0]
    ) {
      throw bad(
        name,
        `tensor "${key}": data_offsets must be [begin, end] with 0 <= begin <= end, found ${JSON.stringify(offsets)}`,
      );
    }
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = count * ITEM_BYTES[dtype as SafetensorsDtype];
    if (end - begin !== expected) {
      throw bad(
        name,
        `tensor "${key}": shape [${shape.join(', ')}] ${dtype} needs ${expected} bytes, but its data_offsets span ${end - begin}`,
      );
    }
    if (end > dataLen) {
      throw bad(
        name,
        `tensor "${key}": its data ends at byte ${end}, past the ${dataLen} data bytes of the file; the file is truncated`,
      );
    }
    ranges.push({ begin, end, key });
    tensors.set(key, {
      dtype: dtype as SafetensorsDtype,
      shape: shape as number[],
      bytes: bytes.subarray(dataStart + begin, dataStart + end),
    });
  }
  // The tensors must tile the data buffer exactly: no overlaps, no holes, nothing after the last one.
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const r of ranges) {
    if (r.begin < at)
      throw bad(name, `tensor "${r.key}" overlaps the tensor before it (bytes ${r.begin}..${r.end})`);
    if (r.begin > at) throw bad(name, `bytes ${at}..${r.begin} before tensor "${r.key}" belong to no tensor`);
    at = r.end;
  }
  if (at !== dataLen) throw bad(name, `${dataLen - at} bytes after the last tensor belong to no tensor`);
  return { tensors, metadata };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * The float32 values of an entry: F32 as is; F16, BF16 and F64 converted (F64 rounds to the nearest f32).
 * Any other dtype is refused (BAD_DTYPE): weights are floating point.
 */
export function entryToFloat32(key: string, e: SafetensorsEntry): Float32Array {
  const count = e.shape.reduce((a, b) => a * b, 1);
  const view = new DataView(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength);
  const out = new Float32Array(count);
  switch (e.dtype) {
    case 'F32':
      if (LITTLE_ENDIAN) {
        // A copy (not .slice(): on a Node Buffer that is a view), so the floats are aligned and own their memory.
        const copy = new Uint8Array(e.bytes.byteLength);
        copy.set(e.bytes);
        return new Float32Array(copy.buffer);
      }
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = f16ToF32(view.getUint16(2 * i, true));
      return out;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new ModelError(
        'BAD_DTYPE',
        `tensor "${key}": expected a floating-point dtype (F32, or F16 / BF16 / F64, converted to F32), found ${e.dtype}; save the weights as float32`,
      );
  }
}

/** The index of the first NaN or infinity in `data`, or -1 when all values are finite. */
function firstNonFiniteWeight(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN; a finite v gives 0
  }
  return -1;
}

function nonFiniteError(
  name: string,
  key: string,
  shape: number[],
  data: Float32Array,
  i: number,
  dtype: string,
) {
  const at = shape.length > 1 ? ` (element [${unravel(i, shape).join(', ')}])` : '';
  const converted = dtype !== 'F32' ? ` after conversion from ${dtype} to float32` : '';
  return new ModelError(
    'BAD_SAFETENSORS',
    `${name}: expected finite weights, found ${data[i]} in tensor "${key}" [${shape.join(', ')}] at index ${i}${at}${converted}; ` +
      'the weights are corrupt or their training diverged: export or train them again',
  );
}

function unravel(i: number, shape: number[]): number[] {
  const out = new Array<number>(shape.length);
  let rest = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = rest % shape[d];
    rest = Math.floor(rest / shape[d]);
  }
  return out;
}

export interface ReadSafetensorsOptions {
  /**
   * Refuse NaN and infinite values (after conversion to float32; BAD_SAFETENSORS), naming the tensor and the
   * first bad index: every feature computed from such weights would be NaN, and every code the same.
   */
  finite?: boolean;
}

/** Parses .safetensors bytes into float32 weights (see `entryToFloat32` for the dtypes accepted). */
export function readSafetensors(
  bytes: Uint8Array,
  name?: string,
  options: ReadSafetensorsOptions = {},
): { weights: Weights; metadata: Record<string, string> } {
  const file = parseSafetensors(bytes, name);
  const weights: Weights = new Map();
  for (const [key, e] of file.tensors) {
    const data = entryToFloat32(key, e);
    if (options.finite) {
      const i = firstNonFiniteWeight(data);
      if (i >= 0) throw nonFiniteError(name ?? 'weights.safetensors', key, e.shape, data, i, e.dtype);
    }
    weights.set(key, { shape: [...e.shape], data });
  }
  return { weights, metadata: file.metadata };
}

/**
 * Serialises float32 weights (dtype F32, tensors in name order, the header padded with spaces to a multiple
 * of 8 bytes so the data is aligned). `metadata` values must be strings.
 */
export function writeSafetensors(weights: Weights, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...weights.keys()].sort();
  // No prototype: on a plain object, header['__proto__'] = x sets the prototype and the tensor is lost.
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  let offset = 0;
  for (const key of names) {
    if (key === '__metadata__') {
      throw new ModelError(
        'BAD_INPUT',
        'expected tensor names other than "__metadata__" (the format reserves it for the metadata), found a tensor of that name; rename it',
      );
    }
    const t = weights.get(key) as WeightTensor;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.shape.some((d) => !Number.isSafeInteger(d) || d < 0) || count !== t.data.length) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `tensor "${key}": shape [${t.shape.join(', ')}] holds ${count} values, but ${t.data.length} were given`,
      );
    }
    header[key] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * count] };
    offset += 4 * count;
  }
  let json = JSON.stringify(header);
  const encoder = new TextEncoder();
  let headerBytes = encoder.encode(json);
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  json += ' '.repeat(padded - headerBytes.length);
  headerBytes = encoder.encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const key of names) {
    const data = (weights.get(key) as WeightTensor).data;
    // Little-endian hosts (all that run this) can copy the bytes; DataView keeps it portable otherwise.
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    } else {
      for (let i = 0; i < data.length; i++) view.setFloat32(at + 4 * i, data[i], true);
    }
    at += data.byteLength;
  }
  return out;
}
