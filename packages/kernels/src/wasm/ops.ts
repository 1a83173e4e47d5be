// Float32 CPU ops of the WebAssembly engine on regions of its memory: convolution and linear layers as packed
// GEMMs (cpu.wat.ts). Convolutions read a zero-padded copy of their input: 3x3 stride-1 ones with enough
// channels as Winograd F(4x4, 3x3) or F(2x2, 3x3) (transforms, then 36 or 16 products), the others as an
// implicit GEMM that gathers each panel of 8 output columns into the thread's scratch (conv_gemm), the tiles
// stored straight
// into the output with bias and ReLU; input gradients of stride-1 convolutions are convolutions of dy, weight
// gradients sums of fixed pieces. Pooling, packing and sums are loops split over the threads. Each op has the
// same float64 reference as its WGSL twin (src/reference); the tests compare them.
import { argError } from '../errors.js';
import { type Conv2dGeometry, conv2dGeometry } from '../ops/conv2d.js';
import { MR, NR, ROW_BLOCK } from './cpu.wat.js';
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
const ACCUMULATE = 8;

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
  convDirect(cpu, x, { ...g, padH: g.pad, padW: g.pad }, w, bias, relu, y);
}

/** Floats of conv_gemm's scratch for K steps: a panel of 8 columns per thread, each on whole 64-byte lines. */
function convGemmScratch(cpu: WasmCpu, K: number): number {
  return cpu.threads * (K + (K & 1)) * NR;
}

/** A convolution as convDirect runs it: the geometry with a padding per axis. */
export interface DirectGeometry {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  OH: number;
  OW: number;
  stride: number;
  padH: number;
  padW: number;
}

/**
 * The tables of conv_gemm for a convolution that reads planes of (H + 2 padH) x (W + 2 padW): colOff (byte
 * offset of output column q = (n, oh, ow)'s window corner in the padded input; 0 past the columns), rowOff
 * (byte offset of row k = (c, kh, kw) from the corner) and dstOff (byte offset of column q in y
 * [N, O, OH, OW] from channel 0; -1 past the columns).
 */
function directTables(d: DirectGeometry): Int32Array[] {
  const { N, C, H, W, O, KH, KW, OH, OW, stride, padH, padW } = d;
  return cached(`direct,${N},${C},${H},${W},${O},${KH},${KW},${stride},${padH},${padW}`, () => {
    const Hp = H + 2 * padH;
    const Wp = W + 2 * padW;
    const P = OH * OW;
    const cols = N * P;
    const padded = Math.ceil(cols / NR) * NR;
    const colOff = new Int32Array(padded);
    const dstOff = new Int32Array(padded).fill(-1);
    for (let n = 0, q = 0; n < N; n++) {
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++, q++) {
          colOff[q] = 4 * (n * C * Hp * Wp + oh * stride * Wp + ow * stride);
          dstOff[q] = 4 * (n * O * P + oh * OW + ow);
        }
      }
    }
    const rowOff = new Int32Array(C * KH * KW);
    for (let c = 0, k = 0; c < C; c++)
      for (let kh = 0; kh < KH; kh++)
        for (let kw = 0; kw < KW; kw++, k++) rowOff[k] = 4 * (c * Hp * Wp + kh * Wp + kw);
    return [colOff, rowOff, dstOff];
  });
}

/**
 * y [N, O, OH, OW] = conv(x [N, C, H, W]) (+ bias, ReLU) as one pass of conv_gemm over the output columns
 * of the whole batch: x copied once into zero-padded planes (pad_planes; no copy without padding), then for
 * each panel of 8 output columns its im2col panel (K x 8) gathered into the thread's scratch (in L1 or L2)
 * and multiplied by every panel of the weights, the tiles stored straight into y with bias and ReLU. No
 * im2col of the whole batch, no GEMM output to unpack, no index tests: the padding is in the data.
 */
