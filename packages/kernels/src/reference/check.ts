// Shared argument checks for the float64 reference ops. Internal: not re-exported from index.ts.
import { argError, shapeError } from '../errors.js';

/** Product of a shape's dimensions. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Every dimension a non-negative integer, and the expected rank. */
export function checkShape(op: string, name: string, shape: readonly number[], rank: number): void {
  if (shape.length !== rank || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw shapeError(op, `${name} to be ${rank} non-negative integers`, `[${shape.join(', ')}]`);
  }
}

/** The array holds exactly the elements that its shape says. */
export function checkLength(op: string, name: string, array: ArrayLike<number>, expected: number): void {
  if (array.length !== expected) {
    throw shapeError(op, `${name} to have ${expected} elements`, `${array.length}`);
  }
}

export function checkPositiveInt(op: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw argError(op, `${name} must be a positive integer, found ${value}`);
  }
}

export function checkNonNegativeInt(op: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw argError(op, `${name} must be a non-negative integer, found ${value}`);
  }
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
