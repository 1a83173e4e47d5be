// One parity suite for every engine (engine.ts): the same cases on the WebGPU engine and the WebAssembly
// engine, each against the float64 references, then the two engines against each other, then the batch
// invariance that the contract promises (an object's result does not depend on the rest of its batch).
// Tolerances are those of the per-op tests (ops-*.test.ts): 1e-4 normwise for sums of products, 1e-5/1e-6
// for element-wise ops, exact where an op only selects or copies f32 values.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  Engine,
  EngineKind,
  EngineLstmWeights,
  EngineMatmulOptions,
  EngineTensor,
} from '../src/engine.js';
import { PAIRWISE_CHUNK } from '../src/engine.js';
import { KernelError } from '../src/errors.js';
import { createGpu } from '../src/gpu/context.js';
import { WebGpuEngine } from '../src/gpu/engine.js';
import * as ref from '../src/reference/index.js';
import { WasmEngine } from '../src/wasm/index.js';
import {
  ATTACK_MEAN,
  ATTACK_PROJECT_SHAPES,
  ATTACK_STD,
  ATTACK_STEP_PROJECT_SHAPES,
  ATTACK_STEP_SHAPES,
  CHANNEL_AFFINE_SHAPES,
  CONV_CASES,
  DROPOUT_CASES,
  LSTM_CASES,
  LSTM_GRADIENT_KEYS,
  type LstmData,
  lstmCaseName,
  lstmData,
  MATMUL_BLOCKS,
  MATMUL_EPILOGUE_SHAPES,
  MATMUL_EPILOGUES,
  MATMUL_PLAIN,
  MAXPOOL_CASES,
  type MatmulCase,
  matmulExpected,
  matmulLayout,
  matmulWritten,
  PAIRWISE_CASES,
  pairwiseData,
  SUM_CHANNELS_SHAPES,
  sizeOf,
  TANH_CASES,
} from './engine-cases.js';
import { f32, randn, relativeError } from './helpers.js';

interface EngineHandle {
  engine: Engine;
  close(): void;
}

interface EngineFactory {
  name: EngineKind;
  open(): Promise<EngineHandle>;
}

const WEBGPU: EngineFactory = {
  name: 'webgpu',
  async open() {
    // Poisoned: every new tensor starts as NaN, so an element an op forgets to write fails the comparison.
    const gpu = await createGpu({ checkErrors: true, poison: true });
    return { engine: new WebGpuEngine(gpu), close: () => gpu.destroy() };
  },
};

const WASM: EngineFactory = {
  name: 'wasm',
  async open() {
    const engine = await WasmEngine.create({ threads: 2 });
    return { engine, close: () => engine.destroy() };
  },
};

const ENGINES: EngineFactory[] = [WEBGPU, WASM];

/** Opens one engine for a describe block and closes it afterwards. */
function useEngine(factory: EngineFactory): () => Engine {
  let handle: EngineHandle | null = null;
  beforeAll(async () => {
    handle = await factory.open();
  });
  afterAll(() => {
    handle?.close();
  });
  return () => {
    if (!handle) throw new Error(`${factory.name} engine not initialised`);
    return handle.engine;
  };
}

// ---- helpers ---------------------------------------------------------------------------------------------

/** An engine tensor holding `data` (rounded to f32). */
function up(e: Engine, shape: readonly number[], data: ArrayLike<number>): EngineTensor {
  return e.tensor(shape, Float32Array.from(data));
}

/** An output tensor full of NaN: an element that an op leaves unwritten fails the comparison. */
function poisoned(e: Engine, shape: readonly number[]): EngineTensor {
  return e.tensor(shape, new Float32Array(sizeOf(shape)).fill(Number.NaN));
}

/** A sync or async call that must fail with KernelError, whichever way the engine reports it. */
async function expectKernelError(fn: () => unknown): Promise<void> {
  await expect(Promise.resolve().then(fn)).rejects.toBeInstanceOf(KernelError);
}

/** Bit-for-bit equality of two f32 arrays, with a message that names the first difference. */
function expectSameBits(actual: Float32Array, expected: Float32Array, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      bad++;
      if (first < 0) first = i;
    }
  }
  const where = first < 0 ? '' : `, first at ${first}: ${actual[first]} vs ${expected[first]}`;
  expect(bad, `${label}: ${bad} of ${a.length} elements differ${where}`).toBe(0);
}

/** Equal values (NaN equals NaN, -0 equals 0), with a message that names the first difference. */
function expectSameValues(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!(a === e || (Number.isNaN(a) && Number.isNaN(e)))) {
      bad++;
      if (first < 0) first = i;
    }
  }
  const where = first < 0 ? '' : `, first at ${first}: ${actual[first]} vs ${expected[first]}`;
  expect(bad, `${label}: ${bad} of ${expected.length} elements differ${where}`).toBe(0);
}

/** expectClose with the array's name in the message. */
function expectNear(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, tol = 1e-4): void {
  const err = relativeError(actual, expected);
  expect(err, `${label}: relative error ${err}`).toBeLessThan(tol);
}

/** Runs one product on the engine over raw storage and checks all of C against matmulExpected. */
async function checkMatmul(
  e: Engine,
  rng: ref.SeededRandom,
  M: number,
  K: number,
  N: number,
  o: MatmulCase,
  withOut: boolean,
): Promise<void> {
  const l = matmulLayout(M, K, N, o);
  const aRows = l.transA ? K : M;
  const aCols = l.transA ? M : K;
  const bRows = l.transB ? N : K;
  const bCols = l.transB ? K : N;
  const aLen = l.aOff + (l.batch - 1) * l.strideA + (aRows - 1) * l.lda + aCols + 3;
  const bLen = l.bOff + (l.batch - 1) * l.strideB + (bRows - 1) * l.ldb + bCols + 2;
  const cLen = withOut ? l.cOff + (l.batch - 1) * l.strideC + (M - 1) * l.ldc + N + 5 : l.batch * M * N;
  const a = randn(rng, aLen);
  const b = randn(rng, bLen);
  const c0 = withOut ? randn(rng, cLen) : new Float64Array(cLen);
  const options: EngineMatmulOptions = {
    transA: o.transA,
    transB: o.transB,
    biasAxis: o.biasAxis,
    relu: o.relu,
    alpha: o.alpha,
    accumulate: o.accumulate,
    batch: o.batch,
    strideA: o.strideA,
    strideB: o.strideB,
    strideC: o.strideC,
    aOffset: o.aOffset,
    bOffset: o.bOffset,
    cOffset: o.cOffset,
    lda: o.lda,
    ldb: o.ldb,
    ldc: o.ldc,
  };
  if (o.bias) options.bias = up(e, [o.bias.length], o.bias);
  const out = withOut ? up(e, [cLen], c0) : undefined;
  if (out) options.out = out;
  const c = e.matmul(up(e, [aLen], a), up(e, [bLen], b), M, K, N, options);
  if (out) expect(c).toBe(out);
  else expect(c.size).toBe(cLen);
  const got = await e.read(c);
  const expected = matmulExpected(a, b, M, K, N, o, c0);
  expectNear(got, expected, 'C');
  if (withOut) {
    // Storage outside the addressed block keeps its values, bit for bit.
    const written = matmulWritten(M, K, N, o, cLen);
    const untouched = Float32Array.from(c0);
    let changed = 0;
    for (let i = 0; i < cLen; i++) if (!written[i] && !Object.is(got[i], untouched[i])) changed++;
    expect(changed, 'elements of C outside the product changed').toBe(0);
  }
}

