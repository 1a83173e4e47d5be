// The op checks of engine-ops.test.ts for a page (no vitest there): the same cases (engine-cases.ts), the
// same float64 references and the same tolerances, on any Engine. Each check records one result per op it
// compares, so a page reports which ops hold on its adapter.
import {
  type Engine,
  type EngineLstmWeights,
  type EngineMatmulOptions,
  type EngineTensor,
  PAIRWISE_CHUNK,
} from '../../src/engine.js';
import * as ref from '../../src/reference/index.js';
import {
  ATTACK_MEAN,
  ATTACK_PROJECT_SHAPES,
  ATTACK_STD,
  ATTACK_STEP_PROJECT_SHAPES,
  ATTACK_STEP_SHAPES,
  CHANNEL_AFFINE_SHAPES,
  CONV_CASES,
  DROPOUT_CASES,
  f32,
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
  randn,
  relativeError,
  SUM_CHANNELS_SHAPES,
  sizeOf,
  TANH_CASES,
} from '../engine-cases.js';

/** The ops the page reports on (the vitest side asserts each of them). */
export const OPS = [
  'matmul',
  'conv2d',
  'conv2dBackwardInput',
  'conv2dBackwardWeight',
  'relu',
  'reluBackward',
  'maxPool2d',
  'maxPool2dBackward',
  'dropout',
  'dropoutBackward',
  'lstmForward',
  'lstmBackward',
  'tanhScaled',
  'tanhScaledBackward',
  'sumChannels',
  'attackStep',
  'attackProject',
  'attackStepProject',
  'channelAffine',
  'pairwiseTerms',
] as const;
export type Op = (typeof OPS)[number];

export interface OpResult {
  op: Op;
  /** The case: shapes and options. */
  name: string;
  ok: boolean;
  /** What differed (empty when ok). */
  detail: string;
}

class Mismatch extends Error {}

function fail(message: string): never {
  throw new Mismatch(message);
}

/** Normwise relative error below tol (as expectNear). */
function near(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, tol = 1e-4): void {
  const err = relativeError(actual, expected);
  if (!(err < tol)) fail(`${label}: relative error ${err} (tolerance ${tol})`);
}

/** Equal values, NaN equals NaN (as expectSameValues). */
function sameValues(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  if (actual.length !== expected.length)
    fail(`${label}: length ${actual.length}, expected ${expected.length}`);
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
  if (bad)
    fail(
      `${label}: ${bad} of ${expected.length} elements differ, first at ${first}: ${actual[first]} vs ${expected[first]}`,
    );
}

/** Bit-for-bit equality (as expectSameBits). */
function sameBits(actual: Float32Array, expected: Float32Array, label: string): void {
  if (actual.length !== expected.length)
    fail(`${label}: length ${actual.length}, expected ${expected.length}`);
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
  if (bad)
    fail(
      `${label}: ${bad} of ${a.length} elements differ, first at ${first}: ${actual[first]} vs ${expected[first]}`,
    );
}

function equal(actual: unknown, expected: unknown, label: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    fail(`${label}: ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  }
}

function up(e: Engine, shape: readonly number[], data: ArrayLike<number>): EngineTensor {
  return e.tensor(shape, Float32Array.from(data));
}

function poisoned(e: Engine, shape: readonly number[]): EngineTensor {
  return e.tensor(shape, new Float32Array(sizeOf(shape)).fill(Number.NaN));
}

/**
 * Collects one result per (op, case); an op's comparisons in a case stop at its first mismatch. Checks of
 * ops outside `only` are skipped (their case data are still drawn, so every case sees the same data).
 */
class Recorder {
  constructor(
    readonly results: OpResult[],
    private readonly only: ReadonlySet<Op> | null,
    private readonly progress?: (message: string) => void,
  ) {}
  async check(op: Op, name: string, fn: () => Promise<void> | void): Promise<void> {
    if (this.only && !this.only.has(op)) return;
    this.progress?.(`${op}: ${name}`);
    try {
      await fn();
      this.results.push({ op, name, ok: true, detail: '' });
    } catch (err) {
      const detail =
        err instanceof Mismatch
          ? err.message
          : `threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
      this.results.push({ op, name, ok: false, detail });
    }
  }
}

