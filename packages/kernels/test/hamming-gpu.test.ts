import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGpu, type Gpu } from '../src/gpu/context.ts';
import {
  type Codes,
  disableGpuHamming,
  enableGpuHamming,
  fromWords,
  GpuHammingBackend,
  HammingError,
  HammingIndex,
} from '../src/hamming/index.ts';
import { createRng, randomWords } from '../src/hamming/random.ts';
import { bruteRank } from './hamming-helpers.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await createGpu({ checkErrors: true, poison: true });
});
afterAll(async () => {
  await disableGpuHamming();
  gpu?.destroy();
});

interface Case {
  bits: number;
  n: number;
  nq: number;
  distinct: number;
  pageCodes?: number;
  /** Small budgets force several query batches and output sub-batches. */
  memoryBudget?: number;
}

// Few distinct codes give many exact ties; pageCodes forces several pages (the last one partial).
const cases: Case[] = [
  { bits: 8, n: 300, nq: 5, distinct: 0 },
  { bits: 16, n: 1000, nq: 4, distinct: 7, pageCodes: 256 },
  { bits: 16, n: 10000, nq: 4, distinct: 30, pageCodes: 4096, memoryBudget: 65536 },
  { bits: 32, n: 600, nq: 4, distinct: 0, pageCodes: 100 },
  { bits: 48, n: 900, nq: 3, distinct: 12 },
  { bits: 64, n: 20000, nq: 3, distinct: 0, pageCodes: 7000 },
  { bits: 64, n: 9000, nq: 3, distinct: 25 },
  { bits: 100, n: 700, nq: 4, distinct: 9, pageCodes: 333 },
  { bits: 1024, n: 1500, nq: 3, distinct: 0 },
  { bits: 1024, n: 1200, nq: 2, distinct: 4, pageCodes: 500 },
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

function gpuIndex(c: Case, db: Codes): { index: HammingIndex; backend: GpuHammingBackend } {
  const backend = new GpuHammingBackend(gpu, { pageCodes: c.pageCodes, memoryBudget: c.memoryBudget });
  const index = HammingIndex.fromCodes(db, { backend: 'cpu' });
  return { index, backend };
}

describe('GPU Hamming backend against the CPU backend and brute force', () => {
  it.each(cases)(
    '$bits bits, n=$n, $distinct distinct, pages of $pageCodes, budget $memoryBudget',
    async (c) => {
      const { db, q } = makeData(c, c.bits * 7 + c.n);
      const { index: cpu, backend } = gpuIndex(c, db);
      const base = { codes: cpu.codes, generation: cpu.generation };
      const brute = bruteRank(db, q);
      const L = c.bits + 1;

      for (const k of [1, 17, c.n, c.n + 5]) {
        const g = await backend.search(base, q, k);
        const e = cpu.searchSync(q, k);
        expect(g.k).toBe(e.k);
        expect(g.distances).toEqual(e.distances);
        expect(g.ids).toEqual(e.ids);
        const kk = Math.min(k, c.n);
        for (let i = 0; i < c.nq; i++) {
          for (let j = 0; j < kk; j += Math.max(1, Math.floor(kk / 50))) {
            expect(g.ids[i * kk + j]).toBe(brute[i][j].id);
            expect(g.distances[i * kk + j]).toBe(brute[i][j].d);
          }
        }
      }

      const rank = await backend.rank(base, q);
      const er = cpu.rankSync(q);
      expect(rank.n).toBe(c.n);
      expect(rank.distances).toEqual(er.distances);
      expect(rank.ids).toEqual(er.ids);
      expect(Array.from(rank.ids.subarray(0, c.n))).toEqual(brute[0].map((x) => x.id));

      const hist = await backend.countsByDistance(base, q);
      expect(hist).toEqual(cpu.countsByDistanceSync(q));
      for (let i = 0; i < c.nq; i++) {
        const h = new Int32Array(L);
        for (const x of brute[i]) h[x.d]++;
        expect(hist.subarray(i * L, i * L + L)).toEqual(h);
      }

      for (const radius of [0, Math.floor(c.bits / 2) - 2, c.bits]) {
        const g = await backend.rangeSearch(base, q, radius);
        const e = cpu.rangeSearchSync(q, radius);
        expect(g.lims).toEqual(e.lims);
        expect(g.distances).toEqual(e.distances);
        expect(g.ids).toEqual(e.ids);
      }
      await backend.dispose();
    },
  );
});

describe('GPU Hamming through HammingIndex', () => {
  it("backend 'gpu' runs on the GPU, caches the upload per generation, and sees added codes", async () => {
    enableGpuHamming({ gpu, pageCodes: 64 });
    const rng = createRng(5);
    const bits = 64;
    const db = fromWords(bits, randomWords(rng, bits, 500, 40));
    const q = fromWords(bits, randomWords(rng, bits, 6));
    const index = HammingIndex.fromCodes(db, { backend: 'gpu' });
    const a = await index.search(q, 30);
    expect(index.lastDevice).toMatch(/^gpu: /);
    expect(a).toEqual(index.searchSync(q, 30));
    const uploads = gpu.dispatches;
    await index.search(q, 30);
    expect(gpu.dispatches - uploads).toBeGreaterThan(0);
    index.add(fromWords(bits, randomWords(rng, bits, 77, 5)));
    const b = await index.search(q, 600);
    expect(b.k).toBe(577);
    expect(b).toEqual(index.searchSync(q, 600));
    expect(await index.countWithin(q, 30)).toEqual(index.countWithinSync(q, 30));
    await index.dispose();
    await disableGpuHamming();
  });

  it("backend 'auto' stays on the CPU on a software adapter", async () => {
    enableGpuHamming({ gpu });
    const rng = createRng(9);
    const db = fromWords(64, randomWords(rng, 64, 4000));
    const index = HammingIndex.fromCodes(db, { backend: 'auto', threads: 1 });
    await index.search(fromWords(64, randomWords(rng, 64, 4)), 10);
    if (gpu.adapter.isSoftware) expect(index.lastDevice).toMatch(/^cpu: /);
    await index.dispose();
    await disableGpuHamming();
  });

  it('rejects bad options and use after dispose with HammingErrors', async () => {
    expect(() => new GpuHammingBackend(gpu, { pageCodes: 0 })).toThrow(HammingError);
    expect(() => enableGpuHamming({ memoryBudget: 12 })).toThrow(/memoryBudget/);
    const backend = new GpuHammingBackend(gpu);
    await backend.dispose();
    const db = fromWords(8, new Uint32Array([1, 2, 3]));
    await expect(backend.search({ codes: db, generation: 1 }, db, 1)).rejects.toMatchObject({
      code: 'DISPOSED',
    });
  });
});
