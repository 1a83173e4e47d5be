import { describe, expect, it } from 'vitest';
import { KernelError } from '../src/errors.js';
import { maxPool2d, maxPool2dBackward } from '../src/ops/pool.js';
import {
  maxPool2dBackward as refBackward,
  maxPool2dForward as refForward,
  relu as refRelu,
  maxPool2dReluBackward as refReluBackward,
  reluBackward as refReluBackwardElementwise,
  SeededRandom,
} from '../src/reference/index.ts';
import { expectClose, f32, useGpu } from './helpers.js';

interface Case {
  shape: [number, number, number, number];
  kernel: number;
  stride: number;
}

// Odd, non-aligned planes; overlapping windows (stride < kernel), gaps (stride > kernel), leftover edges.
const CASES: Case[] = [
  { shape: [1, 1, 5, 5], kernel: 3, stride: 2 },
  { shape: [1, 3, 7, 9], kernel: 2, stride: 2 },
  { shape: [2, 5, 11, 13], kernel: 3, stride: 2 },
  { shape: [3, 2, 9, 8], kernel: 3, stride: 1 },
  { shape: [2, 3, 10, 11], kernel: 2, stride: 3 },
  { shape: [1, 4, 6, 6], kernel: 6, stride: 1 },
  { shape: [2, 7, 33, 35], kernel: 4, stride: 3 },
];

