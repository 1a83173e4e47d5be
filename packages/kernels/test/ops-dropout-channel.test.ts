import { describe, expect, it } from 'vitest';
import { KernelError } from '../src/errors.js';
import { channelAffine } from '../src/ops/channel.js';
import { dropout, dropoutBackward } from '../src/ops/dropout.js';
import {
  channelAffine as refChannelAffine,
  dropout as refDropout,
  SeededRandom,
} from '../src/reference/index.ts';
import { expectClose, f32, useGpu } from './helpers.js';

describe('dropout', () => {
  const gpu = useGpu();

  it('matches the counter-based reference mask and scale, forward and backward', async () => {
    const g = gpu();
    const rng = new SeededRandom(11);
    for (const [n, p, seed, offset] of [
      [1, 0.5, 1, 0],
      [1000, 0.5, 7, 0],
      [4099, 0.2, 123456789, 31],
      [777, 0, 3, 0],
    ]) {
      const x = f32(rng.uniformArray(n, -2, 2));
      const got = await g.readF32(dropout(g, g.tensor([n], x), { p, seed, offset }));
      const want = refDropout(x, p, seed, offset);
      // Exactly the same mask (a kept element is nonzero here, a dropped one is 0).
      for (let i = 0; i < n; i++) expect(got[i] === 0, `element ${i}`).toBe(want[i] === 0);
      expectClose(got, want, 1e-6);
      const back = await g.readF32(dropoutBackward(g, g.tensor([n], x), { p, seed, offset }));
      expectClose(back, want, 1e-6);
    }
  });

  it('drops about p of the elements and keeps the mean; other seeds give other masks', async () => {
    const g = gpu();
    const n = 20000;
    const ones = g.tensor([n], new Float32Array(n).fill(1));
    const a = await g.readF32(dropout(g, ones, { p: 0.3, seed: 5 }));
    const b = await g.readF32(dropout(g, ones, { p: 0.3, seed: 6 }));
    const dropped = a.filter((v) => v === 0).length / n;
    expect(Math.abs(dropped - 0.3)).toBeLessThan(0.02);
    const mean = a.reduce((s, v) => s + v, 0) / n;
    expect(Math.abs(mean - 1)).toBeLessThan(0.03);
    let differ = 0;
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) differ++;
    expect(differ).toBeGreaterThan(n * 0.2);
  });

  it('refuses p outside [0, 1) and non-integer seeds', () => {
    const g = gpu();
    const x = g.tensor([4], [1, 2, 3, 4]);
    expect(() => dropout(g, x, { p: 1, seed: 1 })).toThrow(KernelError);
    expect(() => dropout(g, x, { p: -0.1, seed: 1 })).toThrow(/p must be in \[0, 1\)/);
    expect(() => dropout(g, x, { p: 0.5, seed: 1.5 })).toThrow(/seed must be an integer/);
  });
});

describe('channelAffine', () => {
  const gpu = useGpu();

  it('applies a per-channel scale and shift on NCHW and [N, T, C, HW] layouts', async () => {
    const g = gpu();
    const rng = new SeededRandom(12);
    for (const [rows, channels, plane] of [
      [2, 3, 35],
      [7, 1, 784],
      [6, 2, 1],
    ]) {
      const x = f32(rng.uniformArray(rows * channels * plane, 0, 1));
      const scale = Array.from({ length: channels }, () => rng.uniform(0.5, 5));
      const shift = Array.from({ length: channels }, () => rng.uniform(-2, 2));
      const got = await g.readF32(
        channelAffine(g, g.tensor([rows, channels, plane], x), { channels, planeSize: plane, scale, shift }),
      );
      const want = refChannelAffine(x, channels, plane, scale.map(Math.fround), shift.map(Math.fround));
      expectClose(got, want, 1e-6);
    }
  });

  it('refuses a tensor that is not rows of channels x planeSize, and mismatched coefficients', () => {
    const g = gpu();
    const x = g.tensor([10], new Float32Array(10));
    expect(() =>
      channelAffine(g, x, { channels: 3, planeSize: 2, scale: [1, 1, 1], shift: [0, 0, 0] }),
    ).toThrow(/not rows of channels \* planeSize/);
    expect(() => channelAffine(g, x, { channels: 2, planeSize: 5, scale: [1], shift: [0, 0] })).toThrow(
      /one value per channel/,
    );
  });
});
