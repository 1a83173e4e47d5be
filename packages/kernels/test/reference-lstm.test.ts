import { describe, expect, it } from 'vitest';
import {
  type LstmDims,
  type LstmWeights,
  lstmBackward,
  lstmForward,
  SeededRandom,
} from '../src/reference/index.js';
import {
  directionalGradError,
  dot,
  expectArrayClose,
  maxRelativeError,
  numericGradient,
} from './reference-gradcheck.js';

// A 1-step case, N = 1, T = 1, I = 2, H = 1; rows of the weights in PyTorch's gate order i, f, g, o.
// Expected values computed independently (Python, math module):
//   a_r = wIh[r] . x + wHh[r] * h0 + bIh[r] + bHh[r]; i, f, o = sigmoid; g = tanh
//   c = f * c0 + i * g; h = o * tanh(c)
const hand = {
  x: Float64Array.of(0.5, -1.0),
  weights: {
    wIh: Float64Array.of(0.1, 0.2, 0.3, -0.4, 0.5, 0.6, -0.7, 0.8),
    wHh: Float64Array.of(0.9, -1.0, 1.1, -1.2),
    bIh: Float64Array.of(0.01, 0.02, 0.03, 0.04),
    bHh: Float64Array.of(-0.05, 0.06, -0.07, 0.08),
  },
  h0: Float64Array.of(0.25),
  c0: Float64Array.of(-0.5),
  gates: [0.5087491068802403, 0.5938731029341427, -0.11449570919711112, 0.20915936521306333],
  c: -0.35518614126272136,
  h: -0.07131640589681758,
};

function randomWeights(rng: SeededRandom, I: number, H: number): LstmWeights {
  return {
    wIh: rng.uniformArray(4 * H * I, -0.8, 0.8),
    wHh: rng.uniformArray(4 * H * H, -0.8, 0.8),
    bIh: rng.uniformArray(4 * H, -0.5, 0.5),
    bHh: rng.uniformArray(4 * H, -0.5, 0.5),
  };
}

describe('lstmForward', () => {
  it('matches a hand-computed 1-step case with h0 and c0', () => {
    const dims = { N: 1, T: 1, I: 2, H: 1 };
    const out = lstmForward(hand.x, dims, hand.weights, hand.h0, hand.c0);
    expectArrayClose(out.gates, hand.gates, 1e-14);
    expectArrayClose(out.c, [hand.c], 1e-14);
    expectArrayClose(out.h, [hand.h], 1e-14);
    expectArrayClose(out.hT, out.h, 0);
    expectArrayClose(out.cT, out.c, 0);
  });

  it('null h0 / c0 mean zeros', () => {
    const rng = new SeededRandom(31);
    const dims = { N: 2, T: 3, I: 4, H: 3 };
    const w = randomWeights(rng, 4, 3);
    const x = rng.normalArray(2 * 3 * 4);
    const a = lstmForward(x, dims, w, null, null);
    const b = lstmForward(x, dims, w, new Float64Array(6), new Float64Array(6));
    expectArrayClose(a.h, b.h, 0);
    expectArrayClose(a.c, b.c, 0);
  });

  it('T steps at once equal one step at a time carrying (hT, cT); batch rows are independent', () => {
    const rng = new SeededRandom(32);
    const [N, T, I, H] = [3, 4, 2, 5];
    const w = randomWeights(rng, I, H);
    const x = rng.normalArray(N * T * I);
    const h0 = rng.normalArray(N * H);
    const c0 = rng.normalArray(N * H);
    const full = lstmForward(x, { N, T, I, H }, w, h0, c0);
    for (let n = 0; n < N; n++) {
      let h: Float64Array = h0.slice(n * H, (n + 1) * H);
      let c: Float64Array = c0.slice(n * H, (n + 1) * H);
      for (let t = 0; t < T; t++) {
        const xt = x.slice((n * T + t) * I, (n * T + t + 1) * I);
        const step = lstmForward(xt, { N: 1, T: 1, I, H }, w, h, c);
        expectArrayClose(step.h, full.h.slice((n * T + t) * H, (n * T + t + 1) * H), 0);
        expectArrayClose(step.gates, full.gates.slice((n * T + t) * 4 * H, (n * T + t + 1) * 4 * H), 0);
        h = step.hT;
        c = step.cT;
      }
      expectArrayClose(full.hT.slice(n * H, (n + 1) * H), h, 0);
      expectArrayClose(full.cT.slice(n * H, (n + 1) * H), c, 0);
    }
  });

  it('rejects inconsistent sizes', () => {
    const dims = { N: 1, T: 1, I: 2, H: 1 };
    expect(() => lstmForward(hand.x, { ...dims, I: 3 }, hand.weights, null, null)).toThrow(/x to have 3/);
    expect(() =>
      lstmForward(hand.x, dims, { ...hand.weights, wHh: new Float64Array(3) }, null, null),
    ).toThrow(/wHh/);
    expect(() => lstmForward(hand.x, dims, hand.weights, new Float64Array(2), null)).toThrow(/h0/);
  });
});

