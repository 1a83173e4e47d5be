import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ref from '../src/reference/index.js';
import {
  backwardInputGeometry,
  conv2dBackwardInputCpu,
  conv2dBackwardInputDirectInto,
  conv2dForwardCpu,
  convGeometry,
  directBackwardInput,
  directGeometry,
  matmulPackedCpu,
  maxPool2dBackwardCpu,
  maxPool2dCpu,
  packConvBackwardInput,
  packConvBackwardInputDirect,
  packConvForward,
  packLinearBackwardInput,
  packLinearForward,
  packWinograd,
  RESERVED_BYTES,
  WasmCpu,
  winogradConv,
  winogradTile,
  winogradWeights,
  winogradWeightsOnCpu,
} from '../src/wasm/index.js';
import { expectClose, randn } from './helpers.js';

// [N, C, H, W, O, K, stride, padding]: as the WGSL conv tests, plus columns that are not a multiple of 8
// and rows that are not a multiple of 4.
const convCases: Array<[number, number, number, number, number, number, number, number]> = [
  [1, 1, 5, 5, 1, 1, 1, 0],
  [1, 3, 7, 9, 5, 3, 1, 1],
  [2, 4, 9, 8, 6, 3, 2, 1],
  [3, 5, 6, 7, 37, 1, 2, 0],
  [2, 19, 11, 10, 3, 5, 1, 2],
  [2, 13, 9, 9, 4, 3, 1, 0],
  // Winograd's edges: odd planes (a last tile half outside), rows of tiles not a multiple of 4, padding 2.
  [2, 5, 7, 11, 6, 3, 1, 1],
  [3, 4, 10, 18, 5, 3, 1, 2],
  [1, 17, 13, 9, 9, 3, 1, 1],
  [3, 1, 28, 28, 32, 3, 1, 1],
  // The small CNN's middle layer at batch 8: many panels per thread.
  [8, 16, 14, 14, 32, 3, 1, 1],
];

/**
 * Runs `op` and checks that it wrote nothing below `mark` (the weights and inputs allocated before it), past
 * the control block and the throw-away lines (RESERVED_BYTES).
 */
function expectNoStrayWrites<T>(cpu: WasmCpu, op: () => T): T {
  const end = cpu.mark() / 4;
  const before = cpu.f32.slice(RESERVED_BYTES / 4, end);
  const out = op();
  const after = cpu.f32.subarray(RESERVED_BYTES / 4, end);
  let changed = 0;
  for (let i = 0; i < before.length; i++) if (!Object.is(before[i], after[i])) changed++;
  expect(changed, 'floats changed below the stack mark').toBe(0);
  return out;
}

describe('winogradTile', () => {
  it("takes F(4x4, 3x3) where its whole tiles need under 0.9 of F(2x2, 3x3)'s products (square planes from 7x7 on)", () => {
    for (const [OH, OW, tile] of [
      [1, 1, 2],
      [4, 4, 4],
      [5, 5, 2],
      [6, 6, 2],
      [6, 28, 4],
      [7, 7, 4],
      [8, 8, 4],
      [14, 14, 4],
      [224, 224, 4],
      [7, 6, 4],
      [3, 224, 4],
      [2, 224, 2],
    ] as const) {
      expect(winogradTile({ OH, OW }), `${OH}x${OW}`).toBe(tile);
    }
  });
});

