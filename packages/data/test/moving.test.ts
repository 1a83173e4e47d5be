import { describe, expect, it } from 'vitest';
import {
  clipParams,
  type Dataset,
  MOTIONS,
  MOVING,
  MOVING_FASHION_MNIST_NORMALISATION,
  MOVING_MNIST_NORMALISATION,
  type OpenedDataset,
  openDataset,
  pose,
} from '../src/index.js';
import { histogram, range } from './helpers.js';

const N = MOVING.canvas;
const T = MOVING.frames;

/** Mass, centroid (x, y) of one frame. */
function moments(x: Float32Array, at: number): [number, number, number] {
  let m = 0;
  let sx = 0;
  let sy = 0;
  for (let y = 0; y < N; y++) {
    for (let k = 0; k < N; k++) {
      const v = x[at + y * N + k];
      m += v;
      sx += v * k;
      sy += v * y;
    }
  }
  return [m, sx / m, sy / m];
}

/** Mean frame-0 and last-frame moments per class over the first `n` clips of a pool. */
async function perClass(d: Dataset, n: number) {
  const x = await d.load(range(n));
  const first = MOTIONS.map(() => [0, 0, 0]);
  const last = MOTIONS.map(() => [0, 0, 0]);
  const counts = new Array(MOTIONS.length).fill(0);
  for (let j = 0; j < n; j++) {
    const c = j % MOTIONS.length;
    counts[c]++;
    const a = moments(x, j * d.itemSize);
    const b = moments(x, j * d.itemSize + (T - 1) * N * N);
    for (let k = 0; k < 3; k++) {
      first[c][k] += a[k];
      last[c][k] += b[k];
    }
  }
  return {
    first: first.map((v, c) => v.map((s) => s / counts[c])),
    last: last.map((v, c) => v.map((s) => s / counts[c])),
  };
}

describe('moving items', () => {
  let mnist: OpenedDataset;

  it('are 10-frame 32x32 one-channel clips labelled by their motion, seeded', async () => {
    mnist = await openDataset('moving-mnist');
    expect(mnist.info.itemShape).toEqual([10, 1, 32, 32]);
    expect(mnist.info.classNames).toEqual([...MOTIONS]);
    expect(mnist.info.splits).toEqual({ train: 1000, database: 5000, query: 1000 });
    expect(histogram(mnist.query.labels(), 10)).toEqual(new Array(10).fill(100));
    const x = await mnist.database.load([0, 1, 2]);
    for (const v of x) expect(v >= 0 && v <= 1).toBe(true);
    const again = await (await openDataset('moving-mnist')).database.load([0, 1, 2]);
    expect(again).toEqual(x);
    const other = await (await openDataset('moving-mnist', { seed: 2 })).database.load([0, 1, 2]);
    expect(other).not.toEqual(x);
    // One clip loads the same alone and in a batch.
    expect(await mnist.database.load([1])).toEqual(
      x.subarray(mnist.database.itemSize, 2 * mnist.database.itemSize),
    );
  });

  it('frame 0 is the same for every motion: no pose change at p = 0', () => {
    const q = clipParams(1, 0, 5, 100, 10);
    for (let m = 0; m < MOTIONS.length; m++)
      expect(pose(m, 0, q)).toEqual({ dx: 0, dy: 0, scale: 1, angle: 0 });
  });

  it('first frames of all classes have the same distribution; the last frames differ by the motion', async () => {
    const { first, last } = await perClass(mnist.database, 2000);
    const all = first.reduce((a, v) => a.map((s, k) => s + v[k] / 10), [0, 0, 0]);
    for (const f of first) {
      expect(Math.abs(f[0] - all[0]) / all[0]).toBeLessThan(0.08); // mass within 8 %
      expect(Math.abs(f[1] - all[1])).toBeLessThan(0.5); // centroid within half a pixel
      expect(Math.abs(f[2] - all[2])).toBeLessThan(0.5);
    }
    const shift = (name: string) => {
      const c = MOTIONS.indexOf(name as (typeof MOTIONS)[number]);
      return [last[c][0] / first[c][0], last[c][1] - first[c][1], last[c][2] - first[c][2]];
    };
    expect(shift('right')[1]).toBeGreaterThan(5);
    expect(shift('left')[1]).toBeLessThan(-5);
    expect(shift('down')[2]).toBeGreaterThan(5);
    expect(shift('up')[2]).toBeLessThan(-5);
    expect(shift('down-right')[1]).toBeGreaterThan(3);
    expect(shift('down-right')[2]).toBeGreaterThan(3);
    expect(shift('up-left')[1]).toBeLessThan(-3);
    expect(shift('grow')[0]).toBeGreaterThan(1.5);
    expect(shift('shrink')[0]).toBeLessThan(0.6);
    for (const still of ['rotate', 'bounce', 'grow', 'shrink']) {
      expect(Math.abs(shift(still)[1])).toBeLessThan(1);
      expect(Math.abs(shift(still)[2])).toBeLessThan(1);
    }
  });

  it('bounce and rotate differ from the rest in the middle of the clip', async () => {
    const x = await mnist.database.load(range(200));
    const mid = Math.floor(T / 2);
    let bounceDx = 0;
    let rotateMass = 0;
    for (let j = 0; j < 200; j++) {
      const c = MOTIONS[j % 10];
      const a = moments(x, j * mnist.database.itemSize);
      const m = moments(x, j * mnist.database.itemSize + mid * N * N);
      if (c === 'bounce') bounceDx += (m[1] - a[1]) / 20;
      if (c === 'rotate') {
        // A rotated item is a different image: per-pixel change from frame 0 is large, its mass is not.
        rotateMass += m[0] / a[0] / 20;
      }
    }
    expect(bounceDx).toBeGreaterThan(4);
    expect(Math.abs(rotateMass - 1)).toBeLessThan(0.1);
  });

  it('the normalisation constants match the clips (re-measured)', async () => {
    for (const [name, norm] of [
      ['moving-mnist', MOVING_MNIST_NORMALISATION],
      ['moving-fashion-mnist', MOVING_FASHION_MNIST_NORMALISATION],
    ] as const) {
      const d = await openDataset(name);
      const x = await d.database.load(range(1000));
      let s = 0;
      let s2 = 0;
      for (const v of x) {
        s += v;
        s2 += v * v;
      }
      const mean = s / x.length;
      expect(mean).toBeCloseTo(norm.mean[0], 2);
      expect(Math.sqrt(s2 / x.length - mean * mean)).toBeCloseTo(norm.std[0], 2);
      expect(d.info.mean).toEqual(norm.mean);
    }
  });
});
