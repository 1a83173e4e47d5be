import { type Codes, MAX_BITS } from '@dhta/kernels/hamming';
import { EvaluationError } from './errors.ts';

/**
 * Binary codes as the metrics accept them: ±1 values (`Int8Array`, count x bits, row-major), packed u32
 * words (`Uint32Array`, count x ceil(bits/32), bit j of a code = bit j&31 of word j>>5, least-significant
 * first, 1 = +1), or packed `Codes` from `@dhta/kernels/hamming`.
 */
export type CodeArray = Int8Array | Uint32Array | Codes;

/** `HammingIndex` takes codes of 8 bits or more; shorter codes are padded with zero bits (see packCodes). */
export const INDEX_MIN_BITS = 8;

export function checkBits(bits: number, what: string): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > MAX_BITS) {
    throw new EvaluationError(
      'BAD_BITS',
      `${what}: expected an integer code length from 1 to ${MAX_BITS} bits, found ${String(bits)}; ` +
        'pass the number of bits per code (e.g. 64).',
    );
  }
}

function isCodes(x: unknown): x is Codes {
  return typeof x === 'object' && x !== null && 'bits' in x && 'words' in x && 'count' in x;
}

/** Number of codes in `input` for `bits`-bit codes (validates the length). */
export function codeCount(bits: number, input: CodeArray, what: string): number {
  if (isCodes(input)) {
    if (input.bits !== bits) {
      throw new EvaluationError(
        'BAD_CODES',
        `${what}: expected ${bits}-bit codes, found ${input.bits}-bit Codes; encode with the same code length.`,
      );
    }
    return input.count;
  }
  const perCode = input instanceof Int8Array ? bits : input instanceof Uint32Array ? (bits + 31) >>> 5 : 0;
  if (perCode === 0) {
    throw new EvaluationError(
      'BAD_CODES',
      `${what}: expected an Int8Array of ±1 values, a Uint32Array of packed words or Codes, found ` +
        `${(input as object)?.constructor?.name ?? typeof input}.`,
    );
  }
  if (input.length % perCode !== 0) {
    const unit = input instanceof Int8Array ? 'values' : 'u32 words';
    throw new EvaluationError(
      'BAD_CODES',
      `${what}: expected a length that is a multiple of ${perCode} ${unit} per ${bits}-bit code, found ` +
        `${input.length}; check the code length or the array shape.`,
    );
  }
  return input.length / perCode;
}

/**
 * Packs codes into u32 words of max(bits, 8) bits each, ready for `HammingIndex`. Codes shorter than 8 bits
 * get zero padding bits, the same in every code, so Hamming distances are unchanged. ±1 values must be
 * exactly +1 or -1 (anything else is a BAD_CODES error with its position).
 */
export function packCodes(bits: number, input: CodeArray, what: string): Codes {
  checkBits(bits, what);
  const count = codeCount(bits, input, what);
  const indexBits = Math.max(bits, INDEX_MIN_BITS);
  const W = (indexBits + 31) >>> 5;
  const words = new Uint32Array(count * W);
  if (input instanceof Int8Array) {
    for (let i = 0; i < count; i++) {
      for (let j = 0; j < bits; j++) {
        const v = input[i * bits + j];
        if (v === 1) words[i * W + (j >>> 5)] |= 1 << (j & 31);
        else if (v !== -1) {
          throw new EvaluationError(
            'BAD_CODES',
            `${what}: expected ±1 values, found ${v} at code ${i}, bit ${j}; binarise with sign (sign(0) = +1).`,
          );
        }
      }
    }
  } else {
    const source = isCodes(input) ? input.words : input;
    words.set(source.subarray(0, count * W));
    const rest = bits & 31;
    if (rest !== 0) {
      const mask = ((1 << rest) - 1) >>> 0;
      for (let i = W - 1; i < words.length; i += W) words[i] = (words[i] & mask) >>> 0;
    }
  }
  return { bits: indexBits, count, words };
}

/** Number of classes from a multi-hot label matrix of `count` rows; validates the shape and the 0/1 values. */
export function labelClasses(labels: Uint8Array, count: number, what: string): number {
  if (!(labels instanceof Uint8Array)) {
    throw new EvaluationError(
      'BAD_LABELS',
      `${what}: expected a Uint8Array of multi-hot labels (count x classes), found ` +
        `${(labels as object)?.constructor?.name ?? typeof labels}; build one with oneHot() for class indices.`,
    );
  }
  if (count === 0 || labels.length % count !== 0 || labels.length === 0) {
    throw new EvaluationError(
      'BAD_LABELS',
      `${what}: expected ${count} rows of labels (count x classes), found ${labels.length} values; ` +
        'pass one multi-hot row per code.',
    );
  }
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] > 1) {
      const C = labels.length / count;
      throw new EvaluationError(
        'BAD_LABELS',
        `${what}: expected multi-hot 0/1 values, found ${labels[i]} at row ${Math.floor(i / C)}, class ` +
          `${i % C}; pass class indices through oneHot().`,
      );
    }
  }
  return labels.length / count;
}

/** Multi-hot rows (count x classes) from one class index per object. */
export function oneHot(classIndices: ArrayLike<number>, classes: number): Uint8Array {
  if (!Number.isInteger(classes) || classes < 1) {
    throw new EvaluationError('BAD_OPTION', `oneHot: expected classes >= 1, found ${String(classes)}.`);
  }
  const out = new Uint8Array(classIndices.length * classes);
  for (let i = 0; i < classIndices.length; i++) {
    const c = classIndices[i];
    if (!Number.isInteger(c) || c < 0 || c >= classes) {
      throw new EvaluationError(
        'BAD_LABELS',
        `oneHot: expected class indices from 0 to ${classes - 1}, found ${String(c)} at ${i}; check classes.`,
      );
    }
    out[i * classes + c] = 1;
  }
  return out;
}

/** True when label rows a (of labelsA) and b (of labelsB) share at least one positive class. */
export function sharesLabel(
  labelsA: Uint8Array,
  a: number,
  labelsB: Uint8Array,
  b: number,
  classes: number,
): boolean {
  const oa = a * classes;
  const ob = b * classes;
  for (let c = 0; c < classes; c++) if (labelsA[oa + c] & labelsB[ob + c]) return true;
  return false;
}
