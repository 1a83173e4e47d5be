import { describe, expect, it } from 'vitest';
import {
  attackProject,
  attackStep,
  axpy,
  clampBox,
  l2NormRows,
  SeededRandom,
  sgdMomentumStep,
  sumAll,
  sumRows,
} from '../src/reference/index.js';
import { expectArrayClose } from './reference-gradcheck.js';

describe('reductions', () => {
  it('sumAll, sumRows (column sums), l2NormRows on hand cases', () => {
    const x = Float64Array.of(1, 2, 3, 4, 5, 6); // [2, 3]
    expect(sumAll(x)).toBe(21);
    expect(sumAll(new Float64Array(0))).toBe(0);
    expectArrayClose(sumRows(x, 2, 3), [5, 7, 9], 0);
    expectArrayClose(l2NormRows(Float64Array.of(3, 4, 0, 0, 0, 0, 1, 2, 2), 3, 3), [5, 0, 3], 1e-15);
    expect(() => sumRows(x, 4, 2)).toThrow(/8 elements/);
  });

  it('axpy returns y + alpha x and leaves y alone', () => {
    const y = Float64Array.of(1, 1, 1);
    expectArrayClose(axpy(-2, Float64Array.of(1, 0.5, -1), y), [-1, 0, 3], 0);
    expectArrayClose(y, [1, 1, 1], 0);
  });
});

describe('sgdMomentumStep', () => {
  it('follows torch.optim.SGD (momentum 0.9, weight decay 0.01) over two steps', () => {
    const params = { lr: 0.1, momentum: 0.9, weightDecay: 0.01 };
    const w0 = Float64Array.of(1, -2);
    const s1 = sgdMomentumStep(w0, Float64Array.of(0.5, 0.1), new Float64Array(2), params);
    // g' = [0.51, 0.08]; v = g' (PyTorch's first-step buffer); w = [1 - 0.051, -2 - 0.008]
    expectArrayClose(s1.v, [0.51, 0.08], 1e-15);
    expectArrayClose(s1.w, [0.949, -2.008], 1e-15);
    const s2 = sgdMomentumStep(s1.w, Float64Array.of(0.2, -0.3), s1.v, params);
    // g' = [0.2 + 0.00949, -0.3 - 0.02008]; v = 0.9 v + g' = [0.66849, -0.24808]; w -= 0.1 v
    expectArrayClose(s2.v, [0.66849, -0.24808], 1e-15);
    expectArrayClose(s2.w, [0.882151, -1.983192], 1e-15);
    expectArrayClose(w0, [1, -2], 0); // inputs untouched
  });

  it('without momentum or weight decay is plain gradient descent', () => {
    const s = sgdMomentumStep(Float64Array.of(1, 2), Float64Array.of(10, -10), Float64Array.of(0, 0), {
      lr: 0.01,
      momentum: 0,
      weightDecay: 0,
    });
    expectArrayClose(s.w, [0.9, 2.1], 1e-15);
  });
});

