// Float32 CPU ops of the WebAssembly engine on regions of its memory: convolution and linear layers as packed
// GEMMs (cpu.wat.ts), with im2col, col2im, bias, ReLU and pooling as table-driven loops split over the
// threads. Each op has the same float64 reference as its WGSL twin (src/reference); the tests compare them.
import { argError } from '../errors.js';
import { type Conv2dGeometry, conv2dGeometry } from '../ops/conv2d.js';
import { MR, NR } from './cpu.wat.js';
import { type Region, SINK_ADDRESS, type WasmCpu, ZERO_ADDRESS } from './runtime.js';

/** A matrix packed once for the GEMM core (weights): A panels (rows x K) or B panels (K x columns). */
export interface PackedMatrix {
  readonly region: Region;
  /** A: rows; B: columns. */
  readonly size: number;
  readonly panels: number;
  readonly K: number;
}

/** Marks a column as outside every input (reads 0, writes nothing). */
const OUTSIDE = -(2 ** 30);

/** Index tables of the gather/scatter loops (regions of i32). */
interface ColumnTables {
  ihb: Region;
  iwb: Region;
  base: Region;
}
interface RowTables {
  kh: Region;
  kw: Region;
  koff: Region;
}

/** Columns of a plain matrix: column q at base q * stride (q < count), padding columns outside. */
function plainColumns(cpu: WasmCpu, count: number, padded: number, stride: number): ColumnTables {
  const ihb = new Int32Array(padded).fill(OUTSIDE);
  ihb.fill(0, 0, count);
  const base = new Int32Array(padded);
  for (let q = 0; q < count; q++) base[q] = q * stride;
  return {
    ihb: cpu.upload(ihb),
    iwb: cpu.upload(new Int32Array(padded)),
    base: cpu.upload(base),
  };
}

/** Rows of a plain matrix: row k at offset k * stride. */
function plainRows(cpu: WasmCpu, count: number, stride: number): RowTables {
  const koff = new Int32Array(count);
  for (let k = 0; k < count; k++) koff[k] = k * stride;
  const zeros = cpu.upload(new Int32Array(count));
  return { kh: zeros, kw: zeros, koff: cpu.upload(koff) };
}

function gather(
  cpu: WasmCpu,
  src: Region,
  dst: Region,
  cols: ColumnTables,
  rows: RowTables,
  K: number,
  width: number,
  H: number,
  W: number,
  panels: number,
): void {
  if (width === NR) {
    // B panels: the unrolled, branch-free loop.
    cpu.run(
      'gather8',
      [
        src.byteOffset,
        dst.byteOffset,
        ZERO_ADDRESS,
        cols.ihb.byteOffset,
        cols.iwb.byteOffset,
        cols.base.byteOffset,
        rows.kh.byteOffset,
        rows.kw.byteOffset,
        rows.koff.byteOffset,
        K,
        H,
        W,
      ],
      panels,
    );
    return;
  }
  cpu.run(
    'gather',
    [
      src.byteOffset,
      dst.byteOffset,
      cols.ihb.byteOffset,
      cols.iwb.byteOffset,
      cols.base.byteOffset,
      rows.kh.byteOffset,
      rows.kw.byteOffset,
      rows.koff.byteOffset,
      K,
      width,
      H,
      W,
    ],
    panels,
  );
}

const RELU = 2;
const BIAS_PER_COLUMN = 4;

function scatter(
  cpu: WasmCpu,
  c: Region,
  ldc: number,
  dst: Region,
  cols: ColumnTables,
  rows: RowTables,
  K: number,
  H: number,
  W: number,
  bias: Region | null,
  flags: number,
  count: number,
  align = 1,
): void {
  cpu.run(
    'scatter',
    [
      c.byteOffset,
      ldc,
      dst.byteOffset,
      cols.ihb.byteOffset,
      cols.iwb.byteOffset,
      cols.base.byteOffset,
      rows.kh.byteOffset,
      rows.kw.byteOffset,
      rows.koff.byteOffset,
      K,
      H,
      W,
      bias ? bias.byteOffset : 0,
      flags,
    ],
    count,
    align,
  );
}

