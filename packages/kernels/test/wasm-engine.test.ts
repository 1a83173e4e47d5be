// The WebAssembly engine (src/wasm/engine.ts): every op of the Engine interface against the float64
// references on random, non-aligned shapes; its heap (reuse, views, released and foreign tensors, no stray
// writes); the packed-weight cache's invalidation; batch invariance (an object's bits do not depend on its
// batch) and thread invariance (nor on the thread count); and a finite-difference check of the LSTM's BPTT.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineMatmulOptions, EngineTensor } from '../src/engine.js';
import { KernelError } from '../src/errors.js';
import { conv2dGeometry } from '../src/ops/conv2d.js';
import * as ref from '../src/reference/index.js';
import { conv2dBackwardWeightInto, heapSizeClass, WasmEngine, type WasmTensor } from '../src/wasm/index.js';
import { expectClose, expectSameBits, f32, randn } from './helpers.js';

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function up(e: WasmEngine, shape: readonly number[], data: ArrayLike<number>): WasmTensor {
  return e.tensor(shape, Float32Array.from(data));
}

async function read64(e: WasmEngine, t: EngineTensor): Promise<Float64Array> {
  return Float64Array.from(await e.read(t));
}

function useEngine(threads: number, options: { gatherBFloats?: number } = {}): () => WasmEngine {
  let engine: WasmEngine | null = null;
  beforeAll(async () => {
    engine = await WasmEngine.create({ threads, ...options });
  });
  afterAll(() => engine?.destroy());
  return () => {
    if (!engine) throw new Error('engine not initialised');
    return engine;
  };
}

/** The float64 meaning of every EngineMatmulOptions: C = alpha * op(A) op(B) (+ bias) (+ C), ReLU. */
function refMatmul(
  a: Float64Array,
  b: Float64Array,
  c: Float64Array,
  M: number,
  K: number,
  N: number,
  o: Omit<EngineMatmulOptions, 'bias' | 'out'> & { bias?: Float64Array },
): Float64Array {
  const out = c.slice();
  const batch = o.batch ?? 1;
  const lda = o.lda ?? (o.transA ? M : K);
  const ldb = o.ldb ?? (o.transB ? K : N);
  const ldc = o.ldc ?? N;
  const sA = o.strideA ?? M * K;
  const sB = o.strideB ?? K * N;
  const sC = o.strideC ?? M * N;
  const alpha = o.alpha ?? 1;
  for (let bi = 0; bi < batch; bi++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const av = a[(o.aOffset ?? 0) + bi * sA + (o.transA ? k * lda + m : m * lda + k)];
          const bv = b[(o.bOffset ?? 0) + bi * sB + (o.transB ? n * ldb + k : k * ldb + n)];
          acc += av * bv;
        }
        const at = (o.cOffset ?? 0) + bi * sC + m * ldc + n;
        let v = alpha * acc;
        if (o.bias) v += o.bias[(o.biasAxis ?? 'col') === 'col' ? n : m];
        if (o.accumulate) v += c[at];
        out[at] = o.relu ? Math.max(v, 0) : v;
      }
    }
  }
  return out;
}

// [N, C, H, W, O, K, stride, padding]: non-aligned columns (N*OH*OW not a multiple of 8), rows (O, C*K*K not
// multiples of 4 or 8), strides and paddings.
const convCases: Array<[number, number, number, number, number, number, number, number]> = [
  [1, 1, 5, 5, 1, 1, 1, 0],
  [2, 3, 7, 9, 5, 3, 1, 1],
  [2, 4, 9, 8, 6, 3, 2, 1],
  [3, 5, 6, 7, 37, 1, 2, 0],
  [2, 7, 11, 10, 3, 5, 1, 2],
  [3, 1, 13, 13, 9, 3, 1, 1],
  // Winograd F(2x2, 3x3) (C O / (C + O) >= 16, forward and input gradient): odd planes, padding 0 and 2.
  [2, 32, 7, 9, 36, 3, 1, 1],
  [3, 33, 10, 6, 32, 3, 1, 0],
  [2, 34, 5, 8, 33, 3, 1, 2],
];

