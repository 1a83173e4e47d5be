// Case data shared by the engine parity suite (engine-ops.test.ts) and the same checks in a browser
// (browser/op-checks.ts): shapes, options, seeds' data and the matmul reference over raw storage. Plain
// TypeScript without vitest, so that it bundles for a page.
import * as ref from '../src/reference/index.js';

/** Float32 rounding of float64 data, so CPU references see exactly the engine's inputs (as helpers.ts). */
export function f32(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(Float32Array.from(x));
}

/** n standard normal values, rounded to float32 (as helpers.ts). */
export function randn(rng: ref.SeededRandom, n: number): Float64Array {
  return f32(Array.from({ length: n }, () => rng.normal()));
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Normwise relative error max|a - e| / max|e|; NaN anywhere is Infinity (as helpers.ts relativeError). */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Number.POSITIVE_INFINITY;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!Number.isFinite(a) || !Number.isFinite(e)) return Number.POSITIVE_INFINITY;
    maxDiff = Math.max(maxDiff, Math.abs(a - e));
    maxRef = Math.max(maxRef, Math.abs(e));
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}

// ---- matmul reference over raw storage (offsets, leading dimensions, batches, epilogue) -------------------

export interface MatmulCase {
  transA?: boolean;
  transB?: boolean;
  bias?: Float64Array;
  biasAxis?: 'col' | 'row';
  relu?: boolean;
  alpha?: number;
  accumulate?: boolean;
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  aOffset?: number;
  bOffset?: number;
  cOffset?: number;
  lda?: number;
  ldb?: number;
  ldc?: number;
}

/** The defaults of EngineMatmulOptions made explicit. */
export function matmulLayout(M: number, K: number, N: number, o: MatmulCase) {
  const transA = o.transA ?? false;
  const transB = o.transB ?? false;
  return {
    transA,
    transB,
    batch: o.batch ?? 1,
    lda: o.lda ?? (transA ? M : K),
    ldb: o.ldb ?? (transB ? K : N),
    ldc: o.ldc ?? N,
    strideA: o.strideA ?? M * K,
    strideB: o.strideB ?? K * N,
    strideC: o.strideC ?? M * N,
    aOff: o.aOffset ?? 0,
    bOff: o.bOffset ?? 0,
    cOff: o.cOffset ?? 0,
  };
}

/**
 * The whole C storage after the product: c0 where C is not addressed; else, as the WGSL matmul tests,
 * relu(alpha * op(A) op(B) + bias + (accumulate ? c0 : 0)).
 */
export function matmulExpected(
  a: Float64Array,
  b: Float64Array,
  M: number,
  K: number,
  N: number,
  o: MatmulCase,
  c0: Float64Array,
): Float64Array {
  const l = matmulLayout(M, K, N, o);
  const out = Float64Array.from(c0);
  for (let z = 0; z < l.batch; z++) {
    const aD = new Float64Array(M * K);
    const bD = new Float64Array(K * N);
    for (let m = 0; m < M; m++)
      for (let k = 0; k < K; k++)
        aD[m * K + k] = a[l.aOff + z * l.strideA + (l.transA ? k * l.lda + m : m * l.lda + k)];
    for (let k = 0; k < K; k++)
      for (let n = 0; n < N; n++)
        bD[k * N + n] = b[l.bOff + z * l.strideB + (l.transB ? n * l.ldb + k : k * l.ldb + n)];
    const prod = ref.matmul(aD, bD, M, K, N);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        const i = l.cOff + z * l.strideC + m * l.ldc + n;
        let v = (o.alpha ?? 1) * prod[m * N + n];
        if (o.bias) v += (o.biasAxis ?? 'col') === 'col' ? o.bias[n] : o.bias[m];
        if (o.accumulate) v += c0[i];
        out[i] = o.relu ? Math.max(0, v) : v;
      }
  }
  return out;
}