/**
 * Packs `count` rows (A, width 4) or columns (B, width 8) of K values into panels of `width`, k-major, in the
 * engine's long-lived memory: element (r, k) is src[r * stride + k * kStride]; past `count`, zeros.
 */
function packPanels(
  cpu: WasmCpu,
  src: ArrayLike<number>,
  count: number,
  K: number,
  width: number,
  stride: number,
  kStride: number,
): PackedMatrix {
  const panels = Math.ceil(count / width);
  const region = cpu.alloc(panels * width * K);
  const dst = cpu.f32;
  const at = region.byteOffset / 4;
  for (let i = 0; i < panels; i++) {
    for (let k = 0; k < K; k++) {
      for (let r = 0; r < width; r++) {
        const row = i * width + r;
        dst[at + (i * K + k) * width + r] = row < count ? src[row * stride + k * kStride] : 0;
      }
    }
  }
  return { region, size: count, panels, K };
}

/** Packs A (rows x K; element (r, k) = src[r * rowStride + k * kStride]) into the engine's memory. */
export function packWeightA(
  cpu: WasmCpu,
  src: ArrayLike<number>,
  rows: number,
  K: number,
  rowStride: number,
  kStride: number,
): PackedMatrix {
  return packPanels(cpu, src, rows, K, MR, rowStride, kStride);
}

/** Packs B (K x cols; element (k, c) = src[k * kStride + c * colStride]) into the engine's memory. */
export function packWeightB(
  cpu: WasmCpu,
  src: ArrayLike<number>,
  cols: number,
  K: number,
  kStride: number,
  colStride: number,
): PackedMatrix {
  return packPanels(cpu, src, cols, K, NR, colStride, kStride);
}

/** The convolution's geometry (the WGSL ops' type and checks). */
export type ConvGeometry = Conv2dGeometry;

/** Checks and returns the geometry of a conv of x [N, C, H, W] with O filters of KH x KW. */
export function convGeometry(
  xShape: readonly number[],
  O: number,
  KH: number,
  KW: number,
  stride: number,
  padding: number,
): ConvGeometry {
  return conv2dGeometry('wasm conv2d', xShape, [O, xShape[1], KH, KW], { stride, padding });
}

/** Conv weights [O, C, KH, KW] packed for the forward (A = W as O x C*KH*KW). */
export function packConvForward(cpu: WasmCpu, w: ArrayLike<number>, O: number, K: number): PackedMatrix {
  return packWeightA(cpu, w, O, K, K, 1);
}

/** Conv weights packed for the input gradient (A = W^T as C*KH*KW x O). */
export function packConvBackwardInput(
  cpu: WasmCpu,
  w: ArrayLike<number>,
  O: number,
  K: number,
): PackedMatrix {
  return packWeightA(cpu, w, K, O, 1, K);
}

/** The im2col tables: column q = (image, oh, ow) of the whole batch, row k = (channel, kh, kw). */
function im2colTables(
  cpu: WasmCpu,
  g: ConvGeometry,
  padded: number,
): { cols: ColumnTables; rows: RowTables } {
  const key = `im2col,${g.N},${g.C},${g.H},${g.W},${g.KH},${g.KW},${g.stride},${g.pad},${padded}`;
  const [ihb, iwb, base, kh, kw, koff] = cached(key, () => buildIm2colTables(g, padded)).map((a) =>
    cpu.upload(a),
  );
  return { cols: { ihb, iwb, base }, rows: { kh, kw, koff } };
}

/** Index tables by geometry (built once; copied into the engine's memory per call). */
const tableCache = new Map<string, Int32Array[]>();

function cached(key: string, build: () => Int32Array[]): Int32Array[] {
  let t = tableCache.get(key);
  if (!t) {
    t = build();
    if (tableCache.size >= 64) tableCache.delete(tableCache.keys().next().value as string);
    tableCache.set(key, t);
  }
  return t;
}