/** Forward and backward on the engine; every output read back. */
async function runLstm(e: Engine, d: LstmData): Promise<Record<string, Float32Array>> {
  const { N, T, I, H } = d.dims;
  const w: EngineLstmWeights = {
    wIh: up(e, [4 * H, I], d.w.wIh),
    wHh: up(e, [4 * H, H], d.w.wHh),
    bIh: up(e, [4 * H], d.w.bIh),
    bHh: up(e, [4 * H], d.w.bHh),
  };
  const x = up(e, [N, T, I], d.x);
  // Absent states both ways the signature allows: omitted (undefined) in the forward, null in the backward.
  const h0 = d.h0 ? up(e, [N, H], d.h0) : null;
  const c0 = d.c0 ? up(e, [N, H], d.c0) : null;
  const fwd = d.h0 ? e.lstmForward(x, w, h0, c0) : e.lstmForward(x, w);
  expect(fwd.h.shape).toEqual([N, T, H]);
  expect(fwd.c.shape).toEqual([N, T, H]);
  expect(fwd.gates.shape).toEqual([N, T, 4 * H]);
  expect(fwd.hT.shape).toEqual([N, H]);
  expect(fwd.cT.shape).toEqual([N, H]);
  const back = e.lstmBackward(
    x,
    w,
    h0,
    c0,
    fwd,
    up(e, [N, T, H], d.dh),
    d.dhT ? up(e, [N, H], d.dhT) : null,
    d.dcT ? up(e, [N, H], d.dcT) : undefined,
  );
  const shapes: Record<(typeof LSTM_GRADIENT_KEYS)[number], number[]> = {
    dx: [N, T, I],
    dWih: [4 * H, I],
    dWhh: [4 * H, H],
    dbIh: [4 * H],
    dbHh: [4 * H],
    dh0: [N, H],
    dc0: [N, H],
  };
  const out: Record<string, Float32Array> = {};
  for (const key of ['h', 'c', 'gates', 'hT', 'cT'] as const) out[key] = await e.read(fwd[key]);
  for (const key of LSTM_GRADIENT_KEYS) {
    expect(back[key].shape, key).toEqual(shapes[key]);
    out[key] = await e.read(back[key]);
  }
  return out;
}

// ---- the suite, once per engine --------------------------------------------------------------------------

