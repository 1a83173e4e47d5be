import { argError, shapeError } from '../errors.js';
import { type Gpu, grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import {
  type ConvRowConfig,
  type ConvTile,
  type ConvWeightRowConfig,
  convBackwardInputKey,
  convBackwardInputShader,
  convBackwardWeightKey,
  convBackwardWeightShader,
  convForwardKey,
  convForwardShader,
  convRowKey,
  convRowShader,
  convWeightRowKey,
  convWeightRowShader,
} from './conv2d.wgsl.js';
import { gemmReduceShader } from './matmul.wgsl.js';

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
}

export interface Conv2dGeometry {
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
  pad: number;
}

/** Checks shapes (NCHW input, PyTorch [O, C, KH, KW] weight) and returns the convolution's geometry. */
export function conv2dGeometry(
  op: string,
  xShape: readonly number[],
  wShape: readonly number[],
  o: Conv2dOptions,
): Conv2dGeometry {
  if (xShape.length !== 4) throw shapeError(op, 'an NCHW input of rank 4', `[${xShape.join(', ')}]`);
  if (wShape.length !== 4) throw shapeError(op, 'a weight [O, C, KH, KW]', `[${wShape.join(', ')}]`);
  const [N, C, H, W] = xShape;
  const [O, CW, KH, KW] = wShape;
  if (C !== CW) throw shapeError(op, `a weight with ${C} input channels`, `[${wShape.join(', ')}]`);
  const stride = o.stride ?? 1;
  const pad = o.padding ?? 0;
  if (!Number.isInteger(stride) || stride < 1)
    throw argError(op, `stride must be an integer >= 1, found ${stride}`);
  if (!Number.isInteger(pad) || pad < 0) throw argError(op, `padding must be an integer >= 0, found ${pad}`);
  const OH = Math.floor((H + 2 * pad - KH) / stride) + 1;
  const OW = Math.floor((W + 2 * pad - KW) / stride) + 1;
  if (OH < 1 || OW < 1) {
    throw shapeError(
      op,
      `a ${KH}x${KW} kernel that fits the padded ${H}x${W} input`,
      `an empty output ${OH}x${OW}`,
    );
  }
  return { N, C, H, W, O, KH, KW, OH, OW, stride, pad };
}

function uniforms(g: Conv2dGeometry, splits = 1, chunk = 0): number[] {
  return [g.N, g.C, g.H, g.W, g.O, g.OH, g.OW, g.stride, g.pad, splits, chunk];
}

function pickTile(rows: number): ConvTile {
  // Lanes run along pixels (x); rows are channels taken from the workgroup id alone (wy = 1), so their
  // loads have one address for all lanes, which llvmpipe's LLVM folds into one scalar load (2.5x faster
  // than rows spread over lid.y: conv3 forward 5.2 against 2.1 GFLOP/s). Big blocks: see convRowShader.
  // 8x4 ran as fast as 8x8 there (4.9 against 5.0) with half the code to compile.
  if (rows <= 8) return { tr: 4, tc: 4, wx: 16, wy: 1 };
  return { tr: 8, tc: 4, wx: 16, wy: 1 };
}

function pickWeightTile(rows: number, cols: number): ConvTile {
  // Lanes along (c, kh, kw), rows (output channels) shared by the workgroup; 16x8 blocks measured best on
  // conv2/conv3 (9.2 GFLOP/s against 5.5 for 8x4 rows over lid.y); tiny reductions keep small blocks.
  // With dy rows shared through subgroups, 32x8 blocks: conv2/conv3 10.1/12.0 -> 16.6/16.1 GFLOP/s (16x16
  // 8.8/10.4, 64x4 11.6/16.1, 64x8 16.1/11.5).
  if (rows >= 32 && cols >= 64) return { tr: 32, tc: 8, wx: 16, wy: 1 };
  if (rows >= 16 && cols >= 64) return { tr: 16, tc: 8, wx: 16, wy: 1 };
  return rows <= 4 ? { tr: 4, tc: 4, wx: 16, wy: 1 } : { tr: 8, tc: 4, wx: 8, wy: 4 };
}

