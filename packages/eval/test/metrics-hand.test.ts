import { describe, expect, it } from 'vitest';
import {
  averagePrecisionAtR,
  EvaluationError,
  mapFromRanking,
  oneHot,
  perceptibility,
  RetrievalDatabase,
} from '../src/index.ts';

// Hand-computed cases. 4-bit codes (padded to 8 bits for HammingIndex; distances unchanged).
const P = 1;
const M = -1;
// prettier-ignore
const database = new Int8Array([
  P,
  P,
  P,
  P, // 0: label A
  M,
  P,
  P,
  P, // 1: label B
  P,
  M,
  P,
  P, // 2: label A
  M,
  M,
  P,
  P, // 3: label A
  M,
  M,
  M,
  M, // 4: label B
]);
const A = 0;
const B = 1;
const dbLabels = oneHot([A, B, A, A, B], 2);
const q1 = [P, P, P, P]; // distances 0, 1, 1, 2, 4 -> ranking 0, 1, 2, 3, 4 (1 and 2 tie: index order)
const q2 = [M, M, M, M]; // distances 4, 3, 3, 2, 0 -> ranking 4, 3, 1, 2, 0
const q3 = [P, P, P, M]; // distances 1, 2, 2, 3, 3 -> ranking 0, 1, 2, 3, 4; nothing at distance 0

const close = (x: number | null | undefined, y: number): void => {
  expect(x).toBeCloseTo(y, 12);
};
const closeAll = (got: ArrayLike<number>, want: number[]): void => {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) close(got[i], want[i]);
};

describe('hand-computed MAP@R', () => {
  const db = new RetrievalDatabase(4, database, dbLabels);

  it('ranks by distance, ties by database index', async () => {
    const r = await db.rank(new Int8Array([...q1, ...q2, ...q3]));
    expect(Array.from(r.ids)).toEqual([0, 1, 2, 3, 4, 4, 3, 1, 2, 0, 0, 1, 2, 3, 4]);
    expect(Array.from(r.distances)).toEqual([0, 1, 1, 2, 4, 0, 2, 3, 3, 4, 1, 2, 2, 3, 3]);
  });

  it('AP@R for single queries', async () => {
    const apOf = async (q: number[], label: number, R?: number) =>
      (await db.mapAtR(new Int8Array(q), oneHot([label], 2), { R })).ap[0];
    // q1, reference A: rel = 1, 0, 1, 1, 0. AP@5 = (1/3)(1/1 + 2/3 + 3/4) = (1/3)(29/12) = 29/36
    close(await apOf(q1, A), 29 / 36);
    // AP@2: rel = 1, 0 -> (1/1)(1/1) = 1;  AP@3: rel = 1, 0, 1 -> (1/2)(1 + 2/3) = 5/6
    close(await apOf(q1, A, 2), 1);
    close(await apOf(q1, A, 3), 5 / 6);
    // q1, reference B: rel = 0, 1, 0, 0, 1 -> (1/2)(1/2 + 2/5) = 9/20
    close(await apOf(q1, B), 9 / 20);
    // q2, reference A: ranking 4, 3, 1, 2, 0 -> rel = 0, 1, 0, 1, 1 -> (1/3)(1/2 + 2/4 + 3/5) = 1.6/3
    close(await apOf(q2, A), 1.6 / 3);
    // q1, reference B, R = 1: the top 1 (id 0, label A) holds no relevant object -> null
    expect(await apOf(q1, B, 1)).toBeNull();
  });

  it('MAP@R over queries and both zero-hit conventions', async () => {
    const queries = new Int8Array([...q1, ...q2]);
    // q1 (A): 29/36; q2 (B): ranking labels B, A, B, A, A -> rel 1, 0, 1, 0, 0 -> (1/2)(1 + 2/3) = 5/6 = 30/36
    const full = await db.map(queries, oneHot([A, B], 2));
    close(full.map, (29 / 36 + 30 / 36) / 2); // = 59/72
    expect(full.counted).toBe(2);
    expect(full.R).toBe(5);
    // R = 1, both with reference A: q1's top is id 0 (A) -> AP 1; q2's top is id 4 (B) -> zero hits
    const skip = await db.targetedMap(queries, oneHot([A, A], 2), { R: 1 });
    expect(skip.ap).toEqual([1, null]);
    close(skip.map, 1); // (1) / 1 query counted
    expect(skip.counted).toBe(1);
    expect(skip.zeroHitQueries).toBe(1);
    const count = await db.targetedMap(queries, oneHot([A, A], 2), { R: 1, zeroHits: 'count' });
    expect(count.ap).toEqual([1, 0]);
    close(count.map, 0.5); // (1 + 0) / 2
    expect(count.counted).toBe(2);
    // no query counted: the mean is null, not 0 or NaN
    const none = await db.targetedMap(new Int8Array(q2), oneHot([A], 2), { R: 1 });
    expect(none.map).toBeNull();
    // R above the database size means the whole database
    expect((await db.map(queries, oneHot([A, B], 2), { R: 1000 })).R).toBe(5);
  });

  it('accepts packed u32 words with the same results', async () => {
    // q1 = 1111b = 15, q2 = 0, q3 = bits 0..2 set = 7; database rows: 15, 1110b = 14, 1101b = 13, 1100b = 12, 0
    const packed = new RetrievalDatabase(4, new Uint32Array([15, 14, 13, 12, 0]), dbLabels);
    const r = await packed.rank(new Uint32Array([15, 0, 7]));
    expect(Array.from(r.ids)).toEqual([0, 1, 2, 3, 4, 4, 3, 1, 2, 0, 0, 1, 2, 3, 4]);
    close((await packed.map(new Uint32Array([15, 0]), oneHot([A, B], 2))).map, 59 / 72);
  });

  it('multi-label relevance: sharing at least one positive label', async () => {
    // 8-bit codes; q = all +1; db0 has two -1 (d = 2), db1 one (d = 1), db2 none (d = 0): ranking 2, 1, 0
    const q = new Int8Array(8).fill(1);
    const codes = new Int8Array(24).fill(1);
    codes[0] = -1;
    codes[1] = -1;
    codes[8] = -1;
    const labels = new Uint8Array([1, 1, 0, 0, 0, 1, 0, 1, 1]); // db0 {0,1}, db1 {2}, db2 {1,2}
    const mdb = new RetrievalDatabase(8, codes, labels);
    // reference {1}: relevant db0, db2 -> ranked rel 1, 0, 1 -> (1/2)(1/1 + 2/3) = 5/6
    close((await mdb.map(q, new Uint8Array([0, 1, 0]))).map, 5 / 6);
    // reference {0}: relevant db0 only -> rel 0, 0, 1 -> (1/1)(1/3) = 1/3
    close((await mdb.map(q, new Uint8Array([1, 0, 0]))).map, 1 / 3);
    // reference {0, 2}: all relevant -> 1
    close((await mdb.map(q, new Uint8Array([1, 0, 1]))).map, 1);
    // reference {} (no positive label): nothing relevant -> skipped, or 0 when counted
    expect((await mdb.map(q, new Uint8Array([0, 0, 0]))).map).toBeNull();
    close((await mdb.map(q, new Uint8Array([0, 0, 0]), { zeroHits: 'count' })).map, 0);
  });

  it('mapFromRanking and averagePrecisionAtR agree with the database methods', async () => {
    const ranking = await db.rank(new Int8Array([...q1, ...q2]), 3);
    // AP@3: q1 (A) rel 1, 0, 1 -> 5/6; q2 (B) rel 1, 0, 1 -> 5/6
    close(mapFromRanking(ranking, dbLabels, oneHot([A, B], 2), { R: 3 }).map, 5 / 6);
    close(
      averagePrecisionAtR((i) => [true, false, true][i], 3),
      5 / 6,
    );
    expect(() => mapFromRanking(ranking, dbLabels, oneHot([A, B], 2), { R: 4 })).toThrow(
      /at least 4 entries/,
    );
  });
});

