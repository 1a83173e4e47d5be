import { describe, expect, it } from 'vitest';
import {
  linearBackwardBias,
  linearBackwardInput,
  linearBackwardWeight,
  linearForward,
  matmul,
  SeededRandom,
} from '../src/reference/index.js';
import { directionalGradError, dot, expectArrayClose } from './reference-gradcheck.js';

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

describe('matmul', () => {
  it('matches a hand-computed 2x3 by 3x2 product', () => {
    const a = Float64Array.of(1, 2, 3, 4, 5, 6);
    const b = Float64Array.of(7, 8, 9, 10, 11, 12);
    // [[1*7 + 2*9 + 3*11, 1*8 + 2*10 + 3*12], [4*7 + 5*9 + 6*11, 4*8 + 5*10 + 6*12]]
    expectArrayClose(matmul(a, b, 2, 3, 2), [58, 64, 139, 154], 0);
  });

  it('transA / transB read the transposed storage', () => {
    const rng = new SeededRandom(21);
    const [M, K, N] = [5, 7, 3];
    const a = rng.normalArray(M * K);
    const b = rng.normalArray(K * N);
    const c = matmul(a, b, M, K, N);
    const at = transpose(a, M, K);
    const bt = transpose(b, K, N);
    expectArrayClose(matmul(at, b, M, K, N, { transA: true }), c, 1e-13);
    expectArrayClose(matmul(a, bt, M, K, N, { transB: true }), c, 1e-13);
    expectArrayClose(matmul(at, bt, M, K, N, { transA: true, transB: true }), c, 1e-13);
  });

  it('rejects inconsistent sizes', () => {
    expect(() => matmul(new Float64Array(6), new Float64Array(5), 2, 3, 2)).toThrow(/b to have 6 elements/);
  });
});

describe('linear', () => {
  it('forward is x W^T + b on a hand case', () => {
    const x = Float64Array.of(1, 2, 3, -1, 0, 1); // [2, 3]
    const w = Float64Array.of(1, 0, -1, 0.5, 0.5, 0.5); // [2, 3]
    const b = Float64Array.of(10, -10);
    expectArrayClose(linearForward(x, [2, 3], w, [2, 3], b), [8, -7, 8, -10], 0);
    expectArrayClose(linearForward(x, [2, 3], w, [2, 3], null), [-2, 3, -2, 0], 0);
    expect(() => linearForward(x, [2, 3], w, [3, 2], null)).toThrow(/wShape/);
    expect(() => linearBackwardInput(x, [2, 3], w, [2, 3])).toThrow(/wShape/);
  });

  const rng = new SeededRandom(22);
  const cases = [
    [1, 1, 1],
    [1, 9, 4],
    [4, 3, 7],
    [5, 17, 12],
    [3, 64, 10],
  ];
  for (const [N, In, Out] of cases) {
    it(`backward matches finite differences: N=${N} In=${In} Out=${Out}`, () => {
      const x = rng.normalArray(N * In);
      const w = rng.normalArray(Out * In);
      const b = rng.normalArray(Out);
      const r = rng.normalArray(N * Out);
      const loss = (xv: Float64Array, wv: Float64Array, bv: Float64Array) =>
        dot(r, linearForward(xv, [N, In], wv, [Out, In], bv));
      const dx = linearBackwardInput(r, [N, Out], w, [Out, In]);
      const dw = linearBackwardWeight(r, x, N, In, Out);
      const db = linearBackwardBias(r, N, Out);
      expect(directionalGradError((v) => loss(v, w, b), x, dx, rng)).toBeLessThan(1e-6);
      expect(directionalGradError((v) => loss(x, v, b), w, dw, rng)).toBeLessThan(1e-6);
      expect(directionalGradError((v) => loss(x, w, v), b, db, rng)).toBeLessThan(1e-6);
    });
  }
});
