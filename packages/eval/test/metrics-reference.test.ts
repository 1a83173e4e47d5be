import { SeededRandom } from '@dhta/kernels/reference';
import { describe, expect, it } from 'vitest';
import {
  mapFromRanking,
  perceptibility,
  RetrievalDatabase,
  referenceMap,
  referencePerceptibility,
  referencePrecisionAtN,
  referencePrecisionRecall,
  referenceRank,
} from '../src/index.ts';

// The fast path (HammingIndex + metrics.ts) against the plain float64 reference on random data: few bits
// and codes drawn from a small pool, so ties are everywhere.

function randomCodes(rng: SeededRandom, count: number, bits: number, pool: Int8Array | null): Int8Array {
  const out = new Int8Array(count * bits);
  const poolSize = pool ? pool.length / bits : 0;
  for (let i = 0; i < count; i++) {
    if (pool) {
      const k = rng.int(poolSize);
      out.set(pool.subarray(k * bits, k * bits + bits), i * bits);
    } else for (let j = 0; j < bits; j++) out[i * bits + j] = rng.next() < 0.5 ? -1 : 1;
  }
  return out;
}

function randomLabels(rng: SeededRandom, count: number, classes: number, multi: boolean): Uint8Array {
  const out = new Uint8Array(count * classes);
  for (let i = 0; i < count; i++) {
    if (multi) for (let c = 0; c < classes; c++) out[i * classes + c] = rng.next() < 0.3 ? 1 : 0;
    else out[i * classes + rng.int(classes)] = 1;
  }
  return out;
}

function pack(bits: number, codes: Int8Array): Uint32Array {
  const W = (bits + 31) >>> 5;
  const count = codes.length / bits;
  const words = new Uint32Array(count * W);
  for (let i = 0; i < count; i++)
    for (let j = 0; j < bits; j++) if (codes[i * bits + j] === 1) words[i * W + (j >>> 5)] |= 1 << (j & 31);
  return words;
}

const expectClose = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i])) expect(got[i]).toBeNaN();
    else expect(got[i]).toBeCloseTo(want[i], 12);
  }
};

const cases = [
  { bits: 3, n: 60, nq: 9, classes: 3, multi: false, pool: 4, seed: 1 },
  { bits: 4, n: 120, nq: 15, classes: 5, multi: false, pool: 0, seed: 2 },
  { bits: 8, n: 200, nq: 20, classes: 6, multi: true, pool: 12, seed: 3 },
  { bits: 10, n: 150, nq: 12, classes: 4, multi: true, pool: 0, seed: 4 },
  { bits: 12, n: 257, nq: 11, classes: 10, multi: false, pool: 30, seed: 5 },
  { bits: 33, n: 90, nq: 7, classes: 5, multi: true, pool: 0, seed: 6 },
];