describe.each(ENGINES.map((f) => [f.name, f] as const))('%s engine', (_name, factory) => {
  const engine = useEngine(factory);

  it('describes itself', () => {
    const e = engine();
    expect(e.kind).toBe(factory.name);
    expect(typeof e.software).toBe('boolean');
    expect(e.description.length).toBeGreaterThan(0);
    expect(e.maxTensorBytes).toBeGreaterThan(0);
    expect(e.memoryBytesLeft).toBeGreaterThan(0);
  });

  describe('tensors', () => {
    it('tensor and read round-trip f32 bit for bit', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(1);
      const data = Float32Array.from(randn(rng, 3 * 5 * 7));
      data[0] = Number.NaN;
      data[1] = Number.POSITIVE_INFINITY;
      data[2] = -0;
      data[3] = 1e-40; // subnormal
      data[4] = -3.4e38;
      const t = e.tensor([3, 5, 7], data);
      expect(t.shape).toEqual([3, 5, 7]);
      expect(t.size).toBe(105);
      expect(t.dtype).toBe('f32');
      expect(t.isReleased).toBe(false);
      expectSameBits(await e.read(t), data, 'read');
    });

    it('empty has the shape and dtype asked for; zeros and fill give zeros', async () => {
      const e = engine();
      const a = e.empty([4, 6]);
      expect(a.shape).toEqual([4, 6]);
      expect(a.size).toBe(24);
      expect(a.dtype).toBe('f32');
      const u = e.empty([2, 3], 'u32');
      expect(u.dtype).toBe('u32');
      expect(u.size).toBe(6);
      expect(e.zeros([5], 'u32').dtype).toBe('u32');
      const z = e.zeros([7, 3]);
      expect(z.shape).toEqual([7, 3]);
      expect(z.dtype).toBe('f32');
      expectSameBits(await e.read(z), new Float32Array(21), 'zeros');
      const t = up(e, [11, 13], randn(new ref.SeededRandom(2), 143));
      e.fill(t, 0);
      expectSameBits(await e.read(t), new Float32Array(143), 'fill(0)');
      // An empty tensor written in full reads back what was written.
      const data = Float32Array.from(randn(new ref.SeededRandom(3), 24));
      e.write(a, data);
      expectSameBits(await e.read(a), data, 'write into empty');
    });

    it('write replaces the data; copy duplicates it and leaves the source', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(4);
      const first = Float32Array.from(randn(rng, 37));
      const second = Float32Array.from(randn(rng, 37));
      const t = e.tensor([37], first);
      e.write(t, second);
      expectSameBits(await e.read(t), second, 'after write');
      const dst = up(e, [37], randn(rng, 37));
      e.copy(t, dst);
      expectSameBits(await e.read(dst), second, 'copy destination');
      expectSameBits(await e.read(t), second, 'copy source');
    });

    it('runs in program order: a write after an op does not change what the op read', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(5);
      const first = f32(rng.uniformArray(300, -1, 1));
      const second = f32(rng.uniformArray(300, -1, 1));
      const x = up(e, [300], first);
      const y = e.relu(x);
      e.write(x, Float32Array.from(second));
      const z = e.relu(x);
      const copy = poisoned(e, [300]);
      e.copy(x, copy);
      e.write(x, new Float32Array(300));
      expectSameValues(await e.read(y), ref.relu(first), 'relu before the write');
      expectSameValues(await e.read(z), ref.relu(second), 'relu after the write');
      expectSameBits(await e.read(copy), Float32Array.from(second), 'copy before the second write');
      await e.sync();
    });

    it('reshape is a view of the same data', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(6);
      const d1 = Float32Array.from(randn(rng, 24));
      const d2 = Float32Array.from(randn(rng, 24));
      const d3 = Float32Array.from(randn(rng, 24));
      const t = e.tensor([2, 3, 4], d1);
      const v = t.reshape([6, 4]);
      expect(v.shape).toEqual([6, 4]);
      expect(v.size).toBe(24);
      expect(v.dtype).toBe('f32');
      expect(t.shape).toEqual([2, 3, 4]);
      expectSameBits(await e.read(v), d1, 'view of the data');
      e.write(t, d2);
      expectSameBits(await e.read(v), d2, 'view after a write to the base');
      e.write(v, d3);
      expectSameBits(await e.read(t), d3, 'base after a write to the view');
      const vv = v.reshape([24]);
      expect(vv.shape).toEqual([24]);
      expectSameBits(await e.read(vv), d3, 'view of a view');
      // Ops read views and write into them.
      const y = e.relu(v);
      expect(y.shape).toEqual([6, 4]);
      expectSameValues(await e.read(y), ref.relu(Float64Array.from(d3)), 'relu of a view');
      const x = up(e, [24], d1);
      expect(e.relu(x, vv)).toBe(vv);
      expectSameValues(await e.read(t), ref.relu(Float64Array.from(d1)), 'base after relu into its view');
      expect(() => t.reshape([5, 5])).toThrow(KernelError);
    });
  });

  // An engine may keep prepared copies of operands that it sees unchanged (packed weight panels): every way
  // of changing a tensor must reach the next op that reads it.
  describe('an operand changed in place is seen by the next op', () => {
    it('matmul operands (B stored [N, K], then A), changed by every kind of write and in-place op', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(51);
      const [M, K, N] = [6, 20, 9];
      let a = randn(rng, M * K);
      let w = randn(rng, N * K);
      const ta = up(e, [M, K], a);
      const tw = up(e, [N, K], w);
      const check = async (label: string) => {
        // Three uses in a row: a copy may be kept from the second unchanged use on.
        for (let use = 1; use <= 3; use++) {
          const got = await e.read(e.matmul(ta, tw, M, K, N, { transB: true }));
          expectNear(got, ref.matmul(a, w, M, K, N, { transB: true }), `${label}, use ${use}`);
        }
      };
      await check('initial');
      w = randn(rng, N * K);
      e.write(tw, Float32Array.from(w));
      await check('B after write');
      w = randn(rng, N * K);
      e.write(tw.reshape([N * K]), Float32Array.from(w));
      await check('B after a write through a view');
      w = randn(rng, N * K);
      e.copy(up(e, [N, K], w), tw);
      await check('B after copy');
      e.fill(tw, 0);
      w = new Float64Array(N * K);
      await check('B after fill');
      const x = randn(rng, N * K);
      e.axpy(0.5, up(e, [N, K], x), tw);
      w = f32(ref.axpy(0.5, x, w));
      await check('B after axpy');
      const g = randn(rng, N * K);
      const params = { lr: 0.1, momentum: 0.9, weightDecay: 0.01 };
      e.sgdMomentumStep(tw, up(e, [N, K], g), e.zeros([N, K]), params);
      w = f32(ref.sgdMomentumStep(w, g, new Float64Array(N * K), params).w);
      await check('B after sgdMomentumStep');
      const r = randn(rng, N * K);
      e.relu(up(e, [N, K], r), tw);
      w = ref.relu(r);
      await check('B after relu into it');
      const [p, q] = [randn(rng, N * 3), randn(rng, 3 * K)];
      e.matmul(up(e, [N, 3], p), up(e, [3, K], q), N, 3, K, { out: tw });
      w = f32(ref.matmul(p, q, N, 3, K));
      await check('B after matmul into it');
      // [N, K] = [9, 20] seen as a conv weight [5, 4, 3, 3]: its gradient accumulated into it.
      const cx = randn(rng, 4 * 5 * 5);
      const cdy = randn(rng, 5 * 3 * 3);
      const p0 = { stride: 1, padding: 0 };
      e.conv2dBackwardWeight(up(e, [1, 4, 5, 5], cx), up(e, [1, 5, 3, 3], cdy), [5, 4, 3, 3], {
        ...p0,
        out: tw.reshape([5, 4, 3, 3]),
        accumulate: true,
      });
      const dw = ref.conv2dBackwardWeight(cx, [1, 4, 5, 5], cdy, [1, 5, 3, 3], [5, 4, 3, 3], p0);
      w = f32(w.map((v, i) => v + dw[i]));
      await check('B after conv2dBackwardWeight accumulated into it');
      const step = randn(rng, N * K);
      e.attackStep(tw, up(e, [N, K], step), N, { mode: 'raw', lr: 0.25 });
      w = f32(ref.attackStep(w, step, N, K, { mode: 'raw', lr: 0.25 }));
      await check('B after attackStep');
      a = randn(rng, M * K);
      e.write(ta, Float32Array.from(a));
      await check('A after write');
      const y = randn(rng, M * K);
      e.axpy(-2, up(e, [M, K], y), ta);
      a = f32(ref.axpy(-2, y, a));
      await check('A after axpy');
    });

    it('conv2d weights and LSTM weights after an optimiser step', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(52);
      const xShape = [2, 3, 8, 8];
      const wShape = [5, 3, 3, 3];
      const p = { stride: 1, padding: 1 };
      const x = randn(rng, sizeOf(xShape));
      let w: Float64Array = randn(rng, sizeOf(wShape));
      const tx = up(e, xShape, x);
      const tw = up(e, wShape, w);
      const params = { lr: 0.1, momentum: 0.9, weightDecay: 0 };
      const tv = e.zeros(wShape);
      let v: Float64Array = new Float64Array(w.length);
      for (let step = 0; step < 3; step++) {
        for (let use = 1; use <= 3; use++) {
          expectNear(
            await e.read(e.conv2d(tx, tw, null, p)),
            ref.conv2dForward(x, xShape, w, wShape, null, p).y,
            `conv2d, step ${step}, use ${use}`,
          );
        }
        const g = randn(rng, w.length);
        e.sgdMomentumStep(tw, up(e, wShape, g), tv, params);
        ({ w, v } = ref.sgdMomentumStep(w, g, v, params));
      }

      const d = lstmData({ N: 2, T: 3, I: 4, H: 5, initial: false, dhAll: true, final: false }, 53);
      const { H, I } = d.dims;
      const lw: EngineLstmWeights = {
        wIh: up(e, [4 * H, I], d.w.wIh),
        wHh: up(e, [4 * H, H], d.w.wHh),
        bIh: up(e, [4 * H], d.w.bIh),
        bHh: up(e, [4 * H], d.w.bHh),
      };
      const lx = up(e, [2, 3, I], d.x);
      for (let step = 0; step < 3; step++) {
        for (let use = 1; use <= 3; use++) {
          const got = await e.read(e.lstmForward(lx, lw).h);
          expectNear(
            got,
            ref.lstmForward(d.x, d.dims, d.w, null, null).h,
            `lstm h, step ${step}, use ${use}`,
          );
        }
        const gIh = f32(rng.uniformArray(d.w.wIh.length, -1, 1));
        const gHh = f32(rng.uniformArray(d.w.wHh.length, -1, 1));
        e.axpy(-0.1, up(e, [4 * H, I], gIh), lw.wIh);
        e.axpy(-0.1, up(e, [4 * H, H], gHh), lw.wHh);
        d.w.wIh = f32(ref.axpy(-0.1, gIh, d.w.wIh));
        d.w.wHh = f32(ref.axpy(-0.1, gHh, d.w.wHh));
      }
    });
  });

  it('channelAffine: per-channel scale and shift on NCHW and [N, T, C, HW] rows, new and into out', async () => {
    const e = engine();
    const rng = new ref.SeededRandom(12);
    for (const [rows, channels, plane] of CHANNEL_AFFINE_SHAPES) {
      const x = f32(rng.uniformArray(rows * channels * plane, 0, 1));
      const scale = Array.from({ length: channels }, () => rng.uniform(0.5, 5));
      const shift = Array.from({ length: channels }, () => rng.uniform(-2, 2));
      const want = ref.channelAffine(x, channels, plane, scale.map(Math.fround), shift.map(Math.fround));
      const tx = up(e, [rows, channels, plane], x);
      const y = e.channelAffine(tx, { channels, planeSize: plane, scale, shift });
      expect(y.shape).toEqual([rows, channels, plane]);
      expectNear(await e.read(y), want, `[${rows}, ${channels}, ${plane}]`, 1e-6);
      const out = poisoned(e, [rows, channels, plane]);
      expect(e.channelAffine(tx, { channels, planeSize: plane, scale, shift, out })).toBe(out);
      expectNear(await e.read(out), want, `[${rows}, ${channels}, ${plane}] into out`, 1e-6);
    }
  });

  describe('conv2d', () => {
    const rng = new ref.SeededRandom(3);
    for (const [N, C, H, W, O, K, stride, padding] of CONV_CASES) {
      it(`x [${N},${C},${H},${W}] w [${O},${C},${K},${K}] stride ${stride} padding ${padding}: forward, input and weight gradients`, async () => {
        const e = engine();
        const p = { stride, padding };
        const x = randn(rng, N * C * H * W);
        const w = randn(rng, O * C * K * K);
        const b = randn(rng, O);
        const xShape = [N, C, H, W];
        const wShape = [O, C, K, K];
        const fwd = ref.conv2dForward(x, xShape, w, wShape, b, p);
        const noBias = ref.conv2dForward(x, xShape, w, wShape, null, p).y;
        const tx = up(e, xShape, x);
        const tw = up(e, wShape, w);
        const tb = up(e, [O], b);
        const y = e.conv2d(tx, tw, tb, p);
        expect(y.shape).toEqual(fwd.shape);
        expectNear(await e.read(y), fwd.y, 'y with bias');
        expectNear(
          await e.read(e.conv2d(tx, tw, tb, { ...p, relu: true })),
          ref.relu(fwd.y),
          'y, bias, ReLU',
        );
        expectNear(await e.read(e.conv2d(tx, tw, null, p)), noBias, 'y without bias');
        const yOut = poisoned(e, fwd.shape);
        expect(e.conv2d(tx, tw, null, { ...p, relu: true, out: yOut })).toBe(yOut);
        expectNear(await e.read(yOut), ref.relu(noBias), 'y into out, ReLU, no bias');

        const dy = randn(rng, fwd.y.length);
        const tdy = up(e, fwd.shape, dy);
        const dxRef = ref.conv2dBackwardInput(dy, fwd.shape, w, wShape, xShape, p);
        const dx = e.conv2dBackwardInput(tdy, tw, xShape, p);
        expect(dx.shape).toEqual(xShape);
        expectNear(await e.read(dx), dxRef, 'dx');
        const dxOut = up(e, xShape, randn(rng, x.length));
        expect(e.conv2dBackwardInput(tdy, tw, xShape, { ...p, out: dxOut })).toBe(dxOut);
        expectNear(await e.read(dxOut), dxRef, 'dx into out');

        const dwRef = ref.conv2dBackwardWeight(x, xShape, dy, fwd.shape, wShape, p);
        const dw = e.conv2dBackwardWeight(tx, tdy, wShape, p);
        expect(dw.shape).toEqual(wShape);
        expectNear(await e.read(dw), dwRef, 'dw');
        // Without accumulate, out is overwritten; with it, dw is added to what out holds.
        const dw0 = randn(rng, w.length);
        const over = up(e, wShape, dw0);
        expect(e.conv2dBackwardWeight(tx, tdy, wShape, { ...p, out: over })).toBe(over);
        expectNear(await e.read(over), dwRef, 'dw into out');
        const acc = up(e, wShape, dw0);
        expect(e.conv2dBackwardWeight(tx, tdy, wShape, { ...p, out: acc, accumulate: true })).toBe(acc);
        expectNear(
          await e.read(acc),
          dwRef.map((v, i) => v + dw0[i]),
          'dw accumulated',
        );
        expect(e.sumChannels(tdy).shape).toEqual([O]);
        expectNear(await e.read(e.sumChannels(tdy)), ref.conv2dBackwardBias(dy, fwd.shape), 'db');
      });
    }

    it('stride and padding default to 1 and 0', async () => {
      const e = engine();
      const [N, C, H, W, O, K] = [2, 3, 6, 7, 4, 3];
      const x = randn(rng, N * C * H * W);
      const w = randn(rng, O * C * K * K);
      const p = { stride: 1, padding: 0 };
      const fwd = ref.conv2dForward(x, [N, C, H, W], w, [O, C, K, K], null, p);
      const tx = up(e, [N, C, H, W], x);
      const tw = up(e, [O, C, K, K], w);
      expectNear(await e.read(e.conv2d(tx, tw, null)), fwd.y, 'y');
      const dy = randn(rng, fwd.y.length);
      const tdy = up(e, fwd.shape, dy);
      expectNear(
        await e.read(e.conv2dBackwardInput(tdy, tw, [N, C, H, W])),
        ref.conv2dBackwardInput(dy, fwd.shape, w, [O, C, K, K], [N, C, H, W], p),
        'dx',
      );
      expectNear(
        await e.read(e.conv2dBackwardWeight(tx, tdy, [O, C, K, K])),
        ref.conv2dBackwardWeight(x, [N, C, H, W], dy, fwd.shape, [O, C, K, K], p),
        'dw',
      );
    });
  });

  describe('matmul', () => {
    const rng = new ref.SeededRandom(7);
    for (const [M, K, N, transA, transB] of MATMUL_PLAIN) {
      it(`${M}x${K}x${N} transA=${transA} transB=${transB}`, async () => {
        const e = engine();
        const a = randn(rng, M * K);
        const b = randn(rng, K * N);
        const c = e.matmul(up(e, [a.length], a), up(e, [b.length], b), M, K, N, { transA, transB });
        expect(c.shape).toEqual([M, N]);
        expectNear(await e.read(c), ref.matmul(a, b, M, K, N, { transA, transB }), 'C');
      });
    }

    for (const [M, K, N, transA, transB] of MATMUL_EPILOGUE_SHAPES) {
      it(`${M}x${K}x${N} transA=${transA} transB=${transB}: epilogues`, async () => {
        const e = engine();
        for (const [label, o, withOut] of MATMUL_EPILOGUES) {
          const withBias: MatmulCase = { ...o, transA, transB };
          if (o.bias) withBias.bias = randn(rng, (o.biasAxis ?? 'col') === 'col' ? N : M);
          try {
            await checkMatmul(e, rng, M, K, N, withBias, withOut);
          } catch (err) {
            throw new Error(`${label}: ${(err as Error).message}`);
          }
        }
      });
    }

    for (const [M, K, N, transA, transB, [ar, ac, lda], [br, bc, ldb], [cr, cc, ldc]] of MATMUL_BLOCKS) {
      it(`${M}x${K}x${N} transA=${transA} transB=${transB}: a sub-block (offsets, lda ${lda}, ldb ${ldb}, ldc ${ldc})`, async () => {
        const e = engine();
        const base: MatmulCase = {
          transA,
          transB,
          lda,
          ldb,
          ldc,
          aOffset: ar * lda + ac,
          bOffset: br * ldb + bc,
          cOffset: cr * ldc + cc,
        };
        await checkMatmul(e, rng, M, K, N, base, true);
        await checkMatmul(
          e,
          rng,
          M,
          K,
          N,
          { ...base, accumulate: true, alpha: 0.5, bias: randn(rng, N), relu: true },
          true,
        );
      });
    }

    it('batches: dense, with strides and offsets, with an epilogue', async () => {
      const e = engine();
      const [B, M, K, N] = [3, 5, 6, 7];
      const dense: MatmulCase = { batch: B };
      await checkMatmul(e, rng, M, K, N, dense, false);
      await checkMatmul(e, rng, M, K, N, { ...dense, aOffset: 2 }, false);
      const strided: MatmulCase = {
        batch: B,
        strideA: M * K + 3,
        strideB: K * N + 2,
        strideC: M * N + 4,
        aOffset: 1,
        bOffset: 5,
        cOffset: 3,
      };
      await checkMatmul(e, rng, M, K, N, strided, true);
      await checkMatmul(e, rng, M, K, N, { ...strided, transA: true, transB: true }, true);
      await checkMatmul(
        e,
        rng,
        M,
        K,
        N,
        { ...strided, transB: true, bias: randn(rng, N), relu: true, alpha: 2, accumulate: true },
        true,
      );
      // B shared by every product (stride 0), as a batched linear layer.
      await checkMatmul(e, rng, M, K, N, { batch: 4, strideB: 0, transB: true, bias: randn(rng, N) }, false);
    });
  });

  describe('relu', () => {
    it('relu keeps NaN, zeroes negatives; new and into out', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(21);
      const x = f32(rng.uniformArray(1001, -2, 2));
      for (const i of [0, 17, 500, 1000]) x[i] = Number.NaN;
      x[3] = Number.NEGATIVE_INFINITY;
      x[4] = Number.POSITIVE_INFINITY;
      x[5] = 0;
      const tx = up(e, [7, 11, 13], x);
      const y = e.relu(tx);
      expect(y.shape).toEqual([7, 11, 13]);
      const got = await e.read(y);
      expectSameValues(got, ref.relu(x), 'relu');
      for (const i of [0, 17, 500, 1000]) expect(Number.isNaN(got[i]), `element ${i} is NaN`).toBe(true);
      const out = poisoned(e, [7, 11, 13]);
      expect(e.relu(tx, out)).toBe(out);
      expectSameValues(await e.read(out), ref.relu(x), 'relu into out');
    });

    it('the ReLU fused into conv2d and matmul keeps NaN too', async () => {
      const e = engine();
      const x = new Float64Array(2 * 1 * 4 * 4).fill(1);
      x[0] = Number.NaN;
      x[21] = Number.NaN;
      // A negative weight: every finite output is negative, so the ReLU zeroes all but the NaN outputs.
      const w = Float64Array.of(-1);
      const p = { stride: 1, padding: 0 };
      const want = ref.relu(ref.conv2dForward(x, [2, 1, 4, 4], w, [1, 1, 1, 1], null, p).y);
      const tx = up(e, [2, 1, 4, 4], x);
      const tw = up(e, [1, 1, 1, 1], w);
      expectSameValues(await e.read(e.conv2d(tx, tw, null, { ...p, relu: true })), want, 'conv2d, ReLU');
      expectSameValues(
        await e.read(e.matmul(tx, tw, 32, 1, 1, { relu: true })),
        ref.relu(ref.matmul(x, w, 32, 1, 1)),
        'matmul, ReLU',
      );
    });

    it('reluBackward passes dy where y > 0 only', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(22);
      const y = ref.relu(f32(rng.uniformArray(777, -1, 1)));
      const dy = f32(rng.uniformArray(777, -1, 1));
      const want = ref.reluBackward(dy, y);
      const ty = up(e, [777], y);
      const tdy = up(e, [777], dy);
      const dx = e.reluBackward(tdy, ty);
      expect(dx.shape).toEqual([777]);
      expectSameValues(await e.read(dx), want, 'reluBackward');
      const out = poisoned(e, [777]);
      expect(e.reluBackward(tdy, ty, out)).toBe(out);
      expectSameValues(await e.read(out), want, 'reluBackward into out');
    });
  });

  describe('maxPool2d', () => {
    for (const { shape, kernel, stride } of MAXPOOL_CASES) {
      it(`[${shape}] kernel ${kernel} stride ${stride ?? 'default'}: max, argmax, backward with and without reluOutput`, async () => {
        const e = engine();
        const rng = new ref.SeededRandom(shape.reduce((a, b) => a * 31 + b, kernel));
        const params = { kernel, stride: stride ?? kernel };
        const size = sizeOf(shape);
        const x = f32(rng.uniformArray(size, -2, 2));
        const want = ref.maxPool2dForward(x, shape, params);
        const { y, argmax } = e.maxPool2d(up(e, shape, x), stride === undefined ? { kernel } : params);
        expect(y.shape).toEqual(want.shape);
        expect(argmax.shape).toEqual(want.shape);
        expect(argmax.dtype).toBe('u32');
        expectSameValues(await e.read(y), want.y, 'y');
        // The argmax, read through the backward: dy = 1, 2, 3, ... per output, so each input's gradient
        // names the windows that chose it (sums of small integers are exact in f32).
        const ids = Float64Array.from({ length: want.y.length }, (_, i) => i + 1);
        const tIds = up(e, want.shape, ids);
        const o = stride === undefined ? { kernel } : params;
        expectSameValues(
          await e.read(e.maxPool2dBackward(tIds, argmax, shape, o)),
          ref.maxPool2dBackward(ids, want.argmax, want.shape, shape),
          'argmax (backward of 1, 2, 3, ...)',
        );
        const dy = f32(rng.uniformArray(want.y.length, -1, 1));
        const tdy = up(e, want.shape, dy);
        const dx = e.maxPool2dBackward(tdy, argmax, shape, o);
        expect(dx.shape).toEqual(shape);
        expectNear(await e.read(dx), ref.maxPool2dBackward(dy, want.argmax, want.shape, shape), 'dx', 1e-6);

        // After a ReLU (about half zeros, whole windows of zeros): reluOutput = the pool's output masks dy.
        const r = ref.relu(f32(rng.uniformArray(size, -2, 1.2)));
        const wantR = ref.maxPool2dForward(r, shape, params);
        const pooled = e.maxPool2d(up(e, shape, r), params);
        expectSameValues(await e.read(pooled.y), wantR.y, 'y after ReLU');
        expectNear(
          await e.read(e.maxPool2dBackward(tdy, pooled.argmax, shape, params)),
          ref.maxPool2dBackward(dy, wantR.argmax, wantR.shape, shape),
          'dx after ReLU, no reluOutput',
          1e-6,
        );
        expectNear(
          await e.read(e.maxPool2dBackward(tdy, pooled.argmax, shape, { ...params, reluOutput: pooled.y })),
          ref.maxPool2dReluBackward(dy, wantR.y, wantR.argmax, wantR.shape, shape),
          'dx with reluOutput',
          1e-6,
        );
      });
    }

    it('ties: the first maximum in window order wins (kernel 3 stride 2, kernel 2 stride 2, kernel 3 stride 1)', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(5);
      const shape: [number, number, number, number] = [2, 3, 9, 10];
      // Values from {-1, 0, 1}: most windows hold ties.
      const x = Float64Array.from({ length: sizeOf(shape) }, () => rng.int(3) - 1);
      for (const [kernel, stride] of [
        [3, 2],
        [2, 2],
        [3, 1],
      ]) {
        const want = ref.maxPool2dForward(x, shape, { kernel, stride });
        const { y, argmax } = e.maxPool2d(up(e, shape, x), { kernel, stride });
        expectSameValues(await e.read(y), want.y, `y, kernel ${kernel} stride ${stride}`);
        const ids = Float64Array.from({ length: want.y.length }, (_, i) => i + 1);
        expectSameValues(
          await e.read(e.maxPool2dBackward(up(e, want.shape, ids), argmax, shape, { kernel, stride })),
          ref.maxPool2dBackward(ids, want.argmax, want.shape, shape),
          `argmax, kernel ${kernel} stride ${stride}`,
        );
      }
    });
  });

  describe('dropout', () => {
    it('the reference mask and scale for a seed, forward and backward; new and into out', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(11);
      for (const [n, p, seed] of DROPOUT_CASES) {
        const x = f32(rng.uniformArray(n, -2, 2));
        for (let i = 0; i < n; i++) if (x[i] === 0) x[i] = 1; // a kept element is nonzero
        const want = ref.dropout(x, p, seed);
        const tx = up(e, [n], x);
        const got = await e.read(e.dropout(tx, { p, seed }));
        let maskDiffers = 0;
        for (let i = 0; i < n; i++) if ((got[i] === 0) !== (want[i] === 0)) maskDiffers++;
        expect(maskDiffers, `n ${n} p ${p} seed ${seed}: mask differs at ${maskDiffers} elements`).toBe(0);
        expectNear(got, want, `dropout n ${n} p ${p} seed ${seed}`, 1e-6);
        const back = await e.read(e.dropoutBackward(tx, { p, seed }));
        expectNear(back, want, `dropoutBackward n ${n} p ${p} seed ${seed}`, 1e-6);
        const out = poisoned(e, [n]);
        expect(e.dropout(tx, { p, seed, out })).toBe(out);
        expectNear(await e.read(out), want, 'dropout into out', 1e-6);
        const outB = poisoned(e, [n]);
        expect(e.dropoutBackward(tx, { p, seed, out: outB })).toBe(outB);
        expectNear(await e.read(outB), want, 'dropoutBackward into out', 1e-6);
      }
    });

    it('p = 0 is the identity, forward and backward', async () => {
      const e = engine();
      const x = Float32Array.from(randn(new ref.SeededRandom(13), 555));
      const tx = e.tensor([5, 111], x);
      expectSameBits(await e.read(e.dropout(tx, { p: 0, seed: 9 })), x, 'dropout p = 0');
      expectSameBits(await e.read(e.dropoutBackward(tx, { p: 0, seed: 9 })), x, 'dropoutBackward p = 0');
    });
  });

  describe('lstm', () => {
    LSTM_CASES.forEach((c, index) => {
      it(`forward and backward: ${lstmCaseName(c)}`, async () => {
        const e = engine();
        const d = lstmData(c, 1000 + index);
        const expected = ref.lstmForward(d.x, d.dims, d.w, d.h0, d.c0);
        const grads = ref.lstmBackward(d.x, d.dims, d.w, d.h0, d.c0, expected, d.dh, d.dhT, d.dcT);
        const got = await runLstm(e, d);
        for (const key of ['h', 'c', 'gates', 'hT', 'cT'] as const) expectNear(got[key], expected[key], key);
        for (const key of LSTM_GRADIENT_KEYS) {
          if (Math.max(...grads[key].map(Math.abs)) === 0) {
            // dW_hh with a zero state and T = 1: exactly zero, where a relative error means nothing.
            expectSameValues(got[key], grads[key], `${key} (all zero)`);
          } else {
            expectNear(got[key], grads[key], key);
          }
        }
      });
    });
  });

  it('sumChannels: [C] sums over N and the plane', async () => {
    const e = engine();
    const rng = new ref.SeededRandom(3);
    for (const shape of SUM_CHANNELS_SHAPES) {
      const [n, c] = shape;
      const p = sizeOf(shape.slice(2));
      const x = f32(rng.uniformArray(n * c * p, -1, 1));
      const s = e.sumChannels(up(e, shape, x));
      expect(s.shape).toEqual([c]);
      expectNear(await e.read(s), ref.sumChannels(x, n, c, p), `[${shape}]`);
    }
  });

  describe('element-wise updates', () => {
    it('axpy: y += alpha x in place, returns y', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(10);
      for (const n of [1, 13 * 17, 4099]) {
        const x = f32(rng.uniformArray(n, -1, 1));
        const y = f32(rng.uniformArray(n, -1, 1));
        const tx = up(e, [n], x);
        const ty = up(e, [n], y);
        expect(e.axpy(-0.37, tx, ty)).toBe(ty);
        expectNear(await e.read(ty), ref.axpy(-0.37, x, y), `axpy n ${n}`);
        expectSameBits(await e.read(tx), Float32Array.from(x), 'x unchanged');
      }
    });

    it('sgdMomentumStep follows torch.optim.SGD over several steps', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(11);
      const n = 1031;
      let w: Float64Array = f32(rng.uniformArray(n, -1, 1));
      let v: Float64Array = new Float64Array(n);
      const tw = up(e, [n], w);
      const tv = e.zeros([n]);
      const params = { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 };
      for (let step = 0; step < 3; step++) {
        const grad = f32(rng.uniformArray(n, -1, 1));
        e.sgdMomentumStep(tw, up(e, [n], grad), tv, params);
        ({ w, v } = ref.sgdMomentumStep(w, grad, v, params));
      }
      expectNear(await e.read(tw), w, 'w');
      expectNear(await e.read(tv), v, 'v');
    });

    for (const [shape, alpha] of TANH_CASES) {
      it(`tanhScaled and its backward on [${shape}] alpha ${alpha}`, async () => {
        const e = engine();
        const n = sizeOf(shape);
        const rng = new ref.SeededRandom(n + alpha * 100);
        const x = f32(rng.uniformArray(n, -3, 3));
        const dy = f32(rng.uniformArray(n, -1, 1));
        const tx = up(e, shape, x);
        const y = e.tanhScaled(tx, alpha);
        expect(y.shape).toEqual(shape);
        expectNear(await e.read(y), ref.tanhScaled(x, alpha), 'tanh');
        const tdy = up(e, shape, dy);
        const dx = e.tanhScaledBackward(tdy, tx, alpha);
        expect(dx.shape).toEqual(shape);
        expectNear(await e.read(dx), ref.tanhScaledBackward(dy, x, alpha), 'tanh backward');
        const out = poisoned(e, shape);
        expect(e.tanhScaled(tx, alpha, out)).toBe(out);
        expectNear(await e.read(out), ref.tanhScaled(x, alpha), 'tanh into out');
        const outB = poisoned(e, shape);
        expect(e.tanhScaledBackward(tdy, tx, alpha, outB)).toBe(outB);
        expectNear(await e.read(outB), ref.tanhScaledBackward(dy, x, alpha), 'tanh backward into out');
      });
    }

    it('tanhScaled stays finite for large |x| and is accurate for tiny |x|', async () => {
      const e = engine();
      const x = f32([1e4, -1e4, 5000, -87.5, 44.4, 20, -9.01, 0.5, 0.06, -0.07, 0, 1e-3, -1e-5, 1e-7, 3e-20]);
      for (const alpha of [1, 3]) {
        const tx = up(e, [x.length], x);
        const y = await e.read(e.tanhScaled(tx, alpha));
        expectNear(y, ref.tanhScaled(x, alpha), `tanh alpha ${alpha}`, 1e-6);
        for (let i = 0; i < x.length; i++) {
          const exact = Math.tanh(alpha * x[i]);
          const err = Math.abs(y[i] - exact) / Math.max(Math.abs(exact), 1e-38);
          expect(err, `tanh(${alpha} * ${x[i]}) = ${y[i]}, expected ${exact}`).toBeLessThan(1e-6);
        }
        const dy = new Float64Array(x.length).fill(1);
        const dx = await e.read(e.tanhScaledBackward(up(e, [x.length], dy), tx, alpha));
        expect(Array.from(dx).every(Number.isFinite), 'backward finite').toBe(true);
        expectNear(dx, ref.tanhScaledBackward(dy, x, alpha), `tanh backward alpha ${alpha}`, 1e-6);
        expect(dx[0]).toBe(0);
        expect(dx[1]).toBe(0);
      }
    });
  });

  describe('pairwiseTerms (the pairwise loss)', () => {
    for (const [B, N, balance] of PAIRWISE_CASES) {
      it(`[${B}, ${N}], balance ${balance}: coef and likelihood partials against the reference`, async () => {
        const e = engine();
        const { theta, sim } = pairwiseData(B, N);
        const o = { thetaScale: 0.5, scale: -1 / (2 * B * N), balance };
        const got = e.pairwiseTerms(up(e, [B, N], theta), up(e, [B, N], sim), o);
        expect(got.coef.shape).toEqual([B, N]);
        expect(got.likelihood.shape).toEqual([B, Math.ceil(N / PAIRWISE_CHUNK)]);
        const want = ref.pairwiseTerms(theta, sim, B, N, { ...o, chunk: PAIRWISE_CHUNK });
        expectNear(await e.read(got.coef), want.coef, 'coef', 1e-5);
        expectNear(await e.read(got.likelihood), want.likelihood, 'likelihood', 1e-5);
      });
    }

    it('refuses mismatched or non-matrix inputs', () => {
      const e = engine();
      const o = { thetaScale: 0.5, scale: 1, balance: true };
      expect(() => e.pairwiseTerms(e.zeros([6]), e.zeros([6]), o)).toThrow(/theta \[B, N\]/);
      expect(() => e.pairwiseTerms(e.zeros([2, 3]), e.zeros([2, 4]), o)).toThrow(KernelError);
      expect(() => e.pairwiseTerms(e.zeros([2, 3]), e.zeros([2, 3]), { ...o, scale: Number.NaN })).toThrow(
        /scale/,
      );
    });
  });

  describe('attack updates', () => {
    it('attackStep l2 / sign / raw; a zero-gradient row stays, a tiny one still steps', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(12);
      for (const [rows, cols] of ATTACK_STEP_SHAPES) {
        const delta = f32(rng.uniformArray(rows * cols, -0.05, 0.05));
        const grad = f32(rng.uniformArray(rows * cols, -1, 1));
        if (rows > 1) {
          grad.fill(0, 0, cols); // row 0: zero gradient, left unchanged
          for (let i = cols; i < 2 * cols; i++) grad[i] *= 1e-25; // row 1: squares underflow in f32
        }
        for (let i = 0; i < grad.length; i += 5) grad[i] = 0; // sign(0) = 0
        for (const mode of ['l2', 'sign', 'raw'] as const) {
          const td = up(e, [rows, cols], delta);
          e.attackStep(td, up(e, [rows, cols], grad), rows, { mode, lr: 0.01 });
          const want = ref.attackStep(delta, grad, rows, cols, { mode, lr: 0.01 });
          const got = await e.read(td);
          expectNear(got, want, `${mode} [${rows}, ${cols}]`);
          if (rows > 1 && mode === 'l2') {
            for (let r = 0; r < rows; r++) {
              expectNear(
                got.subarray(r * cols, (r + 1) * cols),
                want.subarray(r * cols, (r + 1) * cols),
                `l2 row ${r}`,
              );
            }
            expectSameBits(
              got.subarray(0, cols),
              Float32Array.from(delta.subarray(0, cols)),
              'zero-gradient row unchanged',
            );
          }
        }
      }
    });

    it('attackProject: per-channel box, then eps (one value or one per channel)', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(14);
      const lo = f32(ATTACK_MEAN.map((m, c) => -m / ATTACK_STD[c]));
      const hi = f32(ATTACK_MEAN.map((m, c) => (1 - m) / ATTACK_STD[c]));
      const eps = Math.fround(0.032);
      for (const [rows, channels, plane] of ATTACK_PROJECT_SHAPES) {
        const n = rows * channels * plane;
        const loC = lo.slice(0, channels);
        const hiC = hi.slice(0, channels);
        const xn = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          const c = Math.floor(i / plane) % channels;
          xn[i] = rng.uniform(loC[c] - 0.02, hiC[c] + 0.02);
          if (i % 3 === 0) xn[i] = rng.next() < 0.5 ? loC[c] + 0.01 : hiC[c] - 0.01;
        }
        const xnF = f32(xn);
        const delta = f32(rng.uniformArray(n, -0.1, 0.1));
        const shape = [rows, channels, plane];
        const base = { channels, planeSize: plane, lo: Array.from(loC), hi: Array.from(hiC) };
        const td = up(e, shape, delta);
        e.attackProject(td, up(e, shape, xnF), { ...base, eps });
        expectNear(
          await e.read(td),
          ref.attackProject(delta, xnF, rows, channels, plane, loC, hiC, eps),
          `eps ${eps} [${shape}]`,
          1e-5,
        );
        const epsC = ATTACK_STD.slice(0, channels).map((s) => Math.fround(0.01 / s));
        const td2 = up(e, shape, delta);
        e.attackProject(td2, up(e, shape, xnF), { ...base, eps: epsC });
        const want2 = ref.attackProject(delta, xnF, rows, channels, plane, loC, hiC, epsC);
        const got2 = await e.read(td2);
        expectNear(got2, want2, `per-channel eps [${shape}]`, 1e-5);
        for (let i = 0; i < n; i++) {
          const c = Math.floor(i / plane) % channels;
          if (!(Math.abs(got2[i]) <= epsC[c])) {
            expect.fail(`|delta[${i}]| = ${Math.abs(got2[i])} exceeds eps[${c}] = ${epsC[c]}`);
          }
        }
      }
    });

    it('attackStepProject: bit-identical to attackStep (l2) + attackProject + xn + delta, and the reference', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(15);
      for (const [rows, channels, plane] of ATTACK_STEP_PROJECT_SHAPES) {
        const n = rows * channels * plane;
        const lo = f32(ATTACK_MEAN.slice(0, channels).map((m, c) => -m / ATTACK_STD[c]));
        const hi = f32(ATTACK_MEAN.slice(0, channels).map((m, c) => (1 - m) / ATTACK_STD[c]));
        const xn = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          const c = Math.floor(i / plane) % channels;
          xn[i] = rng.uniform(lo[c], hi[c]);
          if (i % 4 === 0) xn[i] = rng.next() < 0.5 ? lo[c] + 0.01 : hi[c] - 0.01;
        }
        const xnF = f32(xn);
        const delta = f32(rng.uniformArray(n, -0.03, 0.03));
        const grad = f32(rng.uniformArray(n, -1, 1));
        if (rows > 1) grad.fill(0, 0, channels * plane); // a zero-gradient row: only projected
        const eps =
          channels > 1 ? ATTACK_STD.slice(0, channels).map((s) => Math.fround(0.01 / s)) : Math.fround(0.032);
        const options = { channels, planeSize: plane, lo: Array.from(lo), hi: Array.from(hi), eps };
        const shape = [rows, channels, plane];
        const txn = up(e, shape, xnF);
        const tg = up(e, shape, grad);
        const fused = up(e, shape, delta);
        const xAdv = poisoned(e, shape);
        e.attackStepProject(fused, tg, txn, xAdv, rows, { ...options, lr: 0.5 });
        const apart = up(e, shape, delta);
        e.attackStep(apart, tg, rows, { mode: 'l2', lr: 0.5 });
        e.attackProject(apart, txn, options);
        const gotDelta = await e.read(fused);
        expectSameBits(gotDelta, await e.read(apart), `delta [${shape}], fused vs apart`);
        const gotX = await e.read(xAdv);
        const sum = Float32Array.from(gotDelta, (d, i) => Math.fround(xnF[i] + d));
        expectSameBits(gotX, sum, `xAdv [${shape}] = xn + delta`);
        const want = ref.attackStepProject(delta, grad, xnF, rows, channels, plane, lo, hi, eps, 0.5);
        expectNear(gotDelta, want.delta, `delta [${shape}] vs reference`, 1e-5);
        expectNear(gotX, want.xAdv, `xAdv [${shape}] vs reference`, 1e-6);
      }
    });
  });

  describe('batch invariance: an object gives the same bytes at batch 1 and batch 5', () => {
    const B = 5;

    for (const [C, H, W, O, K, stride, padding] of [
      [3, 9, 10, 7, 3, 1, 1],
      [4, 11, 11, 37, 3, 2, 1],
      [16, 14, 14, 32, 3, 1, 1],
      [2, 12, 12, 5, 5, 1, 2],
    ]) {
      it(`conv2d and conv2dBackwardInput: x [*,${C},${H},${W}] w [${O},${C},${K},${K}] stride ${stride} padding ${padding}`, async () => {
        const e = engine();
        const rng = new ref.SeededRandom(C * 1000 + O);
        const p = { stride, padding };
        const x = randn(rng, B * C * H * W);
        const w = randn(rng, O * C * K * K);
        const b = randn(rng, O);
        const tw = up(e, [O, C, K, K], w);
        const tb = up(e, [O], b);
        const yAll = e.conv2d(up(e, [B, C, H, W], x), tw, tb, { ...p, relu: true });
        const [, , OH, OW] = yAll.shape;
        const gotY = await e.read(yAll);
        const dy = randn(rng, B * O * OH * OW);
        const gotDx = await e.read(e.conv2dBackwardInput(up(e, [B, O, OH, OW], dy), tw, [B, C, H, W], p));
        const xn = C * H * W;
        const yn = O * OH * OW;
        for (let i = 0; i < B; i++) {
          const one = await e.read(
            e.conv2d(up(e, [1, C, H, W], x.subarray(i * xn, (i + 1) * xn)), tw, tb, { ...p, relu: true }),
          );
          expectSameBits(one, gotY.subarray(i * yn, (i + 1) * yn), `conv2d object ${i}`);
          const dxOne = await e.read(
            e.conv2dBackwardInput(
              up(e, [1, O, OH, OW], dy.subarray(i * yn, (i + 1) * yn)),
              tw,
              [1, C, H, W],
              p,
            ),
          );
          expectSameBits(dxOne, gotDx.subarray(i * xn, (i + 1) * xn), `conv2dBackwardInput object ${i}`);
        }
      });
    }

    // [K, N, transB, with bias and ReLU]: a linear layer (B stored [N, K]) and its input gradient (B stored
    // [K, N]); long reductions with few columns, where split-K is tempting.
    for (const [K, N, transB, epilogue] of [
      [300, 37, true, true],
      [1028, 45, true, true],
      [300, 36, false, false],
      [1152, 20, false, false],
      [70, 17, false, true],
      [13, 129, true, false],
    ] as const) {
      it(`matmul rows: ${B}x${K}x${N} transB=${transB}${epilogue ? ' bias ReLU' : ''}`, async () => {
        const e = engine();
        const rng = new ref.SeededRandom(K * 7 + N);
        const a = randn(rng, B * K);
        const tb = up(e, [K * N], randn(rng, K * N));
        const o: EngineMatmulOptions = { transB };
        if (epilogue) {
          o.bias = up(e, [N], randn(rng, N));
          o.relu = true;
        }
        const all = await e.read(e.matmul(up(e, [B, K], a), tb, B, K, N, o));
        for (let i = 0; i < B; i++) {
          const one = await e.read(e.matmul(up(e, [1, K], a.subarray(i * K, (i + 1) * K)), tb, 1, K, N, o));
          expectSameBits(one, all.subarray(i * N, (i + 1) * N), `row ${i}`);
        }
      });
    }
  });

  describe('errors', () => {
    /** A tensor that no engine made. */
    const foreign = (shape: number[]): EngineTensor => {
      const t: EngineTensor = {
        shape,
        size: sizeOf(shape),
        dtype: 'f32',
        isReleased: false,
        reshape: () => t,
        release: () => {},
      };
      return t;
    };

    it("refuses a tensor that is not the engine's own, with KernelError", async () => {
      const e = engine();
      const own = e.zeros([4, 4]);
      await expectKernelError(() => e.relu(foreign([4, 4])));
      await expectKernelError(() => e.relu(own, foreign([4, 4])));
      await expectKernelError(() => e.read(foreign([4])));
      await expectKernelError(() => e.write(foreign([4]), new Float32Array(4)));
      await expectKernelError(() => e.copy(foreign([16]), own));
      await expectKernelError(() => e.matmul(own, foreign([16]), 4, 4, 4));
      await expectKernelError(() => e.axpy(1, own, foreign([4, 4])));
    });

    it('refuses a released tensor, with KernelError', async () => {
      const e = engine();
      const rng = new ref.SeededRandom(31);
      const x = up(e, [2, 3, 6, 6], randn(rng, 216));
      const w = up(e, [4, 3, 3, 3], randn(rng, 108));
      const t = up(e, [8], randn(rng, 8));
      t.release();
      expect(t.isReleased).toBe(true);
      await expectKernelError(() => e.read(t));
      await expectKernelError(() => e.relu(t));
      await expectKernelError(() => e.write(t, new Float32Array(8)));
      w.release();
      await expectKernelError(() => e.conv2d(x, w, null, { padding: 1 }));
      // The live tensor still works.
      expect((await e.read(x)).length).toBe(216);
    });

    it('refuses accumulate without out, and a reshape to another size', async () => {
      const e = engine();
      const a = e.zeros([3, 4]);
      await expectKernelError(() => e.matmul(a, e.zeros([4, 2]), 3, 4, 2, { accumulate: true }));
      await expectKernelError(() => a.reshape([5, 2]));
    });
  });
});