/** Register block of the stride-1 row-run kernel (see `convRowShader`); `subgroups: false` opts out. */
export type ConvRowTile = Pick<ConvRowConfig, 'tr' | 'tc' | 'ty' | 'wx'> & {
  subgroups?: boolean;
  /** vec4 loads and stores where tc and both widths are multiples of 4 (default); false opts out. */
  vec4?: boolean;
};

function rowVec4(tile: ConvRowTile, inW: number, outW: number): boolean {
  return tile.vec4 !== false && tile.tc % 4 === 0 && inW % 4 === 0 && outW % 4 === 0;
}

function pickRowTile(rows: number, outH: number, outW: number, inW: number, macs: number): ConvRowTile {
  if (outW % 4 === 0 && inW % 4 === 0 && macs >= 2 ** 24) {
    // vec4 loads and stores (conv1 at 28x28): a quarter of the guarded per-lane accesses, which dominate
    // when the reduction is short (C = 1: 9 multiply-adds per stored output). conv1 forward 3.2 -> 5.2,
    // input gradient 4.9 -> 6.1 GFLOP/s; 16 or 32 channels, 7 rows or whole-row runs were within noise.
    const tr = Math.min(rows, 8);
    const nv = outW / 4;
    const tc = 4 * Math.ceil(nv / Math.ceil(nv / 2));
    const tyMax = Math.max(1, Math.min(4, Math.floor(256 / (tr * tc))));
    const ty = Math.ceil(outH / Math.ceil(outH / tyMax));
    return { tr, tc, ty, wx: 16 };
  }
  // Runs of at most 8 pixels, split evenly over the row (OW 7, 14, 28: runs of 7, no idle columns), and up
  // to 4 output rows per invocation (rows share input rows as columns do: 8x7x4 ran 1.7-2x faster than
  // 8x7x1 on conv2/conv3). Capped at 224 accumulators: LLVM compile time grows with the unrolled block
  // (8x7x4: ~15 s once, then Mesa's shader cache; 8x7x7 was faster still but took ~42 s), so small
  // problems (under 2^24 multiply-adds), where compiling would cost more than it saves, keep one row.
  const tr = Math.min(rows, 8);
  const tc = Math.ceil(outW / Math.ceil(outW / 8));
  const tyMax = macs < 2 ** 24 ? 1 : Math.max(1, Math.min(4, Math.floor(224 / (tr * tc))));
  const ty = Math.ceil(outH / Math.ceil(outH / tyMax));
  return { tr, tc, ty, wx: 16 };
}

/**
 * Lanes that can share weight loads through subgroupBroadcast: a power of two no larger than 8 or the
 * device's smallest subgroup (WebGPU guarantees at least 4); 0 without the 'subgroups' feature.
 */
