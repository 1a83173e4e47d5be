import { afterAll, describe, expect, it } from 'vitest';
import {
  type Codes,
  disposeHammingWorkers,
  fromFaissBytes,
  fromPm1,
  fromWords,
  HammingIndex,
  type HammingIndexOptions,
  toFaissBytes,
} from '../src/hamming/index.ts';
import { createRng, randomWords } from '../src/hamming/random.ts';
import { bruteRank, toPm1 } from './hamming-helpers.ts';

afterAll(async () => {
  await disposeHammingWorkers();
});

interface Case {
  bits: number;
  n: number;
  nq: number;
  distinct: number;
}

// Few distinct codes give many exact ties; n above a block (8192 codes up to 64 bits, 512 at 1024 bits)
// makes the scan span several database blocks.
const cases: Case[] = [
  { bits: 8, n: 300, nq: 5, distinct: 0 },
  { bits: 16, n: 1000, nq: 4, distinct: 7 },
  { bits: 32, n: 600, nq: 4, distinct: 0 },
  { bits: 48, n: 900, nq: 3, distinct: 12 },
  { bits: 64, n: 20000, nq: 3, distinct: 0 },
  { bits: 64, n: 9000, nq: 3, distinct: 25 },
  { bits: 100, n: 700, nq: 4, distinct: 9 },
  { bits: 1024, n: 1500, nq: 3, distinct: 0 },
  { bits: 1024, n: 1200, nq: 2, distinct: 4 },
];

function makeData(c: Case, seed: number): { db: Codes; q: Codes } {
  const rng = createRng(seed);
  const db = fromWords(c.bits, randomWords(rng, c.bits, c.n, c.distinct));
  // Half of the queries are copies of database codes (distance 0 and its ties), half are random.
  const qw = randomWords(rng, c.bits, c.nq);
  const W = (c.bits + 31) >>> 5;
  for (let i = 0; i < c.nq; i += 2) {
    const j = rng.below(c.n);
    qw.set(db.words.subarray(j * W, j * W + W), i * W);
  }
  return { db, q: fromWords(c.bits, qw) };
}

const variants: { name: string; options: HammingIndexOptions; async: boolean }[] = [
  { name: 'wasm, calling thread', options: { backend: 'cpu', kernel: 'wasm', threads: 1 }, async: false },
  { name: 'js, calling thread', options: { backend: 'cpu', kernel: 'js', threads: 1 }, async: false },
  { name: 'wasm, 2 worker threads', options: { backend: 'auto', kernel: 'wasm', threads: 2 }, async: true },
];

describe.each(variants)('HammingIndex ($name) against brute force', ({ options, async }) => {
  it.each(cases)('$bits bits, n=$n, $distinct distinct codes', async (c) => {
    const { db, q } = makeData(c, c.bits * 1000 + c.n);
    const index = HammingIndex.fromCodes(db, options);
    const ref = bruteRank(db, q);
    const ks = [1, 7, c.n, c.n + 5];
    for (const k of ks) {
      const r = async ? await index.search(q, k) : index.searchSync(q, k);
      if (async) expect(index.lastDevice).toBe('cpu: wasm x 2 threads');
      const kk = Math.min(k, c.n);
      expect(r.k).toBe(kk);
      expect(r.ids.length).toBe(q.count * kk);
      for (let i = 0; i < q.count; i++) {
        const want = ref[i].slice(0, kk);
        expect(Array.from(r.distances.subarray(i * kk, i * kk + kk))).toEqual(want.map((e) => e.d));
        expect(Array.from(r.ids.subarray(i * kk, i * kk + kk))).toEqual(want.map((e) => e.id));
      }
    }
    // Full ranking.
    const rk = async ? await index.rank(q) : index.rankSync(q);
    expect(rk.n).toBe(c.n);
    for (let i = 0; i < q.count; i++) {
      expect(Array.from(rk.ids.subarray(i * c.n, (i + 1) * c.n))).toEqual(ref[i].map((e) => e.id));
      expect(Array.from(rk.distances.subarray(i * c.n, (i + 1) * c.n))).toEqual(ref[i].map((e) => e.d));
    }
    // Radius search, counts within radius, histograms, at a few radii.
    const hist = async ? await index.countsByDistance(q) : index.countsByDistanceSync(q);
    expect(hist.length).toBe(q.count * (c.bits + 1));
    for (const radius of [0, Math.floor(c.bits / 3), Math.floor(c.bits / 2), c.bits, c.bits + 3]) {
      const rr = async ? await index.rangeSearch(q, radius) : index.rangeSearchSync(q, radius);
      const cw = async ? await index.countWithin(q, radius) : index.countWithinSync(q, radius);
      expect(rr.lims.length).toBe(q.count + 1);
      expect(rr.lims[0]).toBe(0);
      for (let i = 0; i < q.count; i++) {
        const want = ref[i].filter((e) => e.d <= radius);
        const a = rr.lims[i];
        const b = rr.lims[i + 1];
        expect(Array.from(rr.ids.subarray(a, b))).toEqual(want.map((e) => e.id));
        expect(Array.from(rr.distances.subarray(a, b))).toEqual(want.map((e) => e.d));
        expect(cw[i]).toBe(want.length);
      }
    }
    for (let i = 0; i < q.count; i++) {
      for (let d = 0; d <= c.bits; d++) {
        const want = ref[i].filter((e) => e.d === d).length;
        if (hist[i * (c.bits + 1) + d] !== want)
          expect([i, d, hist[i * (c.bits + 1) + d]]).toEqual([i, d, want]);
      }
    }
  });
});

