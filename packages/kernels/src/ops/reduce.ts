import { shapeError } from '../errors.js';
import { type Gpu, grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { checkDType, checkRank, shapeString } from './check.js';
import {
  REDUCE_COLUMN_CHUNK,
  REDUCE_SEGMENT,
  REDUCE_WORKGROUP,
  type ReduceVariant,
  reduceColumnsShader,
  reduceSegmentsShader,
} from './reduce.wgsl.js';

/**
 * out[r] = finalize(sum over a < A, b < B of map(x[a, r, b])) for x viewed as [A, R, B], deterministic
 * (fixed partition, no atomics), in as many passes as it takes to keep every serial sum short.
 */
function reduce3(
  gpu: Gpu,
  op: string,
  x: Tensor,
  dims: { A: number; R: number; B: number },
  variant: ReduceVariant,
  outShape: readonly number[],
): Tensor {
  const { A, R, B } = dims;
  const out = gpu.empty(outShape);
  if (R === 0) return out;
  if (A * B === 0) {
    gpu.fill(out, 0);
    return out;
  }
  reduceInto(gpu, op, x, A, R, B, variant, out);
  return out;
}

function reduceInto(
  gpu: Gpu,
  op: string,
  x: Tensor,
  A: number,
  R: number,
  B: number,
  variant: ReduceVariant,
  out: Tensor,
): void {
  const last: ReduceVariant = variant;
  const partialVariant: ReduceVariant = { map: variant.map, finalize: 'none' };
  const combineVariant: ReduceVariant = { map: 'identity', finalize: variant.finalize };
  if (B === 1) {
    // Sums down columns (the rows of a [A, R] matrix).
    const segments = Math.ceil(A / REDUCE_COLUMN_CHUNK);
    const v = segments === 1 ? last : partialVariant;
    const target = segments === 1 ? out : gpu.empty([segments, R]);
    gpu.run({
      op,
      key: `columns|${v.map}|${v.finalize}`,
      code: () => reduceColumnsShader(v),
      buffers: [x, target],
      uniforms: [A, R, segments, REDUCE_COLUMN_CHUNK],
      workgroups: grid(Math.ceil((segments * R) / REDUCE_WORKGROUP)),
    });
    if (segments > 1) {
      reduceInto(gpu, op, target, segments, R, 1, combineVariant, out);
      target.release();
    }
    return;
  }
  const len = A * B;
  const segments = Math.ceil(len / REDUCE_SEGMENT);
  const v = segments === 1 ? last : partialVariant;
  const strided = A > 1;
  const target = segments === 1 ? out : gpu.empty([R, segments]);
  gpu.run({
    op,
    key: `segments|${v.map}|${v.finalize}|${strided ? 'strided' : 'rows'}`,
    code: () => reduceSegmentsShader({ ...v, strided }),
    buffers: [x, target],
    uniforms: [len, R, B, segments, REDUCE_SEGMENT, R * B],
    workgroups: grid(R * segments),
  });
  if (segments > 1) {
    reduceInto(gpu, op, target, 1, R, segments, combineVariant, out);
    target.release();
  }
}

/** The sum of all elements, as a [1] tensor (pairwise: accurate for large tensors). */
export function sumAll(gpu: Gpu, x: Tensor): Tensor {
  const op = 'sumAll';
  checkDType(op, 'x', x, 'f32');
  return reduce3(gpu, op, x, { A: 1, R: 1, B: x.size }, { map: 'identity', finalize: 'none' }, [1]);
}

/** Column sums of x [rows, cols] -> [cols]: the bias gradient of a linear layer (sum over the batch). */
export function sumRows(gpu: Gpu, x: Tensor): Tensor {
  const op = 'sumRows';
  checkRank(op, 'x', x, 2);
  const [rows, cols] = x.shape;
  return reduce3(gpu, op, x, { A: rows, R: cols, B: 1 }, { map: 'identity', finalize: 'none' }, [cols]);
}

/**
 * Per-channel sums of x [N, C, ...] (e.g. [N, C, P] or NCHW) -> [C]: the bias gradient of a convolution
 * (sum over the batch and the plane).
 */
export function sumChannels(gpu: Gpu, x: Tensor): Tensor {
  const op = 'sumChannels';
  checkDType(op, 'x', x, 'f32');
  if (x.shape.length < 2)
    throw shapeError(op, 'x of shape [N, C, ...] (rank 2 or more)', shapeString(x.shape));
  const [N, C] = x.shape;
  const P = x.shape.slice(2).reduce((a, b) => a * b, 1);
  return reduce3(gpu, op, x, { A: N, R: C, B: P }, { map: 'identity', finalize: 'none' }, [C]);
}

/** Euclidean norm of each row of x [rows, cols] -> [rows] (pairwise sums of squares, then sqrt). */
export function l2NormRows(gpu: Gpu, x: Tensor): Tensor {
  const op = 'l2NormRows';
  checkRank(op, 'x', x, 2);
  const [rows, cols] = x.shape;
  return reduce3(gpu, op, x, { A: 1, R: rows, B: cols }, { map: 'square', finalize: 'sqrt' }, [rows]);
}
