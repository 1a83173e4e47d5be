import { describe, expect, it } from 'vitest';
import { linear, linearBackwardBias, linearBackwardInput, linearBackwardWeight } from '../src/ops/linear.js';
import { matmul } from '../src/ops/matmul.js';
import * as ref from '../src/reference/index.js';
import { expectClose, randn, useGpu } from './helpers.js';

describe('matmul', () => {
  const gpu = useGpu();
  const rng = new ref.SeededRandom(7);

  const cases: Array<[number, number, number, boolean, boolean]> = [
    [1, 1, 1, false, false],
    [7, 13, 5, false, false],
    [33, 70, 17, true, false],
    [65, 3, 129, false, true],
    [50, 700, 9, true, true],
    [3, 2000, 4, true, false], // long K with few tiles: split-K
    // Few rows with B transposed and K % 4 == 0: the vec4 small-M kernel, without and with split-K.
    [1, 4, 1, false, true],
    [4, 64, 37, false, true],
    [8, 2052, 70, false, true],
    [21, 132, 67, false, true], // several row blocks
  ];
  for (const [M, K, N, tA, tB] of cases) {
    it(`${M}x${K}x${N} transA=${tA} transB=${tB}`, async () => {
      const g = gpu();
      const a = randn(rng, M * K);
      const b = randn(rng, K * N);
      const expected = ref.matmul(a, b, M, K, N, { transA: tA, transB: tB });
      const c = matmul(g, g.tensor([a.length], a), g.tensor([b.length], b), M, K, N, {
        transA: tA,
        transB: tB,
      });
      expectClose(await g.readF32(c), expected);
    });
  }

  it('fuses bias, ReLU, alpha and accumulation, with and without split-K', async () => {
    const g = gpu();
    for (const splitK of [1, 3]) {
      const [M, K, N] = [9, 40, 11];
      const a = randn(rng, M * K);
      const b = randn(rng, K * N);
      const bias = randn(rng, N);
      const c0 = randn(rng, M * N);
      const prod = ref.matmul(a, b, M, K, N);
      const expected = prod.map((v, i) => Math.max(0, 0.5 * v + bias[i % N] + c0[i]));
      const out = g.tensor([M, N], c0);
      matmul(g, g.tensor([M * K], a), g.tensor([K * N], b), M, K, N, {
        bias: g.tensor([N], bias),
        relu: true,
        alpha: 0.5,
        accumulate: true,
        out,
        splitK,
      });
      expectClose(await g.readF32(out), expected);
    }
  });

  it('small-M transposed-B kernel: epilogue, offsets, leading dimensions; agrees with the GEMM', async () => {
    const g = gpu();
    const [M, K, N] = [3, 1028, 45];
    const [lda, ldb, ldc, aOff, bOff, cOff] = [K + 8, K + 4, N + 3, 4, 8, 2];
    const a = randn(rng, aOff + M * lda);
    const b = randn(rng, bOff + N * ldb);
    const bias = randn(rng, N);
    const c0 = randn(rng, cOff + M * ldc);
    const aD = new Float64Array(M * K);
    const bD = new Float64Array(N * K);
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) aD[m * K + k] = a[aOff + m * lda + k];
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) bD[n * K + k] = b[bOff + n * ldb + k];
    const prod = ref.matmul(aD, bD, M, K, N, { transB: true });
    for (const [splitK, gemv] of [
      [1, true],
      [5, true],
      [1, false],
    ] as const) {
      const out = g.tensor([c0.length], c0);
      matmul(g, g.tensor([a.length], a), g.tensor([b.length], b), M, K, N, {
        transB: true,
        bias: g.tensor([N], bias),
        relu: true,
        alpha: 0.5,
        accumulate: true,
        out,
        splitK,
        gemv,
        lda,
        ldb,
        ldc,
        aOffset: aOff,
        bOffset: bOff,
        cOffset: cOff,
      });
      const got = await g.readF32(out);
      const expected = Float64Array.from(c0);
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) {
          const i = cOff + m * ldc + n;
          expected[i] = Math.max(0, 0.5 * prod[m * N + n] + bias[n] + c0[i]);
        }
      expectClose(got, expected);
    }
  });

  // vec4-column kernel (B stored [K, N], N % 4 == 0): small M (dy W) and small K (dy^T x), blocks that do not
  // divide M or N/4, offsets, leading dimensions, both bias axes, the epilogue, split-K; agrees with the GEMM.
  for (const [M, K, N, transA, biasAxis] of [
    [5, 300, 36, false, 'col'],
    [19, 4, 28, true, 'row'],
    [3, 7, 8, true, 'col'],
    // Larger M with wide N: the default 8-row x 4-vec4 block (a linear input gradient at batch 100).
    [37, 50, 260, false, 'col'],
  ] as const) {
    it(`vec4-column kernel ${M}x${K}x${N} transA=${transA} bias=${biasAxis}`, async () => {
      const g = gpu();
      const lda = (transA ? M : K) + 3;
      const [ldb, ldc, aOff, bOff, cOff] = [N + 4, N + 8, 3, 4, 8];
      const a = randn(rng, aOff + (transA ? K : M) * lda);
      const b = randn(rng, bOff + K * ldb);
      const bias = randn(rng, biasAxis === 'col' ? N : M);
      const c0 = randn(rng, cOff + M * ldc);
      const aD = new Float64Array(M * K);
      const bD = new Float64Array(K * N);
      for (let m = 0; m < M; m++)
        for (let k = 0; k < K; k++) aD[m * K + k] = a[aOff + (transA ? k * lda + m : m * lda + k)];
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) bD[k * N + n] = b[bOff + k * ldb + n];
      const prod = ref.matmul(aD, bD, M, K, N);
      const expected = Float64Array.from(c0);
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) {
          const i = cOff + m * ldc + n;
          const bv = biasAxis === 'col' ? bias[n] : bias[m];
          expected[i] = Math.max(0, 0.5 * prod[m * N + n] + bv + c0[i]);
        }
      for (const [splitK, n4Tile, tile] of [
        [1, undefined, undefined],
        [3, { tm: 4, tn: 2, wx: 4 }, undefined],
        [1, { tm: 3, tn: 1, wx: 2 }, undefined],
        [1, undefined, { tm: 4, tn: 4, wx: 8, wy: 8 }],
      ] as const) {
        const out = g.tensor([c0.length], c0);
        matmul(g, g.tensor([a.length], a), g.tensor([b.length], b), M, K, N, {
          transA,
          bias: g.tensor([bias.length], bias),
          biasAxis,
          relu: true,
          alpha: 0.5,
          accumulate: true,
          out,
          splitK,
          n4Tile,
          tile,
          lda,
          ldb,
          ldc,
          aOffset: aOff,
          bOffset: bOff,
          cOffset: cOff,
        });
        expectClose(await g.readF32(out), expected);
      }
    });
  }

  it('handles batches, offsets and leading dimensions', async () => {
    const g = gpu();
    const [B, M, K, N] = [3, 5, 6, 7];
    const a = randn(rng, 2 + B * M * K);
    const b = randn(rng, B * K * N);
    const c = matmul(g, g.tensor([a.length], a), g.tensor([b.length], b), M, K, N, {
      batch: B,
      aOffset: 2,
    });
    const got = await g.readF32(c);
    for (let z = 0; z < B; z++) {
      const expected = ref.matmul(
        a.subarray(2 + z * M * K, 2 + (z + 1) * M * K),
        b.subarray(z * K * N, (z + 1) * K * N),
        M,
        K,
        N,
      );
      expectClose(got.subarray(z * M * N, (z + 1) * M * N), expected);
    }
  });

  it('rejects inconsistent sizes', () => {
    const g = gpu();
    expect(() => matmul(g, g.zeros([5]), g.zeros([6]), 2, 3, 2)).toThrow(/A with at least 6/);
  });
});

