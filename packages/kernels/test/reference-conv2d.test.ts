import { describe, expect, it } from 'vitest';
import {
  conv2dBackwardBias,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dForward,
  conv2dOutputSize,
  linearForward,
  SeededRandom,
} from '../src/reference/index.js';
import {
  directionalGradError,
  dot,
  expectArrayClose,
  maxRelativeError,
  numericGradient,
} from './reference-gradcheck.js';

interface Case {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  s: number;
  p: number;
}

// Batch 1, 1x1 kernels, stride 2 and 3, padding (also more than the kernel needs), odd and non-square
// sizes, non-square kernels, and sizes where the floor mode leaves input rows unread.
const fixedCases: Case[] = [
  { N: 1, C: 1, H: 1, W: 1, O: 1, KH: 1, KW: 1, s: 1, p: 0 },
  { N: 1, C: 3, H: 5, W: 7, O: 2, KH: 1, KW: 1, s: 1, p: 0 },
  { N: 1, C: 2, H: 8, W: 7, O: 3, KH: 1, KW: 1, s: 2, p: 1 },
  { N: 2, C: 2, H: 7, W: 6, O: 3, KH: 3, KW: 3, s: 2, p: 1 },
  { N: 3, C: 1, H: 9, W: 8, O: 2, KH: 5, KW: 3, s: 3, p: 2 },
  { N: 1, C: 4, H: 6, W: 5, O: 5, KH: 2, KW: 2, s: 2, p: 0 },
  { N: 2, C: 3, H: 5, W: 5, O: 2, KH: 3, KW: 3, s: 1, p: 2 },
  { N: 1, C: 2, H: 11, W: 9, O: 2, KH: 4, KW: 2, s: 2, p: 1 },
];

function randomCases(rng: SeededRandom, count: number): Case[] {
  const cases: Case[] = [];
  while (cases.length < count) {
    const c: Case = {
      N: 1 + rng.int(3),
      C: 1 + rng.int(4),
      H: 1 + rng.int(10),
      W: 1 + rng.int(10),
      O: 1 + rng.int(4),
      KH: 1 + rng.int(4),
      KW: 1 + rng.int(4),
      s: 1 + rng.int(3),
      p: rng.int(3),
    };
    if (conv2dOutputSize(c.H, c.KH, c.s, c.p) >= 1 && conv2dOutputSize(c.W, c.KW, c.s, c.p) >= 1)
      cases.push(c);
  }
  return cases;
}

function name(c: Case): string {
  return `x[${c.N},${c.C},${c.H},${c.W}] w[${c.O},${c.C},${c.KH},${c.KW}] s${c.s} p${c.p}`;
}

describe('conv2dOutputSize', () => {
  it('is floor((in + 2p - k) / s) + 1', () => {
    expect(conv2dOutputSize(5, 3, 1, 0)).toBe(3);
    expect(conv2dOutputSize(7, 3, 2, 1)).toBe(4);
    expect(conv2dOutputSize(8, 3, 2, 1)).toBe(4); // floor drops the last row
    expect(conv2dOutputSize(224, 11, 4, 2)).toBe(55); // AlexNet conv1
    expect(conv2dOutputSize(2, 3, 1, 0)).toBe(0);
  });
});