describe('WebAssembly engine ops against the float64 references', () => {
  const engine = useEngine(2);

  it('describes itself', () => {
    const e = engine();
    expect(e.kind).toBe('wasm');
    expect(e.software).toBe(true);
    expect(e.description).toBe('WebAssembly SIMD, 2 CPU threads');
    expect(e.maxTensorBytes).toBeGreaterThan(2 ** 30);
    expect(e.memoryBytesLeft).toBeLessThanOrEqual(e.maxTensorBytes);
  });

  for (const [N, C, H, W, O, K, stride, padding] of convCases) {
    it(`conv2d, its input and weight gradients: x [${N},${C},${H},${W}] w [${O},${C},${K},${K}] s${stride} p${padding}`, async () => {
      const e = engine();
      const rng = new ref.SeededRandom(N * 1000 + C * 100 + O);
      const p = { stride, padding };
      const xShape = [N, C, H, W];
      const wShape = [O, C, K, K];
      const x = randn(rng, sizeOf(xShape));
      const w = randn(rng, sizeOf(wShape));
      const b = randn(rng, O);
      const tx = up(e, xShape, x);
      const tw = up(e, wShape, w);
      const tb = up(e, [O], b);
      const want = ref.conv2dForward(x, xShape, w, wShape, b, p);
      // Three calls: packed per call, then kept with the weight, then reused.
      for (let i = 0; i < 3; i++) {
        const y = e.conv2d(tx, tw, tb, p);
        expect(y.shape).toEqual(want.shape);
        expectClose(await e.read(y), want.y);
        y.release();
      }
      expectClose(await e.read(e.conv2d(tx, tw, tb, { ...p, relu: true })), ref.relu(want.y));
      const out = e.empty(want.shape);
      expect(e.conv2d(tx, tw, null, { ...p, out })).toBe(out);
      expectClose(await e.read(out), ref.conv2dForward(x, xShape, w, wShape, null, p).y);

      const dy = randn(rng, want.y.length);
      const tdy = up(e, want.shape, dy);
      const wantDx = ref.conv2dBackwardInput(dy, want.shape, w, wShape, xShape, p);
      for (let i = 0; i < 2; i++) {
        const dx = e.conv2dBackwardInput(tdy, tw, xShape, p);
        expect(dx.shape).toEqual(xShape);
        expectClose(await e.read(dx), wantDx);
      }
      const dxOut = e.empty(xShape);
      expect(e.conv2dBackwardInput(tdy, tw, xShape, { ...p, out: dxOut })).toBe(dxOut);
      expectClose(await e.read(dxOut), wantDx);

      const wantDw = ref.conv2dBackwardWeight(x, xShape, dy, want.shape, wShape, p);
      const dw = e.conv2dBackwardWeight(tx, tdy, wShape, p);
      expect(dw.shape).toEqual(wShape);
      expectClose(await e.read(dw), wantDw);
      const acc = up(e, wShape, w);
      expect(e.conv2dBackwardWeight(tx, tdy, wShape, { ...p, out: acc, accumulate: true })).toBe(acc);
      expectClose(
        await e.read(acc),
        wantDw.map((v, i) => v + w[i]),
      );
      for (const t of [tx, tw, tb, out, tdy, dxOut, dw, acc]) t.release();
    });
  }

  // Pieces of the reduction: one per image (20 rows of 21), and two per image (50 rows of 51, K % 4 = 2).
  for (const [xShape, wShape, dyShape, p] of [
    [[3, 3, 20, 21], [10, 3, 5, 5], [3, 10, 20, 21], { stride: 1, padding: 2 }],
    [[2, 2, 100, 51], [5, 2, 3, 3], [2, 5, 100, 51], { stride: 1, padding: 1 }],
  ] as Array<[number[], number[], number[], { stride: number; padding: number }]>) {
    it(`conv2dBackwardWeight in pieces of the reduction matches the reference: x [${xShape}] w [${wShape}]`, async () => {
      const e = engine();
      const rng = new ref.SeededRandom(77);
      const x = randn(rng, sizeOf(xShape));
      const dy = randn(rng, sizeOf(dyShape));
      const w0 = randn(rng, sizeOf(wShape));
      const want = ref.conv2dBackwardWeight(x, xShape, dy, dyShape, wShape, p);
      const tx = up(e, xShape, x);
      const tdy = up(e, dyShape, dy);
      const g = conv2dGeometry('test', xShape, wShape, p);
      const whole = await e.read(e.conv2dBackwardWeight(tx, tdy, wShape, p));
      expectClose(whole, want);
      for (const accumulate of [false, true]) {
        const dw = up(e, wShape, w0);
        conv2dBackwardWeightInto(e.cpu, tx.region, tdy.region, g, dw.region, accumulate);
        expectClose(await e.read(dw), accumulate ? want.map((v, i) => v + w0[i]) : want);
      }
    });
  }

  // gatherBFloats 0: every B operand read in place by conv_gemm (the path of large weights), which must give
  // the same bits as packed panels.
  const gathering = useEngine(2, { gatherBFloats: 0 });
  it('matmul with every option: transposes, offsets, leading dimensions, batches, alpha, bias, ReLU, accumulate', async () => {
    const results: Float64Array[][] = [];
    for (const e of [engine(), gathering()]) results.push(await matmulCases(e));
    for (const [i, v] of results[1].entries())
      expectSameBits(Float32Array.from(v), Float32Array.from(results[0][i]), `case ${i}`);
  });

  async function matmulCases(e: WasmEngine): Promise<Float64Array[]> {
    const out: Float64Array[] = [];
    const rng = new ref.SeededRandom(5);
    type Case = [number, number, number, Omit<EngineMatmulOptions, 'bias' | 'out'> & { bias?: boolean }];
    const cases: Case[] = [
      [1, 1, 1, {}],
      [5, 13, 9, {}],
      [7, 3, 5, { transA: true }],
      [6, 11, 10, { transB: true }],
      [9, 4, 17, { transA: true, transB: true }],
      [33, 20, 3, { bias: true, relu: true }], // N tiny, M large: the operands swap sides
      [3, 8, 40, { bias: true, biasAxis: 'row' }],
      [35, 9, 2, { bias: true, biasAxis: 'row', transB: true }], // swapped with a row bias
      [4, 6, 5, { alpha: -0.75 }],
      [5, 7, 6, { accumulate: true }],
      [40, 5, 3, { accumulate: true, alpha: 2, bias: true, relu: true }], // JS epilogue, swapped
      [5, 6, 7, { aOffset: 3, bOffset: 5, cOffset: 2, lda: 9, ldb: 11, ldc: 10 }],
      [4, 5, 3, { transA: true, transB: true, aOffset: 1, bOffset: 2, lda: 6, ldb: 7, ldc: 5, cOffset: 4 }],
      [3, 4, 5, { batch: 3 }],
      [3, 4, 5, { batch: 2, strideA: 20, strideB: 25, strideC: 17, transB: true, bias: true }],
      [2, 3, 4, { batch: 4, strideA: 0, accumulate: true, relu: true }], // A shared by the batch
      [100, 64, 48, { transB: true, bias: true, relu: true }],
    ];
    for (const [M, K, N, o] of cases) {
      const batch = o.batch ?? 1;
      const lda = o.lda ?? (o.transA ? M : K);
      const ldb = o.ldb ?? (o.transB ? K : N);
      const ldc = o.ldc ?? N;
      const sA = o.strideA ?? M * K;
      const sB = o.strideB ?? K * N;
      const sC = o.strideC ?? M * N;
      const aSize = (o.aOffset ?? 0) + (batch - 1) * sA + (o.transA ? (K - 1) * lda + M : (M - 1) * lda + K);
      const bSize = (o.bOffset ?? 0) + (batch - 1) * sB + (o.transB ? (N - 1) * ldb + K : (K - 1) * ldb + N);
      const cSize = Math.max((o.cOffset ?? 0) + (batch - 1) * sC + (M - 1) * ldc + N, batch * M * N);
      const a = randn(rng, aSize);
      const b = randn(rng, bSize);
      const bias = o.bias ? randn(rng, (o.biasAxis ?? 'col') === 'col' ? N : M) : undefined;
      const useOut =
        o.accumulate || o.cOffset !== undefined || o.ldc !== undefined || o.strideC !== undefined;
      const c0 = useOut ? randn(rng, cSize) : new Float64Array(batch * M * N);
      const want = refMatmul(a, b, c0, M, K, N, { ...o, bias });
      const ta = up(e, [aSize], a);
      const tb = up(e, [bSize], b);
      const tc = useOut ? up(e, [cSize], c0) : undefined;
      const options: EngineMatmulOptions = {
        ...o,
        bias: bias ? up(e, [bias.length], bias) : undefined,
        out: tc,
      };
      const name = `${M}x${K}x${N} ${JSON.stringify(o)}`;
      const got = e.matmul(ta, tb, M, K, N, options);
      if (tc) expect(got, name).toBe(tc);
      else expect(got.shape, name).toEqual(batch > 1 ? [batch, M, N] : [M, N]);
      const values = await read64(e, got);
      out.push(values);
      // Elements of C outside the product must be untouched (compared exactly).
      expectClose(values, want, 1e-5);
      if (tc) {
        for (let i = 0; i < cSize; i++) {
          if (want[i] === c0[i])
            expect(values[i], `${name}: element ${i} outside C`).toBe(Math.fround(c0[i]));
        }
      }
    }
    return out;
  }

  it('matmul refuses bad sizes and accumulate without out', () => {
    const e = engine();
    const a = e.zeros([3, 4]);
    expect(() => e.matmul(a, e.zeros([4, 2]), 3, 4, 2, { accumulate: true })).toThrow(KernelError);
    expect(() => e.matmul(a, e.zeros([4, 2]), 3, 4, 3)).toThrow(/B with at least 12 elements/);
    expect(() => e.matmul(a, e.zeros([4, 2]), 0, 4, 2)).toThrow(KernelError);
    expect(() => e.matmul(a, e.zeros([4, 2]), 3, 4, 2, { out: e.zeros([5]) })).toThrow(/C with at least 6/);
  });

  it('relu keeps NaN; reluBackward passes dy where y > 0', async () => {
    const e = engine();
    const rng = new ref.SeededRandom(6);
    const x = randn(rng, 1001);
    x[3] = Number.NaN;
    x[4] = 0;
    const y = await e.read(e.relu(up(e, [1001], x)));
    expect(Number.isNaN(y[3])).toBe(true);
    const want = ref.relu(x);
    for (let i = 0; i < x.length; i++) if (i !== 3) expect(y[i]).toBe(Math.fround(want[i]));
    const dy = randn(rng, 1001);
    const yv = ref.relu(randn(rng, 1001));
    const dx = await e.read(e.reluBackward(up(e, [1001], dy), up(e, [1001], yv)));
    expectSameBits(dx, Float32Array.from(ref.reluBackward(dy, yv)), 'reluBackward');
    const out = e.empty([7, 11, 13]);
    expect(e.relu(up(e, [1001], dy), out)).toBe(out);
  });

  for (const [shape, kernel, stride] of [
    [[2, 3, 7, 7], 2, 2],
    [[1, 2, 9, 8], 3, 2],
    [[2, 1, 6, 6], 3, 1],
    [[3, 5, 5, 9], 2, undefined],
    // 2x2 windows four at a time and one at a time in a row (OW = 9), NaNs in several lanes.
    [[2, 3, 8, 19], 2, 2],
  ] as Array<[number[], number, number | undefined]>) {
    it(`maxPool2d [${shape}] kernel ${kernel} stride ${stride ?? 'default'}: values, argmax, backward`, async () => {
      const e = engine();
      const rng = new ref.SeededRandom(sizeOf(shape));
      const params = { kernel, stride: stride ?? kernel };
      // Ties (rounded values) and a NaN: the first maximum wins, a NaN wins.
      const x = randn(rng, sizeOf(shape)).map((v) => Math.round(v * 2) / 2);
      x[5] = Number.NaN;
      if (x.length > 200) for (const i of [40, 41, 59, 98, 117, 155]) x[i] = Number.NaN;
      const want = ref.maxPool2dForward(x, shape, params);
      const o = stride === undefined ? { kernel } : params;
      const { y, argmax } = e.maxPool2d(up(e, shape, x), o);
      expect(y.shape).toEqual(want.shape);
      expect(argmax.dtype).toBe('u32');
      expect(Array.from(await e.readU32(argmax))).toEqual(Array.from(want.argmax));
      const yv = await e.read(y);
      for (let i = 0; i < yv.length; i++) {
        if (Number.isNaN(want.y[i])) expect(Number.isNaN(yv[i])).toBe(true);
        else expect(yv[i]).toBe(want.y[i]);
      }
      const dy = randn(rng, want.y.length);
      const tdy = up(e, want.shape, dy);
      expectClose(
        await e.read(e.maxPool2dBackward(tdy, argmax, shape, o)),
        ref.maxPool2dBackward(dy, want.argmax, want.shape, shape),
        1e-6,
      );
      const yr = ref.relu(want.y.map((v) => (Number.isNaN(v) ? 1 : v)));
      expectClose(
        await e.read(e.maxPool2dBackward(tdy, argmax, shape, { ...o, reluOutput: up(e, want.shape, yr) })),
        ref.maxPool2dReluBackward(dy, yr, want.argmax, want.shape, shape),
        1e-6,
      );
      expect(() => e.maxPool2dBackward(tdy, y, shape, o)).toThrow(/argmax must be a u32 tensor/);
      await expect(e.read(argmax)).rejects.toThrow(KernelError);
    });
  }

  it('dropout drops exactly the reference mask (pcgHash of seed and index) and scales by 1 / (1 - p)', async () => {
    const e = engine();
    const rng = new ref.SeededRandom(11);
    for (const [n, p, seed] of [
      [1, 0.5, 1],
      [1000, 0.5, 7],
      [4099, 0.2, 123456789],
      [777, 0, 3],
      [513, 0.9, -5],
    ]) {
      const x = f32(rng.uniformArray(n, -2, 2));
      const want = ref.dropout(x, p, seed);
      const got = await e.read(e.dropout(up(e, [n], x), { p, seed }));
      for (let i = 0; i < n; i++) expect(got[i] === 0, `element ${i}`).toBe(want[i] === 0);
      // Kept elements: x * f32(1 / (1 - p)) rounded to f32, exactly.
      const scale = Math.fround(1 / (1 - p));
      for (let i = 0; i < n; i++) if (want[i] !== 0) expect(got[i]).toBe(Math.fround(x[i] * scale));
      const out = e.empty([n]);
      expect(e.dropoutBackward(up(e, [n], x), { p, seed, out })).toBe(out);
      expectSameBits(await e.read(out), got, 'backward = the same map');
    }
    expect(() => e.dropout(e.zeros([3]), { p: 1, seed: 1 })).toThrow(/p must be in \[0, 1\)/);
    expect(() => e.dropout(e.zeros([3]), { p: 0.5, seed: 1.5 })).toThrow(/seed must be an integer/);
  });

  it('channelAffine and sumChannels', async () => {
    const e = engine();
    const rng = new ref.SeededRandom(12);
    for (const [rows, channels, plane] of [
      [2, 3, 35],
      [7, 1, 50],
      [6, 2, 1],
    ]) {
      const x = f32(rng.uniformArray(rows * channels * plane, 0, 1));
      const scale = Array.from({ length: channels }, () => rng.uniform(0.5, 5));
      const shift = Array.from({ length: channels }, () => rng.uniform(-2, 2));
      const y = e.channelAffine(up(e, [rows, channels * plane], x), {
        channels,
        planeSize: plane,
        scale,
        shift,
      });
      expectClose(await e.read(y), ref.channelAffine(x, channels, plane, scale, shift), 1e-6);
      expectClose(
        await e.read(e.sumChannels(up(e, [rows, channels, plane], x))),
        ref.sumChannels(x, rows, channels, plane),
        1e-6,
      );
    }
    const x = randn(rng, 5 * 6 * 9 * 11);
    const s = e.sumChannels(up(e, [5, 6, 9, 11], x));
    expect(s.shape).toEqual([6]);
    expectClose(await e.read(s), ref.sumChannels(x, 5, 6, 99), 1e-6);
    expect(() =>
      e.channelAffine(e.zeros([10]), { channels: 3, planeSize: 2, scale: [1, 1, 1], shift: [0, 0, 0] }),
    ).toThrow(/not rows of channels/);
  });

  it('axpy, sgdMomentumStep, tanhScaled and its backward', async () => {
    const e = engine();
    const rng = new ref.SeededRandom(13);
    const n = 1234;
    const x = randn(rng, n);
    const y = randn(rng, n);
    const ty = up(e, [n], y);
    expect(e.axpy(-0.3, up(e, [n], x), ty)).toBe(ty);
    expectClose(await e.read(ty), ref.axpy(-0.3, x, y), 1e-6);
    expect(() => e.axpy(1, ty, ty)).toThrow(/different tensors/);

    const w = randn(rng, n);
    const g = randn(rng, n);
    const v = randn(rng, n);
    const [tw, tg, tv] = [w, g, v].map((d) => up(e, [n], d));
    const params = { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 };
    e.sgdMomentumStep(tw, tg, tv, params);
    const want = ref.sgdMomentumStep(w, g, v, params);
    expectClose(await e.read(tw), want.w, 1e-6);
    expectClose(await e.read(tv), want.v, 1e-6);

    for (const alpha of [0.1, 1, 3.7, 30]) {
      const t = f32(rng.uniformArray(n, -4, 4));
      t[0] = 1e-9;
      t[1] = -40;
      const tt = up(e, [n], t);
      expectClose(await e.read(e.tanhScaled(tt, alpha)), ref.tanhScaled(t, alpha), 1e-6);
      const dy = randn(rng, n);
      expectClose(
        await e.read(e.tanhScaledBackward(up(e, [n], dy), tt, alpha)),
        ref.tanhScaledBackward(dy, t, alpha),
        1e-5,
      );
    }
    // Saturated: 1 - tanh^2 is 4e / (1 + e)^2, tiny but nonzero, never NaN.
    const big = await e.read(e.tanhScaledBackward(up(e, [2], [1, 1]), up(e, [2], [30, -30]), 1));
    for (const v of big) {
      expect(v).toBeGreaterThan(0);
      expect(v).toBeLessThan(1e-20);
    }
  });

  it('attackStep (l2, sign, raw), attackProject, and attackStepProject bit-identical to the three apart', async () => {
    const e = engine();
    const rng = new ref.SeededRandom(14);
    const rows = 5;
    const channels = 3;
    const plane = 37;
    const cols = channels * plane;
    const n = rows * cols;
    const delta = f32(rng.uniformArray(n, -0.05, 0.05));
    const g = randn(rng, n);
    // One row of tiny gradients (a saturated tanh) and one all-zero row (left unchanged).
    for (let i = cols; i < 2 * cols; i++) g[i] *= 1e-30;
    g.fill(0, 3 * cols, 4 * cols);
    const xn = f32(rng.uniformArray(n, -2, 2));
    const lo = f32([-2.1, -2, -1.8]);
    const hi = f32([2.2, 2.5, 1.9]);
    const eps = [0.03, 0.04, 0.05];
    const lr = 0.01;
    for (const mode of ['l2', 'sign', 'raw'] as const) {
      const td = up(e, [rows, cols], delta);
      e.attackStep(td, up(e, [rows, cols], g), rows, { mode, lr });
      expectClose(await e.read(td), ref.attackStep(delta, g, rows, cols, { mode, lr }), 1e-6);
    }
    const td = up(e, [rows, cols], delta);
    e.attackProject(td, up(e, [rows, cols], xn), {
      channels,
      planeSize: plane,
      lo: Array.from(lo),
      hi: Array.from(hi),
      eps,
    });
    expectClose(await e.read(td), ref.attackProject(delta, xn, rows, channels, plane, lo, hi, eps), 1e-5);

    const opts = { channels, planeSize: plane, lo: Array.from(lo), hi: Array.from(hi), eps, lr };
    const tg = up(e, [rows, cols], g);
    const txn = up(e, [rows, cols], xn);
    // Apart: step, project, xAdv = xn + delta (copy + axpy).
    const d1 = up(e, [rows, cols], delta);
    e.attackStep(d1, tg, rows, { mode: 'l2', lr });
    e.attackProject(d1, txn, opts);
    const a1 = e.empty([rows, cols]);
    e.copy(txn, a1);
    e.axpy(1, d1, a1);
    // Fused.
    const d2 = up(e, [rows, cols], delta);
    const a2 = e.empty([rows, cols]);
    e.attackStepProject(d2, tg, txn, a2, rows, opts);
    expectSameBits(await e.read(d2), await e.read(d1), 'delta');
    expectSameBits(await e.read(a2), await e.read(a1), 'xAdv');
    const want = ref.attackStepProject(delta, g, xn, rows, channels, plane, lo, hi, eps, lr);
    expectClose(await e.read(d2), want.delta, 1e-5);
    expectClose(await e.read(a2), want.xAdv, 1e-6);
    // The tiny row moved by lr (normalised), the zero row only by the projection.
    const d = await e.read(d2);
    expect(d.subarray(cols, 2 * cols).some((v, i) => v !== Math.fround(delta[cols + i]))).toBe(true);
    expect(() => e.attackStepProject(d2, tg, txn, d2, rows, opts)).toThrow(/different tensors/);
    expect(() => e.attackStep(d2, tg, 4, { mode: 'l2', lr })).toThrow(/rows must be/);
  });
});

