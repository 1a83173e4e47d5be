import { describe, expect, it } from 'vitest';
import {
  BaseDataset,
  type DatasetMeta,
  firstLabels,
  imagenetStyle,
  oneHot,
  openDataset,
  Rng,
  videoStyle,
} from '../src/index.js';
import { dataError, histogram, range } from './helpers.js';

/** Items whose single pixel is their own index; class i mod classes. */
class Toy extends BaseDataset {
  constructor(n: number, classes: number) {
    const meta: DatasetMeta = {
      name: 'toy',
      kind: 'image',
      channels: 1,
      height: 1,
      width: 1,
      frames: 1,
      classNames: range(classes).map(String),
      mean: [0],
      std: [1],
    };
    super(
      meta,
      oneHot(
        Int32Array.from(range(n), (i) => i % classes),
        classes,
      ),
    );
  }
  protected async decode(indices: readonly number[], out: Float32Array, offset: number) {
    indices.forEach((i, k) => {
      out[offset + k] = i;
    });
  }
}

describe('seeded generator', () => {
  it('repeats under a seed, differs between seeds, and is roughly uniform', () => {
    const a = Array.from({ length: 5 }, () => 0).map((_, __, ___, r = new Rng(7)) => r.nextU32());
    expect(new Rng(7).nextU32()).toBe(a[0]);
    expect(new Rng(8).nextU32()).not.toBe(a[0]);
    const r = new Rng(1);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 100000; i++) counts[r.int(10)]++;
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(500);
    let s = 0;
    for (let i = 0; i < 10000; i++) s += r.next();
    expect(s / 10000).toBeCloseTo(0.5, 1);
  });
});

describe('ImageNet-style splits', () => {
  it('MNIST: the same seed gives the same training subset, another seed another one', async () => {
    const a = await openDataset('mnist', { seed: 11, trainPerClass: 100 });
    const b = await openDataset('mnist', { seed: 11, trainPerClass: 100 });
    const c = await openDataset('mnist', { seed: 12, trainPerClass: 100 });
    expect(a.train.length).toBe(1000);
    expect(histogram(a.train.labels(), 10)).toEqual(new Array(10).fill(100));
    const xa = await a.train.load(range(1000));
    const xb = await b.train.load(range(1000));
    expect(xa.every((v, i) => v === xb[i])).toBe(true);
    const xc = await c.train.load(range(1000));
    let same = 0;
    for (let i = 0; i < 1000; i++)
      if (xa[i * 784 + 400] === xc[i * 784 + 400] && xa[i * 784 + 300] === xc[i * 784 + 300]) same++;
    expect(same).toBeLessThan(1000);
  });

  it('open set: held-out classes get no training items and stay in the database', async () => {
    const d = await openDataset('mnist', { trainPerClass: 50, openSet: { heldOutClasses: [3, 7] } });
    const h = histogram(d.train.labels(), 10);
    expect(h[3]).toBe(0);
    expect(h[7]).toBe(0);
    expect(h.reduce((x, y) => x + y)).toBe(400);
    expect(histogram(d.database.labels(), 10)[3]).toBe(6131);
    expect(d.info.heldOutClasses).toEqual([3, 7]);
    const bad = await dataError(() => openDataset('mnist', { openSet: { heldOutClasses: [10] } }));
    expect(bad.code).toBe('BAD_OPTION');
    const all = await dataError(() => openDataset('mnist', { openSet: { heldOutClasses: range(10) } }));
    expect(all.message).toMatch(/nothing to train on/);
  });

  it('takes all items of a class with fewer than N, in ascending index order', () => {
    const toy = new Toy(25, 4);
    const s = imagenetStyle(toy, toy, 10, 1);
    expect(s.train.length).toBe(25);
    const parent = Array.from((s.train as unknown as { parentIndices: Int32Array }).parentIndices);
    expect(parent).toEqual(range(25));
  });
});

describe('video-style splits', () => {
  it('per class: q queries, q training clips, the rest database; disjoint and seeded', async () => {
    const toy = new Toy(60, 3);
    const a = videoStyle(toy, 4, 9);
    const b = videoStyle(toy, 4, 9);
    const ids = async (d: typeof a.train) => Array.from(await d.load(range(d.length)));
    expect(histogram(a.query.labels(), 3)).toEqual([4, 4, 4]);
    expect(histogram(a.train.labels(), 3)).toEqual([4, 4, 4]);
    expect(a.database.length).toBe(36);
    const q = await ids(a.query);
    const t = await ids(a.train);
    const db = await ids(a.database);
    expect(new Set([...q, ...t, ...db]).size).toBe(60);
    expect(await ids(b.query)).toEqual(q);
    expect(await ids(videoStyle(toy, 4, 10).query)).not.toEqual(q);
    // Labels travel with the items.
    const cls = firstLabels(a.query);
    q.forEach((id, k) => {
      expect(cls[k]).toBe(id % 3);
    });
    const held = videoStyle(toy, 4, 9, [1]);
    expect(histogram(held.train.labels(), 3)).toEqual([4, 0, 4]);
    expect(held.database.length).toBe(40);
  });

  it('indices outside a data set are BAD_INDEX, not a crash', async () => {
    const toy = new Toy(5, 2);
    expect((await dataError(() => toy.load([5]))).code).toBe('BAD_INDEX');
    expect((await dataError(() => toy.load([1.5]))).code).toBe('BAD_INDEX');
    expect((await dataError(() => toy.subset([0, 9]))).code).toBe('BAD_INDEX');
    expect((await dataError(() => toy.loadInto([0, 1], new Float32Array(1)))).code).toBe('BAD_OPTION');
  });
});
