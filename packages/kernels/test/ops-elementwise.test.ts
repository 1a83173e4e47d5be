import { describe, expect, it } from 'vitest';
import { KernelError } from '../src/errors.js';
import { packBits, signPm1 } from '../src/ops/sign.js';
import { tanhScaled, tanhScaledBackward } from '../src/ops/tanh.js';
import {
  packBits as refPackBits,
  signPm1 as refSign,
  tanhScaled as refTanh,
  tanhScaledBackward as refTanhBackward,
  SeededRandom,
} from '../src/reference/index.ts';
import { expectClose, f32, useGpu } from './helpers.js';

describe('tanhScaled', () => {
  const gpu = useGpu();

  for (const [shape, alpha] of [
    [[1, 1], 1],
    [[7, 13], 1],
    [[3, 5, 17], 2.5],
    [[1, 1001], 0.1],
  ] as const) {
    it(`forward and backward match the reference on [${shape}] alpha ${alpha}`, async () => {
      const g = gpu();
      const n = shape.reduce((a: number, b: number) => a * b, 1);
      const rng = new SeededRandom(n + alpha * 100);
      const x = f32(rng.uniformArray(n, -3, 3));
      const dy = f32(rng.uniformArray(n, -1, 1));
      const tx = g.tensor(shape, x);
      const y = tanhScaled(g, tx, alpha);
      expect(y.shape).toEqual(shape);
      expectClose(await g.readF32(y), refTanh(x, alpha));
      const dx = tanhScaledBackward(g, g.tensor(shape, dy), tx, alpha);
      expectClose(await g.readF32(dx), refTanhBackward(dy, x, alpha));
    });
  }

  it('is finite and exact-ish for |alpha x| up to 1e4 and accurate for tiny |x|', async () => {
    const g = gpu();
    const x = f32([1e4, -1e4, 5000, -87.5, 44.4, 20, -9.01, 0.5, 0.06, -0.07, 0, 1e-3, -1e-5, 1e-7, 3e-20]);
    for (const alpha of [1, 3]) {
      const tx = g.tensor([x.length], x);
      const y = await g.readF32(tanhScaled(g, tx, alpha));
      expectClose(y, refTanh(x, alpha), 1e-6);
      for (let i = 0; i < x.length; i++) {
        // Element-wise relative error against Math.tanh: stable_tanh alone loses digits near 0 ((1 - e)
        // cancels; the float64 reference too, below about 1e-16).
        const exact = Math.tanh(alpha * x[i]);
        const err = Math.abs(y[i] - exact) / Math.max(Math.abs(exact), 1e-38);
        expect(err, `tanh(${alpha} * ${x[i]}) = ${y[i]}, expected ${exact}`).toBeLessThan(1e-6);
      }
      const dy = new Float64Array(x.length).fill(1);
      const dx = await g.readF32(tanhScaledBackward(g, g.tensor([x.length], dy), tx, alpha));
      const dxRef = refTanhBackward(dy, x, alpha);
      expect(Array.from(dx).every(Number.isFinite)).toBe(true);
      expectClose(dx, dxRef, 1e-6);
      expect(dx[0]).toBe(0);
      expect(dx[1]).toBe(0);
    }
  });

  it('rejects mismatched sizes and aliased output', () => {
    const g = gpu();
    const x = g.zeros([4]);
    expect(() => tanhScaledBackward(g, g.zeros([5]), x, 1)).toThrow(KernelError);
    expect(() => tanhScaled(g, x, 1, x)).toThrow(/different tensors/);
    expect(() => tanhScaled(g, x, Number.NaN)).toThrow(/alpha/);
  });
});

describe('signPm1 and packBits', () => {
  const gpu = useGpu();

  it('signPm1 gives +1 for x >= 0 (sign(0) = +1) and -1 otherwise', async () => {
    const g = gpu();
    const rng = new SeededRandom(11);
    const x = f32(rng.uniformArray(3 * 37, -1, 1));
    x[0] = 0;
    x[1] = -0;
    x[2] = 1e-30;
    x[3] = -1e-30;
    x[4] = -1e30;
    const y = await g.readF32(signPm1(g, g.tensor([3, 37], x)));
    expect(Array.from(y)).toEqual(Array.from(refSign(x)));
    expect(Array.from(y.slice(0, 5))).toEqual([1, 1, 1, -1, -1]);
  });

  for (const [rows, bits] of [
    [1, 1],
    [3, 32],
    [5, 33],
    [2, 64],
    [7, 100],
    [1, 4096],
    [9, 48],
  ] as const) {
    it(`packBits [${rows}, ${bits}] matches the reference (LSB first, high bits zero)`, async () => {
      const g = gpu();
      const rng = new SeededRandom(rows * 1000 + bits);
      const x = f32(rng.uniformArray(rows * bits, -1, 1));
      // Exact zeros pack as set bits.
      for (let i = 0; i < x.length; i += 7) x[i] = 0;
      const words = packBits(g, g.tensor([rows, bits], x));
      expect(words.dtype).toBe('u32');
      expect(words.shape).toEqual([rows, Math.ceil(bits / 32)]);
      expect(Array.from(await g.readU32(words))).toEqual(Array.from(refPackBits(x, rows, bits)));
    });
  }

  it('packBits sets bit j of word j >> 5 for x >= 0', async () => {
    const g = gpu();
    const x = new Float64Array(40).fill(-1);
    x[0] = 1;
    x[31] = 0;
    x[33] = 2;
    expect(Array.from(await g.readU32(packBits(g, g.tensor([1, 40], x))))).toEqual([0x80000001, 2]);
  });

  it('packBits rejects a tensor that is not [rows, bits]', () => {
    const g = gpu();
    expect(() => packBits(g, g.zeros([2, 3, 4]))).toThrow(/rank 2/);
    expect(() => packBits(g, g.zeros([2, 0]))).toThrow(/0 bits/);
    expect(() => signPm1(g, g.zeros([2], 'u32'))).toThrow(/f32/);
  });
});