// ---- LSTM ------------------------------------------------------------------------------------------------

interface LstmCase {
  N: number;
  T: number;
  I: number;
  H: number;
  initial: boolean;
  dhAll: boolean;
  final: boolean;
  scale?: number;
}

const lstmCases: LstmCase[] = [
  { N: 1, T: 1, I: 1, H: 1, initial: false, dhAll: true, final: false },
  { N: 1, T: 1, I: 4, H: 3, initial: true, dhAll: true, final: true },
  { N: 3, T: 5, I: 7, H: 6, initial: true, dhAll: true, final: false },
  { N: 3, T: 5, I: 7, H: 6, initial: false, dhAll: false, final: false },
  { N: 2, T: 4, I: 5, H: 9, initial: false, dhAll: true, final: true },
  { N: 5, T: 3, I: 11, H: 17, initial: true, dhAll: true, final: false },
  { N: 9, T: 3, I: 3, H: 2, initial: true, dhAll: true, final: false }, // tiny H: products swap sides
  { N: 2, T: 3, I: 4, H: 3, initial: true, dhAll: true, final: true, scale: 40 },
];

interface LstmData {
  dims: ref.LstmDims;
  w: ref.LstmWeights;
  x: Float64Array;
  h0: Float64Array | null;
  c0: Float64Array | null;
  dh: Float64Array;
  dhT: Float64Array | null;
  dcT: Float64Array | null;
}