function buildIm2colTables(g: ConvGeometry, padded: number): Int32Array[] {
  const { N, C, H, W, KH, KW, OH, OW, stride, pad: padding } = g;
  const P = OH * OW;
  const ihb = new Int32Array(padded).fill(OUTSIDE);
  const iwb = new Int32Array(padded);
  const base = new Int32Array(padded);
  for (let q = 0; q < N * P; q++) {
    const n = Math.floor(q / P);
    const p = q - n * P;
    const oh = Math.floor(p / OW);
    ihb[q] = oh * stride - padding;
    iwb[q] = (p - oh * OW) * stride - padding;
    base[q] = n * C * H * W + ihb[q] * W + iwb[q];
  }
  const K = C * KH * KW;
  const kh = new Int32Array(K);
  const kw = new Int32Array(K);
  const koff = new Int32Array(K);
  for (let k = 0; k < K; k++) {
    const ch = Math.floor(k / (KH * KW));
    const r = k - ch * KH * KW;
    kh[k] = Math.floor(r / KW);
    kw[k] = r - kh[k] * KW;
    koff[k] = ch * H * W + kh[k] * W + kw[k];
  }
  return [ihb, iwb, base, kh, kw, koff];
}

/**
 * y [N, O, OH, OW] = conv2d(x [N, C, H, W], w) + bias, ReLU when asked: one GEMM (O x C*KH*KW) x (C*KH*KW x N*OH*OW)
 * over an im2col of the whole batch packed straight into B panels. y is allocated on the engine's stack.
 */
export function conv2dForwardCpu(
  cpu: WasmCpu,
  x: Region,
  g: ConvGeometry,
  w: PackedMatrix,
  bias: Region | null,
  relu: boolean,
): Region {
  const y = cpu.alloc(g.N * g.O * g.OH * g.OW);
  conv2dForwardInto(cpu, x, g, w, bias, relu, y);
  return y;
}

/** conv2dForwardCpu into a given region y (allocated before the call); scratch above the stack top. */
export function conv2dForwardInto(
  cpu: WasmCpu,
  x: Region,
  g: ConvGeometry,
  w: PackedMatrix,
  bias: Region | null,
  relu: boolean,
  y: Region,
): void {
  const { N, C, H, W, O, KH, KW, OH, OW } = g;
  const K = C * KH * KW;
  const P = OH * OW;
  const cols = N * P;
  const nPanels = Math.ceil(cols / NR);
  const mark = cpu.mark();
  try {
    const im = im2colTables(cpu, g, nPanels * NR);
    const b = cpu.alloc(nPanels * NR * K);
    gather(cpu, x, b, im.cols, im.rows, K, NR, H, W, nPanels);
    const c = cpu.alloc(w.panels * MR * nPanels * NR);
    cpu.gemm(w.region, b, c, w.panels, nPanels, K);
    // C row o, column q = (n, p) -> y[(n*O + o)*P + p], split over the images.
    cpu.run(
      'unpack_conv',
      [c.byteOffset, nPanels * NR, y.byteOffset, O, P, bias ? bias.byteOffset : 0, relu ? 1 : 0],
      N,
    );
  } finally {
    cpu.reset(mark);
  }
}

/**
 * dx [N, C, H, W] from dy [N, O, OH, OW]: the GEMM W^T (C*KH*KW x O) x dy (O x N*OH*OW), then col2im (every
 * column adds its C*KH*KW values back to the input positions it read; threads split whole images).
 */
export function conv2dBackwardInputCpu(cpu: WasmCpu, dy: Region, g: ConvGeometry, wT: PackedMatrix): Region {
  const dx = cpu.alloc(g.N * g.C * g.H * g.W);
  conv2dBackwardInputInto(cpu, dy, g, wT, dx);
  return dx;
}