function convDirect(
  cpu: WasmCpu,
  x: Region,
  d: DirectGeometry,
  w: PackedMatrix,
  bias: Region | null,
  relu: boolean,
  y: Region,
): void {
  const { N, C, H, W, O, KH, KW, OH, OW, padH, padW } = d;
  const K = C * KH * KW;
  const cols = N * OH * OW;
  if (cols === 0 || O === 0) return;
  if (w.K !== K || w.size !== O) {
    throw argError('wasm conv2d', `weights packed as ${w.size} x ${w.K}, expected ${O} x ${K}`);
  }
  const nPanels = Math.ceil(cols / NR);
  const mark = cpu.mark();
  try {
    const Hp = H + 2 * padH;
    const Wp = W + 2 * padW;
    const inFloats = N * C * H * W;
    const overlaps =
      x.byteOffset < y.byteOffset + 4 * N * O * OH * OW && y.byteOffset < x.byteOffset + 4 * inFloats;
    if (convRowsApplies(d)) {
      // Each image padded into the thread's scratch by conv_rows itself (see cpu.wat.ts); an x that shares
      // memory with y is copied first.
      let src = x;
      if (overlaps) {
        src = cpu.alloc(inFloats);
        cpu.run('pad_planes', [x.byteOffset, src.byteOffset, H, W, 0, 0, H, W], N * C);
      }
      const perThread = Math.ceil((C * Hp * Wp) / 16) * 16 + ROW_BLOCK;
      const scratch = cpu.alloc(cpu.threads * perThread);
      const rowOff = cpu.upload(directTables(d)[1]);
      cpu.run(
        'conv_rows',
        [
          w.region.byteOffset,
          K,
          O,
          src.byteOffset,
          C,
          H,
          W,
          padH,
          padW,
          Hp,
          Wp,
          scratch.byteOffset,
          rowOff.byteOffset,
          y.byteOffset,
          bias ? bias.byteOffset : 0,
          relu ? 1 : 0,
          OW,
          OH,
        ],
        N,
      );
      return;
    }
    let src = x;
    if (padH > 0 || padW > 0 || overlaps) {
      src = cpu.alloc(N * C * Hp * Wp);
      if (N * C > 0) cpu.run('pad_planes', [x.byteOffset, src.byteOffset, H, W, padH, padW, Hp, Wp], N * C);
    }
    const [colOff, rowOff, dstOff] = directTables(d).map((t) => cpu.upload(t));
    const scratch = cpu.alloc(convGemmScratch(cpu, K));
    cpu.run(
      'conv_gemm',
      [
        w.region.byteOffset,
        0,
        1,
        src.byteOffset,
        colOff.byteOffset,
        rowOff.byteOffset,
        y.byteOffset,
        dstOff.byteOffset,
        4 * OH * OW,
        bias ? bias.byteOffset : 0,
        relu ? 1 : 0,
        O,
        K,
        scratch.byteOffset,
      ],
      nPanels,
      2,
    );
  } finally {
    cpu.reset(mark);
  }
}

/**
 * Whether a convolution runs as conv_rows (see cpu.wat.ts) rather than conv_gemm or Winograd: stride 1 and
 * at most ROWS_MAX_OUTPUTS output channels (a first layer's input gradient), where conv_gemm's 4 x 8 tiles
 * and Winograd's products would be mostly zero rows. The same bits as conv_gemm. (A first layer's forward,
 * one input channel and 9 taps, measured slower as conv_rows than as conv_gemm: conv_rows reloads the
 * input for every output channel.)
 */
export function convRowsApplies(d: { O: number; stride: number }): boolean {
  return d.stride === 1 && d.O <= ROWS_MAX_OUTPUTS;
}

/** Output channels up to which a stride-1 convolution runs as conv_rows. */
export const ROWS_MAX_OUTPUTS = 2;

/**
 * Input channels from which a 3x3 stride-1 convolution runs as Winograd F(2x2, 3x3). Measured on the
 * development machine, one thread, ms direct / Winograd: 1 -> 32 channels at 28x28 (batch 100) 1.8 / 2.3,
 * 2 -> 32 2.6 / 2.7, 3 -> 64 at 56x56 (batch 4) 1.1 / 0.9, 8 -> 16 at 32x32 6.1 / 4.0, 16 -> 32 at 16x16
 * (batch 200) 10.7 / 6.0, 32 -> 64 at 14x14 15.6 / 8.2, VGG-11's layers 2.0-2.3x.
 */
export const WINOGRAD_MIN_CHANNELS = 3;

/**
 * Whether a convolution runs as Winograd (winogradConv; the tile: winogradTile): a 3x3 kernel, stride 1,
 * padding at most 2, and at least WINOGRAD_MIN_CHANNELS input channels (with fewer, the products over so few channels
 * cost more than the 2.25x fewer multiplications save).
 */
export function winogradApplies(g: {
  C: number;
  KH: number;
  KW: number;
  stride: number;
  padH: number;
  padW: number;
}): boolean {
  return winogradShape(g) && g.C >= WINOGRAD_MIN_CHANNELS;
}

/**
 * The Winograd tile for a convolution that winogradApplies: F(4x4, 3x3) (36 products for 16 outputs, 2.25
 * multiplications an output against F(2x2, 3x3)'s 4) when, with the planes cut into whole tiles, it takes
 * under 0.9 of F(2x2, 3x3)'s products (square planes of 4 x 4 and from 7 x 7 on; at 5 x 5 and 6 x 6 both take
 * as many and the larger transforms lose). Measured, ms F(2x2) / F(4x4) forward at 2 threads: 512 -> 512 at
 * 28x28 (batch 4) 88.1 / 55.8, 256 -> 256 at 56x56 80.9 / 58.1, 64 -> 128 at 7x7 (batch 100) 5.6 / 3.6,
 * 32 -> 64 at 14x14 4.6 / 3.9.
 */
