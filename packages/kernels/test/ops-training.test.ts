import { describe, expect, it } from 'vitest';
import { KernelError } from '../src/errors.js';
import { grid } from '../src/gpu/context.js';
import { l2NormRows, sumAll, sumChannels, sumRows } from '../src/ops/reduce.js';
import {
  attackProject,
  attackStep,
  attackStepProject,
  axpy,
  clampBox,
  scale,
  sgdMomentumStep,
  uniformNoise,
} from '../src/ops/training.js';
import { scale as refScale, sumChannels as refSumChannels, uniformArrayAt } from '../src/reference/extra.ts';
import {
  attackProject as refAttackProject,
  attackStep as refAttackStep,
  attackStepProject as refAttackStepProject,
  axpy as refAxpy,
  clampBox as refClampBox,
  l2NormRows as refL2NormRows,
  sgdMomentumStep as refSgd,
  sumAll as refSumAll,
  sumRows as refSumRows,
  SeededRandom,
} from '../src/reference/index.ts';
import { expectClose, f32, relativeError, useGpu } from './helpers.js';

const IMAGE = 3 * 224 * 224;

describe('reductions', () => {
  const gpu = useGpu();

  it('sumAll is accurate on small, odd and large tensors', async () => {
    const g = gpu();
    const rng = new SeededRandom(1);
    for (const [n, lo] of [
      [1, -1],
      [255, -1],
      [4097, -1],
      [IMAGE + 17, -1],
      // All positive and large: a serial f32 sum of 10^6 halves drifts by ~1e-3; pairwise stays near 1e-7.
      [1_000_003, 0],
    ]) {
      const x = f32(rng.uniformArray(n, lo, 1));
      const s = sumAll(g, g.tensor([n], x));
      expect(s.shape).toEqual([1]);
      const got = await g.readF32(s);
      const err = relativeError(got, [refSumAll(x)]);
      expect(err, `n = ${n}: ${got[0]} vs ${refSumAll(x)}`).toBeLessThan(n > 1000 && lo === 0 ? 1e-6 : 1e-4);
    }
  });

  it('sumRows (column sums) matches the reference, including multi-pass row counts', async () => {
    const g = gpu();
    const rng = new SeededRandom(2);
    for (const [rows, cols] of [
      [1, 7],
      [37, 19],
      [300, 5],
      [5000, 3],
      [64, 1000],
    ]) {
      const x = f32(rng.uniformArray(rows * cols, -1, 1));
      const s = sumRows(g, g.tensor([rows, cols], x));
      expect(s.shape).toEqual([cols]);
      expectClose(await g.readF32(s), refSumRows(x, rows, cols));
    }
  });

  it('sumChannels matches the reference on [N, C, P] and NCHW', async () => {
    const g = gpu();
    const rng = new SeededRandom(3);
    for (const shape of [
      [1, 3, 5],
      [4, 5, 1],
      [3, 7, 99],
      [2, 3, 224 * 224 + 1],
      [5, 6, 9, 11],
      [200, 2, 1],
    ]) {
      const [n, c] = shape;
      const p = shape.slice(2).reduce((a, b) => a * b, 1);
      const x = f32(rng.uniformArray(n * c * p, -1, 1));
      const s = sumChannels(g, g.tensor(shape, x));
      expect(s.shape).toEqual([c]);
      expectClose(await g.readF32(s), refSumChannels(x, n, c, p));
    }
  });

  it('l2NormRows matches the reference, rows of 3*224*224 included', async () => {
    const g = gpu();
    const rng = new SeededRandom(4);
    for (const [rows, cols] of [
      [5, 1],
      [7, 33],
      [1, 4096],
      [3, IMAGE],
      [2, 0],
    ]) {
      const x = f32(rng.uniformArray(rows * cols, -1, 1));
      const s = l2NormRows(g, g.tensor([rows, cols], x));
      expect(s.shape).toEqual([rows]);
      const got = await g.readF32(s);
      const ref = refL2NormRows(x, rows, cols);
      if (cols === 0) expect(Array.from(got)).toEqual([0, 0]);
      // Every row on its own, not just normwise.
      else for (let r = 0; r < rows; r++) expect(Math.abs(got[r] - ref[r]) / ref[r]).toBeLessThan(1e-5);
    }
  });

  it('rejects wrong ranks', () => {
    const g = gpu();
    expect(() => sumRows(g, g.zeros([2, 3, 4]))).toThrow(/rank 2/);
    expect(() => l2NormRows(g, g.zeros([6]))).toThrow(KernelError);
    expect(() => sumChannels(g, g.zeros([6]))).toThrow(/rank 2 or more/);
  });
});