function lstmData(c: LstmCase, seed: number): LstmData {
  const rng = new ref.SeededRandom(seed);
  const { N, T, I, H } = c;
  const s = c.scale ?? 1;
  const data = (n: number, scale = 1) => f32(rng.uniformArray(n, -scale, scale));
  const w = {
    wIh: data(4 * H * I, 0.6 * s),
    wHh: data(4 * H * H, 0.6 * s),
    bIh: data(4 * H, 0.5),
    bHh: data(4 * H, 0.5),
  };
  const x = data(N * T * I, s);
  const h0 = c.initial ? data(N * H) : null;
  const c0 = c.initial ? data(N * H, 2) : null;
  const dh = data(N * T * H);
  if (!c.dhAll) for (let n = 0; n < N; n++) dh.fill(0, n * T * H, (n * T + T - 1) * H);
  return {
    dims: { N, T, I, H },
    w,
    x,
    h0,
    c0,
    dh,
    dhT: c.final ? data(N * H) : null,
    dcT: c.final ? data(N * H) : null,
  };
}

async function runLstm(e: WasmEngine, d: LstmData) {
  const { N, T, I, H } = d.dims;
  const w = {
    wIh: up(e, [4 * H, I], d.w.wIh),
    wHh: up(e, [4 * H, H], d.w.wHh),
    bIh: up(e, [4 * H], d.w.bIh),
    bHh: up(e, [4 * H], d.w.bHh),
  };
  const x = up(e, [N, T, I], d.x);
  const h0 = d.h0 ? up(e, [N, H], d.h0) : null;
  const c0 = d.c0 ? up(e, [1, N, H], d.c0) : null;
  const fwd = e.lstmForward(x, w, h0, c0);
  const back = e.lstmBackward(
    x,
    w,
    h0,
    c0,
    fwd,
    up(e, [N, T, H], d.dh),
    d.dhT ? up(e, [N, H], d.dhT) : null,
    d.dcT ? up(e, [N, H], d.dcT) : null,
  );
  const out: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries({ ...fwd, ...back })) out[k] = await e.read(t);
  return { out, fwd, back };
}

