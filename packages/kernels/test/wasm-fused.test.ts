// The WebAssembly engine's fused and specialised routines (src/wasm/cpu.wat.ts): step_project (the attack's
// L2 step and clamps), conv_rows (stride-1 convolutions with few output channels or few taps: first layers
// and their input gradients), lstm_gates / lstm_gates_backward (the LSTM's gate math in f32x4 with its own
// exp, sigmoid and tanh) and maxpool2_backward (2x2 pools that tile their input). Each against the float64
// references, or bit for bit against the general path it replaces, on shapes around their vector widths and
// blocks, and the same bits on 1, 2 and 3 threads.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ref from '../src/reference/index.js';
import {
  convRowsApplies,
  maxPool2dBackwardInto,
  maxPool2dInto,
  ROW_BLOCK,
  WasmCpu,
  WasmEngine,
  type WasmTensor,
} from '../src/wasm/index.js';
import { expectClose, expectSameBits, f32, randn } from './helpers.js';

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function up(e: WasmEngine, shape: readonly number[], data: ArrayLike<number>): WasmTensor {
  return e.tensor(shape, Float32Array.from(data));
}

const engines: Record<number, WasmEngine> = {};
beforeAll(async () => {
  for (const t of [1, 2, 3]) engines[t] = await WasmEngine.create({ threads: t });
});
afterAll(() => {
  for (const e of Object.values(engines)) e.destroy();
});
const all = () => [engines[1], engines[2], engines[3]];

describe('step_project (attackStepProject)', () => {
  // [rows, channels, plane]: planes around the 4-wide vectors (1..9), one of many vectors and a tail, the
  // small CNN's and the video model's rows.
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1],
    [3, 1, 2],
    [2, 3, 3],
    [4, 2, 4],
    [3, 3, 5],
    [5, 1, 7],
    [2, 3, 9],
    [3, 2, 33],
    [7, 1, 28 * 28],
    [2, 1, 10 * 32 * 32],
  ];
  for (const [rows, channels, plane] of shapes) {
    it(`bit-identical to attackStep (l2) + attackProject + xn + delta on 1, 2, 3 threads: [${rows}, ${channels}, ${plane}]`, async () => {
      const rng = new ref.SeededRandom(rows * 1000 + channels * 100 + plane);
      const n = rows * channels * plane;
      const cols = channels * plane;
      const delta = f32(rng.uniformArray(n, -0.04, 0.04));
      const g = randn(rng, n);
      if (rows > 1) g.fill(0, 0, cols); // a row that does not move, only projected
      if (rows > 2) for (let i = 2 * cols; i < 3 * cols; i++) g[i] *= 1e-30; // tiny but moving
      const xn = f32(rng.uniformArray(n, -2.2, 2.2));
      const lo = [-2, -1.5, -1.9].slice(0, channels);
      const hi = [1.9, 2.1, 1.5].slice(0, channels);
      const eps = [0.03, 0.05, 0.02].slice(0, channels);
      const opts = { channels, planeSize: plane, lo, hi, eps, lr: 0.37 };
      const results: Float32Array[][] = [];
      for (const e of all()) {
        const tg = up(e, [rows, cols], g);
        const txn = up(e, [rows, cols], xn);
        const d1 = up(e, [rows, cols], delta);
        e.attackStep(d1, tg, rows, { mode: 'l2', lr: opts.lr });
        e.attackProject(d1, txn, opts);
        const a1 = e.empty([rows, cols]);
        e.copy(txn, a1);
        e.axpy(1, d1, a1);
        const d2 = up(e, [rows, cols], delta);
        const a2 = e.tensor([rows, cols], new Float32Array(n).fill(Number.NaN));
        e.attackStepProject(d2, tg, txn, a2, rows, opts);
        const got = [await e.read(d2), await e.read(a2)];
        expectSameBits(got[0], await e.read(d1), `delta, ${e.threads} thread(s)`);
        expectSameBits(got[1], await e.read(a1), `xAdv, ${e.threads} thread(s)`);
        results.push(got);
        for (const t of [tg, txn, d1, a1, d2, a2]) t.release();
      }
      const want = ref.attackStepProject(
        delta,
        g,
        xn,
        rows,
        channels,
        plane,
        Float64Array.from(lo),
        Float64Array.from(hi),
        eps,
        opts.lr,
      );
      expectClose(results[0][0], want.delta, 1e-5);
      expectClose(results[0][1], want.xAdv, 1e-6);
    });
  }
});

