// 2-D max pooling (PyTorch's nn.MaxPool2d with no padding, no dilation, floor mode), in float64.
// The forward saves, per output, the index of the chosen input within its (n, c) plane, so that the
// backward is a plain scatter, exactly as the GPU kernels do it.
import { argError, shapeError } from '../errors.js';
import { checkLength, checkPositiveInt, checkShape, shapeString, sizeOf } from './check.js';

export interface MaxPool2dParams {
  kernel: number;
  stride: number;
}

/**
 * y[n,c,oh,ow] = max over the kernel x kernel window at (oh*stride, ow*stride).
 * argmax holds h*W + w of the winner inside the input plane of the same (n, c). On ties the first maximum
 * in row-major window order wins (strict '>' while scanning). A NaN in the window wins (the first one), so
 * NaNs propagate as in PyTorch.
 */
export function maxPool2dForward(
  x: Float64Array,
  xShape: readonly number[],
  params: MaxPool2dParams,
): { y: Float64Array; argmax: Int32Array; shape: [number, number, number, number] } {
  const op = 'maxPool2dForward';
  checkShape(op, 'xShape', xShape, 4);
  checkPositiveInt(op, 'kernel', params.kernel);
  checkPositiveInt(op, 'stride', params.stride);
  const [N, C, H, W] = xShape;
  checkLength(op, 'x', x, N * C * H * W);
  const k = params.kernel;
  const s = params.stride;
  if (k > H || k > W) throw argError(op, `kernel ${k} is larger than the input plane ${H}x${W}`);
  const OH = Math.floor((H - k) / s) + 1;
  const OW = Math.floor((W - k) / s) + 1;
  const y = new Float64Array(N * C * OH * OW);
  const argmax = new Int32Array(N * C * OH * OW);
  for (let nc = 0; nc < N * C; nc++) {
    const base = nc * H * W;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        let bestIndex = oh * s * W + ow * s;
        let best = x[base + bestIndex];
        for (let kh = 0; kh < k; kh++) {
          for (let kw = 0; kw < k; kw++) {
            const index = (oh * s + kh) * W + (ow * s + kw);
            const v = x[base + index];
            if (!Number.isNaN(best) && (v > best || Number.isNaN(v))) {
              best = v;
              bestIndex = index;
            }
          }
        }
        const out = (nc * OH + oh) * OW + ow;
        y[out] = best;
        argmax[out] = bestIndex;
      }
    }
  }
  return { y, argmax, shape: [N, C, OH, OW] };
}

/** dx[n,c,argmax] += dy[n,c,oh,ow]; overlapping windows (stride < kernel) accumulate. */
export function maxPool2dBackward(
  dy: Float64Array,
  argmax: Int32Array,
  yShape: readonly number[],
  xShape: readonly number[],
): Float64Array {
  const op = 'maxPool2dBackward';
  checkShape(op, 'yShape', yShape, 4);
  checkShape(op, 'xShape', xShape, 4);
  const [N, C, OH, OW] = yShape;
  const [NX, CX, H, W] = xShape;
  if (N !== NX || C !== CX) {
    throw shapeError(
      op,
      'yShape and xShape to agree on N and C',
      `${shapeString(yShape)} vs ${shapeString(xShape)}`,
    );
  }
  checkLength(op, 'dy', dy, sizeOf(yShape));
  checkLength(op, 'argmax', argmax, sizeOf(yShape));
  const plane = H * W;
  const dx = new Float64Array(N * C * plane);
  for (let nc = 0; nc < N * C; nc++) {
    for (let i = 0; i < OH * OW; i++) {
      const out = nc * OH * OW + i;
      const index = argmax[out];
      if (index < 0 || index >= plane) {
        throw argError(op, `argmax[${out}] = ${index} is outside the input plane of ${plane} elements`);
      }
      dx[nc * plane + index] += dy[out];
    }
  }
  return dx;
}

/**
 * The gradient of maxPool2d(relu(z)) with respect to z, from the pool's output y: the pool backward with dy
 * passed only where y > 0 (y[o] = relu(z)[argmax[o]], so y[o] > 0 exactly where relu lets the gradient
 * through at the chosen element). What the fused GPU kernel computes; equal to reluBackward(maxPool2dBackward).
 */
export function maxPool2dReluBackward(
  dy: Float64Array,
  y: Float64Array,
  argmax: Int32Array,
  yShape: readonly number[],
  xShape: readonly number[],
): Float64Array {
  checkLength('maxPool2dReluBackward', 'y', y, sizeOf(yShape));
  const masked = Float64Array.from(dy, (v, i) => (y[i] > 0 ? v : 0));
  return maxPool2dBackward(masked, argmax, yShape, xShape);
}