describe('linear', () => {
  const gpu = useGpu();
  const rng = new ref.SeededRandom(11);
  for (const [N, In, Out] of [
    [1, 3, 1],
    [5, 17, 9],
    [100, 257, 33],
    [4, 64, 40],
  ]) {
    it(`forward and gradients N=${N} In=${In} Out=${Out}`, async () => {
      const g = gpu();
      const x = randn(rng, N * In);
      const w = randn(rng, Out * In);
      const b = randn(rng, Out);
      const dy = randn(rng, N * Out);
      const tx = g.tensor([N, In], x);
      const tw = g.tensor([Out, In], w);
      const y = linear(g, tx, tw, g.tensor([Out], b), { relu: true });
      const yRef = ref.relu(ref.linearForward(x, [N, In], w, [Out, In], b));
      expectClose(await g.readF32(y), yRef);
      const tdy = g.tensor([N, Out], dy);
      expectClose(
        await g.readF32(linearBackwardInput(g, tdy, tw)),
        ref.linearBackwardInput(dy, [N, Out], w, [Out, In]),
      );
      expectClose(
        await g.readF32(linearBackwardWeight(g, tdy, tx)),
        ref.linearBackwardWeight(dy, x, N, In, Out),
      );
      expectClose(await g.readF32(linearBackwardBias(g, tdy)), ref.linearBackwardBias(dy, N, Out));
    });
  }
});
