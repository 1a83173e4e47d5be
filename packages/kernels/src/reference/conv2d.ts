// 2-D convolution (cross-correlation, as PyTorch's nn.Conv2d), forward and backward, in float64.
// Layouts: x [N, C, H, W], w [O, C, KH, KW], y [N, O, OH, OW]; the same stride and padding in both spatial
// dims; zero padding; no dilation, no groups.
import { argError, shapeError } from '../errors.js';
import {
  checkLength,
  checkNonNegativeInt,
  checkPositiveInt,
  checkShape,
  shapeString,
  sizeOf,
} from './check.js';

export interface Conv2dParams {
  stride: number;
  padding: number;
}

/** Output size along one spatial dim: floor((in + 2p - k) / s) + 1 (PyTorch's floor mode). */
export function conv2dOutputSize(inSize: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((inSize + 2 * padding - kernel) / stride) + 1;
}

interface ConvGeometry {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  OH: number;
  OW: number;
  s: number;
  p: number;
}

/** Validates x/w shapes and params, and derives the output size. */
function geometry(
  op: string,
  xShape: readonly number[],
  wShape: readonly number[],
  params: Conv2dParams,
): ConvGeometry {
  checkShape(op, 'xShape', xShape, 4);
  checkShape(op, 'wShape', wShape, 4);
  checkPositiveInt(op, 'stride', params.stride);
  checkNonNegativeInt(op, 'padding', params.padding);
  const [N, C, H, W] = xShape;
  const [O, CW, KH, KW] = wShape;
  if (CW !== C) {
    throw shapeError(op, `wShape[1] (input channels) = xShape[1] = ${C}`, `wShape ${shapeString(wShape)}`);
  }
  if (KH < 1 || KW < 1) throw argError(op, `kernel must be at least 1x1, found ${KH}x${KW}`);
  const OH = conv2dOutputSize(H, KH, params.stride, params.padding);
  const OW = conv2dOutputSize(W, KW, params.stride, params.padding);
  if (OH < 1 || OW < 1) {
    throw shapeError(
      op,
      `a kernel ${KH}x${KW} that fits the padded input`,
      `input ${H}x${W} with padding ${params.padding} (output ${OH}x${OW})`,
    );
  }
  return { N, C, H, W, O, KH, KW, OH, OW, s: params.stride, p: params.padding };
}

function checkDy(op: string, dy: Float64Array, dyShape: readonly number[], g: ConvGeometry): void {
  checkShape(op, 'dyShape', dyShape, 4);
  const want = [g.N, g.O, g.OH, g.OW];
  if (dyShape.some((d, i) => d !== want[i])) {
    throw shapeError(op, `dyShape ${shapeString(want)}`, shapeString(dyShape));
  }
  checkLength(op, 'dy', dy, sizeOf(want));
}

/** y[n,o,oh,ow] = bias[o] + sum_{c,kh,kw} x[n, c, oh*s - p + kh, ow*s - p + kw] * w[o,c,kh,kw]. */
export function conv2dForward(
  x: Float64Array,
  xShape: readonly number[],
  w: Float64Array,
  wShape: readonly number[],
  bias: Float64Array | null,
  params: Conv2dParams,
): { y: Float64Array; shape: [number, number, number, number] } {
  const op = 'conv2dForward';
  const g = geometry(op, xShape, wShape, params);
  const { N, C, H, W, O, KH, KW, OH, OW, s, p } = g;
  checkLength(op, 'x', x, N * C * H * W);
  checkLength(op, 'w', w, O * C * KH * KW);
  if (bias !== null) checkLength(op, 'bias', bias, O);
  const y = new Float64Array(N * O * OH * OW);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          let acc = bias === null ? 0 : bias[o];
          for (let c = 0; c < C; c++) {
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * s - p + kh;
              if (ih < 0 || ih >= H) continue; // zero padding contributes nothing
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * s - p + kw;
                if (iw < 0 || iw >= W) continue;
                acc += x[((n * C + c) * H + ih) * W + iw] * w[((o * C + c) * KH + kh) * KW + kw];
              }
            }
          }
          y[((n * O + o) * OH + oh) * OW + ow] = acc;
        }
      }
    }
  }
  return { y, shape: [N, O, OH, OW] };
}

/**
 * dx = dL/dx. Written as the scatter of the forward (every output position sends dy * w back to the inputs
 * it read), which is the plainest statement of the chain rule; input rows/cols that the floor mode never
 * reads get zero.
 */
export function conv2dBackwardInput(
  dy: Float64Array,
  dyShape: readonly number[],
  w: Float64Array,
  wShape: readonly number[],
  xShape: readonly number[],
  params: Conv2dParams,
): Float64Array {
  const op = 'conv2dBackwardInput';
  const g = geometry(op, xShape, wShape, params);
  const { N, C, H, W, O, KH, KW, OH, OW, s, p } = g;
  checkDy(op, dy, dyShape, g);
  checkLength(op, 'w', w, O * C * KH * KW);
  const dx = new Float64Array(N * C * H * W);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          const gy = dy[((n * O + o) * OH + oh) * OW + ow];
          for (let c = 0; c < C; c++) {
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * s - p + kh;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * s - p + kw;
                if (iw < 0 || iw >= W) continue;
                dx[((n * C + c) * H + ih) * W + iw] += gy * w[((o * C + c) * KH + kh) * KW + kw];
              }
            }
          }
        }
      }
    }
  }
  return dx;
}

/** dw[o,c,kh,kw] = sum_{n,oh,ow} dy[n,o,oh,ow] * x[n, c, oh*s - p + kh, ow*s - p + kw]. */
export function conv2dBackwardWeight(
  x: Float64Array,
  xShape: readonly number[],
  dy: Float64Array,
  dyShape: readonly number[],
  wShape: readonly number[],
  params: Conv2dParams,
): Float64Array {
  const op = 'conv2dBackwardWeight';
  const g = geometry(op, xShape, wShape, params);
  const { N, C, H, W, O, KH, KW, OH, OW, s, p } = g;
  checkLength(op, 'x', x, N * C * H * W);
  checkDy(op, dy, dyShape, g);
  const dw = new Float64Array(O * C * KH * KW);
  for (let o = 0; o < O; o++) {
    for (let c = 0; c < C; c++) {
      for (let kh = 0; kh < KH; kh++) {
        for (let kw = 0; kw < KW; kw++) {
          let acc = 0;
          for (let n = 0; n < N; n++) {
            for (let oh = 0; oh < OH; oh++) {
              const ih = oh * s - p + kh;
              if (ih < 0 || ih >= H) continue;
              for (let ow = 0; ow < OW; ow++) {
                const iw = ow * s - p + kw;
                if (iw < 0 || iw >= W) continue;
                acc += dy[((n * O + o) * OH + oh) * OW + ow] * x[((n * C + c) * H + ih) * W + iw];
              }
            }
          }
          dw[((o * C + c) * KH + kh) * KW + kw] = acc;
        }
      }
    }
  }
  return dw;
}

/** db[o] = sum over n, oh, ow of dy[n,o,oh,ow]. */
export function conv2dBackwardBias(dy: Float64Array, dyShape: readonly number[]): Float64Array {
  const op = 'conv2dBackwardBias';
  checkShape(op, 'dyShape', dyShape, 4);
  checkLength(op, 'dy', dy, sizeOf(dyShape));
  const [N, O, OH, OW] = dyShape;
  const plane = OH * OW;
  const db = new Float64Array(O);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const base = (n * O + o) * plane;
      for (let i = 0; i < plane; i++) db[o] += dy[base + i];
    }
  }
  return db;
}