describe('conv_rows (first layers and their input gradients)', () => {
  // [N, C, H, W, O, K, padding]: the input gradient of layers on one or two input channels (and the forward of
  // layers with one or two filters), with rows of 1 to 5 blocks of 16 columns, whole and partial; 1x1 kernels;
  // paddings 0 and 2.
  const cases: Array<[number, number, number, number, number, number, number]> = [
    [2, 1, 9, 5, 3, 3, 1],
    [3, 1, 28, 28, 32, 3, 1],
    [2, 1, 11, 32, 5, 3, 1],
    [2, 2, 7, 70, 4, 3, 1],
    [2, 1, 12, 33, 3, 3, 0],
    [2, 16, 10, 37, 1, 3, 1],
    [3, 5, 9, 66, 2, 3, 2],
    [2, 7, 6, 40, 2, 1, 0],
    [2, 2, 5, 31, 6, 1, 0],
  ];
  for (const [N, C, H, W, O, K, padding] of cases) {
    it(`conv2d and conv2dBackwardInput match the references: x [${N},${C},${H},${W}] w [${O},${C},${K},${K}] p${padding}`, async () => {
      const p = { stride: 1, padding };
      const forwardRows = convRowsApplies({ O, stride: 1 });
      const backwardRows = convRowsApplies({ O: C, stride: 1 });
      expect(forwardRows || backwardRows, 'the case runs conv_rows one way at least').toBe(true);
      const rng = new ref.SeededRandom(N * 7 + C * 31 + W);
      const xShape = [N, C, H, W];
      const wShape = [O, C, K, K];
      const x = randn(rng, sizeOf(xShape));
      const w = randn(rng, sizeOf(wShape));
      const b = randn(rng, O);
      const want = ref.conv2dForward(x, xShape, w, wShape, b, p);
      const dy = randn(rng, want.y.length);
      const wantDx = ref.conv2dBackwardInput(dy, want.shape, w, wShape, xShape, p);
      const results: Float32Array[][] = [];
      for (const e of all()) {
        const tx = up(e, xShape, x);
        const tw = up(e, wShape, w);
        const tb = up(e, [O], b);
        const y = e.conv2d(tx, tw, tb, p);
        const yr = e.conv2d(tx, tw, tb, { ...p, relu: true });
        const dx = e.conv2dBackwardInput(up(e, want.shape, dy), tw, xShape, p);
        results.push([await e.read(y), await e.read(yr), await e.read(dx)]);
      }
      expectClose(results[0][0], want.y);
      expectClose(results[0][1], ref.relu(want.y));
      expectClose(results[0][2], wantDx);
      for (const r of results.slice(1))
        for (const [k, v] of r.entries()) expectSameBits(v, results[0][k], `output ${k} across threads`);
    });
  }

  it('an object gives the same bits alone and in a batch (columns of several images in one block)', async () => {
    const rng = new ref.SeededRandom(5);
    const [N, H, W, O] = [5, 6, 13, 4];
    const x = randn(rng, N * H * W);
    const w = randn(rng, O * 9);
    const dy = randn(rng, N * O * H * W);
    const e = engines[2];
    const tw = up(e, [O, 1, 3, 3], w);
    const y = await e.read(e.conv2d(up(e, [N, 1, H, W], x), tw, null, { padding: 1 }));
    const dx = await e.read(e.conv2dBackwardInput(up(e, [N, O, H, W], dy), tw, [N, 1, H, W], { padding: 1 }));
    for (let n = 0; n < N; n++) {
      const y1 = await e.read(
        e.conv2d(up(e, [1, 1, H, W], x.subarray(n * H * W, (n + 1) * H * W)), tw, null, { padding: 1 }),
      );
      expectSameBits(y1, y.slice(n * O * H * W, (n + 1) * O * H * W), `y of object ${n}`);
      const dx1 = await e.read(
        e.conv2dBackwardInput(
          up(e, [1, O, H, W], dy.subarray(n * O * H * W, (n + 1) * O * H * W)),
          tw,
          [1, 1, H, W],
          {
            padding: 1,
          },
        ),
      );
      expectSameBits(dx1, dx.slice(n * H * W, (n + 1) * H * W), `dx of object ${n}`);
    }
  });

  it('blocks are 16 columns (the cases above have 1 to 5 blocks per row, whole and partial)', () => {
    expect(ROW_BLOCK).toBe(16);
  });
});