// ---- matmul ----------------------------------------------------------------------------------------------

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
  if (out && c !== out) fail('matmul did not return out');
  if (!out) equal(c.size, cLen, 'C size');
  const got = await e.read(c);
  near(got, matmulExpected(a, b, M, K, N, o, c0), 'C');
  if (withOut) {
    const written = matmulWritten(M, K, N, o, cLen);
    const untouched = Float32Array.from(c0);
    let changed = 0;
    for (let i = 0; i < cLen; i++) if (!written[i] && !Object.is(got[i], untouched[i])) changed++;
    if (changed) fail(`${changed} elements of C outside the product changed`);
  }
}

async function matmulChecks(e: Engine, r: Recorder): Promise<void> {
  const rng = new ref.SeededRandom(7);
  for (const [M, K, N, transA, transB] of MATMUL_PLAIN) {
    await r.check('matmul', `${M}x${K}x${N} transA=${transA} transB=${transB}`, async () => {
      const a = randn(rng, M * K);
      const b = randn(rng, K * N);
      const c = e.matmul(up(e, [a.length], a), up(e, [b.length], b), M, K, N, { transA, transB });
      equal(c.shape, [M, N], 'shape');
      near(await e.read(c), ref.matmul(a, b, M, K, N, { transA, transB }), 'C');
    });
  }
  for (const [M, K, N, transA, transB] of MATMUL_EPILOGUE_SHAPES) {
    for (const [label, o, withOut] of MATMUL_EPILOGUES) {
      await r.check('matmul', `${M}x${K}x${N} transA=${transA} transB=${transB}: ${label}`, async () => {
        const withBias: MatmulCase = { ...o, transA, transB };
        if (o.bias) withBias.bias = randn(rng, (o.biasAxis ?? 'col') === 'col' ? N : M);
        await checkMatmul(e, rng, M, K, N, withBias, withOut);
      });
    }
  }
  for (const [M, K, N, transA, transB, [ar, ac, lda], [br, bc, ldb], [cr, cc, ldc]] of MATMUL_BLOCKS) {
    await r.check(
      'matmul',
      `${M}x${K}x${N} transA=${transA} transB=${transB}: sub-block lda ${lda} ldb ${ldb} ldc ${ldc}`,
      async () => {
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
      },
    );
  }
  await r.check('matmul', 'batches: dense, strided, offsets, epilogue, shared B', async () => {
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
    await checkMatmul(e, rng, M, K, N, { batch: 4, strideB: 0, transB: true, bias: randn(rng, N) }, false);
  });
}

// ---- conv2d ----------------------------------------------------------------------------------------------

async function convChecks(e: Engine, r: Recorder): Promise<void> {
  const rng = new ref.SeededRandom(3);
  for (const [N, C, H, W, O, K, stride, padding] of CONV_CASES) {
    const name = `x [${N},${C},${H},${W}] w [${O},${C},${K},${K}] stride ${stride} padding ${padding}`;
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
    await r.check('conv2d', name, async () => {
      const y = e.conv2d(tx, tw, tb, p);
      equal(y.shape, fwd.shape, 'shape');
      near(await e.read(y), fwd.y, 'y with bias');
      near(await e.read(e.conv2d(tx, tw, tb, { ...p, relu: true })), ref.relu(fwd.y), 'y, bias, ReLU');
      near(await e.read(e.conv2d(tx, tw, null, p)), noBias, 'y without bias');
      const yOut = poisoned(e, fwd.shape);
      if (e.conv2d(tx, tw, null, { ...p, relu: true, out: yOut }) !== yOut) fail('conv2d did not return out');
      near(await e.read(yOut), ref.relu(noBias), 'y into out, ReLU, no bias');
    });
    const dy = randn(rng, fwd.y.length);
    const tdy = up(e, fwd.shape, dy);
    // Drawn here, in the order engine-ops.test.ts draws them, whichever checks run.
    const dx0 = randn(rng, x.length);
    const dw0 = randn(rng, w.length);
    await r.check('conv2dBackwardInput', name, async () => {
      const dxRef = ref.conv2dBackwardInput(dy, fwd.shape, w, wShape, xShape, p);
      const dx = e.conv2dBackwardInput(tdy, tw, xShape, p);
      equal(dx.shape, xShape, 'shape');
      near(await e.read(dx), dxRef, 'dx');
      const dxOut = up(e, xShape, dx0);
      if (e.conv2dBackwardInput(tdy, tw, xShape, { ...p, out: dxOut }) !== dxOut) fail('did not return out');
      near(await e.read(dxOut), dxRef, 'dx into out');
    });
    await r.check('conv2dBackwardWeight', name, async () => {
      const dwRef = ref.conv2dBackwardWeight(x, xShape, dy, fwd.shape, wShape, p);
      const dw = e.conv2dBackwardWeight(tx, tdy, wShape, p);
      equal(dw.shape, wShape, 'shape');
      near(await e.read(dw), dwRef, 'dw');
      const over = up(e, wShape, dw0);
      if (e.conv2dBackwardWeight(tx, tdy, wShape, { ...p, out: over }) !== over) fail('did not return out');
      near(await e.read(over), dwRef, 'dw into out');
      const acc = up(e, wShape, dw0);
      e.conv2dBackwardWeight(tx, tdy, wShape, { ...p, out: acc, accumulate: true });
      near(
        await e.read(acc),
        dwRef.map((v, i) => v + dw0[i]),
        'dw accumulated',
      );
    });
    await r.check('sumChannels', `conv bias gradient, dy [${fwd.shape}]`, async () => {
      const s = e.sumChannels(tdy);
      equal(s.shape, [O], 'shape');
      near(await e.read(s), ref.conv2dBackwardBias(dy, fwd.shape), 'db');
    });
  }
}