export function winogradTile(d: { OH: number; OW: number }): WinogradTile {
  const f4 = 36 * Math.ceil(d.OH / 4) * Math.ceil(d.OW / 4);
  const f2 = 16 * Math.ceil(d.OH / 2) * Math.ceil(d.OW / 2);
  return f4 < 0.9 * f2 ? 4 : 2;
}

/** Whether winogradConv can run a convolution at all: a 3x3 kernel, stride 1, padding at most 2. */
function winogradShape(g: { KH: number; KW: number; stride: number; padH: number; padW: number }): boolean {
  return g.KH === 3 && g.KW === 3 && g.stride === 1 && g.padH <= 2 && g.padW <= 2;
}

/**
 * The 16 transformed kernels U = G g G^T of F(2x2, 3x3) (G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2],
 * [0, 0, 1]]; tile 4: the 36 of F(4x4, 3x3), g4; computed in float64, rounded once; the
 * reference of the engine's winograd4_weights), packed as 16 (36) A operands of M rows x K, one after another:
 * element (xi, row, k) at ((xi * panels + row / 4) * K + k) * 4 + row % 4, zero for rows past M. For the
 * forward (flipped false) of w [O, C, 3, 3]: rows o, steps c, g = w[o, c]; for the input gradient (flipped
 * true): rows c, steps o, g = w[o, c] turned by 180 degrees.
 */
export function winogradWeights(
  w: ArrayLike<number>,
  O: number,
  C: number,
  flipped: boolean,
  tile: WinogradTile = 2,
): { data: Float32Array; M: number; K: number; panels: number } {
  const M = flipped ? C : O;
  const K = flipped ? O : C;
  const panels = Math.ceil(M / MR);
  const data = new Float32Array(winogradComponents(tile) * panels * MR * K);
  winogradWeightsInto(w, O, C, flipped, data, 0, tile);
  return { data, M, K, panels };
}

/** The output tile side of a Winograd convolution: F(2x2, 3x3) or F(4x4, 3x3). */
export type WinogradTile = 2 | 4;

/** Products (components) of a Winograd convolution: (tile + 2)^2. */
export function winogradComponents(tile: WinogradTile): number {
  return (tile + 2) * (tile + 2);
}

/**
 * winogradWeights written straight into `out` from element `at` on (the engine's memory: no array of its own
 * and no copy; it runs after every SGD step while training).
 */
export function winogradWeightsInto(
  w: ArrayLike<number>,
  O: number,
  C: number,
  flipped: boolean,
  out: Float32Array,
  at: number,
  tile: WinogradTile = 2,
): void {
  const M = flipped ? C : O;
  const K = flipped ? O : C;
  const stride = Math.ceil(M / MR) * MR * K;
  const components = winogradComponents(tile);
  const n = tile + 2;
  const g = tile === 4 ? g4 : g2;
  const t = tRow;
  const u = uRow;
  for (let o = 0; o < O; o++) {
    for (let c = 0; c < C; c++) {
      const src = (o * C + c) * 9;
      const row = flipped ? c : o;
      const k = flipped ? o : c;
      const base = at + (Math.floor(row / MR) * K + k) * MR + (row % MR);
      // t = G g (n x 3), one column j of g (turned by 180 degrees when flipped) at a time, then U = t G^T
      // (n x n): row i of U from row i of t.
      for (let j = 0; j < 3; j++) {
        g(
          w[src + (flipped ? 8 - j : j)],
          w[src + (flipped ? 5 - j : 3 + j)],
          w[src + (flipped ? 2 - j : 6 + j)],
          t,
          j,
          3,
        );
      }
      for (let i = 0; i < n; i++) {
        g(t[3 * i], t[3 * i + 1], t[3 * i + 2], u, 0, 1);
        for (let j = 0; j < n; j++) out[(n * i + j) * stride + base] = u[j];
      }
    }
  }
  zeroPaddingRows(out, at, M, K, components, stride);
}

/** The last panel's padding rows of packed Winograd kernels are 0 (the memory may hold anything). */
function zeroPaddingRows(
  out: Float32Array,
  at: number,
  M: number,
  K: number,
  components: number,
  stride: number,
): void {
  const rows = Math.ceil(M / MR) * MR;
  for (let row = M; row < rows; row++) {
    for (let k = 0; k < K; k++) {
      const base = at + (Math.floor(row / MR) * K + k) * MR + (row % MR);
      for (let i = 0; i < components; i++) out[i * stride + base] = 0;
    }
  }
}

/**
 * F(2x2, 3x3)'s 1-D kernel transform G v in float64 into out[at + i step], i < 4. G's rows: (1, 0, 0),
 * (1, 1, 1)/2, (1, -1, 1)/2, (0, 0, 1).
 */
function g2(v0: number, v1: number, v2: number, out: Float64Array, at: number, step: number): void {
  out[at] = v0;
  out[at + step] = (v0 + v1 + v2) / 2;
  out[at + 2 * step] = (v0 - v1 + v2) / 2;
  out[at + 3 * step] = v2;
}

