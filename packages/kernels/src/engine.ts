// The op set that models, training and attacks are written against, and that each engine implements: the
// WGSL kernels through WebGPU (gpu/engine.ts) and the WebAssembly SIMD engine on the CPU (wasm/engine.ts).
// The model code never sees which one runs it, the way TensorFlow.js kernels are registered per backend or
// ONNX Runtime picks an execution provider. Every op has one float64 reference (src/reference) that both
// engines are tested against with the same test (test/engine-ops.test.ts).
//
// Semantics shared by all ops:
// - Tensors are row-major float32 (or u32 for argmax indices), owned by the engine that made them; passing a
//   tensor to another engine is an error. `release()` returns its memory; a reshape is a view of the same data,
//   and releasing a view releases that data (the tensor and all its views), on every engine.
// - An op returns a new tensor unless `out` is given; `accumulate` adds into `out` instead of overwriting it.
// - Results are per row: an object's outputs never depend on the other objects of the batch (fixed
//   summation order, no batch-dependent split-K), so a query's result is the same in any batch.

export type EngineKind = 'webgpu' | 'wasm';

/** Columns per partial sum of pairwiseTerms' likelihood (the same on every engine). */
export const PAIRWISE_CHUNK = 256;
export type EngineDType = 'f32' | 'u32';

export interface EngineTensor {
  readonly shape: readonly number[];
  readonly size: number;
  readonly dtype: EngineDType;
  readonly isReleased: boolean;
  /** A view of the same data with another shape of the same size. */
  reshape(shape: readonly number[]): EngineTensor;
  release(): void;
}

export interface EngineConvOptions {
  stride?: number;
  padding?: number;
}

export interface EngineMatmulOptions {
  /** A is stored [K, M] (row-major) instead of [M, K]. */
  transA?: boolean;
  /** B is stored [N, K] instead of [K, N] (PyTorch's Linear weight layout). */
  transB?: boolean;
  bias?: EngineTensor;
  /** 'col': bias[n] per output column (default); 'row': bias[m] per output row. */
  biasAxis?: 'col' | 'row';
  relu?: boolean;
  /** C = alpha*A*B (+ bias) + C. Requires `out`. */
  accumulate?: boolean;
  alpha?: number;
  out?: EngineTensor;
  /** Independent products, one per batch index, at the given element strides. */
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /** Element offsets and leading dimensions of the stored matrices (defaults: 0 and dense). */
  aOffset?: number;
  bOffset?: number;
  cOffset?: number;
  lda?: number;
  ldb?: number;
  ldc?: number;
}

export interface EngineLstmWeights {
  /** [4H, I] */
  wIh: EngineTensor;
  /** [4H, H] */
  wHh: EngineTensor;
  /** [4H] */
  bIh: EngineTensor;
  /** [4H] */
  bHh: EngineTensor;
}

export interface EngineLstmForward {
  /** every hidden state h_1..h_T: [N, T, H] */
  h: EngineTensor;
  /** every cell state c_1..c_T: [N, T, H] */
  c: EngineTensor;
  /** post-activation gates (sigmoid i, sigmoid f, tanh g, sigmoid o): [N, T, 4H] */
  gates: EngineTensor;
  /** [N, H] */
  hT: EngineTensor;
  /** [N, H] */
  cT: EngineTensor;
}

export interface EngineLstmGradients {
  /** [N, T, I] */
  dx: EngineTensor;
  dWih: EngineTensor;
  dWhh: EngineTensor;
  dbIh: EngineTensor;
  dbHh: EngineTensor;
  /** [N, H] */
  dh0: EngineTensor;
  dc0: EngineTensor;
}

export interface EngineAttackProjectOptions {
  channels: number;
  /** Elements per channel plane (H*W, or T*H*W for video). */
  planeSize: number;
  /** Per-channel box of the normalised image. */
  lo: readonly number[];
  hi: readonly number[];
  /** The L-infinity radius: one value, or one per channel. */
  eps: number | readonly number[];
}

export interface Engine {
  readonly kind: EngineKind;
  /** A software implementation of a GPU (llvmpipe, SwiftShader) or the CPU engine itself. */
  readonly software: boolean;
  /** Words for reports: the adapter, or "WebAssembly SIMD, 2 threads". */
  readonly description: string;
  /** The largest tensor one op may bind, in bytes (WebGPU: the largest storage binding). */
  readonly maxTensorBytes: number;
  /** Bytes the engine may still allocate (WebGPU: unknown, Infinity; WebAssembly: its memory left). */
  readonly memoryBytesLeft: number;

  // --- tensors ---
  tensor(shape: readonly number[], data: Float32Array): EngineTensor;
  empty(shape: readonly number[], dtype?: EngineDType): EngineTensor;
  zeros(shape: readonly number[], dtype?: EngineDType): EngineTensor;
  fill(t: EngineTensor, value: 0): void;
  write(t: EngineTensor, data: Float32Array): void;
  copy(src: EngineTensor, dst: EngineTensor): void;
  read(t: EngineTensor): Promise<Float32Array>;