describe('attackStep', () => {
  const delta = Float64Array.of(0.1, 0.2, 0.3, 0.4); // [2 rows, 2 cols]

  it('l2: each row moves by lr along its own normalised gradient; a zero-gradient row stays', () => {
    const g = Float64Array.of(3, 4, 0, 0);
    expectArrayClose(attackStep(delta, g, 2, 2, { mode: 'l2', lr: 1 }), [-0.5, -0.6, 0.3, 0.4], 1e-15);
    const g2 = Float64Array.of(3, 4, 0, -2);
    expectArrayClose(attackStep(delta, g2, 2, 2, { mode: 'l2', lr: 0.5 }), [-0.2, -0.2, 0.3, 0.9], 1e-15);
  });

  it('sign: sign(0) = 0', () => {
    const g = Float64Array.of(3, -4, 0, 0.5);
    expectArrayClose(attackStep(delta, g, 2, 2, { mode: 'sign', lr: 0.01 }), [0.09, 0.21, 0.3, 0.39], 1e-15);
  });

  it('raw: delta - lr * g', () => {
    const g = Float64Array.of(1, -2, 0, 4);
    expectArrayClose(attackStep(delta, g, 2, 2, { mode: 'raw', lr: 0.5 }), [-0.4, 1.2, 0.3, -1.6], 1e-15);
  });

  it('rows are independent: a batch step equals each row stepped alone', () => {
    const rng = new SeededRandom(41);
    const [rows, cols] = [4, 13];
    const d = rng.normalArray(rows * cols);
    const g = rng.normalArray(rows * cols);
    for (const mode of ['l2', 'sign', 'raw'] as const) {
      const all = attackStep(d, g, rows, cols, { mode, lr: 0.3 });
      for (let r = 0; r < rows; r++) {
        const one = attackStep(
          d.slice(r * cols, (r + 1) * cols),
          g.slice(r * cols, (r + 1) * cols),
          1,
          cols,
          {
            mode,
            lr: 0.3,
          },
        );
        expectArrayClose(all.slice(r * cols, (r + 1) * cols), one, 0);
      }
    }
  });

  it('rejects bad input', () => {
    expect(() => attackStep(delta, new Float64Array(3), 2, 2, { mode: 'raw', lr: 1 })).toThrow(/g to have 4/);
    // @ts-expect-error an invalid mode from untyped callers
    expect(() => attackStep(delta, delta, 2, 2, { mode: 'linf', lr: 1 })).toThrow(/mode/);
  });
});

describe('clampBox / attackProject', () => {
  it('clampBox clamps element-wise', () => {
    expectArrayClose(clampBox(Float64Array.of(-2, 0.5, 3), 0, 1), [0, 0.5, 1], 0);
    expect(() => clampBox(new Float64Array(1), 1, 0)).toThrow(/must not exceed/);
  });

  it('clamps the image to its channel box, then delta to the eps ball', () => {
    // rows 1, channels 2, planeSize 2; channel 0 box [-1, 1], channel 1 box [-2, 2]; eps 0.5.
    const xn = Float64Array.of(0.9, 0, -1.9, 1.0);
    const delta = Float64Array.of(0.3, -0.7, -0.05, 0.2);
    const out = attackProject(delta, xn, 1, 2, 2, Float64Array.of(-1, -2), Float64Array.of(1, 2), 0.5);
    // 0.9 + 0.3 leaves the box -> 1 - 0.9 = 0.1; -0.7 stays in the box but leaves the ball -> -0.5;
    // the other two are inside both.
    expectArrayClose(out, [0.1, -0.5, -0.05, 0.2], 1e-15);
  });

  it('applies the box first and the eps ball last, so |delta| <= eps always holds', () => {
    // A point outside its box (xn = 1.5 > hi = 1): box first gives 1 - 1.5 = -0.5, then eps -> -0.3.
    // (The other order would give clamp(0, -eps, eps) = 0, then the box -> -0.5, breaking |delta| <= eps.)
    const out = attackProject(
      Float64Array.of(0),
      Float64Array.of(1.5),
      1,
      1,
      1,
      Float64Array.of(0),
      Float64Array.of(1),
      0.3,
    );
    expectArrayClose(out, [-0.3], 0);
  });

  it('uses each channel its own bounds over [rows, channels, planeSize]', () => {
    const rows = 2;
    const channels = 3;
    const plane = 2;
    const xn = new Float64Array(rows * channels * plane); // all zeros
    const delta = new Float64Array(rows * channels * plane).fill(10);
    const lo = Float64Array.of(-1, -2, -3);
    const hi = Float64Array.of(0.1, 0.2, 0.3);
    const out = attackProject(delta, xn, rows, channels, plane, lo, hi, 5);
    expectArrayClose(out, [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3], 0);
    expect(() => attackProject(delta, xn, rows, channels, plane, lo.subarray(0, 2), hi, 5)).toThrow(/lo/);
    expect(() => attackProject(delta, xn, rows, channels, plane, lo, hi, -1)).toThrow(/eps/);
  });
});