// ---- element-wise, pooling, dropout ----------------------------------------------------------------------

async function reluChecks(e: Engine, r: Recorder): Promise<void> {
  await r.check('relu', 'keeps NaN, zeroes negatives; new and into out', async () => {
    const rng = new ref.SeededRandom(21);
    const x = f32(rng.uniformArray(1001, -2, 2));
    for (const i of [0, 17, 500, 1000]) x[i] = Number.NaN;
    x[3] = Number.NEGATIVE_INFINITY;
    x[4] = Number.POSITIVE_INFINITY;
    x[5] = 0;
    const tx = up(e, [7, 11, 13], x);
    const y = e.relu(tx);
    equal(y.shape, [7, 11, 13], 'shape');
    const got = await e.read(y);
    sameValues(got, ref.relu(x), 'relu');
    for (const i of [0, 17, 500, 1000]) if (!Number.isNaN(got[i])) fail(`element ${i} is ${got[i]}, not NaN`);
    const out = poisoned(e, [7, 11, 13]);
    if (e.relu(tx, out) !== out) fail('relu did not return out');
    sameValues(await e.read(out), ref.relu(x), 'relu into out');
  });
  await r.check('relu', 'fused into conv2d and matmul, keeps NaN', async () => {
    const x = new Float64Array(2 * 1 * 4 * 4).fill(1);
    x[0] = Number.NaN;
    x[21] = Number.NaN;
    const w = Float64Array.of(-1);
    const p = { stride: 1, padding: 0 };
    const want = ref.relu(ref.conv2dForward(x, [2, 1, 4, 4], w, [1, 1, 1, 1], null, p).y);
    const tx = up(e, [2, 1, 4, 4], x);
    const tw = up(e, [1, 1, 1, 1], w);
    sameValues(await e.read(e.conv2d(tx, tw, null, { ...p, relu: true })), want, 'conv2d, ReLU');
    sameValues(
      await e.read(e.matmul(tx, tw, 32, 1, 1, { relu: true })),
      ref.relu(ref.matmul(x, w, 32, 1, 1)),
      'matmul, ReLU',
    );
  });
  await r.check('reluBackward', 'passes dy where y > 0 only', async () => {
    const rng = new ref.SeededRandom(22);
    const y = ref.relu(f32(rng.uniformArray(777, -1, 1)));
    const dy = f32(rng.uniformArray(777, -1, 1));
    const want = ref.reluBackward(dy, y);
    const ty = up(e, [777], y);
    const tdy = up(e, [777], dy);
    sameValues(await e.read(e.reluBackward(tdy, ty)), want, 'reluBackward');
    const out = poisoned(e, [777]);
    if (e.reluBackward(tdy, ty, out) !== out) fail('did not return out');
    sameValues(await e.read(out), want, 'reluBackward into out');
  });
}