/** Indices of C's storage that the product addresses. */
export function matmulWritten(M: number, K: number, N: number, o: MatmulCase, length: number): boolean[] {
  const l = matmulLayout(M, K, N, o);
  const written = new Array<boolean>(length).fill(false);
  for (let z = 0; z < l.batch; z++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) written[l.cOff + z * l.strideC + m * l.ldc + n] = true;
  return written;
}

// ---- LSTM cases (as ops-lstm.test.ts) --------------------------------------------------------------------

export interface LstmCase {
  N: number;
  T: number;
  I: number;
  H: number;
  /** h0 and c0 given (else absent: zeros) */
  initial: boolean;
  /** dh nonzero at every step (else only at the last one) */
  dhAll: boolean;
  /** dhT and dcT given */
  final: boolean;
  /** scale of x and the weights: large values saturate the gates */
  scale?: number;
}

export const LSTM_CASES: LstmCase[] = [
  { N: 1, T: 1, I: 1, H: 1, initial: false, dhAll: true, final: false },
  { N: 1, T: 1, I: 4, H: 3, initial: true, dhAll: true, final: true },
  { N: 3, T: 5, I: 7, H: 6, initial: true, dhAll: true, final: false },
  { N: 3, T: 5, I: 7, H: 6, initial: false, dhAll: false, final: false },
  { N: 2, T: 4, I: 5, H: 9, initial: false, dhAll: true, final: true },
  { N: 1, T: 6, I: 3, H: 5, initial: true, dhAll: false, final: true },
  { N: 5, T: 3, I: 11, H: 17, initial: true, dhAll: true, final: false },
  // Split-K on the weight-gradient GEMMs (N*T >= 512 with few output tiles).
  { N: 4, T: 130, I: 3, H: 2, initial: true, dhAll: true, final: false },
  // Saturated gates: huge pre-activations must give 0/1 gates, not NaN. Gradients through saturated gates
  // nearly vanish, so dx is small and ill-conditioned (f32 roundoff of larger terms that cancel): with seed
  // 1007 its normwise error is 1.3e-4 on WebGPU, with other seeds above 0.5 on both engines. The data are
  // those of ops-lstm.test.ts (seed 1000 + the case's index there and here), where dx is well conditioned.
  { N: 2, T: 3, I: 4, H: 3, initial: true, dhAll: true, final: true, scale: 40 },
];

export function lstmCaseName(c: LstmCase): string {
  const parts = [`N=${c.N} T=${c.T} I=${c.I} H=${c.H}`];
  parts.push(c.initial ? 'h0/c0' : 'no h0/c0');
  parts.push(c.dhAll ? 'dh at all steps' : 'dh at the last step');
  parts.push(c.final ? 'dhT/dcT' : 'no dhT/dcT');
  if (c.scale) parts.push(`scale ${c.scale}`);
  return parts.join(', ');
}

export interface LstmData {
  dims: ref.LstmDims;
  w: ref.LstmWeights;
  x: Float64Array;
  h0: Float64Array | null;
  c0: Float64Array | null;
  dh: Float64Array;
  dhT: Float64Array | null;
  dcT: Float64Array | null;
}

export function lstmData(c: LstmCase, seed: number): LstmData {
  const rng = new ref.SeededRandom(seed);
  const { N, T, I, H } = c;
  const scale = c.scale ?? 1;
  const data = (n: number, s: number) => f32(rng.uniformArray(n, -s, s));
  const w: ref.LstmWeights = {
    wIh: data(4 * H * I, 0.6 * scale),
    wHh: data(4 * H * H, 0.6 * scale),
    bIh: data(4 * H, 0.5),
    bHh: data(4 * H, 0.5),
  };
  const x = data(N * T * I, scale);
  const h0 = c.initial ? data(N * H, 1) : null;
  const c0 = c.initial ? data(N * H, 2) : null;
  const dh = data(N * T * H, 1);
  if (!c.dhAll) for (let n = 0; n < N; n++) dh.fill(0, n * T * H, (n * T + T - 1) * H);
  const dhT = c.final ? data(N * H, 1) : null;
  const dcT = c.final ? data(N * H, 1) : null;
  return { dims: { N, T, I, H }, w, x, h0, c0, dh, dhT, dcT };
}