// ---- the two engines against each other ------------------------------------------------------------------

describe('webgpu and wasm engines agree', () => {
  const gpuEngine = useEngine(WEBGPU);
  const wasmEngine = useEngine(WASM);
  const both = () => [gpuEngine(), wasmEngine()] as const;

  it('conv2d forward (bias, ReLU) and both gradients', async () => {
    const rng = new ref.SeededRandom(41);
    const [N, C, H, W, O, K] = [3, 5, 10, 11, 19, 3];
    const p = { stride: 1, padding: 1 };
    const x = randn(rng, N * C * H * W);
    const w = randn(rng, O * C * K * K);
    const b = randn(rng, O);
    const dy = randn(rng, N * O * H * W);
    const results = [];
    for (const e of both()) {
      const tx = up(e, [N, C, H, W], x);
      const tw = up(e, [O, C, K, K], w);
      const tdy = up(e, [N, O, H, W], dy);
      results.push({
        y: await e.read(e.conv2d(tx, tw, up(e, [O], b), { ...p, relu: true })),
        dx: await e.read(e.conv2dBackwardInput(tdy, tw, [N, C, H, W], p)),
        dw: await e.read(e.conv2dBackwardWeight(tx, tdy, [O, C, K, K], p)),
        db: await e.read(e.sumChannels(tdy)),
      });
    }
    const [g, c] = results;
    expectNear(c.y, g.y, 'y');
    expectNear(c.dx, g.dx, 'dx');
    expectNear(c.dw, g.dw, 'dw');
    expectNear(c.db, g.db, 'db');
  });

  it('matmul with an epilogue, offsets and leading dimensions', async () => {
    const rng = new ref.SeededRandom(42);
    const [M, K, N] = [7, 260, 33];
    const [lda, ldb, ldc, aOff, bOff, cOff] = [K + 5, K + 3, N + 2, 3, 1, 4];
    const a = randn(rng, aOff + M * lda);
    const b = randn(rng, bOff + N * ldb);
    const bias = randn(rng, N);
    const c0 = randn(rng, cOff + M * ldc);
    const results: Float32Array[] = [];
    for (const e of both()) {
      const out = up(e, [c0.length], c0);
      e.matmul(up(e, [a.length], a), up(e, [b.length], b), M, K, N, {
        transB: true,
        bias: up(e, [N], bias),
        relu: true,
        alpha: 0.5,
        accumulate: true,
        out,
        lda,
        ldb,
        ldc,
        aOffset: aOff,
        bOffset: bOff,
        cOffset: cOff,
      });
      results.push(await e.read(out));
    }
    expectNear(results[1], results[0], 'C');
  });

  it('LSTM forward and backward', async () => {
    const d = lstmData({ N: 3, T: 5, I: 7, H: 6, initial: true, dhAll: true, final: true }, 43);
    const [g, c] = [await runLstm(gpuEngine(), d), await runLstm(wasmEngine(), d)];
    for (const key of Object.keys(g)) expectNear(c[key], g[key], key);
  });

  it('max-pool (values and argmax), dropout, ReLU: the same values; tanh within tolerance', async () => {
    const rng = new ref.SeededRandom(44);
    const shape = [2, 3, 11, 13];
    const n = sizeOf(shape);
    const x = f32(rng.uniformArray(n, -2, 2));
    const yShape = [2, 3, 5, 6];
    const ids = Float64Array.from({ length: sizeOf(yShape) }, (_, i) => i + 1);
    const results: Record<string, Float32Array>[] = [];
    for (const e of both()) {
      const tx = up(e, shape, x);
      const pool = e.maxPool2d(tx, { kernel: 3, stride: 2 });
      expect(pool.y.shape).toEqual(yShape);
      results.push({
        pool: await e.read(pool.y),
        argmax: await e.read(
          e.maxPool2dBackward(up(e, yShape, ids), pool.argmax, shape, { kernel: 3, stride: 2 }),
        ),
        dropout: await e.read(e.dropout(tx, { p: 0.3, seed: 77 })),
        relu: await e.read(e.relu(tx)),
        tanh: await e.read(e.tanhScaled(tx, 2.5)),
        tanhBack: await e.read(e.tanhScaledBackward(tx, tx, 2.5)),
      });
    }
    const [g, c] = results;
    expectSameValues(c.pool, g.pool, 'maxPool2d y');
    expectSameValues(c.argmax, g.argmax, 'maxPool2d argmax');
    expectSameValues(c.dropout, g.dropout, 'dropout');
    expectSameValues(c.relu, g.relu, 'relu');
    expectNear(c.tanh, g.tanh, 'tanh', 1e-6);
    expectNear(c.tanhBack, g.tanhBack, 'tanh backward');
  });

  it('the attack update, from the same delta', async () => {
    const rng = new ref.SeededRandom(45);
    const [rows, channels, plane] = [3, 3, 15 * 15];
    const n = rows * channels * plane;
    const xn = f32(rng.uniformArray(n, -1.8, 1.8));
    const delta = f32(rng.uniformArray(n, -0.03, 0.03));
    const grad = f32(rng.uniformArray(n, -1, 1));
    const options = {
      channels,
      planeSize: plane,
      lo: [-2, -1.5, -1],
      hi: [1, 1.5, 2],
      eps: [0.05, 0.04, 0.03],
    };
    const results: Float32Array[][] = [];
    for (const e of both()) {
      const shape = [rows, channels, plane];
      const td = up(e, shape, delta);
      const xAdv = poisoned(e, shape);
      e.attackStepProject(td, up(e, shape, grad), up(e, shape, xn), xAdv, rows, { ...options, lr: 0.5 });
      results.push([await e.read(td), await e.read(xAdv)]);
    }
    expectNear(results[1][0], results[0][0], 'delta', 1e-5);
    expectNear(results[1][1], results[0][1], 'xAdv', 1e-6);
  });

  it("refuses the other engine's tensors, with KernelError", async () => {
    const [g, c] = both();
    const tg = g.zeros([4, 4]);
    const tc = c.zeros([4, 4]);
    for (const [e, own, other] of [
      [g, tg, tc],
      [c, tc, tg],
    ] as const) {
      await expectKernelError(() => e.relu(other));
      await expectKernelError(() => e.relu(own, other));
      await expectKernelError(() => e.read(other));
      await expectKernelError(() => e.write(other, new Float32Array(16)));
      await expectKernelError(() => e.copy(other, own));
      await expectKernelError(() => e.copy(own, other));
      await expectKernelError(() => e.matmul(own, other, 4, 4, 4));
      await expectKernelError(() => e.conv2d(own.reshape([1, 1, 4, 4]), other.reshape([1, 1, 4, 4]), null));
      await expectKernelError(() => e.axpy(1, other, own));
    }
  });
});