async function poolChecks(e: Engine, r: Recorder): Promise<void> {
  for (const { shape, kernel, stride } of MAXPOOL_CASES) {
    const name = `[${shape}] kernel ${kernel} stride ${stride ?? 'default'}`;
    const rng = new ref.SeededRandom(shape.reduce((a, b) => a * 31 + b, kernel));
    const params = { kernel, stride: stride ?? kernel };
    const o = stride === undefined ? { kernel } : params;
    const size = sizeOf(shape);
    const x = f32(rng.uniformArray(size, -2, 2));
    const want = ref.maxPool2dForward(x, shape, params);
    const { y, argmax } = e.maxPool2d(up(e, shape, x), o);
    await r.check('maxPool2d', name, async () => {
      equal(y.shape, want.shape, 'y shape');
      equal(argmax.shape, want.shape, 'argmax shape');
      equal(argmax.dtype, 'u32', 'argmax dtype');
      sameValues(await e.read(y), want.y, 'y');
    });
    const dy = f32(rng.uniformArray(want.y.length, -1, 1));
    const tdy = up(e, want.shape, dy);
    await r.check('maxPool2dBackward', name, async () => {
      const ids = Float64Array.from({ length: want.y.length }, (_, i) => i + 1);
      sameValues(
        await e.read(e.maxPool2dBackward(up(e, want.shape, ids), argmax, shape, o)),
        ref.maxPool2dBackward(ids, want.argmax, want.shape, shape),
        'argmax (backward of 1, 2, 3, ...)',
      );
      const dx = e.maxPool2dBackward(tdy, argmax, shape, o);
      equal(dx.shape, shape, 'dx shape');
      near(await e.read(dx), ref.maxPool2dBackward(dy, want.argmax, want.shape, shape), 'dx', 1e-6);
    });
    const rr = ref.relu(f32(rng.uniformArray(size, -2, 1.2)));
    const wantR = ref.maxPool2dForward(rr, shape, params);
    const pooled = e.maxPool2d(up(e, shape, rr), params);
    await r.check('maxPool2d', `${name}, after ReLU`, async () => {
      sameValues(await e.read(pooled.y), wantR.y, 'y after ReLU');
    });
    await r.check('maxPool2dBackward', `${name}, after ReLU, with and without reluOutput`, async () => {
      near(
        await e.read(e.maxPool2dBackward(tdy, pooled.argmax, shape, params)),
        ref.maxPool2dBackward(dy, wantR.argmax, wantR.shape, shape),
        'dx after ReLU, no reluOutput',
        1e-6,
      );
      near(
        await e.read(e.maxPool2dBackward(tdy, pooled.argmax, shape, { ...params, reluOutput: pooled.y })),
        ref.maxPool2dReluBackward(dy, wantR.y, wantR.argmax, wantR.shape, shape),
        'dx with reluOutput',
        1e-6,
      );
    });
  }
  await r.check('maxPool2d', 'ties: the first maximum in window order wins', async () => {
    const rng = new ref.SeededRandom(5);
    const shape: [number, number, number, number] = [2, 3, 9, 10];
    const x = Float64Array.from({ length: sizeOf(shape) }, () => rng.int(3) - 1);
    for (const [kernel, stride] of [
      [3, 2],
      [2, 2],
      [3, 1],
    ]) {
      const want = ref.maxPool2dForward(x, shape, { kernel, stride });
      const { y, argmax } = e.maxPool2d(up(e, shape, x), { kernel, stride });
      sameValues(await e.read(y), want.y, `y, kernel ${kernel} stride ${stride}`);
      const ids = Float64Array.from({ length: want.y.length }, (_, i) => i + 1);
      sameValues(
        await e.read(e.maxPool2dBackward(up(e, want.shape, ids), argmax, shape, { kernel, stride })),
        ref.maxPool2dBackward(ids, want.argmax, want.shape, shape),
        `argmax, kernel ${kernel} stride ${stride}`,
      );
    }
  });
}