describe('lstm_gates and lstm_gates_backward (H not a multiple of 4, and a long row)', () => {
  for (const [N, T, I, H, scale] of [
    [3, 4, 9, 37, 1],
    [2, 3, 5, 128, 1],
    [4, 2, 6, 7, 8],
  ]) {
    it(`forward and backward match the float64 reference on 1, 2, 3 threads: N=${N} T=${T} I=${I} H=${H} scale ${scale}`, async () => {
      const rng = new ref.SeededRandom(N * 100 + H);
      const data = (n: number, s: number) => f32(rng.uniformArray(n, -s, s));
      const w = {
        wIh: data(4 * H * I, (0.6 * scale) / Math.sqrt(I)),
        wHh: data(4 * H * H, (0.6 * scale) / Math.sqrt(H)),
        bIh: data(4 * H, 0.5),
        bHh: data(4 * H, 0.5),
      };
      const x = data(N * T * I, scale);
      const h0 = data(N * H, 1);
      const c0 = data(N * H, 2);
      const dh = data(N * T * H, 1);
      const dhT = data(N * H, 1);
      const dcT = data(N * H, 1);
      const dims = { N, T, I, H };
      const fwd = ref.lstmForward(x, dims, w, h0, c0);
      const grads = ref.lstmBackward(x, dims, w, h0, c0, fwd, dh, dhT, dcT);
      const results: Record<string, Float32Array>[] = [];
      for (const e of all()) {
        const tw = {
          wIh: up(e, [4 * H, I], w.wIh),
          wHh: up(e, [4 * H, H], w.wHh),
          bIh: up(e, [4 * H], w.bIh),
          bHh: up(e, [4 * H], w.bHh),
        };
        const tx = up(e, [N, T, I], x);
        const th0 = up(e, [N, H], h0);
        const tc0 = up(e, [N, H], c0);
        const f = e.lstmForward(tx, tw, th0, tc0);
        const g = e.lstmBackward(
          tx,
          tw,
          th0,
          tc0,
          f,
          up(e, [N, T, H], dh),
          up(e, [N, H], dhT),
          up(e, [N, H], dcT),
        );
        const out: Record<string, Float32Array> = {};
        for (const [k, t] of Object.entries({ ...f, ...g })) out[k] = await e.read(t);
        results.push(out);
      }
      const r = results[0];
      for (const k of ['h', 'c', 'gates', 'hT', 'cT'] as const) expectClose(r[k], fwd[k], 1e-5);
      for (const k of ['dx', 'dWih', 'dWhh', 'dbIh', 'dbHh', 'dh0', 'dc0'] as const)
        expectClose(r[k], grads[k], 1e-4);
      for (const other of results.slice(1))
        for (const k of Object.keys(r)) expectSameBits(other[k], r[k], `${k} across threads`);
    });
  }

  it('sigmoid and tanh saturate to exact 0 / 1 / -1 without NaN, and keep a NaN', async () => {
    const e = engines[1];
    const H = 5;
    // One step, no recurrence: gates = x W_ih^T + b = the pre-activations themselves (W_ih = identity-ish).
    const pre = [-1e4, -90, 0, 90, 1e4];
    const wIh = new Float32Array(4 * H * 4 * H);
    for (let i = 0; i < 4 * H; i++) wIh[i * 4 * H + i] = 1;
    const xs = new Float32Array(4 * H);
    for (let q = 0; q < 4; q++) for (let j = 0; j < H; j++) xs[q * H + j] = pre[j];
    const f = e.lstmForward(e.tensor([1, 1, 4 * H], xs), {
      wIh: e.tensor([4 * H, 4 * H], wIh),
      wHh: e.zeros([4 * H, H]),
      bIh: e.zeros([4 * H]),
      bHh: e.zeros([4 * H]),
    });
    const gates = await e.read(f.gates);
    for (let j = 0; j < H; j++) {
      const sig = gates[j];
      const th = gates[2 * H + j];
      // e^-90 (8e-40) is below the exp's range: 0, as e^-10000.
      expect(sig).toBe(j < 2 ? 0 : j === 2 ? 0.5 : 1);
      expect(th).toBe(j < 2 ? -1 : j === 2 ? 0 : 1);
    }
    const nan = e.lstmForward(e.tensor([1, 1, 4 * H], new Float32Array(4 * H).fill(Number.NaN)), {
      wIh: e.tensor([4 * H, 4 * H], wIh),
      wHh: e.zeros([4 * H, H]),
      bIh: e.zeros([4 * H]),
      bHh: e.zeros([4 * H]),
    });
    expect((await e.read(nan.h)).every(Number.isNaN)).toBe(true);
  });
});