describe('WebAssembly engine LSTM', () => {
  const engine = useEngine(2);

  lstmCases.forEach((c, index) => {
    it(`forward and backward match the float64 reference: N=${c.N} T=${c.T} I=${c.I} H=${c.H}${c.initial ? ' h0/c0' : ''}${c.final ? ' dhT/dcT' : ''}${c.scale ? ` scale ${c.scale}` : ''}`, async () => {
      const e = engine();
      const d = lstmData(c, 1000 + index);
      const want = ref.lstmForward(d.x, d.dims, d.w, d.h0, d.c0);
      const grads = ref.lstmBackward(d.x, d.dims, d.w, d.h0, d.c0, want, d.dh, d.dhT, d.dcT);
      const { out, fwd, back } = await runLstm(e, d);
      const { N, T, I, H } = d.dims;
      expect(fwd.h.shape).toEqual([N, T, H]);
      expect(fwd.gates.shape).toEqual([N, T, 4 * H]);
      expect(back.dx.shape).toEqual([N, T, I]);
      expect(back.dWih.shape).toEqual([4 * H, I]);
      expect(back.dh0.shape).toEqual([N, H]);
      for (const k of ['h', 'c', 'gates', 'hT', 'cT'] as const) expectClose(out[k], want[k], 1e-5);
      for (const k of ['dx', 'dWih', 'dWhh', 'dbIh', 'dbHh', 'dh0', 'dc0'] as const)
        expectClose(out[k], grads[k], 1e-4);
    });
  });

  it('BPTT gradients agree with finite differences of the float64 forward', async () => {
    const e = engine();
    const c: LstmCase = { N: 2, T: 4, I: 3, H: 5, initial: true, dhAll: true, final: true };
    const d = lstmData(c, 4242);
    const { out } = await runLstm(e, d);
    // loss = <dh, h> + <dhT, hT> + <dcT, cT>: its gradients are what lstmBackward returns.
    const loss = (v: Partial<LstmData> & { w?: ref.LstmWeights }) => {
      const r = ref.lstmForward(v.x ?? d.x, d.dims, v.w ?? d.w, v.h0 ?? d.h0, v.c0 ?? d.c0);
      let s = 0;
      for (let i = 0; i < r.h.length; i++) s += d.dh[i] * r.h[i];
      for (let i = 0; i < r.hT.length; i++)
        s += (d.dhT as Float64Array)[i] * r.hT[i] + (d.dcT as Float64Array)[i] * r.cT[i];
      return s;
    };
    const rng = new ref.SeededRandom(9);
    const params: Array<[string, Float64Array, (p: Float64Array) => number]> = [
      ['dx', d.x, (p) => loss({ x: p })],
      ['dh0', d.h0 as Float64Array, (p) => loss({ h0: p })],
      ['dc0', d.c0 as Float64Array, (p) => loss({ c0: p })],
      ['dWih', d.w.wIh, (p) => loss({ w: { ...d.w, wIh: p } })],
      ['dWhh', d.w.wHh, (p) => loss({ w: { ...d.w, wHh: p } })],
      ['dbIh', d.w.bIh, (p) => loss({ w: { ...d.w, bIh: p } })],
      ['dbHh', d.w.bHh, (p) => loss({ w: { ...d.w, bHh: p } })],
    ];
    for (const [name, p, fn] of params) {
      for (let r = 0; r < 3; r++) {
        const u = rng.normalArray(p.length);
        const norm = Math.sqrt(u.reduce((s, v) => s + v * v, 0));
        const h = 1e-5;
        const plus = p.map((v, i) => v + (h * u[i]) / norm);
        const minus = p.map((v, i) => v - (h * u[i]) / norm);
        const numeric = (fn(plus) - fn(minus)) / (2 * h);
        let analytic = 0;
        for (let i = 0; i < p.length; i++) analytic += out[name][i] * (u[i] / norm);
        const err = Math.abs(numeric - analytic) / Math.max(Math.abs(numeric), Math.abs(analytic), 1e-3);
        expect(err, `${name}: numeric ${numeric} analytic ${analytic}`).toBeLessThan(1e-4);
      }
    }
  });
});

// ---- heap, views, errors, the packed-weight cache -------------------------------------------------------