async function dropoutChecks(e: Engine, r: Recorder): Promise<void> {
  const rng = new ref.SeededRandom(11);
  for (const [n, p, seed] of DROPOUT_CASES) {
    const name = `n ${n} p ${p} seed ${seed}`;
    const x = f32(rng.uniformArray(n, -2, 2));
    for (let i = 0; i < n; i++) if (x[i] === 0) x[i] = 1;
    const want = ref.dropout(x, p, seed);
    const tx = up(e, [n], x);
    await r.check('dropout', name, async () => {
      const got = await e.read(e.dropout(tx, { p, seed }));
      let maskDiffers = 0;
      for (let i = 0; i < n; i++) if ((got[i] === 0) !== (want[i] === 0)) maskDiffers++;
      if (maskDiffers) fail(`mask differs at ${maskDiffers} elements`);
      near(got, want, 'dropout', 1e-6);
      const out = poisoned(e, [n]);
      if (e.dropout(tx, { p, seed, out }) !== out) fail('did not return out');
      near(await e.read(out), want, 'dropout into out', 1e-6);
    });
    await r.check('dropoutBackward', name, async () => {
      near(await e.read(e.dropoutBackward(tx, { p, seed })), want, 'dropoutBackward', 1e-6);
      const outB = poisoned(e, [n]);
      if (e.dropoutBackward(tx, { p, seed, out: outB }) !== outB) fail('did not return out');
      near(await e.read(outB), want, 'dropoutBackward into out', 1e-6);
    });
  }
  await r.check('dropout', 'p = 0 is the identity, forward and backward', async () => {
    const x = Float32Array.from(randn(new ref.SeededRandom(13), 555));
    const tx = e.tensor([5, 111], x);
    sameBits(await e.read(e.dropout(tx, { p: 0, seed: 9 })), x, 'dropout p = 0');
    sameBits(await e.read(e.dropoutBackward(tx, { p: 0, seed: 9 })), x, 'dropoutBackward p = 0');
  });
}

// ---- LSTM ------------------------------------------------------------------------------------------------

async function lstmChecks(e: Engine, r: Recorder): Promise<void> {
  for (const [index, c] of LSTM_CASES.entries()) {
    const name = lstmCaseName(c);
    const d: LstmData = lstmData(c, 1000 + index);
    const { N, T, I, H } = d.dims;
    const expected = ref.lstmForward(d.x, d.dims, d.w, d.h0, d.c0);
    const grads = ref.lstmBackward(d.x, d.dims, d.w, d.h0, d.c0, expected, d.dh, d.dhT, d.dcT);
    const w: EngineLstmWeights = {
      wIh: up(e, [4 * H, I], d.w.wIh),
      wHh: up(e, [4 * H, H], d.w.wHh),
      bIh: up(e, [4 * H], d.w.bIh),
      bHh: up(e, [4 * H], d.w.bHh),
    };
    const x = up(e, [N, T, I], d.x);
    const h0 = d.h0 ? up(e, [N, H], d.h0) : null;
    const c0 = d.c0 ? up(e, [N, H], d.c0) : null;
    let forward: ReturnType<Engine['lstmForward']> | null = null;
    // Absent states both ways the signature allows: omitted in the forward, null in the backward.
    const lstmForward = () => {
      forward ??= d.h0 ? e.lstmForward(x, w, h0, c0) : e.lstmForward(x, w);
      return forward;
    };
    await r.check('lstmForward', name, async () => {
      const fwd = lstmForward();
      equal(fwd.h.shape, [N, T, H], 'h shape');
      equal(fwd.gates.shape, [N, T, 4 * H], 'gates shape');
      for (const key of ['h', 'c', 'gates', 'hT', 'cT'] as const)
        near(await e.read(fwd[key]), expected[key], key);
    });
    await r.check('lstmBackward', name, async () => {
      const fwd = lstmForward();
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
      for (const key of LSTM_GRADIENT_KEYS) {
        const got = await e.read(back[key]);
        if (Math.max(...grads[key].map(Math.abs)) === 0) sameValues(got, grads[key], `${key} (all zero)`);
        else near(got, grads[key], key);
      }
    });
  }
}

// ---- reductions, tanh, attack updates, channel affine ----------------------------------------------------