describe('maxpool2_backward (2x2 windows that tile the input)', () => {
  for (const shape of [
    [2, 3, 8, 8],
    [1, 2, 14, 14],
    [2, 1, 4, 30],
    [3, 2, 6, 2],
  ]) {
    it(`the same bits as the general routine, with and without the ReLU gate: [${shape}]`, async () => {
      const [N, C, H, W] = shape;
      const [OH, OW] = [H / 2, W / 2];
      const rng = new ref.SeededRandom(sizeOf(shape));
      const x = randn(rng, sizeOf(shape)).map((v) => Math.round(v * 2) / 2);
      x[3] = Number.NaN;
      const dy = randn(rng, N * C * OH * OW);
      dy[1] = -0;
      dy[2] = Number.NaN;
      for (const threads of [1, 3]) {
        const cpu = await WasmCpu.create({ threads });
        try {
          const tx = cpu.upload(Float32Array.from(x));
          const y = cpu.alloc(N * C * OH * OW);
          const am = cpu.alloc(N * C * OH * OW);
          maxPool2dInto(cpu, tx, shape, 2, 2, y, am);
          const tdy = cpu.upload(Float32Array.from(dy));
          const relu = cpu.upload(Float32Array.from(cpu.read(y), (v, i) => (i % 3 === 0 ? -v : v)));
          for (const gate of [undefined, relu]) {
            const general = cpu.upload(new Float32Array(sizeOf(shape)).fill(7));
            maxPool2dBackwardInto(cpu, tdy, am, [N, C, OH, OW], shape, general, gate);
            const tiled = cpu.upload(new Float32Array(sizeOf(shape)).fill(7));
            maxPool2dBackwardInto(cpu, tdy, am, [N, C, OH, OW], shape, tiled, gate, { kernel: 2, stride: 2 });
            expectSameBits(cpu.read(tiled), cpu.read(general), `dx, gate ${!!gate}, ${threads} thread(s)`);
          }
          const want = ref.maxPool2dBackward(
            Float64Array.from(dy),
            Int32Array.from(new Int32Array(cpu.i32.buffer, am.byteOffset, am.floats)),
            [N, C, OH, OW],
            shape,
          );
          const got = cpu.upload(new Float32Array(sizeOf(shape)));
          maxPool2dBackwardInto(cpu, tdy, am, [N, C, OH, OW], shape, got, undefined, {
            kernel: 2,
            stride: 2,
          });
          const g = cpu.read(got);
          for (let i = 0; i < g.length; i++) {
            if (Number.isNaN(want[i])) expect(Number.isNaN(g[i])).toBe(true);
            else expect(g[i]).toBe(want[i] === 0 ? 0 : Math.fround(want[i]));
          }
        } finally {
          cpu.destroy();
        }
      }
    });
  }
});

