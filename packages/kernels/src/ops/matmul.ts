import { argError, shapeError } from '../errors.js';
import { type Gpu, grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import {
  type GemmConfig,
  type GemmN4Config,
  type GemvTConfig,
  gemmKey,
  gemmN4Key,
  gemmN4Shader,
  gemmReduceShader,
  gemmShader,
  gemvTKey,
  gemvTShader,
} from './matmul.wgsl.js';

export interface MatmulOptions {
  /** A is stored [K, M] (row-major) instead of [M, K]. */
  transA?: boolean;
  /** B is stored [N, K] instead of [K, N] (PyTorch's Linear weight layout). */
  transB?: boolean;
  bias?: Tensor;
  /** 'col': bias[n] per output column (default); 'row': bias[m] per output row. */
  biasAxis?: 'col' | 'row';
  relu?: boolean;
  /** C = alpha*A*B (+ bias) + C. Requires `out`. */
  accumulate?: boolean;
  alpha?: number;
  out?: Tensor;
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
  /** Split the K reduction into this many deterministic partial sums (default: chosen from the shape). */
  splitK?: number;
  /** Register block and workgroup shape (default: chosen from the shape). */
  tile?: Partial<Pick<GemmConfig, 'tm' | 'tn' | 'wx' | 'wy'>>;
  /** Allow the vec4 transposed-B kernel when the shape fits it (default true; false forces the GEMM). */
  gemv?: boolean;
  /**
   * Allow the vec4-column kernel (B stored [K, N]) when M or K is small and the shape fits it (default
   * true; false forces the GEMM); `n4Tile` overrides its block (tests).
   */
  n4?: boolean;
  n4Tile?: Pick<GemmN4Config, 'tm' | 'tn' | 'wx'>;
}

function defaultTile(M: number, N: number): Pick<GemmConfig, 'tm' | 'tn' | 'wx' | 'wy'> {
  // Lanes run along N; narrow outputs get narrow workgroups so fewer lanes idle.
  if (N <= 8) return { tm: 4, tn: 1, wx: 8, wy: 8 };
  if (N <= 32) return { tm: 4, tn: 4, wx: 8, wy: 8 };
  if (M <= 4) return { tm: 1, tn: 4, wx: 64, wy: 1 };
  return { tm: 4, tn: 4, wx: 16, wy: 4 };
}

function maxIndex(
  off: number,
  rows: number,
  cols: number,
  ld: number,
  batch: number,
  stride: number,
): number {
  return off + (batch - 1) * stride + (rows - 1) * ld + cols;
}

/**
 * C[M, N] = alpha * op(A) op(B) (+ bias, ReLU, + C), in float32 with float32 accumulation. Returns C
 * (`out` when given, else a new [batch?, M, N] tensor).
 */
export function matmul(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  M: number,
  K: number,
  N: number,
  o: MatmulOptions = {},
): Tensor {
  const op = 'matmul';
  for (const [name, v] of [
    ['M', M],
    ['K', K],
    ['N', N],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw argError(op, `${name} must be an integer >= 1, found ${v}`);
  }
  const batch = o.batch ?? 1;
  const transA = o.transA ?? false;
  const transB = o.transB ?? false;
  const lda = o.lda ?? (transA ? M : K);
  const ldb = o.ldb ?? (transB ? K : N);
  const ldc = o.ldc ?? N;
  const strideA = o.strideA ?? M * K;
  const strideB = o.strideB ?? K * N;
  const strideC = o.strideC ?? M * N;
  const aOff = o.aOffset ?? 0;
  const bOff = o.bOffset ?? 0;
  const cOff = o.cOffset ?? 0;
  const need = (t: Tensor, name: string, end: number) => {
    if (end > t.size)
      throw shapeError(op, `${name} with at least ${end} elements for this product`, `${t.size}`);
  };
  need(
    a,
    'A',
    transA ? maxIndex(aOff, K, M, lda, batch, strideA) : maxIndex(aOff, M, K, lda, batch, strideA),
  );
  need(
    b,
    'B',
    transB ? maxIndex(bOff, N, K, ldb, batch, strideB) : maxIndex(bOff, K, N, ldb, batch, strideB),
  );
  if (o.accumulate && !o.out) throw argError(op, 'accumulate needs an output tensor to add to');
  const c = o.out ?? gpu.empty(batch > 1 ? [batch, M, N] : [M, N]);
  need(c, 'C', maxIndex(cOff, M, N, ldc, batch, strideC));
  const biasAxis = o.bias ? (o.biasAxis ?? 'col') : 'none';
  if (o.bias) need(o.bias, 'bias', biasAxis === 'col' ? N : M);

  if (
    (o.gemv ?? true) &&
    !o.tile &&
    !transA &&
    transB &&
    batch === 1 &&
    [K, lda, ldb, aOff, bOff].every((v) => v % 4 === 0)
  ) {
    gemvT(
      gpu,
      a,
      b,
      c,
      o.bias ?? null,
      { M, N, K, lda, ldb, ldc, aOff, bOff, cOff },
      {
        bias: biasAxis,
        relu: o.relu ?? false,
        accumulate: o.accumulate ?? false,
        alpha: o.alpha ?? 1,
        splitK: o.splitK,
      },
    );
    return c;
  }
  if (
    (o.n4 ?? true) &&
    !o.tile &&
    !transB &&
    batch === 1 &&
    (M <= 8 || K <= 8 || o.n4Tile !== undefined || (!transA && N >= 256)) &&
    [N, ldb, ldc, bOff, cOff].every((v) => v % 4 === 0)
  ) {
    gemmN4(
      gpu,
      a,
      b,
      c,
      o.bias ?? null,
      { M, N, K, lda, ldb, ldc, aOff, bOff, cOff },
      {
        transA,
        bias: biasAxis,
        relu: o.relu ?? false,
        accumulate: o.accumulate ?? false,
        alpha: o.alpha ?? 1,
        splitK: o.splitK,
        tile: o.n4Tile,
      },
    );
    return c;
  }
  const tile = { ...defaultTile(M, N), ...o.tile };
  const wgX = Math.ceil(N / (tile.tn * tile.wx));
  const wgY = Math.ceil(M / (tile.tm * tile.wy));
  const auto = autoSplitK(N, K);
  const e: Epilogue = {
    bias: biasAxis,
    relu: o.relu ?? false,
    accumulate: o.accumulate ?? false,
    alpha: o.alpha ?? 1,
  };
  const g = { M, N, K, lda, ldb, ldc, aOff, bOff, cOff, strideA, strideB, strideC, batch };
  runProduct(gpu, a, b, c, o.bias ?? null, g, e, splitK(o.splitK, auto, K), [wgX, wgY], (partial) => {
    const config: GemmConfig = { transA, transB, ...e, partial, ...tile };
    return { key: gemmKey(config), code: () => gemmShader(config) };
  });
  return c;
}

interface Epilogue {
  bias: 'none' | 'col' | 'row';
  relu: boolean;
  accumulate: boolean;
  alpha: number;
}

interface ProductGeometry {
  M: number;
  N: number;
  K: number;
  lda: number;
  ldb: number;
  ldc: number;
  aOff: number;
  bOff: number;
  cOff: number;
  strideA: number;
  strideB: number;
  strideC: number;
  batch: number;
}

/**
 * The split-K a product gets unless asked otherwise: partial sums where few column tiles meet a long
 * reduction, so that every core has work. It depends on N and K alone, never on M or the product count,
 * which are the objects of a batch in per-object products (a linear layer and its input gradient: M = batch
 * rows; the per-object products of a video network: one per object): a split that followed them gave a
 * row other sums at another batch size (the small CNN's fc input gradient: 4 partial sums at batch 1-8,
 * none at 100). It is also the same for the GEMM and the vec4-column kernel, of which a product may take
 * one at some M and the other at another (gemmN4 at M <= 8). Columns are counted in tiles of 64.
 */
function autoSplitK(N: number, K: number): number {
  const columnTiles = Math.ceil(N / 64);
  return columnTiles < 32 && K >= 256 ? Math.min(Math.ceil(K / 128), Math.ceil(64 / columnTiles)) : 1;
}

/** The split of a reduction of `length` steps: `requested` or else `auto` partial sums, and the chunk. */
function splitK(
  requested: number | undefined,
  auto: number,
  length: number,
): { splits: number; chunk: number } {
  const want = requested ?? auto;
  if (!Number.isInteger(want) || want < 1)
    throw argError('matmul', `splitK must be an integer >= 1, found ${want}`);
  const chunk = Math.ceil(length / want);
  return { splits: Math.ceil(length / chunk), chunk };
}

/**
 * Runs one product kernel over [wgX, wgY, batch * splits] workgroups with the shared GEMM uniforms. With
 * more than one split, the kernel (built with `partial`) writes raw partial sums to a [splits, batch, M, N]
 * buffer and a second pass sums them in a fixed order and applies the epilogue: deterministic, no atomics.
 */
function runProduct(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  c: Tensor,
  bias: Tensor | null,
  g: ProductGeometry,
  e: Epilogue,
  split: { splits: number; chunk: number },
  [wgX, wgY]: [number, number],
  kernel: (partial: boolean) => { key: string; code: () => string },
): void {
  const { splits, chunk } = split;
  if (g.batch * splits > 65535 || wgX > 65535 || wgY > 65535) {
    throw argError(
      'matmul',
      `the product [${g.batch}] ${g.M}x${g.N}x${g.K} needs too many workgroups; split it into batches`,
    );
  }
  const partial = splits > 1;
  const { key, code } = kernel(partial);
  const alpha = { f32: e.alpha };
  const part = partial ? gpu.empty([splits, g.batch, g.M, g.N]) : c;
  const buffers = [a, b, part];
  if (!partial && bias) buffers.push(bias);
  gpu.run({
    op: 'matmul',
    key,
    code,
    buffers,
    uniforms: [
      g.M,
      g.N,
      g.K,
      g.lda,
      g.ldb,
      g.ldc,
      g.aOff,
      g.bOff,
      g.cOff,
      g.strideA,
      g.strideB,
      g.strideC,
      splits,
      chunk,
      g.batch,
      alpha,
    ],
    workgroups: [wgX, wgY, g.batch * splits],
  });
  if (!partial) return;
  const rc = { bias: e.bias, relu: e.relu, accumulate: e.accumulate };
  const rbuf = [part, c];
  if (bias) rbuf.push(bias);
  gpu.run({
    op: 'matmulReduce',
    key: `${rc.bias}:${rc.relu}:${rc.accumulate}`,
    code: () => gemmReduceShader(rc),
    buffers: rbuf,
    uniforms: [g.M, g.N, g.ldc, g.cOff, g.strideC, splits, g.batch, alpha],
    workgroups: grid(Math.ceil((g.M * g.N * g.batch) / 256)),
  });
  part.release();
}

type Dense = Omit<ProductGeometry, 'strideA' | 'strideB' | 'strideC' | 'batch'>;

/** Product with B stored [N, K] (linear layers, LSTM projections), read as vec4: see `gemvTShader`. */
function gemvT(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  c: Tensor,
  bias: Tensor | null,
  s: Dense,
  e: Epilogue & { splitK?: number },
): void {
  const tile = { tm: Math.min(s.M, 8), tn: 4, wx: 16 };
  const wgX = Math.ceil(s.N / (tile.tn * tile.wx));
  const wgY = Math.ceil(s.M / tile.tm);
  const K4 = s.K / 4;
  // Few workgroups and a long reduction: split K (counted in vec4 steps) so both cores get work. As in
  // autoSplitK, from N and K alone (wgX counts columns only): a row's sums do not depend on M.
  const auto = wgX < 32 && K4 >= 256 ? Math.min(Math.ceil(K4 / 128), Math.ceil(64 / wgX)) : 1;
  const g = { ...s, strideA: 0, strideB: 0, strideC: 0, batch: 1 };
  runProduct(gpu, a, b, c, bias, g, e, splitK(e.splitK, auto, K4), [wgX, wgY], (partial) => {
    const cfg: GemvTConfig = { ...tile, bias: e.bias, relu: e.relu, accumulate: e.accumulate, partial };
    return { key: gemvTKey(cfg), code: () => gemvTShader(cfg) };
  });
}

/** Product with B stored [K, N], C written as vec4 along N, rows from wid.y: see `gemmN4Shader`. */
function gemmN4(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  c: Tensor,
  bias: Tensor | null,
  s: Dense,
  e: Epilogue & { transA: boolean; splitK?: number; tile?: Pick<GemmN4Config, 'tm' | 'tn' | 'wx'> },
): void {
  // Small K (weight gradients, K = batch rows): output-bound, wider workgroups (fewer of them) measured
  // best (fc6/fc7 dW 5.1/4.7 GFLOP/s against 4.6/4.4 for 16 lanes x 2 vec4); small M: 2 vec4 columns.
  const tile =
    e.tile ??
    (s.K <= 8 && s.M > 8
      ? { tm: 8, tn: 1, wx: 64 }
      : s.M > 8
        ? // A linear layer's input gradient at a larger batch (the small CNN's fc at batch 100: 100x512 @
          // 512x1152): 8 rows x 4 vec4 columns per invocation ran 2-4x faster than the generic GEMM's 4x4
          // (7.7-15 against 37-61 ms on a loaded llvmpipe; 4x2 and 8x2 blocks in between).
          { tm: 8, tn: 4, wx: 8 }
        : { tm: Math.min(s.M, 8), tn: 2, wx: 16 });
  const wgX = Math.ceil(s.N / 4 / (tile.tn * tile.wx));
  const wgY = Math.ceil(s.M / tile.tm);
  const g = { ...s, strideA: 0, strideB: 0, strideC: 0, batch: 1 };
  const split = splitK(e.splitK, autoSplitK(s.N, s.K), s.K);
  runProduct(gpu, a, b, c, bias, g, e, split, [wgX, wgY], (partial) => {
    const cfg: GemmN4Config = {
      ...tile,
      transA: e.transA,
      bias: e.bias,
      relu: e.relu,
      accumulate: e.accumulate,
      partial,
    };
    return { key: gemmN4Key(cfg), code: () => gemmN4Shader(cfg) };
  });
}
