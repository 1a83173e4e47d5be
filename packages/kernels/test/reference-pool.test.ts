import { describe, expect, it } from 'vitest';
import { maxPool2dBackward, maxPool2dForward, SeededRandom } from '../src/reference/index.js';
import { directionalGradError, dot, expectArrayClose } from './reference-gradcheck.js';

describe('maxPool2dForward', () => {
  it('matches a hand-computed 4x4 case, kernel 2, stride 2', () => {
    // biome-ignore format: a 4x4 image reads better as a grid
    const x = Float64Array.from([
      1, 5, 2, 0,
      3, 4, 8, 1,
      -1, -2, 6, 7,
      -3, -4, 9, 2,
    ]);
    const { y, argmax, shape } = maxPool2dForward(x, [1, 1, 4, 4], { kernel: 2, stride: 2 });
    expect(shape).toEqual([1, 1, 2, 2]);
    expectArrayClose(y, [5, 8, -1, 9], 0);
    expect(Array.from(argmax)).toEqual([1, 6, 8, 14]);
  });

  it('uses floor mode and no padding: trailing rows and columns that do not fill a window are dropped', () => {
    const x = Float64Array.from({ length: 5 * 7 }, (_, i) => i);
    const { y, argmax, shape } = maxPool2dForward(x, [1, 1, 5, 7], { kernel: 2, stride: 2 });
    expect(shape).toEqual([1, 1, 2, 3]);
    // Each window's maximum is its bottom-right element (x increases row-major).
    expect(Array.from(argmax)).toEqual([8, 10, 12, 22, 24, 26]);
    expectArrayClose(y, [8, 10, 12, 22, 24, 26], 0);
  });

  it('on ties, the first maximum in row-major window order wins', () => {
    // biome-ignore format: grid
    const x = Float64Array.from([
      2, 2, 1, 3,
      2, 2, 3, 0,
      0, 7, 4, 4,
      7, 7, 4, 4,
    ]);
    const { argmax } = maxPool2dForward(x, [1, 1, 4, 4], { kernel: 2, stride: 2 });
    // All-equal window -> top-left; (0,3) before (1,2); (2,1) before (3,0) and (3,1); all-equal -> top-left.
    expect(Array.from(argmax)).toEqual([0, 3, 9, 10]);
  });

  it('keeps indices per (n, c) plane and handles several planes', () => {
    const x = Float64Array.from([0, 1, 2, 3, 9, 8, 7, 6, -5, -6, -7, -8]); // [3 planes, 2x2]
    const { y, argmax, shape } = maxPool2dForward(x, [1, 3, 2, 2], { kernel: 2, stride: 2 });
    expect(shape).toEqual([1, 3, 1, 1]);
    expectArrayClose(y, [3, 9, -5], 0);
    expect(Array.from(argmax)).toEqual([3, 0, 0]);
  });

  it('propagates NaN', () => {
    const x = Float64Array.from([1, Number.NaN, 3, Number.NaN]);
    const { y, argmax } = maxPool2dForward(x, [1, 1, 2, 2], { kernel: 2, stride: 2 });
    expect(Number.isNaN(y[0])).toBe(true);
    expect(argmax[0]).toBe(1);
  });

  it('rejects bad arguments', () => {
    const x = new Float64Array(9);
    expect(() => maxPool2dForward(x, [1, 1, 3, 3], { kernel: 4, stride: 1 })).toThrow(/larger than/);
    expect(() => maxPool2dForward(x, [1, 1, 3, 3], { kernel: 2, stride: 0 })).toThrow(/stride/);
    expect(() => maxPool2dForward(x, [1, 1, 3, 4], { kernel: 2, stride: 1 })).toThrow(/12 elements/);
    expect(() =>
      maxPool2dBackward(new Float64Array(1), Int32Array.of(9), [1, 1, 1, 1], [1, 1, 3, 3]),
    ).toThrow(/outside/);
    expect(() =>
      maxPool2dBackward(new Float64Array(1), Int32Array.of(0), [1, 2, 1, 1], [1, 1, 3, 3]),
    ).toThrow(/agree/);
  });
});

describe('maxPool2dBackward', () => {
  it('accumulates where overlapping windows pick the same input', () => {
    // Kernel 3, stride 2 on a 3x5 plane: two windows share column 2, which holds the maximum of both.
    // biome-ignore format: grid
    const x = Float64Array.from([
      0, 0, 0, 0, 0,
      0, 0, 9, 0, 0,
      0, 0, 0, 0, 0,
    ]);
    const fwd = maxPool2dForward(x, [1, 1, 3, 5], { kernel: 3, stride: 2 });
    expect(fwd.shape).toEqual([1, 1, 1, 2]);
    expect(Array.from(fwd.argmax)).toEqual([7, 7]);
    const dx = maxPool2dBackward(Float64Array.of(1.5, -0.25), fwd.argmax, fwd.shape, [1, 1, 3, 5]);
    const expected = new Float64Array(15);
    expected[7] = 1.25;
    expectArrayClose(dx, expected, 0);
  });

  const rng = new SeededRandom(777);
  const cases = [
    { xShape: [1, 1, 4, 4], kernel: 2, stride: 2 },
    { xShape: [2, 3, 7, 5], kernel: 3, stride: 2 }, // overlapping, odd sizes
    { xShape: [1, 2, 6, 6], kernel: 3, stride: 1 }, // heavy overlap
    { xShape: [3, 1, 9, 8], kernel: 2, stride: 3 }, // gaps between windows
    { xShape: [1, 4, 5, 5], kernel: 1, stride: 2 }, // 1x1 windows
    { xShape: [2, 2, 3, 3], kernel: 3, stride: 3 }, // one window covers the plane
  ];
  for (const c of cases) {
    it(`matches finite differences: x[${c.xShape.join(',')}] k${c.kernel} s${c.stride}`, () => {
      const params = { kernel: c.kernel, stride: c.stride };
      const x = rng.normalArray(c.xShape.reduce((a, d) => a * d, 1));
      const fwd = maxPool2dForward(x, c.xShape, params);
      const r = rng.normalArray(fwd.y.length);
      const dx = maxPool2dBackward(r, fwd.argmax, fwd.shape, c.xShape);
      const loss = (v: Float64Array) => dot(r, maxPool2dForward(v, c.xShape, params).y);
      expect(directionalGradError(loss, x, dx, rng)).toBeLessThan(1e-6);
    });
  }
});