  // --- layers, forward and backward ---
  /** y = x * scale[c] + shift[c], c = floor(i / planeSize) % channels. */
  channelAffine(
    x: EngineTensor,
    o: {
      channels: number;
      planeSize: number;
      scale: readonly number[];
      shift: readonly number[];
      out?: EngineTensor;
    },
  ): EngineTensor;
  conv2d(
    x: EngineTensor,
    w: EngineTensor,
    bias: EngineTensor | null,
    o?: EngineConvOptions & { relu?: boolean; out?: EngineTensor },
  ): EngineTensor;
  conv2dBackwardInput(
    dy: EngineTensor,
    w: EngineTensor,
    xShape: readonly number[],
    o?: EngineConvOptions & { out?: EngineTensor },
  ): EngineTensor;
  conv2dBackwardWeight(
    x: EngineTensor,
    dy: EngineTensor,
    wShape: readonly number[],
    o?: EngineConvOptions & { out?: EngineTensor; accumulate?: boolean },
  ): EngineTensor;
  /** C = alpha * op(A) op(B) (+ bias, ReLU, + C): A [M, K], B [K, N] as stored per the options. */
  matmul(
    a: EngineTensor,
    b: EngineTensor,
    M: number,
    K: number,
    N: number,
    o?: EngineMatmulOptions,
  ): EngineTensor;
  relu(x: EngineTensor, out?: EngineTensor): EngineTensor;
  /** dy where y > 0, else 0. */
  reluBackward(dy: EngineTensor, y: EngineTensor, out?: EngineTensor): EngineTensor;
  /** Max over windows of [N, C, H, W]; argmax (u32, the index in the plane; first maximum wins). */
  maxPool2d(
    x: EngineTensor,
    o: { kernel: number; stride?: number },
  ): { y: EngineTensor; argmax: EngineTensor };
  /** dy back to each window's argmax; with reluOutput (the pool's output) only where it is > 0. */
  maxPool2dBackward(
    dy: EngineTensor,
    argmax: EngineTensor,
    xShape: readonly number[],
    o: { kernel: number; stride?: number; reluOutput?: EngineTensor },
  ): EngineTensor;
  /** Inverted dropout with a counter-based mask (pcgHash of seed and element index, as the reference). */
  dropout(x: EngineTensor, o: { p: number; seed: number; out?: EngineTensor }): EngineTensor;
  dropoutBackward(dy: EngineTensor, o: { p: number; seed: number; out?: EngineTensor }): EngineTensor;
  /** One batch-first LSTM layer over x [N, T, I] (PyTorch's gate order i, f, g, o). */
  lstmForward(
    x: EngineTensor,
    w: EngineLstmWeights,
    h0?: EngineTensor | null,
    c0?: EngineTensor | null,
  ): EngineLstmForward;
  lstmBackward(
    x: EngineTensor,
    w: EngineLstmWeights,
    h0: EngineTensor | null | undefined,
    c0: EngineTensor | null | undefined,
    forward: EngineLstmForward,
    dh: EngineTensor,
    dhT?: EngineTensor | null,
    dcT?: EngineTensor | null,
  ): EngineLstmGradients;
  /** [C]: sums over N and the plane of x [N, C, ...] (the conv bias gradient). */
  sumChannels(x: EngineTensor): EngineTensor;

  // --- element-wise updates (training and attacks) ---
  /** y += alpha * x, in place; returns y. */
  axpy(alpha: number, x: EngineTensor, y: EngineTensor): EngineTensor;
  /** v = momentum * v + (g + weightDecay * w); w -= lr * v (PyTorch's SGD), in place. */
  sgdMomentumStep(
    w: EngineTensor,
    g: EngineTensor,
    v: EngineTensor,
    o: { lr: number; momentum: number; weightDecay: number },
  ): void;
  /** tanh(alpha * x), stable for large |x|. */
  tanhScaled(x: EngineTensor, alpha: number, out?: EngineTensor): EngineTensor;
  /** dy * alpha * (1 - tanh(alpha x)^2). */
  tanhScaledBackward(dy: EngineTensor, x: EngineTensor, alpha: number, out?: EngineTensor): EngineTensor;
  /** delta -= lr * step(g) per row of delta (l2: g / ||g||_2 of the row; sign; raw), in place. */
  attackStep(
    delta: EngineTensor,
    g: EngineTensor,
    rows: number,
    o: { mode: 'l2' | 'sign' | 'raw'; lr: number },
  ): void;
  /** delta = clamp(clamp(xn + delta, lo_c, hi_c) - xn, -eps_c, eps_c), in place. */
  attackProject(delta: EngineTensor, xn: EngineTensor, o: EngineAttackProjectOptions): void;
  /** attackStep (l2), attackProject and xAdv = xn + delta in one pass, bit-identical to the three apart. */
  attackStepProject(
    delta: EngineTensor,
    g: EngineTensor,
    xn: EngineTensor,
    xAdv: EngineTensor,
    rows: number,
    o: EngineAttackProjectOptions & { lr: number },
  ): void;

  /**
   * The pair terms of the pairwise (DPSH) loss of a batch against a memory bank: theta [B, N] (the products
   * u_i . bank_j, used times thetaScale) and sim [B, N] (the pair is similar when > 0) give coef [B, N] (the
   * weight of bank_j in dL/du_i) and likelihood [B, ceil(N / PAIRWISE_CHUNK)] (partial sums of the pair
   * terms per chunk of columns; the caller adds them). Definition: reference pairwiseTerms.
   */
  pairwiseTerms(
    theta: EngineTensor,
    sim: EngineTensor,
    o: { thetaScale: number; scale: number; balance: boolean },
  ): { coef: EngineTensor; likelihood: EngineTensor };

  /** Waits for queued work (WebGPU); immediate on the CPU. */
  sync(): Promise<void>;
  destroy(): void;
}
