import { afterAll, beforeAll, expect } from 'vitest';
import { createGpu, type Gpu } from '../src/gpu/context.js';
import type { SeededRandom } from '../src/reference/index.js';

/** Opens one poisoned, error-checked GPU context for a test file and destroys it afterwards. */
export function useGpu(): () => Gpu {
  let gpu: Gpu | null = null;
  beforeAll(async () => {
    gpu = await createGpu({ checkErrors: true, poison: true });
  });
  afterAll(() => {
    gpu?.destroy();
  });
  return () => {
    if (!gpu) throw new Error('GPU not initialised');
    return gpu;
  };
}

/** Normwise relative error max|a - e| / max|e|; NaN anywhere (an unwritten poisoned element) is Infinity. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!Number.isFinite(a) || !Number.isFinite(e)) return Number.POSITIVE_INFINITY;
    maxDiff = Math.max(maxDiff, Math.abs(a - e));
    maxRef = Math.max(maxRef, Math.abs(e));
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-4): void {
  const err = relativeError(actual, expected);
  expect(err, `relative error ${err}`).toBeLessThan(tolerance);
}

/** Float32 rounding of float64 data, so CPU references see exactly the GPU's inputs. */
export function f32(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(Float32Array.from(x));
}

/** n standard normal values, rounded to float32 (see f32). */
export function randn(rng: SeededRandom, n: number): Float64Array {
  return f32(Array.from({ length: n }, () => rng.normal()));
}

/** The same float32 bits element by element (NaN payloads and signed zeros included); names the first difference. */
export function expectSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      first = i;
      break;
    }
  }
  expect(first, `${what}: first differing element ${first} (${actual[first]} vs ${expected[first]})`).toBe(
    -1,
  );
}