/**
 * F(4x4, 3x3)'s (points 0, 1, -1, 2, -2) into out[at + i step], i < 6. G's rows: (1/4, 0, 0), -(1, 1, 1)/6,
 * -(1, -1, 1)/6, (1/24, 1/12, 1/6), (1/24, -1/12, 1/6), (0, 0, 1); winograd4_weights does the same float64
 * operations in the same order.
 */
function g4(v0: number, v1: number, v2: number, out: Float64Array, at: number, step: number): void {
  const even = v0 / 24 + v2 / 6;
  out[at] = v0 / 4;
  out[at + step] = -(v0 + v1 + v2) / 6;
  out[at + 2 * step] = -(v0 - v1 + v2) / 6;
  out[at + 3 * step] = even + v1 / 12;
  out[at + 4 * step] = even - v1 / 12;
  out[at + 5 * step] = v2;
}
const tRow = new Float64Array(18);
const uRow = new Float64Array(6);

/**
 * winogradWeightsInto on the engine's threads, for weights already in its memory (w at byte `src`, the kernels
 * at float `at`): F(4x4, 3x3) by the winograd4_weights routine (the same float64 operations, the same bits;
 * it runs after every SGD step while training), F(2x2, 3x3) in JavaScript.
 */
export function winogradWeightsOnCpu(
  cpu: WasmCpu,
  src: number,
  O: number,
  C: number,
  flipped: boolean,
  at: number,
  tile: WinogradTile,
): void {
  const f = cpu.f32;
  if (tile === 2) {
    winogradWeightsInto(f.subarray(src / 4, src / 4 + O * C * 9), O, C, flipped, f, at, 2);
    return;
  }
  const M = flipped ? C : O;
  const K = flipped ? O : C;
  const panels = Math.ceil(M / MR);
  const mark = cpu.mark();
  try {
    const zero = cpu.alloc(16);
    f.fill(0, zero.byteOffset / 4, zero.byteOffset / 4 + 16);
    const [rs, ks] = flipped ? [1, C] : [C, 1];
    cpu.run(
      'winograd4_weights',
      [src, rs, ks, M, K, flipped ? 1 : 0, zero.byteOffset, 4 * at, 4 * panels * MR * K],
      panels,
    );
  } finally {
    cpu.reset(mark);
  }
  // As winogradWeightsInto: +0 in the padding rows (the routine's zero kernel gives -0 in some components).
  zeroPaddingRows(f, at, M, K, 36, panels * MR * K);
}

/** Packs winogradWeights into the engine's memory (a PackedMatrix of M rows x K whose region holds all 16). */
export function packWinograd(
  cpu: WasmCpu,
  w: ArrayLike<number>,
  O: number,
  C: number,
  flipped: boolean,
  tile: WinogradTile = 2,
): PackedMatrix {
  const u = winogradWeights(w, O, C, flipped, tile);
  const region = cpu.upload(u.data);
  return { region, size: u.M, panels: u.panels, K: u.K };
}

/**
 * y [N, O, OH, OW] = conv(x) (+ bias, ReLU) for a 3x3 stride-1 convolution (winogradApplies) as Winograd
 * F(2x2, 3x3) (tile 2; tile 4: F(4x4, 3x3), winograd4_conv, the same steps with 6 x 6 patches, 4 x 4 blocks
 * and 36 products; u then holds winogradWeights(..., 4)): x copied into zero-padded planes of
 * (2 TH + 2) x (2 TW + 2) (TH x TW tiles of 2 x 2 outputs), then one winograd_conv call over the groups of 8
 * tiles of the whole batch: for each group, the input transform V = B^T d B, the 16 products M[xi] = U[xi] V[xi] (each a chain over the input channels in
 * order) and the output transform A^T m A with bias and ReLU, all in the thread's caches. Every output of an
 * object depends only on that object's tile, in a fixed order: the same bits in any batch and on any thread
 * count.
 */
