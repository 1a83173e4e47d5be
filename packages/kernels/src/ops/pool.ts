import { argError, shapeError } from '../errors.js';
import { type Gpu, grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { checkDType, checkPositiveInt, checkRank, shapeString } from './check.js';
import {
  maxPool2dBackwardShader,
  maxPool2dShader,
  POOL_PLANE_WORKGROUP,
  POOL_WORKGROUP,
} from './pool.wgsl.js';

export interface MaxPool2dOptions {
  kernel: number;
  /** Default: the kernel size (non-overlapping windows, PyTorch's default). */
  stride?: number;
}

export interface MaxPool2dBackwardOptions extends MaxPool2dOptions {
  /**
   * The pool's forward output y, when the pool's input came out of a ReLU: dy then flows only where
   * y > 0, i.e. the result is the gradient with respect to the ReLU's input (the ReLU backward, fused).
   */
  reluOutput?: Tensor;
  /** Force an algorithm (tests): 'window' needs stride = kernel. Default: 'window' when it applies. */
  variant?: 'window' | 'gather';
}

export interface MaxPool2dResult {
  /** [N, C, OH, OW] with OH = floor((H - kernel) / stride) + 1. */
  y: Tensor;
  /** u32 [N, C, OH, OW]: h*W + w of the chosen input inside its (n, c) plane, for the backward. */
  argmax: Tensor;
}

function poolParams(op: string, options: MaxPool2dOptions): { kernel: number; stride: number } {
  const kernel = options.kernel;
  const stride = options.stride ?? kernel;
  checkPositiveInt(op, 'kernel', kernel);
  checkPositiveInt(op, 'stride', stride);
  return { kernel, stride };
}

/** Output plane size of a max-pool (no padding, floor mode). */
export function maxPool2dOutputShape(xShape: readonly number[], options: MaxPool2dOptions): number[] {
  const op = 'maxPool2d';
  const { kernel, stride } = poolParams(op, options);
  if (xShape.length !== 4) throw shapeError(op, 'x of shape [N, C, H, W]', shapeString(xShape));
  const [N, C, H, W] = xShape;
  if (kernel > H || kernel > W) {
    throw argError(op, `kernel ${kernel} is larger than the input plane ${H}x${W}; use a smaller kernel`);
  }
  return [N, C, Math.floor((H - kernel) / stride) + 1, Math.floor((W - kernel) / stride) + 1];
}

/**
 * 2-D max pooling of x [N, C, H, W] (PyTorch's nn.MaxPool2d without padding or dilation, floor mode).
 * Ties: the first maximum in row-major window order. Returns y and the argmax the backward needs.
 */
export function maxPool2d(gpu: Gpu, x: Tensor, options: MaxPool2dOptions): MaxPool2dResult {
  const op = 'maxPool2d';
  checkRank(op, 'x', x, 4);
  const { kernel, stride } = poolParams(op, options);
  const shape = maxPool2dOutputShape(x.shape, { kernel, stride });
  const [, , OH, OW] = shape;
  const [, , H, W] = x.shape;
  const y = gpu.empty(shape);
  const argmax = gpu.empty(shape, 'u32');
  gpu.run({
    op,
    key: 'forward',
    code: maxPool2dShader,
    buffers: [x, y, argmax],
    uniforms: [y.size, H, W, OH, OW, kernel, stride],
    workgroups: grid(Math.ceil(y.size / POOL_WORKGROUP)),
  });
  return { y, argmax };
}

/**
 * Gradient of maxPool2d: dx [N, C, H, W] (xShape) from dy and argmax [N, C, OH, OW]. Deterministic (no
 * atomics); overlapping windows (stride < kernel) accumulate in output order, as the reference does.
 * With `options` (the forward's kernel and stride) each input element gathers from the windows that
 * contain it, in parallel; without them, each (n, c) plane is scattered serially by one invocation, which
 * is correct for any windows but slow on large planes: pass the options. Non-overlapping windows
 * (stride = kernel, the usual 2x2 pool) take a faster kernel that writes each kernel x kernel cell at once.
 * `options.reluOutput` fuses the backward of a ReLU before the pool (see MaxPool2dBackwardOptions).
 */
export function maxPool2dBackward(
  gpu: Gpu,
  dy: Tensor,
  argmax: Tensor,
  xShape: readonly number[],
  options?: MaxPool2dBackwardOptions,
): Tensor {
  const op = 'maxPool2dBackward';
  checkRank(op, 'dy', dy, 4);
  checkRank(op, 'argmax', argmax, 4, 'u32');
  checkDType(op, 'dy', dy, 'f32');
  if (xShape.length !== 4) throw shapeError(op, 'xShape [N, C, H, W]', shapeString(xShape));
  const [N, C, H, W] = xShape;
  const [NY, CY, OH, OW] = dy.shape;
  if (argmax.shape.some((d, i) => d !== dy.shape[i])) {
    throw shapeError(op, `argmax of dy's shape ${shapeString(dy.shape)}`, shapeString(argmax.shape));
  }
  if (N !== NY || C !== CY || OH > H || OW > W) {
    throw shapeError(
      op,
      `dy [N, C, OH, OW] with the N and C of xShape and OH <= H, OW <= W (xShape ${shapeString(xShape)})`,
      shapeString(dy.shape),
    );
  }
  const dx = gpu.empty(xShape);
  if (dx.size === 0) return dx;
  if (OH === 0 || OW === 0) {
    gpu.fill(dx, 0);
    return dx;
  }
  if (options) {
    const { kernel, stride } = poolParams(op, options);
    const expected = maxPool2dOutputShape(xShape, { kernel, stride });
    if (expected[2] !== OH || expected[3] !== OW) {
      throw shapeError(
        op,
        `dy of plane ${expected[2]}x${expected[3]} (kernel ${kernel}, stride ${stride} on ${H}x${W})`,
        shapeString(dy.shape),
      );
    }
    const mask = options.reluOutput;
    if (mask) {
      checkDType(op, 'reluOutput', mask, 'f32');
      if (mask.size !== dy.size) {
        throw shapeError(
          op,
          `reluOutput (the pool's output) of dy's shape ${shapeString(dy.shape)}`,
          shapeString(mask.shape),
        );
      }
    }
    const variant = options.variant ?? (stride === kernel ? 'window' : 'gather');
    if (variant === 'window' && stride !== kernel) {
      throw argError(
        op,
        `the 'window' variant needs stride = kernel, found kernel ${kernel}, stride ${stride}`,
      );
    }
    const total = variant === 'window' ? N * C * Math.ceil(H / kernel) * Math.ceil(W / kernel) : dx.size;
    gpu.run({
      op,
      key: `${variant}${mask ? '-relu' : ''}`,
      code: () => maxPool2dBackwardShader(variant, !!mask),
      buffers: mask ? [dy, argmax, dx, mask] : [dy, argmax, dx],
      uniforms: [total, H, W, OH, OW, kernel, stride],
      workgroups: grid(Math.ceil(total / POOL_WORKGROUP)),
    });
  } else {
    gpu.run({
      op,
      key: 'plane',
      code: () => maxPool2dBackwardShader('plane'),
      buffers: [dy, argmax, dx],
      uniforms: [N * C, H, W, OH, OW, 0, 0],
      workgroups: grid(Math.ceil((N * C) / POOL_PLANE_WORKGROUP)),
    });
  }
  return dx;
}