export const LSTM_GRADIENT_KEYS = ['dx', 'dWih', 'dWhh', 'dbIh', 'dbHh', 'dh0', 'dc0'] as const;

// ---- conv cases ------------------------------------------------------------------------------------------

// [N, C, H, W, O, K, stride, padding]: 1x1, 3x3, 5x5 kernels, stride 1, 2 and 3, padding 0-2, batch 1,
// odd planes and channel counts that fit no tile.
export const CONV_CASES: Array<[number, number, number, number, number, number, number, number]> = [
  [1, 1, 5, 5, 1, 1, 1, 0],
  [1, 3, 7, 9, 5, 3, 1, 1],
  [2, 4, 9, 8, 6, 3, 2, 1],
  [3, 5, 6, 7, 37, 1, 2, 0],
  [2, 19, 11, 10, 3, 5, 1, 2],
  [1, 2, 8, 8, 4, 4, 3, 1],
  [2, 3, 12, 17, 37, 3, 1, 1],
  [2, 13, 9, 9, 4, 3, 1, 0],
  [3, 1, 28, 28, 8, 5, 1, 2],
];

// ---- per-op case lists -----------------------------------------------------------------------------------

/** [M, K, N, transA, transB] of plain products. */
export const MATMUL_PLAIN: Array<[number, number, number, boolean, boolean]> = [
  [1, 1, 1, false, false],
  [7, 13, 5, false, false],
  [33, 70, 17, true, false],
  [65, 3, 129, false, true],
  [50, 700, 9, true, true],
  [3, 2000, 4, true, false],
  [1, 4, 1, false, true],
  [4, 64, 37, false, true],
  [21, 132, 67, false, true],
  [5, 300, 36, false, false],
  [37, 50, 260, false, false],
];

// Each part of the epilogue alone, then all of them; on shapes that take different kernels on the GPU.
export const MATMUL_EPILOGUES: Array<[string, MatmulCase, boolean]> = [
  ['bias per column', { bias: new Float64Array(0), biasAxis: 'col' }, false],
  ['bias per column (default axis)', { bias: new Float64Array(0) }, false],
  ['bias per row, ReLU', { bias: new Float64Array(0), biasAxis: 'row', relu: true }, false],
  ['ReLU', { relu: true }, false],
  ['alpha -0.75', { alpha: -0.75 }, false],
  ['into out, overwritten', {}, true],
  ['accumulate', { accumulate: true }, true],
  [
    'accumulate, alpha, bias per row, ReLU',
    { accumulate: true, alpha: 0.5, bias: new Float64Array(0), biasAxis: 'row', relu: true },
    true,
  ],
  [
    'accumulate, alpha, bias per column, ReLU',
    { accumulate: true, alpha: 0.5, bias: new Float64Array(0), relu: true },
    true,
  ],
];

/** [M, K, N, transA, transB] on which every epilogue runs. */
export const MATMUL_EPILOGUE_SHAPES = [
  [9, 40, 11, false, false],
  [3, 1028, 45, false, true],
  [19, 4, 28, true, false],
  [8, 300, 36, false, false],
  [6, 17, 10, true, true],
] as const;

// A sub-block of bigger matrices: offsets to its first element and the big matrices' row lengths.
// [M, K, N, transA, transB, [A row, col, ld], [B row, col, ld], [C row, col, ld]]
export const MATMUL_BLOCKS: Array<
  [
    number,
    number,
    number,
    boolean,
    boolean,
    [number, number, number],
    [number, number, number],
    [number, number, number],
  ]
> = [
  [6, 19, 10, false, false, [2, 3, 25], [1, 4, 17], [3, 2, 15]],
  [6, 19, 10, true, false, [1, 2, 11], [2, 1, 13], [1, 3, 14]],
  [6, 19, 10, false, true, [3, 1, 22], [2, 5, 26], [2, 0, 12]],
  [6, 19, 10, true, true, [0, 5, 12], [4, 2, 23], [0, 1, 11]],
  // Multiples of 4 (vec4 paths on the GPU): B stored [N, K], then B stored [K, N].
  [3, 132, 45, false, true, [1, 4, 140], [2, 8, 144], [1, 3, 50]],
  [5, 40, 36, false, false, [2, 3, 47], [1, 4, 44], [2, 4, 48]],
];