describe('conv2dForward', () => {
  // x = 1..9 as a 3x3 image, w = [[1, 2], [3, 4]], bias 0.5.
  const x = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const w = Float64Array.from([1, 2, 3, 4]);

  it('matches a hand-computed case, stride 1, no padding', () => {
    const { y, shape } = conv2dForward(x, [1, 1, 3, 3], w, [1, 1, 2, 2], Float64Array.of(0.5), {
      stride: 1,
      padding: 0,
    });
    expect(shape).toEqual([1, 1, 2, 2]);
    // y00 = 1*1 + 2*2 + 4*3 + 5*4 = 37, y01 = 2 + 6 + 15 + 24 = 47, y10 = 67, y11 = 77; plus the bias.
    expectArrayClose(y, [37.5, 47.5, 67.5, 77.5], 0);
  });

  it('matches a hand-computed case, stride 2, padding 1 (cross-correlation, not flipped)', () => {
    const { y, shape } = conv2dForward(x, [1, 1, 3, 3], w, [1, 1, 2, 2], null, { stride: 2, padding: 1 });
    expect(shape).toEqual([1, 1, 2, 2]);
    // Window origins (-1,-1), (-1,1), (1,-1), (1,1) in the padded image:
    // y00 = x00*w11 = 4; y01 = x01*w10 + x02*w11 = 6 + 12; y10 = x10*w01 + x20*w11 = 8 + 28;
    // y11 = x11*w00 + x12*w01 + x21*w10 + x22*w11 = 5 + 12 + 24 + 36.
    expectArrayClose(y, [4, 18, 36, 77], 0);
  });

  it('matches a hand-computed case with two input and two output channels, batch 2', () => {
    // x[n, c] is a 2x2 plane; w is 1x1, so y[n, o] = sum_c w[o, c] * x[n, c] + b[o].
    const x2 = Float64Array.from([1, 2, 3, 4, 10, 20, 30, 40, -1, -2, -3, -4, 0, 1, 0, 1]);
    const w2 = Float64Array.from([1, 0.5, -1, 2]);
    const b2 = Float64Array.from([1, -1]);
    const { y, shape } = conv2dForward(x2, [2, 2, 2, 2], w2, [2, 2, 1, 1], b2, { stride: 1, padding: 0 });
    expect(shape).toEqual([2, 2, 2, 2]);
    const expected = [
      // n = 0, o = 0: x0 + 0.5*x1 + 1
      7, 13, 19, 25,
      // n = 0, o = 1: -x0 + 2*x1 - 1
      18, 37, 56, 75,
      // n = 1, o = 0
      0, -0.5, -2, -2.5,
      // n = 1, o = 1
      0, 3, 2, 5,
    ];
    expectArrayClose(y, expected, 0);
  });

  it('a 1x1 convolution equals a linear layer applied at every pixel', () => {
    const rng = new SeededRandom(11);
    const [N, C, H, W, O] = [2, 3, 4, 5, 4];
    const xr = rng.normalArray(N * C * H * W);
    const wr = rng.normalArray(O * C);
    const br = rng.normalArray(O);
    const { y } = conv2dForward(xr, [N, C, H, W], wr, [O, C, 1, 1], br, { stride: 1, padding: 0 });
    for (let n = 0; n < N; n++) {
      for (let pix = 0; pix < H * W; pix++) {
        const v = new Float64Array(C);
        for (let c = 0; c < C; c++) v[c] = xr[(n * C + c) * H * W + pix];
        const out = linearForward(v, [1, C], wr, [O, C], br);
        for (let o = 0; o < O; o++) expect(y[(n * O + o) * H * W + pix]).toBeCloseTo(out[o], 12);
      }
    }
  });

  it('rejects inconsistent shapes', () => {
    const p = { stride: 1, padding: 0 };
    expect(() => conv2dForward(x, [1, 2, 3, 3], w, [1, 1, 2, 2], null, p)).toThrow(/input channels/);
    expect(() => conv2dForward(x, [1, 1, 3, 2], w, [1, 1, 2, 2], null, p)).toThrow(/x to have 6 elements/);
    expect(() => conv2dForward(x, [1, 1, 3, 3], w, [1, 1, 4, 4], null, p)).toThrow(/kernel 4x4/);
    expect(() => conv2dForward(x, [1, 1, 3, 3], w, [1, 1, 2, 2], Float64Array.of(1, 2), p)).toThrow(/bias/);
    expect(() => conv2dForward(x, [1, 1, 3, 3], w, [1, 1, 2, 2], null, { stride: 0, padding: 0 })).toThrow(
      /stride/,
    );
    expect(() => conv2dForward(x, [1, 1, 9], w, [1, 1, 2, 2], null, p)).toThrow(/xShape/);
    const dy = new Float64Array(4);
    expect(() => conv2dBackwardInput(dy, [1, 1, 2, 3], w, [1, 1, 2, 2], [1, 1, 3, 3], p)).toThrow(
      /dyShape \[1, 1, 2, 2\]/,
    );
    expect(() => conv2dBackwardWeight(x, [1, 1, 3, 3], dy, [1, 2, 2, 2], [1, 1, 2, 2], p)).toThrow(/dyShape/);
  });
});