async function sumChannelsChecks(e: Engine, r: Recorder): Promise<void> {
  const rng = new ref.SeededRandom(3);
  for (const shape of SUM_CHANNELS_SHAPES) {
    await r.check('sumChannels', `[${shape}]`, async () => {
      const [n, c] = shape;
      const p = sizeOf(shape.slice(2));
      const x = f32(rng.uniformArray(n * c * p, -1, 1));
      const s = e.sumChannels(up(e, shape, x));
      equal(s.shape, [c], 'shape');
      near(await e.read(s), ref.sumChannels(x, n, c, p), `[${shape}]`);
    });
  }
}

async function tanhChecks(e: Engine, r: Recorder): Promise<void> {
  for (const [shape, alpha] of TANH_CASES) {
    const name = `[${shape}] alpha ${alpha}`;
    const n = sizeOf(shape);
    const rng = new ref.SeededRandom(n + alpha * 100);
    const x = f32(rng.uniformArray(n, -3, 3));
    const dy = f32(rng.uniformArray(n, -1, 1));
    const tx = up(e, shape, x);
    await r.check('tanhScaled', name, async () => {
      const y = e.tanhScaled(tx, alpha);
      equal(y.shape, shape, 'shape');
      near(await e.read(y), ref.tanhScaled(x, alpha), 'tanh');
      const out = poisoned(e, shape);
      if (e.tanhScaled(tx, alpha, out) !== out) fail('did not return out');
      near(await e.read(out), ref.tanhScaled(x, alpha), 'tanh into out');
    });
    await r.check('tanhScaledBackward', name, async () => {
      const tdy = up(e, shape, dy);
      near(
        await e.read(e.tanhScaledBackward(tdy, tx, alpha)),
        ref.tanhScaledBackward(dy, x, alpha),
        'tanh backward',
      );
      const outB = poisoned(e, shape);
      if (e.tanhScaledBackward(tdy, tx, alpha, outB) !== outB) fail('did not return out');
      near(await e.read(outB), ref.tanhScaledBackward(dy, x, alpha), 'tanh backward into out');
    });
  }
  const x = f32([1e4, -1e4, 5000, -87.5, 44.4, 20, -9.01, 0.5, 0.06, -0.07, 0, 1e-3, -1e-5, 1e-7, 3e-20]);
  for (const alpha of [1, 3]) {
    const tx = up(e, [x.length], x);
    await r.check('tanhScaled', `finite for large |x|, accurate for tiny |x|, alpha ${alpha}`, async () => {
      const y = await e.read(e.tanhScaled(tx, alpha));
      near(y, ref.tanhScaled(x, alpha), `tanh alpha ${alpha}`, 1e-6);
      for (let i = 0; i < x.length; i++) {
        const exact = Math.tanh(alpha * x[i]);
        const err = Math.abs(y[i] - exact) / Math.max(Math.abs(exact), 1e-38);
        if (!(err < 1e-6)) fail(`tanh(${alpha} * ${x[i]}) = ${y[i]}, expected ${exact}`);
      }
    });
    await r.check('tanhScaledBackward', `finite for large |x|, alpha ${alpha}`, async () => {
      const dy = new Float64Array(x.length).fill(1);
      const dx = await e.read(e.tanhScaledBackward(up(e, [x.length], dy), tx, alpha));
      if (!Array.from(dx).every(Number.isFinite)) fail('backward not finite');
      near(dx, ref.tanhScaledBackward(dy, x, alpha), `tanh backward alpha ${alpha}`, 1e-6);
      if (dx[0] !== 0 || dx[1] !== 0) fail(`saturated gradient ${dx[0]}, ${dx[1]}, expected 0`);
    });
  }
}

async function pairwiseChecks(e: Engine, r: Recorder): Promise<void> {
  for (const [B, N, balance] of PAIRWISE_CASES) {
    await r.check('pairwiseTerms', `[${B}, ${N}] balance ${balance}`, async () => {
      const { theta, sim } = pairwiseData(B, N);
      const o = { thetaScale: 0.5, scale: -1 / (2 * B * N), balance };
      const got = e.pairwiseTerms(up(e, [B, N], theta), up(e, [B, N], sim), o);
      equal(got.likelihood.shape, [B, Math.ceil(N / PAIRWISE_CHUNK)], 'likelihood shape');
      const want = ref.pairwiseTerms(theta, sim, B, N, { ...o, chunk: PAIRWISE_CHUNK });
      near(await e.read(got.coef), want.coef, 'coef', 1e-5);
      near(await e.read(got.likelihood), want.likelihood, 'likelihood', 1e-5);
    });
  }
}