export function winogradConv(
  cpu: WasmCpu,
  x: Region,
  d: DirectGeometry,
  u: PackedMatrix,
  bias: Region | null,
  relu: boolean,
  y: Region,
  tile: WinogradTile = 2,
): void {
  const { N, C, H, W, O, OH, OW, padH, padW } = d;
  if (!winogradShape(d)) {
    throw argError('wasm conv2d', 'Winograd needs a 3x3 kernel, stride 1 and padding <= 2');
  }
  if (u.K !== C || u.size !== O) {
    throw argError('wasm conv2d', `Winograd weights of ${u.size} x ${u.K}, expected ${O} x ${C}`);
  }
  if (N * O * OH * OW === 0) return;
  const TH = Math.ceil(OH / tile);
  const TW = Math.ceil(OW / tile);
  const Hq = tile * TH + 2;
  const Wq = tile * TW + 2;
  const groups = Math.ceil((N * TH * TW) / NR);
  const mark = cpu.mark();
  try {
    const xq = cpu.alloc(N * C * Hq * Wq);
    cpu.run('pad_planes', [x.byteOffset, xq.byteOffset, H, W, padH, padW, Hq, Wq], N * C);
    const [corner, ytab] = cached(`winograd${tile},${N},${C},${O},${OH},${OW}`, () =>
      winogradTables(tile, N, C, O, OH, OW, groups),
    ).map((t) => cpu.upload(t));
    const Mp = u.panels * MR;
    // Per thread: V (a panel of C x 8 per component) and M (a block of Mp x 8 per component).
    const scratch = cpu.alloc(cpu.threads * 8 * winogradComponents(tile) * (C + Mp));
    cpu.run(
      tile === 4 ? 'winograd4_conv' : 'winograd_conv',
      [
        u.region.byteOffset,
        4 * Mp * C,
        xq.byteOffset,
        corner.byteOffset,
        ytab.byteOffset,
        4 * Hq * Wq,
        4 * Wq,
        y.byteOffset,
        4 * OH * OW,
        4 * OW,
        bias ? bias.byteOffset : 0,
        relu ? 1 : 0,
        O,
        C,
        scratch.byteOffset,
      ],
      groups,
    );
  } finally {
    cpu.reset(mark);
  }
}

/**
 * Tile t = (n, th, tw) of a Winograd convolution: its patch's corner in the padded planes (byte offset), and
 * its block in y. F(2x2, 3x3): ytab[t] = the block's byte offset + which of its column 1 (bit 0) and row 1
 * (bit 1) lie inside y. F(4x4, 3x3): ytab[2t] = the byte offset, ytab[2t + 1] = (rows inside << 4) | columns
 * inside. Past the tiles, -1.
 */
function winogradTables(
  tile: WinogradTile,
  N: number,
  C: number,
  O: number,
  OH: number,
  OW: number,
  groups: number,
): Int32Array[] {
  const TH = Math.ceil(OH / tile);
  const TW = Math.ceil(OW / tile);
  const Hq = tile * TH + 2;
  const Wq = tile * TW + 2;
  const corner = new Int32Array(groups * NR);
  const ytab = new Int32Array((tile === 4 ? 2 : 1) * groups * NR).fill(-1);
  for (let n = 0, t = 0; n < N; n++) {
    for (let th = 0; th < TH; th++) {
      for (let tw = 0; tw < TW; tw++, t++) {
        corner[t] = 4 * (n * C * Hq * Wq + tile * (th * Wq + tw));
        const block = 4 * (n * O * OH * OW + tile * (th * OW + tw));
        if (tile === 4) {
          ytab[2 * t] = block;
          ytab[2 * t + 1] = (Math.min(4, OH - 4 * th) << 4) | Math.min(4, OW - 4 * tw);
        } else ytab[t] = block + ((2 * tw + 1 < OW ? 1 : 0) | (2 * th + 1 < OH ? 2 : 0));
      }
    }
  }
  return [corner, ytab];
}

/** The geometry of a stride-1 convolution's input gradient as a convolution of dy (directBackwardInput). */
export function backwardInputGeometry(g: ConvGeometry): DirectGeometry {
  return {
    N: g.N,
    C: g.O,
    H: g.OH,
    W: g.OW,
    O: g.C,
    KH: g.KH,
    KW: g.KW,
    OH: g.H,
    OW: g.W,
    stride: 1,
    padH: g.KH - 1 - g.pad,
    padW: g.KW - 1 - g.pad,
  };
}

/** The geometry of a convolution as convDirect and winogradConv take it (a padding per axis). */
export function directGeometry(g: ConvGeometry): DirectGeometry {
  return { ...g, padH: g.pad, padW: g.pad };
}

/**
 * Whether conv2dBackwardInputDirectInto applies: stride 1 and padding below the kernel (the input gradient
 * is then the convolution of dy, padded by KH - 1 - padding, with the flipped, transposed kernel).
 */
export function directBackwardInput(g: ConvGeometry): boolean {
  return g.stride === 1 && g.pad <= g.KH - 1 && g.pad <= g.KW - 1;
}

/**
 * Packs conv weights [O, C, KH, KW] for conv2dBackwardInputDirectInto: A = the flipped kernel with the
 * channels swapped, C rows x O*KH*KW, element (c, (o, kh, kw)) = w[o, c, KH-1-kh, KW-1-kw].
 */
export function packConvBackwardInputDirect(
  cpu: WasmCpu,
  w: ArrayLike<number>,
  O: number,
  C: number,
  KH: number,
  KW: number,
): PackedMatrix {
  const KK = KH * KW;
  const flipped = new Float32Array(C * O * KK);
  for (let c = 0; c < C; c++)
    for (let o = 0; o < O; o++)
      for (let t = 0; t < KK; t++) flipped[(c * O + o) * KK + t] = w[(o * C + c) * KK + KK - 1 - t];
  return packWeightA(cpu, flipped, C, O * KK, O * KK, 1);
}

