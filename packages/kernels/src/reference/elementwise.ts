// Element-wise ops and bit packing, in float64.
import { argError } from '../errors.js';
import { checkLength, checkNonNegativeInt } from './check.js';

function checkSameLength(op: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  checkLength(op, 'second operand', b, a.length);
}

export function relu(x: Float64Array): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = Math.max(x[i], 0); // NaN stays NaN, as in PyTorch
  return y;
}

/** dy where the forward output y > 0, else 0 (gradient 0 at x = 0, as PyTorch). */
export function reluBackward(dy: Float64Array, y: Float64Array): Float64Array {
  checkSameLength('reluBackward', dy, y);
  const dx = new Float64Array(dy.length);
  for (let i = 0; i < dy.length; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
  return dx;
}

/**
 * tanh(t) in float64. The WGSL kernels use sign(t) * (1 - e) / (1 + e), e = exp(-2|t|), since WGSL's builtin
 * is undefined for large |t|; here Math.tanh is both overflow-free and accurate near 0, where (1 - e) loses
 * all relative precision (|t| < 1e-8), so the reference stays exact everywhere.
 */
export function stableTanh(t: number): number {
  return Math.tanh(t);
}

/** tanh(alpha * x), element-wise. */
export function tanhScaled(x: Float64Array, alpha: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = stableTanh(alpha * x[i]);
  return y;
}

/** d/dx tanh(alpha x) = alpha * (1 - tanh(alpha x)^2), times dy. */
export function tanhScaledBackward(dy: Float64Array, x: Float64Array, alpha: number): Float64Array {
  checkSameLength('tanhScaledBackward', dy, x);
  const dx = new Float64Array(dy.length);
  for (let i = 0; i < dy.length; i++) {
    const t = stableTanh(alpha * x[i]);
    dx[i] = dy[i] * alpha * (1 - t * t);
  }
  return dx;
}

/** +1 where x >= 0, else -1: the code bit convention, sign(0) = +1 (PROTOCOL.md). NaN maps to -1. */
export function signPm1(x: Float64Array): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] >= 0 ? 1 : -1;
  return y;
}

/** Number of u32 words that hold one row of `bits` bits. */
export function wordsPerRow(bits: number): number {
  return Math.ceil(bits / 32);
}

/**
 * Packs rows of `bits` values into u32 words, row-major: row r uses words r*ceil(bits/32) onwards; bit j of
 * row r is bit (j & 31) of word (j >> 5), set where x[r*bits + j] >= 0 (least-significant bit first, the
 * FAISS layout). Unused high bits of a row's last word are zero.
 */
export function packBits(x: Float64Array, rows: number, bits: number): Uint32Array {
  const op = 'packBits';
  checkNonNegativeInt(op, 'rows', rows);
  checkNonNegativeInt(op, 'bits', bits);
  checkLength(op, 'x', x, rows * bits);
  const wpr = wordsPerRow(bits);
  const words = new Uint32Array(rows * wpr);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < bits; j++) {
      if (x[r * bits + j] >= 0) {
        // (1 << 31) is negative in JS; a Uint32Array store wraps it to the right unsigned word anyway.
        words[r * wpr + (j >> 5)] |= 1 << (j & 31);
      }
    }
  }
  return words;
}

/** Inverse of packBits: +1 for a set bit, -1 for a clear one, as a [rows, bits] Float64Array. */
export function unpackBits(words: Uint32Array, rows: number, bits: number): Float64Array {
  const op = 'unpackBits';
  checkNonNegativeInt(op, 'rows', rows);
  checkNonNegativeInt(op, 'bits', bits);
  const wpr = wordsPerRow(bits);
  if (words.length !== rows * wpr) {
    throw argError(
      op,
      `expected ${rows * wpr} words for ${rows} rows of ${bits} bits, found ${words.length}`,
    );
  }
  const x = new Float64Array(rows * bits);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < bits; j++) {
      x[r * bits + j] = (words[r * wpr + (j >> 5)] >>> (j & 31)) & 1 ? 1 : -1;
    }
  }
  return x;
}
