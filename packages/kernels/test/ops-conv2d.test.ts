import { describe, expect, it } from 'vitest';
import { conv2d, conv2dBackwardInput, conv2dBackwardWeight } from '../src/ops/conv2d.js';
import * as ref from '../src/reference/index.js';
import { expectClose, randn, useGpu } from './helpers.js';

// [N, C, H, W, O, K, stride, padding]: batch 1, 1x1 kernels, stride 2, odd sizes, more channels than a tile.
const cases: Array<[number, number, number, number, number, number, number, number]> = [
  [1, 1, 5, 5, 1, 1, 1, 0],
  [1, 3, 7, 9, 5, 3, 1, 1],
  [2, 4, 9, 8, 6, 3, 2, 1],
  [3, 5, 6, 7, 37, 1, 2, 0],
  [2, 19, 11, 10, 3, 5, 1, 2],
  [1, 2, 8, 8, 4, 4, 3, 1],
  // Stride 1 (row-run kernel): runs split a row unevenly, output channels not a multiple of the row block.
  [2, 3, 12, 17, 37, 3, 1, 1],
  [2, 13, 9, 9, 4, 3, 1, 0],
];

describe('conv2d', () => {
  const gpu = useGpu();
  const rng = new ref.SeededRandom(3);
  for (const [N, C, H, W, O, K, stride, padding] of cases) {
    it(`x [${N},${C},${H},${W}] w [${O},${C},${K},${K}] stride ${stride} padding ${padding}`, async () => {
      const g = gpu();
      const p = { stride, padding };
      const x = randn(rng, N * C * H * W);
      const w = randn(rng, O * C * K * K);
      const b = randn(rng, O);
      const xShape = [N, C, H, W];
      const wShape = [O, C, K, K];
      const fwd = ref.conv2dForward(x, xShape, w, wShape, b, p);
      const tx = g.tensor(xShape, x);
      const tw = g.tensor(wShape, w);
      for (const relu of [false, true]) {
        const y = conv2d(g, tx, tw, g.tensor([O], b), { ...p, relu });
        expect(y.shape).toEqual(fwd.shape);
        expectClose(await g.readF32(y), relu ? ref.relu(fwd.y) : fwd.y);
      }
      const dy = randn(rng, fwd.y.length);
      const tdy = g.tensor(fwd.shape, dy);
      const dx = conv2dBackwardInput(g, tdy, tw, xShape, p);
      expectClose(await g.readF32(dx), ref.conv2dBackwardInput(dy, fwd.shape, w, wShape, xShape, p));
      const dwRef = ref.conv2dBackwardWeight(x, xShape, dy, fwd.shape, wShape, p);
      for (const splits of [1, 3]) {
        const dw = conv2dBackwardWeight(g, tx, tdy, wShape, { ...p, splits });
        expectClose(await g.readF32(dw), dwRef);
      }
      // Accumulation: dw0 + dw.
      const acc = g.tensor(wShape, dwRef);
      conv2dBackwardWeight(g, tx, tdy, wShape, { ...p, out: acc, accumulate: true });
      expectClose(
        await g.readF32(acc),
        dwRef.map((v) => 2 * v),
      );
    });
  }

  // With the device feature "subgroups" the default blocks share weight loads; the second block opts out.
  it('stride 1: explicit row blocks and the tiled kernel agree with the reference', async () => {
    const g = gpu();
    const [N, C, H, W, O, K, padding] = [2, 5, 10, 11, 19, 3, 1];
    const x = randn(rng, N * C * H * W);
    const w = randn(rng, O * C * K * K);
    const b = randn(rng, O);
    const xShape = [N, C, H, W];
    const wShape = [O, C, K, K];
    const p = { stride: 1, padding };
    const fwd = ref.conv2dForward(x, xShape, w, wShape, b, p);
    const dy = randn(rng, fwd.y.length);
    const dxRef = ref.conv2dBackwardInput(dy, fwd.shape, w, wShape, xShape, p);
    const tx = g.tensor(xShape, x);
    const tw = g.tensor(wShape, w);
    const tb = g.tensor([O], b);
    const tdy = g.tensor(fwd.shape, dy);
    for (const rowTile of [
      { tr: 3, tc: 4, ty: 3, wx: 8 },
      { tr: 2, tc: 11, wx: 16, subgroups: false },
    ]) {
      expectClose(await g.readF32(conv2d(g, tx, tw, tb, { padding, rowTile })), fwd.y);
      expectClose(await g.readF32(conv2dBackwardInput(g, tdy, tw, xShape, { padding, rowTile })), dxRef);
    }
    const tile = { tr: 4, tc: 4, wx: 8, wy: 4 };
    expectClose(await g.readF32(conv2d(g, tx, tw, tb, { padding, tile })), fwd.y);
    expectClose(await g.readF32(conv2dBackwardInput(g, tdy, tw, xShape, { padding, tile })), dxRef);
  });

  // The general kernels with the kernel rows unrolled and as a loop (by default: the forward loops), at
  // stride 2 and, forced through `tile`, at stride 1; non-square kernels, so rows and columns cannot swap.
  for (const [N, C, H, W, O, KH, KW, stride, padding] of [
    [2, 3, 9, 10, 10, 3, 2, 2, 1],
    [1, 4, 11, 9, 6, 5, 4, 2, 2],
    [2, 2, 8, 7, 3, 4, 3, 1, 1],
  ]) {
    it(`general kernel, kernel rows unrolled and looped: x [${N},${C},${H},${W}] w [${O},${C},${KH},${KW}] stride ${stride} padding ${padding}`, async () => {
      const g = gpu();
      const p = { stride, padding };
      const x = randn(rng, N * C * H * W);
      const w = randn(rng, O * C * KH * KW);
      const b = randn(rng, O);
      const xShape = [N, C, H, W];
      const wShape = [O, C, KH, KW];
      const fwd = ref.conv2dForward(x, xShape, w, wShape, b, p);
      const dy = randn(rng, fwd.y.length);
      const dxRef = ref.conv2dBackwardInput(dy, fwd.shape, w, wShape, xShape, p);
      const tx = g.tensor(xShape, x);
      const tw = g.tensor(wShape, w);
      const tb = g.tensor([O], b);
      const tdy = g.tensor(fwd.shape, dy);
      const tile = stride === 1 ? { tr: 4, tc: 4, wx: 16, wy: 1 } : undefined;
      for (const rowLoop of [false, true]) {
        const y = conv2d(g, tx, tw, tb, { ...p, relu: true, tile, rowLoop });
        expectClose(await g.readF32(y), ref.relu(fwd.y));
        const dx = conv2dBackwardInput(g, tdy, tw, xShape, { ...p, tile, rowLoop });
        expectClose(await g.readF32(dx), dxRef);
      }
    });
  }

  // Widths that are multiples of 4 take vec4 loads and stores; runs (tc = 8) and row blocks that overhang.
  for (const [N, C, H, W, O, K, padding] of [
    [2, 3, 9, 12, 5, 3, 1],
    [1, 2, 7, 8, 3, 3, 2],
  ]) {
    it(`stride 1, vec4 rows: x [${N},${C},${H},${W}] w [${O},${C},${K},${K}] padding ${padding}`, async () => {
      const g = gpu();
      const x = randn(rng, N * C * H * W);
      const w = randn(rng, O * C * K * K);
      const b = randn(rng, O);
      const xShape = [N, C, H, W];
      const wShape = [O, C, K, K];
      const p = { stride: 1, padding };
      const fwd = ref.conv2dForward(x, xShape, w, wShape, b, p);
      const dy = randn(rng, fwd.y.length);
      const dxRef = ref.conv2dBackwardInput(dy, fwd.shape, w, wShape, xShape, p);
      const tx = g.tensor(xShape, x);
      const tw = g.tensor(wShape, w);
      const tb = g.tensor([O], b);
      const tdy = g.tensor(fwd.shape, dy);
      for (const rowTile of [
        { tr: 2, tc: 8, ty: 2, wx: 8 },
        { tr: 1, tc: 4, ty: 3, wx: 16, subgroups: false },
      ]) {
        const relu = fwd.y.map((v) => Math.max(v, 0));
        expectClose(await g.readF32(conv2d(g, tx, tw, tb, { padding, rowTile, relu: true })), relu);
        expectClose(await g.readF32(conv2dBackwardInput(g, tdy, tw, xShape, { padding, rowTile })), dxRef);
      }
      // Weight gradient: few channels take the row kernel by default; blocks that overhang C, O and OW; the
      // tiled kernel with 16 rows shared through subgroups (two broadcast loads per lane) where present.
      const dwRef = ref.conv2dBackwardWeight(x, xShape, dy, fwd.shape, wShape, p);
      for (const k of [
        {},
        { rowTile: { tcc: 2, to: 2, tc: 5, wx: 2 } },
        { tile: { tr: 16, tc: 2, wx: 8, wy: 1 } },
      ]) {
        expectClose(await g.readF32(conv2dBackwardWeight(g, tx, tdy, wShape, { ...p, ...k })), dwRef);
        const acc = g.tensor(wShape, dwRef);
        conv2dBackwardWeight(g, tx, tdy, wShape, { ...p, ...k, splits: 3, out: acc, accumulate: true });
        expectClose(
          await g.readF32(acc),
          dwRef.map((v) => 2 * v),
        );
      }
    });
  }

  it('rejects mismatched channels and kernels larger than the input', () => {
    const g = gpu();
    expect(() => conv2d(g, g.zeros([1, 2, 4, 4]), g.zeros([3, 1, 3, 3]), null)).toThrow(/2 input channels/);
    expect(() => conv2d(g, g.zeros([1, 1, 2, 2]), g.zeros([1, 1, 3, 3]), null)).toThrow(/fits/);
  });
});