/**
 * dx [N, C, H, W] from dy [N, O, OH, OW] of a stride-1 convolution (directBackwardInput), as a convolution:
 * dx = conv(dy padded by KH-1-pad / KW-1-pad, the flipped kernel of packConvBackwardInputDirect). Each
 * element of dx is one chain over (o, kh, kw) in order: the same bits in any batch and on any thread count.
 * dx may be dy's memory (dy is then copied first).
 */
export function conv2dBackwardInputDirectInto(
  cpu: WasmCpu,
  dy: Region,
  g: ConvGeometry,
  wFlipped: PackedMatrix,
  dx: Region,
): void {
  if (!directBackwardInput(g)) {
    throw argError('wasm conv2dBackwardInput', `the direct path needs stride 1 and padding < kernel`);
  }
  convDirect(cpu, dy, backwardInputGeometry(g), wFlipped, null, false, dx);
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
  // The routine zeroes each plane before it adds into it.
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
 * maxPool2dBackwardCpu into a given region dx (zeroed plane by plane): each plane adds its dy values at their argmax in
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
  window?: { kernel: number; stride: number },
): void {
  const [N, C, OH, OW] = yShape;
  const plane = xShape[2] * xShape[3];
  if (N * C * OH * OW === 0) {
    cpu.f32.fill(0, dx.byteOffset / 4, dx.byteOffset / 4 + N * C * plane);
    return;
  }
  if (window?.kernel === 2 && window.stride === 2 && xShape[2] === 2 * OH && xShape[3] === 2 * OW) {
    // Windows that tile the input: each dx element written once, no zeroing pass (maxpool2_backward).
    cpu.run(
      'maxpool2_backward',
      [
        dy.byteOffset,
        argmax.byteOffset,
        reluOutput ? reluOutput.byteOffset : 0,
        dx.byteOffset,
        xShape[3],
        OH,
        OW,
      ],
      N * C,
    );
    return;
  }
  // The routine zeroes each plane before it adds into it.
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
    if (width === MR && kStride === 1) {
      // Rows of contiguous floats: 4 x 4 transposes (pack_a4).
      const base = cached(`lines,${count},${qStride}`, () => {
        const t = new Int32Array(panels * MR).fill(-1);
        for (let q = 0; q < count; q++) t[q] = 4 * q * qStride;
        return [t];
      })[0];
      cpu.run('pack_a4', [src, dst.byteOffset, cpu.upload(base).byteOffset, K], panels);
    } else {
      const t = uploadTables(cpu, plainTables(count, K, qStride, kStride));
      gather(cpu, { byteOffset: src, floats: 0 }, dst, t.cols, t.rows, K, width, 1, 1, panels);
    }
  } finally {
    cpu.reset(mark);
  }
  return { region: dst, size: count, panels, K };
}

/**
 * packInto for the flipped kernel of conv weights [O, C, KH*KW] at byte address `src` (the A operand of
 * conv2dBackwardInputDirectInto): line c, step k = (o, t) from w[o, c, KK-1-t] (KK = KH * KW).
 */
export function packFlippedInto(
  cpu: WasmCpu,
  src: number,
  dst: Region,
  O: number,
  C: number,
  KK: number,
): PackedMatrix {
  const K = O * KK;
  const tables = cached(`flipped,${O},${C},${KK}`, () => {
    const t = plainTables(C, 0, KK, 0);
    const koff = new Int32Array(K);
    for (let o = 0; o < O; o++) for (let k = 0; k < KK; k++) koff[o * KK + k] = o * C * KK + KK - 1 - k;
    return [t[0], t[1], t[2], new Int32Array(K), new Int32Array(K), koff];
  });
  const panels = Math.ceil(C / MR);
  const mark = cpu.mark();
  try {
    const t = uploadTables(cpu, tables);
    gather(cpu, { byteOffset: src, floats: 0 }, dst, t.cols, t.rows, K, MR, 1, 1, panels);
  } finally {
    cpu.reset(mark);
  }
  return { region: dst, size: C, panels, K };
}

/**
 * C = A B with B gathered on the fly (conv_gemm) instead of packed: A packed panels (M = a.size lines of K),
 * B = `count` lines of K floats, line n's step k at byte address src + colOff[n] + rowOff[k] (colOff[n] =
 * 4 * n * qStride, rowOff[k] = 4 * k * kStride), C element (m, n) (+ bias[n] with biasOn 'cols', bias[m]
 * with 'rows'; ReLU when asked) stored at byte address dst + 4 * (m * mStride + n * nStride). Each output is
 * the GEMM core's chain over k, then the bias, as gemm and storeProduct give it. For large weights that
 * would otherwise be kept packed beside themselves (VGG-11's fc6: 411 MB twice).
 */