describe('WebAssembly engine tensors and heap', () => {
  const engine = useEngine(2);

  it('size classes: 64-byte granules, within 1/8 of a power of two', () => {
    expect(heapSizeClass(0)).toBe(64);
    expect(heapSizeClass(1)).toBe(64);
    expect(heapSizeClass(64 * 8)).toBe(64 * 8);
    expect(heapSizeClass(64 * 9 + 1)).toBe(64 * 10);
    expect(heapSizeClass(64 * 17)).toBe(64 * 18);
    for (let bytes = 1; bytes < 2 ** 22; bytes = Math.ceil(bytes * 1.37) + 3) {
      const c = heapSizeClass(bytes);
      expect(c).toBeGreaterThanOrEqual(bytes);
      expect(c % 64).toBe(0);
      expect(c <= 64 * 8 || c <= bytes * 1.125 + 64).toBe(true);
    }
  });

  it('reuses released blocks, returns the top to the stack, counts memory', () => {
    const e = engine();
    const before = e.memoryBytesLeft;
    const a = e.zeros([1000]);
    const b = e.zeros([1000]);
    const c = e.zeros([10]);
    expect(e.memoryBytesLeft).toBeLessThan(before);
    const aAt = a.byteOffset;
    a.release();
    const a2 = e.zeros([990]); // the same size class
    expect(a2.byteOffset).toBe(aAt);
    for (const t of [a2, b, c]) t.release();
    expect(e.memoryBytesLeft).toBe(before);
    // Everything back on the stack: the next block starts where the first did.
    const d = e.zeros([5]);
    expect(d.byteOffset).toBe(aAt);
    d.release();
  });

  it('views share memory; releasing a view or the base frees the memory and retires every view', async () => {
    const e = engine();
    const t = up(
      e,
      [2, 3, 4],
      Array.from({ length: 24 }, (_, i) => i),
    );
    const v = t.reshape([6, 4]);
    const vv = v.reshape([24]);
    expect(v.shape).toEqual([6, 4]);
    expect(Array.from(await e.read(vv))).toEqual(Array.from({ length: 24 }, (_, i) => i));
    e.write(v, new Float32Array(24).fill(2));
    expect((await e.read(t))[5]).toBe(2);
    // A view released (the way model code hands out reshaped outputs) frees the data, as on WebGPU.
    const w = e.zeros([24]);
    const wv = w.reshape([4, 6]);
    wv.release();
    expect(w.isReleased).toBe(true);
    expect(e.zeros([24]).byteOffset).toBe(w.byteOffset);
    await expect(e.read(w)).rejects.toThrow(/released/);
    const other = e.zeros([24]);
    expect(other.byteOffset).not.toBe(t.byteOffset);
    t.release();
    expect(vv.isReleased).toBe(true);
    expect(() => e.relu(vv)).toThrow(KernelError);
    expect(() => t.reshape([24])).toThrow(KernelError);
    expect(() => t.reshape([5, 5])).toThrow(KernelError);
    other.release();
  });

  it('refuses released tensors and tensors of another engine with KernelError', async () => {
    const e = engine();
    const other = await WasmEngine.create({ threads: 1 });
    try {
      const mine = e.zeros([4, 4]);
      const theirs = other.zeros([4, 4]);
      expect(() => e.relu(theirs)).toThrow(/another engine/);
      expect(() => e.relu(mine, theirs)).toThrow(KernelError);
      expect(() => e.copy(theirs, mine)).toThrow(KernelError);
      expect(() => e.matmul(mine, theirs, 4, 4, 4)).toThrow(KernelError);
      const foreign: EngineTensor = {
        shape: [4],
        size: 4,
        dtype: 'f32',
        isReleased: false,
        reshape: () => foreign,
        release: () => {},
      };
      await expect(e.read(foreign)).rejects.toThrow(KernelError);
      const r = e.zeros([8]);
      r.release();
      expect(r.isReleased).toBe(true);
      r.release(); // twice: no effect
      for (const call of [
        () => e.relu(r),
        () => e.write(r, new Float32Array(8)),
        () => e.fill(r, 0),
        () => e.axpy(1, mine.reshape([16]), r),
        () => e.conv2d(e.zeros([1, 2, 4, 4]), r.reshape([1, 2, 2, 2]), null),
      ]) {
        expect(call).toThrow(KernelError);
      }
      await expect(e.read(r)).rejects.toThrow(KernelError);
    } finally {
      other.destroy();
    }
  });

  it('ops write nothing outside their outputs (sentinels around every tensor stay intact)', async () => {
    const e = engine();
    const rng = new ref.SeededRandom(21);
    const sentinels: Array<{ t: WasmTensor; data: Float32Array }> = [];
    const guard = () => {
      const data = Float32Array.from(randn(rng, 37));
      sentinels.push({ t: up(e, [37], data), data });
    };
    const mk = (shape: number[]) => {
      guard();
      const t = up(e, shape, randn(rng, sizeOf(shape)));
      guard();
      return t;
    };
    const x = mk([3, 4, 9, 9]);
    const w = mk([5, 4, 3, 3]);
    const b = mk([5]);
    const y = e.conv2d(x, w, b, { padding: 1, relu: true });
    guard();
    const pool = e.maxPool2d(y, { kernel: 2 });
    guard();
    const dpool = e.maxPool2dBackward(mk(pool.y.shape as number[]), pool.argmax, y.shape, {
      kernel: 2,
      reluOutput: pool.y,
    });
    guard();
    e.conv2dBackwardInput(dpool, w, x.shape, { padding: 1 });
    guard();
    e.conv2dBackwardWeight(x, dpool, w.shape, { padding: 1 });
    guard();
    const fc = mk([7, 100]);
    e.matmul(pool.y.reshape([3, 80]), fc, 3, 80, 7, { transB: true, bias: mk([7]), relu: true });
    guard();
    e.matmul(pool.y.reshape([3, 80]), fc, 3, 80, 7, { transB: true, ldb: 100, alpha: 0.5 });
    guard();
    const lstmX = mk([2, 3, 4]);
    const lw = { wIh: mk([12, 4]), wHh: mk([12, 3]), bIh: mk([12]), bHh: mk([12]) };
    const lf = e.lstmForward(lstmX, lw);
    guard();
    e.lstmBackward(lstmX, lw, null, null, lf, mk([2, 3, 3]));
    guard();
    const delta = mk([3, 4 * 81]);
    e.attackStepProject(delta, mk([3, 324]), mk([3, 324]), mk([3, 324]), 3, {
      channels: 4,
      planeSize: 81,
      lo: [-1, -1, -1, -1],
      hi: [1, 1, 1, 1],
      eps: 0.1,
      lr: 0.01,
    });
    e.tanhScaledBackward(mk([3, 7]), mk([3, 7]), 2);
    e.dropout(mk([100]), { p: 0.5, seed: 3 });
    e.sumChannels(x);
    e.channelAffine(x, { channels: 4, planeSize: 81, scale: [1, 2, 3, 4], shift: [0, 1, 2, 3] });
    for (const [i, s] of sentinels.entries()) expectSameBits(await e.read(s.t), s.data, `sentinel ${i}`);
  });

  it('repacks a kept weight after every op that writes it', async () => {
    const e = engine();
    const rng = new ref.SeededRandom(22);
    const xShape = [2, 3, 6, 6];
    const wShape = [4, 3, 3, 3];
    const x = randn(rng, sizeOf(xShape));
    let w = randn(rng, sizeOf(wShape));
    const tx = up(e, xShape, x);
    const tw = up(e, wShape, w);
    const p = { stride: 1, padding: 1 };
    const dy = randn(rng, 2 * 4 * 36);
    const tdy = up(e, [2, 4, 6, 6], dy);
    const check = async (what: string) => {
      for (let i = 0; i < 3; i++) {
        const y = e.conv2d(tx, tw, null, p);
        expectClose(await e.read(y), ref.conv2dForward(x, xShape, w, wShape, null, p).y, 1e-4);
        y.release();
        const dx = e.conv2dBackwardInput(tdy, tw, xShape, p);
        expectClose(await e.read(dx), ref.conv2dBackwardInput(dy, [2, 4, 6, 6], w, wShape, xShape, p), 1e-4);
        dx.release();
      }
      void what;
    };
    await check('initial');
    w = randn(rng, w.length);
    e.write(tw, Float32Array.from(w));
    await check('write');
    const g = randn(rng, w.length);
    e.axpy(0.5, up(e, wShape, g), tw);
    w = f32(w.map((v, i) => v + 0.5 * g[i]));
    await check('axpy');
    e.copy(up(e, wShape, g), tw.reshape([4, 27]));
    w = g;
    await check('copy into a view');
    const v = e.zeros(wShape);
    e.sgdMomentumStep(tw, up(e, wShape, dy.subarray(0, w.length)), v, {
      lr: 0.1,
      momentum: 0.9,
      weightDecay: 0,
    });
    w = f32(w.map((val, i) => val - 0.1 * Math.fround(dy[i])));
    await check('sgd');
    e.conv2dBackwardWeight(tx, tdy, wShape, { ...p, out: tw });
    w = Float64Array.from(await e.read(tw));
    await check('conv2dBackwardWeight into the weight');
    e.fill(tw, 0);
    w = new Float64Array(w.length);
    await check('fill');
    // A linear layer's weight used by matmul as B (transB), kept from the second call.
    const fx = randn(rng, 5 * 30);
    let fw = randn(rng, 8 * 30);
    const tfx = up(e, [5, 30], fx);
    const tfw = up(e, [8, 30], fw);
    for (const round of [0, 1]) {
      for (let i = 0; i < 3; i++) {
        expectClose(
          await e.read(e.matmul(tfx, tfw, 5, 30, 8, { transB: true })),
          ref.matmul(fx, fw, 5, 30, 8, { transB: true }),
        );
      }
      if (round === 0) {
        fw = randn(rng, fw.length);
        // Written by a matmul (fw times the identity: exact).
        const eye = new Float64Array(30 * 30);
        for (let i = 0; i < 30; i++) eye[i * 31] = 1;
        e.matmul(up(e, [8, 30], fw), up(e, [30, 30], eye), 8, 30, 30, { out: tfw });
      }
    }
  });
});