describe('hand-computed precision-recall and precision@N', () => {
  const db = new RetrievalDatabase(4, database, dbLabels);

  it('precision and recall at every radius, both empty-set conventions', async () => {
    // q1 reference A (relevant 0, 2, 3; distances 0, 1, 1, 2, 4):
    //   r=0 {0}: P 1, R 1/3; r=1 {0,1,2}: P 2/3, R 2/3; r=2 {0..3}: P 3/4, R 1; r=3 same; r=4 all: P 3/5, R 1
    const one = await db.precisionRecall(new Int8Array(q1), oneHot([A], 2));
    expect(one.radii).toEqual([0, 1, 2, 3, 4]);
    closeAll(one.precision, [1, 2 / 3, 3 / 4, 3 / 4, 3 / 5]);
    closeAll(one.recall, [1 / 3, 2 / 3, 1, 1, 1]);
    // q3 reference B (relevant 1, 4; distances 1, 2, 2, 3, 3):
    //   r=0 {}: P undefined, R 0; r=1 {0}: P 0, R 0; r=2 {0,1,2}: P 1/3, R 1/2; r=3,4 all: P 2/5, R 1
    const queries = new Int8Array([...q1, ...q3]);
    const refs = oneHot([A, B], 2);
    const skip = await db.precisionRecall(queries, refs);
    // skip: r=0 only q1 counted -> 1; r=1 (2/3 + 0)/2 = 1/3; r=2 (3/4 + 1/3)/2 = 13/24;
    //       r=3 (3/4 + 2/5)/2 = 23/40; r=4 (3/5 + 2/5)/2 = 1/2
    closeAll(skip.precision, [1, 1 / 3, 13 / 24, 23 / 40, 1 / 2]);
    expect(Array.from(skip.precisionCounted)).toEqual([1, 2, 2, 2, 2]);
    // recall: r=0 (1/3 + 0)/2 = 1/6; r=1 (2/3 + 0)/2 = 1/3; r=2 (1 + 1/2)/2 = 3/4; r=3, 4: 1
    closeAll(skip.recall, [1 / 6, 1 / 3, 3 / 4, 1, 1]);
    expect(skip.recallCounted).toBe(2);
    // zero: r=0 (1 + 0)/2 = 1/2, the rest unchanged
    const zero = await db.precisionRecall(queries, refs, { emptyPrecision: 'zero' });
    closeAll(zero.precision, [1 / 2, 1 / 3, 13 / 24, 23 / 40, 1 / 2]);
    expect(Array.from(zero.precisionCounted)).toEqual([2, 2, 2, 2, 2]);
  });

  it('recall leaves out queries with nothing relevant in the database', async () => {
    const r = await db.precisionRecall(new Int8Array([...q1, ...q1]), new Uint8Array([1, 0, 0, 0]));
    expect(r.recallCounted).toBe(1);
    close(r.recall[0], 1 / 3); // only the first query (reference A) counts
    close(r.precision[0], (1 + 0) / 2); // the second query retrieves id 0, not relevant -> precision 0
  });

  it('precision@N', async () => {
    // q1 reference A: ranked rel 1, 0, 1, 1, 0 -> P@1 = 1, P@2 = 1/2, P@3 = 2/3, P@10 = whole database 3/5
    const r = await db.precisionAtN(new Int8Array(q1), oneHot([A], 2), { ns: [1, 2, 3, 10] });
    closeAll(r.precision, [1, 1 / 2, 2 / 3, 3 / 5]);
    expect(r.ns).toEqual([1, 2, 3, 10]);
    // q1 (A) and q2 (B, ranking 4, 3, 1, 2, 0 -> rel 1, 0, 1, 0, 0): P@2 = (1/2 + 1/2)/2, P@3 = (2/3 + 2/3)/2
    const two = await db.precisionAtN(new Int8Array([...q1, ...q2]), oneHot([A, B], 2), { ns: [2, 3] });
    close(two.precision[0], 1 / 2);
    close(two.precision[1], 2 / 3);
    // default N list for a 5-object database: [5]
    expect((await db.precisionAtN(new Int8Array(q1), oneHot([A], 2))).ns).toEqual([5]);
  });
});

