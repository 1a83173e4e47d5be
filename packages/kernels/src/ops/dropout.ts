import { argError } from '../errors.js';
import { type Gpu, grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { checkDistinct, checkDType, checkSameSize } from './check.js';
import { DROPOUT_WORKGROUP, dropoutShader } from './dropout.wgsl.js';

export interface DropoutOptions {
  /** Drop probability in [0, 1). */
  p: number;
  /** Seed of the mask (taken mod 2^32); the same seed gives the same mask in the backward. */
  seed: number;
  /** Counter offset of element 0 (a large tensor can be masked in pieces); default 0. */
  offset?: number;
  out?: Tensor;
}

function run(gpu: Gpu, op: string, x: Tensor, o: DropoutOptions): Tensor {
  checkDType(op, 'x', x, 'f32');
  if (!(o.p >= 0 && o.p < 1)) throw argError(op, `p must be in [0, 1), found ${o.p}`);
  if (!Number.isInteger(o.seed)) throw argError(op, `seed must be an integer, found ${o.seed}`);
  const offset = o.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) {
    throw argError(op, `offset must be a non-negative integer, found ${offset}`);
  }
  const out = o.out ?? gpu.empty(x.shape);
  checkDType(op, 'out', out, 'f32');
  checkSameSize(op, ['x', x], ['out', out]);
  checkDistinct(op, ['out', out], ['x', x]);
  gpu.run({
    op,
    key: 'mask',
    code: dropoutShader,
    buffers: [x, out],
    uniforms: [x.size, o.seed >>> 0, offset >>> 0, { f32: o.p }, { f32: 1 / (1 - o.p) }],
    workgroups: grid(Math.ceil(x.size / DROPOUT_WORKGROUP)),
  });
  return out;
}

/**
 * Inverted dropout (training mode): y_i = x_i / (1 - p) where uniformAt(seed, offset + i) >= p, else 0.
 * The mask is counter-based, so nothing is stored for the backward and a pass is reproducible.
 */
export function dropout(gpu: Gpu, x: Tensor, options: DropoutOptions): Tensor {
  return run(gpu, 'dropout', x, options);
}

/** The gradient of `dropout` with the same p, seed and offset: dx = dy masked and scaled alike. */
export function dropoutBackward(gpu: Gpu, dy: Tensor, options: DropoutOptions): Tensor {
  return run(gpu, 'dropoutBackward', dy, options);
}