/** conv2dBackwardInputCpu into a given region dx (allocated before the call; it may be dy itself). */
export function conv2dBackwardInputInto(
  cpu: WasmCpu,
  dy: Region,
  g: ConvGeometry,
  wT: PackedMatrix,
  dx: Region,
): void {
  const { N, C, H, W, O, KH, KW, OH, OW } = g;
  const K = C * KH * KW;
  const P = OH * OW;
  const cols = N * P;
  const nPanels = Math.ceil(cols / NR);
  const mark = cpu.mark();
  try {
    // B = dy as O x (N*P): element (o, q = (n, p)) at dy[(n*O + o)*P + p].
    const [ihb, iwb, base, kh, kw, koff] = cached(`dy,${N},${O},${P},${nPanels}`, () => {
      const t = [0, 1, 2].map(() => new Int32Array(nPanels * NR));
      t[0].fill(OUTSIDE, cols);
      for (let q = 0; q < cols; q++) {
        const n = Math.floor(q / P);
        t[2][q] = n * O * P + (q - n * P);
      }
      const rowOffsets = Int32Array.from({ length: O }, (_, o) => o * P);
      return [...t, new Int32Array(O), new Int32Array(O), rowOffsets];
    }).map((a) => cpu.upload(a));
    const b = cpu.alloc(nPanels * NR * O);
    gather(cpu, dy, b, { ihb, iwb, base }, { kh, kw, koff }, O, NR, 1, 1, nPanels);
    const c = cpu.alloc(wT.panels * MR * nPanels * NR);
    cpu.gemm(wT.region, b, c, wT.panels, nPanels, O);
    // dy is packed: dx may now be zeroed (even when it is dy's memory).
    cpu.f32.fill(0, dx.byteOffset / 4, dx.byteOffset / 4 + N * C * H * W);
    const im = im2colTables(cpu, g, nPanels * NR);
    // col2im over panels of 8 columns; the threads take chunks that start at an image, so that no two write
    // the same image (multiples of lcm(8, P) columns), and each element adds its terms in ascending column
    // order (see col2im8), so an image's dx is the same at any place in any batch and any thread count.
    const col2imArgs = [
      c.byteOffset,
      nPanels * NR,
      dx.byteOffset,
      SINK_ADDRESS, // + 64 x the thread's index, added by the routine
      im.cols.ihb.byteOffset,
      im.cols.iwb.byteOffset,
      im.cols.base.byteOffset,
      im.rows.kh.byteOffset,
      im.rows.kw.byteOffset,
      im.rows.koff.byteOffset,
      K,
      H,
      W,
    ];
    cpu.run('col2im8', col2imArgs, nPanels, P / gcd(P, NR));
  } finally {
    cpu.reset(mark);
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** Linear weights [Out, In] packed for y = x W^T (B = W^T, In x Out). */
export function packLinearForward(cpu: WasmCpu, w: ArrayLike<number>, Out: number, In: number): PackedMatrix {
  return packWeightB(cpu, w, Out, In, 1, In);
}

/** Linear weights packed for dx = dy W (B = W, Out x In). */
export function packLinearBackwardInput(
  cpu: WasmCpu,
  w: ArrayLike<number>,
  Out: number,
  In: number,
): PackedMatrix {
  return packWeightB(cpu, w, In, Out, In, 1);
}

/** y [n, cols] = x [n, K] B (+ bias per column, ReLU when asked), allocated on the engine's stack. */
export function matmulPackedCpu(
  cpu: WasmCpu,
  x: Region,
  n: number,
  wB: PackedMatrix,
  bias: Region | null,
  relu: boolean,
): Region {
  const K = wB.K;
  const cols = wB.size;
  const mPanels = Math.ceil(n / MR);
  const y = cpu.alloc(n * cols);
  const mark = cpu.mark();
  const a = cpu.alloc(mPanels * MR * K);
  gather(cpu, x, a, plainColumns(cpu, n, mPanels * MR, K), plainRows(cpu, K, 1), K, MR, 1, 1, mPanels);
  const c = cpu.alloc(mPanels * MR * wB.panels * NR);
  cpu.gemm(a, wB.region, c, mPanels, wB.panels, K);
  // C row r, column j -> y[r*cols + j]; rows of the scatter are the batch rows.
  const flags = (relu ? RELU : 0) | (bias ? BIAS_PER_COLUMN : 0);
  scatter(
    cpu,
    c,
    wB.panels * NR,
    y,
    plainColumns(cpu, cols, cols, 1),
    plainRows(cpu, n, cols),
    n,
    1,
    1,
    bias,
    flags,
    cols,
    16, // chunks of 16 columns = whole 64-byte lines of y: threads writing one line would bounce it
  );
  cpu.reset(mark);
  return y;
}

/** 2-D max pooling [N, C, H, W] with the argmax in the plane (first maximum wins; a NaN wins and propagates). */
export function maxPool2dCpu(
  cpu: WasmCpu,
  x: Region,
  shape: readonly number[],
  kernel: number,
  stride: number,
): { y: Region; argmax: Region; shape: [number, number, number, number] } {
  const [N, C, H, W] = shape;
  if (kernel > H || kernel > W)
    throw argError('wasm maxPool2d', `kernel ${kernel} is larger than the plane ${H}x${W}`);
  const OH = Math.floor((H - kernel) / stride) + 1;
  const OW = Math.floor((W - kernel) / stride) + 1;
  const y = cpu.alloc(N * C * OH * OW);
  const argmax = cpu.alloc(N * C * OH * OW);
  if (kernel === 2 && stride === 2)
    cpu.run('maxpool2', [x.byteOffset, y.byteOffset, argmax.byteOffset, H, W, OH, OW], N * C);
  else
    cpu.run('maxpool', [x.byteOffset, y.byteOffset, argmax.byteOffset, H, W, kernel, stride, OH, OW], N * C);
  return { y, argmax, shape: [N, C, OH, OW] };
}

/**
 * dx [N, C, H, W]: dy sent back to each window's argmax; with `reluOutput` (the pool's output y of a ReLU
 * input) only where y > 0, which is the ReLU's backward folded in.
 */
export function maxPool2dBackwardCpu(
  cpu: WasmCpu,
  dy: Region,
  argmax: Region,
  yShape: readonly number[],
  xShape: readonly number[],
  reluOutput?: Region,
): Region {
  const [N, C, OH, OW] = yShape;
  const plane = xShape[2] * xShape[3];
  const dx = cpu.alloc(N * C * plane);
  cpu.f32.fill(0, dx.byteOffset / 4, dx.byteOffset / 4 + dx.floats);
  cpu.run(
    'maxpool_backward',
    [dy.byteOffset, argmax.byteOffset, reluOutput ? reluOutput.byteOffset : 0, dx.byteOffset, plane, OH * OW],
    N * C,
  );
  return dx;
}

/** dy where y > 0, else 0 (the ReLU's backward from its output), on the engine's stack. */
export function reluBackwardCpu(cpu: WasmCpu, dy: Region, y: Region): Region {
  const dx = cpu.alloc(dy.floats);
  const m = cpu.f32;
  const d = dy.byteOffset / 4;
  const v = y.byteOffset / 4;
  const o = dx.byteOffset / 4;
  for (let i = 0; i < dy.floats; i++) m[o + i] = m[v + i] > 0 ? m[d + i] : 0;
  return dx;
}

/** max(x, 0) with NaN kept (as PyTorch), on the engine's stack. */
export function reluCpu(cpu: WasmCpu, x: Region): Region {
  const y = cpu.alloc(x.floats);
  const m = cpu.f32;
  const a = x.byteOffset / 4;
  const b = y.byteOffset / 4;
  for (let i = 0; i < x.floats; i++) {
    const v = m[a + i];
    m[b + i] = v > 0 || Number.isNaN(v) ? v : 0;
  }
  return y;
}

/** Output shape of a max-pool of x [N, C, H, W] (no padding, floor mode); checks the kernel fits. */
export function maxPool2dShape(
  op: string,
  shape: readonly number[],
  kernel: number,
  stride: number,
): [number, number, number, number] {
  const [N, C, H, W] = shape;
  if (kernel > H || kernel > W)
    throw argError(op, `kernel ${kernel} is larger than the input plane ${H}x${W}; use a smaller kernel`);
  return [N, C, Math.floor((H - kernel) / stride) + 1, Math.floor((W - kernel) / stride) + 1];
}

/** maxPool2dCpu into given regions y and argmax (i32 indices in the plane), split over the planes. */
export function maxPool2dInto(
  cpu: WasmCpu,
  x: Region,
  shape: readonly number[],
  kernel: number,
  stride: number,
  y: Region,
  argmax: Region,
): void {
  const [N, C, H, W] = shape;
  const [, , OH, OW] = maxPool2dShape('maxPool2d', shape, kernel, stride);
  if (N * C === 0) return;
  if (kernel === 2 && stride === 2)
    cpu.run('maxpool2', [x.byteOffset, y.byteOffset, argmax.byteOffset, H, W, OH, OW], N * C);
  else
    cpu.run('maxpool', [x.byteOffset, y.byteOffset, argmax.byteOffset, H, W, kernel, stride, OH, OW], N * C);
}

/**
 * maxPool2dBackwardCpu into a given region dx (zeroed here): each plane adds its dy values at their argmax in
 * output order (overlapping windows accumulate as the reference does), gated by reluOutput > 0 when given.
 */
export function maxPool2dBackwardInto(
  cpu: WasmCpu,
  dy: Region,
  argmax: Region,
  yShape: readonly number[],
  xShape: readonly number[],
  dx: Region,
  reluOutput?: Region,
): void {
  const [N, C, OH, OW] = yShape;
  const plane = xShape[2] * xShape[3];
  cpu.f32.fill(0, dx.byteOffset / 4, dx.byteOffset / 4 + N * C * plane);
  if (N * C * OH * OW === 0) return;
  cpu.run(
    'maxpool_backward',
    [dy.byteOffset, argmax.byteOffset, reluOutput ? reluOutput.byteOffset : 0, dx.byteOffset, plane, OH * OW],
    N * C,
  );
}

/**
 * Index tables of a plain strided matrix read as `count` lines (rows of an A operand, columns of a B operand)
 * of K values: line q, step k at q * qStride + k * kStride. Columns padded to a multiple of 8 (read as 0).
 */
function plainTables(count: number, K: number, qStride: number, kStride: number): Int32Array[] {
  return cached(`plain,${count},${K},${qStride},${kStride}`, () => {
    const padded = Math.ceil(count / NR) * NR;
    const ihb = new Int32Array(padded).fill(OUTSIDE);
    ihb.fill(0, 0, count);
    const base = new Int32Array(padded);
    for (let q = 0; q < count; q++) base[q] = q * qStride;
    const koff = new Int32Array(K);
    for (let k = 0; k < K; k++) koff[k] = k * kStride;
    const zeros = new Int32Array(Math.max(padded, K));
    return [ihb, zeros, base, zeros, zeros, koff];
  });
}

function uploadTables(cpu: WasmCpu, t: Int32Array[]): { cols: ColumnTables; rows: RowTables } {
  const [ihb, iwb, base, kh, kw, koff] = t.map((a) => cpu.upload(a));
  return { cols: { ihb, iwb, base }, rows: { kh, kw, koff } };
}

/** Panels of `width` (MR: an A operand; NR: a B operand) that `count` lines of K values take, in floats. */
export function packedFloats(count: number, K: number, width: number): number {
  return Math.ceil(count / width) * width * K;
}

/**
 * Packs a plain strided matrix into panels at `dst` (packedFloats(count, K, width) floats, allocated before
 * the call): line q (a row of A when width is MR, a column of B when NR), step k, from the float at byte
 * address `src` + 4 * (q * qStride + k * kStride). Runs on the threads (the gather routines).
 */
export function packInto(
  cpu: WasmCpu,
  src: number,
  dst: Region,
  count: number,
  K: number,
  width: number,
  qStride: number,
  kStride: number,
): PackedMatrix {
  const panels = Math.ceil(count / width);
  const mark = cpu.mark();
  try {
    const t = uploadTables(cpu, plainTables(count, K, qStride, kStride));
    gather(cpu, { byteOffset: src, floats: 0 }, dst, t.cols, t.rows, K, width, 1, 1, panels);
  } finally {
    cpu.reset(mark);
  }
  return { region: dst, size: count, panels, K };
}

/**
 * Writes a GEMM's C (rows: the A panels' lines, columns: the B panels' lines, leading dimension ldc) into
 * the plain matrix at byte address `dst`: C element (r, q) goes to dst + 4 * (r * rStride + q * qStride) for
 * r < rows, q < cols (rows x cols of C), plus bias[r] (bias 'rows') or bias[q] ('cols'), ReLU when asked
 * (NaN kept). Threads split the columns.
 */
export function storeProduct(
  cpu: WasmCpu,
  c: Region,
  ldc: number,
  rows: number,
  cols: number,
  dst: number,
  rStride: number,
  qStride: number,
  bias: Region | null,
  biasOn: 'rows' | 'cols',
  relu: boolean,
): void {
  const mark = cpu.mark();
  try {
    const t = uploadTables(cpu, plainTables(cols, rows, qStride, rStride));
    const flags = (relu ? RELU : 0) | (bias && biasOn === 'cols' ? BIAS_PER_COLUMN : 0);
    // Chunks of 16 columns: whole 64-byte lines of dst when columns are contiguous.
    scatter(cpu, c, ldc, { byteOffset: dst, floats: 0 }, t.cols, t.rows, rows, 1, 1, bias, flags, cols, 16);
  } finally {
    cpu.reset(mark);
  }
}

/**
 * dw [O, C, KH, KW] (= dw as O x C*KH*KW) of a convolution: the GEMM dy (O x N*OH*OW) times im2col(x)^T
 * (N*OH*OW x C*KH*KW). dy is packed into A panels and im2col(x)^T straight into B panels by the gather
 * routines, the latter with the im2col tables in swapped roles (columns (c, kh, kw), rows (n, oh, ow)). The
 * reduction runs over the output pixels of the whole batch in order, in pieces whose panels take at most
 * `pieceFloats` floats (64 MiB by default), their partial products added in order: the same sums for any
 * thread count. With `accumulate` the result is added to dw.
 */
export function conv2dBackwardWeightInto(
  cpu: WasmCpu,
  x: Region,
  dy: Region,
  g: ConvGeometry,
  dw: Region,
  accumulate: boolean,
  pieceFloats = 2 ** 24,
): void {
  const { N, C, H, W, O, KH, KW, OH, OW } = g;
  const CKK = C * KH * KW;
  const P = OH * OW;
  const NP = N * P;
  const mPanels = Math.ceil(O / MR);
  const nPanels = Math.ceil(CKK / NR);
  const out = dw.byteOffset / 4;
  if (NP === 0) {
    if (!accumulate) cpu.f32.fill(0, out, out + O * CKK);
    return;
  }
  // Output pixels per piece: the panels of a piece take at most `pieceFloats` floats (at least 8 pixels).
  const chunk = Math.max(8, Math.floor(pieceFloats / (mPanels * MR + nPanels * NR)));
  const mark = cpu.mark();
  try {
    // im2col(x)^T as B: columns (c, kh, kw), padded to whole panels; rows (n, oh, ow).
    const im = cached(`im2col,${N},${C},${H},${W},${KH},${KW},${g.stride},${g.pad},${NP}`, () =>
      buildIm2colTables(g, NP),
    );
    const [kh, kw, koff] = cached(`im2colT,${C},${H},${W},${KH},${KW},${nPanels}`, () => {
      const t = [0, 1, 2].map(() => new Int32Array(nPanels * NR));
      t[0].fill(OUTSIDE);
      t[0].set(im[3]);
      t[1].set(im[4]);
      t[2].set(im[5]);
      return t;
    }).map((a) => cpu.upload(a));
    const [ihb, iwb, base] = im.slice(0, 3).map((a) => cpu.upload(a));
    // dy as A: rows o (base o*P), steps q = (n, p) at n*O*P + p.
    const dyRows = cached(`dyT,${N},${O},${P},${mPanels}`, () => {
      const t = plainTables(O, 0, P, 0);
      const koffQ = new Int32Array(NP);
      for (let q = 0; q < NP; q++) {
        const n = Math.floor(q / P);
        koffQ[q] = n * O * P + (q - n * P);
      }
      return [t[0], t[1], t[2], new Int32Array(NP), koffQ];
    }).map((a) => cpu.upload(a));
    const a = cpu.alloc(mPanels * MR * Math.min(chunk, NP));
    const b = cpu.alloc(nPanels * NR * Math.min(chunk, NP));
    const c = cpu.alloc(mPanels * MR * nPanels * NR);
    const ldc = nPanels * NR;
    for (let q0 = 0; q0 < NP; q0 += chunk) {
      const len = Math.min(chunk, NP - q0);
      const at = (r: Region) => r.byteOffset + 4 * q0;
      cpu.run(
        'gather',
        [
          dy.byteOffset,
          a.byteOffset,
          dyRows[0].byteOffset,
          dyRows[1].byteOffset,
          dyRows[2].byteOffset,
          at(dyRows[3]),
          at(dyRows[3]),
          at(dyRows[4]),
          len,
          MR,
          1,
          1,
        ],
        mPanels,
      );
      cpu.run(
        'gather8',
        [
          x.byteOffset,
          b.byteOffset,
          ZERO_ADDRESS,
          kh.byteOffset,
          kw.byteOffset,
          koff.byteOffset,
          at(ihb),
          at(iwb),
          at(base),
          len,
          H,
          W,
        ],
        nPanels,
      );
      cpu.gemm(a, b, c, mPanels, nPanels, len);
      const f = cpu.f32;
      const c0 = c.byteOffset / 4;
      const add = accumulate || q0 > 0;
      for (let o = 0; o < O; o++) {
        const src = c0 + o * ldc;
        const dst = out + o * CKK;
        if (add) for (let k = 0; k < CKK; k++) f[dst + k] += f[src + k];
        else for (let k = 0; k < CKK; k++) f[dst + k] = f[src + k];
      }
    }
  } finally {
    cpu.reset(mark);
  }
}

/** dF = dTanh * alpha * (1 - tanh(alpha f)^2), element-wise (float32 out). */
export function tanhScaledBackwardCpu(dTanh: Float32Array, f: Float32Array, alpha: number): Float32Array {
  if (dTanh.length !== f.length) {
    throw argError(
      'tanhScaledBackwardCpu',
      `dTanh has ${dTanh.length} values, f ${f.length}; they must agree`,
    );
  }
  const out = new Float32Array(f.length);
  for (let i = 0; i < f.length; i++) {
    const t = Math.tanh(alpha * f[i]);
    out[i] = dTanh[i] * alpha * (1 - t * t);
  }
  return out;
}

export interface AttackUpdateParams {
  /** 'l2': delta -= lr * g / ||g||_2 per row; 'sign'; 'raw'; 'none': only the projection. */
  mode: 'l2' | 'sign' | 'raw' | 'none';
  lr: number;
  channels: number;
  planeSize: number;
  /** Per-channel box of the normalised image and per-channel eps. */
  lo: readonly number[];
  hi: readonly number[];
  eps: readonly number[];
}

/**
 * One attack update in place, as the fused WGSL kernel: the step (l2 / sign / raw), then the image xn + delta
 * clamped to its channel's box, then delta clamped to [-eps, eps], then xAdv = xn + delta. Rows of
 * channels x planeSize floats.
 */
export function attackUpdateCpu(
  delta: Float32Array,
  g: Float32Array | null,
  xn: Float32Array,
  xAdv: Float32Array,
  rows: number,
  p: AttackUpdateParams,
): void {
  const cols = p.channels * p.planeSize;
  if (delta.length !== rows * cols || xn.length !== rows * cols || xAdv.length !== rows * cols) {
    throw argError('attackUpdateCpu', `delta, xn and xAdv must hold ${rows} x ${cols} floats`);
  }
  if (p.mode !== 'none' && (!g || g.length < rows * cols)) {
    throw argError('attackUpdateCpu', `the gradient must hold ${rows} x ${cols} floats`);
  }
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let scale = p.lr;
    if (p.mode === 'l2' && g) {
      let ss = 0;
      for (let i = 0; i < cols; i++) ss += g[o + i] * g[o + i];
      const norm = Math.sqrt(ss);
      scale = norm > 0 ? p.lr / norm : 0;
    }
    for (let c = 0; c < p.channels; c++) {
      const lo = p.lo[c];
      const hi = p.hi[c];
      const eps = p.eps[c];
      const start = o + c * p.planeSize;
      for (let i = start; i < start + p.planeSize; i++) {
        let d = delta[i];
        if (g && p.mode !== 'none') d -= p.mode === 'sign' ? p.lr * Math.sign(g[i]) : scale * g[i];
        const image = Math.min(Math.max(xn[i] + d, lo), hi);
        const dd = Math.fround(Math.min(Math.max(Math.fround(image - xn[i]), -eps), eps));
        delta[i] = dd;
        xAdv[i] = xn[i] + dd;
      }
    }
  }
}
