// Finite-difference helpers for the reference tests (not a test file itself).
import type { SeededRandom } from '../src/reference/index.js';

export function dot(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) throw new Error(`dot: lengths ${a.length} and ${b.length} differ`);
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc += a[i] * b[i];
  return acc;
}

/** A random unit vector, so that the step h is the same size whatever the dimension. */
export function unitDirection(rng: SeededRandom, n: number): Float64Array {
  const u = rng.normalArray(n);
  const norm = Math.sqrt(dot(u, u));
  for (let i = 0; i < n; i++) u[i] /= norm;
  return u;
}

/** |a - b| / max(|a|, |b|), 0 when both are 0. */
export function relativeError(a: number, b: number): number {
  const scale = Math.max(Math.abs(a), Math.abs(b));
  return scale === 0 ? 0 : Math.abs(a - b) / scale;
}

/**
 * Compares the analytic gradient of a scalar loss(p) with central differences along random unit directions
 * u: (loss(p + h u) - loss(p - h u)) / 2h against dot(grad, u). Returns the largest relative error.
 * The loss is called with fresh copies; p is not modified.
 */
export function directionalGradError(
  loss: (p: Float64Array) => number,
  p: Float64Array,
  grad: Float64Array,
  rng: SeededRandom,
  directions = 3,
  h = 1e-5,
): number {
  if (grad.length !== p.length)
    throw new Error(`gradient has ${grad.length} elements, parameter ${p.length}`);
  let worst = 0;
  for (let d = 0; d < directions; d++) {
    const u = unitDirection(rng, p.length);
    const plus = p.slice();
    const minus = p.slice();
    for (let i = 0; i < p.length; i++) {
      plus[i] += h * u[i];
      minus[i] -= h * u[i];
    }
    const numeric = (loss(plus) - loss(minus)) / (2 * h);
    worst = Math.max(worst, relativeError(numeric, dot(grad, u)));
  }
  return worst;
}

/** Central-difference gradient of loss at p, element by element (for tiny cases). */
export function numericGradient(loss: (p: Float64Array) => number, p: Float64Array, h = 1e-5): Float64Array {
  const g = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const plus = p.slice();
    const minus = p.slice();
    plus[i] += h;
    minus[i] -= h;
    g[i] = (loss(plus) - loss(minus)) / (2 * h);
  }
  return g;
}

/** max_i |a_i - b_i| / max(max|a|, max|b|): a relative error for whole vectors. */
export function maxRelativeError(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length} differ`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]), Math.abs(b[i]));
  }
  return scale === 0 ? 0 : diff / scale;
}

/** Element-wise closeness with an absolute tolerance, reporting the first offender. */
export function expectArrayClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  if (actual.length !== expected.length) {
    throw new Error(`length ${actual.length}, expected ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
      throw new Error(`element ${i}: ${actual[i]}, expected ${expected[i]} (tolerance ${tol})`);
    }
  }
}