describe('optimiser and attack updates', () => {
  const gpu = useGpu();

  it('axpy updates y in place; scale in place and into out', async () => {
    const g = gpu();
    const rng = new SeededRandom(10);
    const shape = [13, 17];
    const x = f32(rng.uniformArray(13 * 17, -1, 1));
    const y = f32(rng.uniformArray(13 * 17, -1, 1));
    const tx = g.tensor(shape, x);
    const ty = g.tensor(shape, y);
    expect(axpy(g, -0.37, tx, ty)).toBe(ty);
    expectClose(await g.readF32(ty), refAxpy(-0.37, x, y));
    const out = g.empty(shape);
    expect(scale(g, tx, 1.75, out)).toBe(out);
    expectClose(await g.readF32(out), refScale(x, 1.75));
    expect(scale(g, tx, -2)).toBe(tx);
    expectClose(await g.readF32(tx), refScale(x, -2));
    expect(() => axpy(g, 1, ty, ty)).toThrow(/different tensors/);
    expect(() => axpy(g, 1, tx, g.zeros([3]))).toThrow(KernelError);
  });

  it('sgdMomentumStep follows torch.optim.SGD over several steps', async () => {
    const g = gpu();
    const rng = new SeededRandom(11);
    const n = 1031;
    let w: Float64Array = f32(rng.uniformArray(n, -1, 1));
    let v: Float64Array = new Float64Array(n);
    const tw = g.tensor([n], w);
    const tv = g.zeros([n]);
    const params = { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 };
    for (let step = 0; step < 3; step++) {
      const grad = f32(rng.uniformArray(n, -1, 1));
      sgdMomentumStep(g, tw, g.tensor([n], grad), tv, params);
      ({ w, v } = refSgd(w, grad, v, params));
    }
    expectClose(await g.readF32(tw), w);
    expectClose(await g.readF32(tv), v);
    expect(() => sgdMomentumStep(g, tw, tw, tv, params)).toThrow(/different tensors/);
  });

  it('attackStep l2 / sign / raw match the reference; a zero-gradient row stays, a tiny one still steps', async () => {
    const g = gpu();
    const rng = new SeededRandom(12);
    for (const [rows, cols] of [
      [1, 1],
      [5, 1001],
      [3, IMAGE],
    ]) {
      const delta = f32(rng.uniformArray(rows * cols, -0.05, 0.05));
      const grad = f32(rng.uniformArray(rows * cols, -1, 1));
      if (rows > 1) {
        grad.fill(0, 0, cols); // row 0: zero gradient, left unchanged
        for (let i = cols; i < 2 * cols; i++) grad[i] *= 1e-25; // row 1: squares underflow in f32
      }
      for (let i = 0; i < grad.length; i += 5) grad[i] = 0; // sign(0) = 0
      for (const mode of ['l2', 'sign', 'raw'] as const) {
        const td = g.tensor([rows, cols], delta);
        attackStep(g, td, g.tensor([rows, cols], grad), rows, { mode, lr: 0.01 });
        const ref = refAttackStep(delta, grad, rows, cols, { mode, lr: 0.01 });
        const got = await g.readF32(td);
        expectClose(got, ref);
        if (rows > 1 && mode === 'l2') {
          // Row by row, so the small rows are not hidden behind the others in a normwise error.
          for (let r = 0; r < rows; r++) {
            expect(
              relativeError(got.subarray(r * cols, (r + 1) * cols), ref.subarray(r * cols, (r + 1) * cols)),
            ).toBeLessThan(1e-4);
          }
          expect(Array.from(got.subarray(0, cols))).toEqual(
            Array.from(Float32Array.from(delta.subarray(0, cols))),
          );
        }
      }
    }
    const d = g.zeros([3, 4]);
    expect(() => attackStep(g, d, g.zeros([3, 4]), 5, { mode: 'l2', lr: 1 })).toThrow(/divides/);
    expect(() => attackStep(g, d, g.zeros([3, 4]), 3, { mode: 'linf' as 'l2', lr: 1 })).toThrow(/mode/);
  });

  it('clampBox in place and into out', async () => {
    const g = gpu();
    const rng = new SeededRandom(13);
    const x = f32(rng.uniformArray(999, -2, 2));
    const tx = g.tensor([999], x);
    const out = g.empty([999]);
    clampBox(g, tx, -0.5, 1.25, out);
    expectClose(await g.readF32(out), refClampBox(x, -0.5, 1.25), 1e-7);
    expect(clampBox(g, tx, 0, 1)).toBe(tx);
    expectClose(await g.readF32(tx), refClampBox(x, 0, 1), 1e-7);
    expect(() => clampBox(g, tx, 1, 0)).toThrow(/must not exceed/);
  });

  it('attackStepProject equals attackStep + attackProject + xn + delta (bit for bit) and the reference', async () => {
    const g = gpu();
    const rng = new SeededRandom(15);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    for (const [rows, channels, plane] of [
      [1, 1, 7],
      [3, 3, 35],
      [4, 1, 28 * 28],
    ]) {
      const n = rows * channels * plane;
      const lo = f32(mean.slice(0, channels).map((m, c) => -m / std[c]));
      const hi = f32(mean.slice(0, channels).map((m, c) => (1 - m) / std[c]));
      const xn = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const c = Math.floor(i / plane) % channels;
        xn[i] = rng.uniform(lo[c], hi[c]);
        if (i % 4 === 0) xn[i] = rng.next() < 0.5 ? lo[c] + 0.01 : hi[c] - 0.01; // both clamps act
      }
      const xnF = f32(xn);
      const delta = f32(rng.uniformArray(n, -0.03, 0.03));
      const grad = f32(rng.uniformArray(n, -1, 1));
      if (rows > 1) grad.fill(0, 0, channels * plane); // a zero-gradient row: only projected
      const eps =
        channels > 1 ? std.slice(0, channels).map((s) => Math.fround(0.01 / s)) : Math.fround(0.032);
      const options = { channels, planeSize: plane, lo: Array.from(lo), hi: Array.from(hi), eps };
      const shape = [rows, channels, plane];
      const txn = g.tensor(shape, xnF);
      const tg = g.tensor(shape, grad);
      const fused = g.tensor(shape, delta);
      const xAdv = g.empty(shape);
      attackStepProject(g, fused, tg, txn, xAdv, rows, { ...options, lr: 0.5 });
      const apart = g.tensor(shape, delta);
      attackStep(g, apart, tg, rows, { mode: 'l2', lr: 0.5 });
      attackProject(g, apart, txn, options);
      const gotDelta = await g.readF32(fused);
      expect(Array.from(gotDelta)).toEqual(Array.from(await g.readF32(apart)));
      const gotX = await g.readF32(xAdv);
      for (let i = 0; i < n; i++) expect(gotX[i]).toBe(Math.fround(Math.fround(xnF[i]) + gotDelta[i]));
      const ref = refAttackStepProject(delta, grad, xnF, rows, channels, plane, lo, hi, eps, 0.5);
      expectClose(gotDelta, ref.delta, 1e-5);
      expectClose(gotX, ref.xAdv, 1e-6);
    }
    const d = g.zeros([2, 3, 4]);
    const base = { channels: 3, planeSize: 4, lo: [0, 0, 0], hi: [1, 1, 1], eps: 0.1, lr: 1 };
    expect(() => attackStepProject(g, d, g.zeros([2, 3, 4]), g.zeros([2, 3, 4]), d, 2, base)).toThrow(
      /different/,
    );
    expect(() =>
      attackStepProject(g, d, g.zeros([2, 3, 4]), g.zeros([2, 3, 4]), g.zeros([2, 3, 4]), 4, base),
    ).toThrow(/row of 6 elements/);
    expect(() =>
      attackStepProject(g, d, g.zeros([2, 3, 5]), g.zeros([2, 3, 4]), g.zeros([2, 3, 4]), 2, base),
    ).toThrow();
  });

  it('attackProject clamps the image to the per-channel box, then delta to eps', async () => {
    const g = gpu();
    const rng = new SeededRandom(14);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const lo = f32(mean.map((m, c) => -m / std[c]));
    const hi = f32(mean.map((m, c) => (1 - m) / std[c]));
    const eps = Math.fround(0.032);
    for (const [rows, channels, plane] of [
      [1, 1, 7],
      [2, 3, 35],
      [3, 3, 17 * 19],
    ]) {
      const n = rows * channels * plane;
      const loC = lo.slice(0, channels);
      const hiC = hi.slice(0, channels);
      // Clean images near the box edges, so both clamps act.
      const xn = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const c = Math.floor(i / plane) % channels;
        xn[i] = rng.uniform(loC[c] - 0.02, hiC[c] + 0.02);
        if (i % 3 === 0) xn[i] = rng.next() < 0.5 ? loC[c] + 0.01 : hiC[c] - 0.01;
      }
      const xnF = f32(xn);
      const delta = f32(rng.uniformArray(n, -0.1, 0.1));
      const td = g.tensor([rows, channels, plane], delta);
      attackProject(g, td, g.tensor([rows, channels, plane], xnF), {
        channels,
        planeSize: plane,
        lo: Array.from(loC),
        hi: Array.from(hiC),
        eps,
      });
      const ref = refAttackProject(delta, xnF, rows, channels, plane, loC, hiC, eps);
      expectClose(await g.readF32(td), ref, 1e-5);
      // Per-channel eps (a pixel-space eps mapped through each channel's std).
      const epsC = std.slice(0, channels).map((s) => Math.fround(0.01 / s));
      const td2 = g.tensor([rows, channels, plane], delta);
      attackProject(g, td2, g.tensor([rows, channels, plane], xnF), {
        channels,
        planeSize: plane,
        lo: Array.from(loC),
        hi: Array.from(hiC),
        eps: epsC,
      });
      const ref2 = refAttackProject(delta, xnF, rows, channels, plane, loC, hiC, epsC);
      expectClose(await g.readF32(td2), ref2, 1e-5);
      if (channels > 1) {
        const bound = Math.max(...ref2.map(Math.abs).slice(0, plane));
        expect(bound).toBeCloseTo(epsC[0], 5);
      }
    }
    const d = g.zeros([2, 3, 4]);
    const base = { channels: 3, planeSize: 4, lo: [0, 0, 0], hi: [1, 1, 1], eps: 0.1 };
    expect(() => attackProject(g, d, g.zeros([2, 3, 4]), { ...base, planeSize: 5 })).toThrow(
      /channels \* planeSize/,
    );
    expect(() => attackProject(g, d, g.zeros([2, 3, 4]), { ...base, lo: [0, 0] })).toThrow(
      /one value per channel/,
    );
    expect(() => attackProject(g, d, g.zeros([2, 3, 4]), { ...base, eps: -1 })).toThrow(/eps/);
    expect(() => attackProject(g, d, g.zeros([2, 3, 4]), { ...base, eps: [0.1, 0.1] })).toThrow(
      /one value per channel/,
    );
  });

  it('uniformNoise equals the CPU counter RNG, with offsets and over 65535 workgroups', async () => {
    const g = gpu();
    for (const [shape, seed, lo, hi, offset] of [
      [[5, 7], 42, -0.5, 0.5, 0],
      [[3, 11, 13], 0xdeadbeef, 0, 1, 12345],
      [[1001], -7, -8 / 255, 8 / 255, 0xfffffff0],
    ] as const) {
      const n = shape.reduce((a: number, b: number) => a * b, 1);
      const got = await g.readF32(uniformNoise(g, shape, seed, lo, hi, offset));
      const ref = uniformArrayAt(seed, n, lo, hi, offset);
      for (let i = 0; i < n; i++) {
        expect(Math.abs(got[i] - ref[i]), `element ${i}`).toBeLessThanOrEqual(
          2 ** -22 * Math.max(Math.abs(lo), hi),
        );
      }
    }
    // 65537 workgroups of 256: a second row of workgroups in the grid.
    const n = 65536 * 256 + 37;
    expect(grid(Math.ceil(n / 256))[1]).toBeGreaterThan(1);
    const got = await g.readF32(uniformNoise(g, [n], 9, -1, 1));
    const ref = uniformArrayAt(9, n, -1, 1, 0);
    let bad = 0;
    for (let i = 0; i < n; i++) if (!(Math.abs(got[i] - ref[i]) <= 2 ** -22)) bad++;
    expect(bad).toBe(0);
  });
});