async function attackChecks(e: Engine, r: Recorder): Promise<void> {
  const mean = ATTACK_MEAN;
  const std = ATTACK_STD;
  {
    const rng = new ref.SeededRandom(12);
    for (const [rows, cols] of ATTACK_STEP_SHAPES) {
      const delta = f32(rng.uniformArray(rows * cols, -0.05, 0.05));
      const grad = f32(rng.uniformArray(rows * cols, -1, 1));
      if (rows > 1) {
        grad.fill(0, 0, cols);
        for (let i = cols; i < 2 * cols; i++) grad[i] *= 1e-25;
      }
      for (let i = 0; i < grad.length; i += 5) grad[i] = 0;
      for (const mode of ['l2', 'sign', 'raw'] as const) {
        await r.check('attackStep', `${mode} [${rows}, ${cols}]`, async () => {
          const td = up(e, [rows, cols], delta);
          e.attackStep(td, up(e, [rows, cols], grad), rows, { mode, lr: 0.01 });
          const want = ref.attackStep(delta, grad, rows, cols, { mode, lr: 0.01 });
          const got = await e.read(td);
          near(got, want, `${mode} [${rows}, ${cols}]`);
          if (rows > 1 && mode === 'l2') {
            for (let row = 0; row < rows; row++) {
              near(
                got.subarray(row * cols, (row + 1) * cols),
                want.subarray(row * cols, (row + 1) * cols),
                `l2 row ${row}`,
              );
            }
            sameBits(
              got.subarray(0, cols),
              Float32Array.from(delta.subarray(0, cols)),
              'zero-gradient row unchanged',
            );
          }
        });
      }
    }
  }
  {
    const rng = new ref.SeededRandom(14);
    const lo = f32(mean.map((m, c) => -m / std[c]));
    const hi = f32(mean.map((m, c) => (1 - m) / std[c]));
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
      await r.check('attackProject', `[${shape}], one eps and per-channel eps`, async () => {
        const td = up(e, shape, delta);
        e.attackProject(td, up(e, shape, xnF), { ...base, eps });
        near(
          await e.read(td),
          ref.attackProject(delta, xnF, rows, channels, plane, loC, hiC, eps),
          `eps ${eps}`,
          1e-5,
        );
        const epsC = std.slice(0, channels).map((s) => Math.fround(0.01 / s));
        const td2 = up(e, shape, delta);
        e.attackProject(td2, up(e, shape, xnF), { ...base, eps: epsC });
        const got2 = await e.read(td2);
        near(
          got2,
          ref.attackProject(delta, xnF, rows, channels, plane, loC, hiC, epsC),
          'per-channel eps',
          1e-5,
        );
        for (let i = 0; i < n; i++) {
          const c = Math.floor(i / plane) % channels;
          if (!(Math.abs(got2[i]) <= epsC[c]))
            fail(`|delta[${i}]| = ${Math.abs(got2[i])} exceeds eps[${c}] = ${epsC[c]}`);
        }
      });
    }
  }
  {
    const rng = new ref.SeededRandom(15);
    for (const [rows, channels, plane] of ATTACK_STEP_PROJECT_SHAPES) {
      const n = rows * channels * plane;
      const lo = f32(mean.slice(0, channels).map((m, c) => -m / std[c]));
      const hi = f32(mean.slice(0, channels).map((m, c) => (1 - m) / std[c]));
      const xn = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const c = Math.floor(i / plane) % channels;
        xn[i] = rng.uniform(lo[c], hi[c]);
        if (i % 4 === 0) xn[i] = rng.next() < 0.5 ? lo[c] + 0.01 : hi[c] - 0.01;
      }
      const xnF = f32(xn);
      const delta = f32(rng.uniformArray(n, -0.03, 0.03));
      const grad = f32(rng.uniformArray(n, -1, 1));
      if (rows > 1) grad.fill(0, 0, channels * plane);
      const eps =
        channels > 1 ? std.slice(0, channels).map((s) => Math.fround(0.01 / s)) : Math.fround(0.032);
      const options = { channels, planeSize: plane, lo: Array.from(lo), hi: Array.from(hi), eps };
      const shape = [rows, channels, plane];
      await r.check(
        'attackStepProject',
        `[${shape}]: = attackStep (l2) + attackProject, xAdv = xn + delta, reference`,
        async () => {
          const txn = up(e, shape, xnF);
          const tg = up(e, shape, grad);
          const fused = up(e, shape, delta);
          const xAdv = poisoned(e, shape);
          e.attackStepProject(fused, tg, txn, xAdv, rows, { ...options, lr: 0.5 });
          const apart = up(e, shape, delta);
          e.attackStep(apart, tg, rows, { mode: 'l2', lr: 0.5 });
          e.attackProject(apart, txn, options);
          const gotDelta = await e.read(fused);
          sameBits(gotDelta, await e.read(apart), 'delta, fused vs apart');
          const gotX = await e.read(xAdv);
          sameBits(
            gotX,
            Float32Array.from(gotDelta, (dv, i) => Math.fround(xnF[i] + dv)),
            'xAdv = xn + delta',
          );
          const want = ref.attackStepProject(delta, grad, xnF, rows, channels, plane, lo, hi, eps, 0.5);
          near(gotDelta, want.delta, 'delta vs reference', 1e-5);
          near(gotX, want.xAdv, 'xAdv vs reference', 1e-6);
        },
      );
    }
  }
}