describe('maxPool2d', () => {
  const gpu = useGpu();

  for (const { shape, kernel, stride } of CASES) {
    it(`forward and backward match the reference on [${shape}] kernel ${kernel} stride ${stride}`, async () => {
      const g = gpu();
      const rng = new SeededRandom(shape.reduce((a, b) => a * 31 + b, kernel * 7 + stride));
      const size = shape.reduce((a, b) => a * b, 1);
      const x = f32(rng.uniformArray(size, -2, 2));
      const ref = refForward(x, shape, { kernel, stride });
      const tx = g.tensor(shape, x);
      const { y, argmax } = maxPool2d(g, tx, { kernel, stride });
      expect(y.shape).toEqual(ref.shape);
      expect(argmax.dtype).toBe('u32');
      expectClose(await g.readF32(y), ref.y, 1e-6);
      expect(Array.from(await g.readU32(argmax))).toEqual(Array.from(ref.argmax));

      const dy = f32(rng.uniformArray(ref.y.length, -1, 1));
      const dxRef = refBackward(dy, ref.argmax, ref.shape, shape);
      const tdy = g.tensor(ref.shape, dy);
      const gathered = maxPool2dBackward(g, tdy, argmax, shape, { kernel, stride });
      expect(gathered.shape).toEqual(shape);
      expectClose(await g.readF32(gathered), dxRef);
      const scattered = maxPool2dBackward(g, tdy, argmax, shape);
      expectClose(await g.readF32(scattered), dxRef);
      for (const t of [tx, y, argmax, tdy, gathered, scattered]) t.release();
    });
  }

  // Non-overlapping windows (the 'window' kernel), with leftover rows and columns, and the fused ReLU mask.
  const WINDOW_CASES: Case[] = [
    ...CASES,
    { shape: [3, 4, 28, 28], kernel: 2, stride: 2 },
    { shape: [2, 3, 7, 7], kernel: 2, stride: 2 },
    { shape: [1, 2, 11, 10], kernel: 3, stride: 3 },
  ];
  for (const { shape, kernel, stride } of WINDOW_CASES) {
    it(`every backward variant, plain and with the ReLU fused, matches the reference on [${shape}] k${kernel} s${stride}`, async () => {
      const g = gpu();
      const rng = new SeededRandom(shape.reduce((a, b) => a * 17 + b, kernel * 5 + stride));
      const size = shape.reduce((a, b) => a * b, 1);
      // The pool's input is a ReLU output: about half zeros, so whole windows of zeros occur (y = 0).
      const z = f32(rng.uniformArray(size, -2, 1.2));
      const r = refRelu(z);
      const ref = refForward(r, shape, { kernel, stride });
      const { y, argmax } = maxPool2d(g, g.tensor(shape, r), { kernel, stride });
      const dy = f32(rng.uniformArray(ref.y.length, -1, 1));
      const tdy = g.tensor(ref.shape, dy);
      const plain = refBackward(dy, ref.argmax, ref.shape, shape);
      const masked = refReluBackward(dy, ref.y, ref.argmax, ref.shape, shape);
      // The fused reference is the composition of the pool and ReLU backwards.
      expect(Array.from(masked)).toEqual(Array.from(refReluBackwardElementwise(plain, r)));
      const variants: ('window' | 'gather')[] = stride === kernel ? ['window', 'gather'] : ['gather'];
      for (const variant of variants) {
        const dx = maxPool2dBackward(g, tdy, argmax, shape, { kernel, stride, variant });
        // Exact where each element receives one dy; overlapping windows sum in f32.
        expectClose(await g.readF32(dx), plain, 1e-6);
        const dz = maxPool2dBackward(g, tdy, argmax, shape, { kernel, stride, variant, reluOutput: y });
        expectClose(await g.readF32(dz), masked, 1e-6);
        if (stride >= kernel) expect(Array.from(await g.readF32(dz))).toEqual(Array.from(f32(masked)));
        dx.release();
        dz.release();
      }
      if (stride !== kernel) {
        expect(() => maxPool2dBackward(g, tdy, argmax, shape, { kernel, stride, variant: 'window' })).toThrow(
          /stride = kernel/,
        );
      }
      expect(() => maxPool2dBackward(g, tdy, argmax, shape, { kernel, stride, reluOutput: argmax })).toThrow(
        /f32/,
      );
      for (const t of [y, argmax, tdy]) t.release();
    });
  }

  it('breaks ties by the first maximum in window order, as the reference', async () => {
    const g = gpu();
    const rng = new SeededRandom(5);
    const shape: [number, number, number, number] = [2, 3, 9, 10];
    // Values from {-1, 0, 1}: most windows hold ties, several of them overlapping (kernel 3, stride 2).
    const x = Float64Array.from({ length: 2 * 3 * 9 * 10 }, () => rng.int(3) - 1);
    for (const [kernel, stride] of [
      [3, 2],
      [2, 2],
      [3, 1],
    ]) {
      const ref = refForward(x, shape, { kernel, stride });
      const tx = g.tensor(shape, x);
      const { y, argmax } = maxPool2d(g, tx, { kernel, stride });
      expect(Array.from(await g.readF32(y))).toEqual(Array.from(ref.y));
      expect(Array.from(await g.readU32(argmax))).toEqual(Array.from(ref.argmax));
      // All-equal dy: every element's gradient counts the windows that chose it.
      const dy = new Float64Array(ref.y.length).fill(1);
      const dxRef = refBackward(dy, ref.argmax, ref.shape, shape);
      const dx = maxPool2dBackward(g, g.tensor(ref.shape, dy), argmax, shape, { kernel, stride });
      expect(Array.from(await g.readF32(dx))).toEqual(Array.from(dxRef));
    }
  });

  it('defaults the stride to the kernel size', async () => {
    const g = gpu();
    const x = g.tensor([1, 1, 4, 4], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    const { y, argmax } = maxPool2d(g, x, { kernel: 2 });
    expect(y.shape).toEqual([1, 1, 2, 2]);
    expect(Array.from(await g.readF32(y))).toEqual([6, 8, 14, 16]);
    expect(Array.from(await g.readU32(argmax))).toEqual([5, 7, 13, 15]);
  });

  it('propagates NaN (the first NaN in the window wins), as the reference and PyTorch', async () => {
    const g = gpu();
    const x = Float64Array.from([1, Number.NaN, 3, 4, 5, 6, 7, 8, Number.NaN]);
    const ref = refForward(x, [1, 1, 3, 3], { kernel: 2, stride: 1 });
    const { y, argmax } = maxPool2d(g, g.tensor([1, 1, 3, 3], x), { kernel: 2, stride: 1 });
    const got = Array.from(await g.readF32(y));
    expect(got.map(Number.isNaN)).toEqual(Array.from(ref.y).map(Number.isNaN));
    expect(Array.from(await g.readU32(argmax))).toEqual(Array.from(ref.argmax));
  });

  it('rejects bad shapes and arguments with KernelError', () => {
    const g = gpu();
    const x = g.zeros([1, 2, 5, 5]);
    expect(() => maxPool2d(g, g.zeros([2, 5, 5]), { kernel: 2 })).toThrow(/rank 4/);
    expect(() => maxPool2d(g, x, { kernel: 6 })).toThrow(/larger than the input plane/);
    expect(() => maxPool2d(g, x, { kernel: 2, stride: 0 })).toThrow(KernelError);
    const { y, argmax } = maxPool2d(g, x, { kernel: 2, stride: 2 });
    expect(() => maxPool2dBackward(g, y, argmax, [1, 3, 5, 5])).toThrow(/SHAPE|expected/);
    expect(() => maxPool2dBackward(g, y, y, [1, 2, 5, 5])).toThrow(/u32/);
    expect(() => maxPool2dBackward(g, y, argmax, [1, 2, 5, 5], { kernel: 3, stride: 1 })).toThrow(
      /plane 3x3/,
    );
  });
});