describe('worker threads', () => {
  it('split by database (1 query) and by queries give the calling-thread results', async () => {
    const c: Case = { bits: 64, n: 30000, nq: 1, distinct: 50 };
    const { db, q } = makeData(c, 99);
    const threaded = HammingIndex.fromCodes(db, { backend: 'cpu', threads: 2 });
    const single = HammingIndex.fromCodes(db, { backend: 'cpu', threads: 1 });
    for (const k of [1, 10, 1000]) {
      expect(await threaded.search(q, k)).toEqual(single.searchSync(q, k));
    }
    expect(await threaded.rangeSearch(q, 20)).toEqual(single.rangeSearchSync(q, 20));
    expect(await threaded.countsByDistance(q)).toEqual(single.countsByDistanceSync(q));
    expect(threaded.lastDevice).toMatch(/^cpu: wasm x 2 threads$/);
    const many = fromWords(64, randomWords(createRng(5), 64, 9));
    expect(await threaded.search(many, 50)).toEqual(single.searchSync(many, 50));
    expect(await threaded.rank(many)).toEqual(single.rankSync(many));
    // Terminated workers are replaced by a fresh pool on the next call.
    await disposeHammingWorkers();
    expect(await threaded.search(many, 5)).toEqual(single.searchSync(many, 5));
    expect(threaded.lastDevice).toBe('cpu: wasm x 2 threads');
  });

  it('the JavaScript kernels run in workers too', async () => {
    const { db, q } = makeData({ bits: 100, n: 2000, nq: 4, distinct: 10 }, 3);
    const js = HammingIndex.fromCodes(db, { kernel: 'js', threads: 2 });
    const wasm = HammingIndex.fromCodes(db, { kernel: 'wasm', threads: 1 });
    expect(await js.search(q, 30)).toEqual(wasm.searchSync(q, 30));
    expect(js.lastDevice).toBe('cpu: js x 2 threads');
  });
});

describe('code layouts', () => {
  it('±1 floats, FAISS bytes and u32 words give the same codes', () => {
    for (const bits of [8, 12, 16, 33, 64, 100]) {
      const words = randomWords(createRng(bits), bits, 17);
      const codes = fromWords(bits, words);
      const pm1 = toPm1(codes);
      expect(fromPm1(bits, pm1).words).toEqual(codes.words);
      expect(fromPm1(bits, Float64Array.from(pm1)).words).toEqual(codes.words);
      const bytes = toFaissBytes(codes);
      expect(bytes.length).toBe(17 * Math.ceil(bits / 8));
      expect(fromFaissBytes(bits, bytes).words).toEqual(codes.words);
      // FAISS layout: byte b holds bits 8b..8b+7, least-significant first.
      for (let j = 0; j < bits; j++) {
        const bit = (words[j >> 5] >>> (j & 31)) & 1;
        expect((bytes[j >> 3] >> (j & 7)) & 1).toBe(bit);
      }
    }
  });

  it('value >= 0 is a 1 bit, including -0 and infinities', () => {
    const v = new Float32Array(8);
    v.set([0, -0, 1, -1, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e-30, -1e-30]);
    expect(fromPm1(8, v).words[0]).toBe(0b01010111);
  });

  it('padding bits are cleared and ignored', () => {
    const words = Uint32Array.of(0xffffffff, 0xffffffff);
    expect(fromWords(8, words).words).toEqual(Uint32Array.of(0xff, 0xff));
    const bytes = Uint8Array.of(0xff, 0xff, 0xff);
    expect(fromFaissBytes(12, Uint8Array.of(0xff, 0xff)).words).toEqual(Uint32Array.of(0xfff));
    expect(fromFaissBytes(8, bytes).count).toBe(3);
    // A Codes value with dirty padding is cleaned before use: distance 0 to its clean self.
    const index = new HammingIndex(12, { threads: 1 }).add(Uint32Array.of(0xabc));
    const r = index.searchSync({ bits: 12, count: 1, words: Uint32Array.of(0xffff0abc) }, 1);
    expect(r.distances[0]).toBe(0);
  });

  it('the three input forms give the same search results, and add() appends ids', async () => {
    const bits = 40;
    const codes = fromWords(bits, randomWords(createRng(3), bits, 50));
    const q = fromWords(bits, randomWords(createRng(4), bits, 3));
    const a = HammingIndex.fromWords(bits, codes.words, { threads: 1 });
    const b = HammingIndex.fromFaissBytes(bits, toFaissBytes(codes), { threads: 1 });
    const c = HammingIndex.fromPm1(bits, toPm1(codes), { threads: 1 });
    const d = new HammingIndex(bits, { threads: 1 });
    d.add({ bits, count: 20, words: codes.words.subarray(0, 20 * 2) });
    d.addFaissBytes(toFaissBytes({ bits, count: 30, words: codes.words.subarray(40) }));
    expect(d.count).toBe(50);
    const want = a.searchSync(q, 10);
    expect(b.searchSync(toFaissBytes(q), 10)).toEqual(want);
    expect(c.searchSync(toPm1(q), 10)).toEqual(want);
    expect(await d.search(q.words, 10)).toEqual(want);
    expect(a.searchSync(q, 10)).toEqual(a.searchSync(toPm1(q), 10));
  });

  it('an empty query set gives empty results', async () => {
    const index = HammingIndex.fromWords(32, Uint32Array.of(1, 2, 3), { threads: 1 });
    const r = await index.search(new Uint32Array(0), 2);
    expect(r.k).toBe(2);
    expect(r.ids.length).toBe(0);
    expect((await index.rangeSearch(new Uint32Array(0), 3)).lims).toEqual(Int32Array.of(0));
  });
});