describe('lstmBackward against central finite differences (float64)', () => {
  interface Case extends LstmDims {
    initial: boolean; // pass h0 / c0 (else null)
    allSteps: boolean; // loss on every h_t (else only on the last one, via dhT)
    finalState: boolean; // loss also on hT and cT
  }
  const cases: Case[] = [
    { N: 1, T: 1, I: 1, H: 1, initial: true, allSteps: true, finalState: true },
    { N: 1, T: 1, I: 3, H: 2, initial: false, allSteps: false, finalState: true },
    { N: 2, T: 3, I: 4, H: 3, initial: true, allSteps: true, finalState: false },
    { N: 1, T: 6, I: 2, H: 4, initial: true, allSteps: false, finalState: true },
    { N: 3, T: 5, I: 5, H: 3, initial: true, allSteps: true, finalState: true },
    { N: 2, T: 4, I: 3, H: 2, initial: false, allSteps: true, finalState: false },
  ];
  const rng = new SeededRandom(33);

  for (const k of cases) {
    const label = `N=${k.N} T=${k.T} I=${k.I} H=${k.H} h0/c0=${k.initial} allSteps=${k.allSteps} final=${k.finalState}`;
    it(label, () => {
      const { N, T, I, H } = k;
      const dims = { N, T, I, H };
      const w = randomWeights(rng, I, H);
      const x = rng.normalArray(N * T * I);
      const h0 = k.initial ? rng.normalArray(N * H) : null;
      const c0 = k.initial ? rng.normalArray(N * H) : null;
      const rh = k.allSteps ? rng.normalArray(N * T * H) : new Float64Array(N * T * H);
      const rhT = k.allSteps && !k.finalState ? null : rng.normalArray(N * H);
      const rcT = k.finalState ? rng.normalArray(N * H) : null;

      // loss = sum(rh * h) + sum(rhT * hT) + sum(rcT * cT)
      const loss = (
        xv: Float64Array,
        wv: LstmWeights,
        h0v: Float64Array | null,
        c0v: Float64Array | null,
      ) => {
        const out = lstmForward(xv, dims, wv, h0v, c0v);
        let l = dot(rh, out.h);
        if (rhT !== null) l += dot(rhT, out.hT);
        if (rcT !== null) l += dot(rcT, out.cT);
        return l;
      };
      const fwd = lstmForward(x, dims, w, h0, c0);
      const g = lstmBackward(x, dims, w, h0, c0, fwd, rh, rhT, rcT);

      expect(directionalGradError((v) => loss(v, w, h0, c0), x, g.dx, rng)).toBeLessThan(1e-6);
      expect(directionalGradError((v) => loss(x, { ...w, wIh: v }, h0, c0), w.wIh, g.dWih, rng)).toBeLessThan(
        1e-6,
      );
      expect(directionalGradError((v) => loss(x, { ...w, wHh: v }, h0, c0), w.wHh, g.dWhh, rng)).toBeLessThan(
        1e-6,
      );
      expect(directionalGradError((v) => loss(x, { ...w, bIh: v }, h0, c0), w.bIh, g.dbIh, rng)).toBeLessThan(
        1e-6,
      );
      expect(directionalGradError((v) => loss(x, { ...w, bHh: v }, h0, c0), w.bHh, g.dbHh, rng)).toBeLessThan(
        1e-6,
      );
      expectArrayClose(g.dbIh, g.dbHh, 0);
      // Initial-state gradients: with null h0/c0 they are the gradients at the zero state.
      const h0z = h0 ?? new Float64Array(N * H);
      const c0z = c0 ?? new Float64Array(N * H);
      expect(directionalGradError((v) => loss(x, w, v, c0z), h0z, g.dh0, rng)).toBeLessThan(1e-6);
      expect(directionalGradError((v) => loss(x, w, h0z, v), c0z, g.dc0, rng)).toBeLessThan(1e-6);
    });
  }

  it('every element of every gradient on a small case', () => {
    const dims = { N: 2, T: 3, I: 2, H: 2 };
    const w = randomWeights(rng, 2, 2);
    const x = rng.normalArray(12);
    const h0 = rng.normalArray(4);
    const c0 = rng.normalArray(4);
    const rh = rng.normalArray(12);
    const rhT = rng.normalArray(4);
    const rcT = rng.normalArray(4);
    const loss = (xv: Float64Array, wv: LstmWeights, h0v: Float64Array, c0v: Float64Array) => {
      const out = lstmForward(xv, dims, wv, h0v, c0v);
      return dot(rh, out.h) + dot(rhT, out.hT) + dot(rcT, out.cT);
    };
    const g = lstmBackward(x, dims, w, h0, c0, lstmForward(x, dims, w, h0, c0), rh, rhT, rcT);
    const tol = 1e-7;
    expect(
      maxRelativeError(
        g.dx,
        numericGradient((v) => loss(v, w, h0, c0), x),
      ),
    ).toBeLessThan(tol);
    expect(
      maxRelativeError(
        g.dWih,
        numericGradient((v) => loss(x, { ...w, wIh: v }, h0, c0), w.wIh),
      ),
    ).toBeLessThan(tol);
    expect(
      maxRelativeError(
        g.dWhh,
        numericGradient((v) => loss(x, { ...w, wHh: v }, h0, c0), w.wHh),
      ),
    ).toBeLessThan(tol);
    expect(
      maxRelativeError(
        g.dbIh,
        numericGradient((v) => loss(x, { ...w, bIh: v }, h0, c0), w.bIh),
      ),
    ).toBeLessThan(tol);
    expect(
      maxRelativeError(
        g.dh0,
        numericGradient((v) => loss(x, w, v, c0), h0),
      ),
    ).toBeLessThan(tol);
    expect(
      maxRelativeError(
        g.dc0,
        numericGradient((v) => loss(x, w, h0, v), c0),
      ),
    ).toBeLessThan(tol);
  });

  it('the check catches a wrong gradient (e.g. a dropped forget-gate path)', () => {
    const dims = { N: 1, T: 4, I: 2, H: 2 };
    const w = randomWeights(rng, 2, 2);
    const x = rng.normalArray(8);
    const rcT = rng.normalArray(2);
    const fwd = lstmForward(x, dims, w, null, null);
    const g = lstmBackward(x, dims, w, null, null, fwd, new Float64Array(8), null, rcT);
    const wrong = g.dx.slice();
    wrong[0] *= 1.01;
    const loss = (v: Float64Array) => dot(rcT, lstmForward(v, dims, w, null, null).cT);
    expect(directionalGradError(loss, x, g.dx, rng)).toBeLessThan(1e-6);
    expect(maxRelativeError(wrong, numericGradient(loss, x))).toBeGreaterThan(1e-6);
  });
});