export function gemmGathered(
  cpu: WasmCpu,
  a: PackedMatrix,
  src: number,
  count: number,
  qStride: number,
  kStride: number,
  dst: number,
  mStride: number,
  nStride: number,
  bias: Region | null,
  biasOn: 'rows' | 'cols',
  relu: boolean,
): void {
  const K = a.K;
  const panels = Math.ceil(count / NR);
  if (panels === 0 || a.size === 0) return;
  const mark = cpu.mark();
  try {
    const [colOff, rowOff, dstOff] = cached(`gathered,${count},${K},${qStride},${kStride},${nStride}`, () => {
      const colOff = new Int32Array(panels * NR);
      const dstOff = new Int32Array(panels * NR).fill(-1);
      for (let n = 0; n < count; n++) {
        colOff[n] = 4 * n * qStride;
        dstOff[n] = 4 * n * nStride;
      }
      const rowOff = Int32Array.from({ length: K }, (_, k) => 4 * k * kStride);
      return [colOff, rowOff, dstOff];
    }).map((t) => cpu.upload(t));
    const scratch = cpu.alloc(convGemmScratch(cpu, K));
    cpu.run(
      'conv_gemm',
      [
        a.region.byteOffset,
        0,
        1,
        src,
        colOff.byteOffset,
        rowOff.byteOffset,
        dst,
        dstOff.byteOffset,
        4 * mStride,
        bias ? bias.byteOffset : 0,
        (relu ? 1 : 0) | (bias && biasOn === 'cols' ? 2 : 0),
        a.size,
        K,
        scratch.byteOffset,
      ],
      panels,
      2,
    );
  } finally {
    cpu.reset(mark);
  }
}

/**
 * Writes a GEMM's C (rows: the A panels' lines, columns: the B panels' lines, leading dimension ldc) into
 * the plain matrix at byte address `dst`: C element (r, q) goes to dst + 4 * (r * rStride + q * qStride) for
 * r < rows, q < cols (rows x cols of C), plus bias[r] (bias 'rows') or bias[q] ('cols'), plus dst's element
 * with `accumulate`, ReLU when asked (NaN kept). Threads split the columns.
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
  accumulate = false,
): void {
  const flags =
    (relu ? RELU : 0) | (bias && biasOn === 'cols' ? BIAS_PER_COLUMN : 0) | (accumulate ? ACCUMULATE : 0);
  if (qStride === 1) {
    // Contiguous columns: store_rows, four at a time (the same bits as scatter); chunks of 16 columns.
    cpu.run(
      'store_rows',
      [c.byteOffset, ldc, dst, rStride, rows, bias ? bias.byteOffset : 0, flags],
      cols,
      16,
    );
    return;
  }
  const mark = cpu.mark();
  try {
    const t = uploadTables(cpu, plainTables(cols, rows, qStride, rStride));
    // Chunks of 16 columns: whole 64-byte lines of dst when columns are contiguous.
    scatter(cpu, c, ldc, { byteOffset: dst, floats: 0 }, t.cols, t.rows, rows, 1, 1, bias, flags, cols, 16);
  } finally {
    cpu.reset(mark);
  }
}

/** Output rows per piece of a weight gradient: the largest divisor R of OH with R * OW <= 4096 (at least 1). */
function pieceRows(OH: number, OW: number): number {
  let best = 1;
  for (let r = 1; r <= OH; r++) if (OH % r === 0 && r * OW <= 4096) best = r;
  return best;
}

/**
 * dw [O, C, KH, KW] (= dw as O x C*KH*KW) of a convolution: dy (O x N*OH*OW) times im2col(x)^T, reduced in
 * fixed pieces (R output rows of one image, pieceRows) whose partial products are summed in piece order
 * (sum_rows): the same bits on any thread count, while the threads share the pieces. For each piece, dy's
 * rows are packed into A panels (pack_a4) and conv_gemm gathers im2col(x)^T (columns (c, kh, kw), steps
 * (oh, ow)) from a zero-padded copy of x, writing the piece's O x C*KH*KW partial product. With
 * `accumulate` the result is added to dw.
 */