describe("lstmBackward's weight gradients, computed when first used", () => {
  const [N, T, I, H] = [3, 4, 5, 6];
  const rng = new ref.SeededRandom(77);
  const data = (n: number) => f32(rng.uniformArray(n, -0.8, 0.8));
  const w = { wIh: data(4 * H * I), wHh: data(4 * H * H), bIh: data(4 * H), bHh: data(4 * H) };
  const x = data(N * T * I);
  const dh = data(N * T * H);
  const dims = { N, T, I, H };
  const fwd = ref.lstmForward(x, dims, w, null, null);
  const grads = ref.lstmBackward(x, dims, w, null, null, fwd, dh, null, null);

  function run(e: WasmEngine) {
    const tw = {
      wIh: up(e, [4 * H, I], w.wIh),
      wHh: up(e, [4 * H, H], w.wHh),
      bIh: up(e, [4 * H], w.bIh),
      bHh: up(e, [4 * H], w.bHh),
    };
    const tx = up(e, [N, T, I], x);
    const f = e.lstmForward(tx, tw);
    const tdh = up(e, [N, T, H], dh);
    const g = e.lstmBackward(tx, tw, null, null, f, tdh);
    return { tw, tx, f, g, tdh };
  }

  it('are right after x is overwritten or released, and as an accumulate target', async () => {
    const e = engines[2];
    const a = run(e);
    e.write(a.tx, new Float32Array(N * T * I)); // x changes: the gradients from the old x come first
    expectClose(await e.read(a.g.dWih), grads.dWih);
    expectClose(await e.read(a.g.dWhh), grads.dWhh);
    const b = run(e);
    b.tx.release();
    expectClose(await e.read(b.g.dWih), grads.dWih);
    expectClose(await e.read(b.g.dbIh), grads.dbIh);
    const c = run(e);
    const acc = up(e, [4 * H, I], w.wIh);
    e.axpy(1, c.g.dWih, acc);
    expectClose(
      await e.read(acc),
      Float64Array.from(grads.dWih, (v, i) => v + w.wIh[i]),
    );
    expectClose(await e.read(c.g.dbHh), grads.dbHh);
    // dx and the state gradients are there at once.
    expectClose(await e.read(c.g.dx), grads.dx);
    expectClose(await e.read(c.g.dh0), grads.dh0);
  });

  it('released unread, they are never computed and their scratch is freed', async () => {
    const e = engines[1];
    const before = e.memoryBytesLeft;
    const a = run(e);
    const dx = await e.read(a.g.dx);
    expectClose(dx, grads.dx);
    for (const t of Object.values(a.g)) t.release();
    for (const t of [...Object.values(a.f), ...Object.values(a.tw), a.tx, a.tdh]) t.release();
    expect(e.memoryBytesLeft).toBe(before);
    // The same dx bits as a run whose weight gradients are read.
    const b = run(e);
    await e.read(b.g.dWih);
    expectSameBits(await e.read(b.g.dx), dx, 'dx');
  });
});

describe('store_rows (products written to a plain row-major C)', () => {
  it('bias per column or row, ReLU (NaN kept, -0 to 0): the f32 formulas bit for bit, widths around 4 and 16', async () => {
    const rng = new ref.SeededRandom(91);
    for (const [M, K, N] of [
      [5, 3, 1],
      [7, 4, 3],
      [4, 6, 5],
      [9, 2, 17],
      [12, 5, 33],
      [40, 8, 24],
    ]) {
      const a = f32(randn(rng, M * K));
      const b = f32(randn(rng, K * N));
      a[0] = Number.NaN; // row 0 of C is NaN throughout
      const biasC = f32(randn(rng, N));
      const biasR = f32(randn(rng, M));
      // NaN payloads are not compared (the formulas' own NaNs may carry other bits): a NaN where one is due.
      const same = (got: Float32Array, want: Float32Array, what: string) => {
        for (let i = 0; i < want.length; i++) {
          if (Number.isNaN(want[i])) {
            expect(Number.isNaN(got[i]), `${what}: NaN at ${i}`).toBe(true);
            got[i] = want[i];
          }
        }
        expectSameBits(got, want, what);
      };
      for (const e of all()) {
        const ta = up(e, [M, K], a);
        const tb = up(e, [K, N], b);
        const plain = await e.read(e.matmul(ta, tb, M, K, N));
        const relu = (v: number) => Math.max(v, 0); // NaN kept, -0 to 0
        const col = await e.read(e.matmul(ta, tb, M, K, N, { bias: up(e, [N], biasC), relu: true }));
        expect(Number.isNaN(col[0])).toBe(true);
        same(
          col,
          Float32Array.from(plain, (p, i) => relu(Math.fround(p + biasC[i % N]))),
          `col bias ${M}x${K}x${N}`,
        );
        const row = await e.read(e.matmul(ta, tb, M, K, N, { bias: up(e, [M], biasR), biasAxis: 'row' }));
        same(
          row,
          Float32Array.from(plain, (p, i) => Math.fround(p + biasR[Math.floor(i / N)])),
          `row bias ${M}x${K}x${N}`,
        );
        const neg = await e.read(
          e.matmul(
            ta,
            up(
              e,
              [K, N],
              b.map((v) => -v),
            ),
            M,
            K,
            N,
            { relu: true },
          ),
        );
        expect(Number.isNaN(neg[0])).toBe(true);
        same(
          neg,
          Float32Array.from(plain, (p) => relu(Math.fround(-p + 0))),
          `relu ${M}x${K}x${N}`,
        );
      }
    }
  });
});
