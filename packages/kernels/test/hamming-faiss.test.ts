import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { fromFaissBytes, HammingIndex, readNpy } from '../src/hamming/index.ts';
import { distance } from './hamming-helpers.ts';

// Produced once by bench/faiss_fixtures.py with FAISS 1.7.3 IndexBinaryFlat, k = 10.
const dir = new URL('./fixtures/hamming/', import.meta.url);
const load = async (name: string) => readNpy(await readFile(new URL(name, dir)), name);

describe.each([16, 64, 100])('FAISS IndexBinaryFlat fixtures, %i bits', (bits) => {
  it('same distances; same ids up to FAISS tie order; ties at the k-th place resolved by lowest id', async () => {
    const dbNpy = await load(`b${bits}_db.npy`);
    const qNpy = await load(`b${bits}_queries.npy`);
    const fd = await load(`b${bits}_distances.npy`);
    const fi = await load(`b${bits}_ids.npy`);
    expect(dbNpy.dtype).toBe('uint8');
    expect(dbNpy.shape[1]).toBe(Math.ceil(bits / 8));
    expect(fd.dtype).toBe('int32');
    expect(fi.dtype).toBe('int64');
    const k = fd.shape[1];
    const db = fromFaissBytes(bits, dbNpy.data as Uint8Array);
    const q = fromFaissBytes(bits, qNpy.data as Uint8Array);
    const faissD = fd.data as Int32Array;
    const faissI = Array.from(fi.data as BigInt64Array, Number);

    for (const options of [{ threads: 1 }, { threads: 2 }, { kernel: 'js' as const, threads: 1 }]) {
      const index = HammingIndex.fromCodes(db, { backend: 'cpu', ...options });
      const r = await index.search(q, k);
      expect(r.k).toBe(k);
      expect(r.distances).toEqual(faissD);
      let boundaryTies = 0;
      for (let i = 0; i < q.count; i++) {
        const row = (a: ArrayLike<number>) => Array.from(a).slice(i * k, (i + 1) * k);
        const ours = row(r.ids);
        const theirs = row(faissI);
        const dist = row(r.distances);
        const dk = dist[k - 1];
        // Every id is at the distance reported for it.
        for (let c = 0; c < k; c++) {
          expect(distance(db, ours[c], q, i)).toBe(dist[c]);
          expect(distance(db, theirs[c], q, i)).toBe(dist[c]);
        }
        // Below the k-th distance the answer is unique: same id sets per distance.
        for (const d of new Set(dist)) {
          const mine = ours.filter((_, c) => dist[c] === d);
          const fa = theirs.filter((_, c) => dist[c] === d);
          // Ours: ascending ids within a distance.
          expect(mine).toEqual([...mine].sort((a, b) => a - b));
          let atD = 0;
          for (let j = 0; j < db.count; j++) if (distance(db, j, q, i) === d) atD++;
          if (d < dk || atD === mine.length) {
            expect(mine).toEqual([...fa].sort((a, b) => a - b));
          } else {
            // A tie across the k-th place: any choice is valid for FAISS; ours takes the lowest ids.
            boundaryTies++;
            const lowest: number[] = [];
            for (let j = 0; j < db.count && lowest.length < mine.length; j++) {
              if (distance(db, j, q, i) === d) lowest.push(j);
            }
            expect(mine).toEqual(lowest);
          }
        }
        if (dk === dist[0]) expect(new Set(ours).size).toBe(k);
      }
      // The fixtures are built with many ties: make sure the boundary case is exercised.
      expect(boundaryTies).toBeGreaterThan(0);
    }
  });
});