export function conv2dBackwardWeightInto(
  cpu: WasmCpu,
  x: Region,
  dy: Region,
  g: ConvGeometry,
  dw: Region,
  accumulate: boolean,
): void {
  const { N, C, H, W, O, KH, KW, OH, OW, stride, pad } = g;
  const CKK = C * KH * KW;
  const P = OH * OW;
  const out = dw.byteOffset / 4;
  if (N * P === 0 || O * CKK === 0) {
    if (!accumulate) cpu.f32.fill(0, out, out + O * CKK);
    return;
  }
  const R = pieceRows(OH, OW);
  const perImage = OH / R;
  const pieces = N * perImage;
  const K = R * OW;
  const mPanels = Math.ceil(O / MR);
  const nPanels = Math.ceil(CKK / NR);
  const Hp = H + 2 * pad;
  const Wp = W + 2 * pad;
  const mark = cpu.mark();
  try {
    let src = x;
    if (pad > 0) {
      src = cpu.alloc(N * C * Hp * Wp);
      cpu.run('pad_planes', [x.byteOffset, src.byteOffset, H, W, pad, pad, Hp, Wp], N * C);
    }
    const [lines, colOff, rowOff, dstOff] = cached(
      `dw,${N},${C},${H},${W},${O},${KH},${KW},${stride},${pad}`,
      () => {
        // A lines (piece, o): dy's run of R rows of image n from output row r0.
        const lines = new Int32Array(pieces * mPanels * MR).fill(-1);
        const colOff = new Int32Array(pieces * nPanels * NR);
        const dstOff = new Int32Array(pieces * nPanels * NR).fill(-1);
        for (let piece = 0; piece < pieces; piece++) {
          const n = Math.floor(piece / perImage);
          const r0 = (piece - n * perImage) * R;
          for (let o = 0; o < O; o++) lines[piece * mPanels * MR + o] = 4 * ((n * O + o) * P + r0 * OW);
          const corner = n * C * Hp * Wp + r0 * stride * Wp;
          for (let k = 0; k < nPanels * NR; k++) {
            const kk = Math.min(k, CKK - 1);
            const c = Math.floor(kk / (KH * KW));
            const t = kk - c * KH * KW;
            const kh = Math.floor(t / KW);
            colOff[piece * nPanels * NR + k] = 4 * (corner + c * Hp * Wp + kh * Wp + (t - kh * KW));
            if (k < CKK) dstOff[piece * nPanels * NR + k] = 4 * (piece * O * CKK + k);
          }
        }
        const rowOff = new Int32Array(K);
        for (let r = 0; r < R; r++)
          for (let ow = 0; ow < OW; ow++) rowOff[r * OW + ow] = 4 * (r * stride * Wp + ow * stride);
        return [lines, colOff, rowOff, dstOff];
      },
    ).map((t) => cpu.upload(t));
    const a = cpu.alloc(pieces * mPanels * MR * K);
    cpu.run('pack_a4', [dy.byteOffset, a.byteOffset, lines.byteOffset, K], pieces * mPanels);
    const partial = cpu.alloc(pieces * O * CKK);
    const scratch = cpu.alloc(convGemmScratch(cpu, K));
    cpu.run(
      'conv_gemm',
      [
        a.byteOffset,
        4 * mPanels * MR * K,
        nPanels,
        src.byteOffset,
        colOff.byteOffset,
        rowOff.byteOffset,
        partial.byteOffset,
        dstOff.byteOffset,
        4 * CKK,
        0,
        0,
        O,
        K,
        scratch.byteOffset,
      ],
      pieces * nPanels,
    );
    // dw (+)= the pieces' products in piece order; threads split dw in whole 64-byte lines.
    cpu.run(
      'sum_rows',
      [partial.byteOffset, dw.byteOffset, O * CKK, pieces, accumulate ? 1 : 0],
      O * CKK,
      16,
    );
  } finally {
    cpu.reset(mark);
  }
}

/**
 * out[c] = the sum of x [N, C, P] over n and p (P: the product of the dims after C): per (c, p) over the
 * images in order (sum_rows on the threads), then over p in order.
 */
export function sumChannelsInto(cpu: WasmCpu, x: Region, N: number, C: number, P: number, out: Region): void {
  const f = cpu.f32;
  const o = out.byteOffset / 4;
  if (N * P === 0) {
    f.fill(0, o, o + C);
    return;
  }
  const mark = cpu.mark();
  try {
    const s = cpu.alloc(C * P);
    cpu.run('sum_rows', [x.byteOffset, s.byteOffset, C * P, N, 0], C * P, 16);
    const m = cpu.f32;
    const si = s.byteOffset / 4;
    for (let c = 0; c < C; c++) {
      let acc = 0;
      for (let p = si + c * P; p < si + (c + 1) * P; p++) acc += m[p];
      m[o + c] = acc;
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

const f32Scratch = new Float32Array(1);
const f32ScratchBits = new Int32Array(f32Scratch.buffer);
/** The bits of fround(x) as an i32, how routines receive f32 arguments. */
export function f32Bits(x: number): number {
  f32Scratch[0] = x;
  return f32ScratchBits[0];
}

/** sgd (see the routine) over n elements of w, g, v; threads split whole 64-byte lines. */
export function sgdInto(
  cpu: WasmCpu,
  w: Region,
  g: Region,
  v: Region,
  n: number,
  o: { lr: number; momentum: number; weightDecay: number },
): void {
  cpu.run(
    'sgd',
    [w.byteOffset, g.byteOffset, v.byteOffset, f32Bits(o.lr), f32Bits(o.momentum), f32Bits(o.weightDecay)],
    n,
    16,
  );
}
