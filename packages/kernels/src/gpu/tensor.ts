import { KernelError } from '../errors.js';
import type { Gpu } from './context.js';

export type DType = 'f32' | 'u32';

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new KernelError(
        'BAD_ARGUMENT',
        `tensor shape [${shape.join(', ')}]: dimensions must be integers >= 0`,
      );
    }
    n *= d;
  }
  return n;
}

/**
 * A GPU buffer plus shape and dtype. Tensors come from `gpu.tensor`, `gpu.empty` and `gpu.zeros`; the buffer
 * goes back to the pool on `release()` (safe while queued work still uses it: the queue runs in order, and
 * uploads flush pending work first).
 */
export class Tensor {
  readonly gpu: Gpu;
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  private released = false;

  constructor(gpu: Gpu, buffer: GPUBuffer, shape: readonly number[], dtype: DType) {
    this.gpu = gpu;
    this.buffer = buffer;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = shapeSize(shape);
  }

  /** Bytes the tensor's elements occupy (at least 4: zero-size bindings are not allowed). */
  get byteLength(): number {
    return Math.max(4, this.size * 4);
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** Reads the tensor back to the CPU. */
  read(): Promise<Float32Array | Uint32Array> {
    return this.gpu.read(this);
  }

  /** A view of the same buffer with another shape of the same size. */
  reshape(shape: readonly number[]): Tensor {
    const n = shapeSize(shape);
    if (n !== this.size) {
      throw new KernelError(
        'SHAPE_MISMATCH',
        `reshape: a tensor of ${this.size} elements [${this.shape.join(', ')}] cannot become [${shape.join(', ')}] (${n})`,
      );
    }
    return new TensorView(this, shape);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.gpu.pool.release(this.buffer);
  }

  assertLive(op: string): void {
    if (this.released)
      throw new KernelError('BAD_ARGUMENT', `${op}: a released tensor was used as an argument`);
  }
}

/** A reshaped view: shares the buffer, releasing it releases the base. */
class TensorView extends Tensor {
  private readonly base: Tensor;
  constructor(base: Tensor, shape: readonly number[]) {
    super(base.gpu, base.buffer, shape, base.dtype);
    this.base = base;
  }
  override get isReleased(): boolean {
    return this.base.isReleased;
  }
  override release(): void {
    this.base.release();
  }
  override assertLive(op: string): void {
    this.base.assertLive(op);
  }
}
