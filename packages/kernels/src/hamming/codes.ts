import { HammingError } from './errors.ts';

/** Shortest and longest code lengths supported, in bits. */
export const MIN_BITS = 8;
export const MAX_BITS = 4096;

/**
 * A set of `count` binary codes of `bits` bits each, packed into u32 words: code i occupies
 * `words[i*W .. i*W+W-1]` with `W = ceil(bits/32)`; bit j of a code is bit (j & 31) of word (j >> 5),
 * least-significant first. Bits past `bits` in the last word are always zero.
 */
export interface Codes {
  readonly bits: number;
  readonly count: number;
  readonly words: Uint32Array;
}

/**
 * What every method that takes codes accepts: packed `Codes`, ±1 floats (count x bits; value >= 0 is a 1
 * bit), FAISS-layout packed bytes (count x ceil(bits/8)), or packed u32 words (count x ceil(bits/32)).
 * The count of a bare typed array is inferred from its length and the index's `bits`.
 */
export type CodesInput = Codes | Float32Array | Float64Array | Uint8Array | Uint32Array;

export function wordsPerCode(bits: number): number {
  return (bits + 31) >>> 5;
}

export function bytesPerCode(bits: number): number {
  return (bits + 7) >>> 3;
}

/** Mask of the meaningful bits of a code's last word. */
export function lastWordMask(bits: number): number {
  const rest = bits & 31;
  return rest === 0 ? 0xffffffff : ((1 << rest) - 1) >>> 0;
}

export function checkBits(bits: number, what = 'bits'): void {
  if (!Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new HammingError(
      'BAD_BITS',
      `${what}: expected an integer code length from ${MIN_BITS} to ${MAX_BITS} bits, found ${String(bits)}; ` +
        'pass the number of bits per code (e.g. 64).',
    );
  }
}

function countFromLength(length: number, perCode: number, bits: number, unit: string, what: string): number {
  if (length % perCode !== 0) {
    throw new HammingError(
      'BAD_CODES',
      `${what}: expected a length that is a multiple of ${perCode} ${unit} per ${bits}-bit code, found ${length} ` +
        `(${Math.floor(length / perCode)} codes and ${length % perCode} ${unit} left over); ` +
        'check the code length or the array shape.',
    );
  }
  return length / perCode;
}

/**
 * Packs ±1 values (row-major, count x bits) into codes. A value >= 0 (including -0 and +Infinity) is a 1
 * bit, anything below 0 a 0 bit (sign(0) = +1). NaN is an error, with its position.
 */
export function fromPm1(bits: number, values: Float32Array | Float64Array | ArrayLike<number>): Codes {
  checkBits(bits);
  const count = countFromLength(values.length, bits, bits, 'values', 'fromPm1');
  const W = wordsPerCode(bits);
  const words = new Uint32Array(count * W);
  for (let i = 0; i < count; i++) {
    const base = i * bits;
    for (let w = 0; w < W; w++) {
      const j0 = w << 5;
      const j1 = Math.min(bits, j0 + 32);
      let word = 0;
      for (let j = j0; j < j1; j++) {
        const v = values[base + j];
        if (v >= 0) word |= 1 << (j - j0);
        else if (!(v < 0)) {
          throw new HammingError(
            'NAN_CODE',
            `fromPm1: expected ±1 (or any non-NaN real) values, found ${String(v)} at code ${i}, bit ${j}; ` +
              'the model output contains NaN: fix it upstream or drop that row.',
          );
        }
      }
      words[i * W + w] = word;
    }
  }
  return { bits, count, words };
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Reads codes packed as bytes in FAISS's layout (count x ceil(bits/8) uint8, bit j of a code = bit j&7 of
 * byte j>>3). Bits past `bits` in the last byte are ignored.
 */