async function channelAffineChecks(e: Engine, r: Recorder): Promise<void> {
  const rng = new ref.SeededRandom(12);
  for (const [rows, channels, plane] of CHANNEL_AFFINE_SHAPES) {
    const x = f32(rng.uniformArray(rows * channels * plane, 0, 1));
    const scale = Array.from({ length: channels }, () => rng.uniform(0.5, 5));
    const shift = Array.from({ length: channels }, () => rng.uniform(-2, 2));
    await r.check('channelAffine', `[${rows}, ${channels}, ${plane}], new and into out`, async () => {
      const want = ref.channelAffine(x, channels, plane, scale.map(Math.fround), shift.map(Math.fround));
      const tx = up(e, [rows, channels, plane], x);
      const y = e.channelAffine(tx, { channels, planeSize: plane, scale, shift });
      equal(y.shape, [rows, channels, plane], 'shape');
      near(await e.read(y), want, 'y', 1e-6);
      const out = poisoned(e, [rows, channels, plane]);
      if (e.channelAffine(tx, { channels, planeSize: plane, scale, shift, out }) !== out)
        fail('did not return out');
      near(await e.read(out), want, 'into out', 1e-6);
    });
  }
}

/**
 * Runs the checks of the ops in `only` (default: all) on the engine; one result per (op, case), appended to
 * `results` as each case ends (a caller that gives up on a hung case still has the ones before it).
 * `progress` hears of each case as it starts.
 */
export async function runOpChecks(
  e: Engine,
  only: readonly Op[] | null = null,
  progress?: (message: string) => void,
  results: OpResult[] = [],
): Promise<OpResult[]> {
  const r = new Recorder(results, only ? new Set(only) : null, progress);
  const groups: Array<[string, (e: Engine, r: Recorder) => Promise<void>]> = [
    ['matmul', matmulChecks],
    ['conv2d', convChecks],
    ['relu', reluChecks],
    ['maxPool2d', poolChecks],
    ['dropout', dropoutChecks],
    ['lstm', lstmChecks],
    ['sumChannels', sumChannelsChecks],
    ['tanh', tanhChecks],
    ['attack', attackChecks],
    ['channelAffine', channelAffineChecks],
    ['pairwiseTerms', pairwiseChecks],
  ];
  for (const [name, run] of groups) {
    const t0 = performance.now();
    const before = r.results.length;
    try {
      await run(e, r);
    } catch (err) {
      // A throw outside a check (while preparing a case): reported against the group's first op.
      const op = (OPS.find((o) => o.startsWith(name)) ?? 'matmul') as Op;
      r.results.push({ op, name: `${name} (setup)`, ok: false, detail: `threw ${String(err)}` });
    }
    if (r.results.length > before) {
      progress?.(
        `${name}: ${r.results.length - before} results in ${(performance.now() - t0).toFixed(0)} ms`,
      );
    }
  }
  return r.results;
}