describe('against the float64 reference on random data', () => {
  for (const c of cases) {
    const label = `${c.bits} bits, n ${c.n}, ${c.multi ? 'multi' : 'single'}-label, ${c.pool ? `pool ${c.pool}` : 'random'}`;
    it(label, async () => {
      const rng = new SeededRandom(c.seed);
      const pool = c.pool ? randomCodes(rng, c.pool, c.bits, null) : null;
      const dbCodes = randomCodes(rng, c.n, c.bits, pool);
      const queries = randomCodes(rng, c.nq, c.bits, pool);
      const dbLabels = randomLabels(rng, c.n, c.classes, c.multi);
      const queryLabels = randomLabels(rng, c.nq, c.classes, c.multi);
      const targetLabels = randomLabels(rng, c.nq, c.classes, c.multi);
      const ref = referenceRank(c.bits, dbCodes, queries);

      // Small maxEntries: queries are ranked in several chunks.
      const db = new RetrievalDatabase(c.bits, dbCodes, dbLabels, {
        maxEntries: 3 * c.n,
        index: { backend: 'cpu' },
      });
      const packedDb = new RetrievalDatabase(c.bits, pack(c.bits, dbCodes), dbLabels);

      const ranking = await db.rank(queries);
      expect(Array.from(ranking.ids)).toEqual(ref.ids.flat());
      const packedRanking = await packedDb.rank(pack(c.bits, queries));
      expect(Array.from(packedRanking.ids)).toEqual(ref.ids.flat());
      expect(Array.from(ranking.distances)).toEqual(
        ref.ids.flatMap((row, q) => row.map((i) => ref.distanceByIndex[q][i])),
      );

      for (const R of [1, 5, Math.floor(c.n / 3), undefined, c.n + 10]) {
        for (const zeroHits of ['skip', 'count'] as const) {
          for (const [name, refLabels] of [
            ['MAP', queryLabels],
            ['t-MAP', targetLabels],
          ] as const) {
            const want = referenceMap(ref, dbLabels, refLabels, R ?? c.n, zeroHits);
            const got =
              name === 'MAP'
                ? await db.map(queries, refLabels, { R, zeroHits })
                : await db.targetedMap(queries, refLabels, { R, zeroHits });
            expect(got.ap.map((a) => (a === null ? null : Number(a.toFixed(12))))).toEqual(
              want.ap.map((a) => (a === null ? null : Number(a.toFixed(12)))),
            );
            expect(got.counted).toBe(want.counted);
            if (want.map === null) expect(got.map).toBeNull();
            else expect(got.map).toBeCloseTo(want.map, 12);
            // mapFromRanking on a top-R ranking gives the same
            const top = await db.rank(queries, R ?? c.n);
            expect(mapFromRanking(top, dbLabels, refLabels, { R, zeroHits }).map).toEqual(got.map);
          }
        }
      }

      for (const emptyPrecision of ['skip', 'zero'] as const) {
        const want = referencePrecisionRecall(ref, dbLabels, targetLabels, emptyPrecision);
        const got = await db.precisionRecall(queries, targetLabels, { emptyPrecision });
        expectClose(got.precision, want.precision);
        expectClose(got.recall, want.recall);
        expect(Array.from(got.precisionCounted)).toEqual(want.precisionCounted);
        expect(got.recallCounted).toBe(want.recallCounted);
      }

      const ns = [1, 7, 50, 100, c.n, c.n + 1];
      expectClose(
        (await db.precisionAtN(queries, queryLabels, { ns })).precision,
        referencePrecisionAtN(ref, dbLabels, queryLabels, ns),
      );
    });
  }

  it('the random data has ties and zero-hit queries (the comparison above exercises both)', async () => {
    const rng = new SeededRandom(3);
    const c = cases[2];
    const pool = randomCodes(rng, c.pool, c.bits, null);
    const dbCodes = randomCodes(rng, c.n, c.bits, pool);
    const queries = randomCodes(rng, c.nq, c.bits, pool);
    const ref = referenceRank(c.bits, dbCodes, queries);
    const d = ref.distanceByIndex[0];
    expect(new Set(d).size).toBeLessThan(d.length / 4);
    const dbLabels = randomLabels(rng, c.n, c.classes, c.multi);
    const queryLabels = randomLabels(rng, c.nq, c.classes, c.multi);
    const skip = referenceMap(ref, dbLabels, queryLabels, 1, 'skip');
    expect(skip.counted).toBeGreaterThan(0);
    expect(skip.counted).toBeLessThan(c.nq);
  });

  it('perceptibility', () => {
    const rng = new SeededRandom(9);
    const x = new Float32Array(rng.uniformArray(5 * 37, 0, 1));
    const adv = x.map((v) => Math.min(1, Math.max(0, v + rng.uniform(-0.05, 0.05))));
    const got = perceptibility(adv, x, 5);
    const want = referencePerceptibility(adv, x, 5);
    expectClose(got.perObject, want.perObject);
    expect(got.mean).toBeCloseTo(want.mean, 12);
  });
});
