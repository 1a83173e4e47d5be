/**
 * The index file format (little-endian):
 *
 *   offset  size          field
 *   0       8             magic 'DHTAHAM1' (ASCII)
 *   8       4             u32 version (1)
 *   12      4             u32 bits per code (8..4096)
 *   16      8             u64 count of codes
 *   24      count * B     codes, B = ceil(bits/8) bytes each, FAISS's layout (bit j in byte j>>3, LSB first)
 *   24+count*B  4         u32 CRC-32 (IEEE, as zlib.crc32) of every byte before it
 */
import { bytesPerCode, type Codes, fromFaissBytes, MAX_BITS, MIN_BITS, toFaissBytes } from './codes.ts';
import { HammingError } from './errors.ts';
import { hammingPlatform } from './platform.ts';

export const INDEX_MAGIC = 'DHTAHAM1';
export const INDEX_VERSION = 1;
export const INDEX_HEADER_BYTES = 24;

let table: Int32Array | null = null;
function crcTable(): Int32Array {
  if (!table) {
    table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c;
    }
  }
  return table;
}

/** CRC-32 (IEEE 802.3, reflected, as zlib's crc32 and Python's zlib.crc32). */
export function crc32(bytes: Uint8Array): number {
  const native = hammingPlatform().crc32;
  if (native) return native(bytes);
  const t = crcTable();
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** Serialises codes in the index file format. */
export function encodeIndexFile(codes: Codes): Uint8Array {
  const B = bytesPerCode(codes.bits);
  const out = new Uint8Array(INDEX_HEADER_BYTES + codes.count * B + 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = INDEX_MAGIC.charCodeAt(i);
  view.setUint32(8, INDEX_VERSION, true);
  view.setUint32(12, codes.bits, true);
  view.setBigUint64(16, BigInt(codes.count), true);
  out.set(toFaissBytes(codes), INDEX_HEADER_BYTES);
  view.setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

export interface DecodeOptions {
  /** When given, a file of another code length is an error (BITS_MISMATCH). */
  expectedBits?: number;
  /** Shown in error messages (e.g. the path). */
  name?: string;
}

/** Parses and validates the index file format: magic, version, size, checksum, expected bits. */
export function decodeIndexFile(bytes: Uint8Array, options: DecodeOptions = {}): Codes {
  const name = options.name ?? 'index file';
  const magicBytes = Array.from(INDEX_MAGIC, (c) => c.charCodeAt(0));
  const head = Math.min(8, bytes.length);
  const magicOk = magicBytes.slice(0, head).every((b, i) => bytes[i] === b);
  if (!magicOk) {
    throw new HammingError(
      'BAD_FILE',
      `${name}: expected a Hamming index file (starting with '${INDEX_MAGIC}'), found other bytes; ` +
        'save the index with HammingIndex.save, or load codes from .npy instead.',
    );
  }
  if (bytes.length < INDEX_HEADER_BYTES + 4) {
    throw new HammingError(
      'TRUNCATED',
      `${name}: expected at least ${INDEX_HEADER_BYTES + 4} bytes (header and checksum), found ${bytes.length}; ` +
        'the file is truncated: save the index again.',
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== INDEX_VERSION) {
    throw new HammingError(
      'UNSUPPORTED_VERSION',
      `${name}: expected format version ${INDEX_VERSION}, found ${version}; ` +
        'it was written by another version of the tool: load it with that version or save it again.',
    );
  }
  const bits = view.getUint32(12, true);
  const count = view.getBigUint64(16, true);
  if (bits < MIN_BITS || bits > MAX_BITS || count > BigInt(2 ** 31 - 1)) {
    throw new HammingError(
      'BAD_FILE',
      `${name}: expected ${MIN_BITS}..${MAX_BITS} bits and at most 2^31-1 codes in the header, found ${bits} bits ` +
        `and ${count} codes; the header is corrupt: save the index again.`,
    );
  }
  const n = Number(count);
  const B = bytesPerCode(bits);
  const expected = INDEX_HEADER_BYTES + n * B + 4;
  if (bytes.length < expected) {
    throw new HammingError(
      'TRUNCATED',
      `${name}: expected ${expected} bytes for ${n} codes of ${bits} bits, found ${bytes.length}; ` +
        'the file is truncated (or its header is corrupt): save the index again.',
    );
  }
  if (bytes.length > expected) {
    throw new HammingError(
      'BAD_FILE',
      `${name}: expected ${expected} bytes for ${n} codes of ${bits} bits, found ${bytes.length} ` +
        `(${bytes.length - expected} trailing bytes); the file is corrupt: save the index again.`,
    );
  }
  const stored = view.getUint32(expected - 4, true);
  const actual = crc32(bytes.subarray(0, expected - 4));
  if (stored !== actual) {
    throw new HammingError(
      'CHECKSUM',
      `${name}: expected CRC-32 ${hex(stored)} (stored in the file), found ${hex(actual)}; ` +
        'the file is corrupt: save the index again.',
    );
  }
  if (options.expectedBits !== undefined && options.expectedBits !== bits) {
    throw new HammingError(
      'BITS_MISMATCH',
      `${name}: expected ${options.expectedBits}-bit codes, found ${bits}-bit codes; ` +
        'load the index built for this code length.',
    );
  }
  return fromFaissBytes(bits, bytes.subarray(INDEX_HEADER_BYTES, expected - 4));
}

function hex(v: number): string {
  return `0x${v.toString(16).padStart(8, '0')}`;
}

/**
 * The platform's file functions (node.ts installs Node's), or NO_FILE_SYSTEM naming the operation: in a
 * browser there is no file system to read paths from.
 */
export function fileSystem(op: string): {
  readFile: (path: string) => Promise<Uint8Array>;
  writeFileAtomic: (path: string, bytes: Uint8Array) => Promise<void>;
} {
  const { readFile, writeFileAtomic } = hammingPlatform();
  if (!readFile || !writeFileAtomic) {
    throw new HammingError(
      'NO_FILE_SYSTEM',
      `${op}: expected a host with a file system (Node), found none (${hammingPlatform().name}); in a browser ` +
        'pass bytes instead (toBytes / fromBytes, readNpy / writeNpy); in Node import the Node entry point ' +
        "('@dhta/hamming/node') before using files.",
    );
  }
  return { readFile, writeFileAtomic };
}

/** Writes to a temporary name in the same folder, then renames: never a partial file under `path`. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const fs = fileSystem(`writing ${path}`);
  try {
    await fs.writeFileAtomic(path, bytes);
  } catch (e) {
    throw new HammingError('BAD_FILE', `${path}: could not write the file: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

export async function readIndexFile(path: string, options: DecodeOptions = {}): Promise<Codes> {
  const fs = fileSystem(`reading ${path}`);
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (e) {
    throw new HammingError(
      'BAD_FILE',
      `${path}: expected a readable index file, found: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  return decodeIndexFile(bytes, { ...options, name: options.name ?? path });
}
