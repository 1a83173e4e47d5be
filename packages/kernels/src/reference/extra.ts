// Small float64 references the GPU ops need that the other reference files do not have.
import { checkLength, checkNonNegativeInt } from './check.ts';
import { uniformAt } from './random.ts';

/** Per-channel sums of x [N, C, P] -> [C] (a convolution's bias gradient: over the batch and the plane). */
export function sumChannels(x: Float64Array, n: number, channels: number, plane: number): Float64Array {
  const op = 'sumChannels';
  checkNonNegativeInt(op, 'n', n);
  checkNonNegativeInt(op, 'channels', channels);
  checkNonNegativeInt(op, 'plane', plane);
  checkLength(op, 'x', x, n * channels * plane);
  const out = new Float64Array(channels);
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < channels; c++) {
      for (let p = 0; p < plane; p++) out[c] += x[(b * channels + c) * plane + p];
    }
  }
  return out;
}

/** alpha * x, as a new array. */
export function scale(x: Float64Array, alpha: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = alpha * x[i];
  return out;
}

/** n values lo + (hi - lo) * uniformAt(seed, offset + i): uniformArray with a starting index. */
export function uniformArrayAt(
  seed: number,
  n: number,
  lo: number,
  hi: number,
  offset: number,
): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * uniformAt(seed, offset + i);
  return out;
}