export function fromFaissBytes(bits: number, bytes: Uint8Array): Codes {
  checkBits(bits);
  const B = bytesPerCode(bits);
  const count = countFromLength(bytes.length, B, bits, 'bytes', 'fromFaissBytes');
  const W = wordsPerCode(bits);
  const words = new Uint32Array(count * W);
  if (littleEndian && B === W * 4) {
    new Uint8Array(words.buffer).set(bytes);
  } else if (littleEndian) {
    const view = new Uint8Array(words.buffer);
    for (let i = 0; i < count; i++) view.set(bytes.subarray(i * B, i * B + B), i * W * 4);
  } else {
    for (let i = 0; i < count; i++) {
      for (let b = 0; b < B; b++) words[i * W + (b >> 2)] |= bytes[i * B + b] << ((b & 3) << 3);
    }
  }
  maskPadding(bits, count, words);
  return { bits, count, words };
}

/**
 * Takes codes already packed into u32 words (count x ceil(bits/32)). The words are copied; bits past
 * `bits` in each code's last word are cleared.
 */
export function fromWords(bits: number, words: Uint32Array): Codes {
  checkBits(bits);
  const W = wordsPerCode(bits);
  const count = countFromLength(words.length, W, bits, 'words', 'fromWords');
  const copy = new Uint32Array(words);
  maskPadding(bits, count, copy);
  return { bits, count, words: copy };
}

/** Packs codes into FAISS's byte layout: count x ceil(bits/8) uint8. */
export function toFaissBytes(codes: Codes): Uint8Array {
  const B = bytesPerCode(codes.bits);
  const W = wordsPerCode(codes.bits);
  const out = new Uint8Array(codes.count * B);
  const words = codes.words;
  if (littleEndian && B === W * 4) {
    out.set(new Uint8Array(words.buffer, words.byteOffset, codes.count * W * 4));
  } else {
    for (let i = 0; i < codes.count; i++) {
      for (let b = 0; b < B; b++) out[i * B + b] = (words[i * W + (b >> 2)] >>> ((b & 3) << 3)) & 0xff;
    }
  }
  return out;
}

function maskPadding(bits: number, count: number, words: Uint32Array): void {
  const mask = lastWordMask(bits);
  if (mask === 0xffffffff) return;
  const W = wordsPerCode(bits);
  for (let i = W - 1; i < count * W; i += W) words[i] = (words[i] & mask) >>> 0;
}

function isCodes(x: unknown): x is Codes {
  return (
    typeof x === 'object' &&
    x !== null &&
    'bits' in x &&
    'count' in x &&
    'words' in x &&
    (x as Codes).words instanceof Uint32Array
  );
}

/**
 * Normalises any accepted input to `Codes` of `bits` bits. Packed `Codes` are validated (and their padding
 * bits checked) but not copied.
 */
export function toCodes(bits: number, input: CodesInput, what: string): Codes {
  if (isCodes(input)) {
    if (input.bits !== bits) {
      throw new HammingError(
        'BITS_MISMATCH',
        `${what}: expected ${bits}-bit codes (the index's code length), found ${input.bits}-bit codes; ` +
          'encode the queries with the same model and code length as the database.',
      );
    }
    const W = wordsPerCode(bits);
    if (!Number.isInteger(input.count) || input.count < 0 || input.words.length !== input.count * W) {
      throw new HammingError(
        'BAD_CODES',
        `${what}: expected ${String(input.count)} codes x ${W} words = ${input.count * W} words, found ` +
          `${input.words.length}; build Codes with fromPm1, fromFaissBytes or fromWords.`,
      );
    }
    const mask = lastWordMask(bits);
    if (mask !== 0xffffffff) {
      for (let i = W - 1; i < input.words.length; i += W) {
        if ((input.words[i] & ~mask) !== 0) return fromWords(bits, input.words);
      }
    }
    return input;
  }
  if (input instanceof Float32Array || input instanceof Float64Array) return fromPm1(bits, input);
  if (input instanceof Uint8Array) return fromFaissBytes(bits, input);
  if (input instanceof Uint32Array) return fromWords(bits, input);
  throw new HammingError(
    'BAD_CODES',
    `${what}: expected Codes, a Float32Array/Float64Array of ±1 values, a Uint8Array of FAISS-layout bytes ` +
      `or a Uint32Array of packed words, found ${describe(input)}.`,
  );
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x !== 'object') return typeof x;
  return (x as object).constructor?.name ?? 'an object';
}