// ---- batch and thread invariance --------------------------------------------------------------------------

describe('WebAssembly engine: an object gives the same bits in any batch and on any thread count', () => {
  const one = useEngine(1);
  const two = useEngine(2);
  const three = useEngine(3);

  /** Runs `f` on a batch of `n` objects (data of objects 0..n-1 of `all`), returns each object's outputs. */
  type Run = (e: WasmEngine, n: number) => Promise<Float32Array[][]>;

  /** Batch `largest` on 2 threads is the reference; smaller batches on 1, 2 and 3 threads must match it. */
  async function expectInvariant(run: Run, what: string, largest = 8): Promise<void> {
    const reference = await run(two(), largest);
    for (const [e, n] of [
      [two(), 1],
      [two(), 3],
      [one(), 3],
      [one(), 8],
      [three(), 8],
      [one(), largest],
      [three(), largest],
    ] as Array<[WasmEngine, number]>) {
      const got = await run(e, n);
      for (let obj = 0; obj < n; obj++) {
        for (let k = 0; k < got[obj].length; k++) {
          expectSameBits(
            got[obj][k],
            reference[obj][k],
            `${what}: object ${obj} output ${k}, batch ${n}, ${e.threads} thread(s)`,
          );
        }
      }
    }
  }

  /** Splits a [n, ...] tensor's data into n objects. */
  const split = (data: Float32Array, n: number) => {
    const per = data.length / n;
    return Array.from({ length: n }, (_, i) => data.slice(i * per, (i + 1) * per));
  };

  const rng = new ref.SeededRandom(31);
  const xAll = randn(rng, 8 * 3 * 11 * 13);
  const wConv = randn(rng, 6 * 3 * 3 * 3);
  const bConv = randn(rng, 6);
  const dyAll = randn(rng, 8 * 6 * 6 * 7);

  it('conv2d (stride 2, padding 1, ReLU) and conv2dBackwardInput', async () => {
    await expectInvariant(async (e, n) => {
      const x = up(e, [n, 3, 11, 13], xAll.subarray(0, n * 3 * 11 * 13));
      const w = up(e, [6, 3, 3, 3], wConv);
      const o = { stride: 2, padding: 1 };
      const y = e.conv2d(x, w, up(e, [6], bConv), { ...o, relu: true });
      expect(y.shape).toEqual([n, 6, 6, 7]);
      const dx = e.conv2dBackwardInput(up(e, [n, 6, 6, 7], dyAll.subarray(0, n * 252)), w, [n, 3, 11, 13], o);
      const ys = split(await e.read(y), n);
      const dxs = split(await e.read(dx), n);
      return ys.map((yy, i) => [yy, dxs[i]]);
    }, 'conv');
  });

  it('conv2d on the small CNN shapes (P = 14*14, not a multiple of 8) and its input gradient', async () => {
    const xs = randn(rng, 8 * 8 * 14 * 14);
    const ws = randn(rng, 16 * 8 * 3 * 3);
    const dys = randn(rng, 8 * 16 * 14 * 14);
    await expectInvariant(async (e, n) => {
      const w = up(e, [16, 8, 3, 3], ws);
      const y = e.conv2d(up(e, [n, 8, 14, 14], xs.subarray(0, n * 8 * 196)), w, null, { padding: 1 });
      const dx = e.conv2dBackwardInput(
        up(e, [n, 16, 14, 14], dys.subarray(0, n * 16 * 196)),
        w,
        [n, 8, 14, 14],
        { padding: 1 },
      );
      const ys = split(await e.read(y), n);
      const dxs = split(await e.read(dx), n);
      return ys.map((yy, i) => [yy, dxs[i]]);
    }, 'conv 14x14');
  });

  it('conv2d and its input gradient through Winograd (32 -> 36 channels, odd 7x7 planes, ReLU, bias)', async () => {
    const xs = randn(rng, 8 * 32 * 7 * 7);
    const ws = randn(rng, 36 * 32 * 3 * 3);
    const bs = randn(rng, 36);
    const dys = randn(rng, 8 * 36 * 7 * 7);
    await expectInvariant(async (e, n) => {
      const w = up(e, [36, 32, 3, 3], ws);
      const y = e.conv2d(up(e, [n, 32, 7, 7], xs.subarray(0, n * 32 * 49)), w, up(e, [36], bs), {
        padding: 1,
        relu: true,
      });
      const dx = e.conv2dBackwardInput(up(e, [n, 36, 7, 7], dys.subarray(0, n * 36 * 49)), w, [n, 32, 7, 7], {
        padding: 1,
      });
      const ys = split(await e.read(y), n);
      const dxs = split(await e.read(dx), n);
      return ys.map((yy, i) => [yy, dxs[i]]);
    }, 'winograd 7x7');
  });

  it('matmul rows (linear layer and its input gradient, as A or as the swapped side)', async () => {
    const a = randn(rng, 40 * 70);
    const wl = randn(rng, 37 * 70);
    const w2 = randn(rng, 5 * 37);
    const bl = randn(rng, 37);
    await expectInvariant(
      async (e, n) => {
        const x = up(e, [n, 70], a.subarray(0, n * 70));
        const W = up(e, [37, 70], wl);
        const y = e.matmul(x, W, n, 70, 37, { transB: true, bias: up(e, [37], bl), relu: true });
        const z = e.matmul(y, up(e, [5, 37], w2), n, 37, 5, { transB: true }); // N = 5: swapped at larger n
        const dx = e.matmul(y, W, n, 37, 70);
        const z2 = e.matmul(y, up(e, [5, 37], w2), n, 37, 5, {
          transB: true,
          alpha: 0.5,
          out: e.zeros([n, 5]),
          accumulate: true,
        });
        const parts = await Promise.all([y, z, dx, z2].map(async (t) => split(await e.read(t), n)));
        return Array.from({ length: n }, (_, i) => parts.map((p) => p[i]));
      },
      'matmul',
      40,
    ); // at 40 rows, the products with N = 5 swap sides
  });

  it('LSTM forward and backward per object (h, c, gates, dx, dh0, dc0)', async () => {
    const d = lstmData({ N: 8, T: 4, I: 6, H: 5, initial: true, dhAll: true, final: true }, 77);
    await expectInvariant(async (e, n) => {
      const { T, I, H } = d.dims;
      const sub = (x: Float64Array | null, per: number) => (x as Float64Array).subarray(0, n * per);
      const dn: LstmData = {
        ...d,
        dims: { N: n, T, I, H },
        x: sub(d.x, T * I),
        h0: sub(d.h0, H),
        c0: sub(d.c0, H),
        dh: sub(d.dh, T * H),
        dhT: sub(d.dhT, H),
        dcT: sub(d.dcT, H),
      };
      const { out } = await runLstm(e, dn);
      const keys = ['h', 'c', 'gates', 'hT', 'cT', 'dx', 'dh0', 'dc0'];
      const parts = keys.map((k) => split(out[k], n));
      return Array.from({ length: n }, (_, i) => parts.map((p) => p[i]));
    }, 'lstm');
  });

  it('pool, ReLU, channelAffine, tanh and the fused attack update per object', async () => {
    const xs = randn(rng, 8 * 3 * 10 * 10);
    const gs = randn(rng, 8 * 300);
    await expectInvariant(async (e, n) => {
      const x = up(e, [n, 3, 10, 10], xs.subarray(0, n * 300));
      const xn = e.channelAffine(x, {
        channels: 3,
        planeSize: 100,
        scale: [1.5, 2, 0.7],
        shift: [0.1, -0.2, 0.3],
      });
      const p = e.maxPool2d(e.relu(xn), { kernel: 3, stride: 2 });
      const t = e.tanhScaled(xn, 1.7);
      const dt = e.tanhScaledBackward(up(e, [n, 300], gs.subarray(0, n * 300)), xn, 1.7);
      const delta = e.zeros([n, 300]);
      const xAdv = e.empty([n, 300]);
      e.attackStepProject(delta, dt, xn, xAdv, n, {
        channels: 3,
        planeSize: 100,
        lo: [-1, -1, -1],
        hi: [1, 1, 1],
        eps: 0.05,
        lr: 0.01,
      });
      const parts = await Promise.all(
        [xn, p.y, t, dt, delta, xAdv].map(async (v) => split(await e.read(v), n)),
      );
      return Array.from({ length: n }, (_, i) => parts.map((q) => q[i]));
    }, 'element-wise');
  });

  it('weight gradients are the same bits on 1, 2 and 3 threads', async () => {
    const xs = randn(rng, 4 * 5 * 12 * 12);
    const dys = randn(rng, 4 * 9 * 12 * 12);
    const d = lstmData({ N: 6, T: 5, I: 7, H: 6, initial: false, dhAll: true, final: false }, 78);
    const results: Float32Array[][] = [];
    for (const e of [one(), two(), three()]) {
      const dw = e.conv2dBackwardWeight(up(e, [4, 5, 12, 12], xs), up(e, [4, 9, 12, 12], dys), [9, 5, 3, 3], {
        padding: 1,
      });
      const { out } = await runLstm(e, d);
      results.push([await e.read(dw), out.dWih, out.dWhh, out.dbIh]);
    }
    for (const r of results.slice(1)) {
      for (const [k, v] of r.entries()) expectSameBits(v, results[0][k], `weight gradient ${k}`);
    }
  });
  it('the SGD step (sgd routine) and accumulated products (scatter) give the scalar f32 formulas bit for bit', async () => {
    // Sizes around the 4-wide vectors and the 16-float chunks the threads split: tails of 1-3, one chunk, many.
    for (const n of [1, 3, 4, 7, 16, 17, 1003]) {
      const w = f32(randn(rng, n));
      const g = f32(randn(rng, n));
      const v = f32(randn(rng, n));
      const o = { lr: 0.37, momentum: 0.9, weightDecay: 5e-4 };
      const ew = new Float32Array(w);
      const ev = new Float32Array(v);
      const [lr, m, wd] = [o.lr, o.momentum, o.weightDecay].map(Math.fround);
      for (let i = 0; i < n; i++) {
        const vv = Math.fround(Math.fround(m * ev[i]) + Math.fround(g[i] + Math.fround(wd * ew[i])));
        ev[i] = vv;
        ew[i] = ew[i] - Math.fround(lr * vv);
      }
      for (const e of [one(), two(), three()]) {
        const tw = up(e, [n], w);
        const tv = up(e, [n], v);
        e.sgdMomentumStep(tw, up(e, [n], g), tv, o);
        expectSameBits(await e.read(tw), ew, `sgd w, n ${n}, ${e.description}`);
        expectSameBits(await e.read(tv), ev, `sgd v, n ${n}, ${e.description}`);
      }
    }
    // C += A B^T (the linear layers' weight gradients): the scatter's accumulate flag, with and without a bias.
    for (const [M, K, N] of [
      [3, 5, 7],
      [24, 33, 130],
      [130, 24, 9],
    ]) {
      const a = f32(randn(rng, M * K));
      const b = f32(randn(rng, N * K));
      const c = f32(randn(rng, M * N));
      const bias = f32(randn(rng, N));
      for (const withBias of [false, true]) {
        const results: Float32Array[] = [];
        for (const e of [one(), two(), three()]) {
          const plain = await e.read(e.matmul(up(e, [M, K], a), up(e, [N, K], b), M, K, N, { transB: true }));
          const expected = Float32Array.from(plain, (p, i) =>
            Math.fround(Math.fround(withBias ? p + bias[i % N] : p) + c[i]),
          );
          const out = up(e, [M, N], c);
          const opts: EngineMatmulOptions = { transB: true, accumulate: true, out };
          if (withBias) opts.bias = up(e, [N], bias);
          e.matmul(up(e, [M, K], a), up(e, [N, K], b), M, K, N, opts);
          const got = await e.read(out);
          expectSameBits(got, expected, `C += A B^T, ${M}x${K}x${N}, bias ${withBias}, ${e.description}`);
          results.push(got);
        }
      }
    }
  });
});