export const MAXPOOL_CASES: Array<{
  shape: [number, number, number, number];
  kernel: number;
  stride?: number;
}> = [
  { shape: [2, 3, 8, 8], kernel: 2, stride: 2 },
  { shape: [1, 3, 7, 9], kernel: 2, stride: 2 },
  { shape: [3, 4, 28, 28], kernel: 2, stride: 2 },
  { shape: [1, 1, 5, 5], kernel: 3, stride: 2 },
  { shape: [2, 5, 11, 13], kernel: 3, stride: 2 },
  { shape: [2, 2, 10, 9], kernel: 3, stride: 2 },
  { shape: [2, 3, 9, 11], kernel: 2 },
];

/** [n, p, seed] */
export const DROPOUT_CASES = [
  [1, 0.5, 1],
  [1000, 0.5, 7],
  [4099, 0.2, 123456789],
  [777, 0.9, 3],
];

/** [rows, channels, plane] */
export const CHANNEL_AFFINE_SHAPES = [
  [2, 3, 35],
  [7, 1, 50],
  [6, 2, 1],
  [4, 3, 17],
];

export const SUM_CHANNELS_SHAPES = [
  [1, 3, 5],
  [4, 5, 1],
  [3, 7, 99],
  [5, 6, 9, 11],
  [200, 2, 1],
  [2, 3],
];

/** [shape, alpha] */
export const TANH_CASES = [
  [[1, 1], 1],
  [[7, 13], 1],
  [[3, 5, 17], 2.5],
  [[1, 1001], 0.1],
] as const;

/**
 * pairwiseTerms: rows of 1-3 chunks with odd tails (1, 3, 4 + 1 columns past a multiple of 4), both weightings.
 */
export const PAIRWISE_CASES: readonly (readonly [number, number, boolean])[] = [
  [1, 1, true],
  [3, 7, false],
  [5, 261, true],
  [24, 517, true],
  [2, 1027, false],
];

/**
 * A pairwiseTerms case's theta (|theta| up to 70, one 0 and one past each side of the exp clamp) and sim
 * (similar > 0; 0 and negative values dissimilar), row 1 all similar and row 2 none (weights stay 1).
 */
export function pairwiseData(B: number, N: number): { theta: Float64Array; sim: Float64Array } {
  const rng = new ref.SeededRandom(B * 7919 + N);
  const theta = f32(rng.uniformArray(B * N, -70, 70));
  const sim = f32(Array.from({ length: B * N }, () => (rng.next() < 0.3 ? 1 : rng.next() < 0.5 ? 0 : -2)));
  theta[0] = 0;
  if (B * N > 3) {
    theta[1] = -400;
    theta[2] = 400;
  }
  if (B > 1) for (let j = 0; j < N; j++) sim[N + j] = 1;
  if (B > 2) for (let j = 0; j < N; j++) sim[2 * N + j] = 0;
  return { theta, sim };
}

export const ATTACK_MEAN = [0.485, 0.456, 0.406];
export const ATTACK_STD = [0.229, 0.224, 0.225];

/** [rows, cols] */
export const ATTACK_STEP_SHAPES = [
  [1, 1],
  [5, 1001],
  [3, 3 * 32 * 32],
];

/** [rows, channels, plane] */
export const ATTACK_PROJECT_SHAPES = [
  [1, 1, 7],
  [2, 3, 35],
  [3, 3, 17 * 19],
];

/** [rows, channels, plane] */
export const ATTACK_STEP_PROJECT_SHAPES = [
  [1, 1, 7],
  [3, 3, 35],
  [4, 1, 28 * 28],
  [2, 3, 16 * 16],
];