describe('perceptibility', () => {
  it('hand-computed', () => {
    // object 0: x = 0, x' = 0.1 everywhere -> sqrt(0.01) = 0.1
    // object 1: x = 0.5, x' differs by 0.4 at one of 4 pixels -> sqrt(0.16 / 4) = sqrt(0.04) = 0.2
    const x = new Float64Array([0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5]);
    const adv = new Float64Array([0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.9]);
    const r = perceptibility(adv, x, 2);
    close(r.perObject[0], 0.1);
    close(r.perObject[1], 0.2);
    close(r.mean, 0.15);
  });

  it('rejects pixels outside [0, 1] and mismatched shapes', () => {
    expect(() => perceptibility(new Float32Array([255]), new Float32Array([0]), 1)).toThrow(/\[0, 1\]/);
    expect(() => perceptibility(new Float32Array([Number.NaN]), new Float32Array([0]), 1)).toThrow(
      EvaluationError,
    );
    expect(() => perceptibility(new Float32Array(4), new Float32Array(3), 1)).toThrow(/equal size/);
  });
});

describe('bad input', () => {
  it('says what was expected', async () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as EvaluationError;
      }
      throw new Error('no error');
    };
    expect(err(() => new RetrievalDatabase(4, new Int8Array([1, 0, 1, 1]), oneHot([0], 2))).code).toBe(
      'BAD_CODES',
    );
    expect(err(() => new RetrievalDatabase(4, new Int8Array(5).fill(1), oneHot([0], 2))).code).toBe(
      'BAD_CODES',
    );
    expect(err(() => new RetrievalDatabase(4, new Int8Array(4).fill(1), new Uint8Array([2, 0]))).code).toBe(
      'BAD_LABELS',
    );
    expect(err(() => new RetrievalDatabase(4, new Int8Array(0), new Uint8Array(0))).code).toBe(
      'EMPTY_DATABASE',
    );
    const db = new RetrievalDatabase(4, database, dbLabels);
    await expect(db.map(new Int8Array(q1), oneHot([0, 1], 2))).rejects.toThrow(/1 queries x 2 classes/);
    await expect(db.map(new Int8Array(q1), oneHot([0], 2), { R: 0 })).rejects.toThrow(/positive integer/);
    await expect(db.map(new Int8Array(q1), oneHot([0], 2), { zeroHits: 'drop' as 'skip' })).rejects.toThrow(
      /'skip' or 'count'/,
    );
  });
});