// 3 threads on this 2-core machine: more threads than cores, and a count that splits nothing evenly.
for (const threads of [1, 2, 3]) {
  describe(`WebAssembly CPU ops, ${threads} thread(s)`, () => {
    let cpu: WasmCpu;
    beforeAll(async () => {
      cpu = await WasmCpu.create({ threads });
    });
    afterAll(() => cpu.destroy());
    const rng = new ref.SeededRandom(11 + threads);

    it('winograd4_weights gives the bits of the JavaScript transform (forward and flipped, rows not a multiple of 4)', () => {
      for (const [O, C] of [
        [1, 1],
        [5, 3],
        [32, 1],
        [37, 19],
        [64, 128],
      ]) {
        const w = Float32Array.from(randn(rng, O * C * 9));
        w[0] = 0; // -0 and +0 where the kernel is 0
        w[1] = 1e-40; // a subnormal
        const mark = cpu.mark();
        const src = cpu.upload(w);
        for (const flipped of [false, true]) {
          const want = winogradWeights(w, O, C, flipped, 4);
          const out = cpu.alloc(want.data.length);
          cpu.f32.fill(Number.NaN, out.byteOffset / 4, out.byteOffset / 4 + want.data.length);
          winogradWeightsOnCpu(cpu, src.byteOffset, O, C, flipped, out.byteOffset / 4, 4);
          const got = cpu.read(out);
          let differ = 0;
          for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want.data[i])) differ++;
          expect(differ, `O ${O} C ${C} flipped ${flipped}: elements that differ`).toBe(0);
        }
        cpu.reset(mark);
      }
    });

    for (const [N, C, H, W, O, K, stride, padding] of convCases) {
      it(`conv2d x [${N},${C},${H},${W}] w [${O},${C},${K},${K}] stride ${stride} padding ${padding}`, () => {
        const p = { stride, padding };
        const x = randn(rng, N * C * H * W);
        const w = randn(rng, O * C * K * K);
        const b = randn(rng, O);
        const xShape = [N, C, H, W];
        const wShape = [O, C, K, K];
        const fwd = ref.conv2dForward(x, xShape, w, wShape, b, p);
        const g = convGeometry(xShape, O, K, K, stride, padding);
        const wf = packConvForward(cpu, w, O, C * K * K);
        const mark = cpu.mark();
        const tx = cpu.upload(Float32Array.from(x));
        const tb = cpu.upload(Float32Array.from(b));
        for (const relu of [false, true]) {
          const y = expectNoStrayWrites(cpu, () => conv2dForwardCpu(cpu, tx, g, wf, tb, relu));
          expectClose(cpu.read(y), relu ? ref.relu(fwd.y) : fwd.y);
        }
        expectClose(
          cpu.read(conv2dForwardCpu(cpu, tx, g, wf, null, false)),
          ref.conv2dForward(x, xShape, w, wShape, null, p).y,
        );
        const dy = randn(rng, fwd.y.length);
        const wt = packConvBackwardInput(cpu, w, O, C * K * K);
        const tdy = cpu.upload(Float32Array.from(dy));
        const dx = expectNoStrayWrites(cpu, () => conv2dBackwardInputCpu(cpu, tdy, g, wt));
        const dxWant = ref.conv2dBackwardInput(dy, fwd.shape, w, wShape, xShape, p);
        expectClose(cpu.read(dx), dxWant);
        // Stride 1, padding below the kernel: the input gradient as a convolution of dy (the engine's path).
        expect(directBackwardInput(g)).toBe(stride === 1 && padding < K);
        if (directBackwardInput(g)) {
          const wd = packConvBackwardInputDirect(cpu, w, O, C, K, K);
          const dxd = expectNoStrayWrites(cpu, () => {
            const r = cpu.alloc(N * C * H * W);
            conv2dBackwardInputDirectInto(cpu, tdy, g, wd, r);
            return r;
          });
          expectClose(cpu.read(dxd), dxWant);
          // In place: dx in dy's memory (when it fits there) gives the same bits.
          if (dy.length >= N * C * H * W) {
            const both = cpu.upload(Float32Array.from(dy));
            conv2dBackwardInputDirectInto(cpu, both, g, wd, {
              byteOffset: both.byteOffset,
              floats: N * C * H * W,
            });
            expect(cpu.read({ byteOffset: both.byteOffset, floats: N * C * H * W })).toEqual(cpu.read(dxd));
          }
        }
        // 3x3 stride 1: Winograd F(2x2, 3x3) and F(4x4, 3x3), forward (bias, ReLU) and input gradient (the
        // engine's path from WINOGRAD_MIN_CHANNELS input channels; here at every channel count).
        for (const tile of K === 3 && stride === 1 ? ([2, 4] as const) : []) {
          const d = directGeometry(g);
          const u = packWinograd(cpu, w, O, C, false, tile);
          for (const relu of [false, true]) {
            const y = expectNoStrayWrites(cpu, () => {
              const r = cpu.alloc(fwd.y.length);
              winogradConv(cpu, tx, d, u, tb, relu, r, tile);
              return r;
            });
            expectClose(cpu.read(y), relu ? ref.relu(fwd.y) : fwd.y);
          }
          const ut = packWinograd(cpu, w, O, C, true, tile);
          const dxw = expectNoStrayWrites(cpu, () => {
            const r = cpu.alloc(N * C * H * W);
            winogradConv(cpu, tdy, backwardInputGeometry(g), ut, null, false, r, tile);
            return r;
          });
          expectClose(cpu.read(dxw), dxWant);
        }
        cpu.reset(mark);
      });
    }

    for (const [n, In, Out] of [
      [1, 1, 1],
      [5, 13, 9],
      [100, 1152, 512],
      [7, 512, 64],
    ]) {
      it(`linear x [${n},${In}] w [${Out},${In}] and its input gradient`, () => {
        const x = randn(rng, n * In);
        const w = randn(rng, Out * In);
        const b = randn(rng, Out);
        const want = ref.linearForward(x, [n, In], w, [Out, In], b);
        const wf = packLinearForward(cpu, w, Out, In);
        const tx = cpu.upload(Float32Array.from(x));
        const tb = cpu.upload(Float32Array.from(b));
        expectClose(cpu.read(matmulPackedCpu(cpu, tx, n, wf, tb, false)), want);
        expectClose(cpu.read(matmulPackedCpu(cpu, tx, n, wf, tb, true)), ref.relu(want));
        const dy = randn(rng, n * Out);
        const wb = packLinearBackwardInput(cpu, w, Out, In);
        expectClose(
          cpu.read(matmulPackedCpu(cpu, cpu.upload(Float32Array.from(dy)), n, wb, null, false)),
          ref.linearBackwardInput(dy, [n, Out], w, [Out, In]),
        );
      });
    }

    it('max-pool forward, argmax and backward (with and without the ReLU gate) match the reference', () => {
      for (const [N, C, H, W, k, s] of [
        [2, 3, 7, 7, 2, 2],
        // 2x2 windows four at a time (OW = 10: two groups of 4 and 2 alone), odd W.
        [2, 3, 10, 21, 2, 2],
        [1, 2, 9, 8, 3, 2],
        [2, 1, 6, 6, 3, 1],
      ]) {
        const x = randn(rng, N * C * H * W).map((v, i) => (i % 7 === 0 ? -Math.abs(v) : v));
        const want = ref.maxPool2dForward(x, [N, C, H, W], { kernel: k, stride: s });
        const got = maxPool2dCpu(cpu, cpu.upload(Float32Array.from(x)), [N, C, H, W], k, s);
        expect(got.shape).toEqual(want.shape);
        expect(
          Array.from(
            cpu.i32.subarray(got.argmax.byteOffset / 4, got.argmax.byteOffset / 4 + got.argmax.floats),
          ),
        ).toEqual(Array.from(want.argmax));
        expectClose(cpu.read(got.y), want.y);
        const dy = cpu.upload(Float32Array.from(randn(rng, want.y.length)));
        const dy64 = Float64Array.from(cpu.read(dy));
        expectClose(
          cpu.read(maxPool2dBackwardCpu(cpu, dy, got.argmax, want.shape, [N, C, H, W])),
          ref.maxPool2dBackward(dy64, want.argmax, want.shape, [N, C, H, W]),
        );
        const yRelu = ref.relu(want.y);
        expectClose(
          cpu.read(
            maxPool2dBackwardCpu(
              cpu,
              dy,
              got.argmax,
              want.shape,
              [N, C, H, W],
              cpu.upload(Float32Array.from(yRelu)),
            ),
          ),
          ref.maxPool2dReluBackward(dy64, yRelu, want.argmax, want.shape, [N, C, H, W]),
        );
      }
    });
  });
}

describe('WebAssembly CPU engine', () => {
  it('rejects a thread count outside 1 to 16', async () => {
    await expect(WasmCpu.create({ threads: 0 })).rejects.toThrow(
      /threads must be an integer from 1 to 16, found 0/,
    );
    await expect(WasmCpu.create({ threads: 17 })).rejects.toThrow(/from 1 to 16, found 17/);
    await expect(WasmCpu.create({ threads: 1.5 })).rejects.toThrow(/found 1.5/);
  });
});
