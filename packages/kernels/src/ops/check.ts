// Argument checks shared by the host side of the ops.
import { argError, shapeError } from '../errors.js';
import type { DType, Tensor } from '../gpu/tensor.js';

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** The tensor holds `dtype` elements. */
export function checkDType(op: string, name: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) throw argError(op, `${name} must be a ${dtype} tensor, found ${t.dtype}`);
}

/** The tensor has the given rank (and f32 elements unless told otherwise). */
export function checkRank(op: string, name: string, t: Tensor, rank: number, dtype: DType = 'f32'): void {
  if (t.shape.length !== rank) {
    throw shapeError(op, `${name} of rank ${rank}`, `shape ${shapeString(t.shape)}`);
  }
  checkDType(op, name, t, dtype);
}

/** Two tensors with the same number of elements. */
export function checkSameSize(op: string, a: [string, Tensor], b: [string, Tensor]): void {
  if (a[1].size !== b[1].size) {
    throw shapeError(
      op,
      `${a[0]} and ${b[0]} of equal size`,
      `${shapeString(a[1].shape)} (${a[1].size}) and ${shapeString(b[1].shape)} (${b[1].size})`,
    );
  }
}

/**
 * A written tensor shares no buffer with the others of the dispatch: WebGPU forbids binding one buffer twice
 * when a binding is writable, so an op given the same tensor twice is refused here with a clear message.
 */
export function checkDistinct(op: string, written: [string, Tensor], ...others: [string, Tensor][]): void {
  for (const [name, t] of others) {
    if (t.buffer === written[1].buffer) {
      throw argError(op, `${written[0]} and ${name} must be different tensors (they share a buffer)`);
    }
  }
}

export function checkFinite(op: string, name: string, value: number): void {
  if (!Number.isFinite(value)) throw argError(op, `${name} must be a finite number, found ${value}`);
}

export function checkPositiveInt(op: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1)
    throw argError(op, `${name} must be a positive integer, found ${value}`);
}
