import { describe, expect, it } from 'vitest';
import {
  packBits,
  relu,
  reluBackward,
  SeededRandom,
  signPm1,
  stableTanh,
  tanhScaled,
  tanhScaledBackward,
  unpackBits,
  wordsPerRow,
} from '../src/reference/index.js';
import { directionalGradError, dot, expectArrayClose } from './reference-gradcheck.js';

describe('relu', () => {
  it('forward and backward on a hand case', () => {
    const x = Float64Array.of(-2, -0.5, 0, 0.5, 3);
    const y = relu(x);
    expectArrayClose(y, [0, 0, 0, 0.5, 3], 0);
    expectArrayClose(reluBackward(Float64Array.of(1, 2, 3, 4, 5), y), [0, 0, 0, 4, 5], 0);
    expect(() => reluBackward(new Float64Array(2), new Float64Array(3))).toThrow(/elements/);
  });

  it('backward matches finite differences', () => {
    const rng = new SeededRandom(3);
    const x = rng.normalArray(257);
    const r = rng.normalArray(257);
    const dx = reluBackward(r, relu(x));
    expect(directionalGradError((v) => dot(r, relu(v)), x, dx, rng)).toBeLessThan(1e-6);
  });
});

describe('tanhScaled', () => {
  it('agrees with Math.tanh and stays finite for huge arguments', () => {
    const x = Float64Array.of(-3, -1e-9, 0, 1e-9, 0.3, 2, 1e3, -1e300);
    for (const alpha of [0.1, 1, 7]) {
      const y = tanhScaled(x, alpha);
      for (let i = 0; i < x.length; i++) expect(y[i]).toBeCloseTo(Math.tanh(alpha * x[i]), 14);
    }
    const big = tanhScaled(Float64Array.of(1e308, -1e308, 800, -800), 10);
    expectArrayClose(big, [1, -1, 1, -1], 0);
    expect(stableTanh(0)).toBe(0);
  });

  it('backward is alpha * (1 - tanh^2) * dy and matches finite differences', () => {
    expect(tanhScaledBackward(Float64Array.of(2), Float64Array.of(0), 0.5)[0]).toBe(1);
    const rng = new SeededRandom(4);
    for (const alpha of [0.1, 0.5, 1, 3]) {
      const x = rng.normalArray(101);
      const r = rng.normalArray(101);
      const dx = tanhScaledBackward(r, x, alpha);
      expect(directionalGradError((v) => dot(r, tanhScaled(v, alpha)), x, dx, rng)).toBeLessThan(1e-6);
    }
  });
});

describe('signPm1', () => {
  it('is +1 for x >= 0 (including 0 and -0) and -1 otherwise', () => {
    expectArrayClose(signPm1(Float64Array.of(-1, -1e-300, -0, 0, 1e-300, 5)), [-1, -1, 1, 1, 1, 1], 0);
  });
});

describe('packBits / unpackBits', () => {
  it('packs 33 bits per row into two words, least-significant bit first', () => {
    const bits = 33;
    const x = new Float64Array(2 * bits).fill(-1);
    // Row 0: bits 0, 5, 31 and 32 set (32 is the first bit of the second word).
    for (const j of [0, 5, 31, 32]) x[j] = 0.5;
    x[3] = 0; // 0 counts as +1
    // Row 1: every value >= 0.
    for (let j = 0; j < bits; j++) x[bits + j] = j % 2 === 0 ? 0 : 1;
    const words = packBits(x, 2, bits);
    expect(wordsPerRow(bits)).toBe(2);
    expect(words.length).toBe(4);
    expect(Array.from(words)).toEqual([0x80000029, 0x1, 0xffffffff, 0x1]);
  });

  it('leaves the unused high bits of the last word clear and round-trips to +-1', () => {
    const rng = new SeededRandom(5);
    for (const bits of [1, 7, 32, 33, 64, 100]) {
      const rows = 3;
      const x = rng.normalArray(rows * bits);
      const words = packBits(x, rows, bits);
      expect(words.length).toBe(rows * Math.ceil(bits / 32));
      expectArrayClose(unpackBits(words, rows, bits), signPm1(x), 0);
      if (bits % 32 !== 0) {
        const wpr = wordsPerRow(bits);
        for (let r = 0; r < rows; r++) expect(words[r * wpr + wpr - 1] >>> (bits % 32)).toBe(0);
      }
    }
  });

  it('rejects inconsistent sizes', () => {
    expect(() => packBits(new Float64Array(10), 2, 6)).toThrow(/12 elements/);
    expect(() => unpackBits(new Uint32Array(3), 2, 33)).toThrow(/expected 4 words/);
  });
});
