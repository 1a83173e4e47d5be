import { EvaluationError } from './errors.ts';

export interface PerceptibilityResult {
  /** Per object: sqrt(mean over its pixels of (x' - x)^2). */
  perObject: Float64Array;
  /** The mean of perObject over objects. */
  mean: number;
}

type Pixels = Float32Array | Float64Array;

/**
 * Perceptibility (PROTOCOL.md): per object sqrt(mean over pixels of (x' - x)^2), pixels in [0, 1], then
 * averaged over objects. `adversarial` and `original` hold `count` objects of equal size, row-major.
 * Pixels outside [0, 1] (or NaN) are an OUT_OF_RANGE error: convert from 0..255 or undo the input
 * normalisation first.
 */
export function perceptibility(adversarial: Pixels, original: Pixels, count: number): PerceptibilityResult {
  if (!Number.isInteger(count) || count < 1) {
    throw new EvaluationError(
      'BAD_OPTION',
      `perceptibility: expected count >= 1 objects, found ${String(count)}.`,
    );
  }
  if (
    adversarial.length !== original.length ||
    adversarial.length % count !== 0 ||
    adversarial.length === 0
  ) {
    throw new EvaluationError(
      'SHAPE_MISMATCH',
      `perceptibility: expected two arrays of ${count} objects of equal size, found ${adversarial.length} ` +
        `adversarial and ${original.length} original values; pass the adversarial and benign inputs in the same order.`,
    );
  }
  const size = adversarial.length / count;
  const perObject = new Float64Array(count);
  let total = 0;
  for (let o = 0; o < count; o++) {
    let sum = 0;
    for (let i = o * size; i < (o + 1) * size; i++) {
      const a = adversarial[i];
      const x = original[i];
      if (!(a >= 0 && a <= 1 && x >= 0 && x <= 1)) {
        throw new EvaluationError(
          'OUT_OF_RANGE',
          `perceptibility: expected pixels in [0, 1], found adversarial ${a} and original ${x} at object ${o}, ` +
            `value ${i - o * size}; scale 8-bit pixels by 1/255 or undo the input normalisation first.`,
        );
      }
      sum += (a - x) * (a - x);
    }
    perObject[o] = Math.sqrt(sum / size);
    total += perObject[o];
  }
  return { perObject, mean: total / count };
}