function subgroupUnit(gpu: Gpu): number {
  if (!gpu.features.includes('subgroups')) return 0;
  const info = (gpu.device as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo;
  const min = info?.subgroupMinSize ?? 4;
  return min >= 8 ? 8 : 4;
}

/**
 * Dispatches the row-run kernel: out [N, rows, outH, outW] from src [N, reduce, inH, inW]. `transposed`
 * reads the weight as for the input gradient.
 */
function runRows(
  gpu: Gpu,
  op: string,
  src: Tensor,
  w: Tensor,
  dst: Tensor,
  bias: Tensor | null,
  s: { N: number; reduce: number; inH: number; inW: number; rows: number; outH: number; outW: number },
  k: { kh: number; kw: number; pad: number; transposed: boolean; relu: boolean },
  tile: ConvRowTile,
): void {
  const vec4 = rowVec4(tile, s.inW, s.outW);
  const cfg: ConvRowConfig = {
    vec4,
    pad: vec4 ? k.pad : 0,
    tr: tile.tr,
    tc: tile.tc,
    ty: tile.ty ?? 1,
    wx: tile.wx,
    kh: k.kh,
    kw: k.kw,
    transposed: k.transposed,
    bias: !!bias,
    relu: k.relu,
    subgroupUnit: tile.subgroups === false ? 0 : subgroupUnit(gpu),
  };
  const runsPerRow = Math.ceil(s.outW / tile.tc);
  const wgX = Math.ceil((s.N * Math.ceil(s.outH / (tile.ty ?? 1)) * runsPerRow) / tile.wx);
  const wgY = Math.ceil(s.rows / tile.tr);
  checkDispatch(op, wgX, wgY);
  gpu.run({
    op,
    key: convRowKey(cfg),
    code: () => convRowShader(cfg),
    buffers: bias ? [src, w, dst, bias] : [src, w, dst],
    uniforms: [s.N, s.reduce, s.inH, s.inW, s.rows, s.outH, s.outW, 1, k.pad, runsPerRow, 0],
    workgroups: [wgX, wgY],
  });
}

/**
 * The general (tiled) kernels' kernel rows: a loop in the forward, unrolled in the input gradient. Measured
 * on llvmpipe against the fully unrolled kernels they replace (stride 2, medians of 11-21 runs taking turns):
 * forward as a row loop ran as fast at 3x3 (x[1,64,112,112] w[128,64,3,3] x0.99, x[100,32,28,28] w[64,32,3,3]
 * x0.97-1.08) and faster above (5x5 x1.2-1.3, ResNet's 7x7 stem x1.05-1.17), compiling in seconds where the
 * unrolled 7x7 took LLVM 36-52 s; the input gradient as a row loop ran slower (5x5 x0.72, 7x7 x0.9), so it
 * stays unrolled. Both compile in seconds on SwiftShader (see `allOf`).
 */
function rowLoopFor(forward: boolean, forced: boolean | undefined): boolean {
  return forced ?? forward;
}

function checkDispatch(op: string, x: number, y: number): void {
  if (x > 65535 || y > 65535) {
    throw argError(
      op,
      `the convolution needs ${x}x${y} workgroups, over the 65535 limit; use smaller batches`,
    );
  }
}

/** y = conv2d(x, w) + b (NCHW, PyTorch weight layout), ReLU optionally fused into the write. */
export function conv2d(
  gpu: Gpu,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  o: Conv2dOptions & {
    relu?: boolean;
    out?: Tensor;
    tile?: ConvTile;
    rowTile?: ConvRowTile;
    /** General kernel only: kernel rows as a loop (true, the default) or unrolled (false). */
    rowLoop?: boolean;
  } = {},
): Tensor {
  const op = 'conv2d';
  const g = conv2dGeometry(op, x.shape, w.shape, o);
  if (bias && bias.size !== g.O) throw shapeError(op, `a bias of ${g.O}`, `${bias.size}`);
  const y = o.out ?? gpu.empty([g.N, g.O, g.OH, g.OW]);
  if (y.size !== g.N * g.O * g.OH * g.OW)
    throw shapeError(op, `an output of ${g.N * g.O * g.OH * g.OW}`, `${y.size}`);
  if (g.stride === 1 && !o.tile) {
    const s = { N: g.N, reduce: g.C, inH: g.H, inW: g.W, rows: g.O, outH: g.OH, outW: g.OW };
    const k = { kh: g.KH, kw: g.KW, pad: g.pad, transposed: false, relu: o.relu ?? false };
    runRows(gpu, op, x, w, y, bias, s, k, o.rowTile ?? pickRowTile(g.O, g.OH, g.OW, g.W, conv2dFlops(g) / 2));
    return y;
  }
  const tile = o.tile ?? pickTile(g.O);
  const cfg = {
    ...tile,
    bias: !!bias,
    relu: o.relu ?? false,
    kh: g.KH,
    kw: g.KW,
    rowLoop: rowLoopFor(true, o.rowLoop),
  };
  const wgX = Math.ceil((g.N * g.OH * g.OW) / (tile.tc * tile.wx));
  const wgY = Math.ceil(g.O / (tile.tr * tile.wy));
  checkDispatch(op, wgX, wgY);
  gpu.run({
    op,
    key: convForwardKey(cfg),
    code: () => convForwardShader(cfg),
    buffers: bias ? [x, w, y, bias] : [x, w, y],
    uniforms: uniforms(g),
    workgroups: [wgX, wgY],
  });
  return y;
}

/** dx of conv2d, as a transposed convolution of dy with the same weights. */
export function conv2dBackwardInput(
  gpu: Gpu,
  dy: Tensor,
  w: Tensor,
  xShape: readonly number[],
  o: Conv2dOptions & {
    out?: Tensor;
    tile?: ConvTile;
    rowTile?: ConvRowTile;
    /** General kernel only: kernel rows as a loop (true) or unrolled (false, the default). */
    rowLoop?: boolean;
  } = {},
): Tensor {
  const op = 'conv2dBackwardInput';
  const g = conv2dGeometry(op, xShape, w.shape, o);
  const dyShape = [g.N, g.O, g.OH, g.OW];
  if (dy.size !== g.N * g.O * g.OH * g.OW)
    throw shapeError(op, `dy of shape [${dyShape.join(', ')}]`, `[${dy.shape.join(', ')}]`);
  const dx = o.out ?? gpu.empty(xShape);
  if (
    g.stride === 1 &&
    !o.tile &&
    g.pad <= Math.min(g.KH, g.KW) - 1 &&
    g.KH - 1 - g.pad === g.KW - 1 - g.pad
  ) {
    // A stride-1 transposed convolution is a convolution of dy, padded by K-1-pad, with flipped weights.
    const s = { N: g.N, reduce: g.O, inH: g.OH, inW: g.OW, rows: g.C, outH: g.H, outW: g.W };
    const k = { kh: g.KH, kw: g.KW, pad: g.KH - 1 - g.pad, transposed: true, relu: false };
    runRows(
      gpu,
      op,
      dy,
      w,
      dx,
      null,
      s,
      k,
      o.rowTile ?? pickRowTile(g.C, g.H, g.W, g.OW, conv2dFlops(g) / 2),
    );
    return dx;
  }
  const tile = o.tile ?? pickTile(g.C);
  const cfg = {
    ...tile,
    kh: g.KH,
    kw: g.KW,
    unitStride: g.stride === 1,
    rowLoop: rowLoopFor(false, o.rowLoop),
  };
  const wgX = Math.ceil((g.N * g.H * g.W) / (tile.tc * tile.wx));
  const wgY = Math.ceil(g.C / (tile.tr * tile.wy));
  checkDispatch(op, wgX, wgY);
  gpu.run({
    op,
    key: convBackwardInputKey(cfg),
    code: () => convBackwardInputShader(cfg),
    buffers: [dy, w, dx],
    uniforms: uniforms(g),
    workgroups: [wgX, wgY],
  });
  return dx;
}

/**
 * dw of conv2d: a GEMM over all output pixels of the batch, split into deterministic partial sums (no float
 * atomics), then summed. With `accumulate`, added to `out` (gradient accumulation across batches).
 */
export function conv2dBackwardWeight(
  gpu: Gpu,
  x: Tensor,
  dy: Tensor,
  wShape: readonly number[],
  o: Conv2dOptions & {
    out?: Tensor;
    accumulate?: boolean;
    splits?: number;
    tile?: ConvTile;
    rowTile?: ConvWeightRowTile;
  } = {},
): Tensor {
  const op = 'conv2dBackwardWeight';
  const g = conv2dGeometry(op, x.shape, wShape, o);
  if (dy.size !== g.N * g.O * g.OH * g.OW) {
    throw shapeError(op, `dy of shape [${[g.N, g.O, g.OH, g.OW].join(', ')}]`, `[${dy.shape.join(', ')}]`);
  }
  if (o.accumulate && !o.out) throw argError(op, 'accumulate needs an output tensor to add to');
  const CKK = g.C * g.KH * g.KW;
  const dw = o.out ?? gpu.empty(wShape);
  // Few input channels (conv1, C = 1): the tiled kernel's columns (C*KH*KW = 9) leave most lanes idle; the
  // row kernel runs lanes along output channels (conv1 1.2 -> 4-5 GFLOP/s). With many channels its
  // input loads cost more than they save (conv2/conv3 3-4.6 against 7.8-8.7; VGG conv1, C = 3: 3.3-3.6
  // against 3.9), so they keep the tiled one.
  if (g.stride === 1 && !o.tile && (o.rowTile || g.C <= 2)) {
    const t = o.rowTile ?? pickWeightRowTile(g);
    const cfg: ConvWeightRowConfig = { ...t, kh: g.KH, kw: g.KW };
    const wgX = Math.ceil(g.O / (t.to * t.wx));
    const wgY = Math.ceil(g.C / t.tcc);
    checkDispatch(op, wgX, wgY);
    const NR = g.N * g.OH;
    const splits = Math.max(1, Math.min(o.splits ?? Math.ceil(256 / (wgX * wgY)), NR, 1024));
    const chunk = Math.ceil(NR / splits);
    const used = Math.ceil(NR / chunk);
    const part = gpu.empty([used, g.O, CKK]);
    gpu.run({
      op,
      key: convWeightRowKey(cfg),
      code: () => convWeightRowShader(cfg),
      buffers: [x, dy, part],
      uniforms: uniforms(g, used, chunk),
      workgroups: [wgX, wgY, used],
    });
    reduceParts(gpu, op, part, dw, g.O, CKK, used, o.accumulate ?? false);
    return dw;
  }
  const tile = o.tile ?? pickWeightTile(g.O, CKK);
  const wgX = Math.ceil(CKK / (tile.tc * tile.wx));
  const wgY = Math.ceil(g.O / (tile.tr * tile.wy));
  checkDispatch(op, wgX, wgY);
  const NP = g.N * g.OH * g.OW;
  // Enough chunks to keep every core busy, each long enough to amortise its partial-sum write.
  const splits = Math.max(1, Math.min(o.splits ?? Math.ceil(256 / (wgX * wgY)), Math.ceil(NP / 64), 1024));
  const chunk = Math.ceil(NP / splits);
  const used = Math.ceil(NP / chunk);
  const part = gpu.empty([used, g.O, CKK]);
  // Rows shared through subgroupBroadcast: conv2/conv3 6-9 -> 10.4-11 GFLOP/s on llvmpipe.
  const sg = tile.wy === 1 ? subgroupUnit(gpu) : 0;
  gpu.run({
    op,
    key: `${convBackwardWeightKey(tile)}:${g.KH}x${g.KW}:s${sg}`,
    code: () => convBackwardWeightShader(tile, g.KH, g.KW, sg),
    buffers: [x, dy, part],
    uniforms: uniforms(g, used, chunk),
    workgroups: [wgX, wgY, used],
  });
  reduceParts(gpu, op, part, dw, g.O, CKK, used, o.accumulate ?? false);
  return dw;
}

function reduceParts(
  gpu: Gpu,
  op: string,
  part: Tensor,
  dw: Tensor,
  O: number,
  CKK: number,
  used: number,
  accumulate: boolean,
): void {
  const rc = { bias: 'none' as const, relu: false, accumulate };
  gpu.run({
    op: `${op}Reduce`,
    key: `none:false:${rc.accumulate}`,
    code: () => gemmReduceShader(rc),
    buffers: [part, dw],
    uniforms: [O, CKK, CKK, 0, 0, used, 1, { f32: 1 }],
    workgroups: grid(Math.ceil((O * CKK) / 256)),
  });
  part.release();
}

/** Block of the stride-1 weight-gradient kernel (see `convWeightRowShader`). */
export type ConvWeightRowTile = Pick<ConvWeightRowConfig, 'tcc' | 'to' | 'tc' | 'wx'>;

function pickWeightRowTile(g: Conv2dGeometry): ConvWeightRowTile {
  const tc = Math.ceil(g.OW / Math.ceil(g.OW / 8));
  return { tcc: Math.min(g.C, 4), to: g.O >= 32 ? 2 : 1, tc, wx: 16 };
}

/** Multiply-adds times two of one conv2d forward (the same count for each backward pass). */
export function conv2dFlops(g: Conv2dGeometry): number {
  return 2 * g.N * g.O * g.OH * g.OW * g.C * g.KH * g.KW;
}
