// Fully connected layer (PyTorch's nn.Linear: y = x W^T + b) and a generic matmul, in float64.
import { shapeError } from '../errors.js';
import { checkLength, checkNonNegativeInt, checkShape, shapeString } from './check.js';

export interface MatmulOptions {
  /** a is stored as [K, M] and used transposed. */
  transA?: boolean;
  /** b is stored as [N, K] and used transposed. */
  transB?: boolean;
}

/**
 * C[M, N] = op(A)[M, K] * op(B)[K, N]. A is stored [M, K] (or [K, M] with transA), B is stored [K, N]
 * (or [N, K] with transB); all row-major.
 */
export function matmul(
  a: Float64Array,
  b: Float64Array,
  M: number,
  K: number,
  N: number,
  options: MatmulOptions = {},
): Float64Array {
  const op = 'matmul';
  checkNonNegativeInt(op, 'M', M);
  checkNonNegativeInt(op, 'K', K);
  checkNonNegativeInt(op, 'N', N);
  checkLength(op, 'a', a, M * K);
  checkLength(op, 'b', b, K * N);
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const av = transA ? a[k * M + i] : a[i * K + k];
        const bv = transB ? b[j * K + k] : b[k * N + j];
        acc += av * bv;
      }
      c[i * N + j] = acc;
    }
  }
  return c;
}

/** y[N, Out] = x[N, In] W[Out, In]^T + bias[Out]. */
export function linearForward(
  x: Float64Array,
  xShape: readonly number[],
  w: Float64Array,
  wShape: readonly number[],
  bias: Float64Array | null,
): Float64Array {
  const op = 'linearForward';
  checkShape(op, 'xShape', xShape, 2);
  checkShape(op, 'wShape', wShape, 2);
  const [N, In] = xShape;
  const [Out, InW] = wShape;
  if (InW !== In) {
    throw shapeError(op, `wShape [Out, ${In}] to match xShape ${shapeString(xShape)}`, shapeString(wShape));
  }
  checkLength(op, 'x', x, N * In);
  checkLength(op, 'w', w, Out * In);
  if (bias !== null) checkLength(op, 'bias', bias, Out);
  const y = matmul(x, w, N, In, Out, { transB: true });
  if (bias !== null) {
    for (let n = 0; n < N; n++) for (let o = 0; o < Out; o++) y[n * Out + o] += bias[o];
  }
  return y;
}

/** dx[N, In] = dy[N, Out] W[Out, In]. */
export function linearBackwardInput(
  dy: Float64Array,
  dyShape: readonly number[],
  w: Float64Array,
  wShape: readonly number[],
): Float64Array {
  const op = 'linearBackwardInput';
  checkShape(op, 'dyShape', dyShape, 2);
  checkShape(op, 'wShape', wShape, 2);
  const [N, Out] = dyShape;
  const [OutW, In] = wShape;
  if (OutW !== Out) {
    throw shapeError(op, `wShape [${Out}, In] to match dyShape ${shapeString(dyShape)}`, shapeString(wShape));
  }
  checkLength(op, 'dy', dy, N * Out);
  checkLength(op, 'w', w, Out * In);
  return matmul(dy, w, N, Out, In);
}

/** dW[Out, In] = dy[N, Out]^T x[N, In]. */
export function linearBackwardWeight(
  dy: Float64Array,
  x: Float64Array,
  N: number,
  In: number,
  Out: number,
): Float64Array {
  const op = 'linearBackwardWeight';
  checkNonNegativeInt(op, 'N', N);
  checkNonNegativeInt(op, 'In', In);
  checkNonNegativeInt(op, 'Out', Out);
  checkLength(op, 'dy', dy, N * Out);
  checkLength(op, 'x', x, N * In);
  return matmul(dy, x, Out, N, In, { transA: true });
}

/** db[Out] = column sums of dy[N, Out]. */
export function linearBackwardBias(dy: Float64Array, N: number, Out: number): Float64Array {
  const op = 'linearBackwardBias';
  checkNonNegativeInt(op, 'N', N);
  checkNonNegativeInt(op, 'Out', Out);
  checkLength(op, 'dy', dy, N * Out);
  const db = new Float64Array(Out);
  for (let n = 0; n < N; n++) for (let o = 0; o < Out; o++) db[o] += dy[n * Out + o];
  return db;
}