describe('conv2d backward against central finite differences (float64)', () => {
  const rng = new SeededRandom(20240601);
  const cases = [...fixedCases, ...randomCases(rng, 8)];

  for (const c of cases) {
    it(name(c), () => {
      const xShape = [c.N, c.C, c.H, c.W];
      const wShape = [c.O, c.C, c.KH, c.KW];
      const params = { stride: c.s, padding: c.p };
      const x = rng.normalArray(c.N * c.C * c.H * c.W);
      const w = rng.normalArray(c.O * c.C * c.KH * c.KW);
      const b = rng.normalArray(c.O);
      const { shape: dyShape } = conv2dForward(x, xShape, w, wShape, b, params);
      // loss = sum(r * y) with random r, so dL/dy = r.
      const r = rng.normalArray(dyShape[0] * dyShape[1] * dyShape[2] * dyShape[3]);
      const loss = (xv: Float64Array, wv: Float64Array, bv: Float64Array) =>
        dot(r, conv2dForward(xv, xShape, wv, wShape, bv, params).y);

      const dx = conv2dBackwardInput(r, dyShape, w, wShape, xShape, params);
      const dw = conv2dBackwardWeight(x, xShape, r, dyShape, wShape, params);
      const db = conv2dBackwardBias(r, dyShape);

      expect(directionalGradError((v) => loss(v, w, b), x, dx, rng)).toBeLessThan(1e-6);
      expect(directionalGradError((v) => loss(x, v, b), w, dw, rng)).toBeLessThan(1e-6);
      expect(directionalGradError((v) => loss(x, w, v), b, db, rng)).toBeLessThan(1e-6);
    });
  }

  it('every element of dx, dw, db on a small strided, padded case', () => {
    const xShape = [2, 2, 5, 4];
    const wShape = [3, 2, 3, 2];
    const params = { stride: 2, padding: 1 };
    const x = rng.normalArray(2 * 2 * 5 * 4);
    const w = rng.normalArray(3 * 2 * 3 * 2);
    const b = rng.normalArray(3);
    const { shape: dyShape } = conv2dForward(x, xShape, w, wShape, b, params);
    const r = rng.normalArray(dyShape.reduce((a, d) => a * d, 1));
    const loss = (xv: Float64Array, wv: Float64Array, bv: Float64Array) =>
      dot(r, conv2dForward(xv, xShape, wv, wShape, bv, params).y);
    const dx = conv2dBackwardInput(r, dyShape, w, wShape, xShape, params);
    const dw = conv2dBackwardWeight(x, xShape, r, dyShape, wShape, params);
    const db = conv2dBackwardBias(r, dyShape);
    expect(
      maxRelativeError(
        dx,
        numericGradient((v) => loss(v, w, b), x),
      ),
    ).toBeLessThan(1e-8);
    expect(
      maxRelativeError(
        dw,
        numericGradient((v) => loss(x, v, b), w),
      ),
    ).toBeLessThan(1e-8);
    expect(
      maxRelativeError(
        db,
        numericGradient((v) => loss(x, w, v), b),
      ),
    ).toBeLessThan(1e-8);
  });

  it('the check catches a wrong gradient', () => {
    const xShape = [1, 2, 4, 4];
    const wShape = [2, 2, 3, 3];
    const params = { stride: 1, padding: 1 };
    const x = rng.normalArray(32);
    const w = rng.normalArray(36);
    const { shape: dyShape } = conv2dForward(x, xShape, w, wShape, null, params);
    const r = rng.normalArray(32);
    const dx = conv2dBackwardInput(r, dyShape, w, wShape, xShape, params);
    dx[5] += 1e-3; // one slightly wrong element
    const err = directionalGradError(
      (v) => dot(r, conv2dForward(v, xShape, w, wShape, null, params).y),
      x,
      dx,
      rng,
    );
    expect(err).toBeGreaterThan(1e-6);
  });
});
